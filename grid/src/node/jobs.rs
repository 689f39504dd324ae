//! Commands this node runs for callers on links, so that a caller can cancel its own
//! (`grid/cancel`): each running command is kept under (caller identity, correlation)
//! with a signal that ends it. A cancelled command answers `failed: cancelled by its
//! caller`; its handler's future is dropped (a model worker notices and stops).
//!
//! Only identified callers' commands are kept, at most [`MAX_JOBS`]; past that a new
//! command runs as before but cannot be cancelled. A caller can reach only its own
//! commands: the key holds its identity, as the link proved it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rns_core::AddressHash;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::commands::{CommandCall, CommandError, CANCEL_COMMAND};

/// Running commands kept for cancelling.
pub(crate) const MAX_JOBS: usize = 4096;

/// A running command's signal, by (caller identity, correlation).
type Running = HashMap<(AddressHash, u64), oneshot::Sender<()>>;

/// The running commands that can be cancelled.
#[derive(Clone, Default)]
pub(crate) struct Jobs {
    running: Arc<Mutex<Running>>,
}

/// A running command's place in [`Jobs`]: gone when dropped.
pub(crate) struct JobEntry {
    jobs: Jobs,
    key: (AddressHash, u64),
}

impl Drop for JobEntry {
    fn drop(&mut self) {
        self.jobs.lock().remove(&self.key);
    }
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keep `caller`'s command `correlation` until the entry is dropped; the receiver
    /// fires if the caller cancels it. `None` when the table is full or the same key
    /// already runs.
    pub(crate) fn start(
        &self,
        caller: AddressHash,
        correlation: u64,
    ) -> Option<(JobEntry, oneshot::Receiver<()>)> {
        let mut running = self.lock();
        if running.len() >= MAX_JOBS || running.contains_key(&(caller, correlation)) {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        running.insert((caller, correlation), tx);
        let key = (caller, correlation);
        Some((
            JobEntry {
                jobs: self.clone(),
                key,
            },
            rx,
        ))
    }

    /// `grid/cancel {"correlation": "<16 hex digits>"}` from `call.caller`.
    pub(crate) fn cancel(&self, call: &CommandCall) -> Result<Value, CommandError> {
        let Some(caller) = call.caller else {
            return Err(CommandError::bad_params(
                "identify on the link first: only a command's own caller may cancel it",
            ));
        };
        let correlation = call
            .params
            .get("correlation")
            .and_then(Value::as_str)
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .ok_or_else(|| {
                CommandError::bad_params("\"correlation\" must be the command's 16 hex digits")
            })?;
        let signal = self.lock().remove(&(caller, correlation));
        let cancelled = signal.is_some_and(|s| s.send(()).is_ok());
        Ok(json!({"cancelled": cancelled}))
    }
}

impl super::Node {
    /// Offer [`CANCEL_COMMAND`] (its rule: `BUILTIN_RULES`, provisional).
    pub(super) fn register_cancel(&mut self) {
        let jobs = self.grid.jobs.clone();
        let handler: crate::commands::CommandHandler = Arc::new(move |call| {
            let r = jobs.cancel(&call);
            Box::pin(async move { r })
        });
        self.grid.layer.register(
            CANCEL_COMMAND.into(),
            "cancel a command you started here that is still running (its correlation)".into(),
            handler,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(caller: Option<AddressHash>, correlation: &str) -> CommandCall {
        CommandCall {
            command: CANCEL_COMMAND.into(),
            params: json!({ "correlation": correlation }),
            caller,
            correlation: 1,
            progress: crate::commands::Progress::none(),
        }
    }

    #[test]
    fn only_the_caller_cancels_its_own_command_once() {
        let jobs = Jobs::default();
        let (me, other) = (AddressHash([1; 16]), AddressHash([2; 16]));
        let (entry, mut rx) = jobs.start(me, 0xab).unwrap();
        assert!(jobs.start(me, 0xab).is_none(), "one entry per key");
        let not_mine = jobs.cancel(&call(Some(other), "00000000000000ab")).unwrap();
        assert_eq!(not_mine["cancelled"], false);
        assert!(rx.try_recv().is_err());
        assert!(jobs.cancel(&call(None, "00000000000000ab")).is_err());
        assert!(jobs.cancel(&call(Some(me), "zz")).is_err());
        let mine = jobs.cancel(&call(Some(me), "00000000000000ab")).unwrap();
        assert_eq!(mine["cancelled"], true);
        assert!(rx.try_recv().is_ok());
        let again = jobs.cancel(&call(Some(me), "00000000000000ab")).unwrap();
        assert_eq!(again["cancelled"], false);
        drop(entry);
        assert!(jobs.lock().is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let jobs = Jobs::default();
        let me = AddressHash([1; 16]);
        let entries: Vec<_> = (0..MAX_JOBS as u64)
            .map(|i| jobs.start(me, i).unwrap())
            .collect();
        assert!(jobs.start(me, u64::MAX).is_none());
        drop(entries);
        assert!(jobs.start(me, u64::MAX).is_some());
    }
}
