//! `grid trust`: list or set trust levels.

use std::time::Duration;

use anyhow::{anyhow, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::{ask, parse_level};

/// `grid trust`
pub(crate) fn trust(
    state: &StateDir,
    identity: Option<&str>,
    level: Option<&str>,
    json_out: bool,
) -> Result<()> {
    let Some(identity) = identity else {
        let v = ask(state, &Request::TrustList, Duration::from_secs(5))?;
        if json_out {
            println!("{v}");
        } else {
            let list: r::TrustList = r::parse(v)?;
            println!("unlisted identities: {}", list.default);
            for e in &list.entries {
                println!("{}  {}", e.identity, e.level);
            }
        }
        return Ok(());
    };
    let req = Request::Trust {
        identity: identity
            .parse()
            .map_err(|e| anyhow!("invalid identity hash \"{identity}\": {e}"))?,
        level: level.map(parse_level).transpose()?,
    };
    let v = ask(state, &req, Duration::from_secs(5))?;
    if json_out {
        println!("{v}");
    } else {
        println!("{identity} is {}", r::parse::<r::TrustOf>(v)?.level);
    }
    Ok(())
}
