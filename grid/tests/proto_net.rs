//! The grid layer (`grid::proto::layer`, the code the node runs) over real rns-core links
//! on the shared deterministic network (`rns_core::testnet`): trust, the ACL, anonymous
//! callers, the request log, subscriptions, pairing, answers whose link is gone. Three
//! nodes, a transport node between two endpoints, wires with latency, virtual time; each
//! test runs in milliseconds.

use std::collections::HashMap;
use std::time::Duration;

use grid::acl::Acl;
use grid::audit::Outcome as Audit;
use grid::capabilities::{Capabilities, CAPABILITIES_VERSION};
use grid::commands::FRAME_PATH;
use grid::frame::{Body, ErrorCode, GridFrame, Outcome};
use grid::proto::inbound::SUBSCRIBE_COMMAND;
use grid::proto::layer::{GridLayer, Now, Output, Policy, Run, TrustLevels};
use grid::trust::TrustLevel;
use rns_core::link::{LinkEvent, LinkId};
use rns_core::testnet::{seeded_transport, Host, TestNet, WireConfig};
use rns_core::transport::{Event, InterfaceConfig, ProofStrategy, Transport, TransportConfig};
use rns_core::{rmpv, AddressHash, Instant};
use serde_json::Value;

/// Trust levels kept in memory, provisional by default.
#[derive(Default)]
struct Levels(HashMap<AddressHash, TrustLevel>);

impl TrustLevels for Levels {
    fn level(&self, id: &AddressHash) -> TrustLevel {
        self.0.get(id).copied().unwrap_or(TrustLevel::Provisional)
    }
    fn default_level(&self) -> TrustLevel {
        TrustLevel::Provisional
    }
}

/// What a registered test command does.
#[derive(Debug, Clone, Copy)]
enum Handler {
    /// Count its runs and answer with the count, at once.
    Count,
    /// Answer only when the test says so ([`GridHost::answer_held`]).
    Hold,
}

/// A node: its transport and the grid layer the node runs, driven as the node drives it,
/// with a command table of two test commands.
struct GridHost {
    transport: Transport,
    grid: AddressHash,
    layer: GridLayer<Handler>,
    acl: Acl,
    levels: Levels,
    /// Times `test/count` ran here.
    ran: u32,
    /// Runs of `test/hold` waiting for an answer.
    held: Vec<Run<Handler>>,
    /// Audit outcomes recorded here.
    audit: Vec<Audit>,
    /// Links this node opened that came up.
    established: Vec<LinkId>,
    /// Answers to this node's requests, and requests that got none.
    answers: Vec<GridFrame>,
    timeouts: u32,
    /// Events for this node's listeners: (node, event, payload).
    events: Vec<(AddressHash, String, Value)>,
    /// Frames the layer asked to send as bundles, with their recipient.
    bundles: Vec<(AddressHash, GridFrame)>,
}

impl GridHost {
    fn new(seed: u64, transport_enabled: bool) -> GridHost {
        let mut transport = seeded_transport(
            TransportConfig {
                transport_enabled,
                ..TransportConfig::default()
            },
            seed,
        );
        let id = transport.identity().clone();
        let grid = transport.register_destination(id, "grid.node", ProofStrategy::None, vec![]);
        let mut acl = Acl::default();
        acl.insert("test/*", TrustLevel::Trusted).unwrap();
        acl.insert(SUBSCRIBE_COMMAND, TrustLevel::Provisional)
            .unwrap();
        let capabilities = Capabilities {
            version: CAPABILITIES_VERSION,
            cpu_cores: 2,
            ram_mb: 8192,
            gpu: None,
            roles: 0,
            adapters: 0,
            models: 0,
        };
        let mut layer = GridLayer::new(grid, Instant::from_millis(0), capabilities);
        layer.register("test/count".into(), "counts".into(), Handler::Count);
        layer.register("test/hold".into(), "answers later".into(), Handler::Hold);
        GridHost {
            transport,
            grid,
            layer,
            acl,
            levels: Levels::default(),
            ran: 0,
            held: Vec::new(),
            audit: Vec::new(),
            established: Vec::new(),
            answers: Vec::new(),
            timeouts: 0,
            events: Vec::new(),
            bundles: Vec::new(),
        }
    }

