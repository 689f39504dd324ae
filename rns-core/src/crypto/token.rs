//! The RNS token: AES-256-CBC with PKCS#7 padding, authenticated by HMAC-SHA256.
//!
//! Layout: `IV(16) ‖ ciphertext ‖ HMAC(32)`, HMAC over `IV ‖ ciphertext`.
//! A 64-byte key splits into the HMAC key (bytes 0..32) and the AES key (32..64).
//! There is no version byte and no timestamp (unlike Fernet).

use std::ops::Range;

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;

type Aes256CbcEnc = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDec = cbc::Decryptor<aes::Aes256>;
type HmacSha256 = Hmac<Sha256>;

const IV_LEN: usize = 16;
const MAC_LEN: usize = 32;
const BLOCK: usize = 16;
/// Bytes a token adds besides padding: IV and HMAC.
pub const TOKEN_OVERHEAD: usize = IV_LEN + MAC_LEN;
/// Bytes [`Token::encrypt_in_place`] needs in front of the plaintext (the IV goes there).
pub const TOKEN_HEADROOM: usize = IV_LEN;
/// Most bytes [`Token::encrypt_in_place`] adds behind the plaintext (padding and HMAC):
/// reserve this much spare capacity and the buffer is never reallocated.
pub const TOKEN_TAILROOM: usize = BLOCK + MAC_LEN;

/// Why a token could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Shorter than IV + one block + HMAC, or not block aligned.
    #[error("token has an invalid length")]
    Length,
    /// The HMAC does not match: wrong key or tampered data.
    #[error("token HMAC does not verify")]
    Hmac,
    /// The plaintext padding is invalid.
    #[error("token padding is invalid")]
    Padding,
}

/// A token key: HMAC-SHA256 key and AES-256 key.
#[derive(Clone)]
pub struct Token {
    signing_key: [u8; 32],
    encryption_key: [u8; 32],
}

impl Token {
    /// Build from a 64-byte RNS key (signing key first, AES key second).
    pub fn new(key: &[u8; 64]) -> Self {
        let mut signing_key = [0u8; 32];
        let mut encryption_key = [0u8; 32];
        signing_key.copy_from_slice(&key[..32]);
        encryption_key.copy_from_slice(&key[32..]);
        Token {
            signing_key,
            encryption_key,
        }
    }

    /// Length of the token for a plaintext of `len` bytes.
    pub const fn encrypted_len(len: usize) -> usize {
        TOKEN_OVERHEAD + (len / BLOCK + 1) * BLOCK
    }

