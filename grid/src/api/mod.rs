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

use crate::node::link_ops::LinkOp;
use crate::node::reply::{Outcome, Reply};
use crate::node::NodeError;
use crate::state::StateDir;
use crate::Error;

mod catalog;
mod destinations;
mod dht;
mod exec;
mod flood;
mod links;
pub use destinations::{full_name, OutDestination, RatchetSetting};
pub use links::ResourceOptions;
pub use rns_core::transport::ProofStrategy;
mod paths;
mod transfers;
pub use transfers::ResourceTransfer;

/// Events kept for a slow subscriber before it starts missing them
/// ([`broadcast::error::RecvError::Lagged`]). The buffer is allocated whole when the
/// node starts (about 136 bytes an event), so it is sized for bursts a subscriber that
/// keeps up sees, not for one that stops reading.
pub const EVENT_BUFFER: usize = 1024;

/// Destination names programs may watch announces of, at most, node-wide.
pub const MAX_WATCHED_NAMES: usize = 256;

/// Requests the node runs [`AsyncRequestHandler`]s for at once, at most (all paths).
pub const MAX_ASYNC_REQUESTS: usize = 64;

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
    /// A packet (not on a link) arrived for a destination a program registered.
    DestinationPacket {
        /// The registered destination.
        destination: AddressHash,
        /// The packet's hash: what [`NodeHandle::prove_packet`] takes for a destination
        /// registered with [`ProofStrategy::App`].
        packet_hash: [u8; 32],
        /// Its plaintext.
        data: Vec<u8>,
        /// Hops it travelled.
        hops: u8,
    },
    /// An announce of a destination name a program watches
    /// ([`NodeHandle::watch_announces`]).
    Announce {
        /// The announced destination.
        destination: AddressHash,
        /// The identity that announced it.
        identity: AddressHash,
        /// Its name hash (what the watch matched).
        name_hash: rns_core::destination::NameHash,
        /// Its app data (may be empty).
        app_data: Vec<u8>,
        /// Hops away.
        hops: u8,
        /// The interface it came in on.
        interface: String,
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
    /// A resource received into the directory given to
    /// [`NodeHandle::accept_resources_into`], written there segment by segment and
    /// verified before it got its name.
    ResourceSaved {
        /// The link.
        link: LinkId,
        /// Where it is (the sender's `name` metadata if it gave one, else
        /// `resource-<hash>`; never over an existing file).
        path: std::path::PathBuf,
        /// Its size, metadata not counted.
        bytes: u64,
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
    /// A control request, answered as on the control socket.
    Control(crate::control::Request, oneshot::Sender<serde_json::Value>),
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
        /// Compress when it makes the resource smaller (RNS's `auto_compress`).
        compress: bool,
        timeout: Duration,
        reply: Reply,
    },
    Links(oneshot::Sender<Vec<LinkInfo>>),
    /// Send a program's file or stream as a resource of any size; answers its transfer id.
    SendTransfer(
        Box<crate::node::outgoing_files::AppTransfer>,
        oneshot::Sender<Result<String, Error>>,
    ),
    /// Accept resources on application links into a directory, up to a size each.
    AcceptResourcesInto(std::path::PathBuf, u64, oneshot::Sender<()>),
    /// Enable ratchets on a registered destination: its ratchet file's path and bytes (if
    /// it exists); answers the file to write now.
    EnableRatchets(
        AddressHash,
        std::path::PathBuf,
        Option<Vec<u8>>,
        oneshot::Sender<Result<crate::node::RatchetSnapshot, Error>>,
    ),
    /// Change how a destination's ratchets behave.
    RatchetSetting(
        AddressHash,
        RatchetSetting,
        oneshot::Sender<Result<(), Error>>,
    ),
    /// Cancel a transfer by id; whether it was still going.
    CancelTransfer(String, oneshot::Sender<bool>),
    /// Register a SINGLE destination: full name, proof strategy, and the identity that
    /// hosts it (this node's when `None`).
    RegisterDestination(
        String,
        rns_core::transport::ProofStrategy,
        Option<Box<rns_core::Identity>>,
        oneshot::Sender<AddressHash>,
    ),
    /// Register a PLAIN (no key) or GROUP (with its key) destination.
    RegisterNameless(
        String,
        Option<rns_core::destination::GroupKey>,
        oneshot::Sender<AddressHash>,
    ),
    /// Send to a PLAIN (no key) or GROUP (with its key) destination.
    SendNameless(
        AddressHash,
        Option<rns_core::destination::GroupKey>,
        Vec<u8>,
        oneshot::Sender<Result<(), Error>>,
    ),
    /// Stop hosting a destination a program registered; whether it was.
    DeregisterDestination(AddressHash, oneshot::Sender<bool>),
    /// Announce a registered destination with app data.
    AnnounceDestination(AddressHash, Vec<u8>, oneshot::Sender<Result<(), Error>>),
    /// Send one packet to a SINGLE destination without waiting for its proof.
    SendPacket(
        AddressHash,
        Vec<u8>,
        oneshot::Sender<Result<[u8; 32], Error>>,
    ),
    /// Prove a packet to a `ProofStrategy::App` destination.
    Prove([u8; 32], oneshot::Sender<bool>),
    /// Watch announces of a destination name (its name hash).
    WatchAnnounces(
        rns_core::destination::NameHash,
        oneshot::Sender<Result<(), Error>>,
    ),
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
        to: crate::proto::layer::FrameReply,
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
        done: oneshot::Sender<Result<(), Error>>,
    },
    /// Seal a frame to `recipient` and queue it as a bundle; `waiter` gets the response.
    SendBundle {
        recipient: Box<rns_core::identity::PublicIdentity>,
        frame: crate::frame::GridFrame,
        waiter: Option<oneshot::Sender<crate::frame::GridFrame>>,
        done: oneshot::Sender<Result<(), Error>>,
    },
    /// Where a command runs under a routing hint.
    Route(
        crate::routing::Route,
        String,
        oneshot::Sender<Result<Vec<crate::routing::Decision>, crate::routing::RouteError>>,
    ),
    /// Where a compute job needing this many MB may run, in order, with why.
    PlaceCompute(
        u32,
        oneshot::Sender<Vec<(crate::routing::Decision, String)>>,
    ),
    /// Grid nodes heard announcing.
    Peers(oneshot::Sender<Vec<Peer>>),
    /// Add an ACL rule unless the configuration has one for that pattern.
    DefaultRule(
        String,
        crate::trust::TrustLevel,
        oneshot::Sender<Result<(), Error>>,
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
    /// The app data of the last announce heard for a destination.
    RecallAppData(AddressHash, oneshot::Sender<Option<Vec<u8>>>),
    /// Send a frame on a link's channel (progress to a caller).
    Push {
        link: LinkId,
        frame: Vec<u8>,
    },
    /// Record an event for this node's listeners only (job completion).
    LocalEvent(String, serde_json::Value),
    /// Record a command in the audit log.
    Audit(crate::audit::AuditEntry),
    /// The answer to one of the node's DHT requests (from the task that sent it).
    DhtAnswer {
        from: Box<crate::proto::dht::key::Contact>,
        message: crate::proto::dht::message::Message,
    },
    /// One of the node's DHT requests could not be delivered.
    DhtUnreachable(u64),
    /// The response to one of the node's gossip messages (from the task that sent it).
    GossipAnswer {
        from: crate::proto::gossip::Peer,
        message: Box<crate::proto::gossip::message::Message>,
    },
    /// Sign and publish one of this node's catalog entries.
    CatalogPublish(
        crate::proto::gossip::entry::Record,
        oneshot::Sender<Result<crate::proto::gossip::entry::Digest, Error>>,
    ),
    /// The catalog's entries.
    Catalog(oneshot::Sender<Vec<crate::proto::gossip::entry::Entry>>),
    /// The registered commands with who may call them.
    Commands(oneshot::Sender<Vec<crate::proto::command_offers::Registered>>),
    /// A resource segment assembled off the loop (node/links.rs).
    ResourceAssembled {
        link: rns_core::link::LinkId,
        done: Box<rns_core::link::AssemblyDone>,
    },
    /// A flood search for the node's user.
    FloodSearch(
        crate::proto::flood::sketch::Query,
        crate::proto::flood::Patience,
        u8,
        oneshot::Sender<Result<crate::proto::flood::Outcome, Error>>,
    ),
    /// Offer an item to flood searches (or stop offering it: `None` with its id).
    SearchOffer([u8; 16], Option<crate::proto::flood::sketch::Item>),
    /// A DHT lookup for the node's user.
    DhtLookup(
        crate::proto::dht::key::Key,
        crate::node::dht::DhtLookup,
        oneshot::Sender<Result<crate::proto::dht::lookup::Outcome, Error>>,
    ),
    /// Stop providing a key in the DHT.
    DhtUnprovide(crate::proto::dht::key::Key),
    /// Set an identity's trust level.
    Trust(
        AddressHash,
        crate::trust::TrustLevel,
        oneshot::Sender<Result<(), Error>>,
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
    governor: crate::governor::GovernorHandle,
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
        governor: parts.governor,
    })
}

