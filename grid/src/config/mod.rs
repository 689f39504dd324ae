//! `config.toml`: parsing, validation with precise errors, and the embedded default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rns_core::ifac::Ifac;
use rns_core::transport::{InterfaceConfig, InterfaceMode, LocalRole};
use serde::Deserialize;

mod bundles;
mod governor;
#[cfg(test)]
mod tests;
mod web;
use bundles::RawBundles;
pub use bundles::{BundleConfig, StrangerConfig};
pub use governor::GovernorConfig;
pub use web::{WebConfig, DEFAULT_LISTEN as DEFAULT_WEB_LISTEN};

/// The configuration written to a new state directory by `grid node`.
pub const DEFAULT_CONFIG: &str = r#"# Grid node configuration. See docs/configuration.md for every key.

[node]
# Forward packets and rebroadcast announces for other nodes.
transport = false
# How often this node announces its grid.node destination.
announce_interval = "5m"
# Prove probe packets (rnprobe / grid probe) sent to this node.
respond_to_probes = true
# Serve programs on this host (Grid programs and Python RNS programs with
# share_instance = Yes) over the local shared-instance socket, as rnsd does.
share_instance = true
instance_name = "default"

# Find Grid and RNS nodes on the local network with no setup (IPv6 link-local
# multicast, compatible with RNS's AutoInterface).
[[interface]]
type = "auto"
# group_id = "reticulum"      # only nodes in the same group peer
# devices = ["eth0"]          # only these NICs (default: all with IPv6 link-local)
# ignored_devices = ["docker0"]

# Accept RNS/Grid peers over TCP on every address, port 4242.
[[interface]]
type = "tcp_server"
listen = "0.0.0.0:4242"

# Files sent with `grid cp` or `rncp` are saved in this directory (relative to the
# state directory), from these identities only.
[cp]
directory = "received"
allow = []
allow_all = false

# Delay-tolerant delivery: commands and events for nodes that are offline wait
# here (end-to-end encrypted) until a path appears. A custody node also holds
# bundles for others and hands them on; other nodes find custody nodes in
# announces, or list them here by grid.node destination hash.
[bundles]
custody = false
custody_peers = []
store_limit_mb = 256
# What a custody node holds for nodes it does not trust (strangers): bundles and
# MiB per stranger, the share of store_limit_mb all strangers together may use,
# and the longest TTL accepted from them.
stranger_bundles = 256
stranger_mb = 16
strangers_share = 0.25
stranger_max_ttl = "1d"

# Offer this machine's compute to the mesh: a signed catalog entry with its free
# RAM, GPU memory and load, refreshed as they change (docs/discovery.md), and the
# ai/generate command, run by a model worker (a grid built with `--features llm`).
[compute]
enabled = false
# The GGUF model ai/generate runs. Unset: SmolLM2-135M-Instruct in the models
# directory ($GRID_MODELS, else models/ in the state directory; docs/compute.md).
# model = "/path/to/model.gguf"

# Pipelines (docs/sentinel.md): `shell` steps run programs on this machine only if
# turned on here, and only in pipelines this node's own user started.
[sentinel]
shell = false

# The status page (docs/status-page.md): http://127.0.0.1:4280 while the node runs. Loopback
# addresses only; `enabled = false` turns it off.
[web]
enabled = true
listen = "127.0.0.1:4280"

# How much of this machine grid work (models, adapter fetches) may use. Unset: all but
# 4 GiB of RAM and never more than half of it; VRAM all but a tenth (docs/compute.md).
[governor]
# ram_budget_mb = 3072
# vram_budget_mb = 4096

# Connect to another node (uncomment and set the address):
# [[interface]]
# type = "tcp_client"
# target = "192.168.1.10:4242"
"#;

