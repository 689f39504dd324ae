//! The node as the driver of its flood search ([`crate::proto::flood`]): the neighbours
//! are those of catalog gossip (Grid nodes one hop away on fast interfaces, see
//! `neighbours.rs`), every flood message travels as a request on [`FLOOD_PATH`] over an
//! identified link to the neighbour's `grid.node` (the response is empty: answers travel
//! back as requests of their own, hop by hop on the reverse path), and the items this
//! node offers are those its user put up ([`crate::api::NodeHandle::search_offer`]).
//!
//! Searches for the user end at their patience's time budget or at the hits wanted;
//! the waiter gets the outcome.

use std::collections::HashMap;
use std::time::Duration;

use rns_core::{rmpv, AddressHash, Instant};
use tokio::sync::oneshot;

use super::links::PeerRequest;
use super::Node;
use crate::proto::flood::message::{Message, QueryId};
use crate::proto::flood::sketch::{Item, Query};
use crate::proto::flood::{Config, Event, Flood, Outcome, Patience, Peer, Transmit, FLOOD_PATH};

/// How long opening (or checking) a link for a flood message may take.
const LINK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a flood request on a link may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The flood search on the node, where its neighbours are, and who waits for searches.
pub(super) struct FloodDriver {
    pub(super) flood: Flood,
    /// Each neighbour's `grid.node` destination, by identity hash.
    nodes: HashMap<Peer, AddressHash>,
    waiters: HashMap<QueryId, oneshot::Sender<Outcome>>,
}

impl FloodDriver {
    pub(super) fn new(own: Peer, now: Instant, seed: u64) -> FloodDriver {
        FloodDriver {
            flood: Flood::new(own, Config::default(), now, seed),
            nodes: HashMap::new(),
            waiters: HashMap::new(),
        }
    }
}

impl Node {
    /// A neighbour was heard: floods may go through it.
    pub(super) fn flood_heard(&mut self, _now: Instant, peer: Peer, node: AddressHash) {
        if let Ok(true) = self.flood.flood.add_neighbour(peer) {
            self.flood.nodes.insert(peer, node);
        }
    }

    /// Offer `item` to flood searches under `id`, or with `None` stop offering it.
    pub(super) fn search_offer(&mut self, id: [u8; 16], item: Option<Item>) {
        match item {
            Some(item) => {
                if let Err(e) = self.flood.flood.add_item(item) {
                    tracing::warn!(error = %e, "an item could not be offered to flood searches");
                }
            }
            None => {
                self.flood.flood.remove_item(&id);
            }
        }
    }

    /// Start a search for this node's user; `done` gets its outcome when it ends.
    pub(super) fn flood_search(
        &mut self,
        now: Instant,
        query: Query,
        patience: Patience,
        want: u8,
        done: oneshot::Sender<Result<Outcome, crate::Error>>,
    ) {
        let mut id: QueryId = [0; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut id);
        match self.flood.flood.search(now, id, query, patience, want) {
            Err(e) => {
                let _ = done.send(Err(crate::Error::BadRequest(e.to_string())));
            }
            Ok(()) => {
                let waiter = super::waiters::relay_outcome(done);
                self.flood.waiters.insert(id, waiter);
            }
        }
        self.flush_flood();
    }

    /// A flood message from a neighbour on `link` (callers identify: a neighbour is an
    /// identity). The response is empty; whatever the message causes goes out as
    /// requests of its own.
    pub(super) fn on_flood_request(&mut self, now: Instant, request: PeerRequest) {
        let (link, from) = (request.link, *request.remote.hash().as_bytes());
        match Message::decode(&request.bytes) {
            Ok(message) => self.flood.flood.handle(now, from, message),
            Err(e) => tracing::debug!(%link, error = %e, "undecodable flood message"),
        }
        let empty = rmpv::Value::Binary(Vec::new());
        if let Err(e) = self
            .transport
            .link_respond(now, &link, &request.request_id, &empty)
        {
            tracing::debug!(%link, error = %e, "could not acknowledge a flood message");
        }
        self.flush_flood();
    }

    /// When the flood's timers are next due.
    pub(super) fn flood_wake(&self) -> Option<Instant> {
        self.flood.flood.poll_timeout()
    }

    /// Run the flood's timers if due.
    pub(super) fn flood_due(&mut self, now: Instant) {
        if self.flood_wake().is_some_and(|t| t <= now) {
            self.flood.flood.handle_timeout(now);
            self.flush_flood();
        }
    }

    /// Send what the flood queued and hand ended searches to their waiters.
    fn flush_flood(&mut self) {
        while let Some(t) = self.flood.flood.poll_transmit() {
            self.send_flood(t);
        }
        while let Some(e) = self.flood.flood.poll_event() {
            if let Event::Done { id, outcome } = e {
                if let Some(w) = self.flood.waiters.remove(&id) {
                    let _ = w.send(outcome);
                }
            }
        }
    }

    /// Send one flood message on its own task: a link to the neighbour's `grid.node`,
    /// then the request. A neighbour that cannot be reached simply gets nothing (the
    /// query's budget spent on it is lost, as a lost packet's would be).
    fn send_flood(&mut self, t: Transmit) {
        let Some(node) = self.flood.nodes.get(&t.to).copied() else {
            return;
        };
        let handle = self.internal_handle();
        tokio::spawn(async move {
            let link = handle.live_link_to(node, LINK_TIMEOUT).await.ok()?;
            let value = rmpv::Value::Binary(t.message.encode());
            handle
                .request(link, FLOOD_PATH, value, REQUEST_TIMEOUT)
                .await
                .ok()
        });
    }
}
