//! HKDF-SHA256 as RNS uses it: empty info, empty salt means 32 zero bytes.
//!
//! RFC 5869 limits output to 255 blocks; RNS does not, because IFAC masks are as long
//! as the frame (up to the interface's hardware MTU). Past block 255 RNS wraps the
//! one-byte block counter modulo 256 (block 256 uses counter 0x00), and so do we.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Fill `out` with key material derived from `ikm` and `salt` (empty = 32 zero bytes).
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], out: &mut [u8]) {
    let zero = [0u8; 32];
    let salt = if salt.is_empty() { &zero[..] } else { salt };
    let mut extract = HmacSha256::new_from_slice(salt).expect("HMAC takes any key length");
    extract.update(ikm);
    let prk = extract.finalize().into_bytes();
    let base = HmacSha256::new_from_slice(&prk).expect("HMAC takes any key length");

    let mut previous = [0u8; 32];
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        let mut m = base.clone();
        if i > 0 {
            m.update(&previous);
        }
        m.update(&[((i + 1) & 0xFF) as u8]);
        previous = m.finalize().into_bytes().into();
        chunk.copy_from_slice(&previous[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc5869_case_3_zero_length_info() {
        // RFC 5869 A.3: IKM = 22 × 0x0b, salt empty, info empty, L = 42.
        let mut out = [0u8; 42];
        hkdf_sha256(&[0x0b; 22], &[], &mut out);
        assert_eq!(
            hex::encode(out),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn empty_salt_is_32_zero_bytes_and_prefix_stable() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        hkdf_sha256(b"key", &[], &mut a);
        hkdf_sha256(b"key", &[0u8; 32], &mut b);
        assert_eq!(a, b);
        let mut long = vec![0u8; 255 * 32 + 100];
        hkdf_sha256(b"key", &[], &mut long);
        assert_eq!(&long[..64], &a[..]);
        // Block 256 uses counter 0x00 and is therefore distinct from block 1.
        assert_ne!(&long[255 * 32..255 * 32 + 32], &long[..32]);
    }
}
