//! The node as the driver of its catalog gossip ([`crate::proto::gossip`]): Grid nodes
//! heard directly (one hop, on a fast interface) become neighbours, gossip messages
//! travel as requests on [`GOSSIP_PATH`] over identified links to `grid.node`, and this
//! node's own entries are signed with its identity.
//!
//! A request carries one message; the answer to it (the next round of the same session,
//! or nothing) comes back as the response, and anything else the gossip wants to send
//! goes as a request of its own. Outgoing requests run on tasks (opening a link takes
//! round trips); their answers come back to the loop as [`Call::GossipAnswer`].
//!
//! Neighbours heard over radio ride the same links, with the gossip's radio settings
//! (one session every 10 minutes, LoRa-sized messages); a message to one is not sent
//! while its interface has used half of its airtime limit in the last hour
//! ([`radio::airtime_allows`]), and is counted as skipped.

use std::collections::HashMap;
use std::time::Duration;

use rns_core::identity::PublicIdentity;
use rns_core::{rmpv, AddressHash, Instant};

use super::catalog_store::CatalogStore;
use super::links::PeerRequest;
use super::Node;
use crate::api::Call;
use crate::proto::gossip::entry::{Digest, Entry, Record};
use crate::proto::gossip::message::Message;
use crate::proto::gossip::{radio, Config, Gossip, Peer, Transmit, GOSSIP_PATH};

/// How long opening (or checking) a link for a gossip message may take.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a gossip request on a link may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// The gossip on the node, and where its neighbours are.
pub(super) struct GossipDriver {
    pub(super) gossip: Gossip,
    /// Each neighbour's `grid.node` destination, by identity hash (as many as the
    /// gossip keeps neighbours).
    nodes: HashMap<Peer, AddressHash>,
    /// Where the catalog is kept across restarts (none for an attached program).
    pub(super) store: Option<CatalogStore>,
    /// Messages to radio neighbours not sent because the airtime was spent.
    pub(super) radio_skipped: u64,
}

impl GossipDriver {
    pub(super) fn new(own: &PublicIdentity, now: Instant, seed: u64) -> GossipDriver {
        GossipDriver {
            gossip: Gossip::new(own, Config::default(), now, seed),
            nodes: HashMap::new(),
            store: None,
            radio_skipped: 0,
        }
    }
}

impl Node {
    /// A neighbour (a Grid node one hop away on a fast interface) was heard: a first
    /// gossip session with it starts at once.
    pub(super) fn gossip_heard(&mut self, now: Instant, peer: Peer, node: AddressHash) {
        if let Ok(true) = self.gossip.gossip.add_neighbour(peer) {
            self.gossip.nodes.insert(peer, node);
            self.gossip.gossip.sync_with(peer);
            self.flush_gossip(now);
        }
    }

    /// A Grid node heard directly over radio: a radio neighbour, with one session at
    /// once (two short packets when the catalogs agree), then on the radio round.
    pub(super) fn gossip_heard_on_radio(&mut self, now: Instant, peer: Peer, node: AddressHash) {
        if let Ok(true) = self.gossip.gossip.add_radio_neighbour(peer) {
            self.gossip.nodes.insert(peer, node);
            self.gossip.gossip.sync_with(peer);
            self.flush_gossip(now);
        }
    }

    /// Whether the radio interface the path to `node` leaves on has airtime left for
    /// gossip.
    fn radio_airtime_left(&self, node: &AddressHash) -> bool {
        let Some(stats) = self
            .transport
            .path(node)
            .and_then(|p| self.interfaces.radio.get(&p.interface))
        else {
            return true;
        };
        let used = [stats.airtime_long_pct, stats.duty_used_pct]
            .into_iter()
            .flatten()
            .reduce(f32::max);
        radio::airtime_allows(used, stats.airtime_limit_pct)
    }

    /// Sign `record` as this node's entry and publish it; it goes to a few neighbours
    /// at once (not only at the next interval). Returns its digest.
    pub(super) fn catalog_publish(
        &mut self,
        now: Instant,
        record: Record,
    ) -> Result<Digest, crate::Error> {
        let entry = Entry::sign(&self.identity, record)
            .map_err(|e| crate::Error::BadRequest(e.to_string()))?;
        let digest = *entry.digest();
        self.gossip
            .gossip
            .publish(now, entry)
            .map_err(|e| crate::Error::BadRequest(e.to_string()))?;
        let fanout = Config::default().fanout;
        let first: Vec<Peer> = self
            .gossip
            .gossip
            .neighbours()
            .iter()
            .take(fanout)
            .copied()
            .collect();
        for peer in first {
            self.gossip.gossip.sync_with(peer);
        }
        self.flush_gossip(now);
        Ok(digest)
    }

