//! `grid mcp` driven by a real MCP client: the Python `mcp` SDK (from PyPI, installed
//! into `.venv` by scripts/test.sh), over stdio, against two real nodes. A holds a skill;
//! B's owner runs `grid mcp`: the agent lists the tools, reads B's status, finds A's
//! skill by description, pings A, emits and waits for an event, and gets tool errors
//! (not a dead server) for a node that is not there and a malformed hash.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

#[test]
fn an_mcp_client_uses_the_mesh_through_grid_mcp() {
    let _slot = slot();
    let port = free_port();
    let a = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let b = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
    ));
    for g in [&a, &b] {
        wait_for(T, "the genome service", || {
            g.cli(&["adapter", "list", "--json"]).0.then_some(())
        });
    }
    let (_pkgs, tides) = tide_package();
    a.json(&["adapter", "publish", tides.to_str().unwrap()]);
    wait_for(T, "A's skill found from B", || {
        let v = b.json(&["skills", "search", "when is high tide"]);
        (v[0]["name"] == "tide-tables").then_some(())
    });

    let py = python();
    let check = Command::new(&py)
        .args(["-c", "import mcp"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{} has no `mcp` package: run ./scripts/test.sh (it installs mcp into .venv)",
        py.display()
    );
    let client = workspace().join("tools/tests/mcp/client.py");
    let out = Command::new(&py)
        .arg(&client)
        .arg(env!("CARGO_BIN_EXE_grid"))
        .arg(&b.dir.0)
        .arg(a.destination())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the MCP client failed:\n{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    eprintln!("{v:#}");

    assert_eq!(v["server"], "grid");
    let tools = v["tools"].as_object().unwrap();
    for name in [
        "search_skills",
        "ask",
        "exec",
        "emit",
        "wait_events",
        "status",
        "fetch_adapter",
        "run_pipeline",
        "pipeline_status",
    ] {
        let t = &tools[name];
        assert!(
            t["description"].as_str().is_some_and(|d| d.len() > 40),
            "{name}: {t}"
        );
    }
    assert_eq!(
        v["tools"]["exec"]["required"],
        serde_json::json!(["command", "node"])
    );

    let calls = &v["calls"];
    let ok = |k: &str| -> Value {
        let c = &calls[k];
        assert_eq!(c["is_error"], false, "{k}: {c}");
        serde_json::from_str(c["text"].as_str().unwrap()).unwrap()
    };
    assert_eq!(ok("status")["destination"], b.destination());
    let found = ok("search");
    assert_eq!(found[0]["name"], "tide-tables", "{found}");
    let ping = ok("ping");
    assert_eq!(ping["result"]["node"], a.destination(), "{ping}");
    let waited = ok("wait");
    assert_eq!(waited["events"][0]["event"], "mcp:hello", "{waited}");
    assert_eq!(waited["events"][0]["payload"]["from"], "agent", "{waited}");
    for (k, why) in [
        ("bad_node", "00000000000000000000000000000000"),
        ("bad_hash", "is not a content hash"),
    ] {
        let c = &calls[k];
        assert_eq!(c["is_error"], true, "{k}: {c}");
        assert!(c["text"].as_str().unwrap().contains(why), "{k}: {c}");
    }
}

/// `grid mcp --http` on loopback: the Python SDK's streamable HTTP client lists the
/// tools and resources, reads the status resource and calls a tool; the official
/// conformance suite (`@modelcontextprotocol/conformance` 0.1.13, from npm, installed
/// by scripts/test.sh) runs every server scenario and must fail none but those listed
/// with their reasons in tools/tests/mcp/conformance-expected-failures.yaml.
#[test]
fn grid_mcp_over_http_serves_clients_and_the_conformance_suite() {
    let _slot = slot();
    let g = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{}\"\n",
        free_port()
    ));
    // Only loopback: the tools act as the node's owner.
    let (ok, _, err) = g.cli(&["mcp", "--http", "0.0.0.0:8931"]);
    assert!(!ok && err.contains("only loopback"), "{err}");

    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_grid"))
        .arg("--config")
        .arg(&g.dir.0)
        .args(["mcp", "--http", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _stop = KillOnDrop(&mut server);
    wait_for(T, "grid mcp --http listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    let url = format!("http://127.0.0.1:{port}/mcp");

    let out = Command::new(python())
        .arg(workspace().join("tools/tests/mcp/http_client.py"))
        .arg(&url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the HTTP client failed:\n{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["tools"].as_array().unwrap().len() >= 9, "{v}");
    assert_eq!(
        v["resources"],
        serde_json::json!(["grid://node/adapters", "grid://node/status"])
    );
    assert_eq!(v["status_destination"], g.destination());
    assert_eq!(v["emit"]["is_error"], false, "{v}");
    // The stateless 2026-07-28 revision: server/discover, then a call without a session.
    assert!(
        v["modern_versions"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("2026-07-28")),
        "{v}"
    );
    assert_eq!(v["modern_status"], g.destination());

    let suite = workspace().join(".cache/mcp-conformance/node_modules/.bin/conformance");
    assert!(
        suite.is_file(),
        "{} is missing: run ./scripts/test.sh (it installs @modelcontextprotocol/conformance@0.1.13 with npm)",
        suite.display()
    );
    let out = Command::new(&suite)
        .args(["server", "--url", &url, "--expected-failures"])
        .arg(workspace().join("tools/tests/mcp/conformance-expected-failures.yaml"))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert!(
        out.status.success(),
        "conformance failures beyond the baseline:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for passing in [
        "server-initialize",
        "ping",
        "tools-list",
        "resources-list",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
    ] {
        assert!(
            report.contains(&format!("✓ {passing}")),
            "{passing} did not pass:\n{report}"
        );
    }
}

/// Kills the child when the test ends, passed or not.
struct KillOnDrop<'a>(&'a mut std::process::Child);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
