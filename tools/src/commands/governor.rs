//! `grid governor`: the node's budgets, pressure, running jobs and loaded models.

use std::time::Duration;

use anyhow::Result;
use grid::state::StateDir;
use serde_json::{json, Value};

/// Bytes for a person.
fn size(v: &Value) -> String {
    grid_governor::human_bytes(v.as_u64().unwrap_or(0))
}

/// `grid governor`
pub(crate) fn governor(state: &StateDir, json_out: bool) -> Result<()> {
    let v = super::local_exec(state, "governor/status", json!({}), Duration::from_secs(5))?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    let (p, s) = (&v["profile"], &v["status"]);
    let gpus = p["gpus"].as_array().cloned().unwrap_or_default();
    let vram = if gpus.is_empty() {
        "no GPU".to_string()
    } else {
        format!("{} of VRAM", size(&s["budget"]["vram"]))
    };
    println!(
        "Budget:  {} of RAM for grid work ({} in use), {vram}",
        size(&s["budget"]["ram"]),
        size(&s["ram_in_use"]),
    );
    let level = |r: &Value| {
        format!(
            "{} ({:.2})",
            r["level"].as_str().unwrap_or("?"),
            r["pressure"].as_f64().unwrap_or(0.0)
        )
    };
    println!(
        "Memory:  {}, {} free of {}",
        level(&s["memory"]),
        size(&s["mem_available"]),
        size(&p["mem"]["total"])
    );
    let features: Vec<&str> = p["cpu"]["features"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!(
        "CPU:     {}, {} cores{}",
        level(&s["cpu"]),
        p["cores"],
        if features.is_empty() {
            String::new()
        } else {
            format!(" ({})", features.join(" "))
        }
    );
    for g in &gpus {
        println!(
            "GPU:     {} ({} of VRAM)",
            g["name"].as_str().unwrap_or("?"),
            size(&g["vram_total"])
        );
    }
    if !gpus.is_empty() {
        println!("VRAM:    {}", level(&s["vram"]));
    }
    let jobs = s["jobs"].as_array().cloned().unwrap_or_default();
    if jobs.is_empty() {
        println!("Jobs:    none running");
    }
    for j in &jobs {
        println!(
            "Job:     {} ({}, {}, {})",
            j["label"].as_str().unwrap_or("?"),
            j["kind"].as_str().unwrap_or("?"),
            j["priority"].as_str().unwrap_or("?"),
            size(&j["ram"])
        );
    }
    let loaded = s["loaded"].as_array().cloned().unwrap_or_default();
    if loaded.is_empty() {
        println!("Loaded:  no models");
    }
    for m in &loaded {
        println!(
            "Loaded:  {} ({}, {}, idle {} s{})",
            m["key"].as_str().unwrap_or("?"),
            size(&m["bytes"]),
            m["priority"].as_str().unwrap_or("?"),
            m["idle_secs"],
            if m["in_use"].as_u64().unwrap_or(0) > 0 {
                ", in use"
            } else {
                ""
            }
        );
    }
    Ok(())
}
