//! The audit log is appended on a thread of its own, never on the node's event loop (a
//! write to the log file may wait on a slow disk). The loop hands each record over through
//! a bounded queue of [`AUDIT_QUEUE`] records and never waits: when the queue is full the
//! record is left out and counted, with a warning at most every [`REPORT_EVERY`]. The
//! thread appends records in the order they were handed over. On a clean stop the node
//! closes the writer ([`AuditWriter::close`]), which waits until every record handed over
//! is written; if the node is dropped instead, the thread still drains the queue before it
//! ends.

use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rns_core::Instant;

use crate::audit::{AuditEntry, AuditError, AuditLog};

/// Records handed to the writer and not yet written, at most; more are left out.
pub(crate) const AUDIT_QUEUE: usize = 4096;
/// How often, at most, records left out (or failed writes) are reported in the node's log.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The loop's handle on the audit writer thread.
#[derive(Debug)]
pub(crate) struct AuditWriter {
    /// The queue to the thread (taken on close, which ends the thread).
    tx: Option<std_mpsc::SyncSender<AuditEntry>>,
    thread: Option<JoinHandle<()>>,
    /// Records left out because the queue was full (or the thread had ended).
    dropped: u64,
    /// When records left out were last reported.
    reported: Option<Instant>,
}

impl AuditWriter {
    /// Start the thread that appends to `log`.
    pub(crate) fn start(mut log: AuditLog) -> std::io::Result<AuditWriter> {
        AuditWriter::spawn(AUDIT_QUEUE, move |e| log.append(e))
    }

    /// Start a thread that passes each record handed over to `sink`, in order, through a
    /// queue of `capacity` records.
    fn spawn(
        capacity: usize,
        mut sink: impl FnMut(&AuditEntry) -> Result<(), AuditError> + Send + 'static,
    ) -> std::io::Result<AuditWriter> {
        let (tx, rx) = std_mpsc::sync_channel::<AuditEntry>(capacity);
        let thread = std::thread::Builder::new()
            .name("grid-audit-writer".into())
            .spawn(move || {
                let mut failed = Failures::default();
                while let Ok(entry) = rx.recv() {
                    if let Err(e) = sink(&entry) {
                        failed.note(&e);
                    }
                }
            })?;
        Ok(AuditWriter {
            tx: Some(tx),
            thread: Some(thread),
            dropped: 0,
            reported: None,
        })
    }

    /// Hand `entry` to the writer without waiting. Returns whether it was queued; if the
    /// queue is full it is left out, counted and (now and then) reported.
    pub(crate) fn submit(&mut self, now: Instant, entry: AuditEntry) -> bool {
        let queued = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.try_send(entry).is_ok());
        if !queued {
            self.dropped += 1;
            let due = self
                .reported
                .is_none_or(|t| now.saturating_since(t) >= REPORT_EVERY);
            if due {
                tracing::warn!(
                    left_out = self.dropped,
                    queue = AUDIT_QUEUE,
                    "audit log: records arrive faster than the disk takes them; some records left out"
                );
                self.reported = Some(now);
            }
        }
        queued
    }

    /// Stop taking records and wait until every record handed over is written. This
    /// blocks: call it off the event loop.
    pub(crate) fn close(mut self) {
        self.tx = None; // the thread ends once it has drained the queue
        if self.dropped > 0 {
            tracing::info!(
                left_out = self.dropped,
                "audit log: records left out while the queue was full"
            );
        }
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the audit writer thread panicked");
            }
        }
    }
}

/// Failed appends, reported at most every [`REPORT_EVERY`] (a full disk fails every one).
#[derive(Default)]
struct Failures {
    count: u64,
    reported: Option<std::time::Instant>,
}

