//! A model worker process with its pipes (`grid worker embed|generate`): started with
//! piped stdin and stdout (stderr shared with the node, for its log), and killed,
//! reaped and taken out of the governor's registry of loaded models when dropped.

use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use grid::governor::{GovernorHandle, Priority};

/// A running worker process.
pub(crate) struct WorkerProcess {
    pub(crate) child: Child,
    pub(crate) stdin: ChildStdin,
    pub(crate) stdout: ChildStdout,
    /// Where its memory is registered, and under which key.
    registered: Option<(GovernorHandle, &'static str)>,
}

impl WorkerProcess {
    /// Start `program args…`; why not, for people.
    pub(crate) fn spawn(program: &Path, args: &[String]) -> Result<WorkerProcess, String> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: {e}", program.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("the worker has no pipes".into());
        };
        Ok(WorkerProcess {
            child,
            stdin,
            stdout,
            registered: None,
        })
    }

    /// Account for its `bytes` in `governor`'s registry of loaded models as `key` until
    /// it is dropped (a model that may be evicted when idle).
    pub(crate) fn register(&mut self, governor: &GovernorHandle, key: &'static str, bytes: u64) {
        governor.loaded(key, bytes, Priority::Background);
        self.registered = Some((governor.clone(), key));
    }

    /// How it ended, if it has; else `otherwise`.
    pub(crate) fn ended(&mut self, otherwise: impl Into<String>) -> String {
        match self.child.try_wait() {
            Ok(Some(status)) => format!("it ended: {status}"),
            _ => otherwise.into(),
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((g, key)) = &self.registered {
            g.unloaded(key);
        }
    }
}
