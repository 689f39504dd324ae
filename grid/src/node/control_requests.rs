//! Control requests from the CLI: each typed [`Request`] is answered here, at once or
//! by a waiter or task when it needs the network.

use std::time::Duration;

use rns_core::transport::LinkInfo;
use rns_core::{rmpv, AddressHash, Instant};
use serde_json::Value;
use tokio::sync::oneshot;

use super::link_ops::LinkOp;
use super::links::value_json;
use super::reply::Reply;
use super::waiters::Wait;
use super::Node;
use crate::clock;
use crate::control::response::{self, ok};
use crate::control::{ControlRequest, Request};
use crate::Error;

/// A link's summary, for `links` and `status`.
fn link_summary(l: &LinkInfo) -> response::LinkSummary {
    response::LinkSummary {
        link: l.id,
        destination: l.destination,
        initiator: l.initiator,
        state: format!("{:?}", l.state).to_lowercase(),
        mtu: l.mtu,
        rtt_ms: l.rtt.map(|r| r.as_secs_f64() * 1e3),
        remote_identity: l.remote_identity,
        channel_window: l.channel_window,
    }
}

/// Answer a control request: the JSON when it succeeded, the typed refusal when not.
fn answer(tx: oneshot::Sender<Value>, r: Result<Value, Error>) {
    let _ = tx.send(r.unwrap_or_else(|e| e.to_json()));
}

/// A control request's link operation, with its payload read (`None` for the others).
fn link_op_of(request: &Request, timeout: Duration) -> Option<Result<LinkOp, Error>> {
    let op = match request {
        Request::LinkSend { link, payload, .. } => payload.bytes().map(|data| LinkOp::Send {
            link: *link,
            data,
            timeout,
        }),
        Request::LinkRequest {
            link,
            path,
            payload,
            ..
        } => payload.bytes().map(|data| LinkOp::Request {
            link: *link,
            path: path.clone(),
            data: rmpv::Value::Binary(data),
            timeout,
        }),
        Request::LinkChannel {
            link,
            msgtype,
            payload,
            ..
        } => payload.bytes().map(|data| LinkOp::Channel {
            link: *link,
            msgtype: *msgtype,
            data,
            timeout,
        }),
        Request::LinkStream {
            link,
            stream_id,
            payload,
            eof,
            ..
        } => payload.bytes().map(|data| LinkOp::Stream {
            link: *link,
            stream_id: *stream_id,
            data,
            eof: *eof,
            timeout,
        }),
        Request::LinkIdentify { link } => Ok(LinkOp::Identify { link: *link }),
        Request::LinkClose { link } => Ok(LinkOp::Close { link: *link }),
        Request::LinkOpen { destination, .. } => Ok(LinkOp::Open {
            destination: *destination,
            timeout,
        }),
        _ => return None,
    };
    Some(op)
}

/// A trust level named in a request, refusing `blocked` where trust is being granted.
fn granted(level: crate::trust::TrustLevel) -> Result<crate::trust::TrustLevel, Error> {
    match level {
        crate::trust::TrustLevel::Blocked => Err(Error::BadRequest(
            "pairing grants trust; blocked makes no sense".into(),
        )),
        l => Ok(l),
    }
}

impl Node {
    /// Where the path to `d` leads, or [`Error::NoPath`].
    pub(super) fn path_found(&self, d: &AddressHash) -> Result<response::PathFound, Error> {
        let p = self.transport.path(d).ok_or_else(|| Error::NoPath {
            destination: *d,
            message: format!("no path to {d}"),
        })?;
        let iface = self
            .transport
            .interfaces()
            .find(|(i, ..)| *i == p.interface)
            .map(|(_, n, ..)| n.to_string())
            .unwrap_or_default();
        Ok(response::PathFound {
            destination: *d,
            identity: self.transport.recall_identity(d).map(|i| i.hash()),
            app_data: self.transport.recall_app_data(d).map(hex::encode),
            hops: p.hops,
            next_hop: p.next_hop,
            interface: iface,
            expires_in_s: p.expires.saturating_since(clock::now()).as_secs(),
        })
    }

