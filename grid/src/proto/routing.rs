//! Where a command runs: the routing hints of the origin design (§2.3), decided from what
//! this node knows (its own capabilities, peers heard announcing, trust levels), without
//! IO.
//!
//! - `<hash>` or `node:<hash>`: that node (refused if its identity is blocked).
//! - `local-only`: this node, never another.
//! - `prefer-gpu`: here if this node has a GPU, else the best GPU node.
//! - `max-compute`: the node with the most video memory, if it has more than this one.
//! - `least-loaded`: the node with the lowest load among this one and the peers whose
//!   compute offer (in the catalog) says how loaded they are; ties go to the most RAM
//!   free for jobs, then the nearest.
//! - `auto`: here, unless the command needs a GPU this node lacks
//!   ([`needs_gpu`]: `genome/train*`, `plasticity/*`, `ai/*` but `ai/report`); then the
//!   best GPU node, or a clear error if none is known.
//!
//! Other nodes are only chosen automatically when they are trusted (or owner), were heard
//! in the last [`FRESH`], and rank best by video memory, then hops.
//!
//! [`plan`] gives the nodes in the order to try them: a node whose governor refuses the
//! job (`busy`) is skipped for the next, not asked again; [`decide`] is the first.

use std::time::Duration;

use rns_core::AddressHash;

use crate::capabilities::Capabilities;
use crate::proto::compute_offer::Reading as Offer;
use crate::trust::TrustLevel;

/// How recently a node must have announced to be chosen automatically.
pub const FRESH: Duration = Duration::from_secs(300);

/// A routing hint, as `grid exec` and [`crate::api::NodeHandle::execute_routed`] take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This node (a `grid.node` destination hash).
    Node(AddressHash),
    /// Here only.
    LocalOnly,
    /// Here if this node has a GPU, else the best GPU node.
    PreferGpu,
    /// The node with the most video memory, if more than here.
    MaxCompute,
    /// The least loaded of this node and the peers offering compute.
    LeastLoaded,
    /// Here unless the command needs a GPU this node lacks.
    Auto,
}

/// Why a hint did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not a node hash or routing hint (node:<hash>, local-only, prefer-gpu, max-compute, least-loaded, auto)"
)]
pub struct ParseRouteError(pub String);

impl std::str::FromStr for Route {
    type Err = ParseRouteError;
    fn from_str(s: &str) -> Result<Route, ParseRouteError> {
        let t = s.trim();
        Ok(match t {
            "local-only" | "local" => Route::LocalOnly,
            "prefer-gpu" => Route::PreferGpu,
            "max-compute" => Route::MaxCompute,
            "least-loaded" => Route::LeastLoaded,
            "auto" => Route::Auto,
            _ => Route::Node(
                t.strip_prefix("node:")
                    .unwrap_or(t)
                    .parse()
                    .map_err(|_| ParseRouteError(s.to_string()))?,
            ),
        })
    }
}

/// What the router knows of another node.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its `grid.node` destination.
    pub node: AddressHash,
    /// What it announced.
    pub capabilities: Capabilities,
    /// Hops away.
    pub hops: u8,
    /// Since its last announce.
    pub heard_ago: Duration,
    /// Its identity's trust level here.
    pub trust: TrustLevel,
    /// Its compute offer from the catalog, if it publishes one (a claim: see
    /// `docs/security.md`).
    pub offer: Option<Offer>,
}

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// On this node.
    Local,
    /// On that node.
    Remote(AddressHash),
}

/// Why no node fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// The named node's identity is blocked here.
    #[error("{0} is blocked")]
    Blocked(AddressHash),
    /// The command needs a GPU and no eligible node has one.
    #[error(
        "{0} needs a GPU: this node has none and no trusted GPU node was heard in the last 5 minutes"
    )]
    NoGpu(String),
}

/// Whether a command needs a GPU (the origin design's rule).
pub fn needs_gpu(command: &str) -> bool {
    command.starts_with("genome/train")
        || command.starts_with("plasticity/")
        || (command.starts_with("ai/") && command != "ai/report")
}

fn vram(c: &Capabilities) -> u32 {
    c.gpu.as_ref().map_or(0, |g| g.vram_mb)
}

/// Nodes that may be chosen automatically, best first: trusted, fresh, most video memory,
/// then fewest hops.
pub(crate) fn eligible(candidates: &[Candidate]) -> Vec<&Candidate> {
    let mut v: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| c.trust >= TrustLevel::Trusted && c.heard_ago <= FRESH)
        .collect();
    v.sort_by(|a, b| {
        vram(&b.capabilities)
            .cmp(&vram(&a.capabilities))
            .then(a.hops.cmp(&b.hops))
            .then(a.node.0.cmp(&b.node.0))
    });
    v
}

/// The eligible nodes with a GPU, best first.
fn gpu_nodes(candidates: &[Candidate]) -> Vec<Decision> {
    eligible(candidates)
        .into_iter()
        .filter(|c| c.capabilities.gpu.is_some())
        .map(|c| Decision::Remote(c.node))
        .collect()
}

