//! `grid-netsim`: run a discovery scenario on the simulator.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A deterministic network simulator for Grid's discovery layers.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario file (see tools/netsim/scenarios/) and print its figures.
    Run {
        /// The scenario (TOML).
        scenario: PathBuf,
        /// The seed: the same scenario and seed give the same output, byte for byte.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the result as JSON (figures under "figures", goals under "goals").
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Run {
        scenario,
        seed,
        json,
    } = cli.command;
    let s = match grid_netsim::Scenario::load(&scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("grid-netsim: {e}");
            return ExitCode::from(2);
        }
    };
    let progress = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} simulated s ({elapsed})",
        )
        .expect("a valid template"),
    );
    progress.set_message(s.name.clone());
    let started = std::time::Instant::now();
    let report = grid_netsim::run(&s, seed, &progress);
    progress.finish_and_clear();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("JSON values serialize")
        );
    } else {
        println!("{} (seed {seed})", s.name);
        if let Some(f) = report["figures"].as_object() {
            for (k, v) in f {
                println!("  {k:28} {v}");
            }
        }
        if let Some(goals) = report["goals"].as_array() {
            for g in goals {
                let met = if g["met"] == true { "met" } else { "NOT met" };
                println!(
                    "  goal {} {}: {met}",
                    g["figure"].as_str().unwrap_or("?"),
                    g["goal"].as_str().unwrap_or("?")
                );
            }
        }
    }
    eprintln!(
        "grid-netsim: {} in {:.1} s",
        s.name,
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
