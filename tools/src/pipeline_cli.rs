//! `grid pipeline run|status|cancel|resume|list`: the node's `sentinel/*` commands.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use grid::state::StateDir;
use serde_json::{json, Map, Value};

use crate::commands::node_exec;

/// What `grid pipeline` does.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum PipelineAction {
    /// Run a pipeline file on this node (its steps run where they fit).
    Run {
        /// The pipeline (JSON).
        file: PathBuf,
        /// An input, `name=value` (value as JSON, else as text); repeatable.
        #[arg(long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// Print the handle at once instead of waiting for the end.
        #[arg(long)]
        detach: bool,
        /// The longest to wait for the end, in seconds.
        #[arg(long, default_value_t = 3600.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A run's status, progress and steps.
    Status {
        /// Its handle.
        handle: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a run before its next step.
    Cancel {
        /// Its handle.
        handle: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run an interrupted pipeline again: completed steps are not run again.
    Resume {
        /// Its handle.
        handle: String,
        /// Print the handle at once instead of waiting for the end.
        #[arg(long)]
        detach: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The runs this node knows.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `name=value` inputs as a JSON object.
fn inputs(pairs: &[String]) -> Result<Value> {
    let mut m = Map::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| anyhow!("--input {p}: say name=value"))?;
        let v = serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        m.insert(k.to_string(), v);
    }
    Ok(Value::Object(m))
}

fn print_run(v: &Value) {
    println!(
        "{}  {}  {}  {}%",
        v["handle"].as_str().unwrap_or("?"),
        v["name"].as_str().unwrap_or(""),
        v["status"].as_str().unwrap_or("?"),
        v["progress"]
    );
    if let Some(e) = v["error"].as_str() {
        println!("  error: {e}");
    }
    for (id, rec) in v["steps"].as_object().into_iter().flatten() {
        let node = rec["node"]
            .as_str()
            .map_or(String::new(), |n| format!(" on {n}"));
        println!("  {id:<20} {}{node}", rec["status"].as_str().unwrap_or("?"));
    }
}

fn show(v: &Value, json_out: bool) {
    if json_out {
        println!("{v}");
    } else {
        print_run(v);
    }
}

/// `grid pipeline …` on this node, or `on` another.
pub(crate) fn pipeline(state: &StateDir, on: Option<&str>, action: PipelineAction) -> Result<()> {
    let quick = Duration::from_secs(10);
    let node = match on {
        Some(n) => {
            let _: rns_core::AddressHash = n
                .parse()
                .map_err(|e| anyhow!("--on {n}: not a node hash ({e})"))?;
            n
        }
        None => "local-only",
    };
    let local_exec = |state: &StateDir, command: &str, params: Value, wait: Duration| {
        node_exec(state, node, command, params, wait)
    };
    match action {
        PipelineAction::Run {
            file,
            inputs: given,
            detach,
            timeout,
            json,
        } => {
            if !(timeout.is_finite() && timeout > 0.0) {
                bail!("--timeout must be a positive number of seconds");
            }
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let v = local_exec(
                state,
                "sentinel/run",
                json!({"pipeline": text, "inputs": inputs(&given)?, "detach": detach}),
                Duration::from_secs_f64(timeout),
            )
            .map_err(|e| anyhow!("{}: {e}", file.display()))?;
            show(&v, json);
            if v["status"] == "failed" || v["status"] == "cancelled" {
                bail!(
                    "pipeline {}: {}",
                    v["status"].as_str().unwrap_or("?"),
                    v["error"].as_str().unwrap_or("")
                );
            }
        }
        PipelineAction::Status { handle, json } => {
            show(
                &local_exec(state, "sentinel/status", json!({"handle": handle}), quick)?,
                json,
            );
        }
        PipelineAction::Cancel { handle, json } => {
            let v = local_exec(state, "sentinel/cancel", json!({"handle": handle}), quick)?;
            if json {
                println!("{v}");
            } else {
                println!("cancelling {handle}: it stops before its next step");
            }
        }
        PipelineAction::Resume {
            handle,
            detach,
            json,
        } => {
            let v = local_exec(
                state,
                "sentinel/resume",
                json!({"handle": handle, "detach": detach}),
                Duration::from_secs(3600),
            )?;
            show(&v, json);
        }
        PipelineAction::List { json } => {
            let v = local_exec(state, "sentinel/list", json!({}), quick)?;
            if json {
                println!("{v}");
            } else if v.as_array().is_some_and(|a| a.is_empty()) {
                println!("no pipeline runs here (start one with `grid pipeline run <file>`)");
            } else {
                for r in v.as_array().into_iter().flatten() {
                    print_run(r);
                }
            }
        }
    }
    Ok(())
}
