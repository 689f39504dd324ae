//! Path request payloads, sent as DATA to the PLAIN `rnstransport.path.request` destination.
//!
//! `destination(16) ‖ [requesting transport id(16)] ‖ tag(≤16)`. A tag is mandatory in
//! RNS 1.5.7; tags longer than 16 bytes are truncated.

use crate::hash::{AddressHash, TRUNCATED_HASH_LEN};

/// Maximum tag length kept.
pub const TAG_LEN: usize = 16;

/// Why a path request payload is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRequestError {
    /// Shorter than a destination hash.
    #[error("path request shorter than a destination hash")]
    TooShort,
    /// No tag: a protocol violation since RNS 1.5.
    #[error("path request has no tag")]
    Tagless,
}

/// A parsed path request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRequest {
    /// The destination a path is wanted for.
    pub destination: AddressHash,
    /// The requesting transport node, if the requester is one.
    pub requesting_transport: Option<AddressHash>,
    /// The request tag (1..=16 bytes).
    pub tag: Vec<u8>,
}

impl PathRequest {
    /// Parse a path request payload.
    pub fn parse(data: &[u8]) -> Result<PathRequest, PathRequestError> {
        const H: usize = TRUNCATED_HASH_LEN;
        if data.len() < H {
            return Err(PathRequestError::TooShort);
        }
        let destination = AddressHash::from_slice(&data[..H]).expect("16 bytes");
        let (requesting_transport, tag) = if data.len() > 2 * H {
            (AddressHash::from_slice(&data[H..2 * H]), &data[2 * H..])
        } else if data.len() > H {
            (None, &data[H..])
        } else {
            return Err(PathRequestError::Tagless);
        };
        Ok(PathRequest {
            destination,
            requesting_transport,
            tag: tag[..tag.len().min(TAG_LEN)].to_vec(),
        })
    }

    /// Serialize.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48);
        out.extend_from_slice(self.destination.as_bytes());
        if let Some(t) = &self.requesting_transport {
            out.extend_from_slice(t.as_bytes());
        }
        out.extend_from_slice(&self.tag);
        out
    }

    /// The key used to ignore repeats: `destination ‖ tag`.
    pub fn unique_tag(&self) -> Vec<u8> {
        let mut k = self.destination.0.to_vec();
        k.extend_from_slice(&self.tag);
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let d = AddressHash([1; 16]);
        let t = AddressHash([2; 16]);
        let plain = PathRequest {
            destination: d,
            requesting_transport: None,
            tag: vec![3; 16],
        };
        assert_eq!(PathRequest::parse(&plain.emit()).unwrap(), plain);
        let tr = PathRequest {
            destination: d,
            requesting_transport: Some(t),
            tag: vec![3; 16],
        };
        assert_eq!(PathRequest::parse(&tr.emit()).unwrap(), tr);
        assert_eq!(PathRequest::parse(&[1; 16]), Err(PathRequestError::Tagless));
        assert_eq!(PathRequest::parse(&[1; 5]), Err(PathRequestError::TooShort));
        let mut long = tr.emit();
        long.extend_from_slice(&[9; 10]);
        assert_eq!(PathRequest::parse(&long).unwrap().tag, vec![3; 16]);
        // 17..32 bytes: the rest is a short tag, no transport id.
        let short = PathRequest::parse(&[1; 20]).unwrap();
        assert_eq!(short.requesting_transport, None);
        assert_eq!(short.tag.len(), 4);
    }
}
