//! `grid`: run a node and talk to it.
#![forbid(unsafe_code)]

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Grid: a Reticulum-compatible, delay-tolerant mesh node.
#[derive(Parser, Debug)]
#[command(name = "grid", version, about, propagate_version = true)]
struct Cli {
    /// State directory (config.toml, identity, control socket). Default: $GRID_HOME or ~/.grid
    #[arg(long, global = true, value_name = "DIR")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the node in the foreground (like rnsd). Writes a default config on first run.
    Node {
        /// More logging (-v debug, -vv trace).
        #[arg(short, long, action = clap::ArgAction::Count)]
        verbose: u8,
        /// Only warnings and errors.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show this node's identity and destination hashes.
    Id {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show interfaces, traffic and paths of the running node.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find a path to a destination; print hops and next hop.
    Path {
        /// Destination hash (32 hex characters).
        hash: String,
        /// Seconds to wait for a path.
        #[arg(long, default_value_t = 15.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send a probe packet to a destination and print the round-trip time.
    Probe {
        /// Destination hash (32 hex characters), e.g. a node's rnstransport.probe or grid.node.
        hash: String,
        /// Probe payload size in bytes (random bytes).
        #[arg(long, default_value_t = 16)]
        size: usize,
        /// Send this text as the payload instead of random bytes.
        #[arg(long)]
        data: Option<String>,
        /// Seconds to wait for a path and the proof.
        #[arg(long, default_value_t = 15.0)]
        timeout: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let state = grid::state::StateDir::resolve(cli.config.as_deref());
    let result = match cli.command {
        Command::Node { verbose, quiet } => commands::node(state, verbose, quiet),
        Command::Id { json } => commands::id(&state, json),
        Command::Status { json } => commands::status(&state, json),
        Command::Path {
            hash,
            timeout,
            json,
        } => commands::path(&state, &hash, timeout, json),
        Command::Probe {
            hash,
            size,
            data,
            timeout,
            json,
        } => commands::probe(&state, &hash, size, data.as_deref(), timeout, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grid: {e:#}");
            ExitCode::FAILURE
        }
    }
}
