//! A busy LoRa channel in virtual time: three nodes (rns-core transports, the RNode
//! driver's duty-cycle governor, the firmware modem core and the simulated channel) at
//! SF9 / 125 kHz with a 1 % airtime limit, announcing far more often than the limit
//! allows for ten minutes, then idling past the hour.
//!
//! No node's airtime may exceed 1 % of any hour, and announces are deferred (the newest
//! per destination waits for the window to roll), not dropped.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use grid_firmware::modem::{Modem, ModemConfig};
use grid_firmware::rng::XorShift32;
use grid_firmware::{cmd, kiss};
use grid_interfaces::rnode::{AirtimeGovernor, Reports, RnodeConfig};
use grid_tools::radio_sim::medium::{Medium, Topology};
use grid_tools::radio_sim::sim::SimRadio;
use rand_core::SeedableRng;
use rns_core::transport::{
    Event, InterfaceConfig, InterfaceId, ProofStrategy, Transport, TransportConfig,
};
use rns_core::{AddressHash, Identity, Instant};

const NODES: usize = 3;
const STEP_MS: u64 = 5;
const BUSY_MS: u64 = 10 * 60 * 1000;
const RUN_MS: u64 = 65 * 60 * 1000;
const HOUR_US: u64 = 3_600_000_000;
/// 1 % of an hour.
const BUDGET_US: u64 = HOUR_US / 100;
const IFACE: InterfaceId = InterfaceId(1);

struct Node {
    transport: Transport,
    destination: AddressHash,
    governor: AirtimeGovernor,
    modem: Modem<SimRadio, XorShift32>,
    host: Reports,
    /// (start ms, airtime µs) of every frame the radio sent.
    sent: Vec<(u64, u64)>,
    /// Destinations whose announces arrived, with when.
    heard: Vec<(AddressHash, u64)>,
}

fn radio_config() -> RnodeConfig {
    let mut c = RnodeConfig::new("virtual", 868_100_000, 125_000, 9, 5);
    c.lt_alock = Some(1.0);
    c
}

/// What RNS's host sends to bring the radio up, airtime lock included.
fn configure(modem: &mut Modem<SimRadio, XorShift32>, c: &RnodeConfig) {
    let mut out = Vec::new();
    for (command, payload) in [
        (cmd::FREQUENCY, c.frequency.to_be_bytes().to_vec()),
        (cmd::BANDWIDTH, c.bandwidth.to_be_bytes().to_vec()),
        (cmd::TXPOWER, vec![c.tx_power]),
        (cmd::SF, vec![c.spreading_factor]),
        (cmd::CR, vec![c.coding_rate]),
        (cmd::LT_ALOCK, 100u16.to_be_bytes().to_vec()),
        (cmd::RADIO_STATE, vec![cmd::RADIO_ON]),
    ] {
        out.extend(kiss::escaped(command, &payload));
    }
    modem.host_bytes(&out, 0);
}

fn node(i: usize, medium: &Rc<RefCell<Medium>>, now: &Rc<Cell<u64>>) -> Node {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(i as u64 + 1);
    let identity = Identity::generate(&mut rng);
    let c = radio_config();
    let mut transport = Transport::new(
        TransportConfig {
            // The middle node also rebroadcasts, under the announce cap.
            transport_enabled: i == 1,
            ..TransportConfig::default()
        },
        identity.clone(),
        Box::new(rng),
    );
    let mut iface = InterfaceConfig::radio("rnode", c.bitrate());
    iface.announce_cap = 0.005; // what config.rs derives from airtime_limit = 0.01
    transport.add_interface(Instant::from_millis(1), IFACE, iface);
    let destination =
        transport.register_destination(identity, "duty.test", ProofStrategy::None, Vec::new());
    let mut modem = Modem::new(
        SimRadio::new(i, medium.clone(), now.clone()),
        XorShift32::new(0x9E37_79B9 ^ i as u32),
        ModemConfig::default(),
    );
    configure(&mut modem, &c);
    Node {
        transport,
        destination,
        governor: c.governor().expect("airtime_limit makes a governor"),
        modem,
        host: Reports::default(),
        sent: Vec::new(),
        heard: Vec::new(),
    }
}

