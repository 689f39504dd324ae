//! The node as the driver of its DHT ([`crate::proto::dht`]): Grid nodes heard announcing
//! become contacts (bootstrap needs no seed server), DHT messages travel as requests on
//! [`crate::proto::dht::DHT_PATH`] over identified links to `grid.node`, and lookups started by this node's
//! user are answered when they end.
//!
//! Outgoing requests run on tasks of their own (opening a link takes round trips); their
//! answers, or their failure, come back to the loop as [`Call::DhtAnswer`] and
//! [`Call::DhtUnreachable`]. Requests from other nodes are answered on the loop: serving
//! one is a table read, and the DHT rate-limits them.

use std::collections::HashMap;
use std::time::Duration;

use rns_core::identity::PublicIdentity;
use rns_core::{rmpv, AddressHash, Instant};
use tokio::sync::oneshot;

use super::links::PeerRequest;
use super::Node;
use crate::api::Call;
use crate::proto::bundle::envelope::node_destination;
use crate::proto::dht::key::{Contact, Key};
use crate::proto::dht::lookup::Outcome;
use crate::proto::dht::message::Message;
use crate::proto::dht::{Config, Dht, Event, LookupId, DHT_PATH};

/// How long opening (or checking) a link for a DHT request may take.
const LINK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a DHT request on a link may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// The DHT's settings on a node: requests travel over links that may first have to be
/// opened through transport nodes, so each gets longer than in the simulator.
pub(crate) fn node_config() -> Config {
    Config {
        request_timeout: LINK_TIMEOUT + REQUEST_TIMEOUT,
        lookup_timeout: Duration::from_secs(90),
        ..Config::default()
    }
}

/// The DHT on the node, and who waits for its lookups.
pub(super) struct DhtDriver {
    pub(super) dht: Dht,
    waiters: HashMap<LookupId, oneshot::Sender<Outcome>>,
    bootstrapped: bool,
}

impl DhtDriver {
    pub(super) fn new(own: &PublicIdentity, now: Instant, seed: u64) -> DhtDriver {
        DhtDriver {
            dht: Dht::new(
                Contact::from_public(*own.as_bytes()),
                node_config(),
                now,
                seed,
            ),
            waiters: HashMap::new(),
            bootstrapped: false,
        }
    }
}

/// What a lookup for the user is for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DhtLookup {
    /// Tell the nodes nearest to the key that this node provides it.
    Provide,
    /// Find up to this many providers.
    Find(usize),
}

/// A lookup's outcome as the control socket answers it.
pub(super) fn lookup_answer(key: Key, o: &Outcome) -> crate::control::response::DhtLookup {
    use crate::control::response::{DhtLookup as Answer, DhtNode};
    let node = |c: &Contact| DhtNode {
        identity: AddressHash(c.id.0),
        node: PublicIdentity::from_bytes(&c.public).map_or(AddressHash([0; 16]), |id| {
            AddressHash(node_destination(&id))
        }),
    };
    Answer {
        key: key.to_string(),
        providers: o.providers.iter().map(node).collect(),
        nodes: o.closest.iter().map(node).collect(),
        hops: o.hops,
        requests: o.requests,
        failures: o.failures,
        elapsed_ms: o.elapsed.as_millis() as u64,
        timed_out: o.timed_out,
    }
}

impl Node {
    /// A Grid node announced: its identity becomes a DHT contact. (Hearing costs nothing;
    /// this node sends DHT traffic only once its user first provides or looks up a key,
    /// so a small mesh, or one on LoRa, carries none unless asked.)
    pub(super) fn dht_heard(&mut self, now: Instant, node: AddressHash) {
        let Some(id) = self.recall_node(&node) else {
            return;
        };
        let next_hop = self
            .transport
            .path(&node)
            .filter(|p| p.hops > 1)
            .map(|p| p.next_hop.0);
        self.dht
            .dht
            .add_contact(now, Contact::from_public(*id.as_bytes()), next_hop);
    }

