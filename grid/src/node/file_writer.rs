//! Received files are written on a thread of their own, never on the node's event loop:
//! creating the hidden partial file, appending each verified segment, and at the end the
//! `fsync` and the rename into place. One thread per node serves every transfer in the
//! order the loop handed the work over, so two files finishing under the same name still
//! get distinct names. The loop counts the bytes handed over and not yet written (the
//! backlog) and stops accepting segments while it is over [`MAX_WRITE_BACKLOG`].

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;

use rns_core::AddressHash;
use tokio::sync::mpsc;

use super::files::{FileWork, IncomingKey};

/// Bytes handed to the writer and not yet on disk, at most, before segment offers wait.
pub(super) const MAX_WRITE_BACKLOG: u64 = 64 * 1024 * 1024;

/// Work for the writer thread.
#[derive(Debug)]
pub(super) enum WriteOp {
    /// Create `dir` if needed and the partial file `temp` in it.
    Open {
        key: IncomingKey,
        dir: PathBuf,
        temp: PathBuf,
    },
    /// Append `data[skip..]` to the partial file.
    Write {
        key: IncomingKey,
        data: Vec<u8>,
        skip: usize,
    },
    /// Flush the partial file to disk and move it to an unused `name` in `dir`.
    Finish {
        key: IncomingKey,
        dir: PathBuf,
        name: String,
        from: Option<AddressHash>,
    },
    /// Remove the partial file (the transfer failed).
    Abort { key: IncomingKey },
}

/// What the writer reports back to the loop.
#[derive(Debug)]
pub(crate) enum Written {
    /// `bytes` handed over earlier are written (or dropped with a failed file).
    Drained { bytes: u64 },
    /// The file could not be created or written; its partial file is removed.
    Failed { key: IncomingKey, error: String },
    /// The file is in place at `path`.
    Finished {
        key: IncomingKey,
        path: PathBuf,
        bytes: u64,
        from: Option<AddressHash>,
    },
}

/// The loop's handle on the writer thread.
#[derive(Debug)]
pub(super) struct FileWriter {
    tx: std_mpsc::Sender<WriteOp>,
    /// Bytes handed over and not yet reported written.
    pub(super) backlog: u64,
}

impl FileWriter {
    /// Start the writer thread; it reports on `done` and ends when the handle is dropped.
    pub(super) fn start(done: mpsc::UnboundedSender<FileWork>) -> FileWriter {
        let (tx, rx) = std_mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("grid-file-writer".into())
            .spawn(move || run(&rx, &done));
        if let Err(e) = spawned {
            // Without the thread every received file fails (reported per transfer).
            tracing::error!(error = %e, "cannot start the file writer thread");
        }
        FileWriter { tx, backlog: 0 }
    }

    /// Hand `op` to the writer, counting the bytes it will write.
    pub(super) fn submit(&mut self, op: WriteOp) {
        if let WriteOp::Write { data, skip, .. } = &op {
            self.backlog += data.len().saturating_sub(*skip) as u64;
        }
        let _ = self.tx.send(op);
    }

    /// The writer reported `bytes` written.
    pub(super) fn drained(&mut self, bytes: u64) {
        self.backlog = self.backlog.saturating_sub(bytes);
    }

    /// Whether the writer is too far behind to take more segments now.
    pub(super) fn behind(&self) -> bool {
        self.backlog > MAX_WRITE_BACKLOG
    }
}

/// A partial file being written.
struct Partial {
    file: File,
    temp: PathBuf,
    written: u64,
}

fn run(rx: &std_mpsc::Receiver<WriteOp>, done: &mpsc::UnboundedSender<FileWork>) {
    let mut open: HashMap<IncomingKey, Partial> = HashMap::new();
    let report = |w: Written| {
        let _ = done.send(FileWork::Written(w));
    };
    while let Ok(op) = rx.recv() {
        match op {
            WriteOp::Open { key, dir, temp } => {
                let created = std::fs::create_dir_all(&dir).and_then(|()| File::create(&temp));
                match created {
                    Ok(file) => {
                        let p = Partial {
                            file,
                            temp,
                            written: 0,
                        };
                        if let Some(old) = open.insert(key, p) {
                            let _ = std::fs::remove_file(old.temp);
                        }
                    }
                    Err(e) => report(Written::Failed {
                        key,
                        error: format!("{}: {e}", temp.display()),
                    }),
                }
            }
            WriteOp::Write { key, data, skip } => {
                let bytes = data.len().saturating_sub(skip) as u64;
                if let Some(p) = open.get_mut(&key) {
                    match p.file.write_all(&data[skip.min(data.len())..]) {
                        Ok(()) => p.written += bytes,
                        Err(e) => {
                            let error = format!("{}: {e}", p.temp.display());
                            remove(&mut open, &key);
                            report(Written::Failed { key, error });
                        }
                    }
                }
                report(Written::Drained { bytes });
            }
            WriteOp::Finish {
                key,
                dir,
                name,
                from,
            } => {
                let Some(p) = open.remove(&key) else { continue };
                let dest = unique_path(&dir, &name);
                let placed = p.file.sync_all().and_then(|()| {
                    drop(p.file);
                    std::fs::rename(&p.temp, &dest)
                });
                match placed {
                    Ok(()) => report(Written::Finished {
                        key,
                        path: dest,
                        bytes: p.written,
                        from,
                    }),
                    Err(e) => {
                        let _ = std::fs::remove_file(&p.temp);
                        report(Written::Failed {
                            key,
                            error: format!("cannot move {} into place: {e}", dest.display()),
                        });
                    }
                }
            }
            WriteOp::Abort { key } => remove(&mut open, &key),
        }
    }
    // The node stopped: partial files are of no use to anyone.
    for (_, p) in open {
        let _ = std::fs::remove_file(p.temp);
    }
}

