//! `grid mcp`: the mesh as tools for AI agents, over the Model Context Protocol (the
//! official Rust SDK, `rmcp`), on stdio or streamable HTTP on loopback ([`http`]).
//!
//! The server is a client of the node running for the state directory: every tool is
//! one request on the node's control socket, so it acts as the node's owner and is
//! reachable only by programs on this host that may open that socket. A failure comes
//! back as a tool error (`isError`) carrying the node's typed reason; the server goes on.

mod http;
mod params;

pub(crate) use http::serve_http;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use grid::control::{self, Request};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    Implementation, ListResourcesResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{json, Value};

use params::{
    AskParams, EmitParams, ExecParams, FetchParams, PipelineParams, PipelineStatusParams,
    SearchParams, WaitParams,
};

/// Longest a `wait_events` call waits, and most events it returns.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(60);
/// Most events one `wait_events` call returns.
pub(crate) const MAX_EVENTS: usize = 100;
/// Longest any other tool waits for the node (a generation, a pipeline run).
const MAX_CALL: Duration = Duration::from_secs(600);

/// The MCP server: tools that ask the node at `socket`.
#[derive(Clone)]
pub(crate) struct GridMcp {
    socket: PathBuf,
    root: PathBuf,
    tool_router: ToolRouter<Self>,
}

/// A tool's answer: the node's JSON, pretty-printed, or its error in words.
type Answer = Result<String, String>;

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// Seconds from a tool argument, within `1..=max`.
fn seconds(s: Option<f64>, default: f64, max: Duration) -> Duration {
    let s = s.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(default);
    Duration::from_secs_f64(s.min(max.as_secs_f64()))
}

impl GridMcp {
    /// A server for the node whose state directory is `state`.
    pub(crate) fn new(state: &grid::state::StateDir) -> GridMcp {
        GridMcp {
            socket: state.socket_path(),
            root: state.root().to_path_buf(),
            tool_router: Self::tool_router(),
        }
    }

    /// Send one request to the node; its refusal or absence in words a model can act on.
    async fn request(&self, request: &Request, wait: Duration) -> Result<Value, String> {
        control::ask(&self.socket, request, wait)
            .await
            .map_err(|e| match e {
                control::ControlError::NotRunning { .. } => format!(
                    "no grid node is running for {} (start one with: grid --config {} node)",
                    self.root.display(),
                    self.root.display()
                ),
                other => other.to_string(),
            })
    }

    /// Run `command` on `node` (a hash or routing hint): the node's whole answer (the
    /// node that ran it and the result).
    async fn exec_answer(
        &self,
        node: &str,
        command: &str,
        params: Value,
        wait: Duration,
    ) -> Result<Value, String> {
        self.request(
            &Request::Exec {
                destination: node.into(),
                command: command.into(),
                params,
                timeout_ms: Some(wait.as_millis() as u64),
                ttl_ms: None,
                detach: false,
            },
            wait + Duration::from_secs(5),
        )
        .await
    }

    /// Run `command` on `node` and return its result only.
    async fn exec_on(
        &self,
        node: &str,
        command: &str,
        params: Value,
        wait: Duration,
    ) -> Result<Value, String> {
        let v = self.exec_answer(node, command, params, wait).await?;
        grid::control::response::parse::<grid::control::response::Executed>(v)
            .map(|e| e.result)
            .map_err(|e| e.to_string())
    }
}

