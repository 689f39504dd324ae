//! `grid id`: this node's identity and destinations (read from the state directory).

use anyhow::{anyhow, Result};
use grid::state::StateDir;
use serde_json::{json, Value};

/// `grid id`
pub(crate) fn id(state: &StateDir, json_out: bool) -> Result<()> {
    let identity = state.load_or_create_identity().map_err(|e| anyhow!(e))?;
    let dests = grid::state::node_destinations(&identity);
    let grid_node = dests[0].1;
    if json_out {
        let map: serde_json::Map<String, Value> = dests
            .iter()
            .map(|(n, h)| ((*n).to_string(), Value::String(h.to_string())))
            .collect();
        println!(
            "{}",
            json!({"identity": identity.hash().to_string(), "destination": grid_node.to_string(), "destinations": map})
        );
    } else {
        println!("identity     {}", identity.hash());
        for (n, h) in dests {
            println!("{n:<20} {h}");
        }
    }
    Ok(())
}
