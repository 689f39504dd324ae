//! A run's journal on disk (`<state>/sentinel/<handle>/journal.jsonl`): one line per
//! completed step, `{"key": …, "record": …}`, appended and synced by a writer thread so
//! the node's loop never waits on the disk. A crash between a step's end and its line
//! reaching the disk means that step runs again on resume (at least once, never lost).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde_json::{json, Value};

use crate::engine::{Journal, MemoryJournal};

/// The largest journal read back.
const MAX_JOURNAL: u64 = 64 << 20;

/// Completed steps of one run: in memory, and on their way to disk.
pub(crate) struct FileJournal {
    done: MemoryJournal,
    lines: Option<mpsc::Sender<String>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl FileJournal {
    /// Open (or start) the journal at `path`, reading what it holds.
    pub(crate) fn open(path: &Path) -> std::io::Result<FileJournal> {
        let done = MemoryJournal::default();
        let mut torn = false;
        match std::fs::File::open(path) {
            Ok(f) => {
                if f.metadata()?.len() > MAX_JOURNAL {
                    return Err(std::io::Error::other(format!(
                        "{} is larger than {MAX_JOURNAL} bytes",
                        path.display()
                    )));
                }
                for line in std::io::BufReader::new(f).split(b'\n') {
                    let line = line?;
                    // A torn last line (a crash mid-write) is skipped: that step runs again.
                    torn = false;
                    match serde_json::from_slice::<Value>(&line) {
                        Ok(v) => {
                            if let (Some(k), Some(r)) = (v["key"].as_str(), v.get("record")) {
                                done.record(k, r);
                            }
                        }
                        Err(_) => torn = !line.is_empty(),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let (tx, rx) = mpsc::channel::<String>();
        let path: PathBuf = path.to_owned();
        let writer = std::thread::Builder::new()
            .name("sentinel-journal".into())
            .spawn(move || {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path);
                let Ok(mut file) = file else {
                    tracing::warn!(path = %path.display(), "cannot write the pipeline journal");
                    return;
                };
                if torn {
                    // End the torn line, so the next record starts a line of its own.
                    let _ = file.write_all(b"\n");
                }
                for line in rx {
                    let ok = file
                        .write_all(line.as_bytes())
                        .and_then(|()| file.sync_data());
                    if let Err(e) = ok {
                        tracing::warn!(path = %path.display(), "pipeline journal: {e}");
                    }
                }
            })?;
        Ok(FileJournal {
            done,
            lines: Some(tx),
            writer: Some(writer),
        })
    }

    /// Wait until every line handed over is on disk (a blocking call).
    pub(crate) fn close(mut self) {
        self.lines = None;
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

impl Journal for FileJournal {
    fn completed(&self, key: &str) -> Option<Value> {
        self.done.completed(key)
    }

    fn record(&self, key: &str, record: &Value) {
        self.done.record(key, record);
        if let Some(tx) = &self.lines {
            let _ = tx.send(format!("{}\n", json!({"key": key, "record": record})));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_a_torn_line_is_skipped() {
        let dir = std::env::temp_dir().join(format!("sentinel-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("journal.jsonl");
        let j = FileJournal::open(&path).unwrap();
        j.record("a", &json!({"status": "completed", "output": 1}));
        j.record("loop#0/b", &json!({"status": "completed", "output": 2}));
        j.close();
        // A crash mid-line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"key\": \"c\", \"rec").unwrap();
        drop(f);
        let j = FileJournal::open(&path).unwrap();
        assert_eq!(j.completed("a").unwrap()["output"], 1);
        assert_eq!(j.completed("loop#0/b").unwrap()["output"], 2);
        assert!(j.completed("c").is_none());
        j.record("d", &json!({"status": "completed"}));
        j.close();
        let j = FileJournal::open(&path).unwrap();
        assert!(
            j.completed("d").is_some(),
            "a record after a torn line is read back"
        );
        j.close();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
