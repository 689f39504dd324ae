//! Saving and loading the index.
//!
//! A save writes a new *generation* of files next to the old one, then commits it by renaming
//! a small manifest over the old manifest:
//!
//! - `vectors-<gen>.bin`: every row (dead ones too, so graph node ids stay row numbers): header,
//!   keys + live flags, then the f32 vectors, little-endian.
//! - `graph-<gen>.hnsw.graph` and `graph-<gen>.hnsw.data`: hnsw_rs's own dump of the graph
//!   (only when a graph exists), so a restart does not rebuild it.
//! - `index.meta`: magic, postcard body (embedder id, threshold, tuning, row counts, the length
//!   and SHA-256 of every file above), SHA-256 of magic + body. Written as `index.meta.tmp`,
//!   fsynced, renamed, then the directory is fsynced; files of other generations are removed
//!   after that. A crash at any point leaves either the old or the new generation complete.
//!
//! Loading checks the manifest hash, then the length and SHA-256 of every file *before* parsing
//! it, so truncated or altered files give [`IndexError::Corrupt`] and never reach a parser that
//! could panic (hnsw_rs's reader asserts and even exits the process on bad input; it only ever
//! sees bytes we wrote). A graph dump that hnsw_rs cannot read although its hash is right (a
//! dump from another hnsw_rs version, platform or distance path) is dropped with a warning and
//! the graph is rebuilt lazily from the saved vectors: no re-embedding either way.
//!
//! hnsw_rs's reload ties the graph's lifetime to its `HnswIo` loader, so each load leaks one
//! small `HnswIo` (a path and a few words; the vectors are read into the graph, no mmap) to get a
//! `'static` graph without unsafe code. The directory belongs to the index: one writer at a time.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::exact::Store;
use super::hnsw::{DistDot, Graph};
use super::{HnswParams, IndexError, Key, VectorIndex, DIM};

const MANIFEST: &str = "index.meta";
const MANIFEST_TMP: &str = "index.meta.tmp";
const MANIFEST_MAGIC: &[u8; 8] = b"GRIDVIX1";
const VECTORS_MAGIC: &[u8; 8] = b"GRIDVEC1";
/// Manifest body format; bump on any layout change.
const FORMAT: u32 = 1;
/// The manifest is small; anything bigger is not ours.
const MANIFEST_MAX: u64 = 1 << 20;
/// hnsw_rs dump format we write (its reader is only trusted with the same).
const HNSW_FORMAT: &str = "hnsw_rs-0.3.5";
/// Bytes per row in the key section: item, slot (LE), live flag.
const KEY_BYTES: usize = 32 + 2 + 1;
/// Header of the vectors file: magic, dim (u32 LE), rows (u64 LE).
const VECTORS_HEADER: usize = 8 + 4 + 8;

#[derive(Serialize, Deserialize, Debug)]
struct Manifest {
    format: u32,
    embedder_id: String,
    dim: u32,
    threshold: u64,
    max_nb_connection: u32,
    ef_construction: u32,
    ef_search: u32,
    generation: String,
    rows: u64,
    live: u64,
    vectors: FileSum,
    graph: Option<GraphManifest>,
}

