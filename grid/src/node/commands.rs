//! Control requests from the CLI: status, paths, probes, links.

use std::time::Duration;

use crate::control::ControlRequest;
use rns_core::transport::LinkInfo;
use rns_core::{rmpv, AddressHash, Instant};
use serde_json::{json, Value};

use super::links::value_json;
use super::ops::LinkOp;
use super::reply::Reply;
use super::waiters::{fail, Wait};
use super::Node;
use crate::clock;

/// A link's summary as JSON.
fn link_json(l: &LinkInfo) -> Value {
    json!({
        "link": l.id.to_string(),
        "destination": l.destination.to_string(),
        "initiator": l.initiator,
        "state": format!("{:?}", l.state).to_lowercase(),
        "mtu": l.mtu,
        "rtt_ms": l.rtt.map(|r| r.as_secs_f64() * 1e3),
        "remote_identity": l.remote_identity.map(|i| i.to_string()),
        "channel_window": l.channel_window,
    })
}

/// A destination hash in a control request's `key`.
fn dest_of(body: &Value, key: &str) -> Result<AddressHash, Value> {
    body.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| json!({"ok": false, "error": format!("missing {key}")}))?
        .parse::<AddressHash>()
        .map_err(|e| json!({"ok": false, "error": format!("invalid destination hash: {e}")}))
}

/// The channel message type `grid link channel` uses unless told otherwise.
pub(super) const DEFAULT_MSGTYPE: u16 = 0x0101;
/// Largest file `link_stream` reads (bigger transfers belong in resources: `grid cp`).
const STREAM_FILE_MAX: u64 = 16 * 1024 * 1024;

/// The link a control request names.
fn link_of(body: &Value) -> Result<rns_core::link::LinkId, String> {
    body.get("link")
        .and_then(Value::as_str)
        .ok_or("missing link id")?
        .parse::<AddressHash>()
        .map_err(|e| format!("invalid link id: {e}"))
}

/// A control request as a link operation.
fn parse_link_op(cmd: &str, body: &Value, timeout: Duration) -> Result<LinkOp, String> {
    let link = link_of(body)?;
    Ok(match cmd {
        "link_send" => LinkOp::Send {
            link,
            data: payload(body)?,
            timeout,
        },
        "link_request" => LinkOp::Request {
            link,
            path: body
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string(),
            data: rmpv::Value::Binary(payload(body)?),
            timeout,
        },
        "link_close" => LinkOp::Close { link },
        "link_identify" => LinkOp::Identify { link },
        "link_channel" => LinkOp::Channel {
            link,
            msgtype: u16::try_from(
                body.get("msgtype")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::from(DEFAULT_MSGTYPE)),
            )
            .map_err(|_| "message type must fit 16 bits")?,
            data: payload(body)?,
            timeout,
        },
        "link_stream" => LinkOp::Stream {
            link,
            stream_id: u16::try_from(body.get("stream_id").and_then(Value::as_u64).unwrap_or(0))
                .map_err(|_| "stream id must be 0..=16383")?,
            data: payload(body)?,
            eof: body.get("eof").and_then(Value::as_bool).unwrap_or(false),
            timeout,
        },
        other => return Err(format!("unknown link command {other}")),
    })
}

/// The bytes a control request carries: `hex`, the contents of `file`, or UTF-8 `data`.
fn payload(body: &Value) -> Result<Vec<u8>, String> {
    if let Some(h) = body.get("hex").and_then(Value::as_str) {
        return hex::decode(h).map_err(|e| format!("invalid hex: {e}"));
    }
    if let Some(p) = body.get("file").and_then(Value::as_str) {
        let meta = std::fs::metadata(p).map_err(|e| format!("{p}: {e}"))?;
        if meta.len() > STREAM_FILE_MAX {
            return Err(format!(
                "{p} is {} bytes; streams take at most {STREAM_FILE_MAX} (use grid cp for files)",
                meta.len()
            ));
        }
        return std::fs::read(p).map_err(|e| format!("{p}: {e}"));
    }
    Ok(body
        .get("data")
        .and_then(Value::as_str)
        .unwrap_or("")
        .as_bytes()
        .to_vec())
}

