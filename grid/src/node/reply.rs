//! How a finished operation answers its caller: one [`Outcome`], turned into JSON for the
//! control socket or into a typed result for the embedded [`crate::api`].

use std::time::Duration;

use rns_core::link::LinkId;
use rns_core::{rmpv, AddressHash};
use serde_json::Value;
use tokio::sync::oneshot;

use super::links::value_json;
use crate::Error;

/// What a successful operation yields.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// A path was found: control socket only.
    Path(crate::control::response::PathFound),
    /// A probe was proven: control socket only.
    Probed(crate::control::response::Probed),
    /// A link is established.
    LinkUp {
        link: LinkId,
        rtt: Duration,
        mtu: usize,
    },
    /// A packet on a link was proven.
    Proven { link: LinkId, rtt: Duration },
    /// A request was answered.
    Response { link: LinkId, data: rmpv::Value },
    /// A channel message was proven.
    Delivered { link: LinkId, sequence: u16 },
    /// Every byte of a stream write (and its EOF, if asked) was proven.
    StreamDelivered {
        link: LinkId,
        stream_id: u16,
        bytes: usize,
        eof: bool,
    },
    /// We identified ourselves on a link.
    Identified { link: LinkId, identity: AddressHash },
    /// A link was closed.
    Closed { link: LinkId },
    /// A resource we sent was proven.
    ResourceDelivered { link: LinkId },
    /// A packet went out on a link; its proof is not waited for.
    Sent { link: LinkId },
}

impl Outcome {
    /// The control socket's JSON form.
    pub(crate) fn to_json(&self) -> Value {
        use crate::control::response::{self as r, ok};
        match self {
            Outcome::Path(p) => ok(p),
            Outcome::Probed(p) => ok(p),
            Outcome::LinkUp { link, rtt, mtu } => ok(&r::LinkUp {
                link: *link,
                rtt_ms: ms(rtt),
                mtu: *mtu,
            }),
            Outcome::Proven { link, rtt } => ok(&r::Proven {
                link: *link,
                rtt_ms: ms(rtt),
            }),
            Outcome::Response { link, data } => ok(&r::Answered {
                link: *link,
                response: value_json(data),
            }),
            Outcome::Delivered { link, sequence } => ok(&r::Delivered {
                link: *link,
                sequence: *sequence,
            }),
            Outcome::StreamDelivered {
                link,
                stream_id,
                bytes,
                eof,
            } => ok(&r::StreamDelivered {
                link: *link,
                stream_id: *stream_id,
                bytes: *bytes,
                eof: *eof,
            }),
            Outcome::Identified { link, identity } => ok(&r::Identified {
                link: *link,
                identity: *identity,
            }),
            Outcome::Closed { link }
            | Outcome::ResourceDelivered { link }
            | Outcome::Sent { link } => ok(&r::Done { link: *link }),
        }
    }
}

fn ms(d: &Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Where an operation's result goes, exactly once.
pub(crate) struct Reply(Box<dyn FnOnce(Result<Outcome, Error>) + Send>);

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reply")
    }
}

impl Reply {
    /// Answer a control-socket request with JSON ([`Error::to_json`] on failure).
    pub(crate) fn json(tx: oneshot::Sender<Value>) -> Reply {
        Reply(Box::new(move |r| {
            let _ = tx.send(match r {
                Ok(o) => o.to_json(),
                Err(e) => e.to_json(),
            });
        }))
    }

    /// Answer any caller with a closure (the embedded API's typed channels).
    pub(crate) fn with(f: impl FnOnce(Result<Outcome, Error>) + Send + 'static) -> Reply {
        Reply(Box::new(f))
    }

    /// Deliver a success.
    pub(crate) fn ok(self, o: Outcome) {
        (self.0)(Ok(o))
    }

    /// Deliver a failure.
    pub(crate) fn fail(self, e: impl Into<Error>) {
        (self.0)(Err(e.into()))
    }

    /// Deliver a result.
    pub(crate) fn send(self, r: Result<Outcome, Error>) {
        (self.0)(r)
    }
}
