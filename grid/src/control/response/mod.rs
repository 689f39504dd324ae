//! Typed answers to control requests. The node builds these and the socket carries them
//! as one JSON object with `"ok": true` added ([`ok`]); a client knows which request it
//! sent and reads the answer back into the matching type ([`parse`]). Refusals are
//! [`crate::Error`]s instead (see [`crate::Error::to_json`]).
//!
//! Every request answers this way, one type per answer, grouped by concern: links and
//! paths ([`LinkUp`] … [`Links`], [`PathFound`], [`Probed`]), commands and events
//! ([`Executed`], [`JobResult`], [`Events`], …), trust and pairing ([`TrustList`],
//! [`PairOffered`], [`PairStatus`], …), file transfers ([`CpStatus`], [`Received`]), the
//! node's [`Status`] and the DHT ([`DhtLookup`]). Only contents that are open-ended by
//! nature (a command's result, an event's payload, bytes received) stay JSON values.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::Error;

mod catalog;
mod commands;
mod dht;
mod links;
mod status;
mod transfers;
mod trust;

pub use catalog::*;
pub use commands::*;
pub use dht::*;
pub use links::*;
pub use status::*;
pub use transfers::*;
pub use trust::*;

/// An answer as the socket carries it: its fields and `"ok": true`.
pub fn ok(answer: &impl Serialize) -> Value {
    let mut v = serde_json::to_value(answer).expect("answers serialize");
    if let Value::Object(m) = &mut v {
        m.insert("ok".into(), Value::Bool(true));
    }
    v
}

/// Read an answer back into the type the request expects; a refusal is its error, an
/// answer of another shape is [`Error::BadResponse`].
pub fn parse<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    if let Some(e) = Error::from_json(&v) {
        return Err(e);
    }
    serde_json::from_value(v).map_err(|e| Error::BadResponse(e.to_string()))
}

#[cfg(test)]
mod tests;