/// A serial port's keys (`port`, `speed`, `databits`, `parity`, `stopbits`).
fn parse_serial(
    r: &RawInterface,
) -> Result<grid_interfaces::serial::SerialConfig, (&'static str, String)> {
    use grid_interfaces::serial::{Parity, SerialConfig};
    let mut c = SerialConfig::new(r.port.clone().unwrap_or_default());
    if let Some(s) = r.speed {
        c.speed = s;
    }
    if let Some(d) = r.databits {
        c.data_bits = d;
    }
    if let Some(s) = r.stopbits {
        c.stop_bits = s;
    }
    if let Some(p) = &r.parity {
        c.parity = match p.to_ascii_lowercase().as_str() {
            "n" | "none" => Parity::None,
            "e" | "even" => Parity::Even,
            "o" | "odd" => Parity::Odd,
            _ => {
                return Err((
                    "parity",
                    format!("unknown parity \"{p}\" (none, even, odd)"),
                ))
            }
        };
    }
    c.validate()?;
    Ok(c)
}

/// A TCP server's limits: `max_connections`, `max_connections_per_ip` (at most
/// `max_connections`, and by default no more than it) and `first_frame_timeout`.
fn parse_tcp_limits(
    r: &RawInterface,
) -> Result<grid_interfaces::tcp::ServerLimits, (&'static str, String)> {
    let mut l = grid_interfaces::tcp::ServerLimits::default();
    l.max_connections = r.max_connections.unwrap_or(l.max_connections);
    l.max_per_ip = r
        .max_connections_per_ip
        .unwrap_or(l.max_per_ip.min(l.max_connections));
    if let Some(t) = &r.first_frame_timeout {
        l.first_frame_timeout = humantime::parse_duration(t.trim()).map_err(|e| {
            let e = format!("{e} (use a duration such as \"30s\")");
            ("first_frame_timeout", e)
        })?;
    }
    l.validate()?;
    Ok(l)
}

/// A KISS TNC's keys: the serial keys, `preamble`, `txtail`, `slottime` (ms),
/// `persistence` and `flow_control`.
fn parse_kiss(
    r: &RawInterface,
) -> Result<grid_interfaces::kiss_tnc::KissConfig, (&'static str, String)> {
    let mut c = grid_interfaces::kiss_tnc::KissConfig::new(parse_serial(r)?);
    let ms = |v: Option<u32>, key: &'static str, default: u32| match v {
        Some(v) if v > 2550 => Err((key, "must be 0 to 2550 ms".to_string())),
        Some(v) => Ok(v),
        None => Ok(default),
    };
    c.preamble_ms = ms(r.preamble, "preamble", c.preamble_ms)?;
    c.txtail_ms = ms(r.txtail, "txtail", c.txtail_ms)?;
    c.slottime_ms = ms(r.slottime, "slottime", c.slottime_ms)?;
    if let Some(p) = r.persistence {
        c.persistence = p;
    }
    c.flow_control = r.flow_control.unwrap_or(false);
    Ok(c)
}

/// The RNode interface's keys; errors name the key.
fn parse_rnode(
    r: &RawInterface,
) -> Result<grid_interfaces::rnode::RnodeConfig, (&'static str, String)> {
    let need = |v: Option<u64>, key: &'static str| {
        v.ok_or((key, "required for type \"rnode\"".to_string()))
    };
    let port = r.port.clone().filter(|p| !p.is_empty()).ok_or((
        "port",
        "required for type \"rnode\" (e.g. \"/dev/ttyUSB0\")".to_string(),
    ))?;
    let frequency = u32::try_from(need(r.frequency, "frequency")?)
        .map_err(|_| ("frequency", "must be 137 MHz to 3 GHz (in Hz)".to_string()))?;
    let bandwidth = u32::try_from(need(r.bandwidth, "bandwidth")?)
        .map_err(|_| ("bandwidth", "must be 7800 to 1625000 Hz".to_string()))?;
    let sf = r.spreading_factor.ok_or((
        "spreading_factor",
        "required for type \"rnode\"".to_string(),
    ))?;
    let cr = r
        .coding_rate
        .ok_or(("coding_rate", "required for type \"rnode\"".to_string()))?;
    let mut c = grid_interfaces::rnode::RnodeConfig::new(port, frequency, bandwidth, sf, cr);
    if let Some(p) = r.tx_power {
        c.tx_power =
            u8::try_from(p).map_err(|_| ("tx_power", "must be 0 to 37 dBm".to_string()))?;
    }
    // `airtime_limit` is a fraction of time (0.01 = 1 %), enforced by the radio over
    // its one-hour window; `airtime_limit_short` likewise over its short window.
    let frac = |v: Option<f64>, key: &'static str| -> Result<Option<f32>, (&'static str, String)> {
        match v {
            None => Ok(None),
            Some(f) if f > 0.0 && f <= 1.0 => Ok(Some((f * 100.0) as f32)),
            Some(_) => Err((
                key,
                "must be a fraction of time in (0, 1], e.g. 0.01 for 1 %".into(),
            )),
        }
    };
    c.lt_alock = frac(r.airtime_limit, "airtime_limit")?;
    c.st_alock = frac(r.airtime_limit_short, "airtime_limit_short")?;
    c.flow_control = r.flow_control.unwrap_or(false);
    c.validate()?;
    Ok(c)
}

