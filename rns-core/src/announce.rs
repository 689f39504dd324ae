//! Announces: how a destination tells the network its public key and app data.
//!
//! ```text
//! public_key(64) name_hash(10) random_hash(10) [ratchet(32) if context flag] signature(64) app_data(..)
//! ```
//! The signature covers `destination_hash ‖ public_key ‖ name_hash ‖ random_hash ‖ ratchet ‖ app_data`.

use rand_core::RngCore;

use crate::destination::{destination_hash, NameHash};
use crate::hash::{AddressHash, NAME_HASH_LEN};
use crate::identity::{Identity, IdentityError, PublicIdentity, KEY_LEN, SIGNATURE_LEN};

mod field {
    use core::ops::Range;
    pub(super) const PUBLIC_KEY: Range<usize> = 0..64;
    pub(super) const NAME_HASH: Range<usize> = 64..74;
    pub(super) const RANDOM_HASH: Range<usize> = 74..84;
    pub(super) const RATCHET_OR_SIG: usize = 84;
}

/// Length of the random hash (5 random bytes ‖ 5-byte big-endian emission time).
pub const RANDOM_HASH_LEN: usize = 10;
/// Length of a ratchet public key.
pub const RATCHET_LEN: usize = 32;
/// Announce payload length without ratchet and app data.
pub const MIN_PAYLOAD: usize = KEY_LEN + NAME_HASH_LEN + RANDOM_HASH_LEN + SIGNATURE_LEN;

/// Why an announce payload is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    /// The payload is shorter than its fixed fields.
    #[error("announce payload too short: {0} bytes")]
    TooShort(usize),
    /// The public key is not usable.
    #[error("announce public key: {0}")]
    Key(IdentityError),
    /// The signature does not verify.
    #[error("announce signature does not verify")]
    BadSignature,
    /// The destination hash does not follow from the name hash and identity.
    #[error("announced destination hash does not match name hash and identity")]
    HashMismatch,
}

/// A parsed announce payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The announced identity.
    pub identity: PublicIdentity,
    /// Name hash of the destination.
    pub name_hash: NameHash,
    /// 5 random bytes and the 5-byte emission time.
    pub random_hash: [u8; RANDOM_HASH_LEN],
    /// Ratchet public key, when the context flag was set.
    pub ratchet: Option<[u8; RATCHET_LEN]>,
    /// Ed25519 signature.
    pub signature: [u8; SIGNATURE_LEN],
    /// Application data (may be empty).
    pub app_data: Vec<u8>,
}

impl Announce {
    /// Parse an announce payload. `has_ratchet` is the packet's context flag.
    pub fn parse(data: &[u8], has_ratchet: bool) -> Result<Announce, AnnounceError> {
        let need = MIN_PAYLOAD + if has_ratchet { RATCHET_LEN } else { 0 };
        if data.len() < need {
            return Err(AnnounceError::TooShort(data.len()));
        }
        let identity =
            PublicIdentity::from_bytes(&data[field::PUBLIC_KEY]).map_err(AnnounceError::Key)?;
        let mut at = field::RATCHET_OR_SIG;
        let ratchet = if has_ratchet {
            let r: [u8; RATCHET_LEN] = data[at..at + RATCHET_LEN].try_into().expect("len");
            at += RATCHET_LEN;
            Some(r)
        } else {
            None
        };
        let signature: [u8; SIGNATURE_LEN] = data[at..at + SIGNATURE_LEN].try_into().expect("len");
        at += SIGNATURE_LEN;
        Ok(Announce {
            identity,
            name_hash: data[field::NAME_HASH].try_into().expect("len"),
            random_hash: data[field::RANDOM_HASH].try_into().expect("len"),
            ratchet,
            signature,
            app_data: data[at..].to_vec(),
        })
    }

    /// Check the signature, then the destination hash (RNS validation order).
    pub fn validate(&self, destination: &AddressHash) -> Result<(), AnnounceError> {
        let signed = signed_data(
            destination,
            self.identity.as_bytes(),
            &self.name_hash,
            &self.random_hash,
            self.ratchet.as_ref(),
            &self.app_data,
        );
        self.identity
            .verify(&signed, &self.signature)
            .map_err(|_| AnnounceError::BadSignature)?;
        if destination_hash(&self.name_hash, Some(&self.identity.hash())) != *destination {
            return Err(AnnounceError::HashMismatch);
        }
        Ok(())
    }

    /// The emission time (Unix seconds) encoded in the random hash.
    pub fn emission_time(&self) -> u64 {
        emission_time(&self.random_hash)
    }
}

