//! The node: one task that drives the sans-IO transport with real interfaces,
//! announces `grid.node`, answers probes and serves the control socket.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use crate::control::{self, ControlError, ControlRequest};
use grid_interfaces::{local, Hub, InterfaceEvent};
use rns_core::destination::well_known;
use rns_core::transport::{Event, ProofStrategy, Transport, TransportConfig};
use rns_core::{AddressHash, Identity, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::{api, clock};

mod announcing;
mod app_resources;
mod audit_writer;
pub(crate) mod bundles;
mod catalog_store;
mod channels;
mod command_offers;
mod compute_offer;
mod control_requests;
pub(crate) mod dht;
mod embedded_api;
mod events;
pub(crate) mod exchange;
mod file_writer;
mod files;
mod flood;
mod gossip;
mod governor_task;
pub(crate) mod grid_frames;
mod guard;
mod interfaces;
pub(crate) mod jobs;
pub(crate) mod link_ops;
mod links;
mod neighbours;
pub(crate) mod outgoing_files;
mod paced;
mod ratchets;
pub(crate) use ratchets::RatchetSnapshot;
mod pairing;
pub(crate) mod reply;
mod routing;
mod start;
mod store_work;
mod waiters;

use crate::config::Config;
use crate::state::{StateDir, StateError};
use announcing::stagger;
pub use announcing::CAPABILITY_ANNOUNCE_GAP;
use guard::Guard;
use waiters::{Wait, Waiter};

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// State directory, identity or config problem.
    #[error(transparent)]
    State(#[from] StateError),
    /// Control socket problem (another node running, say).
    #[error(transparent)]
    Control(#[from] ControlError),
    /// [`crate::api::attach`] found no node serving the shared instance.
    #[error("no node serves the shared instance \"{0}\" on this host (start `grid node` first)")]
    NoSharedInstance(String),
    /// The trust store could not be read.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// The bundle store could not be opened.
    #[error("bundle store: {0}")]
    Bundles(#[from] crate::bundle::store::StoreError),
    /// An interface could not be set up.
    #[error("interface {name}: {reason}")]
    Interface {
        /// Interface name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The `[governor]` budget does not fit this machine.
    #[error(transparent)]
    Governor(#[from] crate::governor::BudgetError),
}

struct Node {
    /// Delay-tolerant delivery: the bundle queue, its settings and courier, known node keys,
    /// callers waiting for answer bundles.
    dtn: bundles::Delay,
    /// The grid layer's state: commands, capabilities, peers heard, inbound checks, subscriptions, progress expected, recent events, pairing.
    grid: grid_frames::GridState,
    transport: Transport,
    identity: Identity,
    grid_destination: AddressHash,
    /// What this node announces, and when.
    announcing: announcing::Announcing,
    waiters: Vec<Waiter>,
    /// What programs do with links: packets, channel messages and stream bytes received until taken, stream writes waiting, and request handlers.
    links: links::LinkData,
    /// The node's own API queue: command tasks answer through it.
    calls: mpsc::Sender<api::Call>,
    /// Trust levels, the ACL and the audit log.
    guard: Guard,
    /// Where [`crate::api::NodeEvent`]s go.
    events: tokio::sync::broadcast::Sender<crate::api::NodeEvent>,
    /// File transfers: `grid cp` / `rncp` both ways, and resources offered to programs.
    files: files::Transfers,
    started: Instant,
    /// The shared instance this node serves to programs on the host, by name.
    shared_instance: Option<String>,
    /// The DHT, and who waits for its lookups.
    dht: dht::DhtDriver,
    /// Catalog gossip with the neighbours.
    gossip: gossip::GossipDriver,
    /// Flood search through the neighbours.
    flood: flood::FloodDriver,
    /// The interfaces: where frames go, which wait to be ready, radio figures.
    interfaces: interfaces::Interfaces,
    /// Budgets, pressure and admission for the node's jobs.
    governor: crate::governor::GovernorHandle,
}

/// Run a node from a state directory until `shutdown` completes.
pub async fn run(state: StateDir, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    run_with_services(state, shutdown, |_| async {}).await
}

/// [`run`], with services built on the node's API started beside it (the layers above
/// the node, such as the genome, register their commands this way).
pub async fn run_with_services<S>(
    state: StateDir,
    shutdown: impl Future<Output = ()>,
    services: impl FnOnce(api::NodeHandle) -> S,
) -> Result<(), NodeError>
where
    S: Future<Output = ()> + Send + 'static,
{
    let (started, parts) = start(state, Role::Node).await?;
    let handle = api::NodeHandle::internal(
        parts.calls,
        parts.events,
        parts.identity,
        parts.destination,
        parts.governor,
    );
    tokio::spawn(services(handle));
    // The loop runs as a task of its own rather than as the future the runtime blocks on:
    // waking that future makes a current-thread runtime poll its IO driver once more
    // (an extra epoll_wait) on every wake-up, which is every packet under light load.
    // (Dropping this future stops the loop, as it did when the loop ran inside it.)
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut driver = AbortOnDrop(tokio::spawn(drive(started, async move {
        let _ = stopped.await;
    })));
    let ended = tokio::select! {
        r = &mut driver.0 => r,
        _ = shutdown => {
            let _ = stop.send(());
            (&mut driver.0).await
        }
    };
    if let Err(e) = ended {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic()); // as if the loop ran here
        }
    }
    Ok(())
}

/// A node that is set up (state loaded, control socket bound, interfaces starting) and
/// ready to be driven by [`drive`].
pub(crate) struct Started {
    node: Node,
    iface_events: mpsc::Receiver<InterfaceEvent>,
    ctl_rx: mpsc::Receiver<ControlRequest>,
    prepared_rx: mpsc::UnboundedReceiver<files::FileWork>,
    api_rx: mpsc::Receiver<api::Call>,
    /// The control socket, removed on stop (none for an attached program).
    socket_path: Option<std::path::PathBuf>,
    /// Interfaces, the control socket server, the courier: aborted when the node stops.
    tasks: JoinSet<()>,
}

/// What is being started.
pub(crate) enum Role {
    /// `grid node`: the state directory's config and a control socket; serves the shared
    /// instance when configured to and no other node does.
    Node,
    /// A program attached to the shared instance `instance`: only the identity comes from
    /// the state directory; its one interface is the local socket.
    Attached {
        /// The instance name.
        instance: String,
    },
}

/// What an embedded API handle needs from a started node.
pub(crate) struct ApiParts {
    pub(crate) calls: mpsc::Sender<api::Call>,
    pub(crate) events: tokio::sync::broadcast::Sender<api::NodeEvent>,
    pub(crate) identity: AddressHash,
    pub(crate) destination: AddressHash,
    pub(crate) governor: crate::governor::GovernorHandle,
}

/// Set a node up; errors (bad config, socket in use, interface failures) surface here.
pub(crate) async fn start(state: StateDir, role: Role) -> Result<(Started, ApiParts), NodeError> {
    let started = clock::now();
    let is_node = matches!(role, Role::Node);
    let catalog = is_node.then(|| state.catalog_path());
    let (config, listener) = match role {
        Role::Node => {
            let config = state.load_or_create_config()?;
            let listener = control::bind(&state.socket_path()).await?;
            (config, Some(listener))
        }
        Role::Attached { instance } => {
            if !local::is_served(&instance).await {
                return Err(NodeError::NoSharedInstance(instance));
            }
            (Config::attached(&instance), None)
        }
    };
    let identity = state.load_or_create_identity()?;
    let guard = Guard::load(&state, &config, identity.hash())?;
    let governor = crate::governor::GovernorHandle::for_this_machine(&config.governor).await?;
    let bundle_store = std::sync::Arc::new(crate::bundle::store::BundleStore::open(
        &state.bundles_path(),
        config.bundles.store_limit,
    )?);
    let courier_wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let (hub, iface_events) = Hub::new(1024);
    // Every task the node starts ends with it (dropping the set aborts them), so an
    // embedded node that stops frees its sockets.
    let mut tasks = tokio::task::JoinSet::new();
    let sharing = config.share_instance
        && start::serve_shared_instance(&config.instance_name, &hub, &mut tasks);
    let configured = start::start_interfaces(&config, &hub, &mut tasks).await?;
    let (ctl_tx, ctl_rx) = mpsc::channel::<ControlRequest>(64);
    let socket_path = listener.as_ref().map(|_| state.socket_path());
    if let Some(listener) = listener {
        tasks.spawn(control::serve(listener, ctl_tx));
    }
    let (api_tx, api_rx) = mpsc::channel(256);
    let (events_tx, _) = tokio::sync::broadcast::channel(api::EVENT_BUFFER);

    let (prepared_tx, prepared_rx) = mpsc::unbounded_channel();
    let mut node = Node::new(
        &config,
        sharing,
        identity,
        started,
        state.root(),
        Queues {
            prepared_tx,
            events: events_tx.clone(),
            calls: api_tx.clone(),
            bundles: BundleParts {
                store: bundle_store.clone(),
                config: config.bundles.clone(),
                wake: courier_wake.clone(),
            },
            governor: governor.clone(),
        },
        guard,
    );
    node.interfaces.configured = configured;
    node.register_cancel();
    node.open_catalog_store(catalog).await;
    tracing::info!(
        identity = %node.identity.hash(),
        destination = %node.grid_destination,
        transport = config.transport,
        shared_instance = sharing,
        "node started"
    );
    let (id, dest) = (node.identity.hash(), node.grid_destination);
    let internal = || {
        api::NodeHandle::internal(
            api_tx.clone(),
            events_tx.clone(),
            id,
            dest,
            governor.clone(),
        )
    };
    if is_node {
        tasks.spawn(governor_task::run(internal(), governor.clone()));
    }
    tasks.spawn(crate::bundle::courier::run(
        internal(),
        bundle_store,
        courier_wake,
    ));
    if config.compute.enabled {
        let caps = node.grid.layer.capabilities.clone();
        tasks.spawn(compute_offer::run(internal(), caps));
    }
    tasks.spawn(command_offers::run(internal()));
    let parts = ApiParts {
        calls: api_tx,
        events: events_tx,
        identity: node.identity.hash(),
        destination: node.grid_destination,
        governor,
    };
    Ok((
        Started {
            node,
            iface_events,
            ctl_rx,
            prepared_rx,
            api_rx,
            socket_path,
            tasks,
        },
        parts,
    ))
}

/// Drive a started node until `shutdown` completes.
pub(crate) async fn drive(started: Started, shutdown: impl Future<Output = ()>) {
    let Started {
        mut node,
        mut iface_events,
        mut ctl_rx,
        mut prepared_rx,
        mut api_rx,
        socket_path,
        mut tasks,
    } = started;
    let mut api_open = true;
    tokio::pin!(shutdown);
    // One timer for the loop, re-armed only when the wake-up time changes, instead of a
    // fresh timer registered (and dropped) on every pass, which is every packet.
    let timer = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        let now = clock::now();
        node.announce_due(now);
        node.interface_announces_due(now);
        let mut wake = node.transport.poll_timeout();
        if let Some(t) = node.announcing.schedule.iter().map(|(_, t)| *t).min() {
            wake = wake.min(t);
        }
        if let Some(t) = node.announcing.on_interfaces.iter().map(|(_, t)| *t).min() {
            wake = wake.min(t);
        }
        if let Some(w) = node.next_waiter_deadline() {
            wake = wake.min(w);
        }
        if let Some(w) = node.next_stream_deadline() {
            wake = wake.min(w);
        }
        node.dht_due(now);
        if let Some(w) = node.dht_wake() {
            wake = wake.min(w);
        }
        node.gossip_due(now);
        if let Some(w) = node.gossip_wake() {
            wake = wake.min(w);
        }
        node.flood_due(now);
        if let Some(w) = node.flood_wake() {
            wake = wake.min(w);
        }
        if let Some(w) = node.interfaces.next_ready() {
            wake = wake.min(w);
        }
        if armed != Some(wake) {
            timer.as_mut().reset(clock::deadline(wake));
            armed = Some(wake);
        }
        tokio::select! {
            ev = iface_events.recv() => {
                let Some(ev) = ev else { break };
                let now = clock::now();
                node.on_interface(now, ev);
                // Drain what else is ready (bounded) without re-arming timers each time.
                for _ in 0..1024 {
                    let Ok(ev) = iface_events.try_recv() else { break };
                    node.on_interface(now, ev);
                }
            }
            p = prepared_rx.recv() => {
                if let Some(p) = p { node.on_file_work(clock::now(), p); }
            }
            req = ctl_rx.recv() => {
                if let Some(req) = req { node.on_control(clock::now(), req); }
            }
            call = api_rx.recv(), if api_open => match call {
                Some(call) => node.on_api(clock::now(), call),
                // Every handle dropped: the node keeps running for the control socket.
                None => api_open = false,
            },
            _ = &mut timer => {
                armed = None; // fired: re-arm on the next pass
                let now = clock::now();
                node.transport.handle_timeout(now);
                node.expire_waiters(now);
                node.expire_stream_writes(now);
                node.activate_due(now);
            }
            _ = &mut shutdown => break,
        }
        node.flush(clock::now());
    }
    node.save_catalog_at_stop().await;
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    node.guard.close_audit().await;
    if let Some(path) = socket_path {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("node stopped");
}

/// The bundle store and settings a node is made with.
struct BundleParts {
    store: std::sync::Arc<crate::bundle::store::BundleStore>,
    config: crate::config::BundleConfig,
    wake: std::sync::Arc<tokio::sync::Notify>,
}

/// Where the node's background work and its API users hear from it.
struct Queues {
    /// Blocking-thread work (segment preparation, file writes) reports back here.
    prepared_tx: mpsc::UnboundedSender<files::FileWork>,
    /// Events for API subscribers.
    events: tokio::sync::broadcast::Sender<crate::api::NodeEvent>,
    /// The node's own API queue.
    calls: mpsc::Sender<api::Call>,
    /// The bundle store, its settings and the courier's doorbell.
    bundles: BundleParts,
    /// The node's governor (budgets, pressure, admission).
    governor: crate::governor::GovernorHandle,
}

impl Node {
    fn new(
        config: &Config,
        share_instance: bool,
        identity: Identity,
        started: Instant,
        root: &std::path::Path,
        queues: Queues,
        guard: Guard,
    ) -> Node {
        let Queues {
            prepared_tx,
            events,
            calls,
            bundles,
            governor,
        } = queues;
        let mut roles = 0;
        if config.transport {
            roles |= crate::capabilities::roles::TRANSPORT;
        }
        if share_instance {
            roles |= crate::capabilities::roles::SHARED_INSTANCE;
        }
        if bundles.config.custody {
            roles |= crate::capabilities::roles::CUSTODY;
        }
        if config.compute.enabled {
            roles |= crate::capabilities::roles::COMPUTE;
        }
        let mut capabilities = crate::capabilities::Capabilities::of_this_machine(roles);
        // What the governor profiled: the GPU (none is normal) and memory within a
        // container's limit.
        let profile = governor.profile();
        if profile.mem.total > 0 {
            capabilities.ram_mb = (profile.mem.total >> 20).min(u64::from(u32::MAX)) as u32;
        }
        capabilities.gpu =
            profile
                .gpus
                .iter()
                .max_by_key(|g| g.vram_total)
                .map(|g| crate::capabilities::Gpu {
                    name: g.name.clone(),
                    vram_mb: (g.vram_total >> 20).min(u64::from(u32::MAX)) as u32,
                });
        let mut transport = Transport::new(
            TransportConfig {
                transport_enabled: config.transport,
                share_instance,
                // Complete segments are decrypted, decompressed and hashed on blocking
                // threads (node/links.rs), never on the loop.
                defer_resource_assembly: true,
                ..TransportConfig::default()
            },
            identity.clone(),
            Box::new(rand_core::OsRng),
        );
        let grid_destination = transport.register_destination(
            identity.clone(),
            well_known::GRID_NODE,
            ProofStrategy::All,
            capabilities.encode(),
        );
        let mut announced_probe = None;
        if config.respond_to_probes {
            let probe = transport.register_destination(
                identity.clone(),
                well_known::PROBE,
                ProofStrategy::All,
                Vec::new(),
            );
            announced_probe = config.transport.then_some(probe);
        }
        let cp_destination = transport.register_destination(
            identity.clone(),
            crate::state::CP_DESTINATION,
            ProofStrategy::None,
            Vec::new(),
        );
        transport
            .set_destination_resource_policy(&cp_destination, rns_core::link::ResourcePolicy::App);
        let mut announced = vec![grid_destination];
        announced.extend(announced_probe);
        if config.cp.allow_all || !config.cp.allow.is_empty() {
            announced.push(cp_destination);
        }
        let cp_directory = if config.cp.directory.is_absolute() {
            config.cp.directory.clone()
        } else {
            root.join(&config.cp.directory)
        };
        let own_public = identity.public().clone();
        Node {
            files: files::Transfers {
                app_policy: Default::default(),
                incoming_app: HashMap::new(),
                saving_app: HashMap::new(),
                cp: config.cp.clone(),
                cp_directory,
                cp_destination: Some(cp_destination),
                incoming_files: files::IncomingFiles::new(),
                outgoing_files: Vec::new(),
                received_files: std::collections::VecDeque::new(),
                writer: file_writer::FileWriter::start(prepared_tx.clone()),
                deferred_offers: Vec::new(),
                prepared_tx,
            },
            links: links::LinkData {
                link_inbox: HashMap::new(),
                link_inbox_bytes: 0,
                channel_inbox: HashMap::new(),
                channel_bytes: 0,
                stream_writes: HashMap::new(),
                request_handlers: links::builtin_handlers(),
                async_handlers: links::AsyncHandlers::default(),
                app_destinations: std::collections::HashSet::new(),
                ratchet_files: HashMap::new(),
                watched_names: std::collections::HashSet::new(),
                paced: HashMap::new(),
            },
            grid: grid_frames::GridState {
                layer: crate::proto::layer::GridLayer::new(grid_destination, started, capabilities),
                capability_announced: None,
                recent_events: events::RecentEvents::default(),
                peers: HashMap::new(),
                jobs: jobs::Jobs::default(),
            },
            dtn: bundles::Delay {
                store: store_work::StoreWork::new(bundles.store),
                config: bundles.config,
                courier_wake: bundles.wake,
                waiters: HashMap::new(),
                opening: exchange::Opening::new(),
                known_nodes: crate::known_nodes::KnownNodes::load(
                    &root.join(crate::known_nodes::KNOWN_NODES_FILE),
                ),
                path_requested: HashMap::new(),
            },
            transport,
            identity,
            grid_destination,
            announcing: announcing::Announcing {
                schedule: stagger(&announced, started),
                on_interfaces: Vec::new(),
                announced,
                interval: config.announce_interval,
                node_announced: None,
            },
            waiters: Vec::new(),
            calls,
            governor,
            guard,
            events,
            started,
            shared_instance: share_instance.then(|| config.instance_name.clone()),
            interfaces: interfaces::Interfaces::default(),
            dht: dht::DhtDriver::new(
                &own_public,
                started,
                rand_core::RngCore::next_u64(&mut rand_core::OsRng),
            ),
            gossip: gossip::GossipDriver::new(
                &own_public,
                started,
                rand_core::RngCore::next_u64(&mut rand_core::OsRng),
            ),
            flood: flood::FloodDriver::new(
                *own_public.hash().as_bytes(),
                started,
                rand_core::RngCore::next_u64(&mut rand_core::OsRng),
            ),
        }
    }

    /// Send queued frames and react to transport events.
    fn flush(&mut self, now: Instant) {
        while let Some(t) = self.transport.poll_transmit() {
            self.interfaces.send(t);
        }
        while let Some(e) = self.transport.poll_event() {
            self.on_event(now, e);
        }
        self.advance_waiters(now);
        self.drive_outgoing_files(now);
        // Sending probes may have queued frames.
        while let Some(t) = self.transport.poll_transmit() {
            self.interfaces.send(t);
        }
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Announce {
                destination,
                hops,
                name_hash,
                app_data,
                identity,
                interface,
                ..
            } => {
                tracing::debug!(%destination, hops, "announce");
                if self.links.watched_names.contains(&name_hash) {
                    let _ = self.events.send(api::NodeEvent::Announce {
                        destination,
                        identity: identity.hash(),
                        name_hash,
                        app_data: app_data.clone(),
                        hops,
                        interface: self
                            .transport
                            .interfaces()
                            .find(|(i, ..)| *i == interface)
                            .map(|(_, n, ..)| n.to_string())
                            .unwrap_or_default(),
                    });
                }
                self.relink_pending(now, destination);
                if name_hash == rns_core::destination::name_hash(well_known::GRID_NODE) {
                    self.on_grid_node_announce(now, destination, hops, &app_data);
                }
            }
            Event::Packet {
                destination,
                data,
                hops,
                packet_hash,
                ..
            } => {
                tracing::debug!(%destination, len = data.len(), "packet");
                if self.links.app_destinations.contains(&destination) {
                    let _ = self.events.send(api::NodeEvent::DestinationPacket {
                        destination,
                        packet_hash,
                        data,
                        hops,
                    });
                }
            }
            Event::Proof {
                packet_hash,
                rtt,
                destination,
            } => {
                let hops = self.transport.path(&destination).map(|p| p.hops);
                self.answer(
                    |w| matches!(w, Wait::ProbeProof { packet, .. } if *packet == packet_hash),
                    |_| {
                        Ok(reply::Outcome::Probed(crate::control::response::Probed {
                            destination,
                            rtt_ms: rtt.as_secs_f64() * 1000.0,
                            hops,
                        }))
                    },
                );
            }
            Event::ReceiptTimeout {
                packet_hash,
                destination,
            } => self.answer(
                |w| matches!(w, Wait::ProbeProof { packet, .. } if *packet == packet_hash),
                |_| {
                    Err(crate::Error::Timeout(format!(
                        "probe to {destination} timed out (no proof)"
                    )))
                },
            ),
            Event::Link(e) => self.on_link_event(now, e),
            Event::RatchetsRotated { destination } => self.on_ratchets_rotated(destination),
        }
    }
}