    fn identity_hash(&self) -> AddressHash {
        self.transport.identity().hash()
    }

    fn time(now: Instant) -> Now {
        Now {
            mono: now,
            wall_ms: now.as_millis(),
        }
    }

    /// Perform what the layer asked for, as the node driver does.
    fn drain(&mut self, now: Instant) {
        while let Some(output) = self.layer.poll_output() {
            match output {
                Output::Audit(entry) => self.audit.push(entry.outcome),
                Output::Run(run) => match run.handler {
                    Handler::Count => {
                        self.ran += 1;
                        let answer = self.ran.to_string().into_bytes();
                        let response = run.frame.respond(Outcome::Ok(answer), now.as_millis());
                        self.layer.finish(
                            Self::time(now),
                            &mut self.transport,
                            run.key,
                            run.reply,
                            response,
                        );
                    }
                    Handler::Hold => self.held.push(*run),
                },
                Output::Bundle { to, frame } => self.bundles.push((to.hash(), frame)),
                Output::Trust { identity, level } => {
                    self.levels.0.insert(identity, level);
                }
                Output::Event {
                    node,
                    event,
                    payload,
                } => self.events.push((node, event, payload)),
                _ => panic!("an output this test does not know"),
            }
        }
    }

    /// Answer the oldest held `test/hold` run with `"done"`.
    fn answer_held(&mut self, now: Instant) {
        let run = self.held.remove(0);
        let response = run
            .frame
            .respond(Outcome::Ok(b"\"done\"".to_vec()), now.as_millis());
        self.layer.finish(
            Self::time(now),
            &mut self.transport,
            run.key,
            run.reply,
            response,
        );
        self.drain(now);
    }

    /// Emit an event here.
    fn emit(&mut self, now: Instant, event: &str) -> usize {
        let sent = self
            .layer
            .emit(Self::time(now), &mut self.transport, event, &Value::from(1));
        self.drain(now);
        sent
    }
}

impl Host for GridHost {
    fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }

    fn handle_event(&mut self, now: Instant, event: Event) {
        let Event::Link(e) = event else { return };
        let policy = Policy {
            acl: &self.acl,
            trust: &self.levels,
        };
        let taken = self
            .layer
            .on_link_event(Self::time(now), &mut self.transport, policy, &e);
        self.drain(now);
        if taken {
            return;
        }
        match e {
            LinkEvent::Established {
                link,
                initiator: true,
                ..
            } => self.established.push(link),
            LinkEvent::Response {
                data: rmpv::Value::Binary(b),
                ..
            } => self.answers.push(GridFrame::decode(&b).unwrap()),
            LinkEvent::RequestTimeout { .. } => self.timeouts += 1,
            _ => {}
        }
    }
}

const CLIENT: usize = 0;
const SERVER: usize = 2;

/// Client — transport — server, 15 ms a hop; the server announced and the client has a
/// path to it.
fn network() -> TestNet<GridHost> {
    let mut net = TestNet::with_hosts(vec![
        GridHost::new(1, false),
        GridHost::new(2, true),
        GridHost::new(3, false),
    ]);
    let wire = WireConfig {
        latency: Duration::from_millis(15),
        ..WireConfig::default()
    };
    net.connect_wire(0, 1, || InterfaceConfig::tcp("a"), wire);
    net.connect_wire(1, 2, || InterfaceConfig::tcp("b"), wire);
    let (now, d) = (net.now, net.nodes[SERVER].grid);
    net.nodes[SERVER].transport.announce(now, &d, None).unwrap();
    net.run(Duration::from_secs(2));
    assert!(net.nodes[CLIENT].transport.path(&d).is_some());
    net
}

