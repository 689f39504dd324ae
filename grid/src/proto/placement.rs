//! Where a compute job runs (`ai/generate`, placed by `grid ask`), and why: here if this
//! node takes compute jobs and its governor has room, else the trusted peers that take
//! them (the `compute` role in their announce), least loaded first by their compute
//! offers. Decided from what the node knows, without IO; the node that receives the job
//! still asks its own governor (an offer is a claim), and a `busy` answer moves the job to
//! the next choice.

use serde::Serialize;

use crate::capabilities::roles;
use crate::proto::compute_offer::Reading as Offer;
use crate::routing::{eligible, Candidate, Decision};

/// What this node brings to its own plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Here {
    /// It takes compute jobs (`[compute] enabled = true`).
    pub compute: bool,
    /// What its governor can give a job now.
    pub offer: Option<Offer>,
}

/// One place the job may run, with why it is where it is in the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choice {
    /// Here or a peer.
    #[serde(skip)]
    pub decision: Decision,
    /// Why, for `grid ask --dry-run`.
    pub why: String,
}

fn load(o: &Offer) -> String {
    format!("load {} %, {} MB free for jobs", o.load_pct, o.ram_free_mb)
}

/// The places a job needing `need_mb` of RAM may run, in the order to try. Empty when no
/// node known takes compute jobs.
#[must_use]
pub fn place(need_mb: u32, here: Here, candidates: &[Candidate]) -> Vec<Choice> {
    let mut out = Vec::new();
    let here_fits = here.offer.filter(|o| o.ram_free_mb >= need_mb);
    if here.compute {
        if let Some(o) = here_fits {
            out.push(Choice {
                decision: Decision::Local,
                why: format!("this node takes compute jobs and has room ({})", load(&o)),
            });
        }
    }
    let mut offering: Vec<(&Candidate, Offer)> = Vec::new();
    let mut unknown: Vec<&Candidate> = Vec::new();
    for c in eligible(candidates) {
        if c.capabilities.roles & roles::COMPUTE == 0 {
            continue;
        }
        match c.offer {
            Some(o) if o.ram_free_mb >= need_mb => offering.push((c, o)),
            Some(_) => {}
            None => unknown.push(c),
        }
    }
    offering.sort_by(|(a, oa), (b, ob)| {
        oa.load_pct
            .cmp(&ob.load_pct)
            .then(ob.ram_free_mb.cmp(&oa.ram_free_mb))
            .then(a.hops.cmp(&b.hops))
            .then(a.node.0.cmp(&b.node.0))
    });
    let n = offering.len();
    for (i, (c, o)) in offering.into_iter().enumerate() {
        out.push(Choice {
            decision: Decision::Remote(c.node),
            why: format!(
                "{} of {n} trusted compute peers with room, by load ({}, {} hop(s))",
                ordinal(i + 1),
                load(&o),
                c.hops
            ),
        });
    }
    for c in unknown {
        out.push(Choice {
            decision: Decision::Remote(c.node),
            why: format!(
                "a trusted compute peer with no offer in the catalog yet ({} hop(s))",
                c.hops
            ),
        });
    }
    if here.compute && here_fits.is_none() {
        out.push(Choice {
            decision: Decision::Local,
            why: match here.offer {
                Some(o) => format!(
                    "last: this node takes compute jobs but has {} MB free for jobs, not the {need_mb} MB it needs",
                    o.ram_free_mb
                ),
                None => "last: this node takes compute jobs but has not read its memory yet".into(),
            },
        });
    }
    out
}

fn ordinal(i: usize) -> String {
    match i {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        n => format!("{n}th"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::Capabilities;
    use crate::trust::TrustLevel;
    use rns_core::AddressHash;
    use std::time::Duration;

    fn offer(load_pct: u8, ram_free_mb: u32) -> Option<Offer> {
        Some(Offer {
            ram_free_mb,
            gpu_free_mb: 0,
            load_pct,
        })
    }

    fn peer(n: u8, compute: bool, offer: Option<Offer>, trust: TrustLevel) -> Candidate {
        let roles = if compute { roles::COMPUTE } else { 0 };
        Candidate {
            node: AddressHash([n; 16]),
            capabilities: Capabilities::of_this_machine(roles),
            hops: n,
            heard_ago: Duration::from_secs(5),
            trust,
            offer,
        }
    }

    const T: TrustLevel = TrustLevel::Trusted;

    fn nodes(choices: &[Choice]) -> Vec<Decision> {
        choices.iter().map(|c| c.decision).collect()
    }

    #[test]
    fn here_when_it_has_room_then_peers_least_loaded_first() {
        let peers = [
            peer(1, true, offer(40, 2000), T),
            peer(2, true, offer(10, 2000), T),
            peer(3, true, offer(0, 100), T), // too little room: left out
            peer(4, false, offer(0, 9000), T), // takes no compute jobs
            peer(5, true, offer(0, 9000), TrustLevel::Provisional), // not trusted
            peer(6, true, None, T),          // no offer yet: after those with one
        ];
        let r = |n: u8| Decision::Remote(AddressHash([n; 16]));
        let here = Here {
            compute: true,
            offer: offer(90, 4000),
        };
        let p = place(512, here, &peers);
        assert_eq!(nodes(&p), [Decision::Local, r(2), r(1), r(6)]);
        assert!(p[0].why.contains("has room"), "{}", p[0].why);
        assert!(p[1].why.starts_with("first of 2"), "{}", p[1].why);
        // Here without room: tried last, so its governor's refusal is the answer if
        // every peer is busy.
        let here = Here {
            compute: true,
            offer: offer(0, 300),
        };
        let p = place(512, here, &peers);
        assert_eq!(nodes(&p), [r(2), r(1), r(6), Decision::Local]);
        assert!(p[3].why.contains("not the 512 MB"), "{}", p[3].why);
        // A node without compute never runs the job itself.
        let here = Here {
            compute: false,
            offer: offer(0, 9000),
        };
        assert_eq!(nodes(&place(512, here, &peers)), [r(2), r(1), r(6)]);
        assert!(place(512, here, &[]).is_empty());
    }
}
