//! Ratchets on a local SINGLE destination (RNS: `Destination.enable_ratchets`): X25519 keys
//! rotated every [`RATCHET_INTERVAL_S`] at announce time, the newest announced, the last
//! [`RATCHET_COUNT`] kept for decrypting packets, so packets sent outside links gain forward
//! secrecy. With enforcement on, packets encrypted to the identity key itself are refused.
//!
//! Sans-IO: time and randomness are handed in; the file format (RNS's: a msgpack map with
//! the packed key list and the destination identity's signature over it) is bytes in and
//! out, and the caller stores it.

use rand_core::CryptoRngCore;
use rmpv::Value;

use crate::identity::{Identity, IdentityError, PublicIdentity};

/// Seconds between rotations (RNS: `Destination.RATCHET_INTERVAL`, 30 minutes).
pub const RATCHET_INTERVAL_S: u64 = 30 * 60;

/// Ratchet keys kept by default (RNS: `Destination.RATCHET_COUNT`). Each is tried on a
/// packet that does not decrypt with a newer one, so this also bounds the cost of a
/// packet that decrypts with none (one X25519 agreement per key).
pub const RATCHET_COUNT: usize = 512;

/// Keys tried on every packet: the newest, which senders that heard a recent announce use.
pub const RECENT_RATCHETS: usize = 8;

/// Packets per second (a burst of twice as many) that may also try the older keys once no
/// recent one opened them. Each such scan costs up to one X25519 agreement per key kept,
/// so this bounds what packets that open with no key (garbage, or an attack) cost a
/// destination; senders holding a ratchet from hours ago are rare.
pub const DEEP_SCANS_PER_S: u64 = 4;

/// The most ratchet keys a file may hold or a destination keep (a bound on the cost of
/// one undecryptable packet, whatever a program asks for).
pub const MAX_RATCHETS: usize = 4096;

/// A ratchet file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RatchetFileError {
    /// Not the msgpack map RNS writes (`signature`, `ratchets`).
    #[error("not a ratchet file: {0}")]
    Format(&'static str),
    /// The signature is not the destination identity's: another destination's file, or
    /// changed since it was written.
    #[error("the ratchet file's signature does not match this destination's identity")]
    Signature,
    /// More keys than [`MAX_RATCHETS`].
    #[error("the ratchet file holds {0} keys; at most {MAX_RATCHETS} are read")]
    TooMany(usize),
}

/// A destination's ratchet keys, newest first, and how they rotate.
#[derive(Debug, Clone)]
pub struct Ratchets {
    keys: Vec<[u8; 32]>,
    /// When the newest key was made (Unix seconds); `None` makes the next announce rotate,
    /// as RNS does after loading its file.
    latest_rotation_s: Option<u64>,
    interval_s: u64,
    retained: usize,
    enforce: bool,
    /// Scans of the older keys allowed now (thousandths), and when that was computed.
    scan_budget_milli: u64,
    scan_budget_at_ms: u64,
}

impl Ratchets {
    /// Ratchets with the keys kept so far (newest first; none for a new destination),
    /// rotated at the next announce.
    pub fn new(mut keys: Vec<[u8; 32]>) -> Ratchets {
        keys.truncate(RATCHET_COUNT);
        Ratchets {
            keys,
            latest_rotation_s: None,
            interval_s: RATCHET_INTERVAL_S,
            retained: RATCHET_COUNT,
            enforce: false,
            scan_budget_milli: 2 * DEEP_SCANS_PER_S * 1000,
            scan_budget_at_ms: 0,
        }
    }

    /// The newest keys, tried on every packet.
    pub fn recent(&self) -> &[[u8; 32]] {
        &self.keys[..self.keys.len().min(RECENT_RATCHETS)]
    }

    /// The older keys, tried within the scan budget ([`Ratchets::allow_deep_scan`]).
    pub fn older(&self) -> &[[u8; 32]] {
        &self.keys[self.keys.len().min(RECENT_RATCHETS)..]
    }

