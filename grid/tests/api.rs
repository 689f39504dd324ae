//! Two nodes embedded in one process, talking over loopback TCP through the public API.

use std::time::Duration;

use grid::api::{self, NodeEvent, NodeHandle};
use grid::state::StateDir;
use grid_test_support::{free_port, TempDir};
use rns_core::rmpv::Value;
use tokio::sync::broadcast;

const T: Duration = Duration::from_secs(20);

fn node_dir(tag: &str, config: &str) -> TempDir {
    let d = TempDir::new(&format!("api-{tag}"));
    std::fs::write(d.0.join("config.toml"), config).unwrap();
    d
}

/// The next event `pick` accepts, within `T`.
async fn next<T>(
    rx: &mut broadcast::Receiver<NodeEvent>,
    pick: impl Fn(NodeEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(T, async {
        loop {
            match rx.recv().await {
                Ok(e) => {
                    if let Some(t) = pick(e) {
                        return t;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => panic!("lagged {n} events"),
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("event in time")
}

/// `n` letters that do not compress well (a resource carries them nearly as they are).
fn noise(n: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect()
}

/// State directories of a TCP server A and a client B on a fresh port (no shared
/// instance), each config with `a_extra` / `b_extra` appended.
fn server_and_client(tag: &str, a_extra: &str, b_extra: &str) -> (TempDir, TempDir) {
    let port = free_port();
    let node = "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n";
    let a = node_dir(
        &format!("{tag}-a"),
        &format!(
            "{node}[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n{a_extra}"
        ),
    );
    let b = node_dir(
        &format!("{tag}-b"),
        &format!(
            "{node}[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n{b_extra}"
        ),
    );
    (a, b)
}

/// The newest `limit` audit records in `dir`, once `done` holds for them: the node hands
/// records to a writer thread, so one can land a moment after the answer that follows it.
async fn audit_once(
    dir: &TempDir,
    limit: usize,
    done: impl Fn(&[grid::audit::AuditEntry]) -> bool,
) -> Vec<grid::audit::AuditEntry> {
    let path = dir.0.join("audit.jsonl");
    tokio::time::timeout(T, async {
        loop {
            let entries = grid::audit::read_last(&path, limit).unwrap();
            if done(&entries) {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the audit records land")
}

async fn pair(tag: &str) -> (NodeHandle, NodeHandle, TempDir, TempDir) {
    let port = free_port();
    let a = node_dir(&format!("{tag}-a"), &format!(
        "[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let b = node_dir(&format!("{tag}-b"), &format!(
        "[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
    ));
    let na = api::spawn(StateDir::resolve(Some(&a.0))).await.unwrap();
    let nb = api::spawn(StateDir::resolve(Some(&b.0))).await.unwrap();
    (na, nb, a, b)
}

#[tokio::test(flavor = "current_thread")]
async fn the_control_vocabulary_runs_in_process_with_typed_errors() {
    use grid::control::{Payload, Request};
    use grid::Error;
    let (a, b, _da, _db) = pair("vocab").await;
    let status = a.control(Request::Status).await.unwrap();
    assert_eq!(status["destination"], a.destination().to_string());
    let open = Request::LinkOpen {
        destination: b.destination(),
        timeout_ms: Some(15_000),
    };
    let up = a.control(open).await.unwrap();
    let link: rns_core::AddressHash = up["link"].as_str().unwrap().parse().unwrap();
    let send = |link| Request::LinkSend {
        link,
        payload: Payload::text("hi"),
        timeout_ms: Some(5_000),
    };
    assert!(a.control(send(link)).await.unwrap()["rtt_ms"].is_number());
    a.control(Request::LinkClose { link }).await.unwrap();
    // The kind of failure is a variant, not words.
    let e = a.control(send(link)).await.unwrap_err();
    assert!(matches!(e, Error::LinkClosed(_)), "{e:?}");
    let nowhere = rns_core::AddressHash([7; 16]);
    let path = Request::Path {
        destination: nowhere,
        timeout_ms: Some(300),
    };
    let e = a.control(path).await.unwrap_err();
    assert!(
        matches!(&e, Error::NoPath { destination, .. } if *destination == nowhere),
        "{e:?}"
    );
    let e = a
        .control(Request::ExecResult {
            handle: "nope".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn links_requests_channels_streams_and_resources_through_the_api() {
    let (a, b, _da, _db) = pair("full").await;
    let mut events = b.subscribe();
    b.register_handler("/echo", |req| Some(req.data.clone()))
        .await
        .unwrap();

    let up = a.open_link(b.destination(), T).await.unwrap();
    assert_eq!(up.mtu, 16384);
    let (link, initiator) = next(&mut events, |e| match e {
        NodeEvent::LinkEstablished {
            link, initiator, ..
        } => Some((link, initiator)),
        _ => None,
    })
    .await;
    assert_eq!((link, initiator), (up.link, false));

    // A structured request survives the round trip exactly.
    let value = Value::Map(vec![
        (Value::from("n"), Value::from(42)),
        (Value::from("bytes"), Value::Binary(vec![0, 255, 7])),
    ]);
    let answer = a.request(up.link, "/echo", value.clone(), T).await.unwrap();
    assert_eq!(answer, value);
    // An unknown path gets no answer.
    let short = Duration::from_millis(1500);
    assert!(a
        .request(up.link, "/nothing", Value::Nil, short)
        .await
        .is_err());

    let rtt = a.send(up.link, b"packet", T).await.unwrap();
    assert!(rtt < T);
    let got = next(&mut events, |e| match e {
        NodeEvent::Packet { data, .. } => Some(data),
        _ => None,
    })
    .await;
    assert_eq!(got, b"packet");

    a.channel_send(up.link, 0x0200, b"message", T)
        .await
        .unwrap();
    let (t, d) = next(&mut events, |e| match e {
        NodeEvent::ChannelMessage { msgtype, data, .. } => Some((msgtype, data)),
        _ => None,
    })
    .await;
    assert_eq!((t, &d[..]), (0x0200, &b"message"[..]));

    let stream: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    a.stream_write(up.link, 3, &stream, true, T).await.unwrap();
    let mut got = Vec::new();
    loop {
        let (data, eof) = next(&mut events, |e| match e {
            NodeEvent::StreamData {
                stream_id: 3,
                data,
                eof,
                ..
            } => Some((data, eof)),
            _ => None,
        })
        .await;
        got.extend(data);
        if eof {
            break;
        }
    }
    assert_eq!(got, stream);

    // Resources are refused until the receiver accepts them.
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    assert!(a
        .send_resource(up.link, blob.clone(), None, short)
        .await
        .is_err());
    b.accept_resources(true).await.unwrap();
    let meta = Value::Map(vec![(Value::from("name"), Value::from("blob"))]);
    a.send_resource(up.link, blob.clone(), Some(meta.clone()), T)
        .await
        .unwrap();
    let (data, metadata) = next(&mut events, |e| match e {
        NodeEvent::Resource { data, metadata, .. } => Some((data, metadata)),
        _ => None,
    })
    .await;
    assert_eq!(data, blob);
    assert_eq!(metadata, Some(meta));
    // Compression: zeros shrink to a part or two; with it off they take hundreds.
    let zeros = vec![0u8; 200_000];
    let mut parts = Vec::new();
    for compress in [true, false] {
        let options = grid::api::ResourceOptions {
            metadata: None,
            compress,
            timeout: T,
        };
        a.send_resource_with(up.link, zeros.clone(), options)
            .await
            .unwrap();
        let total = next(&mut events, |e| match e {
            NodeEvent::ResourceProgress {
                sending: false,
                parts_total,
                ..
            } => Some(parts_total),
            _ => None,
        })
        .await;
        let data = next(&mut events, |e| match e {
            NodeEvent::Resource { data, .. } => Some(data),
            _ => None,
        })
        .await;
        assert_eq!(data, zeros);
        parts.push(total);
    }
    assert!(parts[0] * 10 < parts[1], "{parts:?}");
    let too_big = vec![0u8; 2 * 1024 * 1024];
    let e = a
        .send_resource(up.link, too_big, None, T)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("send_reader"), "{e}");

    a.close_link(up.link).await.unwrap();
    next(&mut events, |e| match e {
        NodeEvent::LinkClosed { link, .. } if link == up.link => Some(()),
        _ => None,
    })
    .await;
    // (Other links may be up: catalog gossip between the two neighbours opens its own.)
    assert!(!b.links().await.unwrap().iter().any(|l| l.id == up.link));
    a.shutdown();
    b.shutdown();
}

#[tokio::test(flavor = "current_thread")]
async fn calls_fail_cleanly_for_unknown_links_and_after_shutdown() {
    let (a, _b, _da, _db) = pair("errors").await;
    let bogus = "00112233445566778899aabbccddeeff".parse().unwrap();
    let e = a.send(bogus, b"x", T).await.unwrap_err();
    assert!(e.to_string().contains("no such link"), "{e}");
    let e = a.channel_send(bogus, 0xF000, b"x", T).await.unwrap_err();
    assert!(e.to_string().contains("no such link"), "{e}");
    a.shutdown();
    // The node task winds down; calls then report that it stopped.
    let mut stopped = false;
    for _ in 0..100 {
        if a.links().await == Err(grid::Error::Stopped) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stopped);
}

#[tokio::test(flavor = "current_thread")]
async fn a_program_attaches_to_the_node_serving_the_shared_instance() {
    let name = format!("grid-api-{}", std::process::id());
    let prog_dir = node_dir("attach-program", "");
    let err = api::attach(StateDir::resolve(Some(&prog_dir.0)), &name)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, grid::node::NodeError::NoSharedInstance(n) if *n == name),
        "{err}"
    );

    // A node with no network interfaces at all: the program can only reach it locally.
    let node_dir = node_dir(
        "attach-node",
        &format!("[node]\nannounce_interval = \"1h\"\ninstance_name = \"{name}\"\n"),
    );
    let node = api::spawn(StateDir::resolve(Some(&node_dir.0)))
        .await
        .unwrap();
    node.register_handler("/echo", |req| Some(req.data.clone()))
        .await
        .unwrap();
    let program = api::attach(StateDir::resolve(Some(&prog_dir.0)), &name)
        .await
        .unwrap();
    assert_ne!(program.identity(), node.identity());
    program
        .register_handler("/who", |_| Some(Value::from("program")))
        .await
        .unwrap();

    let up = program.open_link(node.destination(), T).await.unwrap();
    let answer = program
        .request(up.link, "/echo", Value::from("via the local socket"), T)
        .await
        .unwrap();
    assert_eq!(answer, Value::from("via the local socket"));

    let up = node.open_link(program.destination(), T).await.unwrap();
    let answer = node.request(up.link, "/who", Value::Nil, T).await.unwrap();
    assert_eq!(answer, Value::from("program"));
    program.shutdown();
    node.shutdown();
}

#[tokio::test(flavor = "current_thread")]
async fn commands_run_on_a_node_one_transport_hop_away() {
    use grid::commands::{CommandCall, CommandError};
    use grid::frame::ErrorCode;
    use grid::Error;
    let port = free_port();
    let hub = node_dir("cmd-hub", &format!(
        "[node]\nannounce_interval = \"1h\"\ntransport = true\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let client = |tag: &str| {
        node_dir(tag, &format!(
            "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
        ))
    };
    let da = client("cmd-a");
    // C lets provisional peers (anyone it has not ranked) run its test commands.
    let dc = node_dir("cmd-c", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n[acl]\n\"test/*\" = \"provisional\"\n"
    ));
    let _b = api::spawn(StateDir::resolve(Some(&hub.0))).await.unwrap();
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let c = api::spawn(StateDir::resolve(Some(&dc.0))).await.unwrap();
    c.register_command(
        "test/echo",
        "echo the params and say who called",
        |call: CommandCall| async move {
            if call.params.is_null() {
                return Err(CommandError::bad_params("give me something"));
            }
            Ok(serde_json::json!({
                "params": call.params,
                "caller": call.caller.map(|h| h.to_string()),
                "big": noise(call.params["big"].as_u64().unwrap_or(0) as usize),
            }))
        },
    )
    .await
    .unwrap();

    let pong = a
        .execute(c.destination(), "grid/ping", &serde_json::Value::Null, T)
        .await
        .unwrap();
    assert_eq!(pong["pong"], true);
    assert_eq!(pong["node"], c.destination().to_string());

    let r = a
        .execute(
            c.destination(),
            "test/echo",
            &serde_json::json!({"n": 7}),
            T,
        )
        .await
        .unwrap();
    assert_eq!(r["params"]["n"], 7);
    assert_eq!(
        r["caller"],
        a.identity().to_string(),
        "the caller identified on the link"
    );
    // A result larger than a link packet travels as a resource; one over 1 MiB as
    // several resource segments.
    for size in [300_000, 2_000_000] {
        let r = a
            .execute(
                c.destination(),
                "test/echo",
                &serde_json::json!({"big": size}),
                Duration::from_secs(120),
            )
            .await
            .unwrap();
        assert!(
            r["big"].as_str() == Some(&noise(size)[..]),
            "{size}-byte result intact"
        );
    }

    let list = a
        .execute(c.destination(), "list", &serde_json::Value::Null, T)
        .await
        .unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"test/echo") && names.contains(&"grid/ping"),
        "{names:?}"
    );

    let e = a
        .execute(c.destination(), "test/nothing", &serde_json::Value::Null, T)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Remote {
                code: ErrorCode::UnknownCommand,
                ..
            }
        ),
        "{e}"
    );
    let e = a
        .execute(c.destination(), "test/echo", &serde_json::Value::Null, T)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Remote {
                code: ErrorCode::BadParams,
                ..
            }
        ),
        "{e}"
    );
    let caps = a
        .execute(
            c.destination(),
            "grid/capabilities",
            &serde_json::Value::Null,
            T,
        )
        .await
        .unwrap();
    assert!(caps["cpu_cores"].as_u64().unwrap() >= 1);
}

#[tokio::test(flavor = "current_thread")]
async fn events_reach_matching_remote_subscriptions_only() {
    let port = free_port();
    let da = node_dir("ev-a", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let client = |tag: &str| {
        node_dir(tag, &format!(
            "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
        ))
    };
    let (db, dc) = (client("ev-b"), client("ev-c"));
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let b = api::spawn(StateDir::resolve(Some(&db.0))).await.unwrap();
    let c = api::spawn(StateDir::resolve(Some(&dc.0))).await.unwrap();
    let (mut eb, mut ec) = (b.subscribe(), c.subscribe());
    b.subscribe_remote(a.destination(), "test:*", T)
        .await
        .unwrap();
    c.subscribe_remote(a.destination(), "other:*", T)
        .await
        .unwrap();

    let sent = a
        .emit("test:thing:done", serde_json::json!({"n": 1}))
        .await
        .unwrap();
    assert_eq!(sent, 1, "one matching remote subscription");
    let (node, event, payload) = next(&mut eb, |e| match e {
        NodeEvent::GridEvent {
            node,
            event,
            payload,
        } => Some((node, event, payload)),
        _ => None,
    })
    .await;
    assert_eq!(node, a.destination().to_string());
    assert_eq!(
        (event.as_str(), payload["n"].as_u64()),
        ("test:thing:done", Some(1))
    );

    assert_eq!(a.emit("other:x", serde_json::json!("hi")).await.unwrap(), 1);
    let event = next(&mut ec, |e| match e {
        NodeEvent::GridEvent { event, .. } => Some(event),
        _ => None,
    })
    .await;
    assert_eq!(
        event, "other:x",
        "C's first event is its own pattern's, not test:*"
    );
    // And B did not get other:x.
    let extra = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            if let Ok(NodeEvent::GridEvent { event, .. }) = eb.recv().await {
                return event;
            }
        }
    })
    .await;
    assert!(extra.is_err(), "B got {extra:?}");
    // Bad patterns and names are refused before anything is sent.
    assert!(a
        .emit("not an event", serde_json::Value::Null)
        .await
        .is_err());
    assert!(b
        .subscribe_remote(a.destination(), "x:**:", T)
        .await
        .is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn the_acl_denies_by_trust_level_and_both_sides_audit_it() {
    use grid::audit::{Direction, Outcome as Audited};
    use grid::frame::ErrorCode;
    use grid::trust::TrustLevel;
    use grid::Error;
    let (da, db) = server_and_client("acl", "", "[acl]\n\"test/secret\" = \"trusted\"\n");
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let b = api::spawn(StateDir::resolve(Some(&db.0))).await.unwrap();
    b.register_command("test/secret", "trusted peers only", |_| async {
        Ok(serde_json::json!("the secret"))
    })
    .await
    .unwrap();
    b.register_command("test/unlisted", "no rule: nobody remote", |_| async {
        Ok(serde_json::json!(1))
    })
    .await
    .unwrap();
    let null = serde_json::Value::Null;

    // A is provisional at B (never ranked): refused, with the reason.
    let e = a
        .execute(b.destination(), "test/secret", &null, T)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Remote { code: ErrorCode::Denied, message } if message.contains("trusted")),
        "{e}"
    );
    // Commands no rule covers are denied to everyone remote.
    let e = a
        .execute(b.destination(), "test/unlisted", &null, T)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Remote {
                code: ErrorCode::Denied,
                ..
            }
        ),
        "{e}"
    );
    // grid/ping is open to provisional peers.
    a.execute(b.destination(), "grid/ping", &null, T)
        .await
        .unwrap();

    // Both logs hold the denial.
    let has_secret = |es: &[grid::audit::AuditEntry]| es.iter().any(|e| e.command == "test/secret");
    let out = audit_once(&da, 10, has_secret).await;
    let denied_out = out
        .iter()
        .find(|e| e.command == "test/secret")
        .expect("A's record of the call");
    assert_eq!(
        (denied_out.direction, denied_out.outcome),
        (Direction::Out, Audited::Denied)
    );
    let inn = audit_once(&db, 10, has_secret).await;
    let denied_in = inn
        .iter()
        .find(|e| e.command == "test/secret")
        .expect("B's record of the call");
    assert_eq!(
        (denied_in.direction, denied_in.outcome),
        (Direction::In, Audited::Denied)
    );
    assert_eq!(denied_in.peer, a.identity().to_string());
    assert_eq!(denied_in.correlation, denied_out.correlation);

    // Trusted, A may.
    b.set_trust(a.identity(), TrustLevel::Trusted)
        .await
        .unwrap();
    let r = a
        .execute(b.destination(), "test/secret", &null, T)
        .await
        .unwrap();
    assert_eq!(r, "the secret");
    // Blocked, A gets nothing at all: not even a refusal.
    b.set_trust(a.identity(), TrustLevel::Blocked)
        .await
        .unwrap();
    let e = a
        .execute(b.destination(), "grid/ping", &null, Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(e.is_unreachable(), "silence, then a timeout: {e}");
    let inn = audit_once(&db, 20, |es| {
        es.last()
            .is_some_and(|e| e.command == "grid/ping" && e.outcome == Audited::Denied)
    })
    .await;
    assert_eq!(
        inn.last().map(|e| (e.command.as_str(), e.outcome)),
        Some(("grid/ping", Audited::Denied))
    );
    // The level survives a restart (trust.json).
    let stored = std::fs::read_to_string(db.0.join("trust.json")).unwrap();
    assert!(
        stored.contains(&a.identity().to_string()) && stored.contains("blocked"),
        "{stored}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_detached_command_reports_progress_and_completion_as_events() {
    use grid::commands::{job_event, CommandCall};
    let port = free_port();
    let da = node_dir("job-a", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let db = node_dir("job-b", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n[acl]\n\"test/*\" = \"provisional\"\n"
    ));
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let b = api::spawn(StateDir::resolve(Some(&db.0))).await.unwrap();
    b.register_command(
        "test/slow",
        "takes a while",
        |call: CommandCall| async move {
            call.progress
                .report(Some(0.5), serde_json::json!({"step": 1}));
            tokio::time::sleep(Duration::from_millis(300)).await;
            // Reports right before the result still arrive before it, in order.
            for step in 2..=4 {
                call.progress
                    .report(Some(0.2 * step as f32), serde_json::json!({"step": step}));
            }
            Ok(serde_json::json!({"done": call.params["n"]}))
        },
    )
    .await
    .unwrap();
    let mut events = a.subscribe();
    let handle = a
        .execute_detached(b.destination(), "test/slow", serde_json::json!({"n": 3}), T)
        .await
        .unwrap();
    let progress = job_event(handle, "progress");
    let (node, payload) = next(&mut events, |e| match e {
        NodeEvent::GridEvent {
            node,
            event,
            payload,
        } if event == progress => Some((node, payload)),
        _ => None,
    })
    .await;
    assert_eq!(node, b.destination().to_string());
    assert_eq!(payload["fraction"], 0.5);
    assert_eq!(payload["detail"]["step"], 1);
    let complete = job_event(handle, "complete");
    let payload = next(&mut events, |e| match e {
        NodeEvent::GridEvent { event, payload, .. } if event == complete => Some(payload),
        _ => None,
    })
    .await;
    assert_eq!(payload["ok"], true, "{payload}");
    assert_eq!(payload["result"]["done"], 3);

    // The same, waited for, with the reports handed to a callback as they come.
    let mut seen = Vec::new();
    let r = a
        .execute_with_progress(
            b.destination(),
            "test/slow",
            &serde_json::json!({"n": 4}),
            grid::api::ExecOptions::timeout(T),
            |fraction, detail| seen.push((fraction, detail["step"].as_u64())),
        )
        .await
        .unwrap();
    assert_eq!(r["done"], 4);
    assert_eq!(
        seen,
        vec![
            (Some(0.5), Some(1)),
            (Some(0.4), Some(2)),
            (Some(0.6), Some(3)),
            (Some(0.8), Some(4))
        ]
    );
}

/// A caller that gives up cancels its command on the other node: the handler there is
/// dropped (its work stops), and the call ends as cancelled.
#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_call_stops_the_command_on_the_other_node() {
    use grid::commands::CommandCall;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    struct Dropped(Arc<AtomicBool>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let port = free_port();
    let da = node_dir("cancel-a", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let db = node_dir("cancel-b", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n[acl]\n\"test/*\" = \"provisional\"\n"
    ));
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let b = api::spawn(StateDir::resolve(Some(&db.0))).await.unwrap();
    let (started, stopped) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (s1, s2) = (started.clone(), stopped.clone());
    b.register_command("test/forever", "never ends", move |_call: CommandCall| {
        let (started, guard) = (s1.clone(), Dropped(s2.clone()));
        async move {
            let _guard = guard;
            started.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(600)).await;
            Ok(serde_json::json!("too late"))
        }
    })
    .await
    .unwrap();
    let s = started.clone();
    let cancel = async move {
        while !s.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let r = a
        .execute_cancellable(
            b.destination(),
            "test/forever",
            &serde_json::Value::Null,
            grid::api::ExecOptions::timeout(T),
            |_, _| {},
            cancel,
        )
        .await;
    assert!(matches!(r, Err(grid::Error::Cancelled)), "{r:?}");
    tokio::time::timeout(Duration::from_secs(10), async {
        while !stopped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("B dropped the command's work");
}

/// A command for a node that is offline: it waits as a bundle, reaches the node soon
/// after it comes back (within 10 s of its path appearing), and the result comes back
/// the same way; the same bundle delivered twice runs once.
#[tokio::test(flavor = "current_thread")]
async fn a_command_for_an_offline_node_runs_when_it_comes_back() {
    use grid::api::ExecOptions;
    let port = free_port();
    let da = node_dir("dtn-a", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let db = node_dir("dtn-b", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
    ));
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let b = api::spawn(StateDir::resolve(Some(&db.0))).await.unwrap();
    let target = b.destination();
    // A hears B once (B announces as it starts) ...
    let pong = a
        .execute(target, "grid/ping", &serde_json::Value::Null, T)
        .await
        .unwrap();
    assert_eq!(pong["pong"], true);
    // B trusts A with grid/status; the bundle's seal proves who sent it.
    b.set_trust(a.identity(), grid::trust::TrustLevel::Trusted)
        .await
        .unwrap();
    // ... then B goes away.
    b.shutdown();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let options = ExecOptions {
        timeout: T,
        ttl: Some(Duration::from_secs(90)),
    };
    let call = {
        let a = a.clone();
        tokio::spawn(async move {
            let r = a
                .execute_with(target, "grid/status", &serde_json::Value::Null, options)
                .await;
            (r, tokio::time::Instant::now())
        })
    };
    // Nothing can reach B for a while: the command waits as a bundle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!call.is_finished(), "the call waits for the offline node");
    let back = tokio::time::Instant::now();
    let b = api::spawn(StateDir::resolve(Some(&db.0))).await.unwrap();
    assert_eq!(b.destination(), target);
    let (r, answered) = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("an answer")
        .unwrap();
    let status = r.unwrap();
    assert_eq!(status["node"], target.to_string());
    let took = answered - back;
    assert!(
        took < Duration::from_secs(10),
        "answered {took:?} after the node came back"
    );
    // The same bundle delivered again (a retry after a lost acknowledgement, say) is
    // accepted but not run twice: B's audit log shows one grid/status.
    let audit = std::fs::read_to_string(db.0.join("audit.jsonl")).unwrap_or_default();
    assert_eq!(
        audit.lines().filter(|l| l.contains("grid/status")).count(),
        1,
        "{audit}"
    );
}

/// Pairing by word code: a wrong code is denied, the right one makes each node trust the
/// other (so the trusted-only grid/status opens up), and an offer closes after three
/// wrong codes. Routing hints pick this node or the named one.
#[tokio::test(flavor = "current_thread")]
async fn pairing_by_word_code_and_routing_hints() {
    use grid::api::ExecOptions;
    use grid::frame::ErrorCode;
    use grid::routing::Route;
    use grid::trust::TrustLevel;
    use grid::Error;
    let (a, b, _da, _db) = pair("pairing").await;
    let denied = |e: &Error| {
        matches!(
            e,
            Error::Remote {
                code: ErrorCode::Denied,
                ..
            }
        )
    };
    let e = b
        .execute(a.destination(), "grid/status", &serde_json::Value::Null, T)
        .await
        .unwrap_err();
    assert!(denied(&e), "{e}");
    let e = b
        .pair_join(
            a.destination(),
            "river salt owl piano",
            TrustLevel::Trusted,
            T,
        )
        .await
        .unwrap_err();
    assert!(denied(&e), "no offer open: {e}");

    let code = a
        .pair_offer(TrustLevel::Trusted, Duration::from_secs(60))
        .await
        .unwrap();
    let words: Vec<&str> = code.split('-').collect();
    assert_eq!(words.len(), 4, "{code}");
    let wrong = if words[0] == "apple" {
        "actor"
    } else {
        "apple"
    };
    let wrong = format!("{wrong}-{}-{}-{}", words[1], words[2], words[3]);
    let e = b
        .pair_join(a.destination(), &wrong, TrustLevel::Trusted, T)
        .await
        .unwrap_err();
    assert!(denied(&e), "{e}");
    let id = b
        .pair_join(
            a.destination(),
            &code.to_uppercase(),
            TrustLevel::Trusted,
            T,
        )
        .await
        .unwrap();
    assert_eq!(id, a.identity());
    let status = b
        .execute(a.destination(), "grid/status", &serde_json::Value::Null, T)
        .await
        .unwrap();
    assert_eq!(status["identity"], a.identity().to_string());
    let status = a
        .execute(b.destination(), "grid/status", &serde_json::Value::Null, T)
        .await
        .unwrap();
    assert_eq!(
        status["identity"],
        b.identity().to_string(),
        "B trusts A too"
    );
    // A used code cannot be used again; three wrong codes close a fresh offer.
    let e = b
        .pair_join(a.destination(), &code, TrustLevel::Trusted, T)
        .await
        .unwrap_err();
    assert!(denied(&e), "{e}");
    let code = a
        .pair_offer(TrustLevel::Owner, Duration::from_secs(60))
        .await
        .unwrap();
    for _ in 0..3 {
        let e = b
            .pair_join(a.destination(), &wrong, TrustLevel::Trusted, T)
            .await
            .unwrap_err();
        assert!(denied(&e), "{e}");
    }
    let e = b
        .pair_join(a.destination(), &code, TrustLevel::Trusted, T)
        .await
        .unwrap_err();
    assert!(denied(&e), "closed after three wrong codes: {e}");

    // Routing hints.
    let opts = ExecOptions::timeout(T);
    let null = serde_json::Value::Null;
    let (node, r) = b
        .execute_routed(Route::LocalOnly, "grid/ping", &null, opts)
        .await
        .unwrap();
    assert_eq!(
        (node, r["node"].as_str()),
        (b.destination(), Some(&*b.destination().to_string()))
    );
    let (node, _) = b
        .execute_routed(Route::Node(a.destination()), "grid/ping", &null, opts)
        .await
        .unwrap();
    assert_eq!(node, a.destination());
    let (node, _) = b
        .execute_routed(Route::PreferGpu, "grid/ping", &null, opts)
        .await
        .unwrap();
    assert_eq!(node, b.destination(), "no GPU anywhere: here");
    let e = b
        .execute_routed(Route::Auto, "ai/generate", &null, opts)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::NoRoute(m) if m.contains("needs a GPU")),
        "{e}"
    );
}

/// Capability fallback over real nodes: once B announces a GPU and A trusts it, A's GPU
/// commands (`auto`), `prefer-gpu` and `max-compute` run on B; the change reaches A by
/// B re-announcing.
#[tokio::test(flavor = "current_thread")]
async fn gpu_commands_fall_back_to_a_trusted_gpu_node() {
    use grid::api::ExecOptions;
    use grid::capabilities::Gpu;
    use grid::routing::Route;
    use grid::trust::TrustLevel;
    let port = free_port();
    let da = node_dir("gpu-a", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let db = node_dir("gpu-b", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n[acl]\n\"ai/*\" = \"trusted\"\n"
    ));
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let b = api::spawn(StateDir::resolve(Some(&db.0))).await.unwrap();
    b.register_command("ai/generate", "pretend to generate", |_call| async move {
        Ok(serde_json::json!({"generated": true}))
    })
    .await
    .unwrap();
    let null = serde_json::Value::Null;
    // A must trust B to send it work, and B must trust A to take it.
    a.set_trust(b.identity(), TrustLevel::Trusted)
        .await
        .unwrap();
    b.set_trust(a.identity(), TrustLevel::Trusted)
        .await
        .unwrap();
    // Without a GPU anywhere, auto refuses a GPU command.
    assert!(a.resolve_route(Route::Auto, "ai/generate").await.is_err());
    let caps = b
        .update_capabilities(|c| {
            c.gpu = Some(Gpu {
                name: "Test GPU".into(),
                vram_mb: 8192,
            })
        })
        .await
        .unwrap();
    assert_eq!(caps.gpu.as_ref().map(|g| g.vram_mb), Some(8192));
    tokio::time::timeout(T, async {
        while a.resolve_route(Route::Auto, "ai/generate").await.ok() != Some(b.destination()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("A learns B's GPU from its new announce");
    let opts = ExecOptions::timeout(T);
    let (node, r) = a
        .execute_routed(Route::Auto, "ai/generate", &null, opts)
        .await
        .unwrap();
    assert_eq!(
        (node, r["generated"].as_bool()),
        (b.destination(), Some(true))
    );
    for route in [Route::PreferGpu, Route::MaxCompute] {
        assert_eq!(
            a.resolve_route(route, "x/y").await.unwrap(),
            b.destination(),
            "{route:?}"
        );
    }
    // A demoted peer is no longer chosen.
    a.set_trust(b.identity(), TrustLevel::Provisional)
        .await
        .unwrap();
    assert_eq!(
        a.resolve_route(Route::PreferGpu, "x/y").await.unwrap(),
        a.destination()
    );
}

/// A node remembers the keys of Grid nodes it heard, so after a restart it can still seal
/// a command to one that is offline (instead of failing for want of a key).
#[tokio::test(flavor = "current_thread")]
async fn node_keys_survive_a_restart_for_sealing_bundles() {
    use grid::api::ExecOptions;
    use grid::Error;
    let (a, b, da, _db) = pair("known").await;
    let target = b.destination();
    a.execute(target, "grid/ping", &serde_json::Value::Null, T)
        .await
        .unwrap();
    a.shutdown();
    b.shutdown();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Same state directory, same listening port: the stopped node freed it.
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let never_heard = "0123456789abcdef0123456789abcdef".parse().unwrap();
    let options = ExecOptions {
        timeout: T,
        ttl: Some(Duration::from_secs(60)),
    };
    let null = serde_json::Value::Null;
    let e = a
        .execute_with(never_heard, "grid/ping", &null, options)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoPath { .. }), "no key, no bundle: {e}");
    let waiting = tokio::time::timeout(
        Duration::from_secs(3),
        a.execute_with(target, "grid/ping", &null, options),
    )
    .await;
    assert!(
        waiting.is_err(),
        "sealed to the remembered key and waiting: {waiting:?}"
    );
}

/// A delay-tolerant command whose link drops after the request arrived but before the
/// answer left: the caller sends the same frame again as a bundle, the target answers
/// with a bundle, and the command runs exactly once.
#[tokio::test(flavor = "current_thread")]
async fn a_command_whose_link_drops_mid_request_runs_once_and_answers_by_bundle() {
    use grid::api::ExecOptions;
    use grid::commands::CommandCall;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let port = free_port();
    let da = node_dir("drop-a", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let dc = node_dir("drop-c", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n[acl]\n\"test/*\" = \"provisional\"\n"
    ));
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let c = api::spawn(StateDir::resolve(Some(&dc.0))).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    {
        let (runs, release) = (runs.clone(), release.clone());
        c.register_command("test/count", "count my runs", move |_: CommandCall| {
            let (runs, release) = (runs.clone(), release.clone());
            async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                release.notified().await;
                Ok(serde_json::json!({ "runs": n }))
            }
        })
        .await
        .unwrap();
    }
    let target = c.destination();
    // A hears C (C announces as it starts).
    tokio::time::timeout(T, async {
        loop {
            if a.execute(target, "grid/ping", &serde_json::Value::Null, T)
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("A reaches C");

    let options = ExecOptions {
        timeout: T,
        ttl: Some(Duration::from_secs(60)),
    };
    let call = {
        let a = a.clone();
        tokio::spawn(async move {
            a.execute_with(target, "test/count", &serde_json::json!({}), options)
                .await
        })
    };
    // The request arrives and the command starts ...
    tokio::time::timeout(T, async {
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the command starts");
    // ... then the link drops before the answer leaves.
    for l in c.links().await.unwrap() {
        c.close_link(l.id).await.unwrap();
    }
    // The caller resends the request as a bundle; it reaches C while the first copy runs.
    tokio::time::timeout(T, async {
        loop {
            let audit = std::fs::read_to_string(dc.0.join("audit.jsonl")).unwrap_or_default();
            if audit
                .lines()
                .any(|l| l.contains("test/count") && l.contains("duplicate"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the bundled copy reaches C and is recognised as a duplicate");
    release.notify_one();
    let result = tokio::time::timeout(Duration::from_secs(45), call)
        .await
        .expect("an answer within the TTL")
        .unwrap()
        .expect("the command's result");
    assert_eq!(result["runs"], 1, "{result}");
    // Wait a moment for any late copy: still one run.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the command ran once");
}

#[tokio::test(flavor = "current_thread")]
async fn async_handlers_answer_on_their_own_tasks_and_authorize_reads_trust() {
    use grid::trust::TrustLevel;
    let (a, b, _da, _db) = pair("async").await;
    // The handler waits before it answers; the node keeps answering meanwhile.
    b.register_async_handler("/who", |req| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        Some(Value::from(
            req.remote_identity
                .map_or("anonymous".to_string(), |i| i.to_string()),
        ))
    })
    .await
    .unwrap();
    b.register_handler("/echo", |req| Some(req.data.clone()))
        .await
        .unwrap();
    let up = a.open_link(b.destination(), T).await.unwrap();
    let slow = a.request(up.link, "/who", Value::Nil, T);
    let quick = async {
        let v = a.request(up.link, "/echo", Value::from("x"), T).await;
        (v, std::time::Instant::now())
    };
    let (slow, (quick, quick_at)) = tokio::join!(
        async {
            let v = slow.await;
            (v, std::time::Instant::now())
        },
        quick
    );
    assert_eq!(slow.0.unwrap(), Value::from("anonymous"));
    assert_eq!(quick.unwrap(), Value::from("x"));
    assert!(quick_at < slow.1, "the echo was answered while /who waited");
    a.identify(up.link).await.unwrap();
    let who = a.request(up.link, "/who", Value::Nil, T).await.unwrap();
    assert_eq!(who, Value::from(a.identity().to_string()));
    // A synchronous handler for the same path replaces it.
    b.register_handler("/who", |_| Some(Value::from("sync")))
        .await
        .unwrap();
    let who = a.request(up.link, "/who", Value::Nil, T).await.unwrap();
    assert_eq!(who, Value::from("sync"));

    // authorize: the caller's level if the ACL lets it run the command.
    let level = b.authorize(a.identity(), "grid/ping").await.unwrap();
    assert_eq!(level, Ok(TrustLevel::Provisional));
    assert!(b
        .authorize(a.identity(), "grid/no-rule-for-this")
        .await
        .unwrap()
        .is_err());
    b.set_trust(a.identity(), TrustLevel::Blocked)
        .await
        .unwrap();
    assert!(matches!(
        b.authorize(a.identity(), "grid/ping").await.unwrap(),
        Err(grid::acl::Denied::Blocked { .. })
    ));
    assert_eq!(
        b.authorize(b.identity(), "grid/ping").await.unwrap(),
        Ok(TrustLevel::Owner)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_key_provided_through_the_dht_is_found_from_another_node() {
    use grid::proto::dht::key::Key;
    let port = free_port();
    let hub = node_dir("dht-hub", &format!(
        "[node]\nannounce_interval = \"1h\"\ntransport = true\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let client = |tag: &str| {
        node_dir(tag, &format!(
            "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
        ))
    };
    let hub = api::spawn(StateDir::resolve(Some(&hub.0))).await.unwrap();
    let dirs: Vec<TempDir> = (0..4).map(|i| client(&format!("dht-{i}"))).collect();
    let mut nodes = Vec::new();
    for d in &dirs {
        nodes.push(api::spawn(StateDir::resolve(Some(&d.0))).await.unwrap());
    }
    // Each node has heard at least the hub announce (nodes that connected early missed
    // the later ones' first announces): the DHT finds the rest through it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for n in &nodes {
        while n.peers().await.unwrap().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no announce heard");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let key = Key::of_content(&[7; 32]);
    let provider = &nodes[2];
    let told = provider.dht_provide(key).await.unwrap();
    assert!(!told.closest.is_empty(), "{told:?}");
    assert!(!told.timed_out, "{told:?}");

    // Every node was told (there are fewer than k), so a node that joins later finds
    // the record by asking others, not in its own store.
    let late_dir = client("dht-late");
    let late = api::spawn(StateDir::resolve(Some(&late_dir.0)))
        .await
        .unwrap();
    while late.peers().await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline + Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let found = late.dht_find_providers(key, 1).await.unwrap();
    let ids: Vec<Key> = found.providers.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        vec![Key::of_identity(provider.identity())],
        "{found:?}"
    );
    assert!(found.hops >= 1, "found over the network: {found:?}");
    // The same through the control vocabulary (`grid dht find`), with the provider's
    // grid.node destination worked out from its key.
    use grid::control::{response, Request};
    let v = late
        .control(Request::DhtFind {
            key: hex::encode([7u8; 32]),
            want: None,
        })
        .await
        .unwrap();
    let answer: response::DhtLookup = response::parse(v).unwrap();
    assert_eq!(answer.providers.len(), 1, "{answer:?}");
    assert_eq!(answer.providers[0].node, provider.destination());
    assert_eq!(answer.providers[0].identity, provider.identity());
    let bad = late
        .control(Request::DhtFind {
            key: "not a key".into(),
            want: None,
        })
        .await;
    assert!(matches!(bad, Err(grid::Error::BadRequest(_))), "{bad:?}");

    // A key nobody provides: the lookup ends with none.
    let none = nodes[3]
        .dht_find_providers(Key::of_topic("nobody"), 1)
        .await
        .unwrap();
    assert!(none.providers.is_empty());
    assert!(
        !none.closest.is_empty(),
        "the lookup reached nodes: {none:?}"
    );
    for n in nodes {
        n.shutdown();
    }
    late.shutdown();
    hub.shutdown();
}

/// The first entry in `node`'s catalog that `pick` accepts, polling until there is one.
async fn in_catalog(
    node: &NodeHandle,
    pick: impl Fn(&grid::proto::gossip::entry::Entry) -> bool,
) -> grid::proto::gossip::entry::Entry {
    loop {
        let found = node.catalog().await.unwrap().into_iter().find(|e| pick(e));
        if let Some(e) = found {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Wait until `a` has heard `b` announce, checking every `poll`.
async fn until_heard(a: &NodeHandle, b: &NodeHandle, poll: Duration) {
    tokio::time::timeout(T, async {
        while !a
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.node == b.destination())
        {
            tokio::time::sleep(poll).await;
        }
    })
    .await
    .expect("A hears B announce");
}

/// Announces carry their emission time in whole seconds, and a receiver drops a second
/// announce from the same second. A capability change right after a node introduced
/// itself must still reach its peers (not wait for the next round, an hour here).
#[tokio::test(flavor = "current_thread")]
async fn a_capability_change_in_the_second_of_an_announce_still_reaches_peers() {
    let (a, b, _da, _db) = pair("caps-second").await;
    // Poll fast: B changes its summary within milliseconds of A hearing its first announce.
    until_heard(&a, &b, Duration::from_millis(5)).await;
    b.update_capabilities(|c| c.ram_mb = 123_456).await.unwrap();
    tokio::time::timeout(T, async {
        loop {
            let peers = a.peers().await.unwrap();
            if peers
                .iter()
                .any(|p| p.node == b.destination() && p.capabilities.ram_mb == 123_456)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("A learns B's new summary from its re-announce");
}

/// A command entry for the catalog, expiring in an hour.
fn command_entry(name: &str, seq: u64, tombstone: bool) -> grid::proto::gossip::entry::Record {
    use grid::proto::flood::sketch::Sketch;
    use grid::proto::gossip::entry::{Body, Record};
    let expires_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 3_600_000;
    Record {
        seq,
        expires_ms,
        tombstone,
        name: name.into(),
        summary: "Fixes bicycle brakes and gears".into(),
        body: Body::Command {
            sketch: Sketch([0xA5; 48]),
        },
    }
}

/// The names of the live entries in `node`'s catalog, sorted.
async fn catalog_names(node: &NodeHandle) -> Vec<String> {
    let mut names: Vec<String> = node
        .catalog()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.record().name.clone())
        .collect();
    names.sort();
    names
}

/// Wait until `node`'s catalog holds the live entries `names` (sorted), and no others.
async fn until_catalog(node: &NodeHandle, names: &[&str], what: &str) {
    tokio::time::timeout(T, async {
        while catalog_names(node).await != names {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}: {:?}", names));
}

/// Stop `node` and wait until its loop has ended (it removes its control socket last).
async fn stop(node: NodeHandle, dir: &TempDir) {
    node.shutdown();
    let socket = StateDir::resolve(Some(&dir.0)).socket_path();
    tokio::time::timeout(T, async {
        while socket.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the node stops");
}

/// The catalog survives a restart: a node started again on its state directory, alone,
/// still holds what gossip brought it before it stopped; and the tombstone it held
/// survives too, so a peer that missed the withdrawal cannot bring the entry back.
#[tokio::test(flavor = "current_thread")]
async fn a_restarted_node_keeps_its_catalog_and_its_tombstones() {
    let port = free_port();
    let config = |interface: &str| {
        format!(
            "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\n{interface}\n"
        )
    };
    let server = config(&format!(
        "type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\""
    ));
    let client = config(&format!(
        "type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\""
    ));
    let (da, db, dc) = (
        node_dir("keep-a", &client),
        node_dir("keep-b", &server),
        node_dir("keep-c", &client),
    );
    let spawn = |d: &TempDir| api::spawn(StateDir::resolve(Some(&d.0)));
    let b = spawn(&db).await.unwrap();
    let a = spawn(&da).await.unwrap();
    let publisher_a = a.identity();
    until_heard(&a, &b, Duration::from_millis(50)).await;
    a.catalog_publish(command_entry("bike/paint", 1, false))
        .await
        .unwrap();
    a.catalog_publish(command_entry("bike/repair", 1, false))
        .await
        .unwrap();
    let both = ["bike/paint", "bike/repair"];
    until_catalog(&b, &both, "A's entries reach B").await;
    // C learns both from B, then stops before A withdraws one.
    let c = spawn(&dc).await.unwrap();
    until_catalog(&c, &both, "B's entries reach C").await;
    stop(c, &dc).await;
    a.catalog_publish(command_entry("bike/paint", 2, true))
        .await
        .unwrap();
    until_catalog(&b, &["bike/repair"], "the tombstone withdraws it at B").await;
    stop(a, &da).await;
    stop(b, &db).await;
    assert!(StateDir::resolve(Some(&db.0)).catalog_path().exists());

    // B alone, before any gossip: what A's gossip brought is there, signed by A.
    let b = spawn(&db).await.unwrap();
    let held = b.catalog().await.unwrap();
    assert_eq!(catalog_names(&b).await, ["bike/repair"], "restored at B");
    let publisher = rns_core::PublicIdentity::from_bytes(held[0].publisher()).unwrap();
    assert_eq!(publisher.hash(), publisher_a);
    // C comes back holding the live entry B saw withdrawn (its own kept catalog)...
    let c = spawn(&dc).await.unwrap();
    assert_eq!(catalog_names(&c).await, both, "restored at C");
    // ...and B's kept tombstone withdraws it there, instead of C bringing it back to B.
    until_catalog(&c, &["bike/repair"], "B's tombstone reaches C").await;
    assert_eq!(catalog_names(&b).await, ["bike/repair"], "not back at B");
}

/// A damaged catalog file is reported and the node starts with an empty catalog; it
/// writes a good one again (at the latest when it stops).
#[tokio::test(flavor = "current_thread")]
async fn a_damaged_catalog_file_leaves_an_empty_catalog_not_a_crash() {
    let port = free_port();
    let d = node_dir("torn", &format!(
        "[node]\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let state = StateDir::resolve(Some(&d.0));
    std::fs::write(state.catalog_path(), b"GRIDCATL\x01\x00\x00\x00\x07 cut sh").unwrap();
    let node = api::spawn(state.clone()).await.unwrap();
    assert!(node.catalog().await.unwrap().is_empty());
    node.catalog_publish(command_entry("bike/repair", 1, false))
        .await
        .unwrap();
    stop(node, &d).await;
    let node = api::spawn(state).await.unwrap();
    assert_eq!(
        catalog_names(&node).await,
        ["bike/repair"],
        "its own entry, kept"
    );
}

/// Catalog gossip runs in every node: an entry one node publishes reaches its neighbour
/// signed by its publisher, and a tombstone withdraws it there too.
#[tokio::test(flavor = "current_thread")]
async fn a_published_catalog_entry_reaches_a_neighbour_and_a_tombstone_withdraws_it() {
    let (a, b, _da, _db) = pair("catalog").await;
    // B is A's neighbour once A has heard it announce (and the other way round).
    until_heard(&a, &b, Duration::from_millis(50)).await;
    let record = |seq, tombstone| command_entry("bike/repair", seq, tombstone);
    let digest = a.catalog_publish(record(1, false)).await.unwrap();
    let seen = tokio::time::timeout(T, in_catalog(&b, |e| *e.digest() == digest))
        .await
        .expect("the entry reaches B by gossip");
    assert_eq!(seen.record().name, "bike/repair");
    let publisher = rns_core::PublicIdentity::from_bytes(seen.publisher()).unwrap();
    assert_eq!(publisher.hash(), a.identity(), "signed by A");
    // A record with a lower sequence number does not replace it; a tombstone does.
    assert!(a.catalog_publish(record(0, false)).await.is_err());
    a.catalog_publish(record(2, true)).await.unwrap();
    tokio::time::timeout(T, async {
        while b
            .catalog()
            .await
            .unwrap()
            .iter()
            .any(|e| e.record().name == "bike/repair")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the tombstone withdraws it at B");
}

/// A node lists in the catalog the commands peers may call: B's `weather/forecast`
/// (open to provisional callers) reaches A by gossip, signed by B; B's owner-only
/// command and its built-ins are not listed.
#[tokio::test(flavor = "current_thread")]
async fn commands_peers_may_call_are_listed_in_the_catalog() {
    use grid::proto::gossip::entry::Body;
    use grid::trust::TrustLevel;
    let (a, b, _da, _db) = pair("cmd-offers").await;
    until_heard(&a, &b, Duration::from_millis(50)).await;
    b.default_rule("weather/forecast", TrustLevel::Provisional)
        .await
        .unwrap();
    for (name, what) in [
        ("weather/forecast", "tomorrow's weather here"),
        ("home/unlock", "opens the door"),
    ] {
        b.register_command(name, what, |_| async { Ok(serde_json::Value::Null) })
            .await
            .unwrap();
    }
    let seen = tokio::time::timeout(
        T,
        in_catalog(&a, |e| matches!(e.record().body, Body::Command { .. })),
    )
    .await
    .expect("B's command entry reaches A");
    assert_eq!(seen.record().name, "weather/forecast");
    assert_eq!(seen.record().summary, "tomorrow's weather here");
    let publisher = rns_core::PublicIdentity::from_bytes(seen.publisher()).unwrap();
    assert_eq!(publisher.hash(), b.identity());
    let listed: Vec<String> = a
        .catalog()
        .await
        .unwrap()
        .iter()
        .filter(|e| matches!(e.record().body, Body::Command { .. }))
        .map(|e| e.record().name.clone())
        .collect();
    assert_eq!(
        listed,
        vec!["weather/forecast"],
        "owner-only and built-ins are not listed"
    );
}

/// Flood search runs in every node: a query from one end of a line of three nodes
/// (A — B — C, B a transport node) reaches C through B, and C's hit comes back on the
/// reverse path; at `instant` patience (neighbours only) it does not reach C.
#[tokio::test(flavor = "current_thread")]
async fn a_flood_search_finds_an_item_two_hops_away_through_a_neighbour() {
    use grid::proto::flood::sketch::{Item, Query, Sketch};
    use grid::proto::flood::{Ended, Patience};
    let (pb, pc) = (free_port(), free_port());
    let a = node_dir("flood-a", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{pb}\"\n"
    ));
    let b = node_dir("flood-b", &format!(
        "[node]\nannounce_interval = \"1h\"\ntransport = true\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{pb}\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{pc}\"\n"
    ));
    let c = node_dir("flood-c", &format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{pc}\"\n"
    ));
    let b = api::spawn(StateDir::resolve(Some(&b.0))).await.unwrap();
    let a = api::spawn(StateDir::resolve(Some(&a.0))).await.unwrap();
    let c = api::spawn(StateDir::resolve(Some(&c.0))).await.unwrap();
    // Each end has heard B (its neighbour) and B has heard both.
    until_heard(&a, &b, Duration::from_millis(50)).await;
    until_heard(&c, &b, Duration::from_millis(50)).await;
    until_heard(&b, &a, Duration::from_millis(50)).await;
    until_heard(&b, &c, Duration::from_millis(50)).await;

    let sketch = Sketch([0x5A; 48]);
    c.search_offer(Item {
        id: [9; 16],
        sketch,
        topic: Some("bikes".into()),
    })
    .await
    .unwrap();
    let query = Query {
        sketch: Some(sketch),
        topic: None,
        threshold: 300,
    };
    let near = a
        .flood_search(query.clone(), Patience::Instant, 1)
        .await
        .unwrap();
    assert!(
        near.found.is_empty(),
        "instant asks neighbours only: {near:?}"
    );
    assert_eq!(near.ended, Ended::TimedOut);

    let far = a.flood_search(query, Patience::Quick, 1).await.unwrap();
    assert_eq!(far.ended, Ended::Enough, "{far:?}");
    assert_eq!(far.found.len(), 1, "{far:?}");
    let hit = far.found[0];
    assert_eq!(hit.hit.item, [9; 16]);
    assert_eq!(hit.hit.holder, *c.identity().as_bytes(), "C holds it");
    assert_eq!(hit.hops, 2, "found two hops away");

    // By topic alone, and withdrawn: nothing.
    let by_topic = Query {
        sketch: None,
        topic: Some("bikes".into()),
        threshold: 0,
    };
    let found = a
        .flood_search(by_topic.clone(), Patience::Quick, 1)
        .await
        .unwrap();
    assert_eq!(found.found.len(), 1, "{found:?}");
    c.search_withdraw([9; 16]).await.unwrap();
    let gone = a.flood_search(by_topic, Patience::Quick, 1).await.unwrap();
    assert!(gone.found.is_empty(), "{gone:?}");
    for n in [a, b, c] {
        n.shutdown();
    }
}

/// A node with `[compute] enabled = true` publishes its compute offer (free RAM, GPU
/// memory, load) as a signed catalog entry that gossip brings to its neighbour; a node
/// without it offers none.
#[tokio::test(flavor = "current_thread")]
async fn a_compute_offer_reaches_a_neighbour_only_from_a_node_that_enables_it() {
    use grid::proto::gossip::entry::Body;
    let (da, db) = server_and_client("compute", "[compute]\nenabled = true\n", "");
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let b = api::spawn(StateDir::resolve(Some(&db.0))).await.unwrap();
    let offer = tokio::time::timeout(T, in_catalog(&b, |e| e.record().name == "compute"))
        .await
        .expect("A's compute offer reaches B by gossip");
    let publisher = rns_core::PublicIdentity::from_bytes(offer.publisher()).unwrap();
    assert_eq!(publisher.hash(), a.identity(), "signed by A");
    let Body::Compute {
        ram_mb, load_pct, ..
    } = offer.record().body
    else {
        panic!("not a compute entry: {offer:?}");
    };
    assert!(ram_mb > 0 && load_pct <= 100, "{offer:?}");
    assert!(offer.record().summary.contains("cores"), "{offer:?}");
    // B offers nothing, so A's catalog holds no offer of B's.
    let b_key = b.identity();
    let a_has_b_offer = a.catalog().await.unwrap().iter().any(|e| {
        e.record().name == "compute"
            && rns_core::PublicIdentity::from_bytes(e.publisher())
                .unwrap()
                .hash()
                == b_key
    });
    assert!(!a_has_b_offer);
    a.shutdown();
    b.shutdown();
}

/// A stand-in `/proc` for a node's governor (`[governor] system_root`): an 8 GiB machine
/// with `free_mib` available and a one-minute load of `load1`.
fn fake_machine(tag: &str, free_mib: u64, load1: f32) -> TempDir {
    let d = TempDir::new(&format!("api-root-{tag}"));
    std::fs::create_dir_all(d.0.join("proc")).unwrap();
    std::fs::write(
        d.0.join("proc/meminfo"),
        format!(
            "MemTotal: {} kB\nMemAvailable: {} kB\n",
            8 << 20,
            free_mib << 10
        ),
    )
    .unwrap();
    std::fs::write(d.0.join("proc/loadavg"), format!("{load1:.2} 0 0 1/1 1\n")).unwrap();
    d
}

/// Placement over real nodes: B and C publish compute offers from their governors'
/// readings; A's `least-loaded` plan ranks B (idle) before C (half loaded) before itself
/// (fully loaded). B's governor refuses the job (memory pressure high), so it answers
/// `busy` with the reason, and A runs the job on C instead of failing or retrying B.
#[tokio::test(flavor = "current_thread")]
async fn least_loaded_placement_skips_a_node_whose_governor_refuses() {
    use grid::api::ExecOptions;
    use grid::frame::ErrorCode;
    use grid::governor::{Job, JobKind, Priority};
    use grid::routing::Route;
    use grid::trust::TrustLevel;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f32;
    let (ra, rb, rc) = (
        fake_machine("a", 6000, cores * 10.0),
        fake_machine("b", 700, 0.0),
        fake_machine("c", 6000, cores * 0.5),
    );
    let port = free_port();
    let config = |root: &TempDir, iface: String| {
        format!(
            "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n\
             [compute]\nenabled = true\n[governor]\nsystem_root = \"{}\"\n\
             [acl]\n\"test/*\" = \"trusted\"\n[[interface]]\n{iface}\n",
            root.0.display()
        )
    };
    let da = node_dir(
        "ll-a",
        &config(
            &ra,
            format!("type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\""),
        ),
    );
    let client = || format!("type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"");
    let (db, dc) = (
        node_dir("ll-b", &config(&rb, client())),
        node_dir("ll-c", &config(&rc, client())),
    );
    let a = api::spawn(StateDir::resolve(Some(&da.0))).await.unwrap();
    let b = api::spawn(StateDir::resolve(Some(&db.0))).await.unwrap();
    let c = api::spawn(StateDir::resolve(Some(&dc.0))).await.unwrap();
    for worker in [&b, &c] {
        let h = worker.clone();
        worker
            .register_command("test/work", "a job that asks the governor", move |_| {
                let h = h.clone();
                async move {
                    let _grant = h.governor().admit(Job::new(
                        JobKind::Inference,
                        "test job",
                        Priority::Interactive,
                        64 << 20,
                    ))?;
                    Ok(serde_json::json!({"ran_on": h.destination().to_string()}))
                }
            })
            .await
            .unwrap();
        a.set_trust(worker.identity(), TrustLevel::Trusted)
            .await
            .unwrap();
        worker
            .set_trust(a.identity(), TrustLevel::Trusted)
            .await
            .unwrap();
    }
    let want = vec![b.destination(), c.destination(), a.destination()];
    tokio::time::timeout(Duration::from_secs(60), async {
        while a.resolve_routes(Route::LeastLoaded, "test/work").await.ok() != Some(want.clone()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("A ranks B, C, itself from the compute offers gossip brought");
    let opts = ExecOptions::timeout(T);
    let null = serde_json::Value::Null;
    // Asked directly, B says why it will not.
    match a
        .execute_with(b.destination(), "test/work", &null, opts)
        .await
    {
        Err(grid::Error::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::Busy);
            assert!(
                message.starts_with("pressure: memory pressure is high"),
                "{message}"
            );
        }
        other => panic!("B should be busy: {other:?}"),
    }
    let (node, r) = a
        .execute_routed(Route::LeastLoaded, "test/work", &null, opts)
        .await
        .unwrap();
    assert_eq!(node, c.destination());
    assert_eq!(r["ran_on"], c.destination().to_string());
}

#[tokio::test(flavor = "current_thread")]
async fn paths_and_interface_counters_through_the_api() {
    let (a, b, _da, _db) = pair("paths").await;
    let found = b
        .find_path(a.destination(), std::time::Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!((found.destination, found.hops), (a.destination(), 1));
    let table = b.path_table().await.unwrap();
    assert!(table
        .iter()
        .any(|p| p.destination == a.destination() && p.hops == 1));
    assert!(b.path_count().await.unwrap() >= 1);
    let stats = b.interface_stats().await.unwrap();
    assert!(
        stats
            .iter()
            .any(|i| i.online && i.stats.rx_bytes > 0 && i.stats.tx_bytes > 0),
        "{stats:?}"
    );
    // Dropped: gone from the table; a second drop finds nothing.
    assert!(b.drop_path(a.destination()).await.unwrap());
    let table = b.path_table().await.unwrap();
    assert!(!table.iter().any(|p| p.destination == a.destination()));
    assert!(!b.drop_path(a.destination()).await.unwrap());
    // Found again on request.
    let again = b
        .find_path(a.destination(), std::time::Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(again.hops, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_program_hosts_its_own_destination_hears_its_announce_and_packets_are_proved() {
    use grid::api::ProofStrategy;
    let (a, b, _da, _db) = pair("dest").await;
    let mut events = a.subscribe();
    let mut heard = b.subscribe();
    b.watch_announces("example_utilities", &["echo", "request"])
        .await
        .unwrap();
    let echo = a
        .register_destination(
            "example_utilities",
            &["echo", "request"],
            ProofStrategy::All,
        )
        .await
        .unwrap();
    // Announced once B is connected, so it hears it (not only a path response), and
    // after the connection's first burst of announces (a young interface holds a burst
    // of new announces for a while: ingress control, as in RNS).
    b.find_path(a.destination(), std::time::Duration::from_secs(15))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    a.announce_destination(echo, b"hello").await.unwrap();
    let (identity, app_data) = next(&mut heard, |e| match e {
        grid::api::NodeEvent::Announce {
            destination,
            identity,
            app_data,
            ..
        } if destination == echo => Some((identity, app_data)),
        _ => None,
    })
    .await;
    assert_eq!(
        (identity, app_data.as_slice()),
        (a.identity(), &b"hello"[..])
    );
    let found = b
        .find_path(echo, std::time::Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(found.hops, 1);
    assert_eq!(
        found.app_data.as_deref(),
        Some(hex::encode(b"hello").as_str())
    );
    let proved = b
        .send_packet(echo, b"ping 1", std::time::Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(proved.destination, echo);
    assert!(proved.rtt_ms > 0.0);
    let got = next(&mut events, |e| match e {
        NodeEvent::DestinationPacket {
            destination, data, ..
        } if destination == echo => Some(data),
        _ => None,
    })
    .await;
    assert_eq!(got, b"ping 1");
    // Without waiting for the proof: the packet still arrives.
    let hash = b.send_packet_nowait(echo, b"ping 2").await.unwrap();
    assert_ne!(hash, [0; 32]);
    let got = next(&mut events, |e| match e {
        NodeEvent::DestinationPacket {
            destination, data, ..
        } if destination == echo => Some(data),
        _ => None,
    })
    .await;
    assert_eq!(got, b"ping 2");
    let unknown = b
        .send_packet_nowait(rns_core::AddressHash([3; 16]), b"x")
        .await
        .unwrap_err();
    assert!(matches!(unknown, grid::Error::NoPath { .. }), "{unknown:?}");
    // Another identity the program holds hosts a destination too; the hash is RNS's
    // for that identity and name.
    let other = rns_core::Identity::generate(&mut rand_core::OsRng);
    let other_hash = other.hash();
    let as_other = a
        .register_destination_as(other, "example_utilities", &["other"], ProofStrategy::All)
        .await
        .unwrap();
    assert_eq!(
        as_other,
        rns_core::destination::destination_hash(
            &rns_core::destination::name_hash("example_utilities.other"),
            Some(&other_hash)
        )
    );
    // Deregistered: gone (twice false), and the node's own destination cannot go.
    assert!(a.deregister_destination(as_other).await.unwrap());
    assert!(!a.deregister_destination(as_other).await.unwrap());
    assert!(!a.deregister_destination(a.destination()).await.unwrap());
    // Only registered destinations can be announced.
    let e = a
        .announce_destination(rns_core::AddressHash([9; 16]), b"")
        .await
        .unwrap_err();
    assert!(matches!(e, grid::Error::BadRequest(_)), "{e:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn the_program_decides_which_packets_to_prove() {
    use grid::api::ProofStrategy;
    let (a, b, _da, _db) = pair("prove-app").await;
    let mut events = a.subscribe();
    let d = a
        .register_destination("example_utilities", &["decides"], ProofStrategy::App)
        .await
        .unwrap();
    b.find_path(a.destination(), std::time::Duration::from_secs(15))
        .await
        .unwrap();
    a.announce_destination(d, b"").await.unwrap();
    b.find_path(d, std::time::Duration::from_secs(15))
        .await
        .unwrap();
    // Not proved: the sender times out.
    let e = b
        .send_packet(d, b"ignored", std::time::Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(e, grid::Error::Timeout(_)), "{e:?}");
    let (ignored, _) = next(&mut events, |e| match e {
        NodeEvent::DestinationPacket {
            packet_hash, data, ..
        } => Some((packet_hash, data)),
        _ => None,
    })
    .await;
    // Proved by the program: the sender's wait ends with the round trip.
    let b2 = b.clone();
    let sent = tokio::spawn(async move {
        b2.send_packet(d, b"prove me", std::time::Duration::from_secs(15))
            .await
    });
    let hash = next(&mut events, |e| match e {
        NodeEvent::DestinationPacket {
            packet_hash, data, ..
        } if data == b"prove me" => Some(packet_hash),
        _ => None,
    })
    .await;
    assert!(a.prove_packet(hash).await.unwrap());
    assert!(!a.prove_packet(hash).await.unwrap(), "proved once only");
    let proved = sent.await.unwrap().unwrap();
    assert_eq!(proved.destination, d);
    // Too late for the first one? No: still in the window, but it was never asked for
    // again; proving it now sends a proof nobody waits for.
    assert!(a.prove_packet(ignored).await.unwrap());
}

#[tokio::test(flavor = "current_thread")]
async fn paced_link_packets_all_arrive() {
    let (a, b, _da, _db) = pair("paced").await;
    let mut events = b.subscribe();
    let up = a.open_link(b.destination(), T).await.unwrap();
    const N: usize = 300;
    let sender = {
        let a = a.clone();
        tokio::spawn(async move {
            for i in 0..N {
                a.send_paced(up.link, format!("paced {i:04}").as_bytes())
                    .await
                    .unwrap();
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < N {
        let data = next(&mut events, |e| match e {
            NodeEvent::Packet { link, data } if link == up.link => Some(data),
            _ => None,
        })
        .await;
        got.push(String::from_utf8(data).unwrap());
    }
    sender.await.unwrap();
    let expected: Vec<String> = (0..N).map(|i| format!("paced {i:04}")).collect();
    got.sort();
    assert_eq!(got, expected, "every paced packet arrived once");
    a.close_link(up.link).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn plain_and_group_destinations_between_neighbours() {
    use rns_core::destination::GroupKey;
    let (a, b, _da, _db) = pair("nameless").await;
    let mut events = a.subscribe();
    let plain = a
        .register_plain_destination("example_utilities", &["broadcast"])
        .await
        .unwrap();
    assert_eq!(
        plain,
        rns_core::destination::hash_from_name("example_utilities.broadcast", None)
    );
    let key = GroupKey::generate(&mut rand_core::OsRng);
    let group = a
        .register_group_destination("example_utilities", &["members"], key.clone())
        .await
        .unwrap();
    // Wait until the two are connected, then send both ways of nameless packets.
    b.find_path(a.destination(), std::time::Duration::from_secs(15))
        .await
        .unwrap();
    b.send_plain(plain, b"hello all").await.unwrap();
    b.send_group(group, &key, b"hello members").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(
            next(&mut events, |e| match e {
                NodeEvent::DestinationPacket {
                    destination, data, ..
                } if destination == plain || destination == group => Some((destination, data)),
                _ => None,
            })
            .await,
        );
    }
    got.sort();
    let mut want = vec![
        (plain, b"hello all".to_vec()),
        (group, b"hello members".to_vec()),
    ];
    want.sort();
    assert_eq!(got, want);
}

/// `len` bytes that do not repeat (xorshift), made as they are read: a stream of any size
/// without holding it.
struct Generated {
    x: u64,
    left: u64,
}

impl Generated {
    fn new(len: u64) -> Generated {
        Generated {
            x: 0x2545_F491_4F6C_DD1D,
            left: len,
        }
    }

    fn all(len: u64) -> Vec<u8> {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut Generated::new(len), &mut v).unwrap();
        v
    }
}

impl std::io::Read for Generated {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        for b in &mut buf[..n] {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            *b = self.x as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Files in `dir`, hidden ones (partial files) included, once `done` holds for them.
async fn files_once(dir: &std::path::Path, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    tokio::time::timeout(T, async {
        loop {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .map(|r| {
                    r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            if done(&names) {
                return names;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the directory settles")
}

#[tokio::test(flavor = "current_thread")]
async fn resources_of_any_size_from_files_and_streams_into_a_directory() {
    use grid::api::ResourceOptions;
    let (a, b, da, db) = pair("sizes").await;
    let inbox = db.0.join("inbox");
    b.accept_resources_into(&inbox, 3_000_000).await.unwrap();
    let mut events = b.subscribe();
    let up = a.open_link(b.destination(), T).await.unwrap();
    let options = |metadata, compress| ResourceOptions {
        metadata,
        compress,
        timeout: T,
    };

    // A file of three segments, with rncp-style name metadata: written into the inbox under
    // that name, byte for byte.
    let file = Generated::all(2_500_000);
    let path = da.0.join("big.bin");
    std::fs::write(&path, &file).unwrap();
    let meta = Value::Map(vec![(Value::from("name"), Value::from("big.bin"))]);
    let t = a
        .send_file(up.link, &path, options(Some(meta.clone()), false))
        .await
        .unwrap();
    let id = t.id().to_string();
    t.finished().await.unwrap();
    let (saved, bytes, metadata) = next(&mut events, |e| match e {
        NodeEvent::ResourceSaved {
            path,
            bytes,
            metadata,
            ..
        } => Some((path, bytes, metadata)),
        _ => None,
    })
    .await;
    assert_eq!(saved, inbox.join("big.bin"));
    assert_eq!((bytes, metadata), (file.len() as u64, Some(meta)));
    assert!(
        std::fs::read(&saved).unwrap() == file,
        "the file arrived changed"
    );
    let status = a.transfer_status(&id).await.unwrap();
    assert_eq!((status.done, status.total), (status.total, status.total));
    assert_eq!(status.bytes, file.len() as u64);

    // A stream of two segments without metadata, compressed: named by its hash.
    let t = a
        .send_reader(
            up.link,
            Generated::new(1_200_000),
            1_200_000,
            options(None, true),
        )
        .await
        .unwrap();
    t.finished().await.unwrap();
    let (saved, metadata) = next(&mut events, |e| match e {
        NodeEvent::ResourceSaved { path, metadata, .. } => Some((path, metadata)),
        _ => None,
    })
    .await;
    assert_eq!(metadata, None);
    let name = saved.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("resource-"), "{name}");
    assert!(std::fs::read(&saved).unwrap() == Generated::all(1_200_000));

    // Past the receiver's limit: refused before any of it lands. A stream that ends
    // early fails the transfer; nothing half-written stays.
    let failed = |made: u64, len: u64| {
        let a = a.clone();
        async move {
            let t = a.send_reader(up.link, Generated::new(made), len, options(None, false));
            t.await.unwrap().finished().await.unwrap_err()
        }
    };
    let e = failed(3_500_000, 3_500_000).await;
    assert!(matches!(e, grid::Error::Denied(_)), "{e:?}");
    let e = failed(1_500_000, 2_000_000).await;
    assert!(e.to_string().contains("stream"), "{e}");

    // Cancelled after its first part went: the sender hears `Cancelled`, the receiver
    // removes its partial file, and the link still carries the next resource.
    let mut sent = a.subscribe();
    let t = a
        .send_reader(
            up.link,
            Generated::new(2_900_000),
            2_900_000,
            options(None, false),
        )
        .await
        .unwrap();
    next(&mut sent, |e| match e {
        NodeEvent::ResourceProgress {
            sending: true,
            parts_done,
            ..
        } => (parts_done > 0).then_some(()),
        _ => None,
    })
    .await;
    assert!(t.cancel().await.unwrap());
    let e = t.finished().await.unwrap_err();
    assert!(matches!(e, grid::Error::Cancelled), "{e:?}");
    let names = files_once(&inbox, |n| !n.iter().any(|n| n.starts_with('.'))).await;
    assert_eq!(names.len(), 2, "{names:?}");
    a.send_file(up.link, &path, options(None, false))
        .await
        .unwrap()
        .finished()
        .await
        .unwrap();
    let saved = next(&mut events, |e| match e {
        NodeEvent::ResourceSaved { path, .. } => Some(path),
        _ => None,
    })
    .await;
    assert!(std::fs::read(&saved).unwrap() == file);
    let names = files_once(&inbox, |n| n.len() == 3).await;
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    a.shutdown();
    b.shutdown();
}