#[test]
fn a_busy_channel_never_exceeds_one_percent_and_defers_announces() {
    let medium = Rc::new(RefCell::new(Medium::new(NODES, Topology::Full, 0.0)));
    let now = Rc::new(Cell::new(0u64));
    let mut nodes: Vec<Node> = (0..NODES).map(|i| node(i, &medium, &now)).collect();
    let mut requested = [0u32; NODES];
    let mut buf = vec![0u8; 4096];

    for t in (STEP_MS..=RUN_MS).step_by(STEP_MS as usize) {
        now.set(t);
        let inst = Instant::from_millis(t);
        for (i, n) in nodes.iter_mut().enumerate() {
            // Busy: every node announces every 5 s for ten minutes (an SF9 announce takes
            // ~0.9 s, so that alone would be ~18 % of the time).
            if t <= BUSY_MS && t % 5000 == (i as u64 * 1700) % 5000 {
                n.transport.announce(inst, &n.destination, None).unwrap();
                requested[i] += 1;
            }
            if t % 100 == 0 {
                n.transport.handle_timeout(inst);
            }
            while let Some(tx) = n.transport.poll_transmit() {
                n.governor.offer(tx.frame);
            }
            while let Some(frame) = n.governor.poll(t) {
                let bytes: Vec<u8> = kiss::escaped(cmd::DATA, &frame).collect();
                n.modem.host_bytes(&bytes, t);
            }
            if let Some(start) = n.modem.poll(t) {
                n.sent.push((start.start_ms, start.airtime_us));
            }
        }
        let channels: Vec<Option<u64>> = nodes.iter().map(|n| n.modem.radio().channel()).collect();
        let deliveries = medium.borrow_mut().deliver(t, |i| channels[i], |_| false);
        for d in deliveries {
            nodes[d.to].modem.radio_received(&d.frame, -90, 20, t);
        }
        for n in nodes.iter_mut() {
            loop {
                let k = n.modem.host_output(&mut buf);
                if k == 0 {
                    break;
                }
                n.host.feed(&buf[..k]);
            }
            while let Some(data) = n.host.data.pop_front() {
                n.transport.handle_inbound_vec(inst, IFACE, data);
            }
            while let Some(ev) = n.transport.poll_event() {
                if let Event::Announce { destination, .. } = ev {
                    n.heard.push((destination, t));
                }
            }
        }
    }

    for (i, n) in nodes.iter().enumerate() {
        // Airtime over every one-hour window the run covers.
        for &(start, _) in &n.sent {
            let used: u64 = n
                .sent
                .iter()
                .filter(|(s, _)| *s >= start && *s < start + 3_600_000)
                .map(|(_, a)| a)
                .sum();
            assert!(
                used <= BUDGET_US,
                "node {i} used {used} µs in the hour from {start} ms"
            );
        }
        let busy: u64 = n
            .sent
            .iter()
            .filter(|(s, _)| *s <= BUSY_MS)
            .map(|(_, a)| a)
            .sum();
        assert!(
            busy > BUDGET_US * 8 / 10,
            "node {i} should have used most of its budget while busy ({busy} µs)"
        );
        // The limit was hit, and nothing was dropped: newer announces replaced the
        // waiting one, which went out once the first frames left the hour window.
        let s = n.governor.stats;
        assert!(s.deferred > 0 && s.replaced > 0, "node {i}: {s:?}");
        assert_eq!(s.dropped, 0, "node {i}: {s:?}");
        assert!(requested[i] > 100);
        assert!(
            n.sent.iter().any(|(s, _)| *s > 3_600_000),
            "node {i}: the deferred announce goes out when the hour rolls"
        );
        // Every node heard every other, including after the hour rolled.
        for (j, other) in nodes.iter().enumerate() {
            if i == j {
                continue;
            }
            assert!(
                n.heard.iter().any(|(d, _)| *d == other.destination),
                "node {i} never heard node {j}"
            );
        }
    }
    let late: usize = nodes
        .iter()
        .map(|n| n.heard.iter().filter(|(_, t)| *t > 3_600_000).count())
        .sum();
    assert!(late > 0, "deferred announces arrive after the hour rolls");
}
