//! `config.toml`: parsing, validation with precise errors, and the embedded default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rns_core::ifac::Ifac;
use rns_core::transport::{InterfaceConfig, InterfaceMode, LocalRole};
use serde::Deserialize;

mod bundles;
use bundles::RawBundles;
pub use bundles::{BundleConfig, StrangerConfig};

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
        Ok(Config {
            acl,
            bundles,
            cp,
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, Path::new("config.toml"))
    }

    #[test]
    fn bundle_settings_are_checked() {
        let c = parse("[bundles]\ncustody = true\ncustody_peers = [\"0123456789abcdef0123456789abcdef\"]\nstore_limit_mb = 8\n").unwrap();
        assert!(c.bundles.custody);
        assert_eq!(c.bundles.custody_peers.len(), 1);
        assert_eq!(c.bundles.store_limit, 8 << 20);
        let e = parse("[bundles]\ncustody_peers = [\"xyz\"]\n").unwrap_err();
        assert_eq!(e.key, "bundles.custody_peers[0]");
        let e = parse("[bundles]\nstore_limit_mb = 0\n").unwrap_err();
        assert_eq!(e.key, "bundles.store_limit_mb");
        assert!(parse("[bundles]\ncustodian = true\n").is_err());
        let c = parse("[bundles]\nstranger_bundles = 10\nstranger_mb = 2\nstrangers_share = 0.5\nstranger_max_ttl = \"2h\"\n").unwrap();
        assert_eq!(c.bundles.strangers.bundles, 10);
        assert_eq!(c.bundles.strangers.bytes, 2 << 20);
        assert_eq!(c.bundles.strangers.share, 0.5);
        assert_eq!(c.bundles.strangers.max_ttl, Duration::from_secs(7200));
        for (text, key) in [
            ("stranger_bundles = 0", "bundles.stranger_bundles"),
            ("stranger_mb = 0", "bundles.stranger_mb"),
            ("strangers_share = 1.5", "bundles.strangers_share"),
            ("stranger_max_ttl = \"soon\"", "bundles.stranger_max_ttl"),
            ("stranger_max_ttl = \"5s\"", "bundles.stranger_max_ttl"),
        ] {
            let e = parse(&format!("[bundles]\n{text}\n")).unwrap_err();
            assert_eq!(e.key, key, "{text}");
        }
    }

    #[test]
    fn default_config_is_valid() {
        let c = parse(DEFAULT_CONFIG).unwrap();
        assert!(!c.transport);
        assert!(c.respond_to_probes);
        assert_eq!(c.announce_interval, Duration::from_secs(300));
        assert_eq!(c.interfaces.len(), 2);
        assert!(
            matches!(&c.interfaces[0].kind, InterfaceKind::Auto(a) if *a == grid_interfaces::auto::AutoConfig::default())
        );
        assert_eq!(c.interfaces[0].rns.hw_mtu, Some(1196));
        assert!(matches!(
            c.interfaces[1].kind,
            InterfaceKind::TcpServer { .. }
        ));
        assert!(c.share_instance);
        assert_eq!(c.instance_name, "default");
    }

    #[test]
    fn shared_instance_keys() {
        let c = parse("[node]\nshare_instance = false\ninstance_name = \"lab-2\"\n[[interface]]\ntype = \"local\"\n[[interface]]\ntype = \"local\"\ninstance_name = \"other\"\n").unwrap();
        assert!(!c.share_instance);
        assert_eq!(c.instance_name, "lab-2");
        assert_eq!(
            c.interfaces[0].kind,
            InterfaceKind::Local {
                instance: "default".into()
            }
        );
        assert_eq!(c.interfaces[0].rns.local, LocalRole::Instance);
        assert_eq!(
            c.interfaces[1].kind,
            InterfaceKind::Local {
                instance: "other".into()
            }
        );
        for (text, key) in [
            ("[node]\ninstance_name = \"\"\n", "node.instance_name"),
            ("[node]\ninstance_name = \"a/b\"\n", "node.instance_name"),
            (
                "[[interface]]\ntype = \"local\"\ninstance_name = \"x y\"\n",
                "interface[0].instance_name",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err().key, key, "{text}");
        }
        let a = Config::attached("lab-2");
        assert_eq!(a.interfaces.len(), 1);
        assert!(!a.share_instance && !a.transport);
    }

    #[test]
    fn serial_and_kiss_interface_keys() {
        let c = parse("[[interface]]\ntype = \"serial\"\nport = \"/dev/ttyS0\"\nspeed = 115200\nparity = \"even\"\n[[interface]]\ntype = \"kiss\"\nport = \"/dev/ttyUSB1\"\npreamble = 150\nflow_control = true\n").unwrap();
        let InterfaceKind::Serial(s) = &c.interfaces[0].kind else {
            panic!("{:?}", c.interfaces[0].kind)
        };
        assert_eq!((s.speed, s.data_bits, s.stop_bits), (115_200, 8, 1));
        assert_eq!(s.parity, grid_interfaces::serial::Parity::Even);
        assert_eq!(c.interfaces[0].rns.bitrate, 115_200);
        assert_eq!(c.interfaces[0].rns.hw_mtu, Some(564));
        let InterfaceKind::Kiss(k) = &c.interfaces[1].kind else {
            panic!("{:?}", c.interfaces[1].kind)
        };
        assert_eq!(
            (k.preamble_ms, k.txtail_ms, k.persistence, k.flow_control),
            (150, 20, 64, true)
        );
        assert_eq!(k.serial.speed, 9600);
        assert_eq!(c.interfaces[1].rns.bitrate, 1200);
        for (text, key) in [
            ("type = \"serial\"\n", "port"),
            (
                "type = \"serial\"\nport = \"/d\"\ndatabits = 9\n",
                "databits",
            ),
            (
                "type = \"kiss\"\nport = \"/d\"\npreamble = 9000\n",
                "preamble",
            ),
        ] {
            let e = parse(&format!("[[interface]]\n{text}")).unwrap_err();
            assert_eq!(e.key, format!("interface[0].{key}"), "{text}");
        }
    }

    #[test]
    fn rnode_interface_keys() {
        let c = parse("[[interface]]\ntype = \"rnode\"\nport = \"/dev/ttyUSB0\"\nfrequency = 868_100_000\nbandwidth = 125_000\nspreading_factor = 9\ncoding_rate = 5\ntx_power = 14\nairtime_limit = 0.01\nnetwork_name = \"n\"\n").unwrap();
        let InterfaceKind::Rnode(r) = &c.interfaces[0].kind else {
            panic!("{:?}", c.interfaces[0].kind)
        };
        assert_eq!(
            (
                r.frequency,
                r.bandwidth,
                r.spreading_factor,
                r.coding_rate,
                r.tx_power
            ),
            (868_100_000, 125_000, 9, 5, 14)
        );
        assert_eq!(r.lt_alock, Some(1.0));
        assert_eq!(c.interfaces[0].rns.bitrate, 1757);
        assert!(
            (c.interfaces[0].rns.announce_cap - 0.005).abs() < 1e-9,
            "half of the 1 % duty cycle"
        );
        assert_eq!(c.interfaces[0].rns.hw_mtu, Some(508));
        assert_eq!(
            c.interfaces[0].rns.ifac.as_ref().map(|i| i.size()),
            Some(8),
            "radios use 8-byte access codes"
        );
        let base = "[[interface]]\ntype = \"rnode\"\nport = \"/dev/x\"\nfrequency = 868100000\nbandwidth = 125000\nspreading_factor = 9\ncoding_rate = 5\n";
        for (extra, key) in [
            ("tx_power = 50\n", "tx_power"),
            ("airtime_limit = 2.0\n", "airtime_limit"),
        ] {
            assert_eq!(
                parse(&format!("{base}{extra}")).unwrap_err().key,
                format!("interface[0].{key}")
            );
        }
        let e = parse(&base.replace("spreading_factor = 9", "spreading_factor = 14")).unwrap_err();
        assert_eq!(e.key, "interface[0].spreading_factor");
        let e = parse(&base.replace("port = \"/dev/x\"\n", "")).unwrap_err();
        assert_eq!(e.key, "interface[0].port");
        let e =
            parse(&base.replace("frequency = 868100000", "frequency = 5000000000")).unwrap_err();
        assert_eq!(e.key, "interface[0].frequency");
    }

    #[test]
    fn auto_interface_keys() {
        let c = parse(
            "[[interface]]\ntype = \"auto\"\ngroup_id = \"classroom\"\ndiscovery_scope = \"site\"\ndata_port = 5000\ndevices = [\"eth0\"]\n",
        )
        .unwrap();
        let InterfaceKind::Auto(a) = &c.interfaces[0].kind else {
            panic!("not auto");
        };
        assert_eq!(a.group_id, "classroom");
        assert_eq!(a.discovery_scope, grid_interfaces::auto::Scope::Site);
        assert_eq!(
            (a.data_port, &a.devices[..]),
            (5000, &["eth0".to_string()][..])
        );
        for (bad, key) in [
            ("discovery_scope = \"moon\"", "discovery_scope"),
            ("data_port = 29717", "data_port"),
            ("group_id = \"\"", "group_id"),
            ("multicast_address_type = \"x\"", "multicast_address_type"),
        ] {
            let e = parse(&format!("[[interface]]\ntype = \"auto\"\n{bad}\n")).unwrap_err();
            assert_eq!(e.key, format!("interface[0].{key}"), "{e}");
        }
    }

    #[test]
    fn full_example() {
        let c = parse(
            r#"
            [node]
            transport = true
            announce_interval = "30s"
            [[interface]]
            type = "tcp_client"
            target = "127.0.0.1:4243"
            network_name = "testnet"
            passphrase = "secret"
            mode = "gateway"
            [[interface]]
            type = "udp"
            listen = "0.0.0.0:4242"
            forward = "255.255.255.255:4242"
            announce_cap = 5
            [[interface]]
            type = "tcp_server"
            listen = "127.0.0.1:1"
            enabled = false
            "#,
        )
        .unwrap();
        assert!(c.transport);
        assert_eq!(c.interfaces.len(), 2);
        assert_eq!(c.interfaces[0].rns.mode, InterfaceMode::Gateway);
        assert_eq!(c.interfaces[0].rns.ifac.as_ref().unwrap().size(), 16);
        assert!((c.interfaces[1].rns.announce_cap - 0.05).abs() < 1e-9);
    }

    #[test]
    fn tcp_server_limits_have_defaults_and_are_checked() {
        use grid_interfaces::tcp::ServerLimits;
        let srv = "[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:1\"\n";
        let limits = |extra: &str| match parse(&format!("{srv}{extra}")).map(|c| c.interfaces) {
            Ok(i) => match &i[0].kind {
                InterfaceKind::TcpServer { limits, .. } => Ok(*limits),
                other => panic!("{other:?}"),
            },
            Err(e) => Err((e.key, e.reason)),
        };
        assert_eq!(limits(""), Ok(ServerLimits::default()));
        let l = limits(
            "max_connections = 500\nmax_connections_per_ip = 500\nfirst_frame_timeout = \"3s\"",
        )
        .unwrap();
        assert_eq!(
            (l.max_connections, l.max_per_ip, l.first_frame_timeout),
            (500, 500, Duration::from_secs(3))
        );
        // A small listener's per-address default follows its total.
        assert_eq!(limits("max_connections = 8").unwrap().max_per_ip, 8);
        for (extra, key) in [
            ("max_connections = 0", "max_connections"),
            ("max_connections = 100000", "max_connections"),
            (
                "max_connections = 8\nmax_connections_per_ip = 9",
                "max_connections_per_ip",
            ),
            ("max_connections_per_ip = 0", "max_connections_per_ip"),
            ("first_frame_timeout = \"soon\"", "first_frame_timeout"),
            ("first_frame_timeout = \"10ms\"", "first_frame_timeout"),
            ("first_frame_timeout = \"2h\"", "first_frame_timeout"),
        ] {
            let (k, reason) = limits(extra).unwrap_err();
            assert_eq!(k, format!("interface[0].{key}"), "{extra}: {reason}");
        }
        let e =
            parse("[[interface]]\ntype = \"tcp_client\"\ntarget = \"h:1\"\nmax_connections = 4")
                .unwrap_err();
        assert_eq!(e.key, "interface[0].max_connections");
        assert!(e.reason.contains("tcp_server"), "{}", e.reason);
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let cases = [
            (
                "[node]\nannounce_interval = \"soon\"",
                "node.announce_interval",
            ),
            (
                "[[interface]]\ntype = \"tcp_server\"",
                "interface[0].listen",
            ),
            (
                "[[interface]]\ntype = \"tcp_server\"\nlisten = \"nope\"",
                "interface[0].listen",
            ),
            (
                "[[interface]]\ntype = \"carrier_pigeon\"",
                "interface[0].type",
            ),
            (
                "[[interface]]\ntype = \"kiss\"\nport = \"/dev/x\"\nparity = \"mark\"",
                "interface[0].parity",
            ),
            (
                "[[interface]]\ntype = \"rnode\"\nport = \"/dev/x\"",
                "interface[0].frequency",
            ),
            (
                "[[interface]]\ntype = \"udp\"\nlisten = \"0.0.0.0:1\"\nforward = \"x\"",
                "interface[0].forward",
            ),
            (
                "[[interface]]\ntype = \"tcp_client\"\ntarget = \"h:1\"\nifac_size = 12",
                "interface[0].ifac_size",
            ),
            (
                "[[interface]]\ntype = \"tcp_client\"\ntarget = \"h:1\"\nmode = \"warp\"",
                "interface[0].mode",
            ),
        ];
        for (text, key) in cases {
            let e = parse(text).unwrap_err();
            assert_eq!(e.key, key, "{text}");
            assert_eq!(e.file, Path::new("config.toml"));
            assert!(!e.reason.is_empty());
            assert!(e.to_string().starts_with("config.toml: "));
        }
        let e = parse("[node]\ntransport = 3\n").unwrap_err();
        assert_eq!(e.key, "line 2");
        let e = parse("[node]\nbogus = 1\n").unwrap_err();
        assert!(e.reason.contains("bogus"), "{}", e.reason);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,400}") {
            let _ = parse(&s);
        }

        #[test]
        fn mutated_default_never_panics(i in 0usize..600, b in any::<u8>()) {
            let mut bytes = DEFAULT_CONFIG.as_bytes().to_vec();
            let i = i % bytes.len();
            bytes[i] = b;
            if let Ok(s) = String::from_utf8(bytes) {
                let _ = parse(&s);
            }
        }
    }
}