/// Open a link from the client to the server, identifying on it or not.
fn link(net: &mut TestNet<GridHost>, identify: bool) -> LinkId {
    let (now, d) = (net.now, net.nodes[SERVER].grid);
    let link = net.nodes[CLIENT].transport.open_link(now, &d).unwrap();
    assert!(net.run_until(Duration::from_secs(5), |n| n.nodes[CLIENT]
        .established
        .contains(&link)));
    if identify {
        let now = net.now;
        let me = net.nodes[CLIENT].transport.identity().clone();
        net.nodes[CLIENT]
            .transport
            .link_identify(now, &link, &me)
            .unwrap();
        net.run(Duration::from_millis(100));
    }
    link
}

fn frame(net: &TestNet<GridHost>, correlation: u64, body: Body) -> GridFrame {
    GridFrame {
        correlation,
        source: net.nodes[CLIENT].grid.0,
        target: net.nodes[SERVER].grid.0,
        timestamp_ms: net.now.as_millis(),
        ttl_ms: 60_000,
        body,
    }
}

fn request(net: &TestNet<GridHost>, correlation: u64, command: &str) -> GridFrame {
    let body = Body::Request {
        command: command.into(),
        params: Vec::new(),
    };
    frame(net, correlation, body)
}

/// Send `f` on `link` and run until it is answered (or not): the answer, if any.
fn call(net: &mut TestNet<GridHost>, link: LinkId, f: &GridFrame) -> Option<GridFrame> {
    let before = net.nodes[CLIENT].answers.len();
    let now = net.now;
    let value = rmpv::Value::Binary(f.encode());
    net.nodes[CLIENT]
        .transport
        .link_request(now, &link, FRAME_PATH, &value, Some(Duration::from_secs(3)))
        .unwrap();
    let answered = net.run_until(Duration::from_secs(5), |n| {
        n.nodes[CLIENT].answers.len() > before
    });
    answered.then(|| net.nodes[CLIENT].answers.last().unwrap().clone())
}

/// Run `command` on the server over `link`.
fn ask(
    net: &mut TestNet<GridHost>,
    link: LinkId,
    correlation: u64,
    command: &str,
) -> Option<GridFrame> {
    let f = request(net, correlation, command);
    call(net, link, &f)
}

/// The JSON of a successful answer.
fn ok_json(f: &GridFrame) -> Value {
    match &f.body {
        Body::Response(Outcome::Ok(bytes)) => serde_json::from_slice(bytes).unwrap(),
        other => panic!("not a successful answer: {other:?}"),
    }
}

fn error_code(f: &GridFrame) -> Option<ErrorCode> {
    match &f.body {
        Body::Response(Outcome::Err { code, .. }) => Some(*code),
        _ => None,
    }
}

#[test]
fn trust_levels_and_the_acl_decide_over_real_links() {
    let mut net = network();
    let l = link(&mut net, true);
    let me = net.nodes[CLIENT].identity_hash();

    // Provisional by default: the ACL wants trusted for test/*.
    let answer = ask(&mut net, l, 1, "test/count").unwrap();
    assert_eq!(error_code(&answer), Some(ErrorCode::Denied));
    assert_eq!(net.nodes[SERVER].ran, 0);

    net.nodes[SERVER].levels.0.insert(me, TrustLevel::Trusted);
    let answer = ask(&mut net, l, 2, "test/count").unwrap();
    assert_eq!(answer.body, Body::Response(Outcome::Ok(b"1".to_vec())));

    // Blocked: no answer at all, only an audit record.
    net.nodes[SERVER].levels.0.insert(me, TrustLevel::Blocked);
    assert!(ask(&mut net, l, 3, "grid/ping").is_none());
    assert_eq!(net.nodes[CLIENT].timeouts, 1);
    assert_eq!(net.nodes[SERVER].audit.last(), Some(&Audit::Denied));
    assert_eq!(net.nodes[SERVER].ran, 1);
}

