//! `grid probe`: send a probe and time its proof.

use std::time::Duration;

use anyhow::{bail, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::{ask, parse_hash, timeout_ms};

/// `grid probe`
pub(crate) fn probe(
    state: &StateDir,
    hash: &str,
    size: usize,
    data: Option<&str>,
    timeout: f64,
    json_out: bool,
) -> Result<()> {
    let d = parse_hash(hash)?;
    let len = data.map_or(size, str::len);
    if len == 0 || len > rns_core::packet::ENCRYPTED_MDU {
        bail!(
            "probe payload must be between 1 and {} bytes",
            rns_core::packet::ENCRYPTED_MDU
        );
    }
    let ms = timeout_ms(timeout)?;
    let req = Request::Probe {
        destination: d,
        size: Some(size as u64),
        data_hex: None,
        data: data.map(str::to_string),
        timeout_ms: Some(ms),
    };
    let v = ask(
        state,
        &req,
        Duration::from_millis(ms) + Duration::from_secs(5),
    )?;
    if json_out {
        println!("{v}");
    } else {
        let p: r::Probed = r::parse(v)?;
        println!(
            "Valid reply from {} in {:.3} ms over {} hop(s)",
            d,
            p.rtt_ms,
            p.hops.map_or("?".to_string(), |h| h.to_string())
        );
    }
    Ok(())
}