/// Emission time (Unix seconds) from the last 5 bytes of a random hash.
pub fn emission_time(random_hash: &[u8; RANDOM_HASH_LEN]) -> u64 {
    random_hash[5..]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// A fresh random hash: 5 random bytes and the 40-bit big-endian emission time.
pub fn random_hash<R: RngCore + ?Sized>(rng: &mut R, unix_secs: u64) -> [u8; RANDOM_HASH_LEN] {
    let mut out = [0u8; RANDOM_HASH_LEN];
    rng.fill_bytes(&mut out[..5]);
    out[5..].copy_from_slice(&unix_secs.to_be_bytes()[3..]);
    out
}

fn signed_data(
    destination: &AddressHash,
    public_key: &[u8; KEY_LEN],
    name_hash: &NameHash,
    random_hash: &[u8; RANDOM_HASH_LEN],
    ratchet: Option<&[u8; RATCHET_LEN]>,
    app_data: &[u8],
) -> Vec<u8> {
    let mut s = Vec::with_capacity(16 + MIN_PAYLOAD + RATCHET_LEN + app_data.len());
    s.extend_from_slice(destination.as_bytes());
    s.extend_from_slice(public_key);
    s.extend_from_slice(name_hash);
    s.extend_from_slice(random_hash);
    if let Some(r) = ratchet {
        s.extend_from_slice(r);
    }
    s.extend_from_slice(app_data);
    s
}

/// Build a signed announce payload for a local destination.
pub fn build_payload(
    identity: &Identity,
    name_hash: &NameHash,
    destination: &AddressHash,
    random_hash: &[u8; RANDOM_HASH_LEN],
    ratchet: Option<&[u8; RATCHET_LEN]>,
    app_data: &[u8],
) -> Vec<u8> {
    let pk = identity.public().as_bytes();
    let signed = signed_data(destination, pk, name_hash, random_hash, ratchet, app_data);
    let sig = identity.sign(&signed);
    let mut out = Vec::with_capacity(MIN_PAYLOAD + RATCHET_LEN + app_data.len());
    out.extend_from_slice(pk);
    out.extend_from_slice(name_hash);
    out.extend_from_slice(random_hash);
    if let Some(r) = ratchet {
        out.extend_from_slice(r);
    }
    out.extend_from_slice(&sig);
    out.extend_from_slice(app_data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::name_hash;
    use crate::packet::Packet;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const ANNOUNCE: &str = "010081e1e65370bf9705c9c5583eff258bc600888e573cff574e6e51f27a8da0db3f41e7c2b9f57887c5762f52d4902210ea5d2f2ed8d17d41a991310e957530170a399aa2c75ef4901afdfdf3d09df9a1a4a2abc5627bfa25e8368938c7093b0ca7006b02852b766bfb122e5f76fa377d0102c51e919c4da7cc39f536812e49611aca3fc828ce51c52d4aaaf1b2ee42c0a5ef4e76535a9b750d7f7cc1489ed4fdccf16f357f02726e732d696e7465726f70";

    #[test]
    fn vector_announce_validates() {
        let p = Packet::parse(&hex::decode(ANNOUNCE).unwrap()).unwrap();
        let a = Announce::parse(&p.data, p.flags.context_flag).unwrap();
        a.validate(&p.destination).unwrap();
        assert_eq!(a.app_data, b"rns-interop");
        assert_eq!(
            a.identity.hash().to_string(),
            "f4aa7e658762b87bb38c88b7b571a8d8"
        );
        assert_eq!(a.name_hash, name_hash("rnsinterop.echo"));
        assert!(a.emission_time() > 1_700_000_000);
    }

    #[test]
    fn tampering_is_detected() {
        let p = Packet::parse(&hex::decode(ANNOUNCE).unwrap()).unwrap();
        let a = Announce::parse(&p.data, false).unwrap();
        let mut other = p.destination;
        other.0[0] ^= 1;
        assert_eq!(a.validate(&other), Err(AnnounceError::BadSignature));
        let mut b = a.clone();
        b.app_data.push(b'!');
        assert_eq!(b.validate(&p.destination), Err(AnnounceError::BadSignature));
        assert_eq!(
            Announce::parse(&p.data[..100], false),
            Err(AnnounceError::TooShort(100))
        );
    }

    #[test]
    fn build_with_ratchet_round_trips() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let id = Identity::generate(&mut rng);
        let nh = name_hash("grid.node");
        let dest = destination_hash(&nh, Some(&id.hash()));
        let rh = random_hash(&mut rng, 1_800_000_000);
        assert_eq!(emission_time(&rh), 1_800_000_000);
        let ratchet = [5u8; 32];
        let payload = build_payload(&id, &nh, &dest, &rh, Some(&ratchet), b"caps");
        assert_eq!(payload.len(), MIN_PAYLOAD + 32 + 4);
        let a = Announce::parse(&payload, true).unwrap();
        a.validate(&dest).unwrap();
        assert_eq!(a.ratchet, Some(ratchet));
        assert_eq!(a.app_data, b"caps");
        // Parsed without the context flag, the ratchet bytes become part of the
        // signature and app data: validation must fail.
        assert!(Announce::parse(&payload, false)
            .map(|a| a.validate(&dest).is_err())
            .unwrap_or(true));
        // A different identity claiming the same destination fails the hash check.
        let id2 = Identity::generate(&mut rng);
        let payload2 = build_payload(&id2, &nh, &dest, &rh, None, b"");
        assert_eq!(
            Announce::parse(&payload2, false).unwrap().validate(&dest),
            Err(AnnounceError::HashMismatch)
        );
    }
}
