//! Separate hosts on one machine: network namespaces joined by veth pairs and bridges,
//! created by the test and removed when it ends.
//!
//! Needs root and iproute2 (`ip`). Without them [`Lan::new`] panics with instructions:
//! tests that need separate hosts fail loudly, never skip.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Run `ip` with `args`; panic with its output if it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Run a command inside a namespace; panic if it fails.
fn exec(ns: &str, args: &[&str]) {
    let mut a = vec!["netns", "exec", ns];
    a.extend_from_slice(args);
    ip(&a);
}

/// A set of namespaces (hosts and switches), deleted on drop.
pub struct Lan {
    tag: String,
    namespaces: Vec<String>,
}

impl Lan {
    /// Start an empty LAN; panics with instructions when namespaces cannot be made.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Lan {
        Self::try_new().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start an empty LAN, or say why namespaces cannot be made here.
    pub fn try_new() -> Result<Lan, String> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("g{}x{n}", std::process::id() % 100_000);
        let probe = format!("{tag}-probe");
        let ok = Command::new("ip")
            .args(["netns", "add", &probe])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            return Err(
                "separate hosts need network namespaces: run as root with iproute2 \
                 installed (namespaces, veths and bridges are created and removed here)"
                    .into(),
            );
        }
        ip(&["netns", "del", &probe]);
        Ok(Lan {
            tag,
            namespaces: Vec::new(),
        })
    }

    fn namespace(&mut self, name: &str) -> String {
        let ns = format!("{}-{name}", self.tag);
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        exec(&ns, &["ip", "link", "set", "lo", "up"]);
        // Link-local addresses are usable at once (no duplicate address detection).
        for key in ["all", "default"] {
            exec(
                &ns,
                &[
                    "sysctl",
                    "-qw",
                    &format!("net.ipv6.conf.{key}.accept_dad=0"),
                ],
            );
        }
        ns
    }

    /// A host: its own namespace.
    pub fn host(&mut self, name: &str) -> String {
        self.namespace(name)
    }

    /// A switch: a namespace holding a bridge `br0` (multicast snooping off, as a dumb
    /// switch behaves).
    pub fn switch(&mut self, name: &str) -> String {
        let ns = self.namespace(name);
        ip(&[
            "-n",
            &ns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &ns, "link", "set", "br0", "up"]);
        ns
    }

    /// Cable `host`'s NIC `nic` to a port of `switch`.
    pub fn plug(&mut self, host: &str, nic: &str, switch: &str) {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let (a, b) = (format!("gva{n}"), format!("gvb{n}"));
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        ip(&["link", "set", &a, "netns", host]);
        ip(&["link", "set", &b, "netns", switch]);
        ip(&["-n", host, "link", "set", &a, "name", nic]);
        exec(
            host,
            &[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{nic}.accept_dad=0"),
            ],
        );
        ip(&["-n", host, "link", "set", nic, "up"]);
        ip(&["-n", switch, "link", "set", &b, "master", "br0"]);
        ip(&["-n", switch, "link", "set", &b, "up"]);
    }

    /// The link-local IPv6 address of `host`'s NIC.
    pub fn link_local(&self, host: &str, nic: &str) -> String {
        let out = Command::new("ip")
            .args([
                "-n", host, "-6", "-o", "addr", "show", "dev", nic, "scope", "link",
            ])
            .output()
            .expect("ip addr");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .unwrap_or_else(|| panic!("no link-local address on {host}/{nic}: {text}"))
            .to_string()
    }

    /// Pull the cable: remove `host`'s NIC.
    pub fn unplug(&self, host: &str, nic: &str) {
        ip(&["-n", host, "link", "del", nic]);
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.namespaces.drain(..).rev() {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
}