/// This node and the eligible nodes with offers, least loaded first (then most RAM free
/// for jobs, then nearest; this node counts as nearest). A node whose load is unknown
/// comes last.
fn least_loaded(local: Option<Offer>, candidates: &[Candidate]) -> Vec<Decision> {
    let key = |o: Option<Offer>| o.map_or((u8::MAX, 0), |o| (o.load_pct, o.ram_free_mb));
    let mut v: Vec<(Decision, (u8, u32), u8)> = eligible(candidates)
        .into_iter()
        .filter(|c| c.offer.is_some())
        .map(|c| (Decision::Remote(c.node), key(c.offer), c.hops))
        .collect();
    v.push((Decision::Local, key(local), 0));
    v.sort_by(|a, b| {
        (a.1 .0)
            .cmp(&b.1 .0)
            .then(b.1 .1.cmp(&a.1 .1))
            .then(a.2.cmp(&b.2))
    });
    v.into_iter().map(|(d, _, _)| d).collect()
}

/// Where `command` may run under `route`, in the order to try: the first that does not
/// answer `busy`. Never empty.
pub fn plan(
    route: Route,
    command: &str,
    local: &Capabilities,
    local_offer: Option<Offer>,
    candidates: &[Candidate],
    trust_of: impl Fn(&AddressHash) -> TrustLevel,
) -> Result<Vec<Decision>, RouteError> {
    let with_local = |mut v: Vec<Decision>| {
        v.push(Decision::Local);
        v
    };
    Ok(match route {
        Route::Node(n) => {
            if trust_of(&n) == TrustLevel::Blocked {
                return Err(RouteError::Blocked(n));
            }
            vec![Decision::Remote(n)]
        }
        Route::LocalOnly => vec![Decision::Local],
        Route::PreferGpu if local.gpu.is_some() => vec![Decision::Local],
        Route::PreferGpu => with_local(gpu_nodes(candidates)),
        Route::MaxCompute => with_local(
            eligible(candidates)
                .into_iter()
                .filter(|c| vram(&c.capabilities) > vram(local))
                .map(|c| Decision::Remote(c.node))
                .collect(),
        ),
        Route::LeastLoaded => least_loaded(local_offer, candidates),
        Route::Auto if needs_gpu(command) && local.gpu.is_none() => {
            let v = gpu_nodes(candidates);
            if v.is_empty() {
                return Err(RouteError::NoGpu(command.to_string()));
            }
            v
        }
        Route::Auto => vec![Decision::Local],
    })
}