#[test]
fn callers_that_do_not_identify_may_only_ping() {
    let mut net = network();
    let l = link(&mut net, false);
    let answer = ask(&mut net, l, 1, "grid/ping").unwrap();
    let pong = ok_json(&answer);
    assert_eq!(pong["pong"], true);
    assert_eq!(pong["node"], net.nodes[SERVER].grid.to_string());
    let answer = ask(&mut net, l, 2, "test/count").unwrap();
    assert_eq!(error_code(&answer), Some(ErrorCode::Denied));
    assert_eq!(net.nodes[SERVER].ran, 0);
}

#[test]
fn a_request_sent_again_on_a_new_link_runs_once() {
    let mut net = network();
    let me = net.nodes[CLIENT].identity_hash();
    net.nodes[SERVER].levels.0.insert(me, TrustLevel::Trusted);
    let f = request(&net, 77, "test/count");
    let first = link(&mut net, true);
    let a = call(&mut net, first, &f).unwrap();
    // The caller did not see the answer (say its link broke) and sends the same request
    // again on a new link: it is not run again; the kept answer comes back.
    let second = link(&mut net, true);
    let b = call(&mut net, second, &f).unwrap();
    assert_eq!(a.body, Body::Response(Outcome::Ok(b"1".to_vec())));
    assert_eq!(b.body, a.body);
    assert_eq!(net.nodes[SERVER].ran, 1);
    assert_eq!(net.nodes[SERVER].audit.last(), Some(&Audit::Duplicate));
}

#[test]
fn subscribers_get_matching_events_until_their_link_closes() {
    let mut net = network();
    let l = link(&mut net, true);
    let sub = frame(
        &net,
        5,
        Body::Subscribe {
            pattern: "sensor:*".into(),
        },
    );
    let answer = call(&mut net, l, &sub).unwrap();
    assert_eq!(answer.body, Body::Response(Outcome::Ok(b"null".to_vec())));

    let now = net.now;
    assert_eq!(net.nodes[SERVER].emit(now, "sensor:temp"), 1);
    assert_eq!(net.nodes[SERVER].emit(now, "other:x"), 0);
    assert!(net.run_until(Duration::from_secs(2), |n| !n.nodes[CLIENT]
        .events
        .is_empty()));
    let server = net.nodes[SERVER].grid;
    assert_eq!(
        net.nodes[CLIENT].events,
        vec![(server, "sensor:temp".to_string(), Value::from(1))]
    );
    // The server's own listeners saw both events.
    let own: Vec<_> = net.nodes[SERVER]
        .events
        .iter()
        .map(|e| e.1.as_str())
        .collect();
    assert_eq!(own, ["sensor:temp", "other:x"]);

    let now = net.now;
    net.nodes[CLIENT].transport.close_link(now, &l).unwrap();
    net.run(Duration::from_secs(1));
    let now = net.now;
    assert_eq!(net.nodes[SERVER].emit(now, "sensor:temp"), 0);
}

/// Send `f` on `link` without waiting for its answer.
fn send(net: &mut TestNet<GridHost>, link: LinkId, f: &GridFrame) {
    let now = net.now;
    let value = rmpv::Value::Binary(f.encode());
    net.nodes[CLIENT]
        .transport
        .link_request(
            now,
            &link,
            FRAME_PATH,
            &value,
            Some(Duration::from_secs(30)),
        )
        .unwrap();
}

