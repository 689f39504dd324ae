//! Identities: an X25519 key for encryption and an Ed25519 key for signatures.
//!
//! Public key layout (64 bytes): `X25519 public ‖ Ed25519 public` (encryption key first).
//! Private key / identity file layout (64 bytes): `X25519 private ‖ Ed25519 seed`.
//! The identity hash is the truncated SHA-256 of the 64-byte public key.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use x25519_dalek::{PublicKey as XPublic, StaticSecret};

use crate::crypto::{hkdf_sha256, Token};
use crate::hash::{truncated_hash, AddressHash};

/// Length of a public or private key blob.
pub const KEY_LEN: usize = 64;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Length of an X25519 public key (ephemeral keys, ratchets).
pub const X25519_LEN: usize = 32;

/// Why an identity operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The key blob is not 64 bytes.
    #[error("identity key must be 64 bytes, got {0}")]
    KeyLength(usize),
    /// The Ed25519 public half is not a valid curve point.
    #[error("invalid Ed25519 public key")]
    InvalidSigningKey,
    /// A signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// Ciphertext too short to hold an ephemeral key and a token.
    #[error("ciphertext too short")]
    CiphertextLength,
    /// No key (identity or ratchet) could open the ciphertext.
    #[error("decryption failed")]
    Decrypt,
}

/// The public half of an identity, as carried in announces.
#[derive(Clone)]
pub struct PublicIdentity {
    bytes: [u8; KEY_LEN],
    verifying: VerifyingKey,
    hash: AddressHash,
}

impl core::fmt::Debug for PublicIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "PublicIdentity({})", self.hash)
    }
}

impl PartialEq for PublicIdentity {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl Eq for PublicIdentity {}

impl PublicIdentity {
    /// Parse a 64-byte public key (`X25519 ‖ Ed25519`).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| IdentityError::KeyLength(bytes.len()))?;
        let ed: [u8; 32] = bytes[32..].try_into().expect("32 bytes");
        let verifying =
            VerifyingKey::from_bytes(&ed).map_err(|_| IdentityError::InvalidSigningKey)?;
        Ok(PublicIdentity {
            bytes,
            verifying,
            hash: truncated_hash(&bytes),
        })
    }

    /// The 64-byte public key.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The X25519 (encryption) half.
    pub fn x25519_public(&self) -> [u8; 32] {
        self.bytes[..32].try_into().expect("32 bytes")
    }

    /// The Ed25519 (signing) half.
    pub fn ed25519_public(&self) -> [u8; 32] {
        self.bytes[32..].try_into().expect("32 bytes")
    }

    /// The identity hash: truncated SHA-256 of the public key.
    pub fn hash(&self) -> AddressHash {
        self.hash
    }

    /// Verify an Ed25519 signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), IdentityError> {
        let sig: [u8; SIGNATURE_LEN] = signature
            .try_into()
            .map_err(|_| IdentityError::BadSignature)?;
        self.verifying
            .verify_strict(message, &Signature::from_bytes(&sig))
            .map_err(|_| IdentityError::BadSignature)
    }

    /// Encrypt for this identity (a SINGLE destination), optionally to its ratchet key.
    ///
    /// Output: `ephemeral X25519 public(32) ‖ token`. The HKDF salt is always the
    /// identity hash, even when a ratchet is the target key.
    pub fn encrypt<R: RngCore + CryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        plaintext: &[u8],
        ratchet: Option<&[u8; 32]>,
    ) -> Vec<u8> {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let eph = StaticSecret::from(seed);
        let eph_pub = XPublic::from(&eph);
        let target = XPublic::from(*ratchet.unwrap_or(&self.x25519_public()));
        let shared = eph.diffie_hellman(&target);
        let token = derive_token(shared.as_bytes(), self.hash.as_bytes());
        let mut out = Vec::with_capacity(32 + Token::encrypted_len(plaintext.len()));
        out.extend_from_slice(eph_pub.as_bytes());
        out.extend_from_slice(&token.encrypt(rng, plaintext));
        out
    }
}

/// A full identity with private keys.
#[derive(Clone)]
pub struct Identity {
    x25519: StaticSecret,
    signing: SigningKey,
    public: PublicIdentity,
}

impl core::fmt::Debug for Identity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Identity({})", self.public.hash)
    }
}

