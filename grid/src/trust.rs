//! Trust levels per identity, and the word codes people read aloud when pairing nodes.
//!
//! Every remote caller is known by its RNS identity hash. The node keeps one
//! [`TrustLevel`] per identity it has been told about in `trust.json` in the state
//! directory ([`TRUST_FILE`]); identities it has never heard of get a configurable default
//! ([`TrustLevel::Provisional`] unless the node says otherwise), and the node's own
//! identity is always [`TrustLevel::Owner`]. The ACL ([`crate::acl`]) turns a level into
//! what the caller may run.
//!
//! `trust.json` is small, human-readable and rewritten atomically on every change, so a
//! crash leaves either the old or the new file, never half of one:
//!
//! ```json
//! {
//!   "version": 1,
//!   "entries": {
//!     "6b9f66014d9853faab220fba47d02761": "trusted"
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand_core::RngCore;
use rns_core::AddressHash;
use serde::{Deserialize, Serialize};

use crate::state::{write_atomic, StateError};

/// The trust file's name inside the state directory.
pub const TRUST_FILE: &str = "trust.json";
/// The trust file format this node reads and writes.
pub const TRUST_FILE_VERSION: u32 = 1;
/// The most identities the store keeps, so a flood of `set` calls cannot grow it without
/// bound.
pub const MAX_ENTRIES: usize = 100_000;
/// The largest trust file accepted on load (a full store is about 6 MB).
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// How far a node trusts an identity, lowest first: the order is meaningful, a caller
/// holding a level may do everything a lower level may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustLevel {
    /// Refused everything, whatever the ACL says.
    Blocked,
    /// Known to exist but not vouched for: read-only commands such as `grid/ping`.
    Provisional,
    /// Vouched for by the owner: may use this node's resources (training, inference).
    Trusted,
    /// The owner's own machines: may change the node (pairing, trust).
    Owner,
}

impl TrustLevel {
    /// Every level, lowest first.
    pub const ALL: [TrustLevel; 4] = [
        TrustLevel::Blocked,
        TrustLevel::Provisional,
        TrustLevel::Trusted,
        TrustLevel::Owner,
    ];

    /// The stable lower-case name used in files, config and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::Blocked => "blocked",
            TrustLevel::Provisional => "provisional",
            TrustLevel::Trusted => "trusted",
            TrustLevel::Owner => "owner",
        }
    }
}

impl fmt::Display for TrustLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not a trust level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trust level \"{0}\" (expected blocked, provisional, trusted or owner)")]
pub struct ParseTrustLevelError(pub String);

impl FromStr for TrustLevel {
    type Err = ParseTrustLevelError;

    /// Parse a level name, ignoring case and surrounding spaces.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        TrustLevel::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| {
                // Echo at most a short prefix of what was given: the input may be hostile.
                ParseTrustLevelError(t.chars().take(32).collect())
            })
    }
}

/// Why the trust store could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The trust file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The trust file is not a valid trust file; `key` is the entry at fault (`-` for the
    /// file as a whole), as config errors name theirs.
    #[error("{path}: {key}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The key at fault (`entries.<hash>`, `version`, or `-`).
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The store already holds [`MAX_ENTRIES`] identities.
    #[error("the trust store is full ({MAX_ENTRIES} identities); remove some first")]
    Full,
    /// The node's own identity is always owner and cannot be given another level.
    #[error("{0} is this node's own identity, which is always owner")]
    OwnIdentity(AddressHash),
    /// The new trust file could not be written; the store is unchanged.
    #[error(transparent)]
    Write(#[from] StateError),
}

/// The file as stored.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustFileRepr {
    version: u32,
    #[serde(default)]
    entries: BTreeMap<String, String>,
}

/// Trust levels per identity, persisted in [`TRUST_FILE`].
///
/// Changes are written to disk before they take effect in memory, so what the node
/// enforces is always what a restart would load.
#[derive(Debug, Clone)]
pub struct TrustStore {
    path: PathBuf,
    entries: BTreeMap<AddressHash, TrustLevel>,
    default_level: TrustLevel,
    own: Option<AddressHash>,
}

