//! Bundle sealing: end-to-end encryption and sender authentication for store-and-forward
//! bundles.
//!
//! A sealed bundle can be handed to any number of carriers. They can store and forward it
//! but cannot read it, and cannot learn who sent it: the sender's public key and
//! signature travel inside the ciphertext. Only the recipient can open it, and on
//! opening learns the sender's identity, authenticated by an Ed25519 signature.
//!
//! # Construction (format version 1)
//!
//! With `D = b"grid/bundle/v1"` and `R = recipient.hash()` (16 bytes):
//!
//! 1. Generate a fresh ephemeral X25519 key pair; `eph_pub` is its public key.
//! 2. `shared = X25519(eph_secret, recipient.x25519_public())`.
//! 3. `okm = HKDF-SHA256(ikm = shared, salt = eph_pub ‖ R, info = D)`, 44 bytes:
//!    `key = okm[0..32]`, `nonce = okm[32..44]`. A derived nonce is safe because the
//!    ephemeral key, and with it the key, is fresh for every seal.
//! 4. `sig = Ed25519-Sign(sender, D ‖ eph_pub ‖ R ‖ u32_be(aad.len()) ‖ aad ‖ payload)`.
//!    Signing `eph_pub` and `R` binds the signature to this one bundle and recipient, so
//!    a recipient cannot re-seal a signed payload to someone else in the sender's name.
//! 5. `inner = sender_public (64) ‖ sig (64) ‖ payload`.
//! 6. `ciphertext = ChaCha20-Poly1305(key, nonce, inner, associated data = [1] ‖ aad)`,
//!    including the 16-byte tag.
//! 7. `sealed = 0x01 ‖ eph_pub (32) ‖ ciphertext`.
//!
//! The `aad` (associated data) is not carried in the bundle; the recipient must supply
//! the same bytes to open it (for example a bundle id or destination the carrier routes
//! on). The whole seal adds [`SEAL_OVERHEAD`] bytes to the payload.
//!
//! [`open`] reverses the steps. It never panics, whatever the input, and reports why a
//! bundle was rejected with a [`SealError`].

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce, Tag};
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use x25519_dalek::{PublicKey as XPublic, StaticSecret};

use crate::identity::{Identity, PublicIdentity, KEY_LEN, SIGNATURE_LEN, X25519_LEN};

/// Format version byte at the start of a sealed bundle.
pub const SEAL_VERSION: u8 = 1;

/// Bytes a seal adds to the payload: version, ephemeral key, sender key, signature, tag.
pub const SEAL_OVERHEAD: usize = 1 + X25519_LEN + KEY_LEN + SIGNATURE_LEN + TAG_LEN;

/// Domain separator: HKDF info and signature prefix.
const DOMAIN: &[u8] = b"grid/bundle/v1";
/// Poly1305 tag length.
const TAG_LEN: usize = 16;
/// Cleartext header: version byte and ephemeral public key.
const HEADER_LEN: usize = 1 + X25519_LEN;

/// A successfully opened bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Who sealed the bundle; its signature over the payload has been verified.
    pub sender: PublicIdentity,
    /// The decrypted payload.
    pub payload: Vec<u8>,
}

/// Why a sealed bundle could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Shorter than a version-1 header, sender key, signature and tag.
    #[error("sealed bundle truncated")]
    Truncated,
    /// The version byte names a format this code does not know.
    #[error("unsupported sealed bundle version {0}")]
    UnsupportedVersion(u8),
    /// Authenticated decryption failed: wrong recipient, tampered bytes, or wrong aad.
    #[error("sealed bundle does not decrypt")]
    Decrypt,
    /// The embedded sender public key is malformed.
    #[error("sealed bundle sender key is invalid")]
    BadSender,
    /// The sender's signature does not verify, so the claimed sender did not seal it.
    #[error("sealed bundle signature does not verify")]
    BadSignature,
}

/// Seal `payload` from `sender` to `recipient`, bound to `aad`.
///
/// Only `recipient` can open the result, and it learns `sender` authenticated. The same
/// `aad` must be passed to [`open`]. Output length is `payload.len() + SEAL_OVERHEAD`.
///
/// # Panics
///
/// Only if `payload` exceeds ChaCha20-Poly1305's limit of about 256 GiB.
pub fn seal<R: RngCore + CryptoRng + ?Sized>(
    rng: &mut R,
    sender: &Identity,
    recipient: &PublicIdentity,
    aad: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    seal_with(rng, recipient, aad, payload.len(), |eph_pub, inner| {
        let sig = sender.sign(&signed_message(eph_pub, &recipient.hash().0, aad, payload));
        inner.extend_from_slice(sender.public().as_bytes());
        inner.extend_from_slice(&sig);
        inner.extend_from_slice(payload);
    })
}

