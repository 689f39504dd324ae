//! The embedded node API: run a Grid node inside your process and use links from Rust.
//!
//! [`spawn`] starts a node from a state directory (the same one `grid node` uses, so the
//! CLI can talk to it too) and returns a [`NodeHandle`]. Through it you open links, send
//! packets, requests, channel messages and stream bytes, send small resources, register
//! request handlers, and [`NodeHandle::subscribe`] to what arrives: packets, channel
//! messages, stream data and whole resources. This is what the grid layer builds on.
//!
//! [`attach`] instead joins the `grid node` (or `rnsd`) already serving this host's shared
//! instance, as RNS programs do: no interfaces of its own, the same API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! let node = grid::api::spawn(grid::state::StateDir::resolve(None)).await?;
//! node.register_handler("/echo", |req| Some(req.data.clone())).await?;
//! let dest = "0123456789abcdef0123456789abcdef".parse()?;
//! let link = node.open_link(dest, Duration::from_secs(15)).await?;
//! let answer = node
//!     .request(link.link, "/echo", "hi".into(), Duration::from_secs(10))
//!     .await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use rns_core::link::LinkId;
use rns_core::transport::LinkInfo;
use rns_core::{rmpv, AddressHash};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::node::ops::LinkOp;
use crate::node::reply::{Outcome, Reply};
use crate::node::NodeError;
use crate::state::StateDir;

/// Events kept for a slow subscriber before it starts missing them
/// ([`broadcast::error::RecvError::Lagged`]).
pub const EVENT_BUFFER: usize = 4096;

/// Requests the node runs [`AsyncRequestHandler`]s for at once, at most (all paths).
pub const MAX_ASYNC_REQUESTS: usize = 64;

/// Why an API call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The node task has stopped.
    #[error("the node has stopped")]
    Stopped,
    /// The network or the node refused or timed out; the message says which.
    #[error("{0}")]
    Failed(String),
}

/// Why [`NodeHandle::execute`] produced no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The call was refused before anything was sent.
    #[error("{0}")]
    Local(String),
    /// No path, no link, or no answer in time.
    #[error("{0}")]
    Api(ApiError),
    /// The target answered with an error.
    #[error("{}: {message}", code.as_str())]
    Remote {
        /// What kind of error.
        code: crate::frame::ErrorCode,
        /// The target's message.
        message: String,
    },
    /// The answer was not a valid response frame.
    #[error("bad response: {0}")]
    BadResponse(String),
}

/// Something that arrived or happened on the node's links.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeEvent {
    /// A link came up (either direction).
    LinkEstablished {
        /// The link.
        link: LinkId,
        /// The destination it leads to (ours when a peer opened it).
        destination: AddressHash,
        /// Whether we opened it.
        initiator: bool,
        /// Round-trip time measured while establishing.
        rtt: Duration,
        /// Link MTU.
        mtu: usize,
    },
    /// A link closed.
    LinkClosed {
        /// The link.
        link: LinkId,
        /// Why, in words.
        reason: String,
    },
    /// The peer that opened a link identified itself.
    RemoteIdentified {
        /// The link.
        link: LinkId,
        /// The peer's identity hash.
        identity: AddressHash,
    },
    /// A packet arrived on a link.
    Packet {
        /// The link.
        link: LinkId,
        /// Its plaintext.
        data: Vec<u8>,
    },
    /// A grid event: emitted by this node, or by a node this one subscribed to.
    GridEvent {
        /// The emitting node (its grid.node destination hash).
        node: String,
        /// The event name.
        event: String,
        /// Its JSON payload.
        payload: serde_json::Value,
    },
    /// A channel message arrived (in order).
    ChannelMessage {
        /// The link.
        link: LinkId,
        /// The sender's message type.
        msgtype: u16,
        /// The message.
        data: Vec<u8>,
    },
    /// Stream bytes arrived (in order).
    StreamData {
        /// The link.
        link: LinkId,
        /// Stream id.
        stream_id: u16,
        /// The bytes.
        data: Vec<u8>,
        /// The sender closed the stream.
        eof: bool,
    },
    /// A resource (or one segment of a large one) moved on: parts done of its total.
    /// Responses over one packet arrive this way too, so a caller can show progress.
    ResourceProgress {
        /// The link.
        link: LinkId,
        /// Whether we send it.
        sending: bool,
        /// Parts moved so far.
        parts_done: usize,
        /// Parts in this segment.
        parts_total: usize,
    },
    /// A whole resource arrived (after [`NodeHandle::accept_resources`]).
    Resource {
        /// The link.
        link: LinkId,
        /// The data, all segments joined, metadata removed.
        data: Vec<u8>,
        /// The sender's metadata, if any.
        metadata: Option<rmpv::Value>,
        /// The sender's identity, if it identified itself.
        remote_identity: Option<AddressHash>,
    },
}

/// A request for a registered path.
#[derive(Debug, Clone)]
pub struct Request {
    /// The link it came on.
    pub link: LinkId,
    /// The request data.
    pub data: rmpv::Value,
    /// The requester's identity, if it identified itself on the link.
    pub remote_identity: Option<AddressHash>,
}

/// Answers requests for one path on the node's event loop: keep it quick (see
/// [`AsyncRequestHandler`] for answers that take time). `None` sends no response (the
/// requester times out), as RNS does for refused requests.
pub type RequestHandler = Arc<dyn Fn(&Request) -> Option<rmpv::Value> + Send + Sync>;