impl TrustStore {
    /// Load the store from `path` (normally `<state dir>/trust.json`). A missing file is
    /// an empty store; a file that is unreadable, too large, malformed or holds more than
    /// [`MAX_ENTRIES`] identities is an error naming the file and the key at fault.
    pub fn load(path: &Path) -> Result<TrustStore, TrustError> {
        let mut store = TrustStore {
            path: path.to_path_buf(),
            entries: BTreeMap::new(),
            default_level: TrustLevel::Provisional,
            own: None,
        };
        let io = |source| TrustError::Io {
            path: path.to_path_buf(),
            source,
        };
        let corrupt = |key: &str, reason: String| TrustError::Corrupt {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(store),
            Err(e) => return Err(io(e)),
        };
        let mut text = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(io)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(corrupt("-", format!("larger than {MAX_FILE_BYTES} bytes")));
        }
        let repr: TrustFileRepr = serde_json::from_slice(&text)
            .map_err(|e| corrupt("-", format!("not a trust file: {e}")))?;
        if repr.version != TRUST_FILE_VERSION {
            return Err(corrupt(
                "version",
                format!(
                    "unsupported version {} (this node reads {TRUST_FILE_VERSION})",
                    repr.version
                ),
            ));
        }
        if repr.entries.len() > MAX_ENTRIES {
            return Err(corrupt(
                "entries",
                format!("more than {MAX_ENTRIES} identities"),
            ));
        }
        for (k, v) in &repr.entries {
            let key = || format!("entries.{}", k.chars().take(40).collect::<String>());
            let hash: AddressHash = k
                .parse()
                .map_err(|e| corrupt(&key(), format!("not an identity hash: {e}")))?;
            let level: TrustLevel = v.parse().map_err(|e| corrupt(&key(), format!("{e}")))?;
            if store.entries.insert(hash, level).is_some() {
                return Err(corrupt(&key(), "listed twice".to_string()));
            }
        }
        Ok(store)
    }

    /// The file this store persists to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tell the store the node's own identity, which is then always [`TrustLevel::Owner`].
    pub fn set_own_identity(&mut self, own: AddressHash) {
        self.own = Some(own);
    }

    /// The level identities without an entry get.
    pub fn default_level(&self) -> TrustLevel {
        self.default_level
    }

    /// Change the level identities without an entry get (not persisted: it comes from the
    /// node's configuration).
    pub fn set_default_level(&mut self, level: TrustLevel) {
        self.default_level = level;
    }

    /// The level `id` holds: owner for the node itself, its entry if it has one, else the
    /// default.
    pub fn level(&self, id: &AddressHash) -> TrustLevel {
        if self.own.as_ref() == Some(id) {
            return TrustLevel::Owner;
        }
        self.entries.get(id).copied().unwrap_or(self.default_level)
    }

    /// The level explicitly recorded for `id`, if any.
    pub fn get(&self, id: &AddressHash) -> Option<TrustLevel> {
        self.entries.get(id).copied()
    }

    /// Record `level` for `id` and persist the store. The node's own identity can only be
    /// "set" to owner (a no-op); a new identity beyond [`MAX_ENTRIES`] is refused. On a
    /// write error nothing changes.
    pub fn set(&mut self, id: AddressHash, level: TrustLevel) -> Result<(), TrustError> {
        if self.own == Some(id) {
            return match level {
                TrustLevel::Owner => Ok(()),
                _ => Err(TrustError::OwnIdentity(id)),
            };
        }
        match self.entries.get(&id) {
            Some(&old) if old == level => return Ok(()),
            None if self.entries.len() >= MAX_ENTRIES => return Err(TrustError::Full),
            _ => {}
        }
        let old = self.entries.insert(id, level);
        if let Err(e) = self.save() {
            match old {
                Some(o) => self.entries.insert(id, o),
                None => self.entries.remove(&id),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Forget `id` (it falls back to the default level) and persist the store. Returns the
    /// level it had. On a write error nothing changes.
    pub fn remove(&mut self, id: &AddressHash) -> Result<Option<TrustLevel>, TrustError> {
        let Some(old) = self.entries.remove(id) else {
            return Ok(None);
        };
        if let Err(e) = self.save() {
            self.entries.insert(*id, old);
            return Err(e);
        }
        Ok(Some(old))
    }

    /// Every recorded identity and its level, ordered by hash.
    pub fn list(&self) -> impl Iterator<Item = (AddressHash, TrustLevel)> + '_ {
        self.entries.iter().map(|(h, l)| (*h, *l))
    }

    /// How many identities are recorded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no identity is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Write the store to its file atomically (mode 0600: it says whom the node obeys).
    fn save(&self) -> Result<(), TrustError> {
        let repr = TrustFileRepr {
            version: TRUST_FILE_VERSION,
            entries: self
                .entries
                .iter()
                .map(|(h, l)| (h.to_hex(), l.as_str().to_string()))
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&repr).map_err(|e| TrustError::Corrupt {
            path: self.path.clone(),
            key: "-".to_string(),
            reason: format!("could not encode: {e}"),
        })?;
        bytes.push(b'\n');
        write_atomic(&self.path, &bytes, 0o600)?;
        Ok(())
    }
}

/// The words of a pairing code: 256 short, common, concrete English words, one per byte
/// value, sorted so a word's index is found by binary search. Homophones and
/// hard-to-spell words are left out so a code survives being read aloud.
pub const PAIRING_WORDS: [&str; 256] = [
    "actor", "air", "album", "angle", "apple", "arch", "arm", "army", "arrow", "atom", "baby",
    "bacon", "badge", "bag", "baker", "ball", "bank", "barn", "beach", "bed", "bell", "belt",
    "bench", "berry", "bike", "bird", "blade", "block", "boat", "bone", "book", "boot", "bowl",
    "box", "brain", "bread", "brick", "broom", "brush", "bus", "cabin", "cable", "cake", "camel",
    "camp", "candy", "canoe", "cape", "card", "cat", "cave", "chair", "chalk", "child", "city",
    "clay", "cliff", "clock", "cloud", "clown", "coach", "coast", "coat", "coin", "corn", "couch",
    "cow", "crab", "cream", "crown", "cube", "cup", "daisy", "dance", "desk", "dice", "dog",
    "doll", "door", "dove", "dream", "dress", "drum", "duck", "dust", "eagle", "earth", "echo",
    "egg", "face", "farm", "fence", "fern", "field", "fire", "fish", "flag", "flame", "flute",
    "foam", "fog", "fork", "fox", "frog", "fruit", "game", "gate", "gem", "ghost", "giant", "gift",
    "glass", "glove", "goat", "gold", "grape", "grass", "hand", "harp", "hat", "hawk", "heart",
    "hedge", "hero", "hill", "honey", "hook", "horse", "hotel", "house", "ice", "ink", "iron",
    "ivy", "jar", "jazz", "jewel", "juice", "key", "king", "kite", "kiwi", "knee", "knife", "lake",
    "lamp", "leaf", "lemon", "lily", "lime", "lion", "lock", "log", "lunch", "mango", "map",
    "mask", "melon", "metal", "milk", "mint", "moon", "mouse", "mud", "music", "nail", "nest",
    "net", "night", "north", "nut", "oak", "ocean", "olive", "onion", "oven", "owl", "page",
    "paint", "palm", "paper", "party", "pasta", "peach", "pearl", "piano", "pie", "pilot", "pine",
    "pizza", "plant", "plate", "pony", "queen", "radio", "rain", "rice", "river", "robin", "robot",
    "rock", "roof", "rope", "ruby", "ruler", "salad", "salt", "sand", "scarf", "shark", "sheep",
    "shell", "ship", "shoe", "sky", "sled", "snail", "snake", "snow", "soap", "sock", "sofa",
    "soup", "spoon", "star", "stone", "storm", "sugar", "swan", "sword", "table", "tent", "tiger",
    "toast", "tooth", "torch", "tower", "toy", "train", "tree", "truck", "vase", "wagon", "wall",
    "water", "whale", "wheat", "wheel", "wing", "wolf", "wool", "worm", "yard", "yarn", "zebra",
    "zero",
];

/// Words in a pairing code (4 words of 8 bits each: 32 bits).
pub const PAIRING_CODE_WORDS: usize = 4;
/// The longest text [`parse_pairing_code`] looks at; four words and separators fit in far
/// less.
const MAX_PAIRING_TEXT: usize = 256;

/// A fresh pairing code: four words from [`PAIRING_WORDS`] joined by `-`
/// (`"river-salt-owl-piano"`), 32 random bits from `rng`. People compare or type it on
/// both nodes to confirm they are pairing with each other.
pub fn pairing_code<R: RngCore + ?Sized>(rng: &mut R) -> String {
    let mut bytes = [0u8; PAIRING_CODE_WORDS];
    rng.fill_bytes(&mut bytes);
    pairing_code_from_bytes(bytes)
}

/// The pairing code for four given bytes (the inverse of [`parse_pairing_code`]).
pub fn pairing_code_from_bytes(bytes: [u8; PAIRING_CODE_WORDS]) -> String {
    bytes
        .iter()
        .map(|&b| PAIRING_WORDS[usize::from(b)])
        .collect::<Vec<_>>()
        .join("-")
}

/// Read a pairing code back into its four bytes, accepting any case and any mix of
/// spaces and hyphens between words (`"River salt - OWL  piano"`). `None` unless it is
/// exactly four known words.
pub fn parse_pairing_code(text: &str) -> Option<[u8; PAIRING_CODE_WORDS]> {
    if text.len() > MAX_PAIRING_TEXT {
        return None;
    }
    let mut out = [0u8; PAIRING_CODE_WORDS];
    let mut n = 0;
    for word in text
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty())
    {
        let slot = out.get_mut(n)?;
        let lower = word.to_ascii_lowercase();
        let index = PAIRING_WORDS.binary_search(&lower.as_str()).ok()?;
        *slot = u8::try_from(index).ok()?;
        n += 1;
    }
    (n == PAIRING_CODE_WORDS).then_some(out)
}

