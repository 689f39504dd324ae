//! Links between Grid and RNS 1.5.7, in both roles, directly and through transport nodes.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn grid_server(port: u16, transport: bool) -> Grid {
    Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\ntransport = {transport}\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ))
}

/// A Grid TCP server and an RNS peer connected to it as a client.
fn grid_server_with_rns_client() -> (Grid, Py) {
    let port = free_port();
    let g = grid_server(port, false);
    let py = Py::start(&args(&[
        "--interface",
        &format!("tcp_client=127.0.0.1:{port}"),
    ]));
    (g, py)
}

fn grid_client(port: u16) -> Grid {
    Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
    ))
}

/// Text of the packets a Grid node has received on a link, waiting until `want` shows up.
fn grid_recv_until(g: &Grid, link: &str, want: &str) {
    let mut seen: Vec<String> = Vec::new();
    wait_for(T, &format!("Grid to receive {want:?} on {link}"), || {
        let v = g.json(&["link", "recv", link]);
        seen.extend(
            v["packets"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|p| p.as_str().map(String::from)),
        );
        seen.iter().any(|p| p == want).then_some(())
    });
}

fn grid_link_state(g: &Grid, link: &str) -> Option<String> {
    g.json(&["link", "list"])["links"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["link"] == link)
        .map(|l| l["state"].as_str().unwrap().to_string())
}

fn py_link_event(py: &mut Py, event: &'static str, link: &str) -> Value {
    let l = link.to_string();
    py.expect(T, event, move |v| {
        v["event"] == event && v["link"] == l.as_str()
    })
}

/// Grid opens a link to the RNS echo destination and exercises it.
fn grid_to_rns(g: &Grid, py: &mut Py) -> String {
    let v = g.json(&["link", "open", &py.destination()]);
    let link = v["link"].as_str().unwrap().to_string();
    assert_eq!(v["mtu"], 16384, "TCP links run at MTU 16384: {v}");
    py.expect(T, "link established at RNS", |v| {
        v["event"] == "link_established"
    });
    // Packet with an explicit proof from RNS; RNS echoes it back.
    let v = g.json(&["link", "send", &link, "hello link"]);
    assert_eq!(v["ok"], true);
    let pk = py_link_event(py, "link_packet", &link);
    assert_eq!(pk["data"], hex("hello link"));
    grid_recv_until(g, &link, "echo:hello link");
    // Request and response.
    let v = g.json(&["link", "request", &link, "/ping", "x"]);
    assert_eq!(v["response"], "pong:x");
    link
}