    /// Whether a packet no recent key opened may try the older ones at `now_ms` (a token
    /// bucket of [`DEEP_SCANS_PER_S`] per second, burst twice that); spends one if so.
    pub fn allow_deep_scan(&mut self, now_ms: u64) -> bool {
        let cap = 2 * DEEP_SCANS_PER_S * 1000;
        let elapsed = now_ms.saturating_sub(self.scan_budget_at_ms);
        self.scan_budget_at_ms = self.scan_budget_at_ms.max(now_ms);
        self.scan_budget_milli = self
            .scan_budget_milli
            .saturating_add(elapsed.saturating_mul(DEEP_SCANS_PER_S))
            .min(cap);
        if self.scan_budget_milli >= 1000 {
            self.scan_budget_milli -= 1000;
            true
        } else {
            false
        }
    }

    /// Make a new key if the newest is older than the interval (or there is none); whether
    /// one was made (the caller then stores [`Ratchets::to_file`]).
    pub fn rotate_if_due(&mut self, rng: &mut dyn CryptoRngCore, now_s: u64) -> bool {
        let due = match self.latest_rotation_s {
            Some(t) => self.keys.is_empty() || now_s > t.saturating_add(self.interval_s),
            None => true,
        };
        if due {
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            self.keys.insert(0, key);
            self.keys.truncate(self.retained);
            self.latest_rotation_s = Some(now_s);
        }
        due
    }

    /// The public key of the newest ratchet: what announces carry.
    pub fn current_public(&self) -> Option<[u8; 32]> {
        self.keys.first().map(crate::identity::ratchet_public)
    }

    /// The private keys, newest first.
    pub fn keys(&self) -> &[[u8; 32]] {
        &self.keys
    }

    /// Whether packets must use a ratchet (RNS: `enforce_ratchets()`).
    pub fn enforced(&self) -> bool {
        self.enforce
    }

    /// Refuse packets encrypted to the identity key (RNS: `enforce_ratchets()`).
    pub fn set_enforced(&mut self, enforce: bool) {
        self.enforce = enforce;
    }

    /// Seconds between rotations (RNS: `set_ratchet_interval`), at least one.
    pub fn set_interval(&mut self, seconds: u64) {
        self.interval_s = seconds.max(1);
    }

    /// How many keys to keep (RNS: `set_retained_ratchets`), 1 to [`MAX_RATCHETS`].
    pub fn set_retained(&mut self, count: usize) {
        self.retained = count.clamp(1, MAX_RATCHETS);
        self.keys.truncate(self.retained);
    }

    /// The ratchet file RNS writes: `{"signature": sig, "ratchets": packed}`, `packed`
    /// the msgpack list of keys and `sig` the destination identity's signature over it.
    pub fn to_file(&self, identity: &Identity) -> Vec<u8> {
        let list = Value::Array(self.keys.iter().map(|k| Value::from(&k[..])).collect());
        let packed = encode(&list);
        let map = Value::Map(vec![
            (
                Value::from("signature"),
                Value::from(&identity.sign(&packed)[..]),
            ),
            (Value::from("ratchets"), Value::from(packed)),
        ]);
        encode(&map)
    }

    /// The keys in a ratchet file, after checking its signature against `identity`.
    pub fn from_file(
        identity: &PublicIdentity,
        bytes: &[u8],
    ) -> Result<Vec<[u8; 32]>, RatchetFileError> {
        let map = decode(bytes).ok_or(RatchetFileError::Format("not msgpack"))?;
        let field = |name: &str| match &map {
            Value::Map(m) => m.iter().find_map(|(k, v)| match (k.as_str(), v) {
                (Some(k), Value::Binary(b)) if k == name => Some(b.as_slice()),
                _ => None,
            }),
            _ => None,
        };
        let (Some(signature), Some(packed)) = (field("signature"), field("ratchets")) else {
            return Err(RatchetFileError::Format("no signature and ratchets"));
        };
        identity
            .verify(packed, signature)
            .map_err(|_: IdentityError| RatchetFileError::Signature)?;
        let Some(Value::Array(list)) = decode(packed) else {
            return Err(RatchetFileError::Format("the ratchets are not a list"));
        };
        if list.len() > MAX_RATCHETS {
            return Err(RatchetFileError::TooMany(list.len()));
        }
        list.iter()
            .map(|v| match v {
                Value::Binary(b) => <[u8; 32]>::try_from(b.as_slice())
                    .map_err(|_| RatchetFileError::Format("a key is not 32 bytes")),
                _ => Err(RatchetFileError::Format("a key is not bytes")),
            })
            .collect()
    }
}

