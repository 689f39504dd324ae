//! The public keys of Grid nodes heard announcing, kept across restarts, so a node can
//! still seal a bundle to a peer that went offline before this node restarted (and a
//! custody node can still answer identity lookups for it).
//!
//! The file is a sequence of 80-byte records: the `grid.node` destination hash (16) and
//! the node's public key (64). Records are self-certifying — the destination is derived
//! from the key — so a damaged or forged record is simply skipped when loading. New nodes
//! are appended as they are first heard; at most [`MAX_KNOWN`] are kept.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rns_core::destination::hash_from_name;
use rns_core::identity::PublicIdentity;
use rns_core::AddressHash;

/// The file name in the state directory.
pub const KNOWN_NODES_FILE: &str = "known_nodes";
/// Most nodes remembered; past this the file is compacted to the most recently learned
/// half, so announces from a crowd of made-up nodes cannot shut out real ones for good.
pub const MAX_KNOWN: usize = 10_000;
const RECORD: usize = 16 + 64;
/// Records waiting for the writer, at most (beyond this new nodes are remembered in
/// memory only until the next compaction).
const WRITE_QUEUE: usize = 1024;

/// What the writer thread does, in order.
enum Job {
    /// Append one record and fsync.
    Append([u8; RECORD]),
    /// Replace the file with these records (atomically).
    Rewrite(Vec<[u8; RECORD]>),
    /// Say when everything before this is done.
    Sync(mpsc::SyncSender<()>),
}

/// Remembered node keys. Loading repairs a torn tail (a record cut short by a crash) so
/// later appends stay aligned; appends and rewrites run on a writer thread, fsynced,
/// never on the caller's (the node loop's) thread.
#[derive(Debug)]
pub struct KnownNodes {
    path: PathBuf,
    nodes: HashMap<AddressHash, PublicIdentity>,
    /// Learned order, oldest first (for compaction).
    order: VecDeque<AddressHash>,
    writer: Option<mpsc::SyncSender<Job>>,
    /// An append did not fit the writer's queue: the whole file is rewritten when it
    /// has room (or at [`KnownNodes::flush`]).
    behind: bool,
}

impl Default for KnownNodes {
    fn default() -> Self {
        KnownNodes {
            path: PathBuf::new(),
            nodes: HashMap::new(),
            order: VecDeque::new(),
            writer: None,
            behind: false,
        }
    }
}

fn record(node: &AddressHash, identity: &PublicIdentity) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    r[..16].copy_from_slice(&node.0);
    r[16..].copy_from_slice(identity.as_bytes());
    r
}

/// The writer thread: performs each [`Job`] durably; errors are logged, not fatal.
fn writer(path: PathBuf, rx: mpsc::Receiver<Job>) {
    for w in rx {
        let r = match w {
            Job::Append(rec) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| {
                    f.write_all(&rec)?;
                    f.sync_data()
                }),
            Job::Rewrite(records) => {
                let bytes: Vec<u8> = records.concat();
                crate::state::write_atomic(&path, &bytes, 0o600)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }
            Job::Sync(done) => {
                let _ = done.send(());
                Ok(())
            }
        };
        if let Err(e) = r {
            tracing::warn!(path = %path.display(), error = %e, "cannot remember a node's key");
        }
    }
}