/// The auto interface's own keys; errors name the key.
fn parse_auto(
    r: &RawInterface,
) -> Result<grid_interfaces::auto::AutoConfig, (&'static str, String)> {
    use grid_interfaces::auto::{AddressType, AutoConfig, Scope};
    let mut a = AutoConfig::default();
    if let Some(g) = &r.group_id {
        if g.is_empty() {
            return Err(("group_id", "must not be empty".into()));
        }
        a.group_id = g.clone();
    }
    if let Some(s) = &r.discovery_scope {
        a.discovery_scope = match s.to_lowercase().as_str() {
            "link" => Scope::Link,
            "admin" => Scope::Admin,
            "site" => Scope::Site,
            "organisation" | "organization" => Scope::Organisation,
            "global" => Scope::Global,
            _ => {
                return Err((
                    "discovery_scope",
                    format!("unknown scope \"{s}\" (link, admin, site, organisation, global)"),
                ))
            }
        };
    }
    if let Some(t) = &r.multicast_address_type {
        a.address_type = match t.to_lowercase().as_str() {
            "temporary" => AddressType::Temporary,
            "permanent" => AddressType::Permanent,
            _ => {
                return Err((
                    "multicast_address_type",
                    format!("unknown type \"{t}\" (temporary, permanent)"),
                ))
            }
        };
    }
    if let Some(p) = r.discovery_port {
        if p == 0 || p == u16::MAX {
            return Err((
                "discovery_port",
                "must be 1..=65534 (the next port is used too)".into(),
            ));
        }
        a.discovery_port = p;
    }
    if let Some(p) = r.data_port {
        if p == 0 {
            return Err(("data_port", "must not be 0".into()));
        }
        a.data_port = p;
    }
    if a.data_port == a.discovery_port || a.data_port == a.discovery_port + 1 {
        return Err(("data_port", "must differ from the discovery ports".into()));
    }
    a.devices = r.devices.clone().unwrap_or_default();
    a.ignored_devices = r.ignored_devices.clone().unwrap_or_default();
    Ok(a)
}

/// A configuration error: which file, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {key}: {reason}")]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The key path (`node.announce_interval`, `interface[2].listen`, or `-` for syntax).
    pub key: String,
    /// What is wrong.
    pub reason: String,
}

/// Validated node settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Forward for others.
    pub transport: bool,
    /// Interval between announces of `grid.node`.
    pub announce_interval: Duration,
    /// Prove probes.
    pub respond_to_probes: bool,
    /// Serve local programs over the shared-instance socket when no other node does.
    pub share_instance: bool,
    /// The shared instance's name (RNS `instance_name`).
    pub instance_name: String,
    /// Interfaces to bring up.
    pub interfaces: Vec<InterfaceSpec>,
    /// Receiving files.
    pub cp: CpConfig,
    /// Who may run which command (`[acl]`, on top of the built-in rules).
    pub acl: crate::acl::Acl,
    /// Delay-tolerant delivery (`[bundles]`).
    pub bundles: BundleConfig,
    /// Compute offered to the mesh (`[compute]`).
    pub compute: ComputeConfig,
    /// Pipelines (`[sentinel]`).
    pub sentinel: SentinelConfig,
    /// The local status page (`[web]`).
    pub web: WebConfig,
    /// Budgets for grid work (`[governor]`).
    pub governor: GovernorConfig,
}