#[tool_router]
impl GridMcp {
    #[tool(
        description = "Find skills (LoRA adapters) on this node and across the mesh by describing what you need in plain words. Returns the best matches with name, description, score, content_hash and the nodes that hold them."
    )]
    async fn search_skills(&self, Parameters(p): Parameters<SearchParams>) -> Answer {
        let patience = p.patience.unwrap_or_else(|| "quick".into());
        let wait = match patience.as_str() {
            "immediate" => 10,
            "quick" => 15,
            "thorough" => 30,
            "exhaustive" => 90,
            other => {
                return Err(format!(
                    "patience \"{other}\": use immediate, quick, thorough or exhaustive"
                ))
            }
        };
        let params = json!({"query": p.query, "limit": p.limit.unwrap_or(5).clamp(1, 50),
                            "patience": patience});
        let v = self
            .exec_on(
                "local-only",
                "genome/search",
                params,
                Duration::from_secs(wait),
            )
            .await?;
        Ok(pretty(&v))
    }

    #[tool(
        description = "Describe a need and give a prompt: the mesh finds the skill that fits, places the work on a compute node with room, and returns the generated text with where it ran. With dry_run it only says where it would run."
    )]
    async fn ask(&self, Parameters(p): Parameters<AskParams>) -> Answer {
        let mut params = json!({"need": p.need, "prompt": p.prompt,
                                "dry_run": p.dry_run.unwrap_or(false)});
        if let Some(n) = p.max_tokens {
            params["max_tokens"] = json!(n);
        }
        let v = self
            .exec_on("local-only", "genome/ask", params, MAX_CALL)
            .await?;
        Ok(pretty(&v))
    }

    #[tool(
        description = "Run a grid command (domain/action, e.g. grid/ping, grid/status, ai/generate) on a node, given by its 32-hex-digit hash or a routing hint (local-only, least-loaded, prefer-gpu, max-compute), with JSON params. Returns the node that ran it and its result."
    )]
    async fn exec(&self, Parameters(p): Parameters<ExecParams>) -> Answer {
        let wait = seconds(p.timeout_s, 30.0, MAX_CALL);
        let params = p.params.unwrap_or_else(|| json!({}));
        let v = self.exec_answer(&p.node, &p.command, params, wait).await?;
        Ok(pretty(&v))
    }

    #[tool(
        description = "Emit an event (a name like domain:thing, with a JSON payload) from this node: local listeners and peers subscribed to it receive it."
    )]
    async fn emit(&self, Parameters(p): Parameters<EmitParams>) -> Answer {
        grid::frame::names::check_event(&p.event).map_err(|e| format!("event name {e}"))?;
        let v = self
            .request(
                &Request::Emit {
                    event: p.event,
                    payload: p.payload.unwrap_or(Value::Null),
                    to: None,
                    ttl_ms: None,
                },
                Duration::from_secs(5),
            )
            .await?;
        Ok(pretty(&v))
    }

    #[tool(
        description = "Wait for events on this node whose name matches a pattern (* matches one segment, ** any: sentinel:*, essays:**), up to timeout_s seconds (at most 60) and max events (at most 100). With recent, events the node already keeps count too. Returns the events seen, possibly none."
    )]
    async fn wait_events(&self, Parameters(p): Parameters<WaitParams>) -> Answer {
        grid::frame::names::check_pattern(&p.pattern).map_err(|e| format!("pattern {e}"))?;
        let end = Instant::now() + seconds(p.timeout_s, 10.0, MAX_WAIT);
        let max = p.max.map_or(10, |m| m as usize).clamp(1, MAX_EVENTS);
        let mut cursor = if p.recent.unwrap_or(false) {
            0
        } else {
            self.events(u64::MAX).await?.cursor
        };
        let mut seen = Vec::new();
        loop {
            let page = self.events(cursor).await?;
            cursor = page.cursor;
            seen.extend(page.events.into_iter().filter(|e| {
                grid::frame::names::matches(&p.pattern, e["event"].as_str().unwrap_or(""))
            }));
            if seen.len() >= max || Instant::now() >= end {
                seen.truncate(max);
                return Ok(pretty(&json!({"events": seen})));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tool(
        description = "This node's status: identity, interfaces and traffic, peers heard with their capabilities and hops, paths, links, bundles waiting, and the governor's memory and CPU pressure."
    )]
    async fn status(&self) -> Answer {
        Ok(pretty(
            &self
                .request(&Request::Status, Duration::from_secs(5))
                .await?,
        ))
    }

    #[tool(
        description = "Fetch a skill (adapter package) by its 64-hex-digit content_hash from the nodes that hold it (from, optional: node hashes; else peers and the DHT are asked). The package is verified against the hash before it is kept."
    )]
    async fn fetch_adapter(&self, Parameters(p): Parameters<FetchParams>) -> Answer {
        let hash = p.content_hash.to_ascii_lowercase();
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "\"{}\" is not a content hash (64 hex digits; search_skills shows them)",
                p.content_hash
            ));
        }
        let params = json!({"content_hash": hash, "from": p.from.unwrap_or_default()});
        let v = self
            .exec_on("local-only", "genome/fetch", params, MAX_CALL)
            .await?;
        Ok(pretty(&v))
    }

    #[tool(
        description = "Run a sentinel pipeline (a JSON object: name, inputs, steps of type command, llm, emit, watch, condition, loop, parallel, sentinel) on this node with the given inputs. Waits for the end unless detach is true; returns the handle, the status and each step's output."
    )]
    async fn run_pipeline(&self, Parameters(p): Parameters<PipelineParams>) -> Answer {
        let text = match p.pipeline {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let params = json!({"pipeline": text, "inputs": p.inputs.unwrap_or_else(|| json!({})),
                            "detach": p.detach.unwrap_or(false)});
        let v = self
            .exec_on("local-only", "sentinel/run", params, MAX_CALL)
            .await?;
        Ok(pretty(&v))
    }

    #[tool(
        description = "The status of a pipeline run by its handle: running, completed, failed or cancelled, progress 0-100, and each step's record."
    )]
    async fn pipeline_status(&self, Parameters(p): Parameters<PipelineStatusParams>) -> Answer {
        let v = self
            .exec_on(
                "local-only",
                "sentinel/status",
                json!({"handle": p.handle}),
                Duration::from_secs(10),
            )
            .await?;
        Ok(pretty(&v))
    }
}