/// A reply whose successful outcome `pick` turns into `T`.
fn typed<T: Send + 'static>(
    pick: fn(Outcome) -> Option<T>,
) -> (Reply, oneshot::Receiver<Result<T, Error>>) {
    let (tx, rx) = oneshot::channel();
    let reply = Reply::with(move |r| {
        let _ = tx.send(match r {
            Ok(o) => pick(o).ok_or_else(|| Error::BadResponse("unexpected outcome".into())),
            Err(e) => Err(e),
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
        governor: crate::governor::GovernorHandle,
    ) -> NodeHandle {
        NodeHandle {
            calls,
            events,
            identity,
            destination,
            stop: Arc::new(std::sync::Mutex::new(None)),
            governor,
        }
    }

    /// The node's governor: every job that needs memory asks it before it starts
    /// ([`crate::governor::GovernorHandle::admit`]).
    pub fn governor(&self) -> &crate::governor::GovernorHandle {
        &self.governor
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
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Call) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.calls
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    async fn call<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply) -> Call,
        pick: fn(Outcome) -> Option<T>,
    ) -> Result<T, Error> {
        let (reply, rx) = typed(pick);
        self.calls
            .send(make(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    async fn link_op<T: Send + 'static>(
        &self,
        op: LinkOp,
        pick: fn(Outcome) -> Option<T>,
    ) -> Result<T, Error> {
        self.call(|r| Call::Link(op, r), pick).await
    }

    /// Run a control request ([`crate::control::Request`], what the CLI sends on the
    /// control socket) in-process: its JSON answer, or the typed error the socket would
    /// answer with.
    pub async fn control(
        &self,
        request: crate::control::Request,
    ) -> Result<serde_json::Value, Error> {
        let v = self.ask(|tx| Call::Control(request, tx)).await?;
        match Error::from_json(&v) {
            Some(e) => Err(e),
            None => Ok(v),
        }
    }

    /// Stop the node (its control socket goes away too).
    pub fn shutdown(&self) {
        if let Some(tx) = self.stop.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
}
