//! What a run knows while it runs: each step's latest record, the passes loops are in,
//! the inputs, and the journal of steps completed (for `resume`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::interpolate::Scope;

/// Completed steps, kept where a run can be resumed from (a file on a node).
pub trait Journal: Send + Sync {
    /// The record of the step run under `key`, if it completed before.
    fn completed(&self, key: &str) -> Option<Value>;
    /// Keep the record of the step run under `key`, which completed.
    fn record(&self, key: &str, record: &Value);
}

/// A journal that forgets (runs that will not be resumed).
#[derive(Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn completed(&self, _: &str) -> Option<Value> {
        None
    }
    fn record(&self, _: &str, _: &Value) {}
}

/// A journal in memory (tests, and the node's cache of its file).
#[derive(Debug, Default)]
pub struct MemoryJournal(pub Mutex<BTreeMap<String, Value>>);

impl Journal for MemoryJournal {
    fn completed(&self, key: &str) -> Option<Value> {
        self.0.lock().ok()?.get(key).cloned()
    }
    fn record(&self, key: &str, record: &Value) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_string(), record.clone());
        }
    }
}

/// The run's state; shared by parallel branches, never locked across an await.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) records: HashMap<String, Value>,
    pub(crate) loops: HashMap<String, u64>,
    pub(crate) inputs: BTreeMap<String, Value>,
    pub(crate) env: HashMap<String, String>,
}

/// A snapshot of the state to interpolate with.
pub(crate) struct View<'a>(pub(crate) &'a Mutex<State>);

impl Scope for View<'_> {
    fn step(&self, id: &str) -> Option<Value> {
        self.0.lock().ok()?.records.get(id).cloned()
    }
    fn input(&self, name: &str) -> Option<Value> {
        self.0.lock().ok()?.inputs.get(name).cloned()
    }
    fn env(&self, var: &str) -> Option<String> {
        self.0.lock().ok()?.env.get(var).cloned()
    }
    fn loop_index(&self, id: &str) -> Option<u64> {
        self.0.lock().ok()?.loops.get(id).copied()
    }
}

/// A step's record: how it ended, what it answered, where it ran, how often it was tried.
pub(crate) fn record(status: &str, output: Value, node: Option<&str>, attempts: u32) -> Value {
    json!({"status": status, "output": output, "node": node, "attempts": attempts})
}