fn encode(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).expect("writing to a Vec cannot fail");
    out
}

/// One msgpack value filling all of `bytes`, within the decoder's depth limit.
fn decode(mut bytes: &[u8]) -> Option<Value> {
    let v = rmpv::decode::read_value(&mut bytes).ok()?;
    bytes.is_empty().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn rotation_follows_the_interval_and_keeps_the_newest() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut r = Ratchets::new(Vec::new());
        assert!(r.current_public().is_none());
        assert!(r.rotate_if_due(&mut rng, 1_000));
        let first = r.keys()[0];
        assert!(!r.rotate_if_due(&mut rng, 1_000 + RATCHET_INTERVAL_S));
        assert!(r.rotate_if_due(&mut rng, 1_001 + RATCHET_INTERVAL_S));
        assert_eq!(r.keys().len(), 2);
        assert_eq!(r.keys()[1], first);
        assert_eq!(
            r.current_public(),
            Some(crate::identity::ratchet_public(&r.keys()[0]))
        );
        r.set_retained(1);
        assert_eq!(r.keys().len(), 1);
        // Loaded keys rotate at the next announce, as in RNS.
        let mut loaded = Ratchets::new(vec![first]);
        assert!(loaded.rotate_if_due(&mut rng, 5));
    }

    /// A ratchet file as RNS 1.5.7 writes it (`Destination._persist_ratchets`) for the
    /// keys 0..32 and 32..64, signed by the test identity of `identity.rs`.
    const RNS_FILE: &str = "82a97369676e6174757265c440827b58b4bf5aee3f16b0812503c0e849c4c6280eeef3f20e95f0b953b783cb10facabfaa4050c31973af8a70d2d67c0d0d0c6f5a44c005b335557c1e99a93402a87261746368657473c44592c420000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fc420202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";
    const KEY: &str = "c8ef46f46b6b401fa0c38abce5bd2f1ccb57395b7d48847089081ad5bd95d2538d7f4c6d015bb50be2f3fc67c4d370538c443507665fc4c9ff7d8cba0d3a74ca";

    #[test]
    fn vector_rns_ratchet_file_reads_and_is_written_byte_for_byte() {
        let id = Identity::from_private_bytes(&hex::decode(KEY).unwrap()).unwrap();
        let keys: Vec<[u8; 32]> = vec![
            std::array::from_fn(|i| i as u8),
            std::array::from_fn(|i| 32 + i as u8),
        ];
        let file = hex::decode(RNS_FILE).unwrap();
        assert_eq!(Ratchets::from_file(id.public(), &file).unwrap(), keys);
        assert_eq!(hex::encode(Ratchets::new(keys).to_file(&id)), RNS_FILE);
    }

    #[test]
    fn the_file_round_trips_and_rejects_another_identity_or_tampering() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let id = Identity::generate(&mut rng);
        let mut r = Ratchets::new(Vec::new());
        for t in 0..3 {
            r.rotate_if_due(&mut rng, 10_000 * (t + 1));
        }
        let file = r.to_file(&id);
        assert_eq!(Ratchets::from_file(id.public(), &file).unwrap(), r.keys());
        let other = Identity::generate(&mut rng);
        assert_eq!(
            Ratchets::from_file(other.public(), &file),
            Err(RatchetFileError::Signature)
        );
        let mut changed = file.clone();
        let n = changed.len();
        changed[n - 1] ^= 1;
        assert_eq!(
            Ratchets::from_file(id.public(), &changed),
            Err(RatchetFileError::Signature)
        );
        assert!(matches!(
            Ratchets::from_file(id.public(), b"\x92\x01"),
            Err(RatchetFileError::Format(_))
        ));
        assert!(Ratchets::from_file(id.public(), &[]).is_err());
    }
}
