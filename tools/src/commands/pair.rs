//! `grid pair`: offer a pairing code, or present another node's.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::{ask, parse_level};

/// `grid pair` on the offering side: show a code, wait for the other node.
pub(crate) fn pair_offer(
    state: &StateDir,
    level: &str,
    window: Duration,
    no_wait: bool,
    json_out: bool,
) -> Result<()> {
    let v = ask(
        state,
        &Request::PairOffer {
            level: parse_level(level)?,
            window_s: Some(window.as_secs().max(10)),
        },
        Duration::from_secs(5),
    )?;
    if json_out && no_wait {
        println!("{v}");
        return Ok(());
    }
    let offer: r::PairOffered = r::parse(v)?;
    if !json_out {
        println!("Pairing code: {}", offer.code);
        println!(
            "On the other node run:\n  grid pair {} {}",
            offer.node, offer.code
        );
    }
    if no_wait {
        return Ok(());
    }
    if !json_out {
        eprintln!(
            "waiting up to {} for it ({} tries)…",
            humantime::format_duration(window),
            offer.tries
        );
    }
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let v = ask(state, &Request::PairStatus, Duration::from_secs(5))?;
        let status: r::PairStatus = r::parse(v)?;
        match status {
            r::PairStatus::Paired { identity, level } => {
                if json_out {
                    println!("{}", r::ok(&status));
                } else {
                    println!("Paired with {identity} ({level})");
                }
                return Ok(());
            }
            r::PairStatus::Waiting { .. } => {}
            r::PairStatus::Closed { reason } => bail!("pairing ended: {reason}"),
            r::PairStatus::None => bail!("pairing ended: no offer"),
        }
    }
}

/// `grid pair <node> <code>`: present another node's code.
pub(crate) fn pair_join(
    state: &StateDir,
    node: &str,
    code: &str,
    level: &str,
    json_out: bool,
) -> Result<()> {
    let destination: rns_core::AddressHash = node
        .parse()
        .map_err(|e| anyhow!("invalid node hash \"{node}\": {e}"))?;
    if grid::trust::parse_pairing_code(code).is_none() {
        bail!("\"{code}\" is not a pairing code (four words, like river-salt-owl-piano)");
    }
    let v = ask(
        state,
        &Request::PairJoin {
            destination,
            code: code.to_string(),
            level: parse_level(level)?,
            timeout_ms: Some(30_000),
        },
        Duration::from_secs(35),
    )?;
    if json_out {
        println!("{v}");
    } else {
        let paired: r::TrustOf = r::parse(v)?;
        println!("Paired with {} ({})", paired.identity, paired.level);
    }
    Ok(())
}