impl KnownNodes {
    /// Load `path` (missing: empty; bad records: skipped; a torn tail: cut off).
    pub fn load(path: &Path) -> KnownNodes {
        let mut nodes = HashMap::new();
        let mut order = VecDeque::new();
        if let Ok(bytes) = std::fs::read(path) {
            let whole = bytes.len() - bytes.len() % RECORD;
            if whole != bytes.len() {
                tracing::warn!(path = %path.display(), "known nodes: cutting off a torn record");
                let cut = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .and_then(|f| f.set_len(whole as u64).and_then(|()| f.sync_all()));
                if let Err(e) = cut {
                    tracing::warn!(path = %path.display(), error = %e, "known nodes: cannot repair");
                }
            }
            for r in bytes[..whole].chunks_exact(RECORD) {
                let Ok(dest) = <[u8; 16]>::try_from(&r[..16]) else {
                    continue;
                };
                let Ok(id) = PublicIdentity::from_bytes(&r[16..]) else {
                    continue;
                };
                let dest = AddressHash(dest);
                if hash_from_name("grid.node", Some(&id.hash())) == dest
                    && nodes.insert(dest, id).is_none()
                {
                    order.push_back(dest);
                }
            }
        }
        let (tx, rx) = mpsc::sync_channel(WRITE_QUEUE);
        let owned = path.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("known-nodes".into())
            .spawn(move || writer(owned, rx))
            .ok()
            .map(|_| tx);
        let mut k = KnownNodes {
            path: path.to_path_buf(),
            nodes,
            order,
            writer,
            behind: false,
        };
        if k.nodes.len() > MAX_KNOWN {
            k.compact();
        }
        k
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
    /// written to the file when new (by the writer thread). Returns whether it was new.
    pub fn learn(&mut self, node: AddressHash, identity: &PublicIdentity) -> bool {
        if self.nodes.contains_key(&node)
            || hash_from_name("grid.node", Some(&identity.hash())) != node
        {
            return false;
        }
        self.nodes.insert(node, identity.clone());
        self.order.push_back(node);
        if self.nodes.len() > MAX_KNOWN {
            self.compact();
        } else if let Some(w) = &self.writer {
            if self.behind {
                // Catch up: the whole file, which holds this one too.
                self.behind = w.try_send(Job::Rewrite(self.records())).is_err();
            } else if w.try_send(Job::Append(record(&node, identity))).is_err() {
                tracing::debug!(path = %self.path.display(), "known nodes: writer busy; rewriting later");
                self.behind = true;
            }
        }
        true
    }

    /// Every known node's record, oldest first.
    fn records(&self) -> Vec<[u8; RECORD]> {
        self.order
            .iter()
            .filter_map(|n| self.nodes.get(n).map(|id| record(n, id)))
            .collect()
    }

    /// Keep the most recently learned half and rewrite the file with it.
    fn compact(&mut self) {
        while self.order.len() > MAX_KNOWN / 2 {
            if let Some(old) = self.order.pop_front() {
                self.nodes.remove(&old);
            }
        }
        let records = self.records();
        if let Some(w) = &self.writer {
            // A rewrite must not be lost: wait for room.
            self.behind = w.send(Job::Rewrite(records)).is_err();
        }
    }

    /// Wait until everything learned so far is on disk.
    pub fn flush(&mut self) {
        let Some(w) = &self.writer else { return };
        if self.behind {
            self.behind = w.send(Job::Rewrite(self.records())).is_err();
        }
        let (tx, rx) = mpsc::sync_channel(1);
        if w.send(Job::Sync(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rns_core::identity::Identity;

    #[test]
    fn keys_survive_a_reload_and_bad_records_are_skipped() {
        let dir = crate::test_util::TempDir::new("known-nodes");
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
        k.flush();
        // A forged record (B's key under A's node) and a torn tail are skipped.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&node(&a).0).unwrap();
        f.write_all(b.public().as_bytes()).unwrap();
        f.write_all(&[1, 2, 3]).unwrap();
        let mut k = KnownNodes::load(&path);
        assert_eq!(k.len(), 2);
        assert_eq!(k.get(&node(&a)).map(|i| i.hash()), Some(a.hash()));
        assert_eq!(k.get(&node(&b)).map(|i| i.hash()), Some(b.hash()));
        // The torn tail was cut off, so a record learned after it is read back whole.
        let c = Identity::generate(&mut rand_core::OsRng);
        assert!(k.learn(node(&c), c.public()));
        k.flush();
        assert_eq!(std::fs::metadata(&path).unwrap().len() % RECORD as u64, 0);
        let k = KnownNodes::load(&path);
        assert_eq!(k.len(), 3);
        assert_eq!(k.get(&node(&c)).map(|i| i.hash()), Some(c.hash()));
    }

    #[test]
    fn a_crowd_of_made_up_nodes_cannot_shut_out_new_ones() {
        let dir = crate::test_util::TempDir::new("known-crowd");
        let path = dir.0.join(KNOWN_NODES_FILE);
        let node = |i: &Identity| hash_from_name("grid.node", Some(&i.hash()));
        let mut k = KnownNodes::load(&path);
        for _ in 0..MAX_KNOWN + 1 {
            let i = Identity::generate(&mut rand_core::OsRng);
            assert!(k.learn(node(&i), i.public()));
        }
        assert!(k.len() <= MAX_KNOWN / 2 + 1);
        let real = Identity::generate(&mut rand_core::OsRng);
        assert!(
            k.learn(node(&real), real.public()),
            "a new node is still remembered"
        );
        k.flush();
        let k = KnownNodes::load(&path);
        assert!(k.get(&node(&real)).is_some());
        assert!(k.len() <= MAX_KNOWN / 2 + 2);
    }
}
