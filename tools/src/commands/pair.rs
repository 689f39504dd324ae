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
    let code = v["code"].as_str().unwrap_or("?");
    let node = v["node"].as_str().unwrap_or("?");
    if json_out && no_wait {
        println!("{v}");
        return Ok(());
    }
    if !json_out {
        println!("Pairing code: {code}");
        println!("On the other node run:\n  grid pair {node} {code}");
    }
    if no_wait {
        return Ok(());
    }
    if !json_out {
        eprintln!(
            "waiting up to {} for it ({} tries)…",
            humantime::format_duration(window),
            v["tries"]
        );
    }
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let s = ask(state, &Request::PairStatus, Duration::from_secs(5))?;
        match s["state"].as_str() {
            Some("paired") => {
                if json_out {
                    println!("{s}");
                } else {
                    println!(
                        "Paired with {} ({})",
                        s["identity"].as_str().unwrap_or("?"),
                        s["level"].as_str().unwrap_or("?")
                    );
                }
                return Ok(());
            }
            Some("waiting") => {}
            _ => bail!(
                "pairing ended: {}",
                s["reason"].as_str().unwrap_or("no offer")
            ),
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