/// Who may send this node files, and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpConfig {
    /// Directory for received files (relative paths are under the state directory).
    pub directory: PathBuf,
    /// Identity hashes allowed to send files.
    pub allow: Vec<rns_core::AddressHash>,
    /// Accept files from anyone.
    pub allow_all: bool,
}

impl Default for CpConfig {
    fn default() -> Self {
        CpConfig {
            directory: PathBuf::from("received"),
            allow: Vec::new(),
            allow_all: false,
        }
    }
}

/// One configured interface.
#[derive(Debug, Clone)]
pub struct InterfaceSpec {
    /// What to run.
    pub kind: InterfaceKind,
    /// How the transport treats it (name, mode, IFAC, bitrate, cap).
    pub rns: InterfaceConfig,
}

/// The interface drivers available.
#[derive(Debug, Clone, PartialEq)]
pub enum InterfaceKind {
    /// Accept TCP connections.
    TcpServer {
        /// Listen address.
        listen: String,
        /// What its peers may hold.
        limits: grid_interfaces::tcp::ServerLimits,
    },
    /// Connect to a TCP server, reconnecting.
    TcpClient {
        /// Server address (`host:port`).
        target: String,
    },
    /// UDP datagrams.
    Udp {
        /// Bind address.
        listen: String,
        /// Where to send.
        forward: SocketAddr,
    },
    /// LAN auto-discovery (RNS AutoInterface).
    Auto(grid_interfaces::auto::AutoConfig),
    /// A serial line with HDLC framing (RNS `SerialInterface`).
    Serial(grid_interfaces::serial::SerialConfig),
    /// A KISS TNC on a serial port (RNS `KISSInterface`).
    Kiss(grid_interfaces::kiss_tnc::KissConfig),
    /// A LoRa radio running RNode firmware on a serial port.
    Rnode(grid_interfaces::rnode::RnodeConfig),
    /// Attach to the shared instance on this host (a Grid node or `rnsd`).
    Local {
        /// The instance name (`default` unless the instance sets another).
        instance: String,
    },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    node: RawNode,
    #[serde(default, rename = "interface")]
    interfaces: Vec<RawInterface>,
    #[serde(default)]
    cp: RawCp,
    #[serde(default)]
    acl: toml::Table,
    #[serde(default)]
    bundles: RawBundles,
    #[serde(default)]
    compute: RawCompute,
    #[serde(default)]
    governor: governor::RawGovernor,
    #[serde(default)]
    sentinel: RawSentinel,
    #[serde(default)]
    web: web::RawWeb,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSentinel {
    #[serde(default)]
    shell: bool,
}

/// Pipelines on this node (`[sentinel]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SentinelConfig {
    /// Let `shell` steps run programs on this machine, in pipelines this node's own user
    /// started (never in pipelines peers submit).
    pub shell: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCompute {
    #[serde(default)]
    enabled: bool,
    model: Option<PathBuf>,
}

/// Compute this node offers (`[compute]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComputeConfig {
    /// Publish a compute offer (free RAM, GPU memory, load) in the catalog, and offer
    /// `ai/generate`.
    pub enabled: bool,
    /// The GGUF model `ai/generate` runs; `None`: the default in the models directory.
    pub model: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCp {
    directory: Option<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    allow_all: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    #[serde(default)]
    transport: bool,
    #[serde(default = "default_interval")]
    announce_interval: String,
    #[serde(default = "yes")]
    respond_to_probes: bool,
    #[serde(default = "yes")]
    share_instance: bool,
    #[serde(default = "default_instance")]
    instance_name: String,
}

impl Default for RawNode {
    fn default() -> Self {
        RawNode {
            transport: false,
            announce_interval: default_interval(),
            respond_to_probes: true,
            share_instance: true,
            instance_name: default_instance(),
        }
    }
}

fn default_instance() -> String {
    DEFAULT_INSTANCE.into()
}

/// RNS's default shared instance name.
pub const DEFAULT_INSTANCE: &str = "default";

/// An instance name becomes part of a socket name: keep it short and printable.
fn check_instance_name(n: &str) -> Result<(), String> {
    if n.is_empty() || n.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !n
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "\"{n}\" may only hold letters, digits, '-', '_' and '.'"
        ));
    }
    Ok(())
}

