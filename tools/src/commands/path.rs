//! `grid path`: find a path to a destination.

use std::time::Duration;

use anyhow::Result;
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::{ask, parse_hash, timeout_ms};

/// `grid path`
pub(crate) fn path(state: &StateDir, hash: &str, timeout: f64, json_out: bool) -> Result<()> {
    let d = parse_hash(hash)?;
    let ms = timeout_ms(timeout)?;
    let v = ask(
        state,
        &Request::Path {
            destination: d,
            timeout_ms: Some(ms),
        },
        Duration::from_millis(ms) + Duration::from_secs(5),
    )?;
    if json_out {
        println!("{v}");
    } else {
        let p: r::PathFound = r::parse(v)?;
        println!(
            "Path found, destination {} is {} hop(s) away via {} on {}",
            d, p.hops, p.next_hop, p.interface
        );
    }
    Ok(())
}

/// `grid path <hash> --drop`
pub(crate) fn drop_path(state: &StateDir, hash: &str, json_out: bool) -> Result<()> {
    let destination = parse_hash(hash)?;
    let v = ask(
        state,
        &Request::DropPath { destination },
        Duration::from_secs(5),
    )?;
    if json_out {
        println!("{v}");
    } else if r::parse::<r::PathDropped>(v)?.dropped {
        println!("Dropped the path to {destination}");
    } else {
        println!("No path to {destination} was known");
    }
    Ok(())
}
