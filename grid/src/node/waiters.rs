//! Control requests that wait for the network: a path, a probe's proof, a link to come up,
//! a link packet's proof, a response.

use rns_core::link::LinkId;
use rns_core::{AddressHash, Instant};

use super::reply::{Outcome, Reply};
use super::Node;
use crate::Error;

/// What a waiting control request is waiting for.
#[derive(Debug)]
pub(super) enum Wait {
    /// A path to appear.
    Path(AddressHash),
    /// A path, then to send a probe.
    ProbePath {
        destination: AddressHash,
        payload: Vec<u8>,
    },
    /// The proof of a sent probe.
    ProbeProof {
        destination: AddressHash,
        packet: [u8; 32],
    },
    /// A path, then to open a link.
    LinkPath(AddressHash),
    /// A link to be established.
    LinkUp(LinkId),
    /// The proof of a packet sent on a link.
    LinkProof { link: LinkId, packet: [u8; 32] },
    /// The response to a request sent on a link.
    LinkResponse { link: LinkId, request: AddressHash },
    /// The proof of a channel message.
    ChannelDelivered { link: LinkId, sequence: u16 },
    /// The proof of a resource we sent.
    ResourceSent { link: LinkId, hash: [u8; 32] },
}

/// A control request and what it waits for.
#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) deadline: Instant,
    pub(super) reply: Reply,
    pub(super) wait: Wait,
}

impl Waiter {
    /// Why the waiter gave up when its deadline passed.
    fn timeout_error(&self) -> Error {
        match &self.wait {
            Wait::Path(d) | Wait::LinkPath(d) => Error::no_path(*d),
            Wait::ProbePath { destination, .. } => Error::NoPath {
                destination: *destination,
                message: format!("no path found for {destination}"),
            },
            Wait::ProbeProof { destination, .. } => {
                Error::Timeout(format!("probe timed out for {destination}"))
            }
            Wait::LinkUp(l) => Error::Timeout(format!("link {l} was not established in time")),
            Wait::LinkProof { link, .. } => {
                Error::Timeout(format!("no proof for the packet on link {link}"))
            }
            Wait::LinkResponse { link, .. } => {
                Error::Timeout(format!("no response on link {link}"))
            }
            Wait::ChannelDelivered { link, sequence } => Error::Timeout(format!(
                "channel message {sequence} on link {link} not delivered in time"
            )),
            Wait::ResourceSent { link, .. } => {
                Error::Timeout(format!("resource on link {link} not delivered in time"))
            }
        }
    }
}

fn needs_path(w: &Wait) -> Option<AddressHash> {
    match w {
        Wait::Path(d) | Wait::ProbePath { destination: d, .. } | Wait::LinkPath(d) => Some(*d),
        _ => None,
    }
}

impl Node {
    /// Park a control request until `wait` is satisfied or `deadline` passes.
    pub(super) fn wait(&mut self, deadline: Instant, reply: Reply, wait: Wait) {
        self.waiters.push(Waiter {
            deadline,
            reply,
            wait,
        });
    }

    /// Take every waiter matching `pred`.
    pub(super) fn take_waiters(&mut self, pred: impl Fn(&Wait) -> bool) -> Vec<Waiter> {
        let (hit, keep): (Vec<_>, Vec<_>) = self.waiters.drain(..).partition(|w| pred(&w.wait));
        self.waiters = keep;
        hit
    }

    /// Answer every waiter matching `pred` with `result`.
    pub(super) fn answer(
        &mut self,
        pred: impl Fn(&Wait) -> bool,
        result: impl Fn(&Wait) -> Result<Outcome, Error>,
    ) {
        for w in self.take_waiters(pred) {
            let r = result(&w.wait);
            w.reply.send(r);
        }
    }

