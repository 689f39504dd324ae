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
    // Models run in a worker process started from this same binary (DESIGN decision 6).
    let host = match std::env::current_exe() {
        Ok(program) => grid_genome::service::ModelHost::Worker { program },
        Err(e) => {
            tracing::warn!("cannot find this program ({e}); the embedding model runs in the node");
            grid_genome::service::ModelHost::InProcess
        }
    };
    let config = state.load_or_create_config().ok();
    let compute = config
        .as_ref()
        .map(|c| c.compute.clone())
        .unwrap_or_default();
    let web = config.map(|c| c.web).unwrap_or_default();
    let socket = state.socket_path();
    let inference = compute
        .enabled
        .then(|| inference(&state, compute.model.as_deref()));
    runtime()?.block_on(async {
        let genome_state = state.clone();
        grid::run_with_services(state, shutdown_signal(), move |handle| async move {
            let inference = match inference {
                Some(Ok(i)) => Some(i),
                Some(Err(why)) => {
                    no_inference(&handle, why).await;
                    None
                }
                None => None,
            };
            // The status page is a local client of the control socket, like the CLI.
            tokio::spawn(crate::web::serve(socket.clone(), web));
            // RNS's shared-instance RPC for rnstatus, rnpath and rnprobe.
            tokio::spawn(crate::rns_rpc::serve(
                socket,
                genome_state.root().to_path_buf(),
            ));
            grid_sentinel::service::run(handle.clone(), genome_state.clone()).await;
            grid_genome::service::run(handle, genome_state, host, inference).await
        })
        .await
        .map_err(|e| anyhow!(e))
    })
}

/// How this node runs `ai/generate`: this program's `worker generate` on the configured
/// (or default) model; or why it cannot.
#[cfg(feature = "llm")]
fn inference(
    state: &StateDir,
    model: Option<&std::path::Path>,
) -> Result<grid_genome::service::Inference, String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let model = grid_genome::generate::model_file(state.root(), model)?;
    tracing::info!(model = %model.display(), "ai/generate runs this model in a worker");
    Ok(grid_genome::service::Inference { program, model })
}

/// Without the `llm` feature this `grid` runs no model.
#[cfg(not(feature = "llm"))]
fn inference(
    _state: &StateDir,
    _model: Option<&std::path::Path>,
) -> Result<grid_genome::service::Inference, String> {
    Err(
        "this grid is built without inference; build one that has it with \
         `cargo build --release -p grid-tools --features llm`"
            .into(),
    )
}

/// A node with `[compute] enabled = true` that cannot run a model still answers
/// `ai/generate`: `unsupported`, saying why, so that `grid ask` and routing move on to a
/// node that can instead of waiting or guessing.
async fn no_inference(handle: &grid::api::NodeHandle, why: String) {
    use grid::commands::CommandError;
    use grid::frame::ErrorCode;
    let _ = handle
        .default_rule("ai/generate", grid::trust::TrustLevel::Trusted)
        .await;
    let message = format!("this node runs no model: {why}; another compute node may take the job");
    let answer = message.clone();
    let registered = handle
        .register_command(
            "ai/generate",
            "generate text (not here: this node runs no model)",
            move |_| {
                let message = answer.clone();
                async move {
                    Err(CommandError {
                        code: ErrorCode::Unsupported,
                        message,
                    })
                }
            },
        )
        .await;
    if let Err(e) = registered {
        tracing::warn!("cannot offer ai/generate: {e}");
    }
    tracing::warn!("[compute] is enabled but {message}; ai/generate answers unsupported");
}

/// `grid worker embed`: load the embedding model and answer the node on stdin/stdout
/// until it closes stdin ([`grid_genome::worker`]). Logs go to stderr, which the node
/// shares.
pub(crate) fn embed_worker(models: &std::path::Path) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_writer(std::io::stderr)
        .init();
    let model = grid_genome::embed::MiniLm::load(models).map_err(|e| anyhow!("{e}"))?;
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    grid_genome::worker::serve(&model, &mut input, &mut output)
        .map_err(|e| anyhow!("embedding worker: {e}"))
}

/// `grid radio-sim`
pub(crate) fn radio_sim(config: grid_tools::radio_sim::sim::SimConfig) -> Result<()> {
    runtime()?.block_on(async { grid_tools::radio_sim::sim::run(config, shutdown_signal()).await })
}
