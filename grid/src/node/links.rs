//! The node's side of links: request handlers, received packets, and link events that
//! complete waiting control requests.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rns_core::identity::PublicIdentity;
use rns_core::link::{wire::path_hash, LinkEvent, LinkId};
use rns_core::{rmpv, AddressHash, Instant};
use serde_json::{json, Value};

use super::reply::Outcome;
use super::waiters::Wait;
use super::Node;
use crate::api::{
    AsyncRequestHandler, Call, NodeEvent, Request, RequestHandler, MAX_ASYNC_REQUESTS,
};
use crate::Error;

/// Packets kept per link for `grid link recv`, at most.
const INBOX_PER_LINK: usize = 64;

/// `/ping`: answers `pong:` followed by the request data (as RNS's own test service does).
fn ping(req: &Request) -> Option<rmpv::Value> {
    let mut out = b"pong:".to_vec();
    match &req.data {
        rmpv::Value::Binary(b) => out.extend_from_slice(b),
        rmpv::Value::String(s) => out.extend_from_slice(s.as_bytes()),
        rmpv::Value::Nil => {}
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
    Some(rmpv::Value::Binary(out))
}

/// The request handlers every node has.
pub(super) fn builtin_handlers() -> HashMap<AddressHash, RequestHandler> {
    let ping: RequestHandler = Arc::new(ping);
    HashMap::from([(path_hash("/ping"), ping)])
}

/// Request handlers that run on tasks of their own, and how many of them run now.
#[derive(Default)]
pub(super) struct AsyncHandlers {
    by_path: HashMap<AddressHash, AsyncRequestHandler>,
    running: Arc<AtomicUsize>,
}

impl AsyncHandlers {
    /// Register `handler` for `path` (replacing one there).
    pub(super) fn insert(&mut self, path: &str, handler: AsyncRequestHandler) {
        self.by_path.insert(path_hash(path), handler);
    }

    /// Forget the handler for `path`.
    pub(super) fn remove(&mut self, path: &str) {
        self.by_path.remove(&path_hash(path));
    }

    /// Run the handler for `path_hash` on a task of its own; its answer comes back as
    /// [`Call::LinkRespond`]. False if there is none; a request over
    /// [`MAX_ASYNC_REQUESTS`] is dropped unanswered.
    fn spawn(
        &self,
        path_hash: &AddressHash,
        req: Request,
        request_id: AddressHash,
        calls: &tokio::sync::mpsc::Sender<Call>,
    ) -> bool {
        let Some(handler) = self.by_path.get(path_hash).cloned() else {
            return false;
        };
        let running = self.running.clone();
        if running.fetch_add(1, Ordering::SeqCst) >= MAX_ASYNC_REQUESTS {
            running.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!(link = %req.link, "too many requests in progress; one dropped");
            return true;
        }
        let calls = calls.clone();
        let link = req.link;
        tokio::spawn(async move {
            let response = handler(req).await;
            running.fetch_sub(1, Ordering::SeqCst);
            if let Some(response) = response {
                let _ = calls
                    .send(Call::LinkRespond {
                        link,
                        request_id,
                        response,
                    })
                    .await;
            }
        });
        true
    }
}

/// Bytes for people and scripts: UTF-8 becomes text, anything else `{"hex": …}`.
pub(super) fn bytes_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => json!(s),
        Err(_) => json!({"hex": hex::encode(b)}),
    }
}

/// A msgpack value for people and scripts: UTF-8 bytes become text, other bytes hex.
pub(super) fn value_json(v: &rmpv::Value) -> Value {
    match v {
        rmpv::Value::Binary(b) => bytes_json(b),
        rmpv::Value::String(s) => json!(s.as_str().unwrap_or_default()),
        rmpv::Value::Nil => Value::Null,
        rmpv::Value::Boolean(b) => json!(b),
        rmpv::Value::Integer(i) => i.as_i64().map_or_else(|| json!(i.as_u64()), |n| json!(n)),
        rmpv::Value::F32(f) => json!(f),
        rmpv::Value::F64(f) => json!(f),
        rmpv::Value::Array(a) => Value::Array(a.iter().map(value_json).collect()),
        other => json!(other.to_string()),
    }
}

