//! `grid node` and `grid radio-sim`: the long-running processes.

use anyhow::{anyhow, Result};
use grid::state::StateDir;

use super::{runtime, shutdown_signal};

/// `grid node`
pub(crate) fn node(state: StateDir, verbose: u8, quiet: bool) -> Result<()> {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .init();
    runtime()?.block_on(async {
        let genome_state = state.clone();
        grid::run_with_services(state, shutdown_signal(), move |handle| {
            grid_genome::service::run(handle, genome_state)
        })
        .await
        .map_err(|e| anyhow!(e))
    })
}

/// `grid radio-sim`
pub(crate) fn radio_sim(config: grid_tools::radio_sim::sim::SimConfig) -> Result<()> {
    runtime()?.block_on(async { grid_tools::radio_sim::sim::run(config, shutdown_signal()).await })
}