/// Answers requests for one path on a task of its own, off the node's event loop (for
/// answers that read files or wait on locks). `None` sends no response.
pub type AsyncRequestHandler = Arc<
    dyn Fn(
            Request,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<rmpv::Value>> + Send>>
        + Send
        + Sync,
>;

/// An established link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkUp {
    /// The link id.
    pub link: LinkId,
    /// Round-trip time measured while establishing.
    pub rtt: Duration,
    /// Link MTU.
    pub mtu: usize,
}

/// A call from a handle into the node task.
pub(crate) enum Call {
    Link(LinkOp, Reply),
    Handler(String, RequestHandler, oneshot::Sender<()>),
    /// Register an [`AsyncRequestHandler`] for a path.
    AsyncHandler(String, AsyncRequestHandler, oneshot::Sender<()>),
    /// An async request handler's answer to a link request.
    LinkRespond {
        link: LinkId,
        request_id: AddressHash,
        response: rmpv::Value,
    },
    /// The trust level of an identity, and whether the ACL lets it run a command.
    Authorize(
        AddressHash,
        String,
        oneshot::Sender<Result<crate::trust::TrustLevel, crate::acl::Denied>>,
    ),
    AcceptResources(bool, oneshot::Sender<()>),
    SendResource {
        link: LinkId,
        data: Vec<u8>,
        metadata: Option<rmpv::Value>,
        timeout: Duration,
        reply: Reply,
    },
    Links(oneshot::Sender<Vec<LinkInfo>>),
    /// Register a command: name, description, handler.
    Command(
        String,
        String,
        crate::commands::CommandHandler,
        oneshot::Sender<()>,
    ),
    /// Emit an event; answers how many remote subscriptions it was sent to.
    Emit(String, serde_json::Value, oneshot::Sender<usize>),
    /// A command task's answer to a frame (on its link, or as a bundle).
    Respond {
        to: crate::node::grid_frames::FrameReply,
        response: crate::frame::GridFrame,
        audit: Option<crate::audit::AuditEntry>,
        /// The request-log entry this answer completes.
        request: Option<crate::proto::request_log::RequestKey>,
    },
    /// Wait for the answer bundle to request `correlation` (fails when too many wait).
    AwaitBundle {
        correlation: u64,
        node: AddressHash,
        waiter: oneshot::Sender<crate::frame::GridFrame>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Seal a frame to `recipient` and queue it as a bundle; `waiter` gets the response.
    SendBundle {
        recipient: Box<rns_core::identity::PublicIdentity>,
        frame: crate::frame::GridFrame,
        waiter: Option<oneshot::Sender<crate::frame::GridFrame>>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Where a command runs under a routing hint.
    Route(
        crate::routing::Route,
        String,
        oneshot::Sender<Result<crate::routing::Decision, crate::routing::RouteError>>,
    ),
    /// Grid nodes heard announcing.
    Peers(oneshot::Sender<Vec<Peer>>),
    /// Add an ACL rule unless the configuration has one for that pattern.
    DefaultRule(
        String,
        crate::trust::TrustLevel,
        oneshot::Sender<Result<(), String>>,
    ),
    /// Change this node's capability summary (re-announced if it changed).
    UpdateCapabilities(
        Box<dyn FnOnce(&mut crate::capabilities::Capabilities) + Send>,
        oneshot::Sender<crate::capabilities::Capabilities>,
    ),
    /// Open a pairing offer: trust level for the joiner, how long it stays open.
    PairOffer(crate::trust::TrustLevel, Duration, oneshot::Sender<String>),
    /// Run a command on this node for its own user (command, params, correlation id).
    RunLocal(
        String,
        serde_json::Value,
        u64,
        oneshot::Sender<Result<serde_json::Value, crate::commands::CommandError>>,
    ),
    /// Which destinations have a path, and the reachable custody nodes.
    BundleRoutes(Vec<[u8; 16]>, oneshot::Sender<crate::node::bundles::Routes>),
    /// Bundles collected from a custodian, to open or hold.
    TakeBundles(
        Vec<crate::bundle::wire::WireBundle>,
        oneshot::Sender<crate::bundle::wire::ExchangeReply>,
    ),
    /// A bundle exchange's storage work is done (from a blocking thread).
    TakeCommitted(Box<crate::node::exchange::TakeCommitted>),
    /// An exchange's answer is ready (from a blocking thread).
    ExchangeDone {
        to: crate::node::exchange::ExchangeTo,
        reply: crate::bundle::wire::ExchangeReply,
    },
    /// The identity behind a destination, from an announce heard.
    RecallIdentity(
        AddressHash,
        oneshot::Sender<Option<rns_core::identity::PublicIdentity>>,
    ),
    /// Send a frame on a link's channel (progress to a caller).
    Push {
        link: LinkId,
        frame: Vec<u8>,
    },
    /// Record an event for this node's listeners only (job completion).
    LocalEvent(String, serde_json::Value),
    /// Record a command in the audit log.
    Audit(crate::audit::AuditEntry),
    /// Set an identity's trust level.
    Trust(
        AddressHash,
        crate::trust::TrustLevel,
        oneshot::Sender<Result<(), String>>,
    ),
}

/// A Grid node heard announcing, with what it can do.
#[derive(Debug, Clone, PartialEq)]
pub struct Peer {
    /// Its `grid.node` destination.
    pub node: AddressHash,
    /// Its capability summary.
    pub capabilities: crate::capabilities::Capabilities,
    /// Hops away when last heard.
    pub hops: u8,
    /// Since its last announce.
    pub heard_ago: Duration,
}

/// How long a delay-tolerant call tries to open a link to a node that has a path before
/// it sends a bundle instead.
const DIRECT_LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// Least time a reused link gets to prove it is alive.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(3);

/// How [`NodeHandle::execute_with`] runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOptions {
    /// How long to wait for the result when the target is reachable now.
    pub timeout: Duration,
    /// Delay tolerance: when the target has no path now, send the command as an
    /// end-to-end encrypted bundle that stays deliverable this long (directly when a
    /// path appears, or through a custody node), and wait as long for the result,
    /// which comes back the same way. A reachable target gets this long to answer.
    pub ttl: Option<Duration>,
}

impl ExecOptions {
    /// Wait up to `timeout`; no delay tolerance.
    pub fn timeout(timeout: Duration) -> ExecOptions {
        ExecOptions { timeout, ttl: None }
    }
}

/// A running node. Cloning is cheap; the node stops when [`NodeHandle::shutdown`] is called
/// on any clone (or the runtime ends).
#[derive(Clone)]
pub struct NodeHandle {
    calls: mpsc::Sender<Call>,
    events: broadcast::Sender<NodeEvent>,
    identity: AddressHash,
    destination: AddressHash,
    stop: Arc<std::sync::Mutex<Option<oneshot::Sender<()>>>>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("identity", &self.identity)
            .field("destination", &self.destination)
            .finish_non_exhaustive()
    }
}

