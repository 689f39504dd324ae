//! The public keys of Grid nodes heard announcing, kept across restarts, so a node can
//! still seal a bundle to a peer that went offline before this node restarted (and a
//! custody node can still answer identity lookups for it).
//!
//! The file is a sequence of 80-byte records: the `grid.node` destination hash (16) and
//! the node's public key (64). Records are self-certifying — the destination is derived
//! from the key — so a damaged or forged record is simply skipped when loading. New nodes
//! are appended as they are first heard; at most [`MAX_KNOWN`] are kept.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rns_core::destination::hash_from_name;
use rns_core::identity::PublicIdentity;
use rns_core::AddressHash;

/// The file name in the state directory.
pub const KNOWN_NODES_FILE: &str = "known_nodes";
/// Most nodes remembered.
pub const MAX_KNOWN: usize = 10_000;
const RECORD: usize = 16 + 64;

/// Remembered node keys.
#[derive(Debug, Default)]
pub struct KnownNodes {
    path: PathBuf,
    nodes: HashMap<AddressHash, PublicIdentity>,
}

impl KnownNodes {
    /// Load `path` (missing: empty; bad records: skipped).
    pub fn load(path: &Path) -> KnownNodes {
        let mut nodes = HashMap::new();
        if let Ok(bytes) = std::fs::read(path) {
            for r in bytes.chunks_exact(RECORD).take(MAX_KNOWN) {
                let Ok(dest) = <[u8; 16]>::try_from(&r[..16]) else {
                    continue;
                };
                let Ok(id) = PublicIdentity::from_bytes(&r[16..]) else {
                    continue;
                };
                if hash_from_name("grid.node", Some(&id.hash())).0 == dest {
                    nodes.insert(AddressHash(dest), id);
                }
            }
        }
        KnownNodes {
            path: path.to_path_buf(),
            nodes,
        }
    }

    /// The key behind `node`, if it was heard.
    pub fn get(&self, node: &AddressHash) -> Option<&PublicIdentity> {
        self.nodes.get(node)
    }

    /// How many are known.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Remember `identity` as the node behind `node` (checked: it must derive `node`);
    /// appended to the file when new. Returns whether it was new.
    pub fn learn(&mut self, node: AddressHash, identity: &PublicIdentity) -> bool {
        if self.nodes.contains_key(&node)
            || self.nodes.len() >= MAX_KNOWN
            || hash_from_name("grid.node", Some(&identity.hash())) != node
        {
            return false;
        }
        self.nodes.insert(node, identity.clone());
        let mut record = Vec::with_capacity(RECORD);
        record.extend_from_slice(&node.0);
        record.extend_from_slice(identity.as_bytes());
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(&record));
        if let Err(e) = written {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remember a node's key");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rns_core::identity::Identity;

    #[test]
    fn keys_survive_a_reload_and_bad_records_are_skipped() {
        let dir = crate::test_util::TempDir::new("known", "nodes");
        let path = dir.0.join(KNOWN_NODES_FILE);
        let (a, b) = (
            Identity::generate(&mut rand_core::OsRng),
            Identity::generate(&mut rand_core::OsRng),
        );
        let node = |i: &Identity| hash_from_name("grid.node", Some(&i.hash()));
        let mut k = KnownNodes::load(&path);
        assert!(k.learn(node(&a), a.public()));
        assert!(!k.learn(node(&a), a.public()), "known already");
        assert!(
            !k.learn(node(&a), b.public()),
            "a key that does not derive the node"
        );
        assert!(k.learn(node(&b), b.public()));
        // A forged record (B's key under A's node) and a torn tail are skipped.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&node(&a).0).unwrap();
        f.write_all(b.public().as_bytes()).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let k = KnownNodes::load(&path);
        assert_eq!(k.len(), 2);
        assert_eq!(k.get(&node(&a)).map(|i| i.hash()), Some(a.hash()));
        assert_eq!(k.get(&node(&b)).map(|i| i.hash()), Some(b.hash()));
    }
}
