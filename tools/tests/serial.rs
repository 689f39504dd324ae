//! Serial lines against RNS 1.5.7: Grid's serial (HDLC) and KISS TNC interfaces and
//! RNS's SerialInterface and KISSInterface on the two ends of a null-modem cable made of
//! two pseudo-terminals.

mod common;

use std::time::Duration;

use common::*;
use grid_tools::radio_sim::pty::{null_modem, VirtualPort};

const T: Duration = Duration::from_secs(30);

/// A null-modem cable between `DIR/a` and `DIR/b`, relayed by a thread of its own.
fn cable(dir: &std::path::Path) -> (String, String) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    let (pa, pb) = (a.clone(), b.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let ports = (
                VirtualPort::create(&pa).unwrap(),
                VirtualPort::create(&pb).unwrap(),
            );
            tx.send(()).unwrap();
            null_modem(ports.0, ports.1).await;
        });
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the cable is ready");
    (a.display().to_string(), b.display().to_string())
}

fn over(kind: &str) {
    let _slot = slot();
    let dir = TempDir::new("cable");
    let (a, b) = cable(&dir.0);
    let mut py = Py::start(&["--interface".to_string(), format!("{kind}={a}")]);
    let g = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"{kind}\"\nport = \"{b}\"\nspeed = 115200\n"
    ));
    wait_for(T, "the serial interface up", || {
        g.status()["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"].as_str().unwrap_or("").starts_with(kind) && i["online"] == true)
            .then_some(())
    });
    // Announces both ways.
    py.announce("over the cable");
    wait_for(T, "Grid learns the RNS peer", || {
        let (ok, out, _) = g.cli(&["path", &py.destination(), "--timeout", "5", "--json"]);
        (ok && out.contains("\"hops\":1")).then_some(())
    });
    g.json(&["announce"]);
    py.announce_event(&g.destination(), T);
    // A packet with its proof, and links both ways.
    py.send_and_prove(&g.destination(), "grid.node", "serial packet");
    let v = py.pinged_by(&g, "serial");
    assert_eq!(
        v["mtu"], 500,
        "links over a serial line run at MTU 500: {v}"
    );
    py.link_ping(&g.destination(), "grid.node", "back", T);
}

#[test]
fn grid_serial_and_rns_serial_interface() {
    over("serial");
}

#[test]
fn grid_kiss_and_rns_kiss_interface() {
    over("kiss");
}
