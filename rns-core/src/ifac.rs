//! Interface access codes (IFAC): a per-interface shared secret that authenticates
//! and masks every frame, so only peers with the same network name/passphrase are heard.
//!
//! Transmit: `ifac = last N bytes of Ed25519_sign(ifac_identity, packet)`; the frame is
//! `[flags|0x80, hops] ‖ ifac ‖ rest`, XOR-masked with `HKDF(ifac, ifac_key)` everywhere
//! except the IFAC bytes themselves.

use crate::crypto::hkdf_sha256;
use crate::hash::full_hash;
use crate::identity::Identity;
use crate::packet::Flags;

/// The fixed salt for deriving IFAC keys.
pub const IFAC_SALT: [u8; 32] = [
    0xad, 0xf5, 0x4d, 0x88, 0x2c, 0x9a, 0x9b, 0x80, 0x77, 0x1e, 0xb4, 0x99, 0x5d, 0x70, 0x2d, 0x4a,
    0x3e, 0x73, 0x33, 0x91, 0xb2, 0xa0, 0xf5, 0x3f, 0x41, 0x6d, 0x9f, 0x90, 0x7e, 0x55, 0xcf, 0xf8,
];

/// Why an inbound frame failed the IFAC check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IfacError {
    /// The interface requires IFAC but the flag is clear.
    #[error("IFAC flag missing on an IFAC interface")]
    Missing,
    /// The flag is set on an interface without IFAC.
    #[error("IFAC flag set on an interface without IFAC")]
    Unexpected,
    /// Too short to hold header and code.
    #[error("frame too short for IFAC")]
    TooShort,
    /// The code does not match: wrong network name or passphrase.
    #[error("IFAC does not verify")]
    Invalid,
}

/// IFAC settings of one interface.
#[derive(Clone)]
pub struct Ifac {
    size: usize,
    key: [u8; 64],
    identity: Identity,
}

impl core::fmt::Debug for Ifac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Ifac(size={})", self.size)
    }
}

impl Ifac {
    /// Derive from a network name and/or passphrase. `size` is in bytes (1..=64).
    /// Returns `None` if neither secret is given.
    pub fn new(network_name: Option<&str>, passphrase: Option<&str>, size: usize) -> Option<Ifac> {
        if network_name.is_none() && passphrase.is_none() {
            return None;
        }
        let mut origin = Vec::with_capacity(64);
        if let Some(n) = network_name {
            origin.extend_from_slice(&full_hash(n.as_bytes()));
        }
        if let Some(p) = passphrase {
            origin.extend_from_slice(&full_hash(p.as_bytes()));
        }
        let mut key = [0u8; 64];
        hkdf_sha256(&full_hash(&origin), &IFAC_SALT, &mut key);
        let identity = Identity::from_private_bytes(&key).expect("64 bytes");
        Some(Ifac {
            size: size.clamp(1, 64),
            key,
            identity,
        })
    }

    /// IFAC length in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Add the access code to a logical packet and mask it.
    pub fn apply(&self, raw: &[u8]) -> Vec<u8> {
        let n = self.size;
        let sig = self.identity.sign(raw);
        let code = &sig[sig.len() - n..];
        let mut mask = vec![0u8; raw.len() + n];
        hkdf_sha256(code, &self.key, &mut mask);
        let mut out = Vec::with_capacity(raw.len() + n);
        out.push(raw[0] | Flags::IFAC);
        out.push(raw.get(1).copied().unwrap_or(0));
        out.extend_from_slice(code);
        out.extend_from_slice(raw.get(2..).unwrap_or(&[]));
        for (i, (b, m)) in out.iter_mut().zip(mask.iter()).enumerate() {
            if !(2..2 + n).contains(&i) {
                *b ^= m;
            }
        }
        out[0] |= Flags::IFAC;
        out
    }

