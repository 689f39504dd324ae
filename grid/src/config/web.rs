//! `[web]`: the local status page `grid node` serves (docs/status-page.md).

use std::net::SocketAddr;

use serde::Deserialize;

/// Where the page is served unless `[web] listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4280";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    enabled: Option<bool>,
    listen: Option<String>,
}

/// The status page (`[web]`): on by default, on a loopback address only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebConfig {
    /// Serve it (`enabled`, default true).
    pub enabled: bool,
    /// Where (`listen`, default 127.0.0.1:4280): a loopback address, since the page shows
    /// the node's state and searches as its owner.
    pub listen: SocketAddr,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            listen: DEFAULT_LISTEN.parse().expect("a valid address"),
        }
    }
}

/// Check `[web]`; a bad key comes back with why.
pub(super) fn parse(raw: RawWeb) -> Result<WebConfig, (String, String)> {
    let mut web = WebConfig::default();
    if let Some(e) = raw.enabled {
        web.enabled = e;
    }
    if let Some(l) = raw.listen {
        let addr: SocketAddr = l.parse().map_err(|_| {
            (
                "web.listen".to_string(),
                format!("\"{l}\" is not an address like {DEFAULT_LISTEN}"),
            )
        })?;
        if !addr.ip().is_loopback() {
            return Err((
                "web.listen".to_string(),
                format!(
                    "{addr} is not a loopback address: the page shows this node's state and \
                     searches as its owner, so it is served on this machine only \
                     (127.0.0.1 or ::1)"
                ),
            ));
        }
        web.listen = addr;
    }
    Ok(web)
}