/// A request from another Grid node's protocol (DHT, gossip): the caller identified on
/// the link (its identity is who the protocol talks to) and sent bytes.
pub(super) struct PeerRequest {
    pub(super) link: LinkId,
    pub(super) request_id: AddressHash,
    pub(super) remote: Box<PublicIdentity>,
    pub(super) bytes: Vec<u8>,
}

impl PeerRequest {
    /// The request, if its caller identified and its data is bytes (else it is ignored:
    /// these protocols answer identities only).
    fn of(
        link: LinkId,
        request_id: AddressHash,
        data: rmpv::Value,
        remote: Option<Box<PublicIdentity>>,
    ) -> Option<PeerRequest> {
        match (remote, data) {
            (Some(remote), rmpv::Value::Binary(bytes)) => Some(PeerRequest {
                link,
                request_id,
                remote,
                bytes,
            }),
            _ => {
                tracing::debug!(%link, "request from an unidentified caller or not bytes; ignored");
                None
            }
        }
    }
}

impl Node {
    /// A complete incoming segment: decrypt, decompress and hash it on a blocking
    /// thread (up to 1 MiB of work); the result comes back as
    /// [`Call::ResourceAssembled`](crate::api::Call::ResourceAssembled). One segment per
    /// link is in assembly at a time (its sender waits for the proof), and what was
    /// received counted against the incoming-resource budgets.
    fn assemble_off_loop(&mut self, link: LinkId, job: rns_core::link::AssemblyJob) {
        let calls = self.calls.clone();
        tokio::spawn(async move {
            let Ok(done) = tokio::task::spawn_blocking(move || job.run()).await else {
                return;
            };
            let _ = calls
                .send(crate::api::Call::ResourceAssembled {
                    link,
                    done: Box::new(done),
                })
                .await;
        });
    }

    /// A segment assembled off the loop: the link proves and reports it (or the link is
    /// gone, and so is the segment).
    pub(super) fn on_resource_assembled(
        &mut self,
        now: Instant,
        link: LinkId,
        done: rns_core::link::AssemblyDone,
    ) {
        if let Err(e) = self.transport.link_resource_assembled(now, &link, done) {
            tracing::debug!(%link, error = %e, "assembled a segment for a link that is gone");
        }
    }

