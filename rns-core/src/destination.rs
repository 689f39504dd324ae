//! Destination naming and addressing, exactly as RNS derives them.
//!
//! `name_hash = SHA256(full_name)[0..10]`; with an identity the destination hash is
//! `trunc16(name_hash ‖ identity_hash)`, without one (PLAIN) it is `trunc16(name_hash)`.

use crate::hash::{full_hash, truncated_hash, AddressHash, NAME_HASH_LEN};

/// The four destination types of the flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DestinationType {
    /// Addressed to one identity; encrypted with ephemeral X25519.
    Single = 0,
    /// A pre-shared symmetric key; link-local only.
    Group = 1,
    /// Unencrypted, link-local only (path requests, tunnel synthesis).
    Plain = 2,
    /// A link: the destination hash is the link id.
    Link = 3,
}

impl DestinationType {
    /// Decode the two destination-type bits.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0x03 {
            0 => DestinationType::Single,
            1 => DestinationType::Group,
            2 => DestinationType::Plain,
            _ => DestinationType::Link,
        }
    }
}

/// A name hash: the first 10 bytes of SHA-256 of the dotted full name.
pub type NameHash = [u8; NAME_HASH_LEN];

/// Why a destination name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The app name or an aspect contains a dot, or is empty.
    #[error("app name and aspects must be non-empty and contain no dots: {0:?}")]
    InvalidComponent(String),
}

/// Join an app name and aspects into the dotted full name, checking each part.
pub fn full_name(app_name: &str, aspects: &[&str]) -> Result<String, NameError> {
    let mut out = String::new();
    for (i, part) in core::iter::once(&app_name)
        .chain(aspects.iter())
        .enumerate()
    {
        if part.is_empty() || part.contains('.') {
            return Err(NameError::InvalidComponent((*part).to_string()));
        }
        if i > 0 {
            out.push('.');
        }
        out.push_str(part);
    }
    Ok(out)
}

/// The name hash of a dotted full name such as `rnstransport.path.request`.
pub fn name_hash(full_name: &str) -> NameHash {
    let h = full_hash(full_name.as_bytes());
    let mut out = [0u8; NAME_HASH_LEN];
    out.copy_from_slice(&h[..NAME_HASH_LEN]);
    out
}

/// Destination hash from a name hash and (for SINGLE/GROUP with identity) an identity hash.
pub fn destination_hash(name_hash: &NameHash, identity_hash: Option<&AddressHash>) -> AddressHash {
    match identity_hash {
        Some(id) => {
            let mut buf = [0u8; NAME_HASH_LEN + 16];
            buf[..NAME_HASH_LEN].copy_from_slice(name_hash);
            buf[NAME_HASH_LEN..].copy_from_slice(id.as_bytes());
            truncated_hash(&buf)
        }
        None => truncated_hash(name_hash),
    }
}

/// Destination hash straight from a dotted full name.
pub fn hash_from_name(full_name: &str, identity_hash: Option<&AddressHash>) -> AddressHash {
    destination_hash(&name_hash(full_name), identity_hash)
}

/// The pre-shared key of a GROUP destination: a 64-byte RNS token key.
///
/// GROUP packets carry `Token(key, plaintext)` with no ephemeral key; they are link-local.
#[derive(Clone)]
pub struct GroupKey([u8; 64]);

impl core::fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("GroupKey(..)")
    }
}

impl GroupKey {
    /// A new random key.
    pub fn generate<R: rand_core::RngCore + rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut k = [0u8; 64];
        rng.fill_bytes(&mut k);
        GroupKey(k)
    }

    /// Use an existing 64-byte key.
    pub fn from_bytes(key: [u8; 64]) -> Self {
        GroupKey(key)
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// Encrypt a GROUP packet payload.
    pub fn encrypt<R: rand_core::RngCore + rand_core::CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        plaintext: &[u8],
    ) -> Vec<u8> {
        crate::crypto::Token::new(&self.0).encrypt(rng, plaintext)
    }

    /// Decrypt a GROUP packet payload.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, crate::crypto::TokenError> {
        crate::crypto::Token::new(&self.0).decrypt(data)
    }
}

/// Well-known names and hashes.
pub mod well_known {
    /// PLAIN destination that receives path requests.
    pub const PATH_REQUEST: &str = "rnstransport.path.request";
    /// PLAIN destination that receives tunnel synthesis packets (ignored by Grid).
    pub const TUNNEL_SYNTHESIZE: &str = "rnstransport.tunnel.synthesize";
    /// SINGLE destination (transport identity) that proves every packet: `rnprobe` target.
    pub const PROBE: &str = "rnstransport.probe";
    /// The Grid node destination (SINGLE, node identity).
    pub const GRID_NODE: &str = "grid.node";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_plain_hashes() {
        assert_eq!(
            hex::encode(name_hash(well_known::PATH_REQUEST)),
            "7926bbe7dd7f9aba88b0"
        );
        assert_eq!(
            hash_from_name(well_known::PATH_REQUEST, None).to_string(),
            "6b9f66014d9853faab220fba47d02761"
        );
        assert_eq!(
            hex::encode(name_hash(well_known::TUNNEL_SYNTHESIZE)),
            "324e54e934712b5731af"
        );
        assert_eq!(
            hash_from_name(well_known::TUNNEL_SYNTHESIZE, None).to_string(),
            "91bf0910267b59b0e864e0d4c91602ca"
        );
    }

    #[test]
    fn vector_single_destination() {
        let id: AddressHash = "f4aa7e658762b87bb38c88b7b571a8d8".parse().unwrap();
        assert_eq!(
            hash_from_name("rnsinterop.echo", Some(&id)).to_string(),
            "81e1e65370bf9705c9c5583eff258bc6"
        );
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(full_name("a", &["b", "c"]).unwrap(), "a.b.c");
        assert!(full_name("a.b", &[]).is_err());
        assert!(full_name("a", &[""]).is_err());
    }

    #[test]
    fn type_bits() {
        for t in [
            DestinationType::Single,
            DestinationType::Group,
            DestinationType::Plain,
            DestinationType::Link,
        ] {
            assert_eq!(DestinationType::from_bits(t as u8), t);
        }
    }
}
