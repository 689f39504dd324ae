//! The audit log: one line per remote command this node ran or sent, for the owner to
//! review (`grid/audit`).
//!
//! `audit.jsonl` in the state directory ([`AUDIT_FILE`]) holds one JSON object per line
//! (JSON Lines), oldest first:
//!
//! ```json
//! {"time_ms":1767225600000,"direction":"in","peer":"6b9f66014d9853faab220fba47d02761","command":"gpu/stats","correlation":7,"outcome":"success","duration_ms":3}
//! ```
//!
//! Each entry goes to the OS in a single write with no user-space buffer, so a crash loses
//! at most the entry being written; a torn last line is skipped by readers and the next
//! entry starts on a fresh line. When the file would pass its cap ([`MAX_AUDIT_BYTES`]) it
//! is renamed to `audit.jsonl.1` (replacing the previous one) and a new file is started,
//! so the log never holds more than about twice the cap.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::frame::ErrorCode;

/// The audit log's name inside the state directory.
pub const AUDIT_FILE: &str = "audit.jsonl";
/// The size at which the log is rotated.
pub const MAX_AUDIT_BYTES: u64 = 64 * 1024 * 1024;
/// The smallest cap [`AuditLog::open_with_limit`] accepts.
pub const MIN_AUDIT_BYTES: u64 = 2 * MAX_LINE_BYTES as u64;
/// The longest `peer` or `command` written, bytes; longer ones are cut (at a character
/// boundary), so every line stays short.
pub const MAX_FIELD: usize = 256;
/// The longest line a reader parses; longer lines are not entries this node wrote and are
/// skipped.
pub const MAX_LINE_BYTES: usize = 4096;
/// The most entries [`read_last`] returns.
pub const MAX_READ: usize = 100_000;

/// How much [`read_last`] reads at a time, walking back from the end of the file.
const CHUNK: usize = 64 * 1024;

/// Which way a command went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// A peer asked this node to run it.
    In,
    /// This node asked a peer to run it.
    Out,
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// It produced a result.
    Success,
    /// Trust or the ACL refused it.
    Denied,
    /// It failed (unknown command, bad params, handler error, unreachable, …).
    Error,
    /// No result came in time.
    Timeout,
    /// A second copy of a request that ran (or runs) already: not run again; it got the
    /// first copy's result.
    Duplicate,
}

impl From<ErrorCode> for Outcome {
    /// The outcome a failed command's error code stands for.
    fn from(code: ErrorCode) -> Outcome {
        match code {
            ErrorCode::Denied => Outcome::Denied,
            ErrorCode::Timeout => Outcome::Timeout,
            _ => Outcome::Error,
        }
    }
}

/// One remote command, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it finished, ms since the Unix epoch.
    pub time_ms: u64,
    /// Which way it went.
    pub direction: Direction,
    /// The other side: its identity hash in hex (or the node hash it was sent to).
    pub peer: String,
    /// The command name.
    pub command: String,
    /// The request's correlation id.
    pub correlation: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took, ms.
    pub duration_ms: u64,
}

/// Why the audit log could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Filesystem trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An entry could not be encoded.
    #[error("audit entry: {0}")]
    Encode(#[from] serde_json::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the previous log goes on rotation: `audit.jsonl` → `audit.jsonl.1`.
pub fn rotated_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

/// Cut `s` to at most [`MAX_FIELD`] bytes at a character boundary.
fn clip(s: &str) -> &str {
    if s.len() <= MAX_FIELD {
        return s;
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Open `path` for appending (mode 0600: the log says who asked this node for what).
fn open_append(path: &Path) -> Result<File, AuditError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(io(path))
}

/// Whether the file at `path` (of `len` bytes) ends in the middle of a line.
fn ends_torn(path: &Path, len: u64) -> Result<bool, AuditError> {
    if len == 0 {
        return Ok(false);
    }
    let mut f = File::open(path).map_err(io(path))?;
    f.seek(SeekFrom::Start(len - 1)).map_err(io(path))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last).map_err(io(path))?;
    Ok(last[0] != b'\n')
}

/// The append-only audit log. One writer per file: the size it tracks for rotation is its
/// own.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    /// The file ends mid-line (a torn write): start the next entry with a newline.
    torn: bool,
}

