//! Channels and Buffer streams between Grid and RNS 1.5.7, in both link roles, at link
//! MTU 16384 (TCP) and 500 (UDP).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(60);

/// The two sides of a test network.
#[derive(Clone, Copy)]
enum Net {
    /// Grid is a TCP server on this port; RNS connects (link MTU 16384).
    Tcp(u16),
    /// UDP both ways: (grid listens, rns listens) (link MTU 500).
    Udp(u16, u16),
}

impl Net {
    fn start(self) -> (Grid, Py, usize) {
        let (iface, py_iface, mtu) = match self {
            Net::Tcp(p) => (
                format!("type = \"tcp_server\"\nlisten = \"127.0.0.1:{p}\""),
                format!("tcp_client=127.0.0.1:{p}"),
                16384,
            ),
            Net::Udp(g, r) => (
                format!("type = \"udp\"\nlisten = \"127.0.0.1:{g}\"\nforward = \"127.0.0.1:{r}\""),
                format!("udp={r}:{g}"),
                500,
            ),
        };
        let g = Grid::start(&format!(
            "[node]\nannounce_interval = \"1h\"\n[[interface]]\n{iface}\n"
        ));
        let py = Py::start(&["--interface".to_string(), py_iface]);
        (g, py, mtu)
    }
}

/// Bytes from a `grid link recv` data field: text, or `{"hex": …}`.
fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(o) => ::hex::decode(o["hex"].as_str().unwrap()).unwrap(),
        other => panic!("unexpected data {other}"),
    }
}

/// Poll `grid link recv` until the channel message `want` and (if `stream`) a closed
/// stream 0 have arrived; returns the stream's bytes.
fn grid_receive(g: &Grid, link: &str, want: Option<&str>, stream: bool) -> Vec<u8> {
    let mut messages: Vec<Vec<u8>> = Vec::new();
    let mut data = Vec::new();
    let mut eof = !stream;
    wait_for(T, &format!("Grid to receive on {link}"), || {
        let v = g.json(&["link", "recv", link]);
        for m in v["messages"].as_array().unwrap() {
            assert_eq!(m["msgtype"], 0x0101, "{m}");
            messages.push(bytes_of(&m["data"]));
        }
        for s in v["streams"].as_array().unwrap() {
            assert_eq!(s["stream_id"], 0);
            assert_eq!(s["overflowed"], false);
            data.extend(bytes_of(&s["data"]));
            eof |= s["eof"] == true;
        }
        let got = want.is_none_or(|w| messages.iter().any(|m| m == w.as_bytes()));
        (got && eof).then_some(())
    });
    data
}

fn sha(b: &[u8]) -> String {
    ::hex::encode(rns_core::hash::full_hash(b))
}

/// Grid opens a link to RNS; a channel message goes out and its echo comes back; a stream
/// (compressible and random data) goes out, RNS echoes it on its own stream, and both
/// ends see every byte.
fn grid_initiated(g: &Grid, py: &mut Py, mtu: usize, dir: &TempDir) {
    let v = g.json(&["link", "open", &py.destination(), "--timeout", "30"]);
    let link = v["link"].as_str().unwrap().to_string();
    assert_eq!(v["mtu"], mtu, "{v}");
    py.expect(T, "link established at RNS", |v| {
        v["event"] == "link_established"
    });

    let v = g.json(&["link", "channel", &link, "hello channel"]);
    assert_eq!(v["ok"], true, "{v}");
    let m = py.expect(T, "channel message at RNS", |v| {
        v["event"] == "channel_message"
    });
    assert_eq!(m["data"], hex("hello channel"));

    let mut data = b"grid and reticulum, side by side. ".repeat(2000);
    data.extend(common::noise(mtu as u64, 120_000));
    let file = dir.0.join("stream.bin");
    std::fs::write(&file, &data).unwrap();
    let v = g.json(&[
        "link",
        "stream",
        &link,
        "--file",
        file.to_str().unwrap(),
        "--eof",
    ]);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["bytes"], data.len());
    let r = py.expect(T, "RNS reads the whole stream", |v| {
        v["event"] == "stream_received"
    });
    assert_eq!(r["bytes"], data.len());
    assert_eq!(r["sha256"], sha(&data));

    let echoed = grid_receive(g, &link, Some("echo:hello channel"), true);
    assert_eq!(echoed.len(), data.len());
    assert_eq!(
        sha(&echoed),
        sha(&data),
        "RNS's echo of the stream arrives intact"
    );
    g.json(&["link", "close", &link]);
}

/// RNS opens a link to Grid; RNS sends a channel message and a random stream.
fn rns_initiated(g: &Grid, py: &mut Py, mtu: usize) {
    py.cmd(json!({"cmd": "link_open", "destination": g.destination(), "name": "grid.node", "timeout": 30}));
    let v = py.expect(T, "link established at RNS", |v| {
        v["event"] == "link_established" && v["initiator"] == true
    });
    let link = v["link"].as_str().unwrap().to_string();
    assert_eq!(v["mtu"], mtu);
    py.cmd(json!({"cmd": "channel_send", "link": link, "data": "from rns"}));
    let s = py.expect(T, "RNS sent the message", |v| v["event"] == "channel_sent");
    assert_eq!(s["ok"], true);
    py.cmd(json!({"cmd": "stream_send", "link": link, "size": 100_000}));
    let sent = py.expect(T, "RNS wrote the stream", |v| v["event"] == "stream_sent");
    let got = grid_receive(g, &link, Some("from rns"), true);
    assert_eq!(got.len(), 100_000);
    assert_eq!(sent["sha256"], sha(&got));
}

fn both_roles(net: Net) {
    let _slot = slot();
    let dir = TempDir::new("channel");
    let (g, mut py, mtu) = net.start();
    grid_initiated(&g, &mut py, mtu, &dir);
    rns_initiated(&g, &mut py, mtu);
}

#[test]
fn channels_and_streams_with_rns_over_tcp() {
    both_roles(Net::Tcp(free_port()));
}

#[test]
fn channels_and_streams_with_rns_at_mtu_500() {
    both_roles(Net::Udp(free_port(), free_port()));
}

#[test]
fn channel_cli_rejects_reserved_types_and_empty_writes() {
    let _slot = slot();
    let (g, py, _) = Net::Tcp(free_port()).start();
    let v = g.json(&["link", "open", &py.destination(), "--timeout", "30"]);
    let link = v["link"].as_str().unwrap().to_string();
    let (ok, _, err) = g.cli(&["link", "channel", &link, "x", "--msgtype", "65280"]);
    assert!(!ok && err.contains("reserved"), "{err}");
    let (ok, _, err) = g.cli(&["link", "stream", &link]);
    assert!(!ok && err.contains("nothing to write"), "{err}");
    let (ok, _, err) = g.cli(&["link", "channel", "00112233445566778899aabbccddeeff", "x"]);
    assert!(!ok && err.contains("no such link"), "{err}");
}