#[derive(Serialize, Deserialize, Debug)]
struct GraphManifest {
    /// hnsw_rs dump format, platform (endianness, usize width) and distance type: hnsw_rs writes
    /// native-endian `usize`s and checks the distance's type name.
    format: String,
    platform: String,
    distance: String,
    covered: u64,
    nodes: u64,
    graph: FileSum,
    data: FileSum,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
struct FileSum {
    len: u64,
    sha256: [u8; 32],
}

fn platform() -> String {
    format!(
        "{}-endian,usize{}",
        if cfg!(target_endian = "little") {
            "little"
        } else {
            "big"
        },
        usize::BITS
    )
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> IndexError {
    IndexError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writer that hashes and counts what goes through it.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Length and SHA-256 of a file, read in full; fsyncs it on the way when `sync`.
fn sum_file(path: &Path, sync: bool) -> Result<FileSum, IndexError> {
    let mut f = File::open(path).map_err(io_err(path))?;
    if sync {
        f.sync_all().map_err(io_err(path))?;
    }
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        len += n as u64;
    }
    Ok(FileSum {
        len,
        sha256: hash.finalize().into(),
    })
}

/// Fails with `Corrupt` unless the file has the recorded length and hash.
fn check_file(path: &Path, want: &FileSum) -> Result<(), IndexError> {
    let meta = fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            corrupt(path, "missing")
        } else {
            io_err(path)(e)
        }
    })?;
    if meta.len() != want.len {
        return Err(corrupt(
            path,
            format!("{} bytes, manifest says {}", meta.len(), want.len),
        ));
    }
    if sum_file(path, false)? != *want {
        return Err(corrupt(path, "SHA-256 mismatch"));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn vectors_name(generation: &str) -> String {
    format!("vectors-{generation}.bin")
}

fn graph_base(generation: &str) -> String {
    format!("graph-{generation}")
}

impl VectorIndex {
    /// Persists the index to `dir` (created if missing): the vectors and, when one exists, the
    /// HNSW graph through hnsw_rs's own dump, so that [`load`](Self::load) neither re-embeds nor
    /// rebuilds the graph. Atomic: a new generation of files is written and fsynced, then a
    /// manifest naming it is renamed into place; older generations are deleted afterwards. A
    /// graph that has not been built yet is not built here (call
    /// [`build_graph`](Self::build_graph) first to persist one). Blocks for the time it takes to
    /// write and hash ~3 KiB per vector: call it from a blocking task.
    pub fn save(&self, dir: &Path) -> Result<(), IndexError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        // A fresh generation name that no file uses yet.
        let generation = loop {
            let g = format!("{:016x}", rand_core::OsRng.next_u64());
            if !dir.join(vectors_name(&g)).exists() {
                break g;
            }
        };
        let vectors = self.write_vectors(&dir.join(vectors_name(&generation)))?;

        let graph = {
            let guard = self.graph.read().unwrap_or_else(PoisonError::into_inner);
            match guard.as_ref() {
                // An empty graph has nothing worth saving (and hnsw_rs cannot dump it).
                Some(g) if g.nodes() > 0 => {
                    // No extension may run while hnsw_rs walks the graph.
                    let _ext = g.extending.lock().unwrap_or_else(PoisonError::into_inner);
                    Some(dump_graph(g, dir, &graph_base(&generation))?)
                }
                _ => None,
            }
        };

        let s = &self.store;
        let manifest = Manifest {
            format: FORMAT,
            embedder_id: self.embedder_id.clone(),
            dim: DIM as u32,
            threshold: self.threshold as u64,
            max_nb_connection: self.params.max_nb_connection as u32,
            ef_construction: self.params.ef_construction as u32,
            ef_search: self.params.ef_search as u32,
            generation: generation.clone(),
            rows: s.rows() as u64,
            live: s.live_len() as u64,
            vectors,
            graph,
        };
        let body = postcard::to_stdvec(&manifest)
            .map_err(|e| IndexError::GraphDump(format!("manifest encoding: {e}")))?;
        let mut bytes = Vec::with_capacity(8 + body.len() + 32);
        bytes.extend_from_slice(MANIFEST_MAGIC);
        bytes.extend_from_slice(&body);
        let sum: [u8; 32] = Sha256::digest(&bytes).into();
        bytes.extend_from_slice(&sum);

        let tmp = dir.join(MANIFEST_TMP);
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&bytes).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        let path = dir.join(MANIFEST);
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        sync_dir(dir)?;

        // Committed: the other generations are garbage now.
        if let Ok(entries) = fs::read_dir(dir) {
            let keep_vectors = vectors_name(&generation);
            let keep_graph = format!("{}.", graph_base(&generation));
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let ours = (name.starts_with("vectors-") && name.ends_with(".bin"))
                    || (name.starts_with("graph-") && name.contains(".hnsw."));
                if ours && name != keep_vectors && !name.starts_with(&keep_graph) {
                    if let Err(err) = fs::remove_file(e.path()) {
                        tracing::warn!("vector index: could not remove old {name}: {err}");
                    }
                }
            }
        }
        Ok(())
    }

    fn write_vectors(&self, path: &Path) -> Result<FileSum, IndexError> {
        let s = &self.store;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_err(path))?;
        let mut w = Hashing {
            inner: BufWriter::with_capacity(1 << 20, file),
            hash: Sha256::new(),
            len: 0,
        };
        let mut write = || -> std::io::Result<()> {
            w.write_all(VECTORS_MAGIC)?;
            w.write_all(&(DIM as u32).to_le_bytes())?;
            w.write_all(&(s.rows() as u64).to_le_bytes())?;
            for (key, live) in s.keys.iter().zip(&s.live) {
                w.write_all(&key.item)?;
                w.write_all(&key.slot.to_le_bytes())?;
                w.write_all(&[u8::from(*live)])?;
            }
            let mut buf = Vec::with_capacity(DIM * 4);
            for row in s.data.chunks_exact(DIM) {
                buf.clear();
                for x in row {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
                w.write_all(&buf)?;
            }
            w.flush()
        };
        write().map_err(io_err(path))?;
        let sum = FileSum {
            len: w.len,
            sha256: w.hash.finalize().into(),
        };
        let file = w
            .inner
            .into_inner()
            .map_err(|e| io_err(path)(e.into_error()))?;
        file.sync_all().map_err(io_err(path))?;
        Ok(sum)
    }

    /// Loads an index saved by [`save`](Self::save). The embedder id must match (else
    /// [`IndexError::EmbedderChanged`]: the caller re-embeds); a missing index is
    /// [`IndexError::NotFound`]; a damaged one is [`IndexError::Corrupt`]. Never panics on file
    /// contents. The graph is reloaded from hnsw_rs's dump when there is one (see the module
    /// notes for when it is rebuilt lazily instead). Blocking: call it from a blocking task.
    pub fn load(dir: &Path, embedder_id: &str) -> Result<VectorIndex, IndexError> {
        let path = dir.join(MANIFEST);
        let m = read_manifest(&path)?;
        if m.embedder_id != embedder_id {
            return Err(IndexError::EmbedderChanged {
                stored: m.embedder_id,
                wanted: embedder_id.to_string(),
            });
        }
        if m.format != FORMAT || m.dim as usize != DIM {
            return Err(corrupt(
                &path,
                format!(
                    "format {} dim {}, expected {FORMAT} and {DIM}",
                    m.format, m.dim
                ),
            ));
        }
        if !is_generation(&m.generation) {
            return Err(corrupt(&path, "bad generation name"));
        }
        let vpath = dir.join(vectors_name(&m.generation));
        check_file(&vpath, &m.vectors)?;
        let store = read_vectors(&vpath, m.rows, m.live)?;

        let params = HnswParams {
            max_nb_connection: m.max_nb_connection as usize,
            ef_construction: m.ef_construction as usize,
            ef_search: m.ef_search as usize,
        };
        let graph = match &m.graph {
            Some(gm) => load_graph(dir, &m.generation, gm, &store)?,
            None => None,
        };
        Ok(VectorIndex {
            embedder_id: m.embedder_id,
            threshold: usize::try_from(m.threshold).unwrap_or(usize::MAX),
            params,
            store,
            graph: RwLock::new(graph),
            pending_max: super::PENDING_MAX,
            build_lock: Mutex::new(()),
        })
    }
}