impl AuditLog {
    /// Open (or create) the log at `path`, normally `<state dir>/audit.jsonl`, rotating at
    /// [`MAX_AUDIT_BYTES`].
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        AuditLog::open_with_limit(path, MAX_AUDIT_BYTES)
    }

    /// Open the log, rotating when it would pass `max_bytes` (at least
    /// [`MIN_AUDIT_BYTES`]).
    pub fn open_with_limit(path: &Path, max_bytes: u64) -> Result<AuditLog, AuditError> {
        let file = open_append(path)?;
        let size = file.metadata().map_err(io(path))?.len();
        let torn = ends_torn(path, size)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes: max_bytes.max(MIN_AUDIT_BYTES),
            torn,
        })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `entry` as one line (its `peer` and `command` cut to [`MAX_FIELD`] bytes),
    /// rotating first if the line would take the file past its cap.
    pub fn append(&mut self, entry: &AuditEntry) -> Result<(), AuditError> {
        let entry = match (clip(&entry.peer), clip(&entry.command)) {
            (p, c) if p.len() == entry.peer.len() && c.len() == entry.command.len() => {
                Cow::Borrowed(entry)
            }
            (p, c) => Cow::Owned(AuditEntry {
                peer: p.to_string(),
                command: c.to_string(),
                ..entry.clone()
            }),
        };
        let mut line = Vec::with_capacity(256);
        if self.torn {
            line.push(b'\n');
        }
        serde_json::to_writer(&mut line, entry.as_ref())?;
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
            if self.torn {
                line.remove(0);
                self.torn = false;
            }
        }
        if let Err(e) = self.file.write_all(&line) {
            // Part of the line may be on disk; resynchronise before the next entry.
            self.torn = true;
            self.size = self.file.metadata().map(|m| m.len()).unwrap_or(self.size);
            return Err(io(&self.path)(e));
        }
        self.file.flush().map_err(io(&self.path))?;
        self.torn = false;
        self.size += line.len() as u64;
        Ok(())
    }

    /// Move the current file to `audit.jsonl.1` and start a new one.
    fn rotate(&mut self) -> Result<(), AuditError> {
        let old = rotated_path(&self.path);
        std::fs::rename(&self.path, &old).map_err(io(&old))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.torn = false;
        Ok(())
    }
}

/// Parse one line into `out` if it is an entry; anything else (empty, torn, foreign, too
/// long) is skipped.
fn push_line(line: &[u8], out: &mut Vec<AuditEntry>) {
    if line.is_empty() || line.len() > MAX_LINE_BYTES {
        return;
    }
    if let Ok(entry) = serde_json::from_slice::<AuditEntry>(line) {
        out.push(entry);
    }
}

/// Walk back from the end of `path`, pushing entries newest first until `out` holds `want`.
/// A missing file adds nothing.
fn read_tail_into(path: &Path, want: usize, out: &mut Vec<AuditEntry>) -> Result<(), AuditError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut pos = file.metadata().map_err(io(path))?.len();
    // Bytes after `pos` not yet split into lines: the end of a line whose start is earlier.
    let mut tail: Vec<u8> = Vec::new();
    // The line `tail` belongs to is longer than any entry: drop the rest of it.
    let mut skipping = false;
    while out.len() < want {
        if pos == 0 {
            if !skipping {
                push_line(&tail, out);
            }
            break;
        }
        let n = CHUNK.min(usize::try_from(pos).unwrap_or(CHUNK));
        pos -= n as u64;
        file.seek(SeekFrom::Start(pos)).map_err(io(path))?;
        let mut buf = vec![0u8; n];
        file.read_exact(&mut buf).map_err(io(path))?;
        buf.extend_from_slice(&tail);
        let mut end = buf.len();
        while let Some(nl) = buf[..end].iter().rposition(|&b| b == b'\n') {
            if skipping {
                skipping = false;
            } else {
                push_line(&buf[nl + 1..end], out);
                if out.len() >= want {
                    return Ok(());
                }
            }
            end = nl;
        }
        buf.truncate(end);
        tail = buf;
        if tail.len() > MAX_LINE_BYTES {
            tail.clear();
            skipping = true;
        }
    }
    Ok(())
}