/// Start a node from `state` on the current tokio runtime.
pub async fn spawn(state: StateDir) -> Result<NodeHandle, NodeError> {
    run(state, crate::node::Role::Node).await
}

/// Attach to the node serving the shared instance `instance` on this host (a `grid node`,
/// or `rnsd`), as RNS programs do, instead of running interfaces of your own. Only the
/// program's identity is kept in `state` (give the program its own directory: sharing
/// the node's would give both the same destinations). Fails with
/// [`NodeError::NoSharedInstance`] when nothing serves `instance`; if the node restarts
/// later, the program re-attaches by itself.
pub async fn attach(state: StateDir, instance: &str) -> Result<NodeHandle, NodeError> {
    let instance = instance.to_string();
    run(state, crate::node::Role::Attached { instance }).await
}

async fn run(state: StateDir, role: crate::node::Role) -> Result<NodeHandle, NodeError> {
    let (started, parts) = crate::node::start(state, role).await?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    tokio::spawn(crate::node::drive(started, async move {
        let _ = stop_rx.await;
    }));
    Ok(NodeHandle {
        calls: parts.calls,
        events: parts.events,
        identity: parts.identity,
        destination: parts.destination,
        stop: Arc::new(std::sync::Mutex::new(Some(stop_tx))),
    })
}

/// A reply whose successful outcome `pick` turns into `T`.
fn typed<T: Send + 'static>(
    pick: fn(Outcome) -> Option<T>,
) -> (Reply, oneshot::Receiver<Result<T, ApiError>>) {
    let (tx, rx) = oneshot::channel();
    let reply = Reply::with(move |r| {
        let _ = tx.send(match r {
            Ok(o) => pick(o).ok_or_else(|| ApiError::Failed("unexpected outcome".into())),
            Err(e) => Err(ApiError::Failed(e)),
        });
    });
    (reply, rx)
}

impl NodeHandle {
    /// A handle for the node's own use (control-socket commands): it cannot stop the node.
    pub(crate) fn internal(
        calls: mpsc::Sender<Call>,
        events: broadcast::Sender<NodeEvent>,
        identity: AddressHash,
        destination: AddressHash,
    ) -> NodeHandle {
        NodeHandle {
            calls,
            events,
            identity,
            destination,
            stop: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    /// This node's identity hash.
    pub fn identity(&self) -> AddressHash {
        self.identity
    }

    /// This node's `grid.node` destination (where peers open links to it).
    pub fn destination(&self) -> AddressHash {
        self.destination
    }

    /// Events from now on. A subscriber that falls more than [`EVENT_BUFFER`] events
    /// behind misses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Send a call that answers on a oneshot, and wait for the answer.
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Call) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.calls
            .send(make(tx))
            .await
            .map_err(|_| ApiError::Stopped)?;
        rx.await.map_err(|_| ApiError::Stopped)
    }

