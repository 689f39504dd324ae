//! Attacks on custody: 10,000 bundles with the longest TTL, then with a short one, pushed
//! by throwaway identities to a custody node (strangers get a bounded share, so the
//! node's own bundles still fit); and a rogue node announcing the custody role from a
//! destination hash ground down below the real custodian's (never used: custodians are
//! configured or trusted).

mod common;

use std::time::Duration;

use common::hostile::*;
use common::*;
use grid::bundle::wire::{Exchange, ExchangeReply, WireBundle, BUNDLE_PATH};
use rns_core::{rmpv, AddressHash};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn junk(seed: u64, expires_ms: u64) -> WireBundle {
    let r = noise(seed, 32);
    WireBundle {
        id: r[..16].try_into().unwrap(),
        destination: r[16..].try_into().unwrap(),
        created_ms: now_ms(),
        expires_ms,
        sealed: noise(seed ^ 0x5555, 200),
    }
}

#[test]
fn throwaway_identities_cannot_fill_a_custody_nodes_store() {
    let _slot = slot();
    let (mut v, port) = victim("transport = true\n[bundles]\ncustody = true\n");
    let v_dest = v.destination();
    let h = Honest::start(port, &v_dest);
    let before = before(&v);
    let v_hash: AddressHash = v_dest.parse().unwrap();
    const IDENTITIES: u64 = 8;
    const PER_IDENTITY: u64 = 1250; // 10,000 in all

    let rt = runtime();
    let ((accepted, refused), peak) = peak_rss_during(&v, || {
        rt.block_on(async {
            let (mut accepted, mut refused) = (0usize, 0usize);
            for who in 0..IDENTITIES {
                let dir = attacker_dir("throwaway", port);
                let m = grid::api::spawn(grid::state::StateDir::resolve(Some(&dir.0)))
                    .await
                    .unwrap();
                let link = m.link_to(v_hash, Duration::from_secs(20)).await.unwrap();
                let mut n = 0;
                while n < PER_IDENTITY {
                    let batch: Vec<WireBundle> = (n..(n + 250).min(PER_IDENTITY))
                        .map(|i| {
                            // Half with the longest TTL there is, half with an hour.
                            let expires = if i % 2 == 0 {
                                u64::MAX
                            } else {
                                now_ms() + 3_600_000
                            };
                            junk(who * 1_000_000 + i + 1, expires)
                        })
                        .collect();
                    n += batch.len() as u64;
                    let x = rmpv::Value::Binary(Exchange::Push(batch).encode());
                    let answer = m
                        .request(link, BUNDLE_PATH, x, Duration::from_secs(60))
                        .await
                        .expect("V answers a push");
                    let rmpv::Value::Binary(bytes) = answer else {
                        panic!("not exchange bytes")
                    };
                    match ExchangeReply::decode(&bytes).unwrap() {
                        ExchangeReply::Pushed {
                            accepted: a,
                            refused: r,
                        } => {
                            accepted += a.len();
                            refused += r.len();
                        }
                        other => panic!("unexpected answer {other:?}"),
                    }
                }
                m.shutdown();
            }
            (accepted, refused)
        })
    });
    let queued = v.status()["bundles"]["queued"].as_u64().unwrap();
    eprintln!(
        "throwaway identities: {accepted} bundles accepted, {refused} refused; V holds {queued}"
    );
    assert_eq!(accepted + refused, (IDENTITIES * PER_IDENTITY) as usize);
    // Nothing with the longest TTL, and at most each stranger's share of the rest.
    assert!(accepted as u64 <= IDENTITIES * 256, "{accepted} accepted");
    assert!(queued <= IDENTITIES * 256, "V holds {queued}");
    assert_held(
        "10,000 bundles from throwaway identities",
        &mut v,
        h,
        before,
        peak,
        96 * 1024,
    );
}

/// A state directory with `config` and a fresh identity whose `grid.node` destination
/// satisfies `want`; returns it with that destination.
fn node_dir_where(config: &str, want: impl Fn(&AddressHash) -> bool) -> (TempDir, AddressHash) {
    let dir = TempDir::new("custodian");
    std::fs::write(dir.0.join("config.toml"), config).unwrap();
    loop {
        let id = rns_core::Identity::generate(&mut rand_core::OsRng);
        let dest = rns_core::destination::hash_from_name("grid.node", Some(&id.hash()));
        if want(&dest) {
            std::fs::write(dir.0.join("identity"), id.to_private_bytes()).unwrap();
            return (dir, dest);
        }
    }
}

#[test]
fn a_rogue_custodian_with_a_ground_down_hash_gets_nothing() {
    let _slot = slot();
    let port = free_port();
    let client = format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"\n"
    );
    let custodian = format!("{client}[bundles]\ncustody = true\n");
    // The real custodian, and a rogue whose destination hash was ground down below it
    // (a zero first byte: about 256 key generations).
    let (l_dir, l_dest) = node_dir_where(&custodian, |d| d.0[0] >= 0x10);
    let (r_dir, r_dest) = node_dir_where(&custodian, |d| d.0[0] == 0 && *d < l_dest);
    assert!(r_dest < l_dest);
    let v_dir = TempDir::new("victim");
    std::fs::write(
        v_dir.0.join("config.toml"),
        format!(
            "[node]\nannounce_interval = \"1h\"\nshare_instance = false\ntransport = true\n[bundles]\ncustody_peers = [\"{l_dest}\"]\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    let mut v = Grid::start_in(v_dir);
    let v_dest = v.destination();
    let h = Honest::start(port, &v_dest);
    let before = before(&v);
    let l = Grid::start_in(l_dir);
    let r = Grid::start_in(r_dir);
    let x = Grid::start(&client);
    let x_dest = x.destination();
    wait_for(
        Duration::from_secs(40),
        "V hears X, L and the rogue",
        || {
            let peers = v.status()["peers"].as_array().cloned().unwrap_or_default();
            let heard = |d: &str| peers.iter().any(|p| p["node"] == d);
            (heard(&x_dest) && heard(&l_dest.to_string()) && heard(&r_dest.to_string()))
                .then_some(())
        },
    );
    drop(x);
    let (_, peak) = peak_rss_during(&v, || {
        let v_out = v.json(&["exec", &x_dest, "grid/ping", "--ttl", "10m", "--detach"]);
        assert!(v_out["handle"].is_string(), "{v_out}");
        let queued = |g: &Grid| g.status()["bundles"]["queued"].as_u64().unwrap_or(u64::MAX);
        wait_for(
            Duration::from_secs(60),
            "V hands the bundle to its custodian",
            || (queued(&v) == 0 && queued(&l) == 1).then_some(()),
        );
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(queued(&r), 0, "the rogue custodian got a bundle");
    });
    eprintln!("custodians: real {l_dest}, rogue {r_dest}: the bundle went to the real one");
    drop((l, r));
    assert_held("rogue custodian", &mut v, h, before, peak, 96 * 1024);
}