/// Open a bundle sealed to `recipient` with the same `aad`.
///
/// Returns the authenticated sender and the payload, or why the bundle was rejected.
/// Never panics on any input.
pub fn open(recipient: &Identity, aad: &[u8], sealed: &[u8]) -> Result<Opened, SealError> {
    // The version is checked before the length so that a (possibly shorter) bundle in a
    // future format reports its version rather than looking truncated.
    match sealed.first() {
        None => return Err(SealError::Truncated),
        Some(&SEAL_VERSION) => {}
        Some(&v) => return Err(SealError::UnsupportedVersion(v)),
    }
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::Truncated);
    }
    let (header, body) = sealed
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(SealError::Truncated)?;
    let (ciphertext, tag) = body
        .split_last_chunk::<TAG_LEN>()
        .ok_or(SealError::Truncated)?;
    let mut eph_pub = [0u8; X25519_LEN];
    eph_pub.copy_from_slice(&header[1..]);

    let shared = recipient.ecdh(&eph_pub);
    // A low-order ephemeral key forces an all-zero secret that anyone could compute.
    if shared == [0u8; 32] {
        return Err(SealError::Decrypt);
    }
    let recipient_hash = recipient.hash().0;
    let (cipher, nonce) = derive_cipher(&shared, &eph_pub, &recipient_hash);

    let mut inner = ciphertext.to_vec();
    cipher
        .decrypt_in_place_detached(&nonce, &associated_data(aad), &mut inner, &Tag::from(*tag))
        .map_err(|_| SealError::Decrypt)?;

    let (sender, rest) = inner
        .split_first_chunk::<KEY_LEN>()
        .ok_or(SealError::Truncated)?;
    let (sig, payload) = rest
        .split_first_chunk::<SIGNATURE_LEN>()
        .ok_or(SealError::Truncated)?;
    let sender = PublicIdentity::from_bytes(sender).map_err(|_| SealError::BadSender)?;
    sender
        .verify(
            &signed_message(&eph_pub, &recipient_hash, aad, payload),
            sig,
        )
        .map_err(|_| SealError::BadSignature)?;
    Ok(Opened {
        sender,
        payload: payload.to_vec(),
    })
}

/// Seal with a caller-built plaintext: `fill_inner(eph_pub, buf)` appends the inner blob
/// (sender key ‖ signature ‖ payload) to `buf`. [`seal`] uses it; tests use it to forge
/// bundles whose signature does not match the claimed sender.
fn seal_with<R: RngCore + CryptoRng + ?Sized>(
    rng: &mut R,
    recipient: &PublicIdentity,
    aad: &[u8],
    payload_len: usize,
    fill_inner: impl FnOnce(&[u8; X25519_LEN], &mut Vec<u8>),
) -> Vec<u8> {
    let eph = StaticSecret::random_from_rng(&mut *rng);
    let eph_pub = *XPublic::from(&eph).as_bytes();
    let shared = eph.diffie_hellman(&XPublic::from(recipient.x25519_public()));
    let (cipher, nonce) = derive_cipher(shared.as_bytes(), &eph_pub, &recipient.hash().0);

    let mut out = Vec::with_capacity(payload_len.saturating_add(SEAL_OVERHEAD));
    out.push(SEAL_VERSION);
    out.extend_from_slice(&eph_pub);
    fill_inner(&eph_pub, &mut out);
    let tag = cipher
        .encrypt_in_place_detached(&nonce, &associated_data(aad), &mut out[HEADER_LEN..])
        .expect("ChaCha20-Poly1305 accepts payloads up to 256 GiB");
    out.extend_from_slice(&tag);
    out
}

/// The message the sender signs; see the module documentation.
fn signed_message(
    eph_pub: &[u8; X25519_LEN],
    recipient_hash: &[u8; 16],
    aad: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + X25519_LEN + 16 + 4 + aad.len() + payload.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(eph_pub);
    m.extend_from_slice(recipient_hash);
    m.extend_from_slice(&(aad.len() as u32).to_be_bytes());
    m.extend_from_slice(aad);
    m.extend_from_slice(payload);
    m
}