/// The grid layer reads levels from the store.
impl crate::proto::layer::TrustLevels for TrustStore {
    fn level(&self, id: &AddressHash) -> TrustLevel {
        TrustStore::level(self, id)
    }

    fn default_level(&self) -> TrustLevel {
        TrustStore::default_level(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::TempDir;

    fn hash(n: u8) -> AddressHash {
        AddressHash([n; 16])
    }

    #[test]
    fn levels_are_ordered_named_and_parsed() {
        assert!(TrustLevel::Blocked < TrustLevel::Provisional);
        assert!(TrustLevel::Provisional < TrustLevel::Trusted);
        assert!(TrustLevel::Trusted < TrustLevel::Owner);
        for l in TrustLevel::ALL {
            assert_eq!(l.to_string().parse::<TrustLevel>(), Ok(l));
            assert_eq!(
                serde_json::to_string(&l).unwrap(),
                format!("\"{}\"", l.as_str())
            );
        }
        assert_eq!(" Trusted ".parse(), Ok(TrustLevel::Trusted));
        assert_eq!("OWNER".parse(), Ok(TrustLevel::Owner));
        let e = "admin".parse::<TrustLevel>().unwrap_err().to_string();
        assert!(e.contains("\"admin\""), "{e}");
        for l in TrustLevel::ALL {
            assert!(e.contains(l.as_str()), "{e} lists {l}");
        }
        let long = "x".repeat(10_000).parse::<TrustLevel>().unwrap_err();
        assert!(long.0.len() <= 32);
        assert_eq!(
            serde_json::from_str::<TrustLevel>("\"provisional\"").unwrap(),
            TrustLevel::Provisional
        );
    }

    #[test]
    fn set_persists_and_reloads() {
        let dir = TempDir::new("trust-persist");
        let path = dir.0.join(TRUST_FILE);
        let mut s = TrustStore::load(&path).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.level(&hash(1)), TrustLevel::Provisional);
        s.set(hash(1), TrustLevel::Trusted).unwrap();
        s.set(hash(2), TrustLevel::Blocked).unwrap();
        s.set(hash(3), TrustLevel::Owner).unwrap();
        s.set(hash(3), TrustLevel::Owner).unwrap();
        assert!(path.exists());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"01010101010101010101010101010101\": \"trusted\""));

