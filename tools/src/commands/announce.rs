//! `grid announce`: announce `grid.node` now.

use std::time::Duration;

use anyhow::Result;
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::ask;

/// `grid announce`
pub(crate) fn announce(state: &StateDir, json_out: bool) -> Result<()> {
    let v = ask(state, &Request::Announce, Duration::from_secs(5))?;
    if json_out {
        println!("{v}");
    } else {
        println!("Announced {}", r::parse::<r::Announced>(v)?.destination);
    }
    Ok(())
}
