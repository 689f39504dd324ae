//! Idle memory and start-up to the first announce: `grid node` against `rnsd` and a
//! Python script announcing one destination.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant as StdInstant};

use anyhow::{bail, Result};
use rns_core::packet::{Packet, PacketType};

use crate::harness::{
    bench_script, free_port, rnsd_config, rss_of, spawn_grid, spawn_rnsd, tmpdir, wait_listening,
    Proc,
};

pub(crate) fn idle_rss_grid(grid: &Path) -> Result<f64> {
    let dir = tmpdir("idle-grid");
    let port = free_port();
    std::fs::write(
        dir.join("config.toml"),
        format!("[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"),
    )?;
    let p = spawn_grid(grid, &dir)?;
    wait_listening(port, 10)?;
    std::thread::sleep(Duration::from_secs(3));
    Ok(rss_of(p.0.id()))
}

/// How well `tools/link/grid-symbol-order.txt` fits the `grid` binary: for the list's
/// section that fits best (one per way of building `grid`, each headed by a `# build:
/// <name>` line; tools/bench/symbol_order.sh), its name, how many of its functions the
/// binary defines (`nm`) and how many it lists. The idle figure depends on the list
/// (tools/build.rs), and a list gone stale with code changes shows here first.
pub(crate) fn symbol_order_coverage(grid: &Path, list: &Path) -> Result<(String, usize, usize)> {
    let wanted = std::fs::read_to_string(list)?;
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(grid)
        .output()?;
    if !out.status.success() {
        bail!("nm {} failed", grid.display());
    }
    let defined: std::collections::HashSet<&str> = std::str::from_utf8(&out.stdout)?
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    symbol_order_sections(&wanted)
        .into_iter()
        .map(|(name, names)| {
            let found = names.iter().filter(|n| defined.contains(*n)).count();
            (name.to_string(), found, names.len())
        })
        // The best fit by found / listed, compared without division.
        .max_by(|(_, f1, l1), (_, f2, l2)| (f1 * l2).cmp(&(f2 * l1)))
        .ok_or_else(|| anyhow::anyhow!("{} lists no functions", list.display()))
}

/// The list's sections: a `# build: <name> …` line starts one (names before the first
/// header form a section called `list`); other `#` lines and blank lines are skipped.
fn symbol_order_sections(text: &str) -> Vec<(&str, Vec<&str>)> {
    let mut sections: Vec<(&str, Vec<&str>)> = vec![("list", Vec::new())];
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix("# build:") {
            let name = header.split_whitespace().next().unwrap_or("?");
            sections.push((name, Vec::new()));
        } else if !line.is_empty() && !line.starts_with('#') {
            if let Some((_, names)) = sections.last_mut() {
                names.push(line);
            }
        }
    }
    sections.retain(|(_, names)| !names.is_empty());
    sections
}

/// Say how current the link-time function order is (see [`symbol_order_coverage`]).
pub(crate) fn report_symbol_order(grid: &Path, list: &Path) {
    match symbol_order_coverage(grid, list) {
        Ok((section, found, listed)) => {
            eprintln!(
                "symbol order: {found} of {listed} functions of the list's `{section}` \
                 section are in the binary"
            );
            if found * 100 < listed * 95 {
                eprintln!(
                    "  the list is stale (idle RSS rises): regenerate it with \
                     tools/bench/symbol_order.sh and rebuild"
                );
            }
        }
        Err(e) => eprintln!("symbol order: not checked ({e})"),
    }
}

pub(crate) fn idle_rss_rnsd(python: &Path) -> Result<f64> {
    let dir = tmpdir("idle-rnsd");
    let port = free_port();
    rnsd_config(&dir, port, false)?;
    let p = spawn_rnsd(python, &dir)?;
    wait_listening(port, 30)?;
    std::thread::sleep(Duration::from_secs(3));
    Ok(rss_of(p.0.id()))
}

/// Wait for the first datagram on `sock` that parses as an announce.
pub(crate) fn first_announce(sock: &UdpSocket, timeout: Duration) -> Result<()> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let end = StdInstant::now() + timeout;
    let mut buf = [0u8; 2048];
    while StdInstant::now() < end {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if let Ok(p) = Packet::parse(&buf[..n]) {
                if p.flags.packet_type == PacketType::Announce {
                    return Ok(());
                }
            }
        }
    }
    bail!("no announce within {timeout:?}")
}

pub(crate) fn startup_grid(grid: &Path, runs: usize) -> Result<Vec<f64>> {
    let dir = tmpdir("start-grid");
    let mut v = Vec::new();
    for _ in 0..runs {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        let fwd = sock.local_addr()?.port();
        let listen = free_port();
        std::fs::write(
            dir.join("config.toml"),
            format!("[[interface]]\ntype = \"udp\"\nlisten = \"127.0.0.1:{listen}\"\nforward = \"127.0.0.1:{fwd}\"\n"),
        )?;
        let t0 = StdInstant::now();
        let _p = spawn_grid(grid, &dir)?;
        first_announce(&sock, Duration::from_secs(10))?;
        v.push(t0.elapsed().as_secs_f64());
    }
    Ok(v)
}

pub(crate) fn startup_python(python: &Path, runs: usize) -> Result<Vec<f64>> {
    let dir = tmpdir("start-py");
    let mut v = Vec::new();
    for _ in 0..runs {
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        let fwd = sock.local_addr()?.port();
        let listen = free_port();
        let t0 = StdInstant::now();
        let _p = Proc(
            Command::new(python)
                .arg(bench_script("py_startup.py"))
                .arg(&dir)
                .arg(listen.to_string())
                .arg(fwd.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        first_announce(&sock, Duration::from_secs(30))?;
        v.push(t0.elapsed().as_secs_f64());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::symbol_order_sections;

    #[test]
    fn sections_are_split_at_build_headers() {
        let text = "# build: workspace (cargo build)\na\nb\n\n# build: package (-p)\nc\n# note\n";
        assert_eq!(
            symbol_order_sections(text),
            vec![("workspace", vec!["a", "b"]), ("package", vec!["c"])]
        );
        assert_eq!(
            symbol_order_sections("x\ny\n"),
            vec![("list", vec!["x", "y"])]
        );
        assert!(symbol_order_sections("# build: empty\n").is_empty());
    }
}
