//! `ai/generate` and `grid ask` between real `grid node` processes with the real model
//! (feature `llm`; SmolLM2-135M-Instruct from `GRID_MODELS`, fetched by
//! scripts/test.sh; fails loudly without it).
//!
//! A has no compute; B runs the model; C has compute on but a machine with too little
//! free memory (readings injected through `[governor] system_root`).
//! - `grid exec B ai/generate --stream`: the text streams as progress and adds up to the
//!   result; a strong adapter held only by A (B fetches it by hash, verified) changes
//!   the text; a zero adapter does not; the base text comes back after both.
//! - C refuses with the governor's typed reason, and `grid ask` on A runs on B.
//! - Killing B's worker mid-generation gives the caller a clear error; B stays up and
//!   the next request runs on a fresh worker.
//! - Cancelling a pipeline on A whose `llm` step runs on B stops the generation on B
//!   (`grid/cancel`: B's worker is stopped).
//! - A pipeline's `llm` step whose node is killed mid-generation completes on the other
//!   compute node.

mod common;

use std::time::Duration;

use common::*;
use grid_genome::package::{write_llama_package, LlamaAdapterSpec, SMOLLM2_135M};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(120);
const PROMPT: &str = "Name three colours of the rainbow.";

/// A stand-in `/proc` for a machine of 8 GiB with `available_mib` free.
fn machine(tag: &str, available_mib: u64) -> TempDir {
    let d = TempDir::new(tag);
    std::fs::create_dir_all(d.0.join("proc")).unwrap();
    std::fs::write(
        d.0.join("proc/meminfo"),
        format!(
            "MemTotal: {} kB\nMemAvailable: {} kB\n",
            8 << 20,
            available_mib << 10
        ),
    )
    .unwrap();
    std::fs::write(d.0.join("proc/loadavg"), "0.00 0 0 1/1 1\n").unwrap();
    d
}

fn node(iface: &str, extra: &str) -> Grid {
    Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n{extra}[[interface]]\n{iface}\n"
    ))
}

fn identity(g: &Grid) -> String {
    g.id()["identity"].as_str().unwrap().to_string()
}

/// A, the node without a model that the others connect to, and their interface line.
fn hub() -> (Grid, String) {
    let port = free_port();
    let a = node(
        &format!("type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\""),
        "",
    );
    (
        a,
        format!("type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\""),
    )
}

/// An adapter package of `strength` (0: B is zero, the adapter changes nothing).
fn adapter(pkgs: &TempDir, name: &str, description: &str, strength: f32) -> String {
    let dir = pkgs.0.join(name);
    let spec = LlamaAdapterSpec {
        shape: SMOLLM2_135M,
        r: 8,
        alpha: 16.0,
        strength,
        seed: 7,
    };
    write_llama_package(&dir, name, description, &spec).unwrap();
    dir.display().to_string()
}

/// `grid exec <node> ai/generate <params> --stream --json` from `from`: the progress
/// payloads and the result.
fn generate(from: &Grid, node: &str, params: Value) -> Result<(Vec<Value>, Value), String> {
    let (ok, out, err) = from.cli(&[
        "exec",
        node,
        "ai/generate",
        &params.to_string(),
        "--stream",
        "--json",
        "--timeout",
        "120",
    ]);
    if !ok {
        return Err(err);
    }
    let mut progress = Vec::new();
    let mut result = Value::Null;
    for line in out.lines() {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
        if v.get("progress").is_some() {
            progress.push(v["progress"].clone());
        } else {
            result = v["result"].clone();
        }
    }
    Ok((progress, result))
}

fn text(progress: &[Value]) -> String {
    progress
        .iter()
        .filter_map(|p| p["detail"]["text"].as_str())
        .collect()
}

/// CPU time a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command's ')'.
    fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
}

/// The pid of `g`'s generation worker, once one runs.
fn worker_pid(g: &Grid) -> Option<u32> {
    for entry in std::fs::read_dir("/proc").ok()? {
        let path = entry.ok()?.path();
        let Ok(cmd) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if cmd.contains("worker generate") && ppid == Some(g.pid()) {
            return path.file_name()?.to_str()?.parse().ok();
        }
    }
    None
}

