//! The status page in a real headless browser (Debian's Chromium, driven by
//! playwright-core from npm; both installed by scripts/test.sh): A serves the page; B
//! joins and publishes a skill; the page shows B among the peers as it updates live,
//! a search from its box finds B's skill, and the embedding model that search loaded
//! appears among the governor's loaded models. Set GRID_WEB_SCREENSHOT to save a
//! screenshot (docs/status-page.md has one).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

#[test]
fn the_status_page_shows_a_peer_that_joined_and_searches_from_its_box() {
    let _slot = slot();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).is_file(),
        "{chromium} is missing: run ./scripts/test.sh (it installs Debian's chromium)"
    );
    let playwright = workspace().join(".cache/web-test/node_modules/playwright-core/package.json");
    assert!(
        playwright.is_file(),
        "{} is missing: run ./scripts/test.sh (it installs playwright-core with npm)",
        playwright.display()
    );
    let (port, web) = (free_port(), free_port());
    let a = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\n[web]\nlisten = \"127.0.0.1:{web}\"\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let url = format!("http://127.0.0.1:{web}/");
    wait_for(T, "the page served", || {
        std::net::TcpStream::connect(("127.0.0.1", web)).ok()
    });
    let b = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\n[web]\nenabled = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
    ));
    wait_for(T, "the genome service on B", || {
        b.cli(&["adapter", "list", "--json"]).0.then_some(())
    });
    let (_pkgs, tides) = tide_package();
    b.json(&["adapter", "publish", tides.to_str().unwrap()]);

    let mut cmd = Command::new("node");
    cmd.arg(workspace().join("tools/tests/web/page.mjs"))
        .arg(&url)
        .arg(b.destination())
        .arg("tide-tables")
        .env("CHROMIUM", &chromium)
        .env("PLAYWRIGHT_CORE", &playwright);
    if let Ok(shot) = std::env::var("GRID_WEB_SCREENSHOT") {
        cmd.arg(shot);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser run failed:\n{stderr}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{v:#}");
    assert_eq!(v["live"], "live", "{v}");
    assert_eq!(v["destination"], a.destination(), "{v}");
    assert!(
        v["peers"].as_str().unwrap().contains(&b.destination()),
        "{v}"
    );
    let interfaces = v["interfaces"].as_str().unwrap();
    assert!(
        interfaces.contains(&format!("127.0.0.1:{port}")) && interfaces.contains("client(s)"),
        "{v}"
    );
    assert!(
        v["results"].as_str().unwrap().contains("tide-tables"),
        "{v}"
    );
    assert!(
        v["models"].as_str().unwrap().contains("embedding-model"),
        "{v}"
    );
    assert_eq!(
        v["errors"],
        serde_json::json!([]),
        "script errors on the page: {v}"
    );

    // Only localhost names are answered (a DNS name pointing here is refused).
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", web)).unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 403") && answer.contains("only to localhost"),
        "{answer}"
    );
}