/// The newest `limit` entries (at most [`MAX_READ`]) of the log at `path` and its rotated
/// predecessor, oldest first. A missing log is empty; lines that are not entries (a torn
/// last line, foreign text) are skipped. Reads from the end, so the cost follows `limit`,
/// not the file size.
pub fn read_last(path: &Path, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
    let limit = limit.min(MAX_READ);
    let mut out = Vec::new();
    read_tail_into(path, limit, &mut out)?;
    if out.len() < limit {
        read_tail_into(&rotated_path(path), limit, &mut out)?;
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::TempDir;

    /// The audit log in `dir`.
    fn log_in(dir: &TempDir) -> PathBuf {
        dir.0.join(AUDIT_FILE)
    }

    fn entry(n: u64) -> AuditEntry {
        AuditEntry {
            time_ms: 1_767_225_600_000 + n,
            direction: if n.is_multiple_of(2) {
                Direction::In
            } else {
                Direction::Out
            },
            peer: "6b9f66014d9853faab220fba47d02761".into(),
            command: "gpu/stats".into(),
            correlation: n,
            outcome: Outcome::Success,
            duration_ms: n % 100,
        }
    }

    fn correlations(entries: &[AuditEntry]) -> Vec<u64> {
        entries.iter().map(|e| e.correlation).collect()
    }

    #[test]
    fn entries_are_json_lines_with_lowercase_enums() {
        let dir = TempDir::new("audit-format");
        let mut log = AuditLog::open(&log_in(&dir)).unwrap();
        let mut e = entry(1);
        e.outcome = Outcome::Timeout;
        log.append(&e).unwrap();
        let text = std::fs::read_to_string(log_in(&dir)).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.ends_with('\n'));
        assert!(text.contains(r#""direction":"out""#), "{text}");
        assert!(text.contains(r#""outcome":"timeout""#), "{text}");
        assert_eq!(serde_json::from_str::<AuditEntry>(&text).unwrap(), e);
        assert_eq!(Outcome::from(ErrorCode::Denied), Outcome::Denied);
        assert_eq!(Outcome::from(ErrorCode::Timeout), Outcome::Timeout);
        assert_eq!(Outcome::from(ErrorCode::Failed), Outcome::Error);
    }

    #[test]
    fn read_last_returns_the_newest_oldest_first() {
        let dir = TempDir::new("audit-last");
        assert!(read_last(&log_in(&dir), 10).unwrap().is_empty());
        let mut log = AuditLog::open(&log_in(&dir)).unwrap();
        for n in 0..10 {
            log.append(&entry(n)).unwrap();
        }
        assert_eq!(
            correlations(&read_last(&log_in(&dir), 3).unwrap()),
            [7, 8, 9]
        );
        assert_eq!(read_last(&log_in(&dir), 100).unwrap().len(), 10);
        assert!(read_last(&log_in(&dir), 0).unwrap().is_empty());
        // Reopening appends after what is there.
        drop(log);
        AuditLog::open(&log_in(&dir))
            .unwrap()
            .append(&entry(10))
            .unwrap();
        assert_eq!(correlations(&read_last(&log_in(&dir), 2).unwrap()), [9, 10]);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_the_next_entry_starts_fresh() {
        let dir = TempDir::new("audit-torn");
        let mut log = AuditLog::open(&log_in(&dir)).unwrap();
        log.append(&entry(1)).unwrap();
        log.append(&entry(2)).unwrap();
        drop(log);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(log_in(&dir))
            .unwrap();
        f.write_all(br#"{"time_ms":17672256000,"direction":"i"#)
            .unwrap();
        drop(f);
        assert_eq!(correlations(&read_last(&log_in(&dir), 10).unwrap()), [1, 2]);
        let mut log = AuditLog::open(&log_in(&dir)).unwrap();
        log.append(&entry(3)).unwrap();
        assert_eq!(
            correlations(&read_last(&log_in(&dir), 10).unwrap()),
            [1, 2, 3]
        );
    }

    #[test]
    fn foreign_and_overlong_lines_are_skipped_across_chunks() {
        let dir = TempDir::new("audit-foreign");
        let mut log = AuditLog::open(&log_in(&dir)).unwrap();
        for n in 0..500 {
            log.append(&entry(n)).unwrap();
        }
        drop(log);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(log_in(&dir))
            .unwrap();
        f.write_all(b"not json\n\n{\"time_ms\":1}\n").unwrap();
        // A line far longer than a chunk, made of valid-looking entries glued together.
        let glued = serde_json::to_string(&entry(9999)).unwrap().repeat(2000);
        f.write_all(glued.as_bytes()).unwrap();
        f.write_all(b"\n").unwrap();
        drop(f);
        let mut log = AuditLog::open(&log_in(&dir)).unwrap();
        for n in 500..1000 {
            log.append(&entry(n)).unwrap();
        }
        let all = read_last(&log_in(&dir), 5000).unwrap();
        assert_eq!(correlations(&all), (0..1000).collect::<Vec<_>>());
        let newest = read_last(&log_in(&dir), 600).unwrap();
        assert_eq!(correlations(&newest), (400..1000).collect::<Vec<_>>());
    }

    #[test]
    fn the_log_rotates_and_keeps_one_old_file() {
        let dir = TempDir::new("audit-rotate");
        let mut log = AuditLog::open_with_limit(&log_in(&dir), 1).unwrap();
        let line_len = serde_json::to_vec(&entry(1000)).unwrap().len() as u64 + 1;
        let per_file = MIN_AUDIT_BYTES / line_len;
        let total = per_file * 3 + 5;
        for n in 1000..1000 + total {
            log.append(&entry(n)).unwrap();
        }
        let current = std::fs::metadata(log_in(&dir)).unwrap().len();
        let old = std::fs::metadata(rotated_path(&log_in(&dir)))
            .unwrap()
            .len();
        assert!(current <= MIN_AUDIT_BYTES && old <= MIN_AUDIT_BYTES);
        let names: Vec<_> = std::fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // Newest entries span both files, in order, ending with the last one written.
        let all = read_last(&log_in(&dir), 1_000_000).unwrap();
        let got = correlations(&all);
        assert!(got.len() as u64 > per_file, "reads into the rotated file");
        assert_eq!(*got.last().unwrap(), 1000 + total - 1);
        assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    }

    #[test]
    fn long_fields_are_clipped() {
        let dir = TempDir::new("audit-clip");
        let mut log = AuditLog::open(&log_in(&dir)).unwrap();
        let mut e = entry(1);
        e.command = "é".repeat(1000);
        e.peer = "p".repeat(10_000);
        log.append(&e).unwrap();
        let got = read_last(&log_in(&dir), 1).unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].command.len() <= MAX_FIELD && got[0].command.starts_with('é'));
        assert_eq!(got[0].peer.len(), MAX_FIELD);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let dir = TempDir::new("audit-missing");
        let path = dir.0.join("nope").join(AUDIT_FILE);
        let e = AuditLog::open(&path).unwrap_err().to_string();
        assert!(e.contains(AUDIT_FILE), "{e}");
        assert!(read_last(&path, 5).unwrap().is_empty());
    }
}