fn default_interval() -> String {
    "5m".into()
}
fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    listen: Option<String>,
    target: Option<String>,
    forward: Option<String>,
    mode: Option<String>,
    network_name: Option<String>,
    passphrase: Option<String>,
    /// IFAC size in bits, as in RNS.
    ifac_size: Option<u32>,
    bitrate: Option<u64>,
    /// Announce cap in percent of bitrate, as in RNS.
    announce_cap: Option<f64>,
    /// Hold announce bursts for unknown destinations (RNS `ingress_control`).
    ingress_control: Option<bool>,
    // TCP server limits.
    max_connections: Option<usize>,
    max_connections_per_ip: Option<usize>,
    first_frame_timeout: Option<String>,
    // Radio keys are accepted here so that rnode/kiss configs give a clear
    // "not available yet" error rather than "unknown key".
    port: Option<String>,
    frequency: Option<u64>,
    bandwidth: Option<u64>,
    spreading_factor: Option<u8>,
    coding_rate: Option<u8>,
    tx_power: Option<i32>,
    airtime_limit: Option<f64>,
    airtime_limit_short: Option<f64>,
    flow_control: Option<bool>,
    // Serial and KISS.
    speed: Option<u32>,
    databits: Option<u8>,
    parity: Option<String>,
    stopbits: Option<u8>,
    preamble: Option<u32>,
    txtail: Option<u32>,
    slottime: Option<u32>,
    persistence: Option<u8>,
    // Auto interface.
    group_id: Option<String>,
    discovery_scope: Option<String>,
    multicast_address_type: Option<String>,
    discovery_port: Option<u16>,
    data_port: Option<u16>,
    devices: Option<Vec<String>>,
    ignored_devices: Option<Vec<String>>,
    // Local (shared instance) interface.
    instance_name: Option<String>,
}

