//! The node: one task that drives the sans-IO transport with real interfaces,
//! announces `grid.node`, answers probes and serves the control socket.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use grid_interfaces::control::{self, ControlError, ControlRequest};
use grid_interfaces::{tcp, udp, Hub, InterfaceEvent, Readiness};
use rns_core::destination::well_known;
use rns_core::transport::{
    Event, InterfaceConfig, InterfaceId, ProofStrategy, Transport, TransportConfig,
};
use rns_core::{AddressHash, Identity, Instant};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::clock;
use crate::config::{Config, InterfaceKind};
use crate::state::{StateDir, StateError};

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// State directory, identity or config problem.
    #[error(transparent)]
    State(#[from] StateError),
    /// Control socket problem (another node running, say).
    #[error(transparent)]
    Control(#[from] ControlError),
    /// An interface could not be set up.
    #[error("interface {name}: {reason}")]
    Interface {
        /// Interface name.
        name: String,
        /// What went wrong.
        reason: String,
    },
}

/// A control request waiting for the network.
enum Waiter {
    Path {
        destination: AddressHash,
        deadline: Instant,
        reply: oneshot::Sender<Value>,
    },
    Probe {
        destination: AddressHash,
        deadline: Instant,
        /// Payload to send (random when the request gave none).
        payload: Vec<u8>,
        /// Set once the probe is sent.
        sent: Option<[u8; 32]>,
        reply: oneshot::Sender<Value>,
    },
}

impl Waiter {
    fn deadline(&self) -> Instant {
        match self {
            Waiter::Path { deadline, .. } | Waiter::Probe { deadline, .. } => *deadline,
        }
    }
}

struct Node {
    transport: Transport,
    identity: Identity,
    grid_destination: AddressHash,
    /// `rnstransport.probe`, announced periodically on transport nodes (as RNS does).
    announced_probe: Option<AddressHash>,
    outbound: HashMap<InterfaceId, mpsc::Sender<Vec<u8>>>,
    waiters: Vec<Waiter>,
    started: Instant,
    announce_interval: Duration,
    dropped_outbound: u64,
    /// Interfaces that are up but not yet ready for traffic (see [`Readiness`]), with the
    /// latest time they become ready.
    pending: HashMap<InterfaceId, (InterfaceConfig, Instant)>,
}

/// Run a node from a state directory until `shutdown` completes.
pub async fn run(state: StateDir, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let started = clock::now();
    let config = state.load_or_create_config()?;
    let identity = state.load_or_create_identity()?;
    let listener = control::bind(&state.socket_path()).await?;
    let (hub, mut iface_events) = Hub::new(1024);
    start_interfaces(&config, &hub).await?;
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<ControlRequest>(64);
    let socket_path = state.socket_path();
    tokio::spawn(control::serve(listener, ctl_tx));

    let mut node = Node::new(&config, identity, started);
    tracing::info!(
        identity = %node.identity.hash(),
        destination = %node.grid_destination,
        transport = config.transport,
        "node started"
    );
    let mut announce_at = started;
    tokio::pin!(shutdown);
    loop {
        let now = clock::now();
        if now >= announce_at {
            node.announce(now);
            announce_at = now + node.announce_interval;
        }
        let mut wake = node.transport.poll_timeout().min(announce_at);
        if let Some(w) = node.waiters.iter().map(Waiter::deadline).min() {
            wake = wake.min(w);
        }
        if let Some(w) = node.pending.values().map(|(_, t)| *t).min() {
            wake = wake.min(w);
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
            req = ctl_rx.recv() => {
                if let Some(req) = req { node.on_control(clock::now(), req); }
            }
            _ = tokio::time::sleep_until(clock::deadline(wake)) => {
                let now = clock::now();
                node.transport.handle_timeout(now);
                node.expire_waiters(now);
                node.activate_due(now);
            }
            _ = &mut shutdown => break,
        }
        node.flush(clock::now());
    }
    let _ = std::fs::remove_file(socket_path);
    tracing::info!("node stopped");
    Ok(())
}

async fn start_interfaces(config: &Config, hub: &Hub) -> Result<(), NodeError> {
    for spec in &config.interfaces {
        let name = spec.rns.name.clone();
        let fail = |reason: String| NodeError::Interface {
            name: name.clone(),
            reason,
        };
        match &spec.kind {
            InterfaceKind::TcpServer { listen } => {
                let l = tcp::bind_server(listen)
                    .await
                    .map_err(|e| fail(format!("cannot listen on {listen}: {e}")))?;
                tokio::spawn(tcp::run_server(hub.clone(), l, spec.rns.clone()));
            }
            InterfaceKind::TcpClient { target } => {
                tokio::spawn(tcp::run_client(
                    hub.clone(),
                    target.clone(),
                    spec.rns.clone(),
                ));
            }
            InterfaceKind::Udp { listen, forward } => {
                let s = udp::bind(listen)
                    .await
                    .map_err(|e| fail(format!("cannot bind {listen}: {e}")))?;
                tokio::spawn(udp::run(hub.clone(), s, *forward, spec.rns.clone()));
            }
        }
    }
    Ok(())
}

impl Node {
    fn new(config: &Config, identity: Identity, started: Instant) -> Node {
        let mut transport = Transport::new(
            TransportConfig {
                transport_enabled: config.transport,
                ..TransportConfig::default()
            },
            identity.clone(),
            Box::new(rand_core::OsRng),
        );
        let grid_destination = transport.register_destination(
            identity.clone(),
            well_known::GRID_NODE,
            ProofStrategy::All,
            Vec::new(),
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
        Node {
            transport,
            identity,
            grid_destination,
            announced_probe,
            outbound: HashMap::new(),
            waiters: Vec::new(),
            started,
            announce_interval: config.announce_interval,
            dropped_outbound: 0,
            pending: HashMap::new(),
        }
    }

    fn announce(&mut self, now: Instant) {
        if self.outbound.is_empty() {
            return;
        }
        for d in std::iter::once(self.grid_destination).chain(self.announced_probe) {
            if let Err(e) = self.transport.announce(now, &d, None) {
                tracing::warn!(error = %e, "announce failed");
            }
        }
    }

    /// Activate pending interfaces whose wait is over.
    fn activate_due(&mut self, now: Instant) {
        let due: Vec<InterfaceId> = self
            .pending
            .iter()
            .filter(|(_, (_, t))| *t <= now)
            .map(|(i, _)| *i)
            .collect();
        for id in due {
            self.activate(now, id);
        }
    }

    /// Let the transport use an interface, and introduce ourselves on it.
    fn activate(&mut self, now: Instant, id: InterfaceId) {
        let Some((config, _)) = self.pending.remove(&id) else {
            return;
        };
        if self.transport.interfaces().any(|(i, ..)| i == id) {
            self.transport.set_interface_online(id, true);
        } else {
            self.transport.add_interface(now, id, config);
        }
        let d = self.grid_destination;
        let r = self.transport.announce_on(now, &d, id);
        tracing::debug!(interface = %id, announce = ?r, "interface ready");
    }

    fn on_interface(&mut self, now: Instant, ev: InterfaceEvent) {
        match ev {
            InterfaceEvent::Up {
                id,
                config,
                outbound,
                ready,
            } => {
                self.outbound.insert(id, outbound);
                // Until it is ready, the transport must not send on it.
                self.transport.set_interface_online(id, false);
                let until = match ready {
                    Readiness::Now => now,
                    Readiness::After(d) | Readiness::WhenHeardOr(d) => now + d,
                };
                self.pending.insert(id, (*config, until));
                if ready == Readiness::Now {
                    self.activate(now, id);
                }
            }
            InterfaceEvent::Down { id, remove } => {
                self.pending.remove(&id);
                if remove {
                    self.outbound.remove(&id);
                    self.transport.remove_interface(id);
                } else {
                    self.transport.set_interface_online(id, false);
                }
            }
            InterfaceEvent::Frame { id, data } => {
                if self.pending.contains_key(&id) {
                    self.activate(now, id); // the peer spoke: it is ready
                }
                self.transport.handle_inbound_vec(now, id, data)
            }
            InterfaceEvent::Frames { id, frames } => {
                if self.pending.contains_key(&id) {
                    self.activate(now, id);
                }
                for data in frames {
                    self.transport.handle_inbound_vec(now, id, data);
                }
            }
        }
    }

    /// Send queued frames and react to transport events.
    fn flush(&mut self, now: Instant) {
        while let Some(t) = self.transport.poll_transmit() {
            if let Some(tx) = self.outbound.get(&t.interface) {
                if tx.try_send(t.frame).is_err() {
                    self.dropped_outbound += 1;
                }
            }
        }
        while let Some(e) = self.transport.poll_event() {
            self.on_event(now, e);
        }
        self.advance_waiters(now);
        // Sending probes may have queued frames.
        while let Some(t) = self.transport.poll_transmit() {
            if let Some(tx) = self.outbound.get(&t.interface) {
                if tx.try_send(t.frame).is_err() {
                    self.dropped_outbound += 1;
                }
            }
        }
    }

    fn on_event(&mut self, _now: Instant, e: Event) {
        match e {
            Event::Announce {
                destination, hops, ..
            } => {
                tracing::debug!(%destination, hops, "announce");
            }
            Event::Packet {
                destination, data, ..
            } => {
                tracing::debug!(%destination, len = data.len(), "packet");
            }
            Event::Proof {
                packet_hash,
                rtt,
                destination,
            } => {
                let hops = self.transport.path(&destination).map(|p| p.hops);
                self.finish_probe(&packet_hash, |d| {
                    json!({"ok": true, "destination": d.to_string(), "rtt_ms": rtt.as_secs_f64() * 1000.0, "hops": hops})
                });
            }
            Event::ReceiptTimeout { packet_hash, .. } => {
                self.finish_probe(
                    &packet_hash,
                    |d| json!({"ok": false, "error": format!("probe to {d} timed out (no proof)")}),
                );
            }
        }
    }

    fn finish_probe(&mut self, hash: &[u8; 32], make: impl Fn(&AddressHash) -> Value) {
        let Some(i) = self
            .waiters
            .iter()
            .position(|w| matches!(w, Waiter::Probe { sent: Some(h), .. } if h == hash))
        else {
            return;
        };
        if let Waiter::Probe {
            destination, reply, ..
        } = self.waiters.swap_remove(i)
        {
            let _ = reply.send(make(&destination));
        }
    }

    /// Complete path waiters whose path appeared; send probes whose path appeared.
    fn advance_waiters(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.waiters.len() {
            let ready = match &self.waiters[i] {
                Waiter::Path { destination, .. } => self.transport.path(destination).is_some(),
                Waiter::Probe {
                    destination,
                    sent: None,
                    ..
                } => self.transport.path(destination).is_some(),
                Waiter::Probe { .. } => false,
            };
            if !ready {
                i += 1;
                continue;
            }
            match self.waiters.swap_remove(i) {
                Waiter::Path {
                    destination, reply, ..
                } => {
                    let _ = reply.send(self.path_json(&destination));
                }
                Waiter::Probe {
                    destination,
                    deadline,
                    payload,
                    reply,
                    ..
                } => match self.transport.send_single(now, &destination, &payload) {
                    Ok(h) => self.waiters.push(Waiter::Probe {
                        destination,
                        deadline,
                        payload,
                        sent: Some(h),
                        reply,
                    }),
                    Err(e) => {
                        let _ = reply.send(json!({"ok": false, "error": e.to_string()}));
                    }
                },
            }
        }
    }

    fn expire_waiters(&mut self, now: Instant) {
        let (gone, keep): (Vec<_>, Vec<_>) =
            self.waiters.drain(..).partition(|w| now >= w.deadline());
        self.waiters = keep;
        for w in gone {
            match w {
                Waiter::Path {
                    destination, reply, ..
                } => {
                    let _ = reply.send(
                        json!({"ok": false, "error": format!("no path to {destination} found")}),
                    );
                }
                Waiter::Probe {
                    destination,
                    sent,
                    reply,
                    ..
                } => {
                    let what = if sent.is_some() {
                        "probe timed out"
                    } else {
                        "no path found"
                    };
                    let _ = reply
                        .send(json!({"ok": false, "error": format!("{what} for {destination}")}));
                }
            }
        }
    }

    fn path_json(&self, d: &AddressHash) -> Value {
        match self.transport.path(d) {
            Some(p) => {
                let iface = self
                    .transport
                    .interfaces()
                    .find(|(i, ..)| *i == p.interface)
                    .map(|(_, n, ..)| n.to_string())
                    .unwrap_or_default();
                let identity = self
                    .transport
                    .recall_identity(d)
                    .map(|i| i.hash().to_string());
                let app_data = self.transport.recall_app_data(d).map(hex::encode);
                json!({
                    "ok": true,
                    "destination": d.to_string(),
                    "identity": identity,
                    "app_data": app_data,
                    "hops": p.hops,
                    "next_hop": p.next_hop.to_string(),
                    "interface": iface,
                    "expires_in_s": p.expires.saturating_since(clock::now()).as_secs(),
                })
            }
            None => json!({"ok": false, "error": format!("no path to {d}")}),
        }
    }

    fn on_control(&mut self, now: Instant, req: ControlRequest) {
        let body = &req.body;
        let cmd = body.get("cmd").and_then(Value::as_str).unwrap_or("");
        let dest = || -> Result<AddressHash, Value> {
            body.get("destination")
                .and_then(Value::as_str)
                .ok_or_else(|| json!({"ok": false, "error": "missing destination"}))?
                .parse::<AddressHash>()
                .map_err(
                    |e| json!({"ok": false, "error": format!("invalid destination hash: {e}")}),
                )
        };
        let timeout = Duration::from_millis(
            body.get("timeout_ms")
                .and_then(Value::as_u64)
                .unwrap_or(15_000)
                .min(600_000),
        );
        match cmd {
            "status" => {
                let _ = req.reply.send(self.status_json(now));
            }
            "path" => match dest() {
                Err(e) => {
                    let _ = req.reply.send(e);
                }
                Ok(d) => {
                    if self.transport.path(&d).is_some() {
                        let _ = req.reply.send(self.path_json(&d));
                    } else {
                        self.transport.request_path(now, &d, None);
                        self.waiters.push(Waiter::Path {
                            destination: d,
                            deadline: now + timeout,
                            reply: req.reply,
                        });
                    }
                }
            },
            "probe" => match dest() {
                Err(e) => {
                    let _ = req.reply.send(e);
                }
                Ok(d) => {
                    let payload = match body.get("data").and_then(Value::as_str) {
                        Some(text) => text.as_bytes().to_vec(),
                        None => {
                            let size = body
                                .get("size")
                                .and_then(Value::as_u64)
                                .unwrap_or(16)
                                .clamp(1, rns_core::packet::ENCRYPTED_MDU as u64);
                            let mut p = vec![0u8; size as usize];
                            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut p);
                            p
                        }
                    };
                    if payload.is_empty() || payload.len() > rns_core::packet::ENCRYPTED_MDU {
                        let _ = req.reply.send(json!({"ok": false, "error": format!("probe payload must be 1..={} bytes", rns_core::packet::ENCRYPTED_MDU)}));
                        return;
                    }
                    if self.transport.path(&d).is_none() {
                        self.transport.request_path(now, &d, None);
                    }
                    self.waiters.push(Waiter::Probe {
                        destination: d,
                        deadline: now + timeout,
                        payload,
                        sent: None,
                        reply: req.reply,
                    });
                }
            },
            "announce" => {
                self.announce(now);
                let _ = req
                    .reply
                    .send(json!({"ok": true, "destination": self.grid_destination.to_string()}));
            }
            other => {
                let _ = req
                    .reply
                    .send(json!({"ok": false, "error": format!("unknown command \"{other}\"")}));
            }
        }
    }

    fn status_json(&self, now: Instant) -> Value {
        let interfaces: Vec<Value> = self
            .transport
            .interfaces()
            .map(|(id, name, online, s)| {
                json!({
                    "id": id.0, "name": name, "online": online,
                    "rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes,
                    "tx_packets": s.tx_packets, "tx_bytes": s.tx_bytes,
                    "rx_announces": s.rx_announces, "tx_announces": s.tx_announces,
                    "ifac_violations": s.ifac_violations,
                    "protocol_violations": s.protocol_violations,
                    "filtered": s.filtered,
                    "held_announces": s.held_announces,
                    "queued_announces": s.queued_announces,
                })
            })
            .collect();
        let mut paths: Vec<Value> = self
            .transport
            .paths()
            .take(1000)
            .map(|p| {
                json!({"destination": p.destination.to_string(), "hops": p.hops,
                       "next_hop": p.next_hop.to_string(), "interface": p.interface.0})
            })
            .collect();
        paths.sort_by(|a, b| a["hops"].as_u64().cmp(&b["hops"].as_u64()));
        let st = self.transport.stats();
        json!({
            "ok": true,
            "identity": self.identity.hash().to_string(),
            "destination": self.grid_destination.to_string(),
            "transport": self.transport.transport_enabled(),
            "uptime_s": now.saturating_since(self.started).as_secs(),
            "interfaces": interfaces,
            "path_count": self.transport.path_count(),
            "paths": paths,
            "known_destinations": self.transport.known_destination_count(),
            "stats": {
                "forwarded": st.forwarded, "rebroadcasts": st.rebroadcasts,
                "delivered": st.delivered, "undecryptable": st.undecryptable,
                "protocol_violations": st.protocol_violations,
                "ifac_violations": st.ifac_violations,
                "dropped_outbound": self.dropped_outbound + st.dropped_transmits,
            },
        })
    }
}