        let mut r = TrustStore::load(&path).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r.level(&hash(1)), TrustLevel::Trusted);
        assert_eq!(r.level(&hash(2)), TrustLevel::Blocked);
        assert_eq!(r.get(&hash(9)), None);
        assert_eq!(
            r.list().collect::<Vec<_>>(),
            vec![
                (hash(1), TrustLevel::Trusted),
                (hash(2), TrustLevel::Blocked),
                (hash(3), TrustLevel::Owner)
            ]
        );
        assert_eq!(r.remove(&hash(2)).unwrap(), Some(TrustLevel::Blocked));
        assert_eq!(r.remove(&hash(2)).unwrap(), None);
        assert_eq!(TrustStore::load(&path).unwrap().len(), 2);
    }

    #[test]
    fn default_and_own_identity() {
        let dir = TempDir::new("trust-own");
        let mut s = TrustStore::load(&dir.0.join(TRUST_FILE)).unwrap();
        s.set_default_level(TrustLevel::Blocked);
        assert_eq!(s.default_level(), TrustLevel::Blocked);
        assert_eq!(s.level(&hash(7)), TrustLevel::Blocked);
        s.set_own_identity(hash(7));
        assert_eq!(s.level(&hash(7)), TrustLevel::Owner);
        assert!(matches!(
            s.set(hash(7), TrustLevel::Blocked),
            Err(TrustError::OwnIdentity(_))
        ));
        s.set(hash(7), TrustLevel::Owner).unwrap();
        assert_eq!(s.level(&hash(7)), TrustLevel::Owner);
        assert!(s.is_empty(), "own identity is not stored");
    }

    #[test]
    fn corrupt_files_are_errors_naming_file_and_key() {
        let dir = TempDir::new("trust-corrupt");
        let path = dir.0.join(TRUST_FILE);
        let cases: [(&[u8], &str); 7] = [
            (b"{not json", "-"),
            (b"\xff\xfe", "-"),
            (b"[1,2]", "-"),
            (br#"{"version": 2, "entries": {}}"#, "version"),
            (
                br#"{"version": 1, "entries": {"zz": "trusted"}}"#,
                "entries.zz",
            ),
            (
                br#"{"version": 1, "entries": {"01010101010101010101010101010101": "root"}}"#,
                "entries.01010101010101010101010101010101",
            ),
            (
                br#"{"version": 1, "entries": {"01010101010101010101010101010101": "owner",
                     "01010101010101010101010101010101 ": "owner"}}"#,
                "entries.01010101010101010101010101010101 ",
            ),
        ];
        for (text, want_key) in cases {
            std::fs::write(&path, text).unwrap();
            match TrustStore::load(&path) {
                Err(e @ TrustError::Corrupt { .. }) => {
                    let TrustError::Corrupt { key, .. } = &e else {
                        unreachable!()
                    };
                    assert_eq!(key, want_key);
                    assert!(e.to_string().contains(TRUST_FILE), "{e}");
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(text)),
            }
        }
        std::fs::write(&path, br#"{"version": 1}"#).unwrap();
        assert!(TrustStore::load(&path).unwrap().is_empty());
    }

    #[test]
    fn the_store_is_bounded() {
        let dir = TempDir::new("trust-bounded");
        let path = dir.0.join(TRUST_FILE);
        let write = |n: usize| {
            let entries: BTreeMap<String, String> = (0..n)
                .map(|i| {
                    let mut h = [0u8; 16];
                    h[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    (hex::encode(h), "trusted".to_string())
                })
                .collect();
            let repr = TrustFileRepr {
                version: TRUST_FILE_VERSION,
                entries,
            };
            std::fs::write(&path, serde_json::to_vec(&repr).unwrap()).unwrap();
        };
        write(MAX_ENTRIES + 1);
        assert!(matches!(
            TrustStore::load(&path),
            Err(TrustError::Corrupt { key, .. }) if key == "entries"
        ));
        write(MAX_ENTRIES);
        let mut s = TrustStore::load(&path).unwrap();
        assert_eq!(s.len(), MAX_ENTRIES);
        assert!(matches!(
            s.set(hash(0xee), TrustLevel::Trusted),
            Err(TrustError::Full)
        ));
        // Changing an existing entry is still allowed.
        let first = s.list().next().unwrap().0;
        s.set(first, TrustLevel::Blocked).unwrap();
        assert_eq!(s.level(&first), TrustLevel::Blocked);
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = TempDir::new("trust-failwrite");
        let path = dir.0.join("missing-dir").join(TRUST_FILE);
        let mut s = TrustStore::load(&path).unwrap();
        assert!(matches!(
            s.set(hash(1), TrustLevel::Trusted),
            Err(TrustError::Write(_))
        ));
        assert_eq!(s.get(&hash(1)), None);
        assert_eq!(s.level(&hash(1)), TrustLevel::Provisional);
    }

    #[test]
    fn the_word_list_is_sorted_unique_and_short() {
        assert!(PAIRING_WORDS.windows(2).all(|w| w[0] < w[1]));
        for w in PAIRING_WORDS {
            assert!((3..=5).contains(&w.len()), "{w}");
            assert!(w.bytes().all(|b| b.is_ascii_lowercase()), "{w}");
        }
    }

    #[test]
    fn pairing_codes_round_trip() {
        for b in 0..=255u8 {
            let bytes = [b, 255 - b, b ^ 0x55, b.wrapping_mul(7)];
            let code = pairing_code_from_bytes(bytes);
            assert_eq!(code.split('-').count(), 4);
            assert_eq!(parse_pairing_code(&code), Some(bytes));
        }
        let code = pairing_code(&mut rand_core::OsRng);
        assert!(parse_pairing_code(&code).is_some(), "{code}");
    }

    #[test]
    fn pairing_codes_parse_leniently_and_refuse_junk() {
        let want = parse_pairing_code("river-salt-owl-piano").unwrap();
        for text in [
            "River Salt OWL piano",
            "  river - salt -- owl\tpiano \n",
            "RIVER-SALT-OWL-PIANO",
        ] {
            assert_eq!(parse_pairing_code(text), Some(want), "{text:?}");
        }
        for text in [
            "",
            "river salt owl",
            "river salt owl piano river",
            "river salt owl pianos",
            "river_salt_owl_piano",
            "río salt owl piano",
            &"river ".repeat(100),
        ] {
            assert_eq!(parse_pairing_code(text), None, "{text:?}");
        }
    }
}