fn is_generation(g: &str) -> bool {
    g.len() == 16 && g.bytes().all(|b| b.is_ascii_hexdigit())
}

fn read_manifest(path: &Path) -> Result<Manifest, IndexError> {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IndexError::NotFound(
                path.parent().unwrap_or(path).to_path_buf(),
            ))
        }
        Err(e) => return Err(io_err(path)(e)),
    };
    if meta.len() > MANIFEST_MAX {
        return Err(corrupt(path, "manifest too large"));
    }
    let bytes = fs::read(path).map_err(io_err(path))?;
    if bytes.len() < MANIFEST_MAGIC.len() + 32 || !bytes.starts_with(MANIFEST_MAGIC) {
        return Err(corrupt(path, "not a vector index manifest"));
    }
    let (signed, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(signed).as_slice() != sum {
        return Err(corrupt(path, "manifest SHA-256 mismatch"));
    }
    let body = &signed[MANIFEST_MAGIC.len()..];
    match postcard::take_from_bytes::<Manifest>(body) {
        Ok((m, [])) => Ok(m),
        Ok(_) => Err(corrupt(path, "trailing bytes in manifest")),
        Err(e) => Err(corrupt(path, format!("manifest: {e}"))),
    }
}

/// Parses a vectors file whose length and hash were already checked; still validates every
/// field, since a hash only proves the file is the one the manifest names.
fn read_vectors(path: &Path, rows: u64, live: u64) -> Result<Store, IndexError> {
    let rows_usize = usize::try_from(rows)
        .ok()
        .filter(|&r| r <= u32::MAX as usize)
        .ok_or_else(|| corrupt(path, "too many rows"))?;
    let expected =
        (VECTORS_HEADER as u64).saturating_add(rows.saturating_mul((KEY_BYTES + DIM * 4) as u64));
    let actual = fs::metadata(path).map_err(io_err(path))?.len();
    if actual != expected {
        return Err(corrupt(
            path,
            format!("{actual} bytes, {rows} rows need {expected}"),
        ));
    }
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err(path))?);
    let mut header = [0u8; VECTORS_HEADER];
    r.read_exact(&mut header).map_err(io_err(path))?;
    if &header[..8] != VECTORS_MAGIC
        || header[8..12] != (DIM as u32).to_le_bytes()
        || header[12..20] != rows.to_le_bytes()
    {
        return Err(corrupt(path, "bad header"));
    }
    let mut store = Store {
        keys: Vec::with_capacity(rows_usize),
        live: Vec::with_capacity(rows_usize),
        data: Vec::with_capacity(rows_usize * DIM),
        ..Store::default()
    };
    let mut kb = [0u8; KEY_BYTES];
    for row in 0..rows_usize {
        r.read_exact(&mut kb).map_err(io_err(path))?;
        let mut item = [0u8; 32];
        item.copy_from_slice(&kb[..32]);
        let key = Key {
            item,
            slot: u16::from_le_bytes([kb[32], kb[33]]),
        };
        let is_live = match kb[34] {
            0 => false,
            1 => true,
            _ => return Err(corrupt(path, "bad live flag")),
        };
        if is_live && store.pos.insert(key, row as u32).is_some() {
            return Err(corrupt(path, "key live twice"));
        }
        store.dead += usize::from(!is_live);
        store.keys.push(key);
        store.live.push(is_live);
    }
    if store.pos.len() as u64 != live {
        return Err(corrupt(path, "live count differs from the manifest"));
    }
    let mut buf = vec![0u8; DIM * 4];
    for row in 0..rows_usize {
        r.read_exact(&mut buf).map_err(io_err(path))?;
        let start = store.data.len();
        store.data.extend(
            buf.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
        if store.live[row] && store.data[start..].iter().any(|x| !x.is_finite()) {
            return Err(corrupt(path, "non-finite vector"));
        }
    }
    Ok(store)
}