impl Identity {
    /// Generate a new identity from `rng`.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = [0u8; KEY_LEN];
        rng.fill_bytes(&mut key);
        Self::from_private_bytes(&key).expect("64 bytes")
    }

    /// Load from the RNS 64-byte private key layout (`X25519 private ‖ Ed25519 seed`).
    pub fn from_private_bytes(bytes: &[u8]) -> Result<Self, IdentityError> {
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| IdentityError::KeyLength(bytes.len()))?;
        let x: [u8; 32] = bytes[..32].try_into().expect("32 bytes");
        let seed: [u8; 32] = bytes[32..].try_into().expect("32 bytes");
        let x25519 = StaticSecret::from(x);
        let signing = SigningKey::from_bytes(&seed);
        let mut public = [0u8; KEY_LEN];
        public[..32].copy_from_slice(XPublic::from(&x25519).as_bytes());
        public[32..].copy_from_slice(signing.verifying_key().as_bytes());
        let public = PublicIdentity::from_bytes(&public)?;
        Ok(Identity {
            x25519,
            signing,
            public,
        })
    }

    /// The 64-byte private key in the RNS layout (what `rnid` writes to a file).
    pub fn to_private_bytes(&self) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        out[..32].copy_from_slice(self.x25519.as_bytes());
        out[32..].copy_from_slice(self.signing.as_bytes());
        out
    }

    /// The public half.
    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    /// The identity hash.
    pub fn hash(&self) -> AddressHash {
        self.public.hash
    }

    /// Sign `message` with Ed25519.
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing.sign(message).to_bytes()
    }

    /// The Ed25519 signing key (links use it as the responder's signing key).
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// X25519 key agreement with a peer public key.
    pub fn ecdh(&self, peer: &[u8; 32]) -> [u8; 32] {
        *self.x25519.diffie_hellman(&XPublic::from(*peer)).as_bytes()
    }

    /// Decrypt a SINGLE-destination ciphertext (`ephemeral public ‖ token`).
    ///
    /// Each ratchet private key is tried first, then the identity key (unless
    /// `enforce_ratchets`). The HKDF salt is this identity's hash in every case.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        ratchets: &[[u8; 32]],
        enforce_ratchets: bool,
    ) -> Result<Vec<u8>, IdentityError> {
        if ciphertext.len() <= X25519_LEN {
            return Err(IdentityError::CiphertextLength);
        }
        let (eph, token) = ciphertext.split_at(X25519_LEN);
        let eph = XPublic::from(<[u8; 32]>::try_from(eph).expect("32 bytes"));
        let salt = self.public.hash;
        for r in ratchets {
            let shared = StaticSecret::from(*r).diffie_hellman(&eph);
            if let Ok(pt) = derive_token(shared.as_bytes(), salt.as_bytes()).decrypt(token) {
                return Ok(pt);
            }
        }
        if enforce_ratchets {
            return Err(IdentityError::Decrypt);
        }
        let shared = self.x25519.diffie_hellman(&eph);
        derive_token(shared.as_bytes(), salt.as_bytes())
            .decrypt(token)
            .map_err(|_| IdentityError::Decrypt)
    }
}

/// Public key of a ratchet private key.
pub fn ratchet_public(private: &[u8; 32]) -> [u8; 32] {
    *XPublic::from(&StaticSecret::from(*private)).as_bytes()
}

fn derive_token(shared: &[u8; 32], salt: &[u8]) -> Token {
    let mut key = [0u8; 64];
    hkdf_sha256(shared, salt, &mut key);
    Token::new(&key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const SERVER_KEY: &str = "c8ef46f46b6b401fa0c38abce5bd2f1ccb57395b7d48847089081ad5bd95d2538d7f4c6d015bb50be2f3fc67c4d370538c443507665fc4c9ff7d8cba0d3a74ca";

    #[test]
    fn vector_identity_hash() {
        let id = Identity::from_private_bytes(&hex::decode(SERVER_KEY).unwrap()).unwrap();
        assert_eq!(id.hash().to_string(), "f4aa7e658762b87bb38c88b7b571a8d8");
        assert_eq!(hex::encode(id.to_private_bytes()), SERVER_KEY);
    }

    #[test]
    fn sign_verify_and_reject() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let id = Identity::generate(&mut rng);
        let sig = id.sign(b"msg");
        assert!(id.public().verify(b"msg", &sig).is_ok());
        assert_eq!(
            id.public().verify(b"msh", &sig),
            Err(IdentityError::BadSignature)
        );
        assert_eq!(
            id.public().verify(b"msg", &sig[..10]),
            Err(IdentityError::BadSignature)
        );
    }

    #[test]
    fn encrypt_decrypt_with_and_without_ratchet() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let id = Identity::generate(&mut rng);
        let ct = id.public().encrypt(&mut rng, b"hi there", None);
        assert_eq!(id.decrypt(&ct, &[], false).unwrap(), b"hi there");

        let mut rp = [0u8; 32];
        rng.fill_bytes(&mut rp);
        let ct = id
            .public()
            .encrypt(&mut rng, b"ratcheted", Some(&ratchet_public(&rp)));
        assert_eq!(id.decrypt(&ct, &[rp], true).unwrap(), b"ratcheted");
        assert_eq!(id.decrypt(&ct, &[], false), Err(IdentityError::Decrypt));
        let other = Identity::generate(&mut rng);
        assert_eq!(other.decrypt(&ct, &[], false), Err(IdentityError::Decrypt));
        assert_eq!(
            id.decrypt(&ct[..32], &[], false),
            Err(IdentityError::CiphertextLength)
        );
    }

    #[test]
    fn wrong_key_lengths() {
        assert_eq!(
            Identity::from_private_bytes(&[0u8; 10]).unwrap_err(),
            IdentityError::KeyLength(10)
        );
        assert_eq!(
            PublicIdentity::from_bytes(&[0u8; 63]).unwrap_err(),
            IdentityError::KeyLength(63)
        );
    }
}
