//! RNS's RPC calls (`{"get": "interface_stats"}`, `{"get": "path_table", "max_hops": n}`,
//! `{"drop": "path", …}` …) answered from the node's `status`, in the shapes RNS 1.5.7's
//! `Reticulum.get_*` return, so its utilities print them as for `rnsd`. What Grid does
//! not keep (announce rate tables, per-packet signal figures, blackholes) answers as an
//! RNS node without them would: empty, `None`, `False`. Dropping paths (`rnpath -d`,
//! `-D`) drops them.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use grid::control::{self, Request};
use rmpv::Value as Mp;
use serde_json::Value;

/// RNS interface mode numbers (`Interface.MODE_*`).
fn mode_number(mode: &str) -> i64 {
    match mode {
        "point_to_point" => 2,
        "access_point" => 3,
        "roaming" => 4,
        "boundary" => 5,
        "gateway" => 6,
        "internal" => 7,
        _ => 1,
    }
}

/// The RNS class name for a config `type`.
fn rns_type(kind: &str) -> &'static str {
    match kind {
        "tcp_server" => "TCPServerInterface",
        "tcp_client" => "TCPClientInterface",
        "udp" => "UDPInterface",
        "auto" => "AutoInterface",
        "serial" => "SerialInterface",
        "kiss" => "KISSInterface",
        "rnode" => "RNodeInterface",
        _ => "LocalClientInterface",
    }
}

fn s(v: &str) -> Mp {
    Mp::from(v)
}

fn map(pairs: Vec<(&str, Mp)>) -> Mp {
    Mp::Map(pairs.into_iter().map(|(k, v)| (s(k), v)).collect())
}

fn hash_bin(hex_str: &str) -> Mp {
    hex::decode(hex_str).map_or(Mp::Nil, Mp::Binary)
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// One `interface_stats` entry.
struct Entry<'a> {
    name: String,
    kind: &'a str,
    mode: &'a str,
    bitrate: u64,
    online: bool,
    clients: Option<u64>,
    rx: (u64, u64),
    tx: (u64, u64),
    violations: (u64, u64),
    /// Announces queued to go out, and held by ingress control.
    queues: (u64, u64),
    radio: Option<&'a Value>,
}

impl Entry<'_> {
    fn to_mp(&self) -> Mp {
        let full = format!("{}[{}]", rns_type(self.kind), self.name);
        let hash = {
            use sha2::Digest;
            sha2::Sha256::digest(full.as_bytes()).to_vec()
        };
        let mut pairs = vec![
            ("clients", self.clients.map_or(Mp::Nil, Mp::from)),
            ("bitrate", Mp::from(self.bitrate)),
            ("rxs", Mp::from(0)),
            ("txs", Mp::from(0)),
            ("arxs", Mp::from(0)),
            ("atxs", Mp::from(0)),
            ("prxs", Mp::from(0)),
            ("ptxs", Mp::from(0)),
            ("ifac_signature", Mp::Nil),
            ("ifac_size", Mp::Nil),
            ("ifac_netname", Mp::Nil),
            ("autoconnect_source", Mp::Nil),
            ("announce_queue", Mp::from(self.queues.0)),
            ("name", s(&full)),
            ("short_name", s(&self.name)),
            ("hash", Mp::Binary(hash)),
            ("type", s(rns_type(self.kind))),
            (
                "mtu",
                Mp::from(if self.kind == "rnode" { 508 } else { 262_144 }),
            ),
            ("rxb", Mp::from(self.rx.1)),
            ("txb", Mp::from(self.tx.1)),
            ("arxb", Mp::from(0)),
            ("atxb", Mp::from(0)),
            ("arxc", Mp::from(0)),
            ("atxc", Mp::from(0)),
            ("prxb", Mp::from(0)),
            ("ptxb", Mp::from(0)),
            ("prxc", Mp::from(0)),
            ("ptxc", Mp::from(0)),
            ("txdrp", Mp::from(0)),
            ("txdrb", Mp::from(0)),
            ("txstalled", Mp::from(0)),
            ("txbuffered", Mp::from(0)),
            ("incoming_announce_frequency", Mp::F64(0.0)),
            ("outgoing_announce_frequency", Mp::F64(0.0)),
            ("incoming_pr_frequency", Mp::F64(0.0)),
            ("outgoing_pr_frequency", Mp::F64(0.0)),
            ("announce_rate_target", Mp::Nil),
            ("announce_rate_penalty", Mp::Nil),
            ("announce_rate_grace", Mp::Nil),
            ("held_announces", Mp::from(self.queues.1)),
            ("burst_active", Mp::Boolean(false)),
            ("burst_activated", Mp::from(0)),
            ("burst_count", Mp::from(0)),
            ("pr_burst_active", Mp::Boolean(false)),
            ("pr_burst_activated", Mp::from(0)),
            ("pr_burst_count", Mp::from(0)),
            ("status", Mp::Boolean(self.online)),
            ("mode", Mp::from(mode_number(self.mode))),
            ("gravity", Mp::from(0)),
            ("announces_to_internal", Mp::Boolean(true)),
            ("protocol_violations", Mp::from(self.violations.0)),
            ("ifac_violations", Mp::from(self.violations.1)),
            ("packet_filter_hits", Mp::from(0)),
        ];
        if self.kind == "auto" {
            pairs.push(("peers", self.clients.map_or(Mp::Nil, Mp::from)));
        }
        if let Some(r) = self.radio {
            let pct = |k: &str| r[k].as_f64().map_or(Mp::Nil, Mp::F64);
            pairs.push(("airtime_short", pct("airtime_short_pct")));
            pairs.push(("airtime_long", pct("airtime_long_pct")));
            pairs.push(("channel_load_short", pct("channel_load_short_pct")));
            pairs.push(("channel_load_long", pct("channel_load_long_pct")));
            pairs.push((
                "noise_floor",
                r["noise_floor_dbm"].as_i64().map_or(Mp::Nil, Mp::from),
            ));
        }
        map(pairs)
    }
}