/// Dumps the graph as `<base>.hnsw.graph` / `<base>.hnsw.data` in `dir`, fsyncs and hashes them.
fn dump_graph(g: &Graph, dir: &Path, base: &str) -> Result<GraphManifest, IndexError> {
    // hnsw_rs panics when it cannot create its files; keep that an error.
    let dumped = catch_unwind(AssertUnwindSafe(|| g.hnsw.file_dump(dir, base)));
    match dumped {
        Ok(Ok(name)) if name == base => {}
        Ok(Ok(name)) => {
            return Err(IndexError::GraphDump(format!(
                "hnsw_rs dumped as {name:?}, not {base:?}"
            )))
        }
        Ok(Err(e)) => return Err(IndexError::GraphDump(e.to_string())),
        Err(_) => return Err(IndexError::GraphDump("hnsw_rs panicked".into())),
    }
    let graph = sum_file(&dir.join(format!("{base}.hnsw.graph")), true)?;
    let data = sum_file(&dir.join(format!("{base}.hnsw.data")), true)?;
    Ok(GraphManifest {
        format: HNSW_FORMAT.to_string(),
        platform: platform(),
        distance: std::any::type_name::<DistDot>().to_string(),
        covered: g.covered() as u64,
        nodes: g.nodes() as u64,
        graph,
        data,
    })
}