/// Where `command` runs under `route`: the first of [`plan`] (with this node's load
/// unknown).
pub fn decide(
    route: Route,
    command: &str,
    local: &Capabilities,
    candidates: &[Candidate],
    trust_of: impl Fn(&AddressHash) -> TrustLevel,
) -> Result<Decision, RouteError> {
    plan(route, command, local, None, candidates, trust_of)
        .map(|v| v.first().copied().unwrap_or(Decision::Local))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::Gpu;

    fn caps(vram_mb: Option<u32>) -> Capabilities {
        let mut c = Capabilities::of_this_machine(0);
        c.gpu = vram_mb.map(|v| Gpu {
            name: "test".into(),
            vram_mb: v,
        });
        c
    }

    fn cand(n: u8, vram_mb: Option<u32>, hops: u8, trust: TrustLevel, ago_s: u64) -> Candidate {
        Candidate {
            node: AddressHash([n; 16]),
            capabilities: caps(vram_mb),
            hops,
            heard_ago: Duration::from_secs(ago_s),
            trust,
            offer: None,
        }
    }

    fn offer(load_pct: u8, ram_free_mb: u32) -> Option<Offer> {
        Some(Offer {
            ram_free_mb,
            gpu_free_mb: 0,
            load_pct,
        })
    }

    const T: TrustLevel = TrustLevel::Trusted;

    #[test]
    fn hints_parse() {
        let h = "0123456789abcdef0123456789abcdef";
        assert_eq!(h.parse::<Route>().unwrap(), Route::Node(h.parse().unwrap()));
        assert_eq!(
            format!("node:{h}").parse::<Route>().unwrap(),
            Route::Node(h.parse().unwrap())
        );
        assert_eq!("local-only".parse::<Route>().unwrap(), Route::LocalOnly);
        assert_eq!("prefer-gpu".parse::<Route>().unwrap(), Route::PreferGpu);
        assert_eq!("max-compute".parse::<Route>().unwrap(), Route::MaxCompute);
        assert_eq!("least-loaded".parse::<Route>().unwrap(), Route::LeastLoaded);
        assert!("gpu-please".parse::<Route>().is_err());
        assert!("node:xyz".parse::<Route>().is_err());
    }

    #[test]
    fn gpu_commands_go_to_the_best_trusted_fresh_gpu_node() {
        let peers = [
            cand(1, Some(24_000), 3, TrustLevel::Provisional, 10), // not trusted
            cand(2, Some(16_000), 2, T, 10),
            cand(3, Some(16_000), 1, T, 10), // same VRAM, nearer: wins
            cand(4, Some(48_000), 1, T, 900), // stale
            cand(5, None, 1, TrustLevel::Owner, 10),
        ];
        let t = |_: &AddressHash| T;
        let r = decide(Route::Auto, "ai/generate", &caps(None), &peers, t);
        assert_eq!(r, Ok(Decision::Remote(AddressHash([3; 16]))));
        assert_eq!(
            decide(Route::Auto, "ai/report", &caps(None), &peers, t),
            Ok(Decision::Local)
        );
        assert_eq!(
            decide(
                Route::Auto,
                "genome/train-lora",
                &caps(Some(8000)),
                &peers,
                t
            ),
            Ok(Decision::Local),
            "a local GPU does"
        );
        assert!(matches!(
            decide(Route::Auto, "plasticity/step", &caps(None), &peers[..1], t),
            Err(RouteError::NoGpu(_))
        ));
        assert_eq!(
            decide(Route::PreferGpu, "x/y", &caps(None), &peers, t),
            Ok(Decision::Remote(AddressHash([3; 16])))
        );
        assert_eq!(
            decide(Route::PreferGpu, "x/y", &caps(None), &[], t),
            Ok(Decision::Local)
        );
    }

    #[test]
    fn max_compute_only_leaves_for_more_video_memory() {
        let peers = [cand(2, Some(16_000), 2, T, 10), cand(5, None, 1, T, 10)];
        let t = |_: &AddressHash| T;
        assert_eq!(
            decide(Route::MaxCompute, "x/y", &caps(Some(8_000)), &peers, t),
            Ok(Decision::Remote(AddressHash([2; 16])))
        );
        assert_eq!(
            decide(Route::MaxCompute, "x/y", &caps(Some(24_000)), &peers, t),
            Ok(Decision::Local)
        );
    }

    #[test]
    fn named_nodes_and_local_only() {
        let n = AddressHash([9; 16]);
        let blocked = |_: &AddressHash| TrustLevel::Blocked;
        assert_eq!(
            decide(Route::Node(n), "x/y", &caps(None), &[], blocked),
            Err(RouteError::Blocked(n))
        );
        assert_eq!(
            decide(Route::Node(n), "x/y", &caps(None), &[], |_| T),
            Ok(Decision::Remote(n))
        );
        let peers = [cand(2, Some(16_000), 1, T, 1)];
        assert_eq!(
            decide(Route::LocalOnly, "ai/generate", &caps(None), &peers, |_| T),
            Ok(Decision::Local)
        );
    }

    #[test]
    fn least_loaded_ranks_this_node_and_peers_by_their_offers() {
        let mut peers = [
            cand(1, None, 2, T, 10),
            cand(2, None, 1, T, 10),
            cand(3, None, 1, T, 10),
            cand(4, None, 1, TrustLevel::Provisional, 10),
            cand(5, None, 1, T, 10),
        ];
        peers[0].offer = offer(10, 2000);
        peers[1].offer = offer(10, 4000); // as loaded as 1, more RAM free: first
        peers[2].offer = offer(60, 8000);
        peers[3].offer = offer(0, 8000); // not trusted: never chosen
                                         // Peer 5 offers nothing: not a candidate.
        let t = |_: &AddressHash| T;
        let r = |n: u8| Decision::Remote(AddressHash([n; 16]));
        let p = plan(
            Route::LeastLoaded,
            "ai/generate",
            &caps(None),
            offer(50, 1000),
            &peers,
            t,
        );
        assert_eq!(p, Ok(vec![r(2), r(1), Decision::Local, r(3)]));
        // Idle here: here first.
        let p = plan(
            Route::LeastLoaded,
            "x/y",
            &caps(None),
            offer(0, 100),
            &peers,
            t,
        );
        assert_eq!(p.unwrap()[0], Decision::Local);
        // This node's load unknown: it goes last; no offers at all: here.
        let p = plan(Route::LeastLoaded, "x/y", &caps(None), None, &peers, t).unwrap();
        assert_eq!(p.last(), Some(&Decision::Local));
        assert_eq!(
            decide(Route::LeastLoaded, "x/y", &caps(None), &[], t),
            Ok(Decision::Local)
        );
    }

    #[test]
    fn plans_list_the_fallbacks_after_the_first_choice() {
        let peers = [
            cand(2, Some(16_000), 2, T, 10),
            cand(3, Some(8_000), 1, T, 10),
        ];
        let t = |_: &AddressHash| T;
        let r = |n: u8| Decision::Remote(AddressHash([n; 16]));
        assert_eq!(
            plan(Route::PreferGpu, "x/y", &caps(None), None, &peers, t),
            Ok(vec![r(2), r(3), Decision::Local])
        );
        assert_eq!(
            plan(Route::Auto, "ai/generate", &caps(None), None, &peers, t),
            Ok(vec![r(2), r(3)]),
            "a GPU command does not fall back to a node without one"
        );
        assert_eq!(
            plan(
                Route::MaxCompute,
                "x/y",
                &caps(Some(10_000)),
                None,
                &peers,
                t
            ),
            Ok(vec![r(2), Decision::Local])
        );
    }
}
