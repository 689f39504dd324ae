//! `grid catalog`: what catalog gossip has brought this node (and what it publishes).

use std::time::Duration;

use anyhow::Result;
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::ask;

/// `grid catalog`
pub(crate) fn catalog(state: &StateDir, json_out: bool) -> Result<()> {
    let v = ask(state, &Request::Catalog, Duration::from_secs(5))?;
    if json_out {
        println!("{v}");
        return Ok(());
    }
    let c: r::Catalog = r::parse(v)?;
    let mut neighbours = format!("{} gossip neighbour(s)", c.neighbours);
    if c.radio_neighbours > 0 {
        neighbours += &format!(", {} over radio", c.radio_neighbours);
    }
    if c.radio_skipped > 0 {
        neighbours += &format!(
            ", {} radio message(s) held back to save airtime",
            c.radio_skipped
        );
    }
    if c.entries.is_empty() {
        println!(
            "The catalog is empty ({neighbours}); entries appear as Grid nodes one hop away publish them."
        );
        return Ok(());
    }
    println!(
        "{} entr{} ({neighbours}):",
        c.entries.len(),
        if c.entries.len() == 1 { "y" } else { "ies" },
    );
    for e in &c.entries {
        let extra = match (&e.content_hash, e.compute) {
            (Some(h), _) => format!("  package {h}"),
            (None, Some((ram, gpu, load))) => {
                format!("  {ram} MB RAM, {gpu} MB GPU free, load {load} %")
            }
            _ => String::new(),
        };
        println!(
            "  {:<8} {:<24} v{:<3} by {}  {}{extra}",
            e.kind, e.name, e.seq, e.publisher, e.summary
        );
    }
    Ok(())
}
