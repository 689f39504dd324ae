//! Keys and contacts in the DHT's id space: 128-bit ids (the same width as Reticulum's
//! identity hashes), XOR distance, and the contact a node is reached by.

use rns_core::hash::truncated_hash;
use rns_core::AddressHash;

/// Bytes in a key.
pub const KEY_LEN: usize = 16;
/// Bits in a key, and so buckets in a routing table.
pub const KEY_BITS: usize = KEY_LEN * 8;
/// Bytes of a public key (`X25519 ‖ Ed25519`), which a contact travels as.
pub const PUBLIC_LEN: usize = 64;

/// A point in the id space: a node's identity hash, or a record's key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Key(pub [u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", hex::encode(&self.0[..4]))
    }
}

impl Key {
    /// The key of a node: its identity hash.
    pub fn of_identity(identity: AddressHash) -> Key {
        Key(identity.0)
    }

    /// The key content is found under: the first 16 bytes of its SHA-256 (an adapter
    /// package's content hash, say).
    pub fn of_content(sha256: &[u8; 32]) -> Key {
        let mut k = [0; KEY_LEN];
        k.copy_from_slice(&sha256[..KEY_LEN]);
        Key(k)
    }

    /// The key of a topic (a skill category): who provides something under it.
    pub fn of_topic(topic: &str) -> Key {
        Key(truncated_hash(&[b"grid.topic:", topic.as_bytes()].concat()).0)
    }

    /// The XOR distance to `other`.
    pub fn distance(&self, other: &Key) -> Distance {
        let mut d = [0; KEY_LEN];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// A key in `bucket` of this key's table: it shares the first `KEY_BITS - 1 - bucket`
    /// bits, then differs; the rest comes from `random`.
    pub fn in_bucket(&self, bucket: usize, random: [u8; KEY_LEN]) -> Key {
        let bucket = bucket.min(KEY_BITS - 1);
        let shared = KEY_BITS - 1 - bucket; // bits equal to ours
        let mut k = random;
        for bit in 0..=shared {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let ours = self.0[byte] & mask;
            let want = if bit == shared { ours ^ mask } else { ours };
            k[byte] = (k[byte] & !mask) | want;
        }
        Key(k)
    }
}

/// Why text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a DHT key: give topic:<name>, a 64-hex content hash or a 32-hex key")]
pub struct ParseKeyError(pub String);

impl std::str::FromStr for Key {
    type Err = ParseKeyError;

    /// `topic:<name>` ([`Key::of_topic`]), 64 hex characters (a content hash,
    /// [`Key::of_content`]) or 32 (a key as it is).
    fn from_str(s: &str) -> Result<Key, ParseKeyError> {
        if let Some(topic) = s.strip_prefix("topic:") {
            if !topic.is_empty() {
                return Ok(Key::of_topic(topic));
            }
        }
        let bad = || ParseKeyError(s.to_string());
        let bytes = hex::decode(s).map_err(|_| bad())?;
        match bytes.len() {
            32 => Ok(Key::of_content(&bytes.try_into().map_err(|_| bad())?)),
            KEY_LEN => Ok(Key(bytes.try_into().map_err(|_| bad())?)),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// An XOR distance; compares as a big-endian number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Distance(pub [u8; KEY_LEN]);

impl Distance {
    /// The routing-table bucket of a key at this distance: the index of the highest set
    /// bit (0 for the nearest half-bit, `KEY_BITS - 1` for the farthest half of the
    /// space); `None` for distance zero (the key itself).
    pub fn bucket(&self) -> Option<usize> {
        let mut zeros = 0;
        for b in self.0 {
            if b == 0 {
                zeros += 8;
            } else {
                zeros += b.leading_zeros() as usize;
                return Some(KEY_BITS - 1 - zeros);
            }
        }
        None
    }
}

/// How a node is reached: its public key, from which its id is computed (never taken
/// from the wire: an id is bound to the identity that can answer for it).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Contact {
    /// The node's id: its identity hash.
    pub id: Key,
    /// Its public key.
    pub public: [u8; PUBLIC_LEN],
}

impl std::fmt::Debug for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Contact({})", hex::encode(&self.id.0[..4]))
    }
}

impl Contact {
    /// The contact of the identity with this public key.
    pub fn from_public(public: [u8; PUBLIC_LEN]) -> Contact {
        Contact {
            id: Key(truncated_hash(&public).0),
            public,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_highest_differing_bit() {
        let a = Key([0; KEY_LEN]);
        let mut b = a;
        b.0[KEY_LEN - 1] = 1;
        assert_eq!(a.distance(&b).bucket(), Some(0));
        let mut c = a;
        c.0[0] = 0x80;
        assert_eq!(a.distance(&c).bucket(), Some(KEY_BITS - 1));
        assert_eq!(a.distance(&a).bucket(), None);
        // Distances order as numbers.
        assert!(a.distance(&b) < a.distance(&c));
    }

    #[test]
    fn a_key_made_for_a_bucket_lands_in_it() {
        let own = Key::of_topic("own");
        for bucket in [0, 1, 7, 8, 63, 100, KEY_BITS - 1] {
            for seed in 0..8u8 {
                let k = own.in_bucket(bucket, [seed.wrapping_mul(37); KEY_LEN]);
                assert_eq!(own.distance(&k).bucket(), Some(bucket), "bucket {bucket}");
            }
        }
    }

    #[test]
    fn keys_parse_from_topics_and_hashes() {
        assert_eq!("topic:chat".parse(), Ok(Key::of_topic("chat")));
        let h = [0xab; 32];
        assert_eq!(hex::encode(h).parse(), Ok(Key::of_content(&h)));
        assert_eq!(hex::encode([1; 16]).parse(), Ok(Key([1; 16])));
        assert_eq!(Key([1; 16]).to_string(), hex::encode([1; 16]));
        for bad in ["", "topic:", "abc", "zz", &hex::encode([1; 20])] {
            assert!(bad.parse::<Key>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_contact_id_is_the_identity_hash_of_its_key() {
        let id = rns_core::Identity::from_private_bytes(&[7; 64]).unwrap();
        let c = Contact::from_public(*id.public().as_bytes());
        assert_eq!(c.id, Key::of_identity(id.hash()));
    }
}
