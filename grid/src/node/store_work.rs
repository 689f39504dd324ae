//! The bundle store as the node's loop uses it: every read and write runs on a blocking
//! thread, never on the loop (a write waits for an fsync; a read can wait on the disk when
//! redb's pages are not in memory). Work whose result the loop needs comes back to it as an
//! [`crate::api::Call`] (`ExchangeDone`, `TakeCommitted`); work that only answers a caller
//! answers from the blocking thread.
//!
//! The jobs in flight are counted. Work a peer can ask for (exchanges on `grid/bundle`) is
//! refused past [`MAX_STORE_JOBS`], so a peer cannot queue unbounded work on the blocking
//! pool; work this node's own user or courier asks for is always run (the courier runs a
//! bounded number of exchanges, and the node's users wait for their answers).
//!
//! Jobs run side by side, in no set order. Nothing the node does depends on their order:
//! each exchange's writes are one transaction, and whether a bundle for this node was
//! handled before is decided inside it (not by an earlier read), so two copies stored at
//! once cannot both be acted on; an ack reads and removes in one job; a pull reads what is
//! durable when it runs (bundles still being committed go in the next pull); a job result
//! looked up while its record is being written is found among the recent events, which
//! the loop records at the same moment. The type is the guarantee that the loop itself
//! never calls the store: it offers no store method, only ways to run a job elsewhere.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::bundle::store::BundleStore;

/// Store jobs in flight, at most, before exchanges from peers are refused.
pub(crate) const MAX_STORE_JOBS: usize = 64;

/// Why store work from a peer was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum StoreBusy {
    /// [`MAX_STORE_JOBS`] jobs are in flight already.
    #[error("the bundle store is busy ({0} jobs in flight); try again later")]
    Full(usize),
}

/// The bundle store, reached only through blocking threads.
#[derive(Debug, Clone)]
pub(crate) struct StoreWork {
    store: Arc<BundleStore>,
    in_flight: Arc<AtomicUsize>,
}

/// A job's place among those in flight, held until the job ends (also when it panics) or
/// the slot is dropped unused.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StoreWork {
    /// The node's handle on `store`.
    pub(crate) fn new(store: Arc<BundleStore>) -> StoreWork {
        StoreWork {
            store,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Jobs started and not yet finished.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// A place for a job a peer asked for, unless [`MAX_STORE_JOBS`] are in flight.
    pub(crate) fn reserve(&self) -> Result<Slot, StoreBusy> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_STORE_JOBS).then_some(n + 1)
            })
            .map(|_| Slot(self.in_flight.clone()))
            .map_err(StoreBusy::Full)
    }

    /// Run `job` on a blocking thread, however many are in flight (work for this node's
    /// own user or courier).
    pub(crate) fn run(&self, job: impl FnOnce(&BundleStore) + Send + 'static) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.run_in(Slot(self.in_flight.clone()), job);
    }

    /// Run `job` on a blocking thread in the place `slot` reserved.
    pub(crate) fn run_in(&self, slot: Slot, job: impl FnOnce(&BundleStore) + Send + 'static) {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            job(&store);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::test_util::TempDir;

    fn work(dir: &TempDir) -> StoreWork {
        let store = BundleStore::open(&dir.0.join("bundles.redb"), 1 << 20).unwrap();
        StoreWork::new(Arc::new(store))
    }

    /// Wait until no job is in flight.
    async fn settle(w: &StoreWork) {
        let started = std::time::Instant::now();
        while w.in_flight() > 0 {
            assert!(started.elapsed() < Duration::from_secs(20), "slots freed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn peer_work_is_refused_past_the_bound_and_own_work_still_runs() {
        let dir = TempDir::new("store-work-bound");
        let w = work(&dir);
        // Jobs that hold their slot until the gate opens (is dropped).
        let (gate, gate_rx) = mpsc::channel::<()>();
        let gate_rx = Arc::new(std::sync::Mutex::new(gate_rx));
        for _ in 0..MAX_STORE_JOBS {
            let g = gate_rx.clone();
            let slot = w.reserve().expect("under the bound");
            w.run_in(slot, move |_| {
                let _ = g.lock().map(|rx| rx.recv());
            });
        }
        assert_eq!(w.in_flight(), MAX_STORE_JOBS);
        assert_eq!(w.reserve().unwrap_err(), StoreBusy::Full(MAX_STORE_JOBS));
        // The node's own work is not refused, and reads the real store.
        let (tx, rx) = tokio::sync::oneshot::channel();
        w.run(move |s| {
            let _ = tx.send(s.stats().map(|st| st.bundles));
        });
        assert_eq!(w.in_flight(), MAX_STORE_JOBS + 1);
        assert_eq!(rx.await.unwrap().unwrap(), 0);
        drop(gate);
        settle(&w).await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let slot = w.reserve().expect("room again once the jobs ended");
        w.run_in(slot, move |_| {
            let _ = tx.send(());
        });
        rx.await.unwrap();
        settle(&w).await;
        // A slot reserved and never used is given back.
        drop(w.reserve().unwrap());
        assert_eq!(w.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_job_that_panics_frees_its_slot() {
        let dir = TempDir::new("store-work-panic");
        let w = work(&dir);
        w.run(|_| panic!("a store job failed badly"));
        settle(&w).await;
    }
}
