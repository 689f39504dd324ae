//! The bundle exchange: what two nodes say to each other about bundles on a link.
//!
//! Every exchange is one link request to [`BUNDLE_PATH`] whose data is a version byte
//! then the postcard encoding of an [`Exchange`]; the response is the same for an
//! [`ExchangeReply`]. Requests over one packet travel as resource segments, so a batch
//! of bundles goes in one request.

use serde::{Deserialize, Serialize};

/// The request path on `grid.node` links.
pub const BUNDLE_PATH: &str = "grid/bundle";
/// The exchange format this node speaks.
pub const EXCHANGE_VERSION: u8 = 1;
/// Most bytes of bundles sent in one exchange (push batches and pull answers).
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Most bundles in one exchange.
pub const BATCH_COUNT: usize = 256;
/// Largest sealed bundle accepted (a 16 MiB frame plus the seal).
pub const MAX_SEALED: usize = 16 * 1024 * 1024 + 1024;

/// A bundle as it travels: the store's record without the local custody flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireBundle {
    /// Unique id (random), the deduplication key.
    pub id: [u8; 16],
    /// The `grid.node` destination it is for.
    pub destination: [u8; 16],
    /// When it was made, Unix ms.
    pub created_ms: u64,
    /// When it stops being worth delivering, Unix ms.
    pub expires_ms: u64,
    /// The end-to-end encrypted frame ([`super::envelope`]).
    pub sealed: Vec<u8>,
}

/// What a node asks of another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exchange {
    /// Take these bundles: for you, or (if you are a custodian) to hand on.
    Push(Vec<WireBundle>),
    /// Give me bundles you hold for my `grid.node` destination (the link must be
    /// identified; at most `max_bytes`).
    Pull {
        /// Budget for the answer.
        max_bytes: u32,
    },
    /// I have these bundles from your pull now; drop them.
    Ack(Vec<[u8; 16]>),
    /// The public key behind a `grid.node` destination, if you have heard it announce
    /// (so bundles can be sealed to a node that is offline now).
    Identity([u8; 16]),
}

/// The answer to an [`Exchange`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExchangeReply {
    /// Which pushed bundles were taken (new or already held), and which were refused.
    Pushed {
        /// Ids taken: the sender may forget them.
        accepted: Vec<[u8; 16]>,
        /// Ids refused, with the reason.
        refused: Vec<([u8; 16], String)>,
    },
    /// Bundles for the puller.
    Pulled(Vec<WireBundle>),
    /// How many acknowledged bundles were dropped.
    Acked(u32),
    /// The 64-byte public key, if known.
    Identity(Option<Vec<u8>>),
    /// The request was refused as a whole.
    Refused(String),
}

/// Why exchange bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Empty input.
    #[error("empty bundle exchange")]
    Empty,
    /// A newer exchange format.
    #[error("bundle exchange version {0} is newer than {EXCHANGE_VERSION}")]
    Version(u8),
    /// The body did not decode.
    #[error("malformed bundle exchange: {0}")]
    Malformed(String),
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![EXCHANGE_VERSION];
    // Postcard cannot fail on these types (no maps, no unknown-length sequences).
    out.extend(postcard::to_allocvec(v).unwrap_or_default());
    out
}

fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != EXCHANGE_VERSION {
        return Err(WireError::Version(version));
    }
    let (v, rest) =
        postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(v)
}

impl Exchange {
    /// Version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    /// Decode; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Exchange, WireError> {
        decode(bytes)
    }
}

impl ExchangeReply {
    /// Version byte, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    /// Decode; never panics.
    pub fn decode(bytes: &[u8]) -> Result<ExchangeReply, WireError> {
        decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exchanges_roundtrip_and_refuse_other_versions() {
        let b = WireBundle {
            id: [1; 16],
            destination: [2; 16],
            created_ms: 3,
            expires_ms: 4,
            sealed: vec![5; 40],
        };
        for x in [
            Exchange::Push(vec![b.clone()]),
            Exchange::Pull { max_bytes: 9 },
            Exchange::Ack(vec![[7; 16]]),
            Exchange::Identity([8; 16]),
        ] {
            assert_eq!(Exchange::decode(&x.encode()), Ok(x));
        }
        let r = ExchangeReply::Pushed {
            accepted: vec![[1; 16]],
            refused: vec![([2; 16], "no".into())],
        };
        assert_eq!(ExchangeReply::decode(&r.encode()), Ok(r));
        let mut bytes = Exchange::Pull { max_bytes: 1 }.encode();
        bytes[0] = 2;
        assert_eq!(Exchange::decode(&bytes), Err(WireError::Version(2)));
        assert_eq!(Exchange::decode(&[]), Err(WireError::Empty));
        let mut bytes = Exchange::Pull { max_bytes: 1 }.encode();
        bytes.push(0);
        assert!(matches!(
            Exchange::decode(&bytes),
            Err(WireError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Exchange::decode(&bytes);
            let _ = ExchangeReply::decode(&bytes);
        }
    }
}