    /// Check and remove the access code of an inbound frame, returning the logical packet.
    pub fn verify(&self, frame: &[u8]) -> Result<Vec<u8>, IfacError> {
        let n = self.size;
        if frame.len() <= 2 + n {
            return Err(IfacError::TooShort);
        }
        if frame[0] & Flags::IFAC == 0 {
            return Err(IfacError::Missing);
        }
        let code = &frame[2..2 + n];
        let mut mask = vec![0u8; frame.len()];
        hkdf_sha256(code, &self.key, &mut mask);
        let mut raw = Vec::with_capacity(frame.len() - n);
        raw.push((frame[0] ^ mask[0]) & !Flags::IFAC);
        raw.push(frame[1] ^ mask[1]);
        raw.extend(
            frame[2 + n..]
                .iter()
                .zip(&mask[2 + n..])
                .map(|(b, m)| b ^ m),
        );
        let sig = self.identity.sign(&raw);
        if &sig[sig.len() - n..] != code {
            return Err(IfacError::Invalid);
        }
        Ok(raw)
    }
}

/// Check the IFAC flag for an interface without IFAC.
pub fn check_no_ifac(frame: &[u8]) -> Result<(), IfacError> {
    match frame.first() {
        Some(b) if b & Flags::IFAC != 0 => Err(IfacError::Unexpected),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_secret() {
        let a = Ifac::new(Some("testnet"), Some("secret"), 16).unwrap();
        let b = Ifac::new(Some("testnet"), Some("wrong"), 16).unwrap();
        let raw: Vec<u8> = (0..60u8).collect();
        let framed = a.apply(&raw);
        assert_eq!(framed.len(), raw.len() + 16);
        assert!(framed[0] & 0x80 != 0);
        assert_eq!(a.verify(&framed).unwrap(), raw);
        assert_eq!(b.verify(&framed), Err(IfacError::Invalid));
        let mut tampered = framed.clone();
        tampered[30] ^= 1;
        assert_eq!(a.verify(&tampered), Err(IfacError::Invalid));
        assert_eq!(a.verify(&framed[..10]), Err(IfacError::TooShort));
        assert_eq!(a.verify(&raw), Err(IfacError::Missing));
        assert_eq!(check_no_ifac(&framed), Err(IfacError::Unexpected));
        assert!(Ifac::new(None, None, 16).is_none());
    }

    /// Produced by RNS 1.5.7's `Transport.handle_outgoing_ifac` (network `testnet`,
    /// passphrase `secret`) for a path request packet.
    #[test]
    fn vector_from_rns() {
        let raw = hex::decode("08006b9f66014d9853faab220fba47d02761001111111111111111111111111111111122222222222222222222222222222222").unwrap();
        let v16 = "c121b4f23376620391099bef94abdd4bba0da1b3138b031b55bce4b2b98a32e536e6384805cc011b06585c1b79ed5e52109754c2906b10d01a8a41de2e1b23a95b4009";
        let v8 = "90b29bef94abdd4bba0d60c0951389f09e5ed9056adf48d890dc64edc4d26c9242efe5311ebabab888afc8c4150fd1475efc07d0d293dafbbd2873";
        let i16 = Ifac::new(Some("testnet"), Some("secret"), 16).unwrap();
        let i8 = Ifac::new(Some("testnet"), Some("secret"), 8).unwrap();
        assert_eq!(hex::encode(i16.apply(&raw)), v16);
        assert_eq!(hex::encode(i8.apply(&raw)), v8);
        assert_eq!(i16.verify(&hex::decode(v16).unwrap()).unwrap(), raw);
        assert_eq!(i8.verify(&hex::decode(v8).unwrap()).unwrap(), raw);
    }

    #[test]
    fn eight_byte_codes() {
        let a = Ifac::new(None, Some("pw"), 8).unwrap();
        let raw = vec![0x08u8; 40];
        assert_eq!(a.verify(&a.apply(&raw)).unwrap(), raw);
    }
}
