//! Delay-tolerant delivery between real `grid node` processes: store-and-forward through
//! a custody node between two nodes that are never up at the same time, with the custody
//! node killed (SIGKILL) and restarted while it holds the bundles.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(40);

fn client(port: u16) -> String {
    format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
    )
}

/// Bundles the node holds for `dest`.
fn held_for(g: &Grid, dest: &str) -> u64 {
    g.status()["bundles"]["waiting"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["destination"] == dest)
        .and_then(|w| w["bundles"].as_u64())
        .unwrap_or(0)
}

fn queued(g: &Grid) -> u64 {
    g.status()["bundles"]["queued"].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn store_and_forward_through_a_custody_node_between_nodes_never_up_together() {
    let _slot = slot();
    let port = free_port();
    let mut custody = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\ntransport = true\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n[bundles]\ncustody = true\n"
    ));
    let custody_dest = custody.destination();

    // A and B name the custody node in their config (a node announcing the custody role
    // is used only when trusted).
    let client = |port: u16| {
        format!(
            "{}[bundles]\ncustody_peers = [\"{custody_dest}\"]\n",
            client(port)
        )
    };
    // B is up first, long enough for the custody node to hear it; then it goes.
    let b = Grid::start(&client(port));
    let b_dest = b.destination();
    wait_for(T, "the custody node hears B", || {
        custody.json(&["path", &b_dest])["ok"]
            .as_bool()
            .filter(|ok| *ok)
    });
    let b_dir = b.stop();

    // A comes up after B has gone, finds the custody node, and sends B a command.
    let a = Grid::start(&client(port));
    let a_dest = a.destination();
    wait_for(T, "A hears the custody node's announce", || {
        a.status()["peers"].as_array().and_then(|peers| {
            peers
                .iter()
                .any(|p| {
                    p["node"] == custody_dest.as_str()
                        && p["capabilities"]["roles"]
                            .as_array()
                            .is_some_and(|r| r.iter().any(|x| x == "custody"))
                })
                .then_some(())
        })
    });
    let v = a.json(&["exec", &b_dest, "grid/ping", "--ttl", "10m", "--detach"]);
    let handle = v["handle"].as_str().expect("a handle").to_string();
    wait_for(T, "A hands the command to the custody node", || {
        // The custodian has it first, then A drops its own copy (in that order, so a
        // copy not yet queued at A is not mistaken for one handed over).
        (held_for(&custody, &b_dest) == 1 && queued(&a) == 0).then_some(())
    });
    let a_dir = a.stop();

    // The custody node dies without warning and comes back: the bundle is still there.
    custody.restart();
    assert_eq!(held_for(&custody, &b_dest), 1, "bundle survived kill -9");

    // B comes back while A is away: it gets the command, runs it, and leaves the answer
    // with the custody node.
    let b = Grid::start_in(b_dir);
    wait_for(T, "B's answer waits at the custody node", || {
        (held_for(&custody, &b_dest) == 0 && held_for(&custody, &a_dest) == 1).then_some(())
    });
    let audit = std::fs::read_to_string(b.dir.0.join("audit.jsonl")).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("grid/ping") && l.contains("\"in\"")),
        "B ran the command: {audit}"
    );
    let b_dir = b.stop();
    custody.restart();
    assert_eq!(held_for(&custody, &a_dest), 1, "answer survived kill -9");

    // A comes back and collects the result of the command it issued before.
    let a = Grid::start_in(a_dir);
    let outcome: Value = wait_for(T, "A collects the result", || {
        let v = a.json(&["exec", "--result", &handle]);
        (v["state"] == "done").then(|| v["outcome"].clone())
    });
    assert_eq!(outcome["ok"], true, "{outcome}");
    assert_eq!(outcome["result"]["pong"], true);
    assert_eq!(outcome["result"]["node"], b_dest.as_str());
    wait_for(T, "the custody node drops what was delivered", || {
        (queued(&custody) == 0).then_some(())
    });
    // And it was the result, kept across A's restart, not a new run.
    let (ok, out, _) = a.cli(&["exec", "--result", &handle]);
    assert!(ok && out.contains("pong"), "{out}");
    drop(b_dir);
}

/// `grid exec --ttl` issued while the target is down waits, and prints the result once
/// the target comes up and answers.
#[test]
fn grid_exec_with_a_ttl_waits_for_an_offline_node() {
    let _slot = slot();
    let port = free_port();
    let a = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let b = Grid::start(&client(port));
    let b_dest = b.destination();
    wait_for(T, "A hears B", || {
        a.json(&["path", &b_dest])["ok"].as_bool().filter(|ok| *ok)
    });
    let b_dir = b.stop();
    wait_for(T, "A sees B gone", || {
        let (ok, _, _) = a.cli(&["path", &b_dest, "--timeout", "1"]);
        (!ok).then_some(())
    });
    let (config, dest) = (a.dir.0.clone(), b_dest.clone());
    let waiting = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_grid"))
            .arg("--config")
            .arg(&config)
            .args(["exec", "--ttl", "2m", &dest, "grid/ping", "--json"])
            .output()
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !waiting.is_finished(),
        "grid exec waits for the offline node"
    );
    assert_eq!(queued(&a), 1, "the command waits as a bundle");
    let _b = Grid::start_in(b_dir);
    let out = waiting.join().unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["result"]["pong"], true, "{v}");
    assert_eq!(v["result"]["node"], b_dest.as_str());
}

