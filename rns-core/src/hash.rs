//! Hashes used for addressing: SHA-256, and the 16-byte truncated form that
//! names identities, destinations, links and packets on the wire.

use core::fmt;
use core::str::FromStr;
use sha2::{Digest, Sha256};

/// Length of a truncated hash (identity, destination, link id, transport id).
pub const TRUNCATED_HASH_LEN: usize = 16;
/// Length of a full SHA-256 hash.
pub const FULL_HASH_LEN: usize = 32;
/// Length of a destination name hash.
pub const NAME_HASH_LEN: usize = 10;

/// SHA-256 of `data`.
pub fn full_hash(data: &[u8]) -> [u8; FULL_HASH_LEN] {
    Sha256::digest(data).into()
}

/// SHA-256 over several slices, as if they were concatenated.
pub fn full_hash_parts(parts: &[&[u8]]) -> [u8; FULL_HASH_LEN] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The first 16 bytes of SHA-256 of `data`.
pub fn truncated_hash(data: &[u8]) -> AddressHash {
    AddressHash::from_full(&full_hash(data))
}

/// A 16-byte address: identity hash, destination hash, link id or transport id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AddressHash(pub [u8; TRUNCATED_HASH_LEN]);

impl AddressHash {
    /// Truncate a full hash to its first 16 bytes.
    pub fn from_full(full: &[u8; FULL_HASH_LEN]) -> Self {
        let mut out = [0u8; TRUNCATED_HASH_LEN];
        out.copy_from_slice(&full[..TRUNCATED_HASH_LEN]);
        AddressHash(out)
    }

    /// Copy from a slice of exactly 16 bytes.
    pub fn from_slice(s: &[u8]) -> Option<Self> {
        <[u8; TRUNCATED_HASH_LEN]>::try_from(s)
            .ok()
            .map(AddressHash)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; TRUNCATED_HASH_LEN] {
        &self.0
    }

    /// Lowercase hex, 32 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl AsRef<[u8]> for AddressHash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for AddressHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for AddressHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{self}>")
    }
}

/// Why a textual hash could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    /// The text is not 32 hexadecimal characters.
    #[error("expected 32 hexadecimal characters, got {0}")]
    Length(usize),
    /// A character is not hexadecimal.
    #[error("not hexadecimal")]
    NotHex,
}

impl FromStr for AddressHash {
    type Err = HashParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().trim_start_matches('<').trim_end_matches('>');
        if s.len() != TRUNCATED_HASH_LEN * 2 {
            return Err(HashParseError::Length(s.len()));
        }
        let mut out = [0u8; TRUNCATED_HASH_LEN];
        hex::decode_to_slice(s, &mut out).map_err(|_| HashParseError::NotHex)?;
        Ok(AddressHash(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let h: AddressHash = "6b9f66014d9853faab220fba47d02761".parse().unwrap();
        assert_eq!(h.to_string(), "6b9f66014d9853faab220fba47d02761");
        assert_eq!(
            "<6b9f66014d9853faab220fba47d02761>"
                .parse::<AddressHash>()
                .unwrap(),
            h
        );
        assert_eq!("abc".parse::<AddressHash>(), Err(HashParseError::Length(3)));
        assert_eq!(
            "zz9f66014d9853faab220fba47d02761".parse::<AddressHash>(),
            Err(HashParseError::NotHex)
        );
    }

    #[test]
    fn truncation_is_prefix_of_sha256() {
        let full = full_hash(b"abc");
        assert_eq!(truncated_hash(b"abc").0[..], full[..16]);
        assert_eq!(full_hash_parts(&[b"a", b"bc"]), full);
    }
}
