//! Attack: 8,192 link requests that never complete (twice the link table), from one raw TCP connection, while an
//! honest node pings the victim every 100 ms. The victim answers link requests at a
//! limited rate per interface and bounds its half-open links (per interface and
//! node-wide, oldest handshakes go first), so the flood neither starves the honest node's
//! link nor grows memory.

mod common;

use std::io::Write;
use std::time::Duration;

use common::hostile::*;
use common::*;
use rns_core::destination::DestinationType;
use rns_core::packet::{Context, Flags, Packet, PacketType};
use rns_core::transport::DEFAULT_MAX_HALF_OPEN_LINKS_PER_INTERFACE;
use rns_core::AddressHash;

/// A link request for `destination` with random keys: the victim answers with a proof and
/// waits for an RTT packet that never comes.
fn link_request(destination: AddressHash, seed: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(64);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push(x as u8);
    }
    let p = Packet {
        flags: Flags::new(DestinationType::Single, PacketType::LinkRequest),
        hops: 0,
        transport_id: None,
        destination,
        context: Context::NONE,
        data,
    };
    grid_interfaces::hdlc::encode(&p.to_bytes())
}

#[test]
fn link_requests_that_never_complete_do_not_starve_honest_peers() {
    let _slot = slot();
    let (mut v, port) = victim("");
    let v_dest = v.destination();
    let h = Honest::start(port, &v_dest);
    let before = before(&v);
    let dest: AddressHash = v_dest.parse().unwrap();
    let (_, peak) = peak_rss_during(&v, || {
        let mut attacker = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        for i in 0..8192u64 {
            attacker.write_all(&link_request(dest, i + 1)).unwrap();
            if i % 256 == 255 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        std::thread::sleep(Duration::from_secs(2));
        let (ok, _, err) = v.cli(&["status", "--json"]);
        assert!(ok, "grid status during the flood: {err}");
        // A newcomer still gets a link while the half-open ones are held.
        let newcomer = Honest::start(port, &v_dest);
        let report = newcomer.finish();
        assert!(
            report.answered > 0,
            "a new honest node was served during the flood"
        );
        drop(attacker);
    });
    let status = v.status();
    let links = status["links"].as_array().map_or(0, |l| l.len());
    let stats = &status["stats"];
    eprintln!(
        "links held after the flood: {links}; link requests dropped unanswered: {}; half-open links given up: {}",
        stats["dropped_link_requests"], stats["evicted_half_open_links"]
    );
    // One attacking interface holds at most its per-interface share of half-open links;
    // the rest are the honest nodes' links.
    assert!(
        links <= DEFAULT_MAX_HALF_OPEN_LINKS_PER_INTERFACE + 8,
        "V holds {links} links after the flood"
    );
    assert!(
        stats["dropped_link_requests"].as_u64().unwrap_or(0) > 0,
        "the flood was rate limited"
    );
    assert_held("8192 half-open links", &mut v, h, before, peak, 96 * 1024);
}