    /// Encrypt `plaintext` with a fresh random IV.
    pub fn encrypt<R: RngCore + CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        plaintext: &[u8],
    ) -> Vec<u8> {
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        self.encrypt_with_iv(&iv, plaintext)
    }

    /// Encrypt with a given IV (deterministic; for tests and vectors).
    pub fn encrypt_with_iv(&self, iv: &[u8; IV_LEN], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encrypted_len(plaintext.len()));
        out.extend_from_slice(iv);
        out.extend_from_slice(plaintext);
        self.seal(&mut out);
        out
    }

    /// Encrypt in place, with a fresh random IV: `buf` holds [`TOKEN_HEADROOM`] bytes of
    /// any value, then the plaintext, and becomes the token (`IV ‖ ciphertext ‖ HMAC`),
    /// growing by at most [`TOKEN_TAILROOM`]. Nothing is copied: a large plaintext (a
    /// resource segment) is encrypted where it was written. A buffer shorter than the
    /// headroom is refused, unchanged.
    pub fn encrypt_in_place<R: RngCore + CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        buf: &mut Vec<u8>,
    ) -> Result<(), TokenError> {
        let Some(iv) = buf.get_mut(..IV_LEN) else {
            return Err(TokenError::Length);
        };
        rng.fill_bytes(iv);
        self.seal(buf);
        Ok(())
    }

    /// `buf` = IV ‖ plaintext (at least the IV): pad and encrypt the plaintext in place
    /// and append the HMAC.
    fn seal(&self, buf: &mut Vec<u8>) {
        let pt_len = buf.len() - IV_LEN;
        let ct_len = (pt_len / BLOCK + 1) * BLOCK;
        buf.resize(IV_LEN + ct_len, 0);
        let (iv, body) = buf.split_at_mut(IV_LEN);
        let iv: &[u8; IV_LEN] = (&*iv).try_into().expect("IV_LEN bytes");
        let enc = Aes256CbcEnc::new((&self.encryption_key).into(), iv.into());
        // The buffer has room for a full padding block, so this cannot fail.
        let written = enc
            .encrypt_padded_mut::<Pkcs7>(body, pt_len)
            .map(|c| c.len())
            .unwrap_or(0);
        debug_assert_eq!(written, ct_len);
        let mac = self.mac(buf);
        buf.extend_from_slice(&mac);
    }

    /// Verify the HMAC, then decrypt.
    pub fn decrypt(&self, token: &[u8]) -> Result<Vec<u8>, TokenError> {
        let ct = self.verify(token)?;
        let mut buf = token[IV_LEN..ct].to_vec();
        let len = self.cbc_decrypt(&token[..IV_LEN], &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Verify the HMAC, then decrypt in place: the plaintext is `token[range]` afterwards
    /// (the range starts after the IV). Nothing is copied, so a resource segment is
    /// decrypted in the buffer its parts were received into.
    pub fn decrypt_in_place(&self, token: &mut [u8]) -> Result<Range<usize>, TokenError> {
        let ct = self.verify(token)?;
        let (iv, body) = token.split_at_mut(IV_LEN);
        let len = self.cbc_decrypt(iv, &mut body[..ct - IV_LEN])?;
        Ok(IV_LEN..IV_LEN + len)
    }

    /// Check a token's length and HMAC; returns where its ciphertext ends.
    fn verify(&self, token: &[u8]) -> Result<usize, TokenError> {
        if token.len() < TOKEN_OVERHEAD + BLOCK
            || !(token.len() - TOKEN_OVERHEAD).is_multiple_of(BLOCK)
        {
            return Err(TokenError::Length);
        }
        let (signed, tag) = token.split_at(token.len() - MAC_LEN);
        let mut mac = HmacSha256::new_from_slice(&self.signing_key).expect("any key length");
        mac.update(signed);
        mac.verify_slice(tag).map_err(|_| TokenError::Hmac)?;
        Ok(signed.len())
    }

    /// Decrypt `ct` in place with `iv`; returns the plaintext length.
    fn cbc_decrypt(&self, iv: &[u8], ct: &mut [u8]) -> Result<usize, TokenError> {
        let iv: &[u8; IV_LEN] = iv.try_into().map_err(|_| TokenError::Length)?;
        let dec = Aes256CbcDec::new((&self.encryption_key).into(), iv.into());
        dec.decrypt_padded_mut::<Pkcs7>(ct)
            .map(|p| p.len())
            .map_err(|_| TokenError::Padding)
    }

    fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = HmacSha256::new_from_slice(&self.signing_key).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn key() -> [u8; 64] {
        let mut k = [0u8; 64];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        k
    }

    #[test]
    fn round_trip_all_lengths() {
        let t = Token::new(&key());
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        for len in 0..70 {
            let pt: Vec<u8> = (0..len as u8).collect();
            let ct = t.encrypt(&mut rng, &pt);
            assert_eq!(ct.len(), Token::encrypted_len(len));
            assert_eq!(t.decrypt(&ct).unwrap(), pt);
        }
    }

    #[test]
    fn tamper_and_wrong_key_are_refused() {
        let t = Token::new(&key());
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut ct = t.encrypt(&mut rng, b"hello");
        ct[20] ^= 1;
        assert_eq!(t.decrypt(&ct), Err(TokenError::Hmac));
        let mut k2 = key();
        k2[0] ^= 1;
        let ct = t.encrypt(&mut rng, b"hello");
        assert_eq!(Token::new(&k2).decrypt(&ct), Err(TokenError::Hmac));
        assert_eq!(t.decrypt(&ct[..40]), Err(TokenError::Length));
        assert_eq!(t.decrypt(&ct[..ct.len() - 1]), Err(TokenError::Length));
        let mut short = ct[..40].to_vec();
        assert_eq!(t.decrypt_in_place(&mut short), Err(TokenError::Length));
        assert_eq!(
            t.encrypt_in_place(&mut rng, &mut vec![0u8; TOKEN_HEADROOM - 1]),
            Err(TokenError::Length)
        );
    }

    #[test]
    fn in_place_matches_copying() {
        let t = Token::new(&key());
        for len in [0, 1, 15, 16, 17, 64, 1000] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let seed = len as u64;
            let copied = t.encrypt(&mut ChaCha20Rng::seed_from_u64(seed), &pt);
            let mut buf = vec![0xAA; TOKEN_HEADROOM];
            buf.extend_from_slice(&pt);
            let cap = buf.len() + TOKEN_TAILROOM;
            buf.reserve_exact(TOKEN_TAILROOM);
            t.encrypt_in_place(&mut ChaCha20Rng::seed_from_u64(seed), &mut buf)
                .unwrap();
            assert_eq!(buf, copied);
            assert!(buf.len() <= cap, "grew past the tailroom");
            let range = t.decrypt_in_place(&mut buf).unwrap();
            assert_eq!(&buf[range], &pt[..]);
        }
        let mut ct = t.encrypt(&mut ChaCha20Rng::seed_from_u64(9), b"hello");
        ct[20] ^= 1;
        assert_eq!(t.decrypt_in_place(&mut ct), Err(TokenError::Hmac));
    }
}
