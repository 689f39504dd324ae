//! `grid dht provide|find`: the DHT from the command line.

use std::time::Duration;

use anyhow::{bail, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::ask;
use crate::DhtAction;

/// How long a DHT lookup may take on the node, plus a margin.
const WAIT: Duration = Duration::from_secs(100);

/// `grid dht …`
pub(crate) fn dht(state: &StateDir, action: DhtAction) -> Result<()> {
    let (request, json_out, provide) = match action {
        DhtAction::Provide { key, json } => (Request::DhtProvide { key }, json, true),
        DhtAction::Find { key, want, json } => {
            if !(1..=20).contains(&want) {
                bail!("--want {want}: give 1 to 20");
            }
            (
                Request::DhtFind {
                    key,
                    want: Some(want),
                },
                json,
                false,
            )
        }
    };
    let v = ask(state, &request, WAIT)?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    let a: r::DhtLookup = r::parse(v)?;
    let how = format!(
        "{} request(s), {} unanswered, {} ms{}",
        a.requests,
        a.failures,
        a.elapsed_ms,
        if a.timed_out { ", timed out" } else { "" }
    );
    if provide {
        if a.nodes.is_empty() {
            bail!("no DHT node answered for key {} ({how}); does this node know any Grid nodes yet? (grid status)", a.key);
        }
        println!(
            "Key {} provided: {} node(s) told ({how})",
            a.key,
            a.nodes.len()
        );
        return Ok(());
    }
    if a.providers.is_empty() {
        println!("No provider of key {} found ({how})", a.key);
    } else {
        println!(
            "Providers of key {} (found at hop {}, {how}):",
            a.key, a.hops
        );
        for p in &a.providers {
            println!("  node {}  identity {}", p.node, p.identity);
        }
    }
    Ok(())
}