#[test]
fn a_request_whose_link_closes_while_it_runs_runs_once_and_answers_by_bundle() {
    let mut net = network();
    let me = net.nodes[CLIENT].identity_hash();
    net.nodes[SERVER].levels.0.insert(me, TrustLevel::Trusted);
    let f = request(&net, 9, "test/hold");
    let first = link(&mut net, true);
    send(&mut net, first, &f);
    assert!(net.run_until(Duration::from_secs(2), |n| n.nodes[SERVER].held.len() == 1));

    // The caller sends the same request again on a second link while it runs: joined,
    // not run again.
    let second = link(&mut net, true);
    send(&mut net, second, &f);
    net.run(Duration::from_millis(500));
    assert_eq!(net.nodes[SERVER].held.len(), 1);
    assert_eq!(net.nodes[SERVER].audit.last(), Some(&Audit::Duplicate));

    // The first link closes; then the command ends.
    let now = net.now;
    net.nodes[CLIENT].transport.close_link(now, &first).unwrap();
    net.run(Duration::from_millis(500));
    let before = net.nodes[CLIENT].answers.len();
    let now = net.now;
    net.nodes[SERVER].answer_held(now);
    net.run(Duration::from_millis(500));

    // The copy on the open link is answered on it; the answer for the closed one goes to
    // the identified caller as a bundle.
    assert_eq!(net.nodes[CLIENT].answers.len(), before + 1);
    let done = Body::Response(Outcome::Ok(b"\"done\"".to_vec()));
    assert_eq!(net.nodes[CLIENT].answers.last().unwrap().body, done);
    let bundles = &net.nodes[SERVER].bundles;
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    assert_eq!(bundles[0].0, me);
    assert_eq!((bundles[0].1.correlation, &bundles[0].1.body), (9, &done));
}

#[test]
fn pairing_grants_the_offered_level_to_the_caller_with_the_code() {
    let mut net = network();
    let l = link(&mut net, true);
    let me = net.nodes[CLIENT].identity_hash();
    let now = net.now;
    let words = net.nodes[SERVER].layer.pairing.offer(
        now,
        [1, 2, 3, 4],
        TrustLevel::Trusted,
        Duration::from_secs(60),
    );
    let join = |net: &TestNet<GridHost>, correlation, code: &str| {
        let body = Body::Request {
            command: grid::commands::JOIN_COMMAND.into(),
            params: serde_json::json!({ "code": code }).to_string().into_bytes(),
        };
        frame(net, correlation, body)
    };

    let wrong = join(&net, 1, "not the code");
    let answer = call(&mut net, l, &wrong).unwrap();
    assert_eq!(error_code(&answer), Some(ErrorCode::Denied));
    assert_eq!(net.nodes[SERVER].levels.level(&me), TrustLevel::Provisional);
    assert_eq!(net.nodes[SERVER].audit.last(), Some(&Audit::Denied));

    let right = join(&net, 2, &words);
    let answer = call(&mut net, l, &right).unwrap();
    assert_eq!(ok_json(&answer)["level"], "trusted");
    assert_eq!(net.nodes[SERVER].levels.level(&me), TrustLevel::Trusted);
    // Trusted now: test/* runs.
    let answer = ask(&mut net, l, 3, "test/count").unwrap();
    assert_eq!(answer.body, Body::Response(Outcome::Ok(b"1".to_vec())));
}