    /// Destinations that waiting control requests need a path to.
    pub(super) fn destinations_awaiting_paths(&self) -> Vec<AddressHash> {
        let mut v: Vec<AddressHash> = self
            .waiters
            .iter()
            .filter_map(|w| needs_path(&w.wait))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Move on the waiters that were waiting for a path which now exists.
    pub(super) fn advance_waiters(&mut self, now: Instant) {
        let found: Vec<AddressHash> = self
            .waiters
            .iter()
            .filter_map(|w| needs_path(&w.wait))
            .filter(|d| self.transport.path(d).is_some())
            .collect();
        if found.is_empty() {
            return;
        }
        for w in self.take_waiters(|w| needs_path(w).is_some_and(|d| found.contains(&d))) {
            match w.wait {
                Wait::Path(d) => w.reply.send(self.path_found(&d).map(Outcome::Path)),
                Wait::ProbePath {
                    destination,
                    payload,
                } => match self.transport.send_single(now, &destination, &payload) {
                    Ok(packet) => self.wait(
                        w.deadline,
                        w.reply,
                        Wait::ProbeProof {
                            destination,
                            packet,
                        },
                    ),
                    Err(e) => w.reply.fail(e),
                },
                Wait::LinkPath(destination) => match self.transport.open_link(now, &destination) {
                    Ok(link) => self.wait(w.deadline, w.reply, Wait::LinkUp(link)),
                    Err(e) => w.reply.fail(e),
                },
                other => unreachable!("{other:?} does not wait for a path"),
            }
        }
    }

    /// `destination` announced: link requests still pending towards it went along a path
    /// that may have led nowhere (the node was gone, or came back on another interface),
    /// so they are sent again on the fresh path, keeping their waiters and deadlines. A
    /// caller then sees the link come up moments after the announce instead of waiting
    /// out the old request's timeout.
    pub(super) fn relink_pending(&mut self, now: Instant, destination: AddressHash) {
        let pending = |t: &rns_core::transport::Transport, l: &LinkId| {
            t.link(l).is_some_and(|i| {
                i.destination == destination
                    && i.initiator
                    && i.state == rns_core::link::LinkState::Pending
            })
        };
        let transport = &self.transport;
        if !self
            .waiters
            .iter()
            .any(|w| matches!(&w.wait, Wait::LinkUp(l) if pending(transport, l)))
        {
            return;
        }
        let stale: Vec<LinkId> = self
            .waiters
            .iter()
            .filter_map(|w| match &w.wait {
                Wait::LinkUp(l) if pending(&self.transport, l) => Some(*l),
                _ => None,
            })
            .collect();
        for w in self.take_waiters(|w| matches!(w, Wait::LinkUp(l) if stale.contains(l))) {
            match self.transport.open_link(now, &destination) {
                Ok(link) => {
                    tracing::debug!(%destination, %link, "announce heard; link request sent again");
                    self.wait(w.deadline, w.reply, Wait::LinkUp(link));
                }
                Err(e) => w.reply.fail(e),
            }
        }
        for old in stale {
            let _ = self.transport.close_link(now, &old);
        }
    }

    /// Fail the waiters whose deadline has passed.
    pub(super) fn expire_waiters(&mut self, now: Instant) {
        for w in self.take_waiters(|_| true) {
            if now >= w.deadline {
                if let Wait::ResourceSent { link, hash } = &w.wait {
                    // Undelivered in time: do not let it arrive later unannounced.
                    let _ = self.transport.link_cancel_resource(now, link, hash);
                }
                let e = w.timeout_error();
                w.reply.fail(e);
            } else {
                self.waiters.push(w);
            }
        }
    }

    /// The earliest waiter deadline.
    pub(super) fn next_waiter_deadline(&self) -> Option<Instant> {
        self.waiters.iter().map(|w| w.deadline).min()
    }
}

/// A sender for a protocol's outcome that passes it on to `done` as `Ok` (or
/// [`Error::Stopped`] if the sender is dropped unsent, as when the node stops).
pub(super) fn relay_outcome<T: Send + 'static>(
    done: tokio::sync::oneshot::Sender<Result<T, Error>>,
) -> tokio::sync::oneshot::Sender<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _ = done.send(rx.await.map_err(|_| Error::Stopped));
    });
    tx
}