/// Each configured interface with its connections' traffic summed, and the shared
/// instance, as RNS lists its interfaces.
fn interface_stats(status: &Value) -> Mp {
    let live: Vec<&Value> = status["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let mut entries = Vec::new();
    let mut totals = (0u64, 0u64);
    for c in status["configured"].as_array().into_iter().flatten() {
        let name = c["name"].as_str().unwrap_or("?");
        let prefix = format!("{name} <");
        let mine: Vec<&&Value> = live
            .iter()
            .filter(|i| {
                let n = i["name"].as_str().unwrap_or("");
                n == name || n.starts_with(&prefix)
            })
            .collect();
        let sum = |k: &str| mine.iter().map(|i| u(&i[k])).sum::<u64>();
        let kind = c["kind"].as_str().unwrap_or("");
        let e = Entry {
            name: name.to_string(),
            kind,
            mode: c["mode"].as_str().unwrap_or("full"),
            bitrate: u(&c["bitrate"]),
            online: matches!(kind, "tcp_server" | "auto" | "udp") || u(&c["connections"]) > 0,
            clients: matches!(kind, "tcp_server" | "auto").then(|| u(&c["connections"])),
            rx: (sum("rx_packets"), sum("rx_bytes")),
            tx: (sum("tx_packets"), sum("tx_bytes")),
            violations: (sum("protocol_violations"), sum("ifac_violations")),
            queues: (sum("queued_announces"), sum("held_announces")),
            radio: mine
                .iter()
                .find(|i| !i["radio"].is_null())
                .map(|i| &i["radio"]),
        };
        totals.0 += e.rx.1;
        totals.1 += e.tx.1;
        entries.push(e.to_mp());
    }
    if let Some(instance) = status["shared_instance"].as_str() {
        let local: Vec<&&Value> = live
            .iter()
            .filter(|i| {
                i["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("Shared Instance") || n.starts_with("local"))
            })
            .collect();
        let sum = |k: &str| local.iter().map(|i| u(&i[k])).sum::<u64>();
        let e = Entry {
            name: format!("rns/{instance}"),
            kind: "local",
            mode: "full",
            bitrate: 1_000_000_000,
            online: true,
            clients: Some(u(&status["local_clients"])),
            rx: (sum("rx_packets"), sum("rx_bytes")),
            tx: (sum("tx_packets"), sum("tx_bytes")),
            violations: (0, 0),
            queues: (0, 0),
            radio: None,
        };
        let mut m = e.to_mp();
        if let Mp::Map(pairs) = &mut m {
            for (k, v) in pairs.iter_mut() {
                if k.as_str() == Some("name") {
                    *v = s(&format!("Shared Instance[rns/{instance}]"));
                }
                if k.as_str() == Some("type") {
                    *v = s("LocalServerInterface");
                }
            }
        }
        entries.push(m);
    }
    let mut top = vec![("interfaces", Mp::Array(entries))];
    top.push(("rxb", Mp::from(totals.0)));
    top.push(("txb", Mp::from(totals.1)));
    for k in [
        "rxs",
        "txs",
        "arxb",
        "atxb",
        "arxs",
        "atxs",
        "arxf",
        "atxf",
        "prxb",
        "ptxb",
        "prxs",
        "ptxs",
        "prxf",
        "ptxf",
        "rxpps",
        "txpps",
        "rxqt",
        "rxqd",
        "rxqa",
        "rxqp",
        "rxqil",
        "rxqtd",
        "rxqdd",
        "rxqad",
        "rxqpd",
        "rxqild",
        "tqpressure",
        "dqpressure",
        "aqpressure",
        "pqpressure",
        "ilqpressure",
    ] {
        top.push((k, Mp::from(0)));
    }
    top.push(("txq", Mp::Nil));
    if status["transport"].as_bool() == Some(true) {
        top.push((
            "transport_id",
            hash_bin(status["identity"].as_str().unwrap_or("")),
        ));
        top.push(("network_id", Mp::Nil));
        top.push((
            "transport_uptime",
            Mp::F64(status["uptime_s"].as_f64().unwrap_or(0.0)),
        ));
        top.push(("probe_responder", Mp::Nil));
    }
    top.push(("rss", Mp::Nil));
    map(top)
}

/// The interface names by number, from `status`.
fn interface_name(status: &Value, id: u64) -> String {
    status["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["id"].as_u64() == Some(id))
        .and_then(|i| i["name"].as_str())
        .unwrap_or("None")
        .to_string()
}

/// The path to `destination` (its hex), if known.
fn path_to<'a>(status: &'a Value, destination: &str) -> Option<&'a Value> {
    status["paths"]
        .as_array()?
        .iter()
        .find(|p| p["destination"].as_str() == Some(destination))
}

fn path_table(status: &Value, max_hops: Option<u64>) -> Mp {
    let now = now_s();
    // RNS's path lifetime on a full interface (a week); the table keeps when it expires.
    const LIFETIME: f64 = 7.0 * 86_400.0;
    let rows = status["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| max_hops.is_none_or(|m| u(&p["hops"]) <= m))
        .map(|p| {
            let expires = now + p["expires_in_s"].as_f64().unwrap_or(0.0);
            map(vec![
                ("hash", hash_bin(p["destination"].as_str().unwrap_or(""))),
                ("timestamp", Mp::F64((expires - LIFETIME).max(0.0))),
                ("via", hash_bin(p["next_hop"].as_str().unwrap_or(""))),
                ("hops", Mp::from(u(&p["hops"]))),
                ("expires", Mp::F64(expires)),
                ("interface", s(&interface_name(status, u(&p["interface"])))),
            ])
        })
        .collect();
    Mp::Array(rows)
}

fn field<'a>(call: &'a Mp, key: &str) -> Option<&'a Mp> {
    call.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn hash_field(call: &Mp, key: &str) -> Result<String> {
    match field(call, key) {
        Some(Mp::Binary(b)) if b.len() == 16 => Ok(hex::encode(b)),
        _ => bail!("{key}: not a 16-byte hash"),
    }
}

/// Forget the path to `destination` (hex); whether one was known.
async fn drop_path(socket: &Path, destination: &str) -> Result<bool> {
    let destination = destination
        .parse()
        .map_err(|e| anyhow!("bad destination {destination}: {e}"))?;
    let v = control::ask(
        socket,
        &Request::DropPath { destination },
        Duration::from_secs(5),
    )
    .await
    .map_err(|e| anyhow!("{e}"))?;
    Ok(v["dropped"].as_bool().unwrap_or(false))
}

/// Answer one msgpack-encoded call with its msgpack-encoded result.
pub(crate) async fn answer(socket: &Path, call: &[u8]) -> Result<Vec<u8>> {
    let call = rmpv::decode::read_value(&mut &call[..]).map_err(|e| anyhow!("not msgpack: {e}"))?;
    let status = || async {
        control::ask(socket, &Request::Status, Duration::from_secs(5))
            .await
            .map_err(|e| anyhow!("{e}"))
    };
    let result = if let Some(get) = field(&call, "get").and_then(Mp::as_str) {
        match get {
            "interface_stats" => interface_stats(&status().await?),
            "path_table" => {
                let max = field(&call, "max_hops").and_then(Mp::as_u64);
                path_table(&status().await?, max)
            }
            "next_hop" => {
                let d = hash_field(&call, "destination_hash")?;
                let st = status().await?;
                path_to(&st, &d).map_or(Mp::Nil, |p| hash_bin(p["next_hop"].as_str().unwrap_or("")))
            }
            "next_hop_if_name" => {
                let d = hash_field(&call, "destination_hash")?;
                let st = status().await?;
                s(&path_to(&st, &d).map_or("None".to_string(), |p| {
                    interface_name(&st, u(&p["interface"]))
                }))
            }
            "first_hop_timeout" => Mp::F64(6.0),
            "medium_path_timeout" => Mp::F64(15.0),
            "lowest_interface_bitrate" => {
                let st = status().await?;
                let min = st["configured"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["bitrate"].as_u64())
                    .min();
                min.map_or(Mp::Nil, Mp::from)
            }
            "link_count" => Mp::from(u(&status().await?["link_table"])),
            "active_link_count" => {
                let st = status().await?;
                Mp::from(st["links"].as_array().map_or(0, Vec::len) as u64)
            }
            "rate_table" | "blackholed_identities" => Mp::Array(Vec::new()),
            "is_blackholed" => Mp::Boolean(false),
            _ => Mp::Nil,
        }
    } else if let Some(drop) = field(&call, "drop").and_then(Mp::as_str) {
        match drop {
            "path" => {
                let d = hash_field(&call, "destination_hash")?;
                Mp::Boolean(drop_path(socket, &d).await?)
            }
            "all_via" => {
                // Every path whose next hop is the given one.
                let via = hash_field(&call, "destination_hash")?;
                let st = status().await?;
                let mut any = false;
                for p in st["paths"].as_array().into_iter().flatten() {
                    if p["next_hop"].as_str() == Some(&via) {
                        any |= drop_path(socket, p["destination"].as_str().unwrap_or("")).await?;
                    }
                }
                Mp::Boolean(any)
            }
            // Grid keeps no announce queue to drop from the outside.
            "announce_queues" => Mp::from(0),
            _ => Mp::Boolean(false),
        }
    } else {
        Mp::Nil
    };
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &result)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status() -> Value {
        json!({
            "identity": "00112233445566778899aabbccddeeff", "transport": true, "uptime_s": 5,
            "shared_instance": "default", "local_clients": 2, "link_table": 3, "links": [],
            "configured": [
                {"name": "tcp", "kind": "tcp_server", "address": "127.0.0.1:4242", "mode": "full", "bitrate": 10000000, "connections": 2}],
            "interfaces": [
                {"id": 1, "name": "tcp <127.0.0.1:1>", "online": true, "rx_packets": 1, "rx_bytes": 10, "tx_packets": 2, "tx_bytes": 20, "radio": null},
                {"id": 2, "name": "tcp <127.0.0.1:2>", "online": true, "rx_packets": 3, "rx_bytes": 30, "tx_packets": 4, "tx_bytes": 40, "radio": null}],
            "paths": [{"destination": "aa".repeat(16), "hops": 2, "next_hop": "bb".repeat(16), "interface": 2, "expires_in_s": 100}]
        })
    }

    #[test]
    fn interface_stats_sum_a_listeners_clients_and_list_the_shared_instance() {
        let m = interface_stats(&status());
        let ifs = field(&m, "interfaces").unwrap().as_array().unwrap();
        assert_eq!(ifs.len(), 2);
        assert_eq!(
            field(&ifs[0], "name").unwrap().as_str(),
            Some("TCPServerInterface[tcp]")
        );
        assert_eq!(field(&ifs[0], "clients").unwrap().as_u64(), Some(2));
        assert_eq!(field(&ifs[0], "rxb").unwrap().as_u64(), Some(40));
        assert_eq!(field(&ifs[0], "txb").unwrap().as_u64(), Some(60));
        assert_eq!(
            field(&ifs[1], "type").unwrap().as_str(),
            Some("LocalServerInterface")
        );
        assert_eq!(field(&ifs[1], "clients").unwrap().as_u64(), Some(2));
        assert!(matches!(field(&m, "transport_id"), Some(Mp::Binary(b)) if b.len() == 16));
    }

    #[test]
    fn the_path_table_names_interfaces_and_honours_max_hops() {
        let t = path_table(&status(), None);
        let rows = t.as_array().unwrap();
        assert_eq!(
            field(&rows[0], "interface").unwrap().as_str(),
            Some("tcp <127.0.0.1:2>")
        );
        assert_eq!(field(&rows[0], "hops").unwrap().as_u64(), Some(2));
        assert!(path_table(&status(), Some(1))
            .as_array()
            .unwrap()
            .is_empty());
    }
}