#[test]
fn progress_is_taken_only_for_commands_sent_on_the_link_and_from_its_node() {
    let mut net = network();
    let l = link(&mut net, true);
    let me = net.nodes[CLIENT].identity_hash();
    net.nodes[SERVER].levels.0.insert(me, TrustLevel::Trusted);
    let f = request(&net, 0x55, "test/hold");
    net.nodes[CLIENT].layer.expect_progress(l, &f.encode());
    send(&mut net, l, &f);
    assert!(net.run_until(Duration::from_secs(2), |n| n.nodes[SERVER].held.len() == 1));
    let run_link = net.nodes[SERVER].held[0].link.expect("came on a link");
    assert_eq!(run_link, l);

    // The server pushes progress for the command, for one never sent, and one naming
    // another node as its source.
    let server = net.nodes[SERVER].grid;
    let progress = |correlation, source: AddressHash| GridFrame {
        correlation,
        source: source.0,
        target: me.0,
        timestamp_ms: 0,
        ttl_ms: 0,
        body: Body::Progress {
            fraction: Some(0.5),
            payload: b"\"half\"".to_vec(),
        },
    };
    for p in [
        progress(0x55, server),
        progress(0x66, server),
        progress(0x55, me),
    ] {
        let now = net.now;
        net.nodes[SERVER]
            .transport
            .link_channel_send(now, &l, grid::frame::CHANNEL_MSGTYPE, &p.encode())
            .unwrap();
        net.run(Duration::from_millis(300));
    }
    let events = &net.nodes[CLIENT].events;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, server);
    assert_eq!(events[0].1, grid::commands::job_event(0x55, "progress"));
    assert_eq!(events[0].2["fraction"], 0.5);
    assert_eq!(events[0].2["detail"], "half");
}

/// Send `value` on `link` to the frame path and run until it is answered: the answer.
fn ask_raw(net: &mut TestNet<GridHost>, link: LinkId, value: rmpv::Value) -> GridFrame {
    let before = net.nodes[CLIENT].answers.len();
    let now = net.now;
    net.nodes[CLIENT]
        .transport
        .link_request(now, &link, FRAME_PATH, &value, Some(Duration::from_secs(3)))
        .unwrap();
    assert!(
        net.run_until(Duration::from_secs(5), |n| n.nodes[CLIENT].answers.len()
            > before)
    );
    net.nodes[CLIENT].answers.last().unwrap().clone()
}

#[test]
fn bad_frames_get_typed_errors_and_the_link_stays_usable() {
    let mut net = network();
    let l = link(&mut net, true);
    let good = request(&net, 42, "grid/ping").encode();
    let mut ask = |bytes: Vec<u8>| ask_raw(&mut net, l, rmpv::Value::Binary(bytes));

    let mut future = good.clone();
    future[0] = grid::frame::FRAME_VERSION + 1;
    let f = ask(future);
    assert_eq!(
        (error_code(&f), f.correlation),
        (Some(ErrorCode::UnsupportedVersion), 42)
    );
    let f = ask(good[..good.len() - 2].to_vec());
    assert_eq!(
        (error_code(&f), f.correlation),
        (Some(ErrorCode::Malformed), 42)
    );
    assert_eq!(error_code(&ask(vec![1, 2, 3])), Some(ErrorCode::Malformed));
    let f = ask_raw(&mut net, l, rmpv::Value::from("not bytes"));
    assert_eq!(error_code(&f), Some(ErrorCode::Malformed));
    // An expired request is not run.
    let mut stale = GridFrame::decode(&good).unwrap();
    stale.timestamp_ms = 1;
    stale.ttl_ms = 1;
    let f = ask_raw(&mut net, l, rmpv::Value::Binary(stale.encode()));
    assert_eq!(error_code(&f), Some(ErrorCode::Timeout));

    // The same link still carries good frames, and the same request again is not run
    // again: it gets the first copy's answer.
    let f = ask_raw(&mut net, l, rmpv::Value::Binary(good.clone()));
    assert_eq!(ok_json(&f)["pong"], true);
    let again = ask_raw(&mut net, l, rmpv::Value::Binary(good));
    assert_eq!((again.correlation, &again.body), (42, &f.body));
    assert_eq!(net.nodes[SERVER].audit.last(), Some(&Audit::Duplicate));
}

#[test]
fn list_names_the_built_ins_and_every_registered_command() {
    let mut net = network();
    let l = link(&mut net, false);
    let answer = ask(&mut net, l, 1, "list").unwrap();
    let names: Vec<String> = ok_json(&answer)
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap().to_string())
        .collect();
    for name in [
        "grid/ping",
        "grid/status",
        "list",
        "test/count",
        "test/hold",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
    }
}
