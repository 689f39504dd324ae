//! The grid layer's inbound checks (trust, ACL, anonymous callers, the request log,
//! subscriptions) over real rns-core links on the shared deterministic network
//! (`rns_core::testnet`): three nodes, a transport node between two endpoints, wires
//! with latency, virtual time. Each test runs in milliseconds.

use std::collections::HashMap;
use std::time::Duration;

use grid::acl::Acl;
use grid::audit::Outcome as Audit;
use grid::commands::FRAME_PATH;
use grid::frame::{Body, ErrorCode, GridFrame, Outcome};
use grid::proto::inbound::{Inbound, Sender, Verdict, SUBSCRIBE_COMMAND};
use grid::trust::TrustLevel;
use rns_core::link::{wire::path_hash, LinkEvent, LinkId};
use rns_core::testnet::{seeded_transport, Host, TestNet, WireConfig};
use rns_core::transport::{Event, InterfaceConfig, ProofStrategy, Transport, TransportConfig};
use rns_core::{rmpv, AddressHash, Instant};

/// A node: its transport, and the grid layer's inbound checks with a command table of
/// one counting command, as the node driver wires them.
struct GridHost {
    transport: Transport,
    grid: AddressHash,
    inbound: Inbound<(LinkId, AddressHash)>,
    acl: Acl,
    levels: HashMap<AddressHash, TrustLevel>,
    /// Times `test/count` ran here.
    ran: u32,
    /// Audit outcomes recorded here.
    audit: Vec<Audit>,
    /// Links this node opened that came up.
    established: Vec<LinkId>,
    /// Answers to this node's requests, and requests that got none.
    answers: Vec<GridFrame>,
    timeouts: u32,
    /// Events pushed to this node by its subscriptions.
    events: Vec<GridFrame>,
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
        GridHost {
            transport,
            grid,
            inbound: Inbound::default(),
            acl,
            levels: HashMap::new(),
            ran: 0,
            audit: Vec::new(),
            established: Vec::new(),
            answers: Vec::new(),
            timeouts: 0,
            events: Vec::new(),
        }
    }

    fn identity_hash(&self) -> AddressHash {
        self.transport.identity().hash()
    }

    fn respond(&mut self, now: Instant, (link, request): (LinkId, AddressHash), f: &GridFrame) {
        let value = rmpv::Value::Binary(f.encode());
        self.transport
            .link_respond(now, &link, &request, &value)
            .unwrap();
    }

    fn on_frame(
        &mut self,
        now: Instant,
        link: LinkId,
        request: AddressHash,
        data: rmpv::Value,
        caller: Option<AddressHash>,
    ) {
        let rmpv::Value::Binary(bytes) = data else {
            panic!("frames travel as bytes");
        };
        let frame = GridFrame::decode(&bytes).unwrap();
        let level = caller.map_or(TrustLevel::Provisional, |c| {
            self.levels
                .get(&c)
                .copied()
                .unwrap_or(TrustLevel::Provisional)
        });
        let sender = Sender {
            caller,
            level,
            link: Some(link),
        };
        let wall = now.as_millis();
        match self
            .inbound
            .handle(wall, wall, &self.acl, sender, &frame, (link, request))
        {
            Verdict::Drop { audit } => self.audit.extend(audit),
            Verdict::Answer {
                to,
                response,
                audit,
            } => {
                self.audit.extend(audit);
                self.respond(now, to, &response);
            }
            Verdict::Run { key, to } => {
                let Body::Request { command, .. } = &frame.body else {
                    unreachable!("only requests run")
                };
                let result = match command.as_str() {
                    "grid/ping" => b"\"pong\"".to_vec(),
                    "test/count" => {
                        self.ran += 1;
                        self.ran.to_string().into_bytes()
                    }
                    _ => b"null".to_vec(),
                };
                self.audit.push(Audit::Success);
                let response = frame.respond(Outcome::Ok(result), wall);
                for copy in self.inbound.finish(&key, &response) {
                    self.respond(now, copy, &response);
                }
                self.respond(now, to, &response);
            }
        }
    }

    /// Emit an event to every link subscribed to it.
    fn emit(&mut self, now: Instant, event: &str) -> usize {
        let links = self.inbound.subscriptions.matching(event);
        for link in &links {
            let f = GridFrame {
                correlation: 0,
                source: self.grid.0,
                target: [0; 16],
                timestamp_ms: now.as_millis(),
                ttl_ms: 0,
                body: Body::Event {
                    event: event.into(),
                    payload: b"1".to_vec(),
                },
            };
            self.transport
                .link_channel_send(now, link, grid::frame::CHANNEL_MSGTYPE, &f.encode())
                .unwrap();
        }
        links.len()
    }
}

impl Host for GridHost {
    fn transport(&mut self) -> &mut Transport {
        &mut self.transport
    }

    fn handle_event(&mut self, now: Instant, event: Event) {
        let Event::Link(e) = event else { return };
        match e {
            LinkEvent::Established {
                link,
                initiator: true,
                ..
            } => self.established.push(link),
            LinkEvent::Request {
                link,
                request_id,
                path_hash: p,
                data,
                remote_identity,
            } if p == path_hash(FRAME_PATH) => self.on_frame(
                now,
                link,
                request_id,
                data,
                remote_identity.map(|i| i.hash()),
            ),
            LinkEvent::Response {
                data: rmpv::Value::Binary(b),
                ..
            } => self.answers.push(GridFrame::decode(&b).unwrap()),
            LinkEvent::RequestTimeout { .. } => self.timeouts += 1,
            LinkEvent::Closed { link, .. } => self.inbound.subscriptions.unsubscribe(link, None),
            LinkEvent::ChannelMessage { data, .. } => {
                self.events.push(GridFrame::decode(&data).unwrap())
            }
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

    net.nodes[SERVER].levels.insert(me, TrustLevel::Trusted);
    let answer = ask(&mut net, l, 2, "test/count").unwrap();
    assert_eq!(answer.body, Body::Response(Outcome::Ok(b"1".to_vec())));

    // Blocked: no answer at all, only an audit record.
    net.nodes[SERVER].levels.insert(me, TrustLevel::Blocked);
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
    assert_eq!(
        answer.body,
        Body::Response(Outcome::Ok(b"\"pong\"".to_vec()))
    );
    let answer = ask(&mut net, l, 2, "test/count").unwrap();
    assert_eq!(error_code(&answer), Some(ErrorCode::Denied));
    assert_eq!(net.nodes[SERVER].ran, 0);
}

#[test]
fn a_request_sent_again_on_a_new_link_runs_once() {
    let mut net = network();
    let me = net.nodes[CLIENT].identity_hash();
    net.nodes[SERVER].levels.insert(me, TrustLevel::Trusted);
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
    assert!(matches!(&net.nodes[CLIENT].events[0].body,
        Body::Event { event, .. } if event == "sensor:temp"));

    let now = net.now;
    net.nodes[CLIENT].transport.close_link(now, &l).unwrap();
    net.run(Duration::from_secs(1));
    let now = net.now;
    assert_eq!(net.nodes[SERVER].emit(now, "sensor:temp"), 0);
}