#[test]
fn generation_streams_applies_adapters_places_and_survives_its_worker() {
    let _slot = slot();
    let models = std::env::var("GRID_MODELS").unwrap_or_else(|_| {
        panic!("GRID_MODELS is not set: run `python3 tools/models_fetch.py --llm .cache/models` (scripts/test.sh does this)")
    });
    assert!(
        std::path::Path::new(&models)
            .join(grid_genome::generate::DEFAULT_MODEL)
            .is_file(),
        "no model in {models}: run `python3 tools/models_fetch.py --llm {models}`"
    );
    let (a, client) = hub();
    let mut b = node(&client, "[compute]\nenabled = true\n");
    let small = machine("llm-c", 300);
    let c = node(
        &client,
        &format!(
            "[compute]\nenabled = true\n[governor]\nsystem_root = \"{}\"\n",
            small.0.display()
        ),
    );
    for g in [&a, &b, &c] {
        wait_for(T, "the genome service", || {
            g.cli(&["adapter", "list", "--json"]).0.then_some(())
        });
    }
    for peer in [&b, &c] {
        a.json(&["trust", &identity(peer), "trusted"]);
        peer.json(&["trust", &identity(&a), "trusted"]);
    }
    let (bd, cd) = (b.destination(), c.destination());

    // The base text, streamed: the pieces add up to the result.
    let base_params = json!({"prompt": PROMPT, "max_tokens": 24, "temperature": 0});
    let (progress, base) = wait_for(T, "a generation on B", || {
        generate(&a, &bd, base_params.clone()).ok()
    });
    let base_text = base["text"].as_str().unwrap().to_string();
    assert!(!base_text.trim().is_empty(), "{base}");
    assert!(progress.len() >= 2, "tokens stream: {progress:?}");
    assert_eq!(
        text(&progress),
        base_text,
        "the streamed pieces are the text"
    );
    assert!(base["completion_tokens"].as_u64().unwrap() > 0, "{base}");
    assert_eq!(base["adapter"], Value::Null);

    // A strong adapter held only by A: B fetches it by hash from A, and it changes the
    // text. A zero adapter (published on B) changes nothing.
    let pkgs = TempDir::new("llm-pkgs");
    let strong = a.json(&[
        "adapter",
        "publish",
        &adapter(
            &pkgs,
            "pirate-speech",
            "Answers in the voice of a pirate.",
            4.0,
        ),
    ]);
    let strong_hash = strong["content_hash"].as_str().unwrap().to_string();
    let zero = b.json(&[
        "adapter",
        "publish",
        &adapter(
            &pkgs,
            "plain-speech",
            "Answers plainly, changing nothing.",
            0.0,
        ),
    ]);
    let zero_hash = zero["content_hash"].as_str().unwrap().to_string();
    let mut with = base_params.clone();
    with["adapter"] = json!(strong_hash);
    with["adapter_from"] = json!([a.destination()]);
    let (_, changed) = generate(&a, &bd, with).unwrap();
    assert_eq!(changed["adapter"]["content_hash"], strong_hash.as_str());
    assert_ne!(
        changed["text"], base["text"],
        "the strong adapter changes the text"
    );
    let mut with = base_params.clone();
    with["adapter"] = json!(zero_hash);
    let (_, same) = generate(&a, &bd, with).unwrap();
    assert_eq!(same["text"], base["text"], "a zero adapter changes nothing");
    let (_, again) = generate(&a, &bd, base_params.clone()).unwrap();
    assert_eq!(
        again["text"], base["text"],
        "no adapter leaks into the next request"
    );

    // C's machine has 300 MiB free: its governor refuses, typed, and `grid ask` on A
    // runs the job on B instead.
    let err = generate(&a, &cd, base_params.clone()).unwrap_err();
    assert!(
        err.contains("busy") && (err.contains("not_enough_free") || err.contains("pressure")),
        "{err}"
    );
    let (ok, out, err) = a.cli(&[
        "ask",
        "talk like a pirate",
        "--prompt",
        PROMPT,
        "--max-tokens",
        "16",
        "--temperature",
        "0",
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("Ran on:       {bd}")), "{out}");
    assert!(out.contains("pirate-speech"), "{out}");

    // Kill B's worker mid-generation: a clear error, B stays up, the next one works.
    let long = json!({"prompt": "Write a long story about the sea.", "max_tokens": 2000,
                      "temperature": 0.8, "seed": 3});
    let err = std::thread::scope(|s| {
        // Kill once the first tokens reached A (its job events).
        let first = s.spawn(|| {
            a.cli(&[
                "listen",
                "grid:job:*:progress",
                "--count",
                "1",
                "--timeout",
                "100",
            ])
        });
        std::thread::sleep(Duration::from_millis(500));
        let run = s.spawn(|| generate(&a, &bd, long));
        let (ok, seen, _) = first.join().unwrap();
        assert!(ok && seen.contains("progress"), "{seen}");
        let pid = worker_pid(&b).expect("B's worker runs");
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        (pid, run.join().unwrap().unwrap_err())
    });
    let (pid, err) = err;
    assert!(err.contains("stopped mid-request"), "{err}");
    assert!(b.alive() && b.cli(&["status"]).0, "B is still up");
    let (_, after) = generate(&a, &bd, base_params).unwrap();
    assert_eq!(after["text"], base["text"], "a fresh worker, the same text");
    assert_ne!(worker_pid(&b), Some(pid));

    // Cancel a pipeline whose step generates on B: B's generation stops (its worker is
    // stopped at the next token) and the run ends cancelled.
    let file = pkgs.0.join("long.json");
    std::fs::write(
        &file,
        json!({"name": "long", "steps": [{"id": "story", "type": "llm", "target": bd,
               "prompt": "Write a long story about the sea.", "max_tokens": 2000,
               "temperature": 0.8, "seed": 5}]})
        .to_string(),
    )
    .unwrap();
    let started = a.json(&["pipeline", "run", file.to_str().unwrap(), "--detach"]);
    let handle = started["handle"].as_str().unwrap().to_string();
    let worker = wait_for(T, "B generating for the pipeline", || {
        let pid = worker_pid(&b)?;
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(500));
        (cpu_ticks(pid) > before + 10).then_some(pid)
    });
    a.json(&["pipeline", "cancel", &handle]);
    wait_for(
        Duration::from_secs(30),
        "B's worker stopped by the cancel",
        || (worker_pid(&b) != Some(worker)).then_some(()),
    );
    let status = wait_for(T, "the run to end", || {
        let s = a.json(&["pipeline", "status", &handle]);
        (s["status"] != "running").then_some(s)
    });
    assert_eq!(status["status"], "cancelled", "{status}");
    assert!(b.alive(), "B is still up");
}