/// AEAD associated data: the version byte followed by the caller's aad.
fn associated_data(aad: &[u8]) -> Vec<u8> {
    let mut ad = Vec::with_capacity(1 + aad.len());
    ad.push(SEAL_VERSION);
    ad.extend_from_slice(aad);
    ad
}

/// Key and nonce for one bundle, from the ECDH secret, ephemeral key and recipient hash.
fn derive_cipher(
    shared: &[u8; 32],
    eph_pub: &[u8; X25519_LEN],
    recipient_hash: &[u8; 16],
) -> (ChaCha20Poly1305, Nonce) {
    let mut salt = [0u8; X25519_LEN + 16];
    salt[..X25519_LEN].copy_from_slice(eph_pub);
    salt[X25519_LEN..].copy_from_slice(recipient_hash);
    let mut okm = [0u8; 44];
    hkdf_sha256_info(shared, &salt, DOMAIN, &mut okm);
    let mut key = [0u8; 32];
    let mut nonce = [0u8; 12];
    key.copy_from_slice(&okm[..32]);
    nonce.copy_from_slice(&okm[32..]);
    (ChaCha20Poly1305::new(&Key::from(key)), Nonce::from(nonce))
}

/// RFC 5869 HKDF-SHA256 with an `info` string. (The RNS [`crate::crypto::hkdf_sha256`]
/// always uses empty info; with empty info the two agree.) `out` must be at most
/// 255 × 32 bytes, which holds for the fixed 44 bytes used here.
fn hkdf_sha256_info(ikm: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) {
    type HmacSha256 = Hmac<Sha256>;
    debug_assert!(out.len() <= 255 * 32);
    let mut extract = <HmacSha256 as Mac>::new_from_slice(salt).expect("HMAC takes any key length");
    extract.update(ikm);
    let prk = extract.finalize().into_bytes();
    let base = <HmacSha256 as Mac>::new_from_slice(&prk).expect("HMAC takes any key length");
    let mut previous = [0u8; 32];
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        let mut m = base.clone();
        if i > 0 {
            m.update(&previous);
        }
        m.update(info);
        m.update(&[(i + 1) as u8]);
        previous = m.finalize().into_bytes().into();
        chunk.copy_from_slice(&previous[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::hkdf_sha256;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn setup(seed: u64) -> (ChaCha20Rng, Identity, Identity) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let sender = Identity::generate(&mut rng);
        let recipient = Identity::generate(&mut rng);
        (rng, sender, recipient)
    }

    /// Seal with an arbitrary claimed sender key and a signature made by `signer`.
    fn forge(
        rng: &mut ChaCha20Rng,
        claimed_sender: &[u8; KEY_LEN],
        signer: &Identity,
        recipient: &PublicIdentity,
        aad: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        seal_with(rng, recipient, aad, payload.len(), |eph_pub, inner| {
            let sig = signer.sign(&signed_message(eph_pub, &recipient.hash().0, aad, payload));
            inner.extend_from_slice(claimed_sender);
            inner.extend_from_slice(&sig);
            inner.extend_from_slice(payload);
        })
    }

    #[test]
    fn roundtrip_returns_sender_and_payload() {
        let (mut rng, sender, recipient) = setup(1);
        let sealed = seal(
            &mut rng,
            &sender,
            recipient.public(),
            b"bundle-id",
            b"hello mesh",
        );
        assert_eq!(sealed.len(), b"hello mesh".len() + SEAL_OVERHEAD);
        assert_eq!(sealed[0], SEAL_VERSION);
        let opened = open(&recipient, b"bundle-id", &sealed).unwrap();
        assert_eq!(opened.sender.hash(), sender.hash());
        assert_eq!(&opened.sender, sender.public());
        assert_eq!(opened.payload, b"hello mesh");
    }

    #[test]
    fn carriers_see_neither_payload_nor_sender() {
        let (mut rng, sender, recipient) = setup(2);
        let payload = b"a distinctive plaintext payload";
        let sealed = seal(&mut rng, &sender, recipient.public(), b"", payload);
        let contains = |needle: &[u8]| sealed.windows(needle.len()).any(|w| w == needle);
        assert!(!contains(payload));
        assert!(!contains(sender.public().as_bytes()));
        assert!(!contains(&sender.hash().0));
    }

    #[test]
    fn wrong_recipient_fails_to_decrypt() {
        let (mut rng, sender, recipient) = setup(3);
        let other = Identity::generate(&mut rng);
        let sealed = seal(&mut rng, &sender, recipient.public(), b"aad", b"secret");
        assert_eq!(open(&other, b"aad", &sealed), Err(SealError::Decrypt));
        // Not even the sender can open what it sealed to someone else.
        assert_eq!(open(&sender, b"aad", &sealed), Err(SealError::Decrypt));
    }

    #[test]
    fn different_aad_fails_to_decrypt() {
        let (mut rng, sender, recipient) = setup(4);
        let sealed = seal(&mut rng, &sender, recipient.public(), b"aad-1", b"secret");
        assert_eq!(open(&recipient, b"aad-2", &sealed), Err(SealError::Decrypt));
        assert_eq!(open(&recipient, b"", &sealed), Err(SealError::Decrypt));
        assert!(open(&recipient, b"aad-1", &sealed).is_ok());
    }

    #[test]
    fn every_flipped_byte_is_rejected() {
        let (mut rng, sender, recipient) = setup(5);
        let sealed = seal(&mut rng, &sender, recipient.public(), b"aad", b"payload");
        for i in 0..sealed.len() {
            for mask in [0x01u8, 0x80, 0xFF] {
                let mut t = sealed.clone();
                t[i] ^= mask;
                let r = open(&recipient, b"aad", &t);
                assert!(r.is_err(), "byte {i} ^ {mask:#x} accepted");
                if i == 0 {
                    assert_eq!(r, Err(SealError::UnsupportedVersion(t[0])));
                } else {
                    assert_eq!(r, Err(SealError::Decrypt), "byte {i} ^ {mask:#x}");
                }
            }
        }
    }

    #[test]
    fn truncated_bundles_are_rejected() {
        let (mut rng, sender, recipient) = setup(6);
        let sealed = seal(&mut rng, &sender, recipient.public(), b"", b"");
        assert_eq!(sealed.len(), SEAL_OVERHEAD);
        for len in 0..SEAL_OVERHEAD {
            assert_eq!(
                open(&recipient, b"", &sealed[..len]),
                Err(SealError::Truncated),
                "len {len}"
            );
        }
        // Longer than the minimum but cut short: the tag no longer matches.
        let sealed = seal(&mut rng, &sender, recipient.public(), b"", b"0123456789");
        for len in SEAL_OVERHEAD..sealed.len() {
            assert_eq!(
                open(&recipient, b"", &sealed[..len]),
                Err(SealError::Decrypt)
            );
        }
    }

    #[test]
    fn unknown_versions_are_rejected() {
        let (mut rng, sender, recipient) = setup(7);
        let mut sealed = seal(&mut rng, &sender, recipient.public(), b"", b"x");
        for v in [0u8, 2, 0xFF] {
            sealed[0] = v;
            assert_eq!(
                open(&recipient, b"", &sealed),
                Err(SealError::UnsupportedVersion(v))
            );
            // Even when shorter than a version-1 bundle.
            assert_eq!(
                open(&recipient, b"", &sealed[..3]),
                Err(SealError::UnsupportedVersion(v))
            );
        }
    }

    #[test]
    fn seals_of_same_payload_differ() {
        let (mut rng, sender, recipient) = setup(8);
        let a = seal(&mut rng, &sender, recipient.public(), b"aad", b"same");
        let b = seal(&mut rng, &sender, recipient.public(), b"aad", b"same");
        assert_ne!(a, b);
        assert_ne!(a[1..HEADER_LEN], b[1..HEADER_LEN]);
        assert_eq!(open(&recipient, b"aad", &a).unwrap().payload, b"same");
        assert_eq!(open(&recipient, b"aad", &b).unwrap().payload, b"same");
    }

    #[test]
    fn empty_payload_and_aad() {
        let (mut rng, sender, recipient) = setup(9);
        let sealed = seal(&mut rng, &sender, recipient.public(), b"", b"");
        let opened = open(&recipient, b"", &sealed).unwrap();
        assert!(opened.payload.is_empty());
        assert_eq!(opened.sender.hash(), sender.hash());
    }

    #[test]
    fn signature_by_another_identity_is_rejected() {
        let (mut rng, alice, recipient) = setup(10);
        let mallory = Identity::generate(&mut rng);
        // Mallory claims to be Alice but can only sign with her own key.
        let forged = forge(
            &mut rng,
            alice.public().as_bytes(),
            &mallory,
            recipient.public(),
            b"aad",
            b"pay me",
        );
        assert_eq!(
            open(&recipient, b"aad", &forged),
            Err(SealError::BadSignature)
        );
        // The same construction with her own key opens, as Mallory.
        let honest = forge(
            &mut rng,
            mallory.public().as_bytes(),
            &mallory,
            recipient.public(),
            b"aad",
            b"pay me",
        );
        let opened = open(&recipient, b"aad", &honest).unwrap();
        assert_eq!(opened.sender.hash(), mallory.hash());
    }

    #[test]
    fn signature_is_bound_to_recipient_and_ephemeral_key() {
        // A recipient cannot re-seal Alice's signed payload to a third party: the
        // signature covers the ephemeral key and the recipient hash.
        let (mut rng, alice, bob) = setup(11);
        let carol = Identity::generate(&mut rng);
        let sealed = seal(&mut rng, &alice, bob.public(), b"", b"for bob");
        let opened_inner = {
            let eph: [u8; 32] = sealed[1..HEADER_LEN].try_into().unwrap();
            let (cipher, nonce) = derive_cipher(&bob.ecdh(&eph), &eph, &bob.hash().0);
            let (ct, tag) = sealed[HEADER_LEN..].split_at(sealed.len() - HEADER_LEN - TAG_LEN);
            let mut inner = ct.to_vec();
            cipher
                .decrypt_in_place_detached(
                    &nonce,
                    &associated_data(b""),
                    &mut inner,
                    Tag::from_slice(tag),
                )
                .unwrap();
            inner
        };
        let resealed = seal_with(&mut rng, carol.public(), b"", 0, |_, buf| {
            buf.extend_from_slice(&opened_inner)
        });
        assert_eq!(open(&carol, b"", &resealed), Err(SealError::BadSignature));
    }

    #[test]
    fn malformed_sender_key_is_rejected() {
        let (mut rng, sender, recipient) = setup(12);
        // Find an Ed25519 public half that does not decompress to a curve point.
        let bad = (0u8..=255)
            .map(|b| {
                let mut key = *sender.public().as_bytes();
                key[32..].fill(0);
                key[32] = b;
                key[63] = 0x7F;
                key
            })
            .find(|k| PublicIdentity::from_bytes(k).is_err())
            .expect("some y-coordinate is off the curve");
        let sealed = forge(&mut rng, &bad, &sender, recipient.public(), b"", b"x");
        assert_eq!(open(&recipient, b"", &sealed), Err(SealError::BadSender));
    }

    #[test]
    fn low_order_ephemeral_key_is_rejected() {
        let (mut rng, sender, recipient) = setup(13);
        let mut sealed = seal(&mut rng, &sender, recipient.public(), b"", b"x");
        // The identity point (u = 0) and u = 1 are of low order.
        for u in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert_eq!(recipient.ecdh(&u), [0u8; 32]);
            sealed[1..HEADER_LEN].copy_from_slice(&u);
            assert_eq!(open(&recipient, b"", &sealed), Err(SealError::Decrypt));
        }
    }

    #[test]
    fn hkdf_with_info_matches_rfc5869_and_rns_hkdf() {
        // RFC 5869 A.1.
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let mut okm = [0u8; 42];
        hkdf_sha256_info(&ikm, &salt, &info, &mut okm);
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        // Empty info agrees with the RNS HKDF.
        let mut a = [0u8; 44];
        let mut b = [0u8; 44];
        hkdf_sha256_info(b"ikm", b"salt", b"", &mut a);
        hkdf_sha256(b"ikm", b"salt", &mut b);
        assert_eq!(a, b);
    }

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let (_, _, recipient) = setup(100);
            let _ = open(&recipient, b"", &bytes);
            // Also exercise the paths past the version and length checks.
            let mut v1 = vec![SEAL_VERSION];
            v1.extend_from_slice(&bytes);
            let _ = open(&recipient, b"", &v1);
        }

        #[test]
        fn seal_open_roundtrips(
            seed in any::<u64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..512),
            aad in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let (mut rng, sender, recipient) = setup(seed);
            let sealed = seal(&mut rng, &sender, recipient.public(), &aad, &payload);
            prop_assert_eq!(sealed.len(), payload.len() + SEAL_OVERHEAD);
            let opened = open(&recipient, &aad, &sealed).unwrap();
            prop_assert_eq!(opened.sender.hash(), sender.hash());
            prop_assert_eq!(opened.payload, payload);
        }
    }
}