    /// Start a lookup for this node's user; `done` gets its outcome.
    pub(super) fn dht_lookup(
        &mut self,
        now: Instant,
        key: Key,
        what: DhtLookup,
        done: oneshot::Sender<Result<Outcome, crate::Error>>,
    ) {
        if !self.dht.bootstrapped {
            // First use: join the DHT properly (a lookup of this node's own id fills the
            // buckets near it); from now on its timers (refresh, republish) run too.
            self.dht.bootstrapped = true;
            let own = self.dht.dht.own().id;
            let _ = self.dht.dht.find_node(now, own);
        }
        let started = match what {
            DhtLookup::Provide => self.dht.dht.provide(now, key),
            DhtLookup::Find(want) => self.dht.dht.find_providers(now, key, want),
        };
        match started {
            Err(e) => {
                let _ = done.send(Err(crate::Error::Busy(e.to_string())));
            }
            Ok(id) => {
                let waiter = super::waiters::relay_outcome(done);
                self.dht.waiters.insert(id, waiter);
            }
        }
        self.flush_dht();
    }

    /// A DHT request from another node on `link`. Callers must identify on the link
    /// (their id is bound to the key they proved); others get no answer.
    pub(super) fn on_dht_request(&mut self, now: Instant, request: PeerRequest) {
        let PeerRequest {
            link,
            request_id,
            remote,
            bytes,
        } = request;
        let Ok(message) = Message::decode(&bytes) else {
            tracing::debug!(%link, "undecodable DHT message; ignored");
            return;
        };
        let from = Contact::from_public(*remote.as_bytes());
        let next_hop = self
            .transport
            .path(&AddressHash(node_destination(&remote)))
            .filter(|p| p.hops > 1)
            .map(|p| p.next_hop.0);
        // The answer goes in the response; everything else goes out as usual.
        if let Some(answer) = self.dht.dht.handle_request(now, from, next_hop, message) {
            let value = rmpv::Value::Binary(answer.encode());
            if let Err(e) = self.transport.link_respond(now, &link, &request_id, &value) {
                tracing::debug!(%link, error = %e, "could not answer a DHT request");
            }
        }
        self.flush_dht();
    }

    /// The answer to one of this node's DHT requests.
    pub(super) fn on_dht_answer(&mut self, now: Instant, from: Contact, message: Message) {
        self.dht.dht.handle(now, from, None, message);
        self.flush_dht();
    }

    /// One of this node's DHT requests could not be delivered.
    pub(super) fn on_dht_unreachable(&mut self, now: Instant, request: u64) {
        self.dht.dht.unreachable(now, request);
        self.flush_dht();
    }

    /// When the DHT's timers are next due (none before this node first uses it).
    pub(super) fn dht_wake(&self) -> Option<Instant> {
        self.dht
            .bootstrapped
            .then(|| self.dht.dht.poll_timeout())
            .flatten()
    }

    /// Run the DHT's timers if due.
    pub(super) fn dht_due(&mut self, now: Instant) {
        if self.dht_wake().is_some_and(|t| t <= now) {
            self.dht.dht.handle_timeout(now);
            self.flush_dht();
        }
    }

    /// Send what the DHT queued and hand ended lookups to their waiters.
    fn flush_dht(&mut self) {
        while let Some(t) = self.dht.dht.poll_transmit() {
            self.send_dht(t);
        }
        while let Some(e) = self.dht.dht.poll_event() {
            // Event is non_exhaustive for other crates; Done is all there is today.
            #[allow(irrefutable_let_patterns)]
            let Event::Done { id, outcome } = e
            else {
                continue;
            };
            if let Some(w) = self.dht.waiters.remove(&id) {
                let _ = w.send(outcome);
            }
        }
    }

    /// Send one DHT request on its own task: a link to the contact's `grid.node`, then
    /// the request; the answer (or the failure) comes back to the loop.
    fn send_dht(&mut self, t: crate::proto::dht::Transmit) {
        if !t.message.body.is_request() {
            return; // answers go back on the link they came on (on_dht_request)
        }
        let handle = self.internal_handle();
        let calls = self.calls.clone();
        let request = t.message.id;
        tokio::spawn(async move {
            let answer = async {
                let id = PublicIdentity::from_bytes(&t.to.public).ok()?;
                let node = AddressHash(node_destination(&id));
                let link = handle.live_link_to(node, LINK_TIMEOUT).await.ok()?;
                let value = rmpv::Value::Binary(t.message.encode());
                match handle.request(link, DHT_PATH, value, REQUEST_TIMEOUT).await {
                    Ok(rmpv::Value::Binary(b)) => Message::decode(&b).ok(),
                    _ => None,
                }
            }
            .await;
            let call = match answer {
                Some(message) => Call::DhtAnswer {
                    from: Box::new(t.to),
                    message,
                },
                None => Call::DhtUnreachable(request),
            };
            let _ = calls.send(call).await;
        });
    }
}
