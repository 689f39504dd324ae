//! `grid ask "<need>" --prompt T`: the node's `genome/ask` (find the skill by meaning,
//! place the job, run it) from the command line; `--dry-run` shows the plan.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use grid::state::StateDir;
use serde_json::{json, Value};

use std::io::Write;

use crate::commands::{exec_streaming, local_exec};

/// `grid ask`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct AskArgs {
    /// What you need, in your words ("explain tide tables to a 10-year-old").
    need: String,
    /// The prompt for the model.
    #[arg(long, conflicts_with = "file")]
    prompt: Option<String>,
    /// Read the prompt from this file.
    #[arg(long)]
    file: Option<PathBuf>,
    /// How far to search for the skill: immediate, quick, thorough, exhaustive.
    #[arg(long, default_value = "quick")]
    patience: String,
    /// The most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// Sampling temperature (0: always the likeliest token).
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// Seed for sampling (the same seed and prompt give the same answer).
    #[arg(long)]
    seed: Option<u64>,
    /// Show the plan (skill, node, why, alternatives) without running anything.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// How long the search may take at each patience, plus generation.
fn wait(patience: &str) -> Result<Duration> {
    let search = match patience {
        "immediate" => 10,
        "quick" => 15,
        "thorough" => 30,
        "exhaustive" => 90,
        other => bail!("--patience {other}: immediate, quick, thorough or exhaustive"),
    };
    Ok(Duration::from_secs(search + 310))
}

fn print_place(label: &str, p: &Value) {
    let here = if p["here"] == json!(true) {
        " (this node)"
    } else {
        ""
    };
    println!(
        "{label:<14}{}{here}\n              {}",
        p["node"].as_str().unwrap_or("?"),
        p["why"].as_str().unwrap_or("")
    );
    if let Some(from) = p["adapter_fetched_from"].as_array() {
        let from: Vec<&str> = from.iter().filter_map(Value::as_str).collect();
        println!("              fetches the adapter from {}", from.join(", "));
    }
}

/// `grid ask`
pub(crate) fn ask(state: &StateDir, a: AskArgs) -> Result<()> {
    let prompt = match (&a.prompt, &a.file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(f)) => {
            Some(std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?)
        }
        (None, None) if a.dry_run => None,
        (None, None) => {
            bail!("give the prompt with --prompt TEXT or --file F (or --dry-run to see the plan)")
        }
    };
    if !(0.0..=2.0).contains(&a.temperature) {
        bail!("--temperature must be between 0 and 2");
    }
    let params = json!({"need": a.need, "prompt": prompt, "patience": a.patience,
               "max_tokens": a.max_tokens, "temperature": a.temperature, "seed": a.seed,
               "dry_run": a.dry_run});
    if a.dry_run || a.json {
        let v = local_exec(state, "genome/ask", params, wait(&a.patience)?)?;
        if a.json {
            println!("{v}");
        } else {
            print_plan(&v, true);
        }
        return Ok(());
    }
    // The answer streams to stdout as the model writes it; the steps go to stderr.
    let mut shown = Value::Null;
    let mut streamed = false;
    let done = exec_streaming(
        state,
        "local-only",
        "genome/ask",
        params,
        wait(&a.patience)?,
        |p| {
            let d = &p["detail"];
            if let Some(text) = d["text"].as_str() {
                print!("{text}");
                let _ = std::io::stdout().flush();
                streamed = true;
            } else if d["step"] == json!("generate") && d["node"] != shown {
                eprintln!("running on {}", d["node"].as_str().unwrap_or("?"));
                shown = d["node"].clone();
            }
        },
    )?;
    let v = done.result;
    if streamed {
        println!("\n");
    } else if let Some(text) = v["result"]["text"].as_str() {
        println!("{text}\n");
    }
    print_plan(&v, false);
    let r = &v["result"];
    println!(
        "              {} tokens, first after {:.0} ms, {:.1} tokens/s",
        r["completion_tokens"].as_u64().unwrap_or(0),
        r["first_token_ms"].as_f64().unwrap_or(0.0),
        r["decode_tokens_per_s"].as_f64().unwrap_or(0.0)
    );
    Ok(())
}

/// The skill chosen and where the job ran (or would run), with the alternatives.
fn print_plan(v: &Value, dry_run: bool) {
    let ad = &v["adapter"];
    println!(
        "Skill:        {}{}  (score {:.3}, {})",
        ad["name"].as_str().unwrap_or("?"),
        ad["version"]
            .as_str()
            .map_or(String::new(), |v| format!(" {v}")),
        ad["score"].as_f64().unwrap_or(0.0),
        ad["content_hash"].as_str().unwrap_or("?")
    );
    print_place(
        if dry_run { "Would run on:" } else { "Ran on:" },
        &v["plan"],
    );
    for alt in v["alternatives"].as_array().into_iter().flatten() {
        print_place("Then:", alt);
    }
}