    /// React to a link event: answer requests, buffer packets, complete waiters.
    pub(super) fn on_link_event(&mut self, now: Instant, e: LinkEvent) {
        // Frames on links (requests to grid.node, pushed events and progress) are the grid
        // layer's; it also notes links closing.
        if self.with_grid(now, |grid, at, transport, policy| {
            grid.on_link_event(at, transport, policy, &e)
        }) {
            return;
        }
        match e {
            LinkEvent::Established { link, rtt, mtu, initiator, destination } => {
                tracing::debug!(%link, %destination, initiator, rtt_ms = rtt.as_secs_f64() * 1e3, mtu, "link established");
                if initiator {
                    self.files_link_established(now, link);
                }
                self.app_link_established(link);
                self.emit(|| NodeEvent::LinkEstablished { link, destination, initiator, rtt, mtu });
                self.answer(
                    |w| matches!(w, Wait::LinkUp(l) if *l == link),
                    |_| Ok(Outcome::LinkUp { link, rtt, mtu }),
                );
            }
            LinkEvent::Closed { link, reason } => {
                tracing::debug!(%link, ?reason, "link closed");
                drop(self.take_link_packets(&link));
                self.files_link_closed(now, &link);
                self.channels_link_closed(&link);
                self.app_link_closed(&link);
                self.paced_closed(&link);
                self.emit(|| NodeEvent::LinkClosed { link, reason: format!("{reason:?}") });
                self.answer(
                    |w| matches!(w, Wait::LinkUp(l) | Wait::LinkProof { link: l, .. } | Wait::LinkResponse { link: l, .. } | Wait::ChannelDelivered { link: l, .. } if *l == link),
                    |_| Err(Error::LinkClosed(format!("link {link} closed ({reason:?})"))),
                );
            }
            LinkEvent::Packet { link, data, .. } => {
                self.emit(|| NodeEvent::Packet { link, data: data.clone() });
                let full = self.links.link_inbox_bytes + data.len() > super::channels::INBOX_BYTES_PER_NODE;
                let inbox = self.links.link_inbox.entry(link).or_default();
                if inbox.len() >= INBOX_PER_LINK {
                    if let Some(old) = inbox.pop_front() {
                        self.links.link_inbox_bytes -= old.len();
                    }
                }
                if full {
                    tracing::debug!(%link, "link inboxes full; packet dropped");
                } else {
                    self.links.link_inbox_bytes += data.len();
                    inbox.push_back(data);
                }
            }
            LinkEvent::Proof { link, packet_hash, rtt } => {
                self.paced_settled(now, link, &packet_hash);
                self.answer(
                    |w| matches!(w, Wait::LinkProof { link: l, packet } if *l == link && *packet == packet_hash),
                    |_| Ok(Outcome::Proven { link, rtt }),
                )
            }
            LinkEvent::ProofTimeout { link, packet_hash } => {
                self.paced_settled(now, link, &packet_hash);
                self.answer(
                    |w| matches!(w, Wait::LinkProof { link: l, packet } if *l == link && *packet == packet_hash),
                    |_| Err(Error::Timeout(format!("no proof for the packet on link {link}"))),
                )
            }
            LinkEvent::Response { link, request_id, data } => self.answer(
                |w| matches!(w, Wait::LinkResponse { link: l, request } if *l == link && *request == request_id),
                |_| Ok(Outcome::Response { link, data: data.clone() }),
            ),
            LinkEvent::RequestTimeout { link, request_id } => self.answer(
                |w| matches!(w, Wait::LinkResponse { link: l, request } if *l == link && *request == request_id),
                |_| Err(Error::Timeout(format!("no response on link {link}"))),
            ),
            LinkEvent::ResourceOffered { link, segment, remote_identity } => {
                if self.is_app_link(&link) {
                    self.on_app_resource_offered(now, link, &segment, remote_identity);
                } else {
                    self.on_resource_offered(now, link, &segment, remote_identity);
                }
            }
            LinkEvent::ResourceProgress { link, hash, sending, parts_done, parts_total } => {
                self.emit(|| NodeEvent::ResourceProgress { link, sending, parts_done, parts_total });
                if sending {
                    self.on_resource_progress(link, &hash, parts_done, parts_total);
                }
            }
            LinkEvent::ResourceAssemble { link, job } => self.assemble_off_loop(link, job),
            LinkEvent::ResourceSegment { link, segment, data } if self.is_app_link(&link) => {
                self.on_app_segment(link, &segment, data);
            }
            LinkEvent::ResourceSegment { link, segment, data } => self.on_resource_segment(link, &segment, data),
            LinkEvent::ResourceSent { link, segment } => {
                self.on_app_resource_sent(link, segment.hash);
                self.on_resource_sent(now, link, &segment);
            }
            LinkEvent::ResourceFailed { link, hash, sending, reason } => {
                if sending {
                    self.on_app_resource_failed(link, hash, format!("the resource transfer failed ({reason:?})"));
                    self.on_outgoing_resource_failed(now, link, &hash, reason);
                } else {
                    self.on_app_incoming_failed(link, hash);
                    self.on_incoming_resource_failed(link, reason);
                }
            }
            LinkEvent::ChannelMessage { link, msgtype, data, .. } => {
                self.emit(|| NodeEvent::ChannelMessage { link, msgtype, data: data.clone() });
                self.on_channel_message(link, msgtype, data);
            }
            LinkEvent::ChannelDelivered { link, sequence } => {
                self.on_channel_delivered(now, link, sequence);
            }
            LinkEvent::StreamData { link, stream_id, data, eof } => {
                self.emit(|| NodeEvent::StreamData { link, stream_id, data: data.clone(), eof });
                self.on_stream_data(link, stream_id, data, eof);
            }
            LinkEvent::Identified { link, identity } => {
                tracing::debug!(%link, identity = %identity.hash(), "link peer identified");
                self.emit(|| NodeEvent::RemoteIdentified { link, identity: identity.hash() });
            }
            LinkEvent::Request { link, request_id, path_hash, data, remote_identity }
                if path_hash == rns_core::link::wire::path_hash(crate::proto::dht::DHT_PATH) =>
            {
                if let Some(r) = PeerRequest::of(link, request_id, data, remote_identity) {
                    self.on_dht_request(now, r);
                }
            }
            LinkEvent::Request { link, request_id, path_hash, data, remote_identity }
                if path_hash == rns_core::link::wire::path_hash(crate::proto::gossip::GOSSIP_PATH) =>
            {
                if let Some(r) = PeerRequest::of(link, request_id, data, remote_identity) {
                    self.on_gossip_request(now, r);
                }
            }
            LinkEvent::Request { link, request_id, path_hash, data, remote_identity }
                if path_hash == rns_core::link::wire::path_hash(crate::proto::flood::FLOOD_PATH) =>
            {
                if let Some(r) = PeerRequest::of(link, request_id, data, remote_identity) {
                    self.on_flood_request(now, r);
                }
            }
            LinkEvent::Request { link, request_id, path_hash, data, remote_identity }
                if path_hash == rns_core::link::wire::path_hash(crate::bundle::wire::BUNDLE_PATH) =>
            {
                let caller = remote_identity.map(|i| i.hash());
                self.on_bundle_request(now, link, request_id, data, caller);
            }
            LinkEvent::Request { link, request_id, path_hash, data, remote_identity } => {
                let req = Request { link, data, remote_identity: remote_identity.map(|i| i.hash()) };
                let handler = self.links.request_handlers.get(&path_hash).cloned();
                let Some(handler) = handler else {
                    if !self.links.async_handlers.spawn(&path_hash, req, request_id, &self.calls) {
                        tracing::debug!(%link, %path_hash, "request for an unknown path");
                    }
                    return;
                };
                if let Some(response) = handler(&req) {
                    if let Err(e) = self.transport.link_respond(now, &link, &request_id, &response) {
                        tracing::debug!(%link, error = %e, "could not respond");
                    }
                }
            }
        }
    }