impl GridMcp {
    async fn events(&self, cursor: u64) -> Result<grid::control::response::Events, String> {
        let v = self
            .request(&Request::Events { cursor }, Duration::from_secs(5))
            .await?;
        grid::control::response::parse(v).map_err(|e| e.to_string())
    }
}

/// The resources: what an agent may read without calling a tool.
const RESOURCES: [(&str, &str, &str); 2] = [
    (
        "grid://node/status",
        "node status",
        "This node's status: interfaces, peers, paths, links, bundles, governor.",
    ),
    (
        "grid://node/adapters",
        "adapters here",
        "The skills (adapter packages) this node holds, with their content hashes.",
    ),
];

#[tool_handler(router = self.tool_router)]
impl ServerHandler for GridMcp {
    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(
            RESOURCES
                .iter()
                .map(|(uri, name, description)| {
                    Resource::new(*uri, *name)
                        .with_description(*description)
                        .with_mime_type("application/json")
                })
                .collect(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let value = match request.uri.as_str() {
            "grid://node/status" => self.request(&Request::Status, Duration::from_secs(5)).await,
            "grid://node/adapters" => {
                self.exec_on(
                    "local-only",
                    "genome/list",
                    json!({}),
                    Duration::from_secs(10),
                )
                .await
            }
            other => {
                return Err(ErrorData::resource_not_found(
                    format!("no resource {other} (resources/list names them)"),
                    None,
                ))
            }
        }
        .map_err(|e| ErrorData::internal_error(e, None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(pretty(&value), request.uri).with_mime_type("application/json")
        ])
        .into())
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .build(),
        )
        .with_server_info(Implementation::new("grid", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Tools of a Grid mesh node: find skills by description, ask for text \
                 generated where it fits, run commands on nodes, emit and wait for events, \
                 fetch adapters, run pipelines. Node hashes are 32 hex digits.",
        )
    }
}

/// `grid mcp`: serve MCP on stdin/stdout until the client closes stdin.
pub(crate) fn serve_stdio(state: &grid::state::StateDir) -> anyhow::Result<()> {
    let server = GridMcp::new(state);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let running = server
                .serve(rmcp::transport::stdio())
                .await
                .map_err(|e| anyhow::anyhow!("MCP handshake: {e}"))?;
            running
                .waiting()
                .await
                .map_err(|e| anyhow::anyhow!("MCP session: {e}"))?;
            Ok(())
        })
}
