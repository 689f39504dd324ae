//! Assembling a complete incoming resource segment — decrypt, decompress, hash: up to
//! 1 MiB of work — and what follows it (the proof, then the request, response or
//! segment event). A link assembles inline by default; with
//! [`Link::set_defer_assembly`] it hands an [`AssemblyJob`] out in
//! [`LinkEvent::ResourceAssemble`], the application runs it on another thread and
//! returns the [`Assembled`](AssemblyDone) result with [`Link::resource_assembled`]
//! (or `Transport::link_resource_assembled`), so the event loop never does the work.

use std::sync::{Arc, Mutex};

use rand_core::CryptoRngCore;

use super::{link_packet, wire, Link, LinkEvent, ResourceFailure};
use crate::crypto::Token;
use crate::hash::{truncated_hash, FULL_HASH_LEN};
use crate::packet::{Context, PacketType, PacketView};
use crate::resource::{Advertisement, Assembled, IncomingResource};
use crate::time::Instant;

/// Proof packets kept to answer cache requests.
const PROOF_CACHE: usize = 8;

struct Job {
    resource: IncomingResource,
    token: Token,
}

/// A complete segment to assemble: run it once ([`AssemblyJob::run`]), anywhere.
/// Cloning shares the one job (events are cloneable); only the first `run` does the work.
#[derive(Clone)]
pub struct AssemblyJob {
    hash: [u8; FULL_HASH_LEN],
    job: Arc<Mutex<Option<Job>>>,
}

impl AssemblyJob {
    pub(super) fn new(resource: IncomingResource, token: Token) -> AssemblyJob {
        AssemblyJob {
            hash: resource.hash(),
            job: Arc::new(Mutex::new(Some(Job { resource, token }))),
        }
    }

    /// The segment's resource hash.
    pub fn hash(&self) -> [u8; FULL_HASH_LEN] {
        self.hash
    }

    /// Decrypt, decompress and verify the segment (`None` inside if it is corrupt, or
    /// if this job was run already).
    pub fn run(&self) -> AssemblyDone {
        let job = self.job.lock().ok().and_then(|mut j| j.take());
        let Some(Job {
            mut resource,
            token,
        }) = job
        else {
            return AssemblyDone {
                hash: self.hash,
                advertisement: None,
                assembled: None,
            };
        };
        let assembled = resource.assemble(&token);
        AssemblyDone {
            hash: self.hash,
            advertisement: Some(resource.advertisement().clone()),
            assembled,
        }
    }
}

impl PartialEq for AssemblyJob {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.job, &other.job)
    }
}

impl core::fmt::Debug for AssemblyJob {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AssemblyJob")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// What assembling a segment gave.
#[derive(Debug)]
pub struct AssemblyDone {
    hash: [u8; FULL_HASH_LEN],
    advertisement: Option<Advertisement>,
    assembled: Option<Assembled>,
}

impl AssemblyDone {
    /// The segment's resource hash.
    pub fn hash(&self) -> [u8; FULL_HASH_LEN] {
        self.hash
    }
}

impl Link {
    /// A segment assembled (inline, or by the application from a
    /// [`LinkEvent::ResourceAssemble`] job): prove it and report it, or report it
    /// corrupt and tell the sender.
    pub fn resource_assembled(
        &mut self,
        rng: &mut dyn CryptoRngCore,
        now: Instant,
        done: AssemblyDone,
    ) {
        let hash = done.hash;
        let Some(adv) = done.advertisement else {
            return; // a job run twice: the first result counted
        };
        let Some(done) = done.assembled else {
            self.drop_split(&adv);
            self.emit_data(rng, now, Context::RESOURCE_RCL, &hash, true);
            self.events.push_back(LinkEvent::ResourceFailed {
                link: self.id,
                hash,
                sending: false,
                reason: ResourceFailure::Corrupt,
            });
            return;
        };
        let proof = link_packet(
            &self.id,
            PacketType::Proof,
            Context::RESOURCE_PRF,
            done.proof,
        );
        let proof_hash = PacketView::new_checked(&proof[..])
            .expect("well-formed")
            .hash();
        if self.resources.proof_cache.len() >= PROOF_CACHE {
            self.resources.proof_cache.pop_front();
        }
        self.resources
            .proof_cache
            .push_back((proof_hash, proof.clone()));
        self.push_out(proof, now);
        let body = if (adv.is_request() || adv.is_response()) && adv.total_segments > 1 {
            match self.join_split(&adv, done.data, now) {
                Some(all) => all,
                None => return,
            }
        } else {
            done.data
        };
        self.deliver_segment(&adv, body);
    }

    /// A verified segment's body to the application: a request, a response to one of
    /// ours, or a segment of a resource.
    fn deliver_segment(&mut self, adv: &Advertisement, body: Vec<u8>) {
        if adv.is_request() {
            match wire::decode_request(&body) {
                Ok((_, path_hash, data)) => self.events.push_back(LinkEvent::Request {
                    link: self.id,
                    request_id: truncated_hash(&body),
                    path_hash,
                    data,
                    remote_identity: self.remote_identity.clone().map(Box::new),
                }),
                Err(_) => self.stats.dropped += 1,
            }
        } else if adv.is_response() {
            if let Ok((request_id, data)) = wire::decode_response(&body) {
                if self.requests.remove(&request_id).is_some() {
                    self.events.push_back(LinkEvent::Response {
                        link: self.id,
                        request_id,
                        data,
                    });
                }
            }
        } else {
            self.events.push_back(LinkEvent::ResourceSegment {
                link: self.id,
                segment: adv.segment(),
                data: body,
            });
        }
    }
}