impl Config {
    /// Parse and validate `text`, naming `file` in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let err = |key: &str, reason: String| ConfigError {
            file: file.to_path_buf(),
            key: key.to_string(),
            reason,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let reason = e.message().to_string();
            let key = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}")
                })
                .unwrap_or_else(|| "-".into());
            err(&key, reason)
        })?;
        let announce_interval = humantime::parse_duration(raw.node.announce_interval.trim())
            .map_err(|e| {
                err(
                    "node.announce_interval",
                    format!("{e} (use a duration such as \"30s\", \"5m\", \"1h\")"),
                )
            })?;
        if announce_interval < Duration::from_secs(1) {
            return Err(err("node.announce_interval", "must be at least 1s".into()));
        }
        check_instance_name(&raw.node.instance_name).map_err(|e| err("node.instance_name", e))?;
        let mut interfaces = Vec::new();
        for (i, r) in raw.interfaces.into_iter().enumerate() {
            let k = |f: &str| format!("interface[{i}].{f}");
            if !r.enabled {
                continue;
            }
            let name = r.name.clone().unwrap_or_else(|| format!("{}#{i}", r.kind));
            let need = |v: Option<String>, f: &str| {
                v.ok_or_else(|| err(&k(f), format!("required for type \"{}\"", r.kind)))
            };
            for (f, set) in [
                ("max_connections", r.max_connections.is_some()),
                ("max_connections_per_ip", r.max_connections_per_ip.is_some()),
                ("first_frame_timeout", r.first_frame_timeout.is_some()),
            ] {
                if set && r.kind != "tcp_server" {
                    return Err(err(&k(f), "only for type \"tcp_server\"".into()));
                }
            }
            let (kind, mut rns) = match r.kind.as_str() {
                "tcp_server" => {
                    let listen = need(r.listen.clone(), "listen")?;
                    check_addr(&listen).map_err(|e| err(&k("listen"), e))?;
                    let limits = parse_tcp_limits(&r).map_err(|(f, e)| err(&k(f), e))?;
                    let c = InterfaceConfig::tcp(name);
                    (InterfaceKind::TcpServer { listen, limits }, c)
                }
                "tcp_client" => {
                    let target = need(r.target.clone(), "target")?;
                    if !target.contains(':') {
                        return Err(err(&k("target"), "expected host:port".into()));
                    }
                    (InterfaceKind::TcpClient { target }, InterfaceConfig::tcp(name))
                }
                "udp" => {
                    let listen = need(r.listen.clone(), "listen")?;
                    check_addr(&listen).map_err(|e| err(&k("listen"), e))?;
                    let forward = need(r.forward.clone(), "forward")?;
                    let forward: SocketAddr = forward
                        .parse()
                        .map_err(|e| err(&k("forward"), format!("invalid socket address: {e}")))?;
                    (InterfaceKind::Udp { listen, forward }, InterfaceConfig::udp(name))
                }
                "auto" => {
                    let auto = parse_auto(&r).map_err(|(f, e)| err(&k(f), e))?;
                    let mut c = InterfaceConfig::udp(name);
                    c.hw_mtu = Some(grid_interfaces::auto::HW_MTU);
                    c.mtu_negotiable = true;
                    (InterfaceKind::Auto(auto), c)
                }
                "local" => {
                    let instance = r.instance_name.clone().unwrap_or_else(default_instance);
                    check_instance_name(&instance).map_err(|e| err(&k("instance_name"), e))?;
                    (
                        InterfaceKind::Local { instance },
                        InterfaceConfig::local(name, LocalRole::Instance),
                    )
                }
                "rnode" => {
                    let radio = parse_rnode(&r).map_err(|(f, e)| err(&k(f), e))?;
                    let mut c = InterfaceConfig::radio(name, radio.bitrate());
                    // Rebroadcast announces get at most half the duty-cycle budget,
                    // leaving the rest for the node's own traffic.
                    if let Some(pct) = radio.lt_alock {
                        c.announce_cap = c.announce_cap.min(f64::from(pct) / 100.0 / 2.0);
                    }
                    (InterfaceKind::Rnode(radio), c)
                }
                "serial" => {
                    let serial = parse_serial(&r).map_err(|(f, e)| err(&k(f), e))?;
                    let c = InterfaceConfig::serial(name, u64::from(serial.speed));
                    (InterfaceKind::Serial(serial), c)
                }
                "kiss" => {
                    let kiss = parse_kiss(&r).map_err(|(f, e)| err(&k(f), e))?;
                    // RNS guesses 1200 bit/s for a TNC: it cannot know the radio's rate.
                    let c = InterfaceConfig::serial(name, 1200);
                    (InterfaceKind::Kiss(kiss), c)
                }
                other => {
                    return Err(err(
                        &k("type"),
                        format!("unknown interface type \"{other}\" (expected auto, tcp_server, tcp_client, udp, local, rnode, kiss or serial)"),
                    ))
                }
            };
            if let Some(m) = &r.mode {
                rns.mode = parse_mode(m).ok_or_else(|| {
                    err(&k("mode"), format!("unknown mode \"{m}\" (full, point_to_point, access_point, roaming, boundary, gateway)"))
                })?;
            }
            if let Some(b) = r.bitrate {
                if b < 5 {
                    return Err(err(&k("bitrate"), "must be at least 5 bit/s".into()));
                }
                rns.bitrate = b;
            }
            if let Some(c) = r.announce_cap {
                if !(c > 0.0 && c <= 100.0) {
                    return Err(err(
                        &k("announce_cap"),
                        "must be a percentage in (0, 100]".into(),
                    ));
                }
                rns.announce_cap = c / 100.0;
            }
            if let Some(ic) = r.ingress_control {
                rns.ingress_control = ic;
            }
            // RNS: 16-byte access codes on IP links, 8 on radios and serial lines.
            let default_ifac = if matches!(kind, InterfaceKind::Rnode(_)) {
                8
            } else {
                16
            };
            let bits = r.ifac_size.unwrap_or(default_ifac * 8);
            if bits < 8 || bits % 8 != 0 || bits > 512 {
                return Err(err(
                    &k("ifac_size"),
                    "must be a multiple of 8 bits between 8 and 512".into(),
                ));
            }
            if r.network_name.as_deref() == Some("") || r.passphrase.as_deref() == Some("") {
                return Err(err(
                    &k("passphrase"),
                    "network_name and passphrase must not be empty".into(),
                ));
            }
            rns.ifac = Ifac::new(
                r.network_name.as_deref(),
                r.passphrase.as_deref(),
                bits as usize / 8,
            );
            interfaces.push(InterfaceSpec { kind, rns });
        }
        let mut allow = Vec::new();
        for (i, a) in raw.cp.allow.iter().enumerate() {
            allow.push(a.parse().map_err(|e| {
                err(
                    &format!("cp.allow[{i}]"),
                    format!("invalid identity hash \"{a}\": {e}"),
                )
            })?);
        }
        let cp = CpConfig {
            directory: raw
                .cp
                .directory
                .map_or_else(|| CpConfig::default().directory, PathBuf::from),
            allow,
            allow_all: raw.cp.allow_all,
        };
        let acl = crate::acl::Acl::from_table(&raw.acl).map_err(|e| err("acl", e.to_string()))?;
        let bundles = bundles::parse(&raw.bundles).map_err(|(key, reason)| err(&key, reason))?;
        let governor = governor::parse(raw.governor).map_err(|(key, reason)| err(&key, reason))?;
        let web = web::parse(raw.web).map_err(|(key, reason)| err(&key, reason))?;
        Ok(Config {
            web,
            governor,
            acl,
            bundles,
            cp,
            sentinel: SentinelConfig {
                shell: raw.sentinel.shell,
            },
            compute: ComputeConfig {
                enabled: raw.compute.enabled,
                model: raw.compute.model,
            },
            transport: raw.node.transport,
            announce_interval,
            respond_to_probes: raw.node.respond_to_probes,
            share_instance: raw.node.share_instance,
            instance_name: raw.node.instance_name,
            interfaces,
        })
    }

    /// The settings of a program attached to the shared instance `instance`: the local
    /// socket as its only interface, no transport, no probe answers (as RNS clients).
    pub fn attached(instance: &str) -> Config {
        let name = format!("shared instance {instance}");
        Config {
            transport: false,
            announce_interval: humantime::parse_duration(&default_interval())
                .unwrap_or(Duration::from_secs(300)),
            respond_to_probes: false,
            share_instance: false,
            instance_name: instance.to_string(),
            interfaces: vec![InterfaceSpec {
                kind: InterfaceKind::Local {
                    instance: instance.to_string(),
                },
                rns: InterfaceConfig::local(name, LocalRole::Instance),
            }],
            cp: CpConfig::default(),
            acl: crate::acl::Acl::default(),
            bundles: BundleConfig::default(),
            compute: ComputeConfig::default(),
            sentinel: SentinelConfig::default(),
            governor: GovernorConfig::default(),
            web: WebConfig::default(),
        }
    }

    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            key: "-".into(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, path)
    }
}

fn check_addr(a: &str) -> Result<(), String> {
    a.parse::<SocketAddr>()
        .map(|_| ())
        .map_err(|e| format!("invalid socket address \"{a}\": {e} (expected ip:port)"))
}

fn parse_mode(m: &str) -> Option<InterfaceMode> {
    Some(
        match m.to_ascii_lowercase().replace(['-', ' '], "_").as_str() {
            "full" => InterfaceMode::Full,
            "point_to_point" | "pointtopoint" | "ptp" => InterfaceMode::PointToPoint,
            "access_point" | "accesspoint" | "ap" => InterfaceMode::AccessPoint,
            "roaming" => InterfaceMode::Roaming,
            "boundary" => InterfaceMode::Boundary,
            "gateway" | "gw" => InterfaceMode::Gateway,
            _ => return None,
        },
    )
}