    async fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply) -> Call,
        pick: fn(Outcome) -> Option<T>,
    ) -> Result<T, ApiError> {
        let (reply, rx) = typed(pick);
        self.calls
            .send(make(reply))
            .await
            .map_err(|_| ApiError::Stopped)?;
        rx.await.map_err(|_| ApiError::Stopped)?
    }

    async fn link_op<T: Send + 'static>(
        &self,
        op: LinkOp,
        pick: fn(Outcome) -> Option<T>,
    ) -> Result<T, ApiError> {
        self.call(|r| Call::Link(op, r), pick).await
    }

    /// Open a link to a SINGLE destination, finding a path first if needed.
    pub async fn open_link(
        &self,
        destination: AddressHash,
        timeout: Duration,
    ) -> Result<LinkUp, ApiError> {
        self.link_op(
            LinkOp::Open {
                destination,
                timeout,
            },
            |o| match o {
                Outcome::LinkUp { link, rtt, mtu } => Some(LinkUp { link, rtt, mtu }),
                _ => None,
            },
        )
        .await
    }

    /// Send one packet (at most the link MDU) and wait for the peer's proof; returns the
    /// round-trip time.
    pub async fn send(
        &self,
        link: LinkId,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Duration, ApiError> {
        let op = LinkOp::Send {
            link,
            data: data.to_vec(),
            timeout,
        };
        self.link_op(op, |o| match o {
            Outcome::Proven { rtt, .. } => Some(rtt),
            _ => None,
        })
        .await
    }

    /// Send a request to `path` and wait for the response.
    pub async fn request(
        &self,
        link: LinkId,
        path: &str,
        data: rmpv::Value,
        timeout: Duration,
    ) -> Result<rmpv::Value, ApiError> {
        let op = LinkOp::Request {
            link,
            path: path.to_string(),
            data,
            timeout,
        };
        self.link_op(op, |o| match o {
            Outcome::Response { data, .. } => Some(data),
            _ => None,
        })
        .await
    }

    /// Reveal this node's identity on a link it opened.
    pub async fn identify(&self, link: LinkId) -> Result<(), ApiError> {
        self.link_op(LinkOp::Identify { link }, |o| {
            matches!(o, Outcome::Identified { .. }).then_some(())
        })
        .await
    }

    /// Close a link.
    pub async fn close_link(&self, link: LinkId) -> Result<(), ApiError> {
        self.link_op(LinkOp::Close { link }, |o| {
            matches!(o, Outcome::Closed { .. }).then_some(())
        })
        .await
    }

    /// Send a channel message (type below `0xF000`) and wait until it is proven; returns
    /// its sequence number. Fails at once if the channel window is full.
    pub async fn channel_send(
        &self,
        link: LinkId,
        msgtype: u16,
        data: &[u8],
        timeout: Duration,
    ) -> Result<u16, ApiError> {
        let op = LinkOp::Channel {
            link,
            msgtype,
            data: data.to_vec(),
            timeout,
        };
        self.link_op(op, |o| match o {
            Outcome::Delivered { sequence, .. } => Some(sequence),
            _ => None,
        })
        .await
    }

    /// Write bytes to a stream (RNS Buffer), optionally closing it, and wait until every
    /// byte is proven.
    pub async fn stream_write(
        &self,
        link: LinkId,
        stream_id: u16,
        data: &[u8],
        eof: bool,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        let op = LinkOp::Stream {
            link,
            stream_id,
            data: data.to_vec(),
            eof,
            timeout,
        };
        self.link_op(op, |o| {
            matches!(o, Outcome::StreamDelivered { .. }).then_some(())
        })
        .await
    }

    /// Send up to 1 MiB (data and packed metadata together) as one resource and wait for
    /// the receiver's proof. Files of any size go with `grid cp`.
    pub async fn send_resource(
        &self,
        link: LinkId,
        data: Vec<u8>,
        metadata: Option<rmpv::Value>,
        timeout: Duration,
    ) -> Result<(), ApiError> {
        self.call(
            |reply| Call::SendResource {
                link,
                data,
                metadata,
                timeout,
                reply,
            },
            |o| matches!(o, Outcome::ResourceDelivered { .. }).then_some(()),
        )
        .await
    }

    /// Answer requests for `path` on links to this node's `grid.node` destination.
    /// Replaces an earlier handler for the same path.
    pub async fn register_handler(
        &self,
        path: &str,
        handler: impl Fn(&Request) -> Option<rmpv::Value> + Send + Sync + 'static,
    ) -> Result<(), ApiError> {
        self.ask(|tx| Call::Handler(path.to_string(), Arc::new(handler), tx))
            .await
    }

    /// Answer requests for `path` like [`NodeHandle::register_handler`], but each on a task
    /// of its own, so a handler that reads files or waits may take its time without
    /// stalling the node. The node runs at most [`MAX_ASYNC_REQUESTS`] of
    /// them at once; requests beyond that get no response (the requester times out).
    /// Replaces an earlier handler (of either kind) for the same path.
    pub async fn register_async_handler<F, Fut>(
        &self,
        path: &str,
        handler: F,
    ) -> Result<(), ApiError>
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Option<rmpv::Value>> + Send + 'static,
    {
        let handler: AsyncRequestHandler = Arc::new(move |req| Box::pin(handler(req)));
        self.ask(|tx| Call::AsyncHandler(path.to_string(), handler, tx))
            .await
    }

    /// The trust level `identity` holds on this node, if the node's ACL lets a caller of
    /// that level run `command` (as a command frame from it would be checked); otherwise
    /// why not. Services use it for what they answer outside command frames (request
    /// paths of their own).
    pub async fn authorize(
        &self,
        identity: AddressHash,
        command: &str,
    ) -> Result<Result<crate::trust::TrustLevel, crate::acl::Denied>, ApiError> {
        self.ask(|tx| Call::Authorize(identity, command.to_string(), tx))
            .await
    }

    /// Accept resources offered on links to `grid.node` and deliver them as
    /// [`NodeEvent::Resource`] (up to 64 MiB each, assembled in memory).
    pub async fn accept_resources(&self, accept: bool) -> Result<(), ApiError> {
        self.ask(|tx| Call::AcceptResources(accept, tx)).await
    }

    /// The node's links.
    pub async fn links(&self) -> Result<Vec<LinkInfo>, ApiError> {
        self.ask(Call::Links).await
    }

    /// Offer a command to other nodes (`domain/action`; see [`crate::commands`]). The
    /// handler runs on its own task for each call; `description` is what `list` shows.
    pub async fn register_command<F, Fut>(
        &self,
        name: &str,
        description: &str,
        handler: F,
    ) -> Result<(), ApiError>
    where
        F: Fn(crate::commands::CommandCall) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<serde_json::Value, crate::commands::CommandError>>
            + Send
            + 'static,
    {
        crate::frame::names::check_command(name)
            .map_err(|e| ApiError::Failed(format!("command name {e}")))?;
        let handler: crate::commands::CommandHandler =
            Arc::new(move |call| Box::pin(handler(call)));
        let (tx, rx) = oneshot::channel();
        self.calls
            .send(Call::Command(
                name.to_string(),
                description.to_string(),
                handler,
                tx,
            ))
            .await
            .map_err(|_| ApiError::Stopped)?;
        rx.await.map_err(|_| ApiError::Stopped)
    }

    /// Run `command` with JSON `params` on the node whose `grid.node` destination is
    /// `node`, and wait up to `timeout` for its result. Reuses a link this node opened to
    /// it, or opens one (and identifies on it, so the target knows who calls).
    pub async fn execute(
        &self,
        node: AddressHash,
        command: &str,
        params: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, ExecError> {
        self.execute_with(node, command, params, ExecOptions::timeout(timeout))
            .await
    }

    /// Let callers of at least `level` run commands matching `pattern` (see
    /// [`crate::acl`]), unless a rule already decides `pattern` (the node's `[acl]`
    /// configuration, say `"genome/*" = "trusted"`): services use this for their
    /// read-only commands, and the node's owner keeps the last word.
    pub async fn default_rule(
        &self,
        pattern: &str,
        level: crate::trust::TrustLevel,
    ) -> Result<(), ApiError> {
        self.ask(|tx| Call::DefaultRule(pattern.to_string(), level, tx))
            .await?
            .map_err(ApiError::Failed)
    }

    /// The Grid nodes this node has heard announcing (at most 10,000), nearest first.
    pub async fn peers(&self) -> Result<Vec<Peer>, ApiError> {
        self.ask(Call::Peers).await
    }

    /// Change what this node announces it can do (a GPU found, adapters or models
    /// added): `change` edits the summary; if it differs, the node re-announces soon
    /// (at most every [`crate::node::CAPABILITY_ANNOUNCE_GAP`]) so peers route by the
    /// new one. Returns the summary now in force.
    pub async fn update_capabilities(
        &self,
        change: impl FnOnce(&mut crate::capabilities::Capabilities) + Send + 'static,
    ) -> Result<crate::capabilities::Capabilities, ApiError> {
        self.ask(|tx| Call::UpdateCapabilities(Box::new(change), tx))
            .await
    }

    /// Open a pairing offer: returns the four-word code to give the other node's user
    /// (who runs [`NodeHandle::pair_join`] or `grid pair <this node> <code>`). Whoever
    /// presents it within `window` gets `level` here. A new offer replaces an open one.
    pub async fn pair_offer(
        &self,
        level: crate::trust::TrustLevel,
        window: Duration,
    ) -> Result<String, ApiError> {
        self.ask(|tx| Call::PairOffer(level, window, tx)).await
    }

    /// Present the pairing code `node` shows; on a match `node` trusts this node, and
    /// this node gives `node`'s identity `level`. Returns that identity.
    pub async fn pair_join(
        &self,
        node: AddressHash,
        code: &str,
        level: crate::trust::TrustLevel,
        timeout: Duration,
    ) -> Result<AddressHash, ExecError> {
        let answer = self
            .execute(
                node,
                crate::commands::JOIN_COMMAND,
                &serde_json::json!({ "code": code }),
                timeout,
            )
            .await?;
        let identity: AddressHash = answer["identity"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ExecError::BadResponse("no identity in the pairing answer".into()))?;
        // The answer must come from the node we meant: its identity names its destination.
        if rns_core::destination::hash_from_name("grid.node", Some(&identity)) != node {
            return Err(ExecError::BadResponse(format!(
                "identity {identity} does not belong to {node}"
            )));
        }
        self.set_trust(identity, level)
            .await
            .map_err(ExecError::Api)?;
        Ok(identity)
    }

    /// Where `command` would run under `route` ([`crate::routing`]): this node's own
    /// destination for "here".
    pub async fn resolve_route(
        &self,
        route: crate::routing::Route,
        command: &str,
    ) -> Result<AddressHash, ExecError> {
        let decision = self
            .ask(|tx| Call::Route(route, command.to_string(), tx))
            .await
            .map_err(ExecError::Api)?
            .map_err(|e| ExecError::Local(e.to_string()))?;
        Ok(match decision {
            crate::routing::Decision::Local => self.destination,
            crate::routing::Decision::Remote(n) => n,
        })
    }

    /// Run `command` where `route` says (a node, `local-only`, `prefer-gpu`,
    /// `max-compute`, `auto`: see [`crate::routing`]); returns the node that ran it (this
    /// node's destination when it ran here) and the result.
    pub async fn execute_routed(
        &self,
        route: crate::routing::Route,
        command: &str,
        params: &serde_json::Value,
        options: ExecOptions,
    ) -> Result<(AddressHash, serde_json::Value), ExecError> {
        let node = self.resolve_route(route, command).await?;
        let result = self.execute_with(node, command, params, options).await?;
        Ok((node, result))
    }

    /// [`NodeHandle::execute`] with options: with a TTL the command reaches a node that
    /// is offline now, as a bundle, and the result comes back the same way.
    pub async fn execute_with(
        &self,
        node: AddressHash,
        command: &str,
        params: &serde_json::Value,
        options: ExecOptions,
    ) -> Result<serde_json::Value, ExecError> {
        crate::frame::names::check_command(command)
            .map_err(|e| ExecError::Local(format!("command name {e}")))?;
        let correlation = new_correlation();
        self.execute_as(node, command, params, options, correlation)
            .await
    }

    /// Start `command` on `node` and return its handle (the correlation id) at once. Its
    /// progress arrives as the event `grid:job:<handle in hex>:progress` (as the target
    /// reports it) and its outcome as `grid:job:<handle in hex>:complete` with
    /// `{"ok": true, "result": …}` or `{"ok": false, "error": …}` — both as
    /// [`NodeEvent::GridEvent`]s and in `grid listen`.
    pub async fn execute_detached(
        &self,
        node: AddressHash,
        command: &str,
        params: serde_json::Value,
        timeout: Duration,
    ) -> Result<u64, ExecError> {
        self.execute_detached_with(node, command, params, ExecOptions::timeout(timeout))
            .await
    }

    /// [`NodeHandle::execute_detached`] with options (a TTL: see [`ExecOptions`]). The
    /// outcome is also kept in the node's store, so `grid exec --result` finds it after
    /// a restart, even when the answer bundle arrives after one.
    pub async fn execute_detached_with(
        &self,
        node: AddressHash,
        command: &str,
        params: serde_json::Value,
        options: ExecOptions,
    ) -> Result<u64, ExecError> {
        crate::frame::names::check_command(command)
            .map_err(|e| ExecError::Local(format!("command name {e}")))?;
        let correlation = new_correlation();
        let (handle, command) = (self.clone(), command.to_string());
        tokio::spawn(async move {
            let r = handle
                .execute_as(node, &command, &params, options, correlation)
                .await;
            let payload = match r {
                Ok(result) => serde_json::json!({"ok": true, "result": result}),
                Err(e) => serde_json::json!({"ok": false, "error": e.to_string()}),
            };
            let event = crate::commands::job_event(correlation, "complete");
            let _ = handle.calls.send(Call::LocalEvent(event, payload)).await;
        });
        Ok(correlation)
    }

    /// [`NodeHandle::execute`] with a given correlation id, audited.
    async fn execute_as(
        &self,
        node: AddressHash,
        command: &str,
        params: &serde_json::Value,
        options: ExecOptions,
        correlation: u64,
    ) -> Result<serde_json::Value, ExecError> {
        if node == self.destination {
            // This node itself: run here, no frame, no audit (the caller is the owner).
            return self
                .ask(|tx| Call::RunLocal(command.to_string(), params.clone(), correlation, tx))
                .await
                .map_err(ExecError::Api)?
                .map_err(|e| ExecError::Remote {
                    code: e.code,
                    message: e.message,
                });
        }
        let body = crate::frame::Body::Request {
            command: command.to_string(),
            params: params.to_string().into_bytes(),
        };
        let started = crate::clock::wall_ms();
        let result = match options.ttl {
            None => {
                self.frame_call_with(node, body, options.timeout, correlation)
                    .await
            }
            Some(ttl) => self.frame_call_tolerant(node, body, ttl, correlation).await,
        };
        let outcome = match &result {
            Ok(_) => crate::audit::Outcome::Success,
            Err(ExecError::Remote { code, .. }) => (*code).into(),
            Err(ExecError::Api(_)) => crate::audit::Outcome::Timeout,
            Err(_) => crate::audit::Outcome::Error,
        };
        let done = crate::clock::wall_ms();
        let entry = crate::audit::AuditEntry {
            time_ms: done,
            direction: crate::audit::Direction::Out,
            peer: node.to_string(),
            command: command.to_string(),
            correlation,
            outcome,
            duration_ms: done.saturating_sub(started),
        };
        let _ = self.calls.send(Call::Audit(entry)).await;
        result
    }

    /// Give an identity a trust level on this node (persisted in `trust.json`).
    pub async fn set_trust(
        &self,
        identity: AddressHash,
        level: crate::trust::TrustLevel,
    ) -> Result<(), ApiError> {
        let (tx, rx) = oneshot::channel();
        self.calls
            .send(Call::Trust(identity, level, tx))
            .await
            .map_err(|_| ApiError::Stopped)?;
        rx.await
            .map_err(|_| ApiError::Stopped)?
            .map_err(ApiError::Failed)
    }

    /// Send a frame with `body` to `node` as a request and decode the response; returns
    /// the correlation id used too.
    async fn frame_call(
        &self,
        node: AddressHash,
        body: crate::frame::Body,
        timeout: Duration,
    ) -> (u64, Result<serde_json::Value, ExecError>) {
        let correlation = new_correlation();
        (
            correlation,
            self.frame_call_with(node, body, timeout, correlation).await,
        )
    }

    async fn frame_call_with(
        &self,
        node: AddressHash,
        body: crate::frame::Body,
        timeout: Duration,
        correlation: u64,
    ) -> Result<serde_json::Value, ExecError> {
        use crate::frame::{Body, GridFrame};
        if let Body::Subscribe { pattern } | Body::Unsubscribe { pattern } = &body {
            crate::frame::names::check_pattern(pattern)
                .map_err(|e| ExecError::Local(format!("pattern {e}")))?;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let link = self.link_to(node, timeout).await?;
        let frame = GridFrame {
            correlation,
            source: self.destination.0,
            target: node.0,
            timestamp_ms: crate::clock::wall_ms(),
            ttl_ms: timeout.as_millis() as u64,
            body,
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let answer = self
            .request(
                link,
                crate::commands::FRAME_PATH,
                rmpv::Value::Binary(frame.encode()),
                left.max(Duration::from_millis(100)),
            )
            .await
            .map_err(ExecError::Api)?;
        let rmpv::Value::Binary(bytes) = answer else {
            return Err(ExecError::BadResponse("not frame bytes".into()));
        };
        let response =
            GridFrame::decode(&bytes).map_err(|e| ExecError::BadResponse(e.to_string()))?;
        outcome_of(response, correlation)
    }

    /// A frame call with delay tolerance. The request goes directly when `node` has a
    /// path now; when that attempt fails in any way — the path leads nowhere, the link
    /// does not come up, goes stale or closes mid-request, the answer is lost with its
    /// link — the same frame (same correlation id) goes as a bundle, and the caller keeps
    /// waiting until the TTL. The answer may arrive either way (a target whose link to
    /// the caller dropped sends it as a bundle), so a bundled answer is awaited from the
    /// start. The target runs the request at most once whichever copies reach it (see
    /// [`crate::proto::request_log`]).
    async fn frame_call_tolerant(
        &self,
        node: AddressHash,
        body: crate::frame::Body,
        ttl: Duration,
        correlation: u64,
    ) -> Result<serde_json::Value, ExecError> {
        let deadline = tokio::time::Instant::now() + ttl;
        let (tx, mut rx) = oneshot::channel();
        self.ask(|done| Call::AwaitBundle {
            correlation,
            node,
            waiter: tx,
            done,
        })
        .await
        .map_err(ExecError::Api)?
        .map_err(ExecError::Local)?;
        let routes = self
            .bundle_routes(vec![node.0])
            .await
            .map_err(ExecError::Api)?;
        if routes.reachable.first() == Some(&true) {
            let direct = self.direct_call(node, body.clone(), deadline, correlation);
            tokio::select! {
                r = direct => match r {
                    Err(ExecError::Api(e)) => {
                        tracing::info!(%node, error = %e, "direct delivery failed; sending the command as a bundle");
                    }
                    other => return other,
                },
                answer = &mut rx => return match answer {
                    Ok(response) => outcome_of(response, correlation),
                    Err(_) => Err(ExecError::Api(ApiError::Stopped)),
                },
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Err(ttl_ran_out(ttl));
        }
        self.queue_bundle(node, body, left, correlation, None)
            .await?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(response)) => outcome_of(response, correlation),
            Ok(Err(_)) => Err(ExecError::Api(ApiError::Stopped)),
            Err(_) => Err(ttl_ran_out(ttl)),
        }
    }

    /// One direct attempt of a delay-tolerant call: a link that works now (a reused one
    /// must prove it is alive), then the request, answered by `deadline`.
    async fn direct_call(
        &self,
        node: AddressHash,
        body: crate::frame::Body,
        deadline: tokio::time::Instant,
        correlation: u64,
    ) -> Result<serde_json::Value, ExecError> {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.live_link_to(node, left.min(DIRECT_LINK_TIMEOUT))
            .await
            .map_err(ExecError::Api)?;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.frame_call_with(node, body, left, correlation).await
    }

    /// A link to `node` that works now. A reused link must answer a small request within
    /// a few round trips (a peer that restarted or vanished has forgotten it, and waiting
    /// for keepalives to tell would cost many seconds); otherwise it is closed and a new
    /// one opened, waiting up to `timeout`.
    pub(crate) async fn live_link_to(
        &self,
        node: AddressHash,
        timeout: Duration,
    ) -> Result<LinkId, ApiError> {
        let existing = self.links().await?.into_iter().find(|l| {
            l.destination == node && l.initiator && l.state == rns_core::link::LinkState::Active
        });
        if let Some(l) = existing {
            let wait = (l.rtt.unwrap_or_default() * 4).max(LIVENESS_TIMEOUT);
            let probe =
                rmpv::Value::Binary(crate::bundle::wire::Exchange::Identity([0; 16]).encode());
            if self
                .request(l.id, crate::bundle::wire::BUNDLE_PATH, probe, wait)
                .await
                .is_ok()
            {
                return Ok(l.id);
            }
            tracing::debug!(link = %l.id, %node, "reused link is dead; opening a new one");
            let _ = self.close_link(l.id).await;
        }
        let up = self.open_link(node, timeout).await?;
        self.identify(up.link).await?;
        Ok(up.link)
    }

    /// Which of `dests` have a path now, and the reachable custody nodes.
    pub(crate) async fn bundle_routes(
        &self,
        dests: Vec<[u8; 16]>,
    ) -> Result<crate::node::bundles::Routes, ApiError> {
        self.ask(|tx| Call::BundleRoutes(dests, tx)).await
    }

    /// Hand collected bundles to the node to open or hold.
    pub(crate) async fn take_bundles(
        &self,
        list: Vec<crate::bundle::wire::WireBundle>,
    ) -> Result<crate::bundle::wire::ExchangeReply, ApiError> {
        self.ask(|tx| Call::TakeBundles(list, tx)).await
    }

    /// The identity behind `node`, if this node heard it announce.
    pub(crate) async fn recall_identity(
        &self,
        node: AddressHash,
    ) -> Result<Option<rns_core::identity::PublicIdentity>, ApiError> {
        self.ask(|tx| Call::RecallIdentity(node, tx)).await
    }

    /// Send an event to one node as a bundle that stays deliverable for `ttl`: it arrives
    /// there as a [`NodeEvent::GridEvent`] from this node, now or when it can be reached.
    pub async fn emit_to(
        &self,
        node: AddressHash,
        event: &str,
        payload: &serde_json::Value,
        ttl: Duration,
    ) -> Result<(), ExecError> {
        crate::frame::names::check_event(event)
            .map_err(|e| ExecError::Local(format!("event name {e}")))?;
        let body = crate::frame::Body::Event {
            event: event.to_string(),
            payload: payload.to_string().into_bytes(),
        };
        let correlation = new_correlation();
        self.queue_bundle(node, body, ttl, correlation, None).await
    }

    /// Seal a frame with `body` to `node` (its key from an announce heard here or by a
    /// reachable custody node) and queue it as a bundle deliverable for `ttl`; `waiter`
    /// gets the answer frame.
    async fn queue_bundle(
        &self,
        node: AddressHash,
        body: crate::frame::Body,
        ttl: Duration,
        correlation: u64,
        waiter: Option<oneshot::Sender<crate::frame::GridFrame>>,
    ) -> Result<(), ExecError> {
        let recipient = crate::bundle::courier::lookup_identity(self, node)
            .await
            .ok_or_else(|| {
                ExecError::Local(format!(
                    "no announce from {node} was heard here or by a reachable custody node, \
                     so there is no key to seal a bundle to"
                ))
            })?;
        let frame = crate::frame::GridFrame {
            correlation,
            source: self.destination.0,
            target: node.0,
            timestamp_ms: crate::clock::wall_ms(),
            ttl_ms: ttl.as_millis() as u64,
            body,
        };
        let (done_tx, done_rx) = oneshot::channel();
        self.calls
            .send(Call::SendBundle {
                recipient: Box::new(recipient),
                frame,
                waiter,
                done: done_tx,
            })
            .await
            .map_err(|_| ExecError::Api(ApiError::Stopped))?;
        done_rx
            .await
            .map_err(|_| ExecError::Api(ApiError::Stopped))?
            .map_err(ExecError::Local)
    }
}

/// The error of a delay-tolerant call whose TTL ran out.
fn ttl_ran_out(ttl: Duration) -> ExecError {
    ExecError::Remote {
        code: crate::frame::ErrorCode::Timeout,
        message: format!(
            "no result within the TTL ({})",
            humantime::format_duration(ttl)
        ),
    }
}

/// A fresh random correlation id.
fn new_correlation() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}

/// The result a response frame carries for request `correlation`.
fn outcome_of(
    response: crate::frame::GridFrame,
    correlation: u64,
) -> Result<serde_json::Value, ExecError> {
    use crate::frame::{Body, Outcome};
    {
        match response.body {
            Body::Response(Outcome::Err { code, message }) => {
                Err(ExecError::Remote { code, message })
            }
            _ if response.correlation != correlation => Err(ExecError::BadResponse(format!(
                "answer for request {:016x}, not {correlation:016x}",
                response.correlation
            ))),
            Body::Response(Outcome::Ok(json)) => serde_json::from_slice(&json)
                .map_err(|e| ExecError::BadResponse(format!("result is not JSON: {e}"))),
            _ => Err(ExecError::BadResponse("not a response".into())),
        }
    }
}

impl NodeHandle {
    /// Emit an event (`domain:collection:operation`) with a JSON payload: to this node's
    /// subscribers ([`NodeHandle::subscribe`] events) and to every remote node subscribed
    /// to a matching pattern. Returns how many remote subscriptions it went to.
    pub async fn emit(&self, event: &str, payload: serde_json::Value) -> Result<usize, ApiError> {
        crate::frame::names::check_event(event)
            .map_err(|e| ApiError::Failed(format!("event name {e}")))?;
        self.ask(|tx| Call::Emit(event.to_string(), payload, tx))
            .await
    }

    /// Ask `node` to forward its events matching `pattern` (`*`, `gpu:*`,
    /// `data:*:created`) to this node; they arrive as [`NodeEvent::GridEvent`]s for as long
    /// as the link lasts.
    pub async fn subscribe_remote(
        &self,
        node: AddressHash,
        pattern: &str,
        timeout: Duration,
    ) -> Result<(), ExecError> {
        self.frame_call(
            node,
            crate::frame::Body::Subscribe {
                pattern: pattern.to_string(),
            },
            timeout,
        )
        .await
        .1
        .map(|_| ())
    }

    /// An active link this node opened to `node`, or a new one (identified).
    pub async fn link_to(&self, node: AddressHash, timeout: Duration) -> Result<LinkId, ExecError> {
        let existing = self
            .links()
            .await
            .map_err(ExecError::Api)?
            .into_iter()
            .find(|l| {
                l.destination == node && l.initiator && l.state == rns_core::link::LinkState::Active
            });
        if let Some(l) = existing {
            return Ok(l.id);
        }
        let up = self
            .open_link(node, timeout)
            .await
            .map_err(ExecError::Api)?;
        self.identify(up.link).await.map_err(ExecError::Api)?;
        Ok(up.link)
    }

    /// Stop the node (its control socket goes away too).
    pub fn shutdown(&self) {
        if let Some(tx) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
}