    pub(super) fn on_control(&mut self, now: Instant, req: ControlRequest) {
        let ControlRequest { request, reply } = req;
        let timeout = request.timeout();
        if let Some(op) = link_op_of(&request, timeout) {
            return match op {
                Ok(op) => self.link_op(now, op, Reply::json(reply)),
                Err(e) => answer(reply, Err(e)),
            };
        }
        match request {
            Request::Status => {
                // The loop's figures now; the bundle store's read on a blocking thread.
                let (status, figures) = (self.status(now), self.bundle_figures());
                self.dtn.store.run(move |store| {
                    answer(reply, Ok(ok(&status(figures.read(store)))));
                });
            }
            Request::Path { destination, .. } => {
                if self.transport.path(&destination).is_some() {
                    answer(reply, self.path_found(&destination).map(|p| ok(&p)));
                } else {
                    self.transport.request_path(now, &destination, None);
                    self.wait(now + timeout, Reply::json(reply), Wait::Path(destination));
                }
            }
            Request::Probe {
                destination,
                size,
                data,
                data_hex,
                ..
            } => {
                let mdu = rns_core::packet::ENCRYPTED_MDU;
                let payload = match (data_hex, data) {
                    (Some(h), _) => match hex::decode(&h) {
                        Ok(b) => b,
                        Err(e) => {
                            return answer(reply, Err(Error::BadRequest(format!("data_hex: {e}"))))
                        }
                    },
                    (None, Some(text)) => text.into_bytes(),
                    (None, None) => {
                        let size = size.unwrap_or(16).clamp(1, mdu as u64);
                        let mut p = vec![0u8; size as usize];
                        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut p);
                        p
                    }
                };
                if payload.is_empty() || payload.len() > mdu {
                    let e = format!("probe payload must be 1..={mdu} bytes");
                    return answer(reply, Err(Error::BadRequest(e)));
                }
                if self.transport.path(&destination).is_none() {
                    self.transport.request_path(now, &destination, None);
                }
                self.wait(
                    now + timeout,
                    Reply::json(reply),
                    Wait::ProbePath {
                        destination,
                        payload,
                    },
                );
            }
            Request::Exec {
                destination,
                command,
                params,
                ttl_ms,
                detach,
                ..
            } => {
                let route = match destination.parse::<crate::routing::Route>() {
                    Ok(r) => r,
                    Err(e) => return answer(reply, Err(Error::BadRequest(e.to_string()))),
                };
                let handle = self.internal_handle();
                let options = crate::api::ExecOptions {
                    timeout,
                    ttl: ttl_ms.map(Duration::from_millis),
                };
                tokio::spawn(async move {
                    let nodes = match handle.resolve_routes(route, &command).await {
                        Ok(nodes) => nodes,
                        Err(e) => return answer(reply, Err(e)),
                    };
                    let first = nodes.first().copied().unwrap_or(handle.destination());
                    let (node, r) = if detach {
                        let r = handle
                            .execute_detached_with(first, &command, params, options)
                            .await
                            .map(|h| {
                                let handle = format!("{h:016x}");
                                ok(&response::Started {
                                    node: first,
                                    handle,
                                })
                            });
                        (first, r)
                    } else {
                        let (node, r) = handle
                            .execute_first(&nodes, &command, &params, options)
                            .await;
                        (
                            node,
                            r.map(|result| ok(&response::Executed { node, result })),
                        )
                    };
                    // A refusal names the node too, so the caller knows where it failed.
                    let v = r.unwrap_or_else(|e| {
                        let mut v = e.to_json();
                        v["node"] = Value::String(node.to_string());
                        v
                    });
                    let _ = reply.send(v);
                });
            }
            Request::Trust { identity, level } => {
                let r = match level {
                    None => Ok(self.guard.trust.level(&identity)),
                    Some(level) => self
                        .guard
                        .trust
                        .set(identity, level)
                        .map(|()| level)
                        .map_err(|e| Error::Failed(e.to_string())),
                };
                answer(
                    reply,
                    r.map(|level| ok(&response::TrustOf { identity, level })),
                );
            }
            Request::PairOffer { level, window_s } => {
                let window = window_s.map_or(crate::proto::pairing::WINDOW, Duration::from_secs);
                let r = granted(level).map(|level| {
                    ok(&response::PairOffered {
                        code: self.pair_offer(now, level, window),
                        node: self.grid_destination,
                        level,
                        expires_in_s: window.as_secs(),
                        tries: crate::proto::pairing::TRIES,
                    })
                });
                answer(reply, r);
            }
            Request::PairStatus => answer(reply, Ok(ok(&self.pair_status(now)))),
            Request::PairJoin {
                destination,
                code,
                level,
                ..
            } => {
                if crate::trust::parse_pairing_code(&code).is_none() {
                    let e = format!(
                        "\"{code}\" is not a pairing code (four words, like river-salt-owl-piano)"
                    );
                    return answer(reply, Err(Error::BadRequest(e)));
                }
                let handle = self.internal_handle();
                tokio::spawn(async move {
                    let r = handle
                        .pair_join(destination, &code, level, timeout)
                        .await
                        .map(|identity| ok(&response::TrustOf { identity, level }));
                    answer(reply, r);
                });
            }
            Request::TrustList => {
                let entries = self
                    .guard
                    .trust
                    .list()
                    .map(|(identity, level)| response::TrustOf { identity, level })
                    .collect();
                let default = self.guard.trust.default_level();
                answer(reply, Ok(ok(&response::TrustList { entries, default })));
            }
            Request::Emit {
                event,
                payload,
                to: Some(node),
                ttl_ms,
            } => {
                let ttl = Duration::from_millis(ttl_ms.unwrap_or(3_600_000));
                let handle = self.internal_handle();
                tokio::spawn(async move {
                    let r = handle.emit_to(node, &event, &payload, ttl).await;
                    answer(reply, r.map(|()| ok(&response::Queued { queued: true })));
                });
            }
            Request::Emit { event, payload, .. } => {
                let r = match crate::frame::names::check_event(&event) {
                    Err(e) => Err(Error::BadRequest(format!("event name {e}"))),
                    Ok(()) => {
                        let sent = self.emit_event(now, &event, &payload);
                        Ok(ok(&response::Emitted { subscribers: sent }))
                    }
                };
                answer(reply, r);
            }
            Request::ExecResult { handle } => {
                let r = match u64::from_str_radix(&handle, 16) {
                    Err(_) => Err(Error::BadRequest(format!(
                        "invalid handle \"{handle}\" (16 hex digits)"
                    ))),
                    Ok(h) => {
                        let name = crate::commands::job_event(h, "complete");
                        if let Some(mut e) = self.grid.recent_events.find(&name) {
                            let outcome = e["payload"].take();
                            Ok(ok(&response::JobResult::Done { outcome }))
                        } else {
                            // Not among recent events: the job records, read off the loop.
                            return self.dtn.store.run(move |store| {
                                let stored = store
                                    .get_job(h)
                                    .ok()
                                    .flatten()
                                    .and_then(|r| serde_json::from_slice::<Value>(&r).ok());
                                let result = match stored {
                                    Some(mut r) => response::JobResult::Done {
                                        outcome: r["outcome"].take(),
                                    },
                                    None => response::JobResult::Pending,
                                };
                                answer(reply, Ok(ok(&result)));
                            });
                        }
                    }
                };
                answer(reply, r);
            }
            Request::Events { cursor } => {
                let (events, cursor) = self.grid.recent_events.since(cursor);
                answer(reply, Ok(ok(&response::Events { events, cursor })));
            }
            Request::Subscribe {
                destination,
                pattern,
                ..
            } => {
                let handle = self.internal_handle();
                tokio::spawn(async move {
                    let r = handle
                        .subscribe_remote(destination, &pattern, timeout)
                        .await;
                    answer(reply, r.map(|()| ok(&response::Accepted {})));
                });
            }
            Request::DhtProvide { ref key } | Request::DhtFind { ref key, .. } => {
                let what = match &request {
                    Request::DhtFind { want, .. } => {
                        super::dht::DhtLookup::Find(want.unwrap_or(1).clamp(1, 20) as usize)
                    }
                    _ => super::dht::DhtLookup::Provide,
                };
                let key: crate::proto::dht::key::Key = match key.parse() {
                    Ok(k) => k,
                    Err(e) => return answer(reply, Err(Error::BadRequest(e.to_string()))),
                };
                let handle = self.internal_handle();
                tokio::spawn(async move {
                    let r = match what {
                        super::dht::DhtLookup::Provide => handle.dht_provide(key).await,
                        super::dht::DhtLookup::Find(want) => {
                            handle.dht_find_providers(key, want).await
                        }
                    };
                    answer(reply, r.map(|o| ok(&super::dht::lookup_answer(key, &o))));
                });
            }
            Request::Catalog => {
                let mut entries: Vec<_> = self
                    .catalog_entries()
                    .iter()
                    .map(response::CatalogEntry::of)
                    .collect();
                entries.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
                let (neighbours, radio_neighbours) = self.gossip_neighbours();
                answer(
                    reply,
                    Ok(ok(&response::Catalog {
                        entries,
                        neighbours,
                        radio_neighbours,
                        radio_skipped: self.gossip.radio_skipped,
                    })),
                );
            }
            Request::DropPath { destination } => {
                let dropped = self.transport.drop_path(&destination);
                answer(reply, Ok(ok(&response::PathDropped { dropped })));
            }
            Request::Announce => {
                self.announce(now);
                let destination = self.grid_destination;
                answer(reply, Ok(ok(&response::Announced { destination })));
            }
            Request::Cp { path, destination } => {
                let r = self
                    .start_send_file(now, &path, destination)
                    .map(|id| ok(&response::CpStarted { id }));
                answer(reply, r);
            }
            Request::CpStatus { id } => {
                answer(reply, self.transfer_status(&id, now).map(|s| ok(&s)));
            }
            Request::Received => {
                let files = self.files.received_files.iter().cloned().collect();
                answer(reply, Ok(ok(&response::Received { files })));
            }
            Request::Links => {
                let links = self.transport.links().map(|l| link_summary(&l)).collect();
                answer(reply, Ok(ok(&response::Links { links })));
            }
            Request::LinkRecv { link } => {
                let packets: Vec<Value> = self
                    .take_link_packets(&link)
                    .into_iter()
                    .map(|p| value_json(&rmpv::Value::Binary(p)))
                    .collect();
                let (messages, streams) = self.take_channel_inbox(&link);
                let inbox = response::Inbox {
                    link,
                    packets,
                    messages,
                    streams,
                };
                answer(reply, Ok(ok(&inbox)));
            }
            // The link operations were answered above.
            other => answer(
                reply,
                Err(Error::BadRequest(format!(
                    "\"{}\" is not served here",
                    other.name()
                ))),
            ),
        }
    }

    /// Grid nodes heard, with their capabilities (nearest first, at most 100).
    fn peers(&self, now: Instant) -> Vec<response::Peer> {
        let mut peers: Vec<_> = self.grid.peers.iter().collect();
        peers.sort_by_key(|(_, (_, hops, _))| *hops);
        peers
            .into_iter()
            .take(100)
            .map(|(node, (caps, hops, seen))| response::Peer {
                node: *node,
                hops: *hops,
                seen_s_ago: now.saturating_since(*seen).as_secs(),
                capabilities: caps.summary(),
            })
            .collect()
    }

    /// An API handle for tasks the control socket starts.
    pub(super) fn internal_handle(&self) -> crate::api::NodeHandle {
        crate::api::NodeHandle::internal(
            self.calls.clone(),
            self.events.clone(),
            self.identity.hash(),
            self.grid_destination,
            self.governor.clone(),
        )
    }

    /// The answer to `status`, but for the bundle store's figures (which are read off the
    /// loop and handed to the returned function).
    pub(super) fn status(
        &self,
        now: Instant,
    ) -> impl FnOnce(response::Bundles) -> response::Status + Send + 'static {
        let up: Vec<(&str, bool)> = self
            .transport
            .interfaces()
            .map(|(_, name, online, _)| (name, online))
            .collect();
        let configured = super::interfaces::with_connections(&self.interfaces.configured, &up);
        let interfaces = self
            .transport
            .interfaces()
            .map(|(id, name, online, s)| response::InterfaceStatus {
                id: id.0,
                name: name.to_string(),
                online,
                stats: s,
                radio: self.interfaces.radio.get(&id).cloned(),
            })
            .collect();
        let mut paths: Vec<response::PathSummary> = self
            .transport
            .paths()
            .take(1000)
            .map(|p| response::PathSummary {
                destination: p.destination,
                hops: p.hops,
                next_hop: p.next_hop,
                interface: p.interface.0,
                expires_in_s: p.expires.saturating_since(now).as_secs(),
            })
            .collect();
        paths.sort_by_key(|p| p.hops);
        let st = self.transport.stats();
        let status = response::Status {
            identity: self.identity.hash(),
            destination: self.grid_destination,
            transport: self.transport.transport_enabled(),
            shared_instance: self.shared_instance.clone(),
            bundles: response::Bundles::Unreadable {
                error: String::new(),
            },
            capabilities: self.grid.layer.capabilities.summary(),
            peers: self.peers(now),
            local_clients: self.transport.local_client_count(),
            uptime_s: now.saturating_since(self.started).as_secs(),
            configured,
            interfaces,
            path_count: self.transport.path_count(),
            paths,
            links: self.transport.links().map(|l| link_summary(&l)).collect(),
            link_table: self.transport.link_table_len(),
            known_destinations: self.transport.known_destination_count(),
            stats: response::TrafficStats {
                forwarded: st.forwarded,
                rebroadcasts: st.rebroadcasts,
                delivered: st.delivered,
                undecryptable: st.undecryptable,
                protocol_violations: st.protocol_violations,
                ifac_violations: st.ifac_violations,
                unknown_link_packets: st.unknown_link_packets,
                dropped_link_requests: st.dropped_link_requests,
                evicted_half_open_links: st.evicted_half_open_links,
                dropped_outbound: self.interfaces.dropped + st.dropped_transmits,
            },
            governor: Some(self.governor.summary()),
        };
        // The placeholder above never leaves: the store's figures replace it.
        move |bundles| response::Status { bundles, ..status }
    }
}