impl Failures {
    fn note(&mut self, e: &AuditError) {
        self.count += 1;
        if self.reported.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
            tracing::warn!(error = %e, failed = self.count, "cannot append to the audit log");
            self.reported = Some(std::time::Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::audit::{read_last, Direction, Outcome, AUDIT_FILE};
    use crate::test_util::TempDir;

    fn entry(n: u64) -> AuditEntry {
        AuditEntry {
            time_ms: 1_767_225_600_000 + n,
            direction: Direction::In,
            peer: "6b9f66014d9853faab220fba47d02761".into(),
            command: "gpu/stats".into(),
            correlation: n,
            outcome: Outcome::Success,
            duration_ms: 1,
        }
    }

    fn now() -> Instant {
        Instant::from_millis(1_767_225_600_000)
    }

    #[test]
    fn records_are_written_in_order_and_read_back_after_close() {
        let dir = TempDir::new("audit-writer-order");
        let path = dir.0.join(AUDIT_FILE);
        let mut w = AuditWriter::start(AuditLog::open(&path).unwrap()).unwrap();
        // As many as the queue holds, handed over faster than the thread writes them:
        // close must wait for all of them.
        for n in 0..AUDIT_QUEUE as u64 {
            assert!(w.submit(now(), entry(n)));
        }
        assert_eq!(w.dropped, 0);
        w.close();
        let got: Vec<u64> = read_last(&path, 10 * AUDIT_QUEUE)
            .unwrap()
            .iter()
            .map(|e| e.correlation)
            .collect();
        assert_eq!(got, (0..AUDIT_QUEUE as u64).collect::<Vec<_>>());
    }

    /// A writer whose sink blocks until `gate` is opened (dropped), telling `entered`
    /// when it starts on a record; what it was given goes to `seen`.
    struct Gated {
        w: AuditWriter,
        entered: std_mpsc::Receiver<()>,
        gate: std_mpsc::Sender<()>,
        seen: Arc<Mutex<Vec<u64>>>,
    }

    fn gated(capacity: usize) -> Gated {
        let (entered_tx, entered) = std_mpsc::channel();
        let (gate, gate_rx) = std_mpsc::channel::<()>();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let written = seen.clone();
        let w = AuditWriter::spawn(capacity, move |e| {
            let _ = entered_tx.send(());
            let _ = gate_rx.recv(); // returns once the gate is dropped
            written.lock().unwrap().push(e.correlation);
            Ok(())
        })
        .unwrap();
        Gated {
            w,
            entered,
            gate,
            seen,
        }
    }

    #[test]
    fn a_full_queue_leaves_records_out_and_counts_them_without_waiting() {
        let Gated {
            mut w,
            entered,
            gate,
            seen,
        } = gated(4);
        assert!(w.submit(now(), entry(0)));
        entered
            .recv_timeout(Duration::from_secs(10))
            .expect("the writer takes the first record");
        // The sink is stuck on record 0: four more fill the queue, the rest are left out.
        for n in 1..=4 {
            assert!(w.submit(now(), entry(n)), "record {n} fits the queue");
        }
        let started = std::time::Instant::now();
        for n in 5..=7 {
            assert!(!w.submit(now(), entry(n)), "record {n} is left out");
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "submit never waits"
        );
        assert_eq!(w.dropped, 3);
        drop(gate);
        w.close();
        assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn close_drains_what_was_handed_over_while_the_disk_was_slow() {
        let Gated {
            mut w,
            entered,
            gate,
            seen,
        } = gated(64);
        for n in 0..50 {
            assert!(w.submit(now(), entry(n)));
        }
        entered.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(seen.lock().unwrap().is_empty(), "nothing written yet");
        // The disk catches up only after close has begun.
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(gate);
        });
        w.close();
        opener.join().unwrap();
        assert_eq!(*seen.lock().unwrap(), (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn a_failing_sink_does_not_stop_the_writer() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let written = seen.clone();
        let mut w = AuditWriter::spawn(8, move |e| {
            written.lock().unwrap().push(e.correlation);
            if e.correlation == 1 {
                return Err(AuditError::Io {
                    path: AUDIT_FILE.into(),
                    source: std::io::Error::other("disk full"),
                });
            }
            Ok(())
        })
        .unwrap();
        for n in 0..3 {
            w.submit(now(), entry(n));
        }
        w.close();
        assert_eq!(*seen.lock().unwrap(), [0, 1, 2]);
    }
}