    /// Take the packets received on a link so far.
    pub(super) fn take_link_packets(&mut self, link: &LinkId) -> VecDeque<Vec<u8>> {
        let taken = self.links.link_inbox.remove(link).unwrap_or_default();
        self.links.link_inbox_bytes -= taken.iter().map(Vec::len).sum::<usize>();
        taken
    }
}

/// What programs do with links: packets, channel messages and stream bytes received until taken, stream writes waiting, and request handlers.
pub(super) struct LinkData {
    /// Packets received on links, until `grid link recv` takes them.
    pub(super) link_inbox: HashMap<rns_core::link::LinkId, std::collections::VecDeque<Vec<u8>>>,
    /// Bytes in all link inboxes (bounded like the channel inboxes).
    pub(super) link_inbox_bytes: usize,
    /// Channel messages and stream bytes received, until `grid link recv` takes them.
    pub(super) channel_inbox: HashMap<rns_core::link::LinkId, super::channels::ChannelInbox>,
    /// Bytes in all channel inboxes (bounded by [`channels::INBOX_BYTES_PER_NODE`]).
    pub(super) channel_bytes: usize,
    /// Stream writes waiting for channel window space or delivery.
    pub(super) stream_writes:
        HashMap<rns_core::link::LinkId, std::collections::VecDeque<super::channels::StreamWrite>>,
    /// Request handlers by path hash.
    pub(super) request_handlers: HashMap<AddressHash, crate::api::RequestHandler>,
    /// Request handlers that run on tasks of their own.
    pub(super) async_handlers: AsyncHandlers,
    /// Destinations programs registered (`NodeHandle::register_destination`): packets to
    /// them become [`crate::api::NodeEvent::DestinationPacket`]s.
    pub(super) app_destinations: std::collections::HashSet<AddressHash>,
    /// Where a program's destinations with ratchets keep their ratchet files.
    pub(super) ratchet_files: HashMap<AddressHash, std::path::PathBuf>,
    /// Destination names whose announces programs watch (their name hashes; at most
    /// [`crate::api::MAX_WATCHED_NAMES`]): they become [`crate::api::NodeEvent::Announce`]s.
    pub(super) watched_names: std::collections::HashSet<rns_core::destination::NameHash>,
    /// Paced link packets by link ([`super::paced`]).
    pub(super) paced: HashMap<rns_core::link::LinkId, super::paced::Paced>,
}