/// How a node leaves in [`a_stale_path_falls_back_to_a_bundle`], and for how long.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// SIGTERM, back after 8 s.
    Term,
    /// SIGKILL, back after 8 s.
    Kill,
    /// SIGKILL, back after 25 s: the direct attempt gives up first, so the command
    /// must be waiting as a bundle.
    KillLong,
}

/// The reproduction from the delay-tolerance issue: A and C are clients of transport node
/// B and announce every 10 s. A reaches C; C stops; within 2 s A runs
/// `grid exec --ttl 80s <C> grid/ping` and `grid emit --to <C> --ttl 80s`; C starts again
/// 8 s later. A still has a path (and perhaps a link) to C that leads nowhere: the direct
/// attempt fails, the command goes as a bundle, and the result is printed soon after C is
/// back. The event reaches C too.
fn a_stale_path_falls_back_to_a_bundle(stop: Stop) {
    let _slot = slot();
    let port = free_port();
    let _b = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\ntransport = true\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let client = format!(
        "[node]\nannounce_interval = \"10s\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
    );
    let a = Grid::start(&client);
    let c = Grid::start(&client);
    let c_dest = c.destination();
    wait_for(T, "A reaches C", || {
        let (ok, out, _) = a.cli(&["exec", &c_dest, "grid/ping", "{}", "--json"]);
        (ok && out.contains("pong")).then_some(())
    });

    let c_dir = match stop {
        Stop::Term => c.terminate(),
        Stop::Kill | Stop::KillLong => c.stop(),
    };
    let stopped = std::time::Instant::now();
    let (config, dest) = (a.dir.0.clone(), c_dest.clone());
    let exec = std::thread::spawn(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_grid"))
            .arg("--config")
            .arg(&config)
            .args(["exec", "--ttl", "80s", &dest, "grid/ping", "{}", "--json"])
            .output();
        (out, std::time::Instant::now())
    });
    let (ok, _, err) = a.cli(&[
        "emit",
        "--to",
        &c_dest,
        "--ttl",
        "80s",
        "test:stale:path",
        "{\"n\": 1}",
    ]);
    assert!(ok, "grid emit --to: {err}");
    assert!(
        stopped.elapsed() < Duration::from_secs(2),
        "sent within 2 s"
    );

    if let Stop::KillLong = stop {
        wait_for(T, "the command waits as a bundle", || {
            (queued(&a) == 2).then_some(())
        });
        std::thread::sleep(Duration::from_secs(25).saturating_sub(stopped.elapsed()));
    }
    std::thread::sleep(Duration::from_secs(8).saturating_sub(stopped.elapsed()));
    assert!(!exec.is_finished(), "grid exec waits for C");
    let c = Grid::start_in(c_dir);
    let back = std::time::Instant::now();
    let (out, done) = exec.join().unwrap();
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stop:?}: grid exec failed: {stdout} {}\nA's log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        a.log()
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["result"]["pong"], true, "{v}");
    assert_eq!(v["result"]["node"], c_dest.as_str());
    let took = done.saturating_duration_since(back);
    eprintln!("{stop:?}: the result came {took:?} after C was back");
    assert!(
        took <= Duration::from_secs(10),
        "{stop:?}: the result came {took:?} after C was back (goal: within 10 s of its announce)"
    );
    // The event arrives as well, from A.
    let (ok, out, err) = c.cli(&[
        "listen",
        "test:stale:*",
        "--recent",
        "--count",
        "1",
        "--timeout",
        "30",
        "--json",
    ]);
    assert!(ok, "grid listen: {err}");
    let e: Value = serde_json::from_str(out.lines().next().unwrap_or("null")).unwrap();
    assert_eq!(e["event"], "test:stale:path", "{out}");
    assert_eq!(e["payload"]["n"], 1, "{out}");
    assert_eq!(e["node"], a.destination().as_str(), "{out}");
}

#[test]
fn a_stale_path_falls_back_to_a_bundle_after_sigterm() {
    a_stale_path_falls_back_to_a_bundle(Stop::Term);
}

#[test]
fn a_stale_path_falls_back_to_a_bundle_after_sigkill() {
    a_stale_path_falls_back_to_a_bundle(Stop::Kill);
}

#[test]
fn a_stale_path_falls_back_to_a_bundle_when_the_node_stays_away() {
    a_stale_path_falls_back_to_a_bundle(Stop::KillLong);
}