    /// The entries this node holds (its own and those gossip brought), tombstones left out.
    pub(super) fn catalog_entries(&self) -> Vec<Entry> {
        self.gossip
            .gossip
            .catalog()
            .entries()
            .values()
            .filter(|e| !e.is_tombstone())
            .cloned()
            .collect()
    }

    /// How many neighbours the node gossips with: on fast interfaces, and over radio.
    pub(super) fn gossip_neighbours(&self) -> (usize, usize) {
        let g = &self.gossip.gossip;
        (g.neighbours().len(), g.radio_neighbours().len())
    }

    /// A gossip message from another node on `link`. Callers must identify on the link
    /// (a neighbour is an identity); the answer, if any, is the response.
    pub(super) fn on_gossip_request(&mut self, now: Instant, request: PeerRequest) {
        let (link, from) = (request.link, *request.remote.hash().as_bytes());
        // The next round of this session is the response (empty if there is none, so
        // the caller is not left waiting); everything else goes out as usual.
        let answer = match Message::decode(&request.bytes) {
            Ok(message) => self.gossip.gossip.handle_request(now, from, message),
            Err(e) => {
                tracing::debug!(%link, error = %e, "undecodable gossip message");
                None
            }
        };
        let value = rmpv::Value::Binary(answer.map(|m| m.encode()).unwrap_or_default());
        if let Err(e) = self
            .transport
            .link_respond(now, &link, &request.request_id, &value)
        {
            tracing::debug!(%link, error = %e, "could not answer a gossip message");
        }
        self.flush_gossip(now);
    }

    /// The response to one of this node's gossip messages.
    pub(super) fn on_gossip_answer(&mut self, now: Instant, from: Peer, message: Message) {
        self.gossip.gossip.handle(now, from, message);
        self.flush_gossip(now);
    }

    /// When the gossip's timers (or the catalog's next write) are next due.
    pub(super) fn gossip_wake(&self) -> Option<Instant> {
        let timers = self.gossip.gossip.poll_timeout();
        let write = self.gossip.store.as_ref().and_then(CatalogStore::wake);
        timers.into_iter().chain(write).min()
    }

    /// Run the gossip's timers if due, and write the catalog if that is.
    pub(super) fn gossip_due(&mut self, now: Instant) {
        if self.gossip.gossip.poll_timeout().is_some_and(|t| t <= now) {
            self.gossip.gossip.handle_timeout(now);
            self.flush_gossip(now);
        }
        self.catalog_save_due(now);
    }

    /// Send what the gossip queued, and note what its catalog did.
    fn flush_gossip(&mut self, _now: Instant) {
        while let Some(t) = self.gossip.gossip.poll_transmit() {
            self.send_gossip(t);
        }
        while let Some(e) = self.gossip.gossip.poll_event() {
            tracing::debug!(event = ?e, "catalog");
            if let Some(store) = self.gossip.store.as_mut() {
                store.changed();
            }
        }
    }

    /// Send one gossip message on its own task: a link to the neighbour's `grid.node`,
    /// then the request; a non-empty response comes back to the loop.
    fn send_gossip(&mut self, t: Transmit) {
        let Some(node) = self.gossip.nodes.get(&t.to).copied() else {
            return;
        };
        if self.gossip.gossip.is_radio(&t.to) && !self.radio_airtime_left(&node) {
            self.gossip.radio_skipped += 1;
            tracing::debug!(%node, "radio airtime spent; gossip message skipped");
            return;
        }
        let handle = self.internal_handle();
        let calls = self.calls.clone();
        tokio::spawn(async move {
            let link = handle.live_link_to(node, LINK_TIMEOUT).await.ok()?;
            let value = rmpv::Value::Binary(t.message.encode());
            let answer = match handle
                .request(link, GOSSIP_PATH, value, REQUEST_TIMEOUT)
                .await
            {
                Ok(rmpv::Value::Binary(b)) if !b.is_empty() => Message::decode(&b).ok()?,
                _ => return None,
            };
            calls
                .send(Call::GossipAnswer {
                    from: t.to,
                    message: Box::new(answer),
                })
                .await
                .ok()
        });
    }
}