/// Reloads the graph dump if it is usable here. `Err(Corrupt)` when the files are not those
/// the manifest names; `Ok(None)` (rebuild lazily) when they are but this build cannot use them.
fn load_graph(
    dir: &Path,
    generation: &str,
    gm: &GraphManifest,
    store: &Store,
) -> Result<Option<Graph>, IndexError> {
    let base = graph_base(generation);
    let gpath = dir.join(format!("{base}.hnsw.graph"));
    let dpath = dir.join(format!("{base}.hnsw.data"));
    check_file(&gpath, &gm.graph)?;
    check_file(&dpath, &gm.data)?;
    let covered = usize::try_from(gm.covered).unwrap_or(usize::MAX);
    let nodes = usize::try_from(gm.nodes).unwrap_or(usize::MAX);
    if covered > store.rows() || nodes > covered {
        return Err(corrupt(&gpath, "graph covers more rows than saved"));
    }
    let rebuild = |why: &str| {
        tracing::warn!("vector index: saved HNSW graph not used ({why}); it will be rebuilt");
        Ok(None)
    };
    if gm.format != HNSW_FORMAT
        || gm.platform != platform()
        || gm.distance != std::any::type_name::<DistDot>()
    {
        return rebuild(&format!(
            "written by {} on {} with {}",
            gm.format, gm.platform, gm.distance
        ));
    }
    if nodes == 0 {
        // hnsw_rs cannot dump or reload an empty graph meaningfully; nothing to lose.
        return rebuild("empty");
    }
    let dir_owned: PathBuf = dir.to_path_buf();
    let loaded = catch_unwind(AssertUnwindSafe(|| {
        // The reloaded graph borrows its loader: leak the (small) loader to get 'static.
        let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new(&dir_owned, &base)));
        io.load_hnsw_with_dist::<f32, DistDot>(DistDot)
    }));
    let hnsw = match loaded {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return rebuild(&format!("hnsw_rs: {e}")),
        Err(_) => return rebuild("hnsw_rs panicked"),
    };
    // The graph must hold exactly the rows it claims, with the same vectors.
    if hnsw.get_nb_point() != nodes {
        return rebuild("node count differs");
    }
    let mut seen = vec![false; covered];
    for p in hnsw.get_point_indexation() {
        let r = p.get_origin_id();
        if r >= covered || seen[r] || p.get_v() != store.row(r as u32) {
            return rebuild("nodes do not match the saved vectors");
        }
        seen[r] = true;
    }
    Ok(Some(Graph::from_parts(hnsw, covered, nodes)))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{key, FAST};
    use super::super::*;
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "grid-index-{name}-{}-{:x}",
            std::process::id(),
            rand_core::OsRng.next_u32()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn filled(n: usize, threshold: usize) -> (VectorIndex, Vec<Vec<f32>>) {
        let mut all = clustered_vectors(n + 20, 20, 1.0, 5);
        let queries = all.split_off(n);
        let mut idx = VectorIndex::with_params("minilm", threshold, FAST);
        for (i, v) in all.iter().enumerate() {
            idx.insert(key(i / 2, (i % 2) as u16), v).unwrap();
        }
        (idx, queries)
    }

    fn same_results(a: &VectorIndex, b: &VectorIndex, queries: &[Vec<f32>]) {
        assert_eq!(a.len(), b.len());
        for q in queries {
            assert_eq!(a.search(q, 10, -1.0), b.search(q, 10, -1.0));
            assert_eq!(a.search_items(q, 5, 0.1), b.search_items(q, 5, 0.1));
        }
    }

    #[test]
    fn round_trip_below_threshold() {
        let dir = tmpdir("below");
        let (mut idx, queries) = filled(300, 10_000);
        idx.remove_item(&key(3, 0).item);
        idx.insert(key(4, 0), &queries[0]).unwrap();
        idx.save(&dir).unwrap();
        let back = VectorIndex::load(&dir, "minilm").unwrap();
        assert_eq!(back.threshold(), 10_000);
        assert!(!back.has_graph());
        same_results(&idx, &back, &queries);
        // A second save replaces the first generation and leaves no garbage.
        back.save(&dir).unwrap();
        let files: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 2, "{files:?}");
        same_results(&idx, &VectorIndex::load(&dir, "minilm").unwrap(), &queries);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn round_trip_above_threshold_reloads_graph() {
        let dir = tmpdir("above");
        let (mut idx, queries) = filled(1200, 400);
        idx.build_graph();
        // Tombstones and pending rows survive too.
        idx.remove_item(&key(7, 0).item);
        idx.insert(key(5000, 0), &queries[1]).unwrap();
        idx.save(&dir).unwrap();
        let back = VectorIndex::load(&dir, "minilm").unwrap();
        assert!(back.has_graph(), "graph reloaded, not rebuilt");
        {
            let (a, b) = (idx.graph.read().unwrap(), back.graph.read().unwrap());
            let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
            assert_eq!((a.covered(), a.nodes()), (b.covered(), b.nodes()));
        }
        same_results(&idx, &back, &queries);
        // The reloaded graph still takes insertions.
        let mut back = back;
        back.pending_max = 40;
        let extra = clustered_vectors(45, 4, 1.0, 77);
        for (i, v) in extra.iter().enumerate() {
            back.insert(key(10_000 + i, 0), v).unwrap();
        }
        assert_eq!(back.search(&extra[3], 1, -1.0)[0].key, key(10_003, 0));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_index_round_trips() {
        let dir = tmpdir("empty");
        let idx = VectorIndex::with_params("minilm", 0, FAST);
        idx.build_graph();
        idx.save(&dir).unwrap();
        let back = VectorIndex::load(&dir, "minilm").unwrap();
        assert!(back.is_empty());
        assert!(back
            .search(&clustered_vectors(1, 1, 1.0, 1)[0], 3, -1.0)
            .is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn other_embedder_is_refused() {
        let dir = tmpdir("embedder");
        let (idx, _) = filled(10, 1000);
        idx.save(&dir).unwrap();
        match VectorIndex::load(&dir, "other-model") {
            Err(IndexError::EmbedderChanged { stored, wanted }) => {
                assert_eq!(
                    (stored.as_str(), wanted.as_str()),
                    ("minilm", "other-model")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            VectorIndex::load(&dir.join("nothing"), "minilm"),
            Err(IndexError::NotFound(_))
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Every way of damaging every file gives `Corrupt`, never a panic or a wrong index.
    #[test]
    fn damaged_files_are_corrupt() {
        let dir = tmpdir("corrupt");
        let (idx, _) = filled(600, 200);
        idx.build_graph();
        idx.save(&dir).unwrap();
        let files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 4, "{files:?}");
        for f in &files {
            let good = fs::read(f).unwrap();
            let damages: Vec<Vec<u8>> = vec![
                good[..good.len() / 2].to_vec(),
                good[..good.len() - 1].to_vec(),
                Vec::new(),
                {
                    let mut b = good.clone();
                    let i = b.len() / 3;
                    b[i] ^= 0x40;
                    b
                },
                b"garbage garbage garbage garbage garbage garbage".to_vec(),
                {
                    let mut b = good.clone();
                    b.extend_from_slice(b"tail");
                    b
                },
            ];
            for bad in damages {
                fs::write(f, &bad).unwrap();
                match VectorIndex::load(&dir, "minilm") {
                    Err(IndexError::Corrupt { .. }) => {}
                    other => panic!("{} damaged: {other:?}", f.display()),
                }
            }
            fs::write(f, &good).unwrap();
        }
        // A missing data file of the committed generation is corrupt too.
        let vec_file = files
            .iter()
            .find(|f| f.to_string_lossy().ends_with(".bin"))
            .unwrap();
        fs::remove_file(vec_file).unwrap();
        assert!(matches!(
            VectorIndex::load(&dir, "minilm"),
            Err(IndexError::Corrupt { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unusable_graph_dump_is_rebuilt_not_fatal() {
        let dir = tmpdir("foreign");
        let (idx, queries) = filled(500, 200);
        idx.build_graph();
        idx.save(&dir).unwrap();
        // Rewrite the manifest as if another hnsw_rs version had written the graph.
        let path = dir.join(MANIFEST);
        let mut m = read_manifest(&path).unwrap();
        m.graph.as_mut().unwrap().format = "hnsw_rs-9".into();
        let body = postcard::to_stdvec(&m).unwrap();
        let mut bytes = MANIFEST_MAGIC.to_vec();
        bytes.extend_from_slice(&body);
        let sum: [u8; 32] = Sha256::digest(&bytes).into();
        bytes.extend_from_slice(&sum);
        fs::write(&path, bytes).unwrap();
        let back = VectorIndex::load(&dir, "minilm").unwrap();
        assert!(!back.has_graph());
        assert_eq!(
            back.search_exact(&queries[0], 10, -1.0),
            idx.search_exact(&queries[0], 10, -1.0)
        );
        back.build_graph();
        assert!(back.has_graph());
        fs::remove_dir_all(&dir).unwrap();
    }
}