impl Node {
    pub(super) fn path_json(&self, d: &AddressHash) -> Value {
        match self.transport.path(d) {
            Some(p) => {
                let iface = self
                    .transport
                    .interfaces()
                    .find(|(i, ..)| *i == p.interface)
                    .map(|(_, n, ..)| n.to_string())
                    .unwrap_or_default();
                let identity = self
                    .transport
                    .recall_identity(d)
                    .map(|i| i.hash().to_string());
                let app_data = self.transport.recall_app_data(d).map(hex::encode);
                json!({
                    "ok": true,
                    "destination": d.to_string(),
                    "identity": identity,
                    "app_data": app_data,
                    "hops": p.hops,
                    "next_hop": p.next_hop.to_string(),
                    "interface": iface,
                    "expires_in_s": p.expires.saturating_since(clock::now()).as_secs(),
                })
            }
            None => json!({"ok": false, "error": format!("no path to {d}")}),
        }
    }

    pub(super) fn on_control(&mut self, now: Instant, req: ControlRequest) {
        let body = &req.body;
        let cmd = body.get("cmd").and_then(Value::as_str).unwrap_or("");
        let dest = || dest_of(body, "destination");
        let timeout = Duration::from_millis(
            body.get("timeout_ms")
                .and_then(Value::as_u64)
                .unwrap_or(15_000)
                .min(600_000),
        );
        match cmd {
            "status" => {
                let _ = req.reply.send(self.status_json(now));
            }
            "path" => match dest() {
                Err(e) => {
                    let _ = req.reply.send(e);
                }
                Ok(d) => {
                    if self.transport.path(&d).is_some() {
                        let _ = req.reply.send(self.path_json(&d));
                    } else {
                        self.transport.request_path(now, &d, None);
                        self.wait(now + timeout, Reply::json(req.reply), Wait::Path(d));
                    }
                }
            },
            "probe" => match dest() {
                Err(e) => {
                    let _ = req.reply.send(e);
                }
                Ok(d) => {
                    let payload = match body.get("data").and_then(Value::as_str) {
                        Some(text) => text.as_bytes().to_vec(),
                        None => {
                            let size = body
                                .get("size")
                                .and_then(Value::as_u64)
                                .unwrap_or(16)
                                .clamp(1, rns_core::packet::ENCRYPTED_MDU as u64);
                            let mut p = vec![0u8; size as usize];
                            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut p);
                            p
                        }
                    };
                    if payload.is_empty() || payload.len() > rns_core::packet::ENCRYPTED_MDU {
                        let _ = req.reply.send(json!({"ok": false, "error": format!("probe payload must be 1..={} bytes", rns_core::packet::ENCRYPTED_MDU)}));
                        return;
                    }
                    if self.transport.path(&d).is_none() {
                        self.transport.request_path(now, &d, None);
                    }
                    self.wait(
                        now + timeout,
                        Reply::json(req.reply),
                        Wait::ProbePath {
                            destination: d,
                            payload,
                        },
                    );
                }
            },
            "exec" => {
                let target = body
                    .get("destination")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let route = match target.parse::<crate::routing::Route>() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = req.reply.send(fail(e.to_string()));
                        return;
                    }
                };
                let command = body
                    .get("command")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let params = body.get("params").cloned().unwrap_or(Value::Null);
                let handle = self.internal_handle();
                let options = crate::api::ExecOptions {
                    timeout,
                    ttl: body
                        .get("ttl_ms")
                        .and_then(Value::as_u64)
                        .map(Duration::from_millis),
                };
                let detach = body.get("detach").and_then(Value::as_bool) == Some(true);
                tokio::spawn(async move {
                    let v = match handle.resolve_route(route, &command).await {
                        Err(e) => json!({"ok": false, "error": e.to_string()}),
                        Ok(node) if detach => {
                            match handle
                                .execute_detached_with(node, &command, params, options)
                                .await
                            {
                                Ok(h) => {
                                    json!({"ok": true, "node": node.to_string(), "handle": format!("{h:016x}")})
                                }
                                Err(e) => json!({"ok": false, "error": e.to_string()}),
                            }
                        }
                        Ok(node) => {
                            match handle.execute_with(node, &command, &params, options).await {
                                Ok(result) => {
                                    json!({"ok": true, "node": node.to_string(), "result": result})
                                }
                                Err(crate::api::ExecError::Remote { code, message }) => json!({
                                    "ok": false, "node": node.to_string(), "code": code.as_str(),
                                    "error": format!("{}: {message}", code.as_str())
                                }),
                                Err(e) => {
                                    json!({"ok": false, "node": node.to_string(), "error": e.to_string()})
                                }
                            }
                        }
                    };
                    let _ = req.reply.send(v);
                });
            }
            "trust" => {
                let id = body.get("identity").and_then(Value::as_str).unwrap_or("");
                let level = body.get("level").and_then(Value::as_str);
                let v = match (id.parse::<AddressHash>(), level) {
                    (Err(e), _) => {
                        json!({"ok": false, "error": format!("invalid identity hash \"{id}\": {e}")})
                    }
                    (Ok(h), None) => {
                        json!({"ok": true, "identity": id, "level": self.guard.trust.level(&h).as_str()})
                    }
                    (Ok(h), Some(l)) => match l.parse::<crate::trust::TrustLevel>() {
                        Err(e) => json!({"ok": false, "error": e.to_string()}),
                        Ok(level) => match self.guard.trust.set(h, level) {
                            Ok(()) => json!({"ok": true, "identity": id, "level": level.as_str()}),
                            Err(e) => json!({"ok": false, "error": e.to_string()}),
                        },
                    },
                };
                let _ = req.reply.send(v);
            }
            "pair_offer" => {
                let level = body
                    .get("level")
                    .and_then(Value::as_str)
                    .unwrap_or("trusted");
                let window = body
                    .get("window_s")
                    .and_then(Value::as_u64)
                    .map_or(super::pairing::PAIRING_WINDOW, Duration::from_secs);
                let v = match level.parse::<crate::trust::TrustLevel>() {
                    Err(e) => fail(e.to_string()),
                    Ok(crate::trust::TrustLevel::Blocked) => {
                        fail("pairing grants trust; blocked makes no sense")
                    }
                    Ok(level) => {
                        let code = self.pair_offer(now, level, window);
                        json!({
                            "ok": true, "code": code, "node": self.grid_destination.to_string(),
                            "level": level.as_str(), "expires_in_s": window.as_secs(),
                            "tries": super::pairing::PAIRING_TRIES,
                        })
                    }
                };
                let _ = req.reply.send(v);
            }
            "pair_status" => {
                let _ = req.reply.send(self.pair_status(now));
            }
            "pair_join" => match dest() {
                Err(e) => {
                    let _ = req.reply.send(e);
                }
                Ok(node) => {
                    let code = body
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let level = body
                        .get("level")
                        .and_then(Value::as_str)
                        .unwrap_or("trusted");
                    let level = match level.parse::<crate::trust::TrustLevel>() {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = req.reply.send(fail(e.to_string()));
                            return;
                        }
                    };
                    if crate::trust::parse_pairing_code(&code).is_none() {
                        let _ = req.reply.send(fail(format!(
                            "\"{code}\" is not a pairing code (four words, like river-salt-owl-piano)"
                        )));
                        return;
                    }
                    let handle = self.internal_handle();
                    tokio::spawn(async move {
                        let v = match handle.pair_join(node, &code, level, timeout).await {
                            Ok(id) => {
                                json!({"ok": true, "identity": id.to_string(), "level": level.as_str()})
                            }
                            Err(e) => json!({"ok": false, "error": e.to_string()}),
                        };
                        let _ = req.reply.send(v);
                    });
                }
            },
            "trust_list" => {
                let entries: Vec<Value> = self
                    .guard
                    .trust
                    .list()
                    .map(|(h, l)| json!({"identity": h.to_string(), "level": l.as_str()}))
                    .collect();
                let _ = req.reply.send(json!({
                    "ok": true, "entries": entries,
                    "default": self.guard.trust.default_level().as_str(),
                }));
            }
            "emit" if body.get("to").is_some() => match dest_of(body, "to") {
                Err(e) => {
                    let _ = req.reply.send(e);
                }
                Ok(node) => {
                    let event = body
                        .get("event")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let payload = body.get("payload").cloned().unwrap_or(Value::Null);
                    let ttl = Duration::from_millis(
                        body.get("ttl_ms")
                            .and_then(Value::as_u64)
                            .unwrap_or(3_600_000),
                    );
                    let handle = self.internal_handle();
                    tokio::spawn(async move {
                        let v = match handle.emit_to(node, &event, &payload, ttl).await {
                            Ok(()) => json!({"ok": true, "queued": true}),
                            Err(e) => json!({"ok": false, "error": e.to_string()}),
                        };
                        let _ = req.reply.send(v);
                    });
                }
            },
            "emit" => {
                let event = body.get("event").and_then(Value::as_str).unwrap_or("");
                let payload = body.get("payload").cloned().unwrap_or(Value::Null);
                let v = match crate::frame::names::check_event(event) {
                    Err(e) => json!({"ok": false, "error": format!("event name {e}")}),
                    Ok(()) => {
                        let sent = self.emit_event(now, event, &payload);
                        json!({"ok": true, "subscribers": sent})
                    }
                };
                let _ = req.reply.send(v);
            }
            "exec_result" => {
                let handle = body.get("handle").and_then(Value::as_str).unwrap_or("");
                let v = match u64::from_str_radix(handle, 16) {
                    Err(_) => {
                        json!({"ok": false, "error": format!("invalid handle \"{handle}\" (16 hex digits)")})
                    }
                    Ok(h) => {
                        let name = crate::commands::job_event(h, "complete");
                        let stored = self
                            .bundles
                            .get_job(h)
                            .ok()
                            .flatten()
                            .and_then(|r| serde_json::from_slice::<Value>(&r).ok());
                        match (self.recent_events.find(&name), stored) {
                            (Some(e), _) => {
                                json!({"ok": true, "state": "done", "outcome": e["payload"]})
                            }
                            (None, Some(r)) => {
                                json!({"ok": true, "state": "done", "outcome": r["outcome"]})
                            }
                            (None, None) => json!({"ok": true, "state": "pending"}),
                        }
                    }
                };
                let _ = req.reply.send(v);
            }
            "events" => {
                let cursor = body.get("cursor").and_then(Value::as_u64).unwrap_or(0);
                let (events, cursor) = self.recent_events.since(cursor);
                let _ = req
                    .reply
                    .send(json!({"ok": true, "events": events, "cursor": cursor}));
            }
            "subscribe" => match dest() {
                Err(e) => {
                    let _ = req.reply.send(e);
                }
                Ok(node) => {
                    let pattern = body
                        .get("pattern")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let handle = self.internal_handle();
                    tokio::spawn(async move {
                        let v = match handle.subscribe_remote(node, &pattern, timeout).await {
                            Ok(()) => json!({"ok": true}),
                            Err(e) => json!({"ok": false, "error": e.to_string()}),
                        };
                        let _ = req.reply.send(v);
                    });
                }
            },
            "announce" => {
                self.announce(now);
                let _ = req
                    .reply
                    .send(json!({"ok": true, "destination": self.grid_destination.to_string()}));
            }
            "link_open" => match dest() {
                Err(e) => {
                    let _ = req.reply.send(e);
                }
                Ok(destination) => self.link_op(
                    now,
                    LinkOp::Open {
                        destination,
                        timeout,
                    },
                    Reply::json(req.reply),
                ),
            },
            "cp" => {
                let path = body
                    .get("path")
                    .and_then(Value::as_str)
                    .map(std::path::PathBuf::from);
                let r = match (path, dest()) {
                    (Some(p), Ok(d)) => self.start_send_file(now, &p, d),
                    (None, _) => Err("missing path".to_string()),
                    (_, Err(e)) => Err(e["error"]
                        .as_str()
                        .unwrap_or("invalid destination")
                        .to_string()),
                };
                let _ = req.reply.send(match r {
                    Ok(id) => json!({"ok": true, "id": id}),
                    Err(e) => fail(e),
                });
            }
            "cp_status" => {
                let id = body.get("id").and_then(Value::as_str).unwrap_or("");
                let _ = req.reply.send(self.transfer_json(id, now));
            }
            "received" => {
                let files: Vec<Value> = self.received_files.iter().cloned().collect();
                let _ = req.reply.send(json!({"ok": true, "files": files}));
            }
            "links" => {
                let links: Vec<Value> = self.transport.links().map(|l| link_json(&l)).collect();
                let _ = req.reply.send(json!({"ok": true, "links": links}));
            }
            "link_recv" => match link_of(body) {
                Err(e) => {
                    let _ = req.reply.send(fail(e));
                }
                Ok(link) => {
                    let packets: Vec<Value> = self
                        .take_link_packets(&link)
                        .into_iter()
                        .map(|p| value_json(&rmpv::Value::Binary(p)))
                        .collect();
                    let (messages, streams) = self.take_channel_inbox(&link);
                    let _ = req.reply.send(json!({
                        "ok": true, "link": link.to_string(), "packets": packets,
                        "messages": messages, "streams": streams,
                    }));
                }
            },
            "link_send" | "link_request" | "link_close" | "link_identify" | "link_channel"
            | "link_stream" => match parse_link_op(cmd, body, timeout) {
                Ok(op) => self.link_op(now, op, Reply::json(req.reply)),
                Err(e) => {
                    let _ = req.reply.send(fail(e));
                }
            },
            other => {
                let _ = req
                    .reply
                    .send(json!({"ok": false, "error": format!("unknown command \"{other}\"")}));
            }
        }
    }

    /// Grid nodes heard, with their capabilities (nearest first, at most 100).
    fn peers_json(&self, now: Instant) -> Value {
        let mut peers: Vec<_> = self.peers.iter().collect();
        peers.sort_by_key(|(_, (_, hops, _))| *hops);
        Value::Array(
            peers
                .into_iter()
                .take(100)
                .map(|(node, (caps, hops, seen))| {
                    json!({
                        "node": node.to_string(), "hops": hops,
                        "seen_s_ago": now.saturating_since(*seen).as_secs(),
                        "capabilities": caps.to_json(),
                    })
                })
                .collect(),
        )
    }

    /// An API handle for tasks the control socket starts.
    fn internal_handle(&self) -> crate::api::NodeHandle {
        crate::api::NodeHandle::internal(
            self.calls.clone(),
            self.events.clone(),
            self.identity.hash(),
            self.grid_destination,
        )
    }

    pub(super) fn status_json(&self, now: Instant) -> Value {
        let interfaces: Vec<Value> = self
            .transport
            .interfaces()
            .map(|(id, name, online, s)| {
                json!({
                    "id": id.0, "name": name, "online": online,
                    "rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes,
                    "tx_packets": s.tx_packets, "tx_bytes": s.tx_bytes,
                    "rx_announces": s.rx_announces, "tx_announces": s.tx_announces,
                    "ifac_violations": s.ifac_violations,
                    "protocol_violations": s.protocol_violations,
                    "filtered": s.filtered,
                    "held_announces": s.held_announces,
                    "queued_announces": s.queued_announces,
                    "radio": self.radio_stats.get(&id),
                })
            })
            .collect();
        let mut paths: Vec<Value> = self
            .transport
            .paths()
            .take(1000)
            .map(|p| {
                json!({"destination": p.destination.to_string(), "hops": p.hops,
                       "next_hop": p.next_hop.to_string(), "interface": p.interface.0})
            })
            .collect();
        paths.sort_by(|a, b| a["hops"].as_u64().cmp(&b["hops"].as_u64()));
        let st = self.transport.stats();
        json!({
            "ok": true,
            "identity": self.identity.hash().to_string(),
            "destination": self.grid_destination.to_string(),
            "transport": self.transport.transport_enabled(),
            "shared_instance": self.shared_instance,
            "bundles": self.bundles_json(),
            "capabilities": self.capabilities.to_json(),
            "peers": self.peers_json(now),
            "local_clients": self.transport.local_client_count(),
            "uptime_s": now.saturating_since(self.started).as_secs(),
            "interfaces": interfaces,
            "path_count": self.transport.path_count(),
            "paths": paths,
            "links": self.transport.links().map(|l| link_json(&l)).collect::<Vec<_>>(),
            "link_table": self.transport.link_table_len(),
            "known_destinations": self.transport.known_destination_count(),
            "stats": {
                "forwarded": st.forwarded, "rebroadcasts": st.rebroadcasts,
                "delivered": st.delivered, "undecryptable": st.undecryptable,
                "protocol_violations": st.protocol_violations,
                "ifac_violations": st.ifac_violations,
                "unknown_link_packets": st.unknown_link_packets,
                "dropped_link_requests": st.dropped_link_requests,
                "evicted_half_open_links": st.evicted_half_open_links,
                "dropped_outbound": self.dropped_outbound + st.dropped_transmits,
            },
        })
    }
}