/// A pipeline's `llm` step placed on the least loaded of two compute nodes: the node
/// generating it is killed mid-step, and the step completes on the other one.
#[test]
fn a_step_whose_node_dies_mid_generation_completes_on_another() {
    let _slot = slot();
    let (a, client) = hub();
    let mut b = node(&client, "[compute]\nenabled = true\n");
    let mut d = node(&client, "[compute]\nenabled = true\n");
    for g in [&a, &b, &d] {
        wait_for(T, "the genome service", || {
            g.cli(&["adapter", "list", "--json"]).0.then_some(())
        });
    }
    for peer in [&b, &d] {
        a.json(&["trust", &identity(peer), "trusted"]);
        peer.json(&["trust", &identity(&a), "trusted"]);
    }
    // Both compute offers have reached A: a plan names one and the other as next.
    let (_pkgs, tides) = tide_package();
    a.json(&["adapter", "publish", tides.to_str().unwrap()]);
    wait_for(T, "both compute nodes in A's plan", || {
        let (ok, out, _) = a.cli(&["ask", "tide tables", "--dry-run", "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (ok && v["alternatives"].as_array()?.len() == 1).then_some(())
    });
    let files = TempDir::new("llm-pipeline");
    let file = files.0.join("story.json");
    std::fs::write(
        &file,
        json!({"name": "story", "steps": [{"id": "story", "type": "llm",
               "prompt": "Write a short story about a lighthouse.", "max_tokens": 160,
               "temperature": 0, "placement": {"least_loaded": true}}]})
        .to_string(),
    )
    .unwrap();
    let started = a.json(&["pipeline", "run", file.to_str().unwrap(), "--detach"]);
    let handle = started["handle"].as_str().unwrap().to_string();
    // Whichever node generates it is killed (its whole node process) mid-step.
    let first_is_b = wait_for(T, "a node generating the step", || {
        [(true, &b), (false, &d)].into_iter().find_map(|(is_b, g)| {
            let pid = worker_pid(g)?;
            let before = cpu_ticks(pid);
            std::thread::sleep(Duration::from_millis(300));
            (cpu_ticks(pid) > before + 5).then_some(is_b)
        })
    });
    let (dead, other) = if first_is_b {
        (&mut b, &d)
    } else {
        (&mut d, &b)
    };
    dead.kill();
    let other = other.destination();
    let end = wait_for(T, "the run to end", || {
        let s = a.json(&["pipeline", "status", &handle]);
        (s["status"] != "running").then_some(s)
    });
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["steps"]["story"]["node"], other.as_str(), "{end}");
    assert!(
        end["steps"]["story"]["output"]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()),
        "{end}"
    );
}

