//! # grid-netsim
//!
//! A deterministic network simulator for Grid's discovery layers (DESIGN decision 7):
//! thousands of nodes, each running the grid layer's own sans-IO state machines, in one
//! process on a virtual clock with a seeded RNG. The same scenario and seed give
//! byte-identical output. Workloads so far: the Kademlia DHT (`grid::proto::dht`) with
//! churn, over an overlay (any node messages any node), and the bounded flood search
//! (`grid::proto::flood`) over a neighbour graph ([`topology`]), and catalog gossip
//! (`grid::proto::gossip`) against the origin design's scheme, and that gossip again over a
//! LoRa link model ([`lora`]) with airtime and duty cycle; and catalog gossip on the
//! whole stack ([`stack_run`]: a real rns-core transport per node, gossip over links).
//! See `docs/discovery.md` for how to read the output.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod dht_run;
pub mod engine;
pub mod figures;
pub mod flood_run;
pub mod gossip_run;
pub mod lora;
pub mod lora_run;
pub mod scenario;
mod stack_host;
pub mod stack_run;
pub mod topology;
pub mod workloads;

use serde_json::{json, Value};

pub use scenario::{Scenario, ScenarioError};

/// Run `scenario` with `seed`: `{"scenario", "description", "seed", "figures", "goals"}`.
pub fn run(scenario: &Scenario, seed: u64, progress: &indicatif::ProgressBar) -> Value {
    let (figures, goals) = match (&scenario.dht, &scenario.flood, &scenario.gossip) {
        (Some(w), _, _) => dht_run::run(scenario, w, seed, progress),
        (None, Some(w), _) => flood_run::run(scenario, w, seed, progress),
        (None, None, Some(w)) => gossip_run::run(scenario, w, seed, progress),
        (None, None, None) => match (&scenario.lora, &scenario.stack) {
            (Some(w), _) => lora_run::run(scenario, w, seed, progress),
            (None, Some(w)) => stack_run::run(scenario, w, seed, progress),
            (None, None) => (json!({}), Vec::new()),
        },
    };
    json!({
        "scenario": scenario.name,
        "description": scenario.description,
        "seed": seed,
        "figures": figures,
        "goals": goals,
    })
}