fn remove(open: &mut HashMap<IncomingKey, Partial>, key: &IncomingKey) {
    if let Some(p) = open.remove(key) {
        drop(p.file);
        let _ = std::fs::remove_file(p.temp);
    }
}

/// `dir/name`, or `dir/name.1`, `.2`, … if taken.
fn unique_path(dir: &Path, name: &str) -> PathBuf {
    let first = dir.join(name);
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|i| dir.join(format!("{name}.{i}")))
        .find(|p| !p.exists())
        .expect("an unused name exists")
}

#[cfg(test)]
mod tests {
    use super::*;
    use grid_test_support::TempDir;

    fn next(rx: &mut mpsc::UnboundedReceiver<FileWork>) -> Written {
        match rx.blocking_recv().expect("the writer reports") {
            FileWork::Written(w) => w,
            FileWork::Prepared(_) => panic!("the writer sent a prepared segment"),
        }
    }

    /// A writer with one partial file opened in `dir`: the writer, its reports, the
    /// file's key and its partial path.
    fn opened(
        dir: &TempDir,
        n: u8,
    ) -> (
        FileWriter,
        mpsc::UnboundedReceiver<FileWork>,
        IncomingKey,
        PathBuf,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut w = FileWriter::start(tx);
        let key = (rns_core::AddressHash([n; 16]), [n; 32]);
        let temp = dir.0.join(format!(".grid-partial-{n}"));
        w.submit(WriteOp::Open {
            key,
            dir: dir.0.clone(),
            temp: temp.clone(),
        });
        (w, rx, key, temp)
    }

    #[test]
    fn segments_land_in_order_and_the_file_moves_into_place_under_a_free_name() {
        let dir = TempDir::new("file-writer");
        std::fs::write(dir.0.join("report.txt"), b"already here").unwrap();
        let (mut w, mut rx, key, temp) = opened(&dir, 1);
        w.submit(WriteOp::Write {
            key,
            data: b"METAhello ".to_vec(),
            skip: 4,
        });
        w.submit(WriteOp::Write {
            key,
            data: b"world".to_vec(),
            skip: 0,
        });
        assert_eq!(w.backlog, 11, "bytes handed over, metadata skipped");
        for _ in 0..2 {
            let Written::Drained { bytes } = next(&mut rx) else {
                panic!("expected a drained report")
            };
            w.drained(bytes);
        }
        assert_eq!(w.backlog, 0);
        w.submit(WriteOp::Finish {
            key,
            dir: dir.0.clone(),
            name: "report.txt".into(),
            from: None,
        });
        let Written::Finished { path, bytes, .. } = next(&mut rx) else {
            panic!("expected the file in place")
        };
        assert_eq!((path.clone(), bytes), (dir.0.join("report.txt.1"), 11));
        assert_eq!(std::fs::read(path).unwrap(), b"hello world");
        assert!(!temp.exists(), "the partial file is gone");
        assert_eq!(
            std::fs::read(dir.0.join("report.txt")).unwrap(),
            b"already here"
        );
    }

    #[test]
    fn an_aborted_transfer_leaves_nothing_and_a_failed_open_is_reported() {
        let dir = TempDir::new("file-writer-abort");
        let (mut w, mut rx, key, temp) = opened(&dir, 2);
        w.submit(WriteOp::Write {
            key,
            data: vec![7; 1000],
            skip: 0,
        });
        assert!(matches!(next(&mut rx), Written::Drained { bytes: 1000 }));
        assert!(temp.exists());
        w.submit(WriteOp::Abort { key });
        // A directory that cannot be created (a file is in the way): reported, not fatal.
        let blocked = dir.0.join("not-a-dir");
        std::fs::write(&blocked, b"x").unwrap();
        w.submit(WriteOp::Open {
            key,
            dir: blocked.clone(),
            temp: blocked.join(".grid-partial-z"),
        });
        assert!(matches!(next(&mut rx), Written::Failed { .. }));
        assert!(!temp.exists(), "the aborted partial file was removed");
    }

    #[test]
    fn the_writer_is_behind_past_its_backlog_bound() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut w = FileWriter::start(tx);
        let key = (rns_core::AddressHash([5; 16]), [6; 32]);
        // Writes for a file never opened are dropped by the writer, but counted here
        // until it reports them.
        w.backlog = MAX_WRITE_BACKLOG;
        assert!(!w.behind());
        w.submit(WriteOp::Write {
            key,
            data: vec![0; 10],
            skip: 0,
        });
        assert!(w.behind());
        w.drained(10);
        assert!(!w.behind());
    }
}