/// The essay-grading story of docs/sentinel.md, for real: A (no model) runs a pipeline
/// whose loop grades each essay with the skill found by its description (a grading
/// adapter A holds), on B, the compute node, which fetches the adapter by hash; each
/// grade is announced as an event.
#[test]
fn essays_are_graded_with_a_skill_on_the_compute_node() {
    let _slot = slot();
    let (a, client) = hub();
    let b = node(&client, "[compute]\nenabled = true\n");
    for g in [&a, &b] {
        wait_for(T, "the genome service", || {
            g.cli(&["adapter", "list", "--json"]).0.then_some(())
        });
    }
    a.json(&["trust", &identity(&b), "trusted"]);
    b.json(&["trust", &identity(&a), "trusted"]);
    let pkgs = TempDir::new("llm-grader");
    let grader = adapter(
        &pkgs,
        "essay-grader",
        "Grades middle-school essays against a rubric, from 1 to 10, and says why.",
        0.02,
    );
    let published = a.json(&["adapter", "publish", &grader]);
    let hash = published["content_hash"].as_str().unwrap().to_string();
    let bd = b.destination();
    wait_for(T, "B's compute offer at A", || {
        let (ok, out, _) = a.cli(&["ask", "grade an essay", "--dry-run", "--json"]);
        let v: Value = serde_json::from_str(&out).ok()?;
        (ok && v["plan"]["node"] == bd.as_str() && v["adapter"]["name"] == "essay-grader")
            .then_some(())
    });

    let files = TempDir::new("llm-essays");
    let file = files.0.join("grade-essays.json");
    std::fs::write(
        &file,
        json!({"name": "grade-essays", "inputs": {"essays": {"description": "a list of texts"}},
          "steps": [
            {"id": "each", "type": "loop", "count": 3, "steps": [
              {"id": "grade", "type": "llm", "skill": "grade a middle-school essay with a rubric",
               "prompt": "Grade this essay from 1 to 10 and say why: {{input.essays[loop.each]}}",
               "max_tokens": 24, "temperature": 0, "retries": 2},
              {"id": "report", "type": "emit", "event": "essays:graded",
               "payload": {"essay": "{{loop.each.index}}", "grade": "{{steps.grade.output.result.text}}"}}]}
          ]})
        .to_string(),
    )
    .unwrap();
    let essays = json!([
        "My summer holiday was at the sea. We swam every day and I learned to sail.",
        "Volcanoes erupt when magma rises. They can build islands and destroy towns.",
        "I think homework should be shorter because children need time to play outside.",
    ]);
    let input = format!("essays={essays}");
    let ran = a.json(&["pipeline", "run", file.to_str().unwrap(), "--input", &input]);
    eprintln!("{ran:#}");
    assert_eq!(ran["status"], "completed", "{ran}");
    // The status holds each step's last pass; every pass announced its grade.
    let grade = &ran["steps"]["grade"];
    assert_eq!(grade["status"], "completed", "{ran}");
    // Found by meaning, run on B with the grading adapter (fetched from A by hash).
    let out = &grade["output"];
    assert_eq!(out["adapter"]["name"], "essay-grader", "{grade}");
    assert_eq!(out["plan"]["node"], bd.as_str(), "{grade}");
    assert_eq!(
        out["result"]["adapter"]["content_hash"],
        hash.as_str(),
        "{grade}"
    );
    assert_eq!(ran["steps"]["each"]["output"]["passes"], 3, "{ran}");
    let (_, events, _) = a.cli(&["listen", "essays:*", "--recent", "--timeout", "1", "--json"]);
    let mut graded: Vec<(String, String)> = events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| {
            let p = &e["payload"];
            (
                p["essay"].to_string(),
                p["grade"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    graded.sort();
    assert_eq!(
        graded.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{events}"
    );
    assert!(
        graded.iter().all(|(_, g)| !g.trim().is_empty()),
        "{graded:?}"
    );
    // Each essay was in its own prompt: three different texts.
    let distinct: std::collections::BTreeSet<&String> = graded.iter().map(|(_, g)| g).collect();
    assert_eq!(distinct.len(), 3, "{graded:?}");
}