/// RNS opens a link to Grid's grid.node and exercises it.
fn rns_to_grid(g: &Grid, py: &mut Py) -> String {
    py.cmd(json!({"cmd": "link_open", "destination": g.destination(), "name": "grid.node", "timeout": 15}));
    let v = py.expect(T, "link established at RNS", |v| {
        v["event"] == "link_established" && v["initiator"] == true
    });
    let link = v["link"].as_str().unwrap().to_string();
    assert_eq!(v["mtu"], 16384);
    wait_for(T, "Grid sees the link active", || {
        (grid_link_state(g, &link).as_deref() == Some("active")).then_some(())
    });
    // Packet with an explicit proof from Grid.
    py.cmd(json!({"cmd": "link_send", "link": link, "data": "hi grid"}));
    py_link_event(py, "link_proof", &link);
    grid_recv_until(g, &link, "hi grid");
    // Grid's built-in /ping answers.
    py.cmd(json!({"cmd": "link_request", "link": link, "path": "/ping", "data": "y"}));
    let r = py.expect(T, "response", |v| {
        v["event"] == "response" || v["event"] == "response_failed"
    });
    assert_eq!(r["data"], hex("pong:y"), "{r}");
    // A packet from Grid to RNS is proven by RNS (the initiator proves too).
    let v = g.json(&["link", "send", &link, "to rns"]);
    assert_eq!(v["ok"], true);
    let pk = py_link_event(py, "link_packet", &link);
    assert_eq!(pk["data"], hex("to rns"));
    // RNS identifies itself on the link; Grid records who it is.
    py.cmd(json!({"cmd": "link_identify", "link": link}));
    let want = py.ready["identity"].as_str().unwrap().to_string();
    wait_for(T, "Grid learns the initiator's identity", || {
        g.json(&["link", "list"])["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["link"] == link.as_str() && l["remote_identity"] == want.as_str())
            .then_some(())
    });
    link
}

#[test]
fn links_between_grid_and_rns_both_ways() {
    let _slot = slot();
    let (g, mut py) = grid_server_with_rns_client();

    let l1 = grid_to_rns(&g, &mut py);
    // LINKCLOSE from Grid is seen by RNS.
    g.json(&["link", "close", &l1]);
    py_link_event(&mut py, "link_closed", &l1);

    let l2 = rns_to_grid(&g, &mut py);
    // LINKCLOSE from RNS is seen by Grid.
    py.cmd(json!({"cmd": "link_close", "link": l2}));
    wait_for(T, "Grid sees the link closed", || {
        grid_link_state(&g, &l2).is_none().then_some(())
    });
}

#[test]
fn links_with_grid_as_tcp_client() {
    let _slot = slot();
    let port = free_port();
    let mut py = Py::start(&args(&[
        "--interface",
        &format!("tcp_server=127.0.0.1:{port}"),
    ]));
    let g = grid_client(port);
    let l1 = grid_to_rns(&g, &mut py);
    // LINKCLOSE from RNS (responder side) is seen by Grid.
    py.cmd(json!({"cmd": "link_close", "link": l1}));
    wait_for(T, "Grid sees the link closed", || {
        grid_link_state(&g, &l1).is_none().then_some(())
    });
    let l2 = rns_to_grid(&g, &mut py);
    g.json(&["link", "close", &l2]);
    py_link_event(&mut py, "link_closed", &l2);
}

#[test]
fn idle_links_stay_up_on_keepalives_in_both_roles() {
    let _slot = slot();
    let (g, mut py) = grid_server_with_rns_client();
    // Grid initiates one link, RNS the other; both then stay idle for over a minute.
    let v = g.json(&["link", "open", &py.destination()]);
    let grid_initiated = v["link"].as_str().unwrap().to_string();
    py.cmd(json!({"cmd": "link_open", "destination": g.destination(), "name": "grid.node"}));
    let v = py.expect(T, "RNS-initiated link", |v| {
        v["event"] == "link_established" && v["initiator"] == true
    });
    let rns_initiated = v["link"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(62));
    for l in [&grid_initiated, &rns_initiated] {
        assert_eq!(
            grid_link_state(&g, l).as_deref(),
            Some("active"),
            "link {l} at Grid"
        );
        py.cmd(json!({"cmd": "link_status", "link": l}));
        let st = py_link_event(&mut py, "link_status", l);
        assert_eq!(st["status"], 2, "link {l} at RNS is not ACTIVE: {st}");
    }
    assert!(
        !py.seen.iter().any(|v| v["event"] == "link_closed"),
        "a link closed: {:?}",
        py.seen
    );
    // And they still carry traffic.
    assert_eq!(
        g.json(&["link", "request", &grid_initiated, "/ping", "z"])["response"],
        "pong:z"
    );
}

#[test]
fn rns_link_through_a_grid_transport_node() {
    let _slot = slot();
    let port = free_port();
    let g = grid_server(port, true);
    let mut p1 = Py::start(&args(&[
        "--interface",
        &format!("tcp_client=127.0.0.1:{port}"),
    ]));
    let mut p2 = Py::start(&args(&[
        "--interface",
        &format!("tcp_client=127.0.0.1:{port}"),
    ]));
    p2.announce("p2");
    let d2 = p2.destination();
    // RNS ingress control may hold a relayed announce for ~20 s (see interop.rs).
    p1.announce_event(&d2, Duration::from_secs(45));
    p1.cmd(json!({"cmd": "link_open", "destination": d2, "name": "rnsinterop.echo"}));
    let v = p1.expect(T, "link through Grid", |v| {
        v["event"] == "link_established" && v["initiator"] == true
    });
    let link = v["link"].as_str().unwrap().to_string();
    assert_eq!(v["mtu"], 16384);
    p2.expect(T, "link at p2", |v| v["event"] == "link_established");
    assert!(g.status()["link_table"].as_u64().unwrap() >= 1);
    p1.cmd(json!({"cmd": "link_send", "link": link, "data": "through grid"}));
    py_link_event(&mut p1, "link_proof", &link);
    let echo = py_link_event(&mut p1, "link_packet", &link);
    assert_eq!(echo["data"], hex("echo:through grid"));
    p1.cmd(json!({"cmd": "link_request", "link": link, "path": "/ping", "data": "t"}));
    let r = p1.expect(T, "response", |v| {
        v["event"] == "response" || v["event"] == "response_failed"
    });
    assert_eq!(r["data"], hex("pong:t"));
    p1.cmd(json!({"cmd": "link_close", "link": link}));
    py_link_event(&mut p2, "link_closed", &link);
}

#[test]
fn grid_link_through_rnsd() {
    let _slot = slot();
    let port = free_port();
    let _rnsd = Rnsd::start(port, true, "");
    let g1 = grid_client(port);
    let g2 = grid_client(port);
    let d1 = g1.destination();
    wait_for(T, "g2 learns g1 through rnsd", || {
        g2.cli(&["path", &d1, "--timeout", "2"]).0.then_some(())
    });
    let v = g2.json(&["link", "open", &d1]);
    let link = v["link"].as_str().unwrap().to_string();
    assert_eq!(v["mtu"], 16384);
    assert_eq!(g2.json(&["link", "send", &link, "via rnsd"])["ok"], true);
    grid_recv_until(&g1, &link, "via rnsd");
    assert_eq!(
        g2.json(&["link", "request", &link, "/ping", "r"])["response"],
        "pong:r"
    );
    assert_eq!(
        g1.json(&["link", "send", &link, "back via rnsd"])["ok"],
        true
    );
    grid_recv_until(&g2, &link, "back via rnsd");
    g2.json(&["link", "close", &link]);
    wait_for(T, "g1 sees the close", || {
        grid_link_state(&g1, &link).is_none().then_some(())
    });
}

/// Requests and responses over 1 MiB travel as several resource segments, as RNS sends
/// them: Grid's 1.5 MB request to RNS's /ping comes back as a 1.5 MB response, and the
/// same the other way round.
#[test]
fn requests_and_responses_over_1_mib_both_ways() {
    let _slot = slot();
    let (g, mut py) = grid_server_with_rns_client();
    let big: String = (0..1_500_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let file = g.dir.0.join("big-request");
    std::fs::write(&file, &big).unwrap();
    let v = g.json(&["link", "open", &py.destination()]);
    let link = v["link"].as_str().unwrap().to_string();
    let v = g.json(&[
        "link",
        "request",
        &link,
        "/ping",
        "--file",
        file.to_str().unwrap(),
        "--timeout",
        "120",
    ]);
    let response = v["response"].as_str().unwrap_or_default();
    assert!(
        response.len() == big.len() + 5 && response.starts_with("pong:") && response[5..] == big,
        "RNS's answer to a 1.5 MB request: {} bytes",
        response.len()
    );

    py.cmd(json!({"cmd": "link_open", "destination": g.destination(), "name": "grid.node", "timeout": 15}));
    let v = py.expect(T, "link established at RNS", |v| {
        v["event"] == "link_established" && v["initiator"] == true
    });
    let link = v["link"].as_str().unwrap().to_string();
    py.cmd(
        json!({"cmd": "link_request", "link": link, "path": "/ping", "data": big, "timeout": 120}),
    );
    let r = py.expect(Duration::from_secs(150), "response", |v| {
        v["event"] == "response" || v["event"] == "response_failed"
    });
    assert!(
        r["data"].as_str().map(str::len) == Some(2 * (big.len() + 5)),
        "Grid's answer to RNS's 1.5 MB request: {}",
        r["event"]
    );
}
