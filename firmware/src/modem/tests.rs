extern crate std;

use super::*;
use crate::airtime_meter::BIN_MS;
use crate::radio::RadioError;
use crate::rng::XorShift32;
use proptest::prelude::*;
use std::vec;
use std::vec::Vec;

// ---- a fake radio --------------------------------------------------------------

#[derive(Debug, Default)]
struct FakeRadio {
    on: bool,
    configured: Vec<(Modulation, u32, i8)>,
    sent: Vec<Vec<u8>>,
    busy: bool,
    rssi: i16,
    fail_configure: bool,
    fail_transmit: bool,
}

impl Radio for FakeRadio {
    fn configure(&mut self, m: &Modulation, f: u32, p: i8) -> Result<(), RadioError> {
        if self.fail_configure {
            return Err(RadioError::Init);
        }
        self.configured.push((*m, f, p));
        Ok(())
    }
    fn set_on(&mut self, on: bool) -> Result<(), RadioError> {
        self.on = on;
        Ok(())
    }
    fn channel_busy(&mut self) -> bool {
        self.busy
    }
    fn current_rssi(&mut self) -> i16 {
        self.rssi
    }
    fn transmit(&mut self, frame: &[u8]) -> Result<(), RadioError> {
        if self.fail_transmit {
            return Err(RadioError::Transmit);
        }
        assert!(frame.len() <= split::SINGLE_MTU);
        self.sent.push(frame.to_vec());
        Ok(())
    }
}

type TestModem = Modem<FakeRadio, XorShift32>;

fn modem_with(config: ModemConfig, seed: u32) -> TestModem {
    let radio = FakeRadio {
        rssi: -120,
        ..Default::default()
    };
    Modem::new(radio, XorShift32::new(seed), config)
}

fn modem() -> TestModem {
    modem_with(ModemConfig::default(), 1)
}

// ---- what RNS sends and parses -------------------------------------------------

fn frame(command: u8, payload: &[u8]) -> Vec<u8> {
    kiss::escaped(command, payload).collect()
}

/// Exactly what `RNodeInterface.detect()` writes.
const DETECT_BURST: [u8; 13] = [
    0xC0, 0x08, 0x73, 0xC0, 0x50, 0x00, 0xC0, 0x48, 0x00, 0xC0, 0x49, 0x00, 0xC0,
];

struct RnsConfig {
    frequency: u32,
    bandwidth: u32,
    txpower: u8,
    sf: u8,
    cr: u8,
    st_alock: Option<f64>,
    lt_alock: Option<f64>,
}

const EU868: RnsConfig = RnsConfig {
    // 0x33C00000: the frequency contains a FEND byte, so RNS escapes it.
    frequency: 0x33C0_0000,
    bandwidth: 125_000,
    txpower: 14,
    sf: 7,
    cr: 5,
    st_alock: Some(15.0),
    lt_alock: Some(2.5),
};

/// `RNodeInterface.initRadio()`: frequency, bandwidth, TX power, SF, CR, the airtime
/// locks if configured, then radio on.
fn init_radio_bytes(c: &RnsConfig) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(frame(cmd::FREQUENCY, &c.frequency.to_be_bytes()));
    v.extend(frame(cmd::BANDWIDTH, &c.bandwidth.to_be_bytes()));
    v.extend(frame(cmd::TXPOWER, &[c.txpower]));
    v.extend(frame(cmd::SF, &[c.sf]));
    v.extend(frame(cmd::CR, &[c.cr]));
    if let Some(st) = c.st_alock {
        v.extend(frame(cmd::ST_ALOCK, &((st * 100.0) as u16).to_be_bytes()));
    }
    if let Some(lt) = c.lt_alock {
        v.extend(frame(cmd::LT_ALOCK, &((lt * 100.0) as u16).to_be_bytes()));
    }
    v.extend(frame(cmd::RADIO_STATE, &[cmd::RADIO_ON]));
    v
}

/// Every frame waiting for the host.
fn drain(m: &mut TestModem) -> Vec<(u8, Vec<u8>)> {
    let mut d = kiss::Decoder::<2048>::new();
    let mut out = Vec::new();
    let mut buf = [0u8; 97];
    loop {
        let n = m.host_output(&mut buf);
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if let Some(f) = d.push(b) {
                out.push((f.cmd, f.data.to_vec()));
            }
        }
    }
    out
}

fn of(frames: &[(u8, Vec<u8>)], command: u8) -> Vec<Vec<u8>> {
    frames
        .iter()
        .filter(|(c, _)| *c == command)
        .map(|(_, d)| d.clone())
        .collect()
}

/// The state `RNodeInterface.readLoop()` builds from reports, and its checks.
#[derive(Default, Debug)]
struct RnsView {
    detected: bool,
    version: Option<(u8, u8)>,
    platform: Option<u8>,
    mcu: Option<u8>,
    frequency: Option<u32>,
    bandwidth: Option<u32>,
    txpower: Option<u8>,
    sf: Option<u8>,
    cr: Option<u8>,
    state: Option<u8>,
    st_alock: Option<f64>,
    lt_alock: Option<f64>,
    chtm: usize,
    phyprm: Option<[u16; 6]>,
    fatal: Option<u8>,
}

impl RnsView {
    fn feed(&mut self, frames: &[(u8, Vec<u8>)]) {
        for (c, d) in frames {
            match *c {
                cmd::DETECT => self.detected = d.first() == Some(&cmd::DETECT_RESP),
                cmd::FW_VERSION if d.len() >= 2 => self.version = Some((d[0], d[1])),
                cmd::PLATFORM => self.platform = d.last().copied(),
                cmd::MCU => self.mcu = d.last().copied(),
                cmd::FREQUENCY if d.len() == 4 => {
                    self.frequency = Some(u32::from_be_bytes(d[..4].try_into().unwrap()))
                }
                cmd::BANDWIDTH if d.len() == 4 => {
                    self.bandwidth = Some(u32::from_be_bytes(d[..4].try_into().unwrap()))
                }
                cmd::TXPOWER => self.txpower = d.last().copied(),
                cmd::SF => self.sf = d.last().copied(),
                cmd::CR => self.cr = d.last().copied(),
                cmd::RADIO_STATE => self.state = d.last().copied(),
                cmd::ST_ALOCK if d.len() == 2 => {
                    self.st_alock = Some(f64::from(u16::from_be_bytes([d[0], d[1]])) / 100.0)
                }
                cmd::LT_ALOCK if d.len() == 2 => {
                    self.lt_alock = Some(f64::from(u16::from_be_bytes([d[0], d[1]])) / 100.0)
                }
                cmd::STAT_CHTM if d.len() == 11 => self.chtm += 1,
                cmd::STAT_PHYPRM if d.len() == 12 => {
                    let mut p = [0u16; 6];
                    for (i, v) in p.iter_mut().enumerate() {
                        *v = u16::from_be_bytes([d[2 * i], d[2 * i + 1]]);
                    }
                    self.phyprm = Some(p);
                }
                // RNS raises (interface restart) on every error code but 0x05 and 0x06.
                cmd::ERROR if !matches!(d.first(), Some(0x05 | 0x06)) => {
                    self.fatal = d.first().copied()
                }
                // RNS's STAT_RX/STAT_TX parsers crash; the modem must never volunteer them.
                cmd::STAT_RX | cmd::STAT_TX => panic!("unsolicited STAT_RX/STAT_TX"),
                _ => {}
            }
        }
    }

    /// `validate_firmware()` and `validateRadioState()`.
    fn accepts(&self, c: &RnsConfig) -> bool {
        let (maj, min) = self.version.unwrap_or((0, 0));
        let firmware_ok = maj > 1 || (maj == 1 && min >= 52);
        let freq_ok = self
            .frequency
            .is_none_or(|f| (i64::from(c.frequency) - i64::from(f)).abs() <= 100);
        self.detected
            && firmware_ok
            && freq_ok
            && self.bandwidth == Some(c.bandwidth)
            && self.txpower == Some(c.txpower)
            && self.sf == Some(c.sf)
            && self.state == Some(cmd::RADIO_ON)
            && self.fatal.is_none()
    }
}

/// Detect and configure a modem as RNS does; returns what RNS saw.
fn bring_up(m: &mut TestModem, c: &RnsConfig, now: u64) -> RnsView {
    let mut view = RnsView::default();
    m.host_bytes(&DETECT_BURST, now);
    view.feed(&drain(m));
    m.host_bytes(&init_radio_bytes(c), now + 200);
    view.feed(&drain(m));
    view
}

/// Poll at every wake-up until `until`; returns the frames started.
fn run(m: &mut TestModem, from: u64, until: u64) -> Vec<TxStart> {
    let mut now = from;
    let mut started = Vec::new();
    while now <= until {
        if let Some(s) = m.poll(now) {
            started.push(s);
        }
        now = match m.next_wakeup() {
            Some(t) if t > now => t,
            _ => now + 1,
        };
    }
    started
}

// ---- bring-up ------------------------------------------------------------------

#[test]
fn boots_with_the_esp32_reset_notice() {
    let mut m = modem();
    assert_eq!(drain(&mut m), vec![(cmd::RESET, vec![0xF8])]);
    let mut quiet = modem_with(
        ModemConfig {
            boot_notice: false,
            ..ModemConfig::default()
        },
        1,
    );
    assert!(drain(&mut quiet).is_empty());
}

#[test]
fn answers_the_rns_detect_burst() {
    let mut m = modem();
    drain(&mut m);
    m.host_bytes(&DETECT_BURST, 2_000);
    assert_eq!(
        drain(&mut m),
        vec![
            (cmd::DETECT, vec![0x46]),
            (cmd::FW_VERSION, vec![0x01, 0x55]),
            (cmd::PLATFORM, vec![0x80]),
            (cmd::MCU, vec![0x81]),
        ]
    );
    // Only the real detect request is answered.
    m.host_bytes(&frame(cmd::DETECT, &[0x00]), 2_000);
    assert!(drain(&mut m).is_empty());
}

#[test]
fn rns_bring_up_is_accepted() {
    let mut m = modem();
    drain(&mut m);
    let view = bring_up(&mut m, &EU868, 2_000);
    assert!(view.accepts(&EU868), "{view:?}");
    assert_eq!(view.frequency, Some(EU868.frequency));
    assert_eq!(view.cr, Some(5));
    assert_eq!(view.st_alock, Some(15.0));
    assert_eq!(view.lt_alock, Some(2.5));
    // SF7/125 kHz: 1024 µs symbols, 976 baud, 24-symbol preamble of 25 ms, 24/48 ms.
    assert_eq!(view.phyprm, Some([1024, 976, 24, 25, 24, 48]));
    assert!(m.is_radio_on());
    let radio = m.radio();
    assert!(radio.on);
    assert_eq!(radio.configured.len(), 1);
    let (modulation, freq, power) = radio.configured[0];
    assert_eq!((freq, power), (EU868.frequency, 14));
    assert_eq!(modulation, Modulation::rnode(7, 125_000, 5).unwrap());
    assert_eq!(
        m.airtime_limits(),
        AirtimeLimits {
            short_term: 1500,
            long_term: 250
        }
    );

    // Channel statistics arrive about once a second while the radio is on.
    let mut view = view;
    let _ = run(&mut m, 2_200, 5_300);
    view.feed(&drain(&mut m));
    assert_eq!(view.chtm, 3);
    assert!(view.accepts(&EU868));
}

#[test]
fn rns_rejects_settings_the_modem_cannot_honour() {
    // 27 dBm is clamped to the SX1262's 22 dBm, so the echo no longer matches.
    let mut m = modem();
    let c = RnsConfig {
        txpower: 27,
        ..EU868
    };
    let view = bring_up(&mut m, &c, 0);
    assert_eq!(view.txpower, Some(22));
    assert!(!view.accepts(&c));
}

#[test]
fn settings_are_clamped_or_refused_like_rnode() {
    let mut m = modem();
    drain(&mut m);
    fn ask(m: &mut TestModem, command: u8, payload: &[u8]) -> Vec<u8> {
        m.host_bytes(&frame(command, payload), 0);
        let f = drain(m);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].0, command);
        f[0].1.clone()
    }
    assert_eq!(ask(&mut m, cmd::SF, &[4]), [5]);
    assert_eq!(ask(&mut m, cmd::SF, &[13]), [12]);
    assert_eq!(ask(&mut m, cmd::SF, &[0xFF]), [12], "0xFF only asks");
    assert_eq!(ask(&mut m, cmd::CR, &[9]), [8]);
    assert_eq!(ask(&mut m, cmd::CR, &[1]), [5]);
    assert_eq!(ask(&mut m, cmd::TXPOWER, &[0xFF]), [0xFF], "unset");
    assert_eq!(ask(&mut m, cmd::TXPOWER, &[30]), [22]);
    assert_eq!(ask(&mut m, cmd::TXPOWER, &[2]), [2]);
    // Out-of-range frequencies and bandwidths are not applied.
    assert_eq!(
        ask(&mut m, cmd::FREQUENCY, &100_000_000u32.to_be_bytes()),
        [0; 4]
    );
    assert_eq!(
        ask(&mut m, cmd::FREQUENCY, &433_050_000u32.to_be_bytes()),
        433_050_000u32.to_be_bytes()
    );
    assert_eq!(
        ask(&mut m, cmd::FREQUENCY, &3_000_000_001u32.to_be_bytes()),
        433_050_000u32.to_be_bytes()
    );
    assert_eq!(
        ask(&mut m, cmd::FREQUENCY, &[0; 4]),
        433_050_000u32.to_be_bytes()
    );
    assert_eq!(ask(&mut m, cmd::BANDWIDTH, &7_799u32.to_be_bytes()), [0; 4]);
    assert_eq!(
        ask(&mut m, cmd::BANDWIDTH, &7_800u32.to_be_bytes()),
        7_800u32.to_be_bytes()
    );
    assert_eq!(
        ask(&mut m, cmd::BANDWIDTH, &1_625_001u32.to_be_bytes()),
        7_800u32.to_be_bytes()
    );
    // Limits of 100 % or more mean "no limit".
    assert_eq!(ask(&mut m, cmd::ST_ALOCK, &10_000u16.to_be_bytes()), [0, 0]);
    assert_eq!(ask(&mut m, cmd::LT_ALOCK, &[0x03, 0xE8]), [0x03, 0xE8]);
    // Truncated payloads are ignored.
    m.host_bytes(&frame(cmd::FREQUENCY, &[1, 2, 3]), 0);
    m.host_bytes(&frame(cmd::ST_ALOCK, &[1]), 0);
    assert!(drain(&mut m).is_empty());
}

#[test]
fn radio_stays_off_until_configured() {
    let mut m = modem();
    drain(&mut m);
    m.host_bytes(&frame(cmd::RADIO_LOCK, &[0]), 0);
    m.host_bytes(&frame(cmd::RADIO_STATE, &[cmd::RADIO_ON]), 0);
    assert_eq!(
        drain(&mut m),
        vec![(cmd::RADIO_LOCK, vec![1]), (cmd::RADIO_STATE, vec![0])]
    );
    assert!(!m.radio().on);
    assert_eq!(m.next_wakeup(), None);
}

#[test]
fn radio_init_failure_is_reported() {
    let mut m = modem();
    m.radio_mut().fail_configure = true;
    let view = bring_up(&mut m, &EU868, 0);
    assert_eq!(view.fatal, Some(cmd::ERROR_INITRADIO));
    assert_eq!(view.state, Some(0));
    assert!(!m.is_radio_on());
}

#[test]
fn a_setting_the_radio_refuses_while_on_keeps_the_old_value() {
    let mut m = modem();
    bring_up(&mut m, &EU868, 0);
    m.radio_mut().fail_configure = true;
    m.host_bytes(&frame(cmd::SF, &[9]), 10);
    assert_eq!(drain(&mut m), vec![(cmd::SF, vec![7])]);
    m.radio_mut().fail_configure = false;
    m.host_bytes(&frame(cmd::SF, &[9]), 10);
    let f = drain(&mut m);
    assert_eq!(of(&f, cmd::SF), vec![vec![9]]);
    assert_eq!(
        of(&f, cmd::STAT_PHYPRM).len(),
        1,
        "new PHY parameters are reported"
    );
    assert_eq!(m.modulation().unwrap().sf, 9);
}

#[test]
fn queries_and_odd_commands() {
    let mut m = modem();
    drain(&mut m);
    for c in [
        cmd::STAT_RX,
        cmd::STAT_TX,
        cmd::STAT_RSSI,
        cmd::READY,
        cmd::RANDOM,
        cmd::FB_READ,
        cmd::BLINK,
        cmd::FB_EXT,
        cmd::BT_CTRL,
        cmd::ROM_READ,
        0x7E,
    ] {
        m.host_bytes(&frame(c, &[0x01]), 0);
    }
    let f = drain(&mut m);
    assert_eq!(of(&f, cmd::STAT_RX), vec![vec![0, 0, 0, 0]]);
    assert_eq!(of(&f, cmd::STAT_TX), vec![vec![0, 0, 0, 0]]);
    assert_eq!(of(&f, cmd::STAT_RSSI), vec![vec![0]], "nothing heard yet");
    assert_eq!(of(&f, cmd::READY), vec![vec![1]]);
    assert_eq!(of(&f, cmd::RANDOM).len(), 1);
    assert_eq!(of(&f, cmd::FB_READ), vec![vec![0xFF]], "no display");
    assert_eq!(
        f.len(),
        6,
        "blink, framebuffer, bluetooth, ROM and unknown: silent"
    );
}

#[test]
fn reset_reboots_to_an_unconfigured_modem() {
    let mut m = modem();
    bring_up(&mut m, &EU868, 0);
    m.host_bytes(&frame(cmd::DATA, &[1, 2, 3]), 5);
    drain(&mut m);
    m.host_bytes(&frame(cmd::RESET, &[0x00]), 10);
    assert!(m.is_radio_on(), "only 0xF8 resets");
    m.host_bytes(&frame(cmd::RESET, &[cmd::RESET_VALUE]), 10);
    assert_eq!(drain(&mut m), vec![(cmd::RESET, vec![0xF8])]);
    assert!(!m.is_radio_on());
    assert!(!m.radio().on);
    assert_eq!(m.queue_len(), 0);
    assert_eq!(m.frequency_hz(), 0);
    assert_eq!(m.airtime_limits(), AirtimeLimits::NONE);
}

#[test]
fn leave_and_radio_off() {
    let mut m = modem();
    bring_up(&mut m, &EU868, 0);
    assert!(m.host_attached());
    drain(&mut m);
    // RNS detach: radio off, then leave.
    m.host_bytes(&frame(cmd::RADIO_STATE, &[cmd::RADIO_OFF]), 10);
    m.host_bytes(&[0xC0, 0x0A, 0xFF, 0xC0], 10);
    assert_eq!(drain(&mut m), vec![(cmd::RADIO_STATE, vec![0])]);
    assert!(!m.host_attached());
    assert!(!m.radio().on);
    assert_eq!(m.next_wakeup(), None);
    assert!(m.poll(20).is_none());
}

// ---- data path -----------------------------------------------------------------

fn packet(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(salt))
        .collect()
}

#[test]
fn a_500_byte_packet_crosses_as_two_frames() {
    let mut a = modem_with(ModemConfig::default(), 11);
    let mut b = modem_with(ModemConfig::default(), 22);
    bring_up(&mut a, &EU868, 0);
    bring_up(&mut b, &EU868, 0);
    drain(&mut a);
    drain(&mut b);

    // 0xC0 and 0xDB bytes make the host link escape.
    let mut p = packet(500, 3);
    p[10] = 0xC0;
    p[499] = 0xDB;
    a.host_bytes(&frame(cmd::DATA, &p), 1_000);
    assert_eq!(drain(&mut a), vec![(cmd::READY, vec![1])]);
    assert_eq!(
        a.next_wakeup(),
        Some(1_000),
        "a queued packet wants a poll now"
    );

    let started = run(&mut a, 1_000, 4_000);
    assert_eq!(started.len(), 2);
    let first = started[0];
    // CSMA: DIFS (48 ms) then 0–14 slots of 24 ms.
    let wait = first.start_ms - 1_000;
    assert!((48..=48 + 14 * 24).contains(&wait), "{wait}");
    assert_eq!((wait - 48) % 24, 0);
    let m = Modulation::rnode(7, 125_000, 5).unwrap();
    assert_eq!(first.frame_len, 255);
    assert_eq!(first.airtime_us, m.airtime_us(255));
    assert_eq!(
        started[1].start_ms, first.end_ms,
        "second half follows at once"
    );
    assert_eq!(started[1].frame_len, 247);
    assert_eq!(a.stats().tx_packets, 1);

    let sent = a.radio().sent.clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0][0], sent[1][0], "both halves share the header");
    assert_eq!(sent[0][0] & 0x0F, split::FLAG_SPLIT);

    b.radio_received(&sent[0], -90, 20, first.end_ms);
    assert!(drain(&mut b).is_empty(), "first half is held");
    b.radio_received(&sent[1], -90, 20, started[1].end_ms);
    assert_eq!(
        drain(&mut b),
        vec![
            (cmd::STAT_RSSI, vec![67]),
            (cmd::STAT_SNR, vec![20]),
            (cmd::DATA, p.clone()),
        ]
    );
    assert_eq!(b.stats().rx_packets, 1);
    // The host can then read the RSSI back.
    b.host_bytes(&frame(cmd::STAT_RSSI, &[0]), 5_000);
    assert_eq!(drain(&mut b), vec![(cmd::STAT_RSSI, vec![67])]);
}

#[test]
fn receiving_needs_the_radio_on_and_not_transmitting() {
    let mut m = modem();
    m.radio_received(&[0x00, 1, 2], -80, 0, 0);
    assert!(of(&drain(&mut m), cmd::DATA).is_empty());
    bring_up(&mut m, &EU868, 0);
    drain(&mut m);
    m.host_bytes(&frame(cmd::DATA, &packet(100, 1)), 100);
    let mut now = 100;
    let tx = loop {
        if let Some(s) = m.poll(now) {
            break s;
        }
        now = m.next_wakeup().unwrap();
    };
    // Half duplex: nothing is heard while our own frame is on air.
    m.radio_received(&[0x00, 9, 9], -80, 0, tx.start_ms + 1);
    let _ = m.poll(tx.end_ms);
    m.radio_received(&[0x00, 8, 8], -80, 0, tx.end_ms);
    let data = of(&drain(&mut m), cmd::DATA);
    assert_eq!(data, vec![vec![8, 8]]);
    assert_eq!(m.stats().rx_dropped, 2);
}

#[test]
fn queued_packets_go_back_to_back_after_one_csma_round() {
    let mut m = modem();
    bring_up(&mut m, &EU868, 0);
    for i in 0..3 {
        m.host_bytes(&frame(cmd::DATA, &packet(50, i)), 100);
    }
    let started = run(&mut m, 100, 2_000);
    assert_eq!(started.len(), 3);
    assert_eq!(started[1].start_ms, started[0].end_ms);
    assert_eq!(started[2].start_ms, started[1].end_ms);
    let sent = &m.radio().sent;
    assert_eq!(&sent[2][1..], &packet(50, 2)[..], "in order");
    assert_eq!(m.stats().tx_packets, 3);
}

#[test]
fn a_busy_channel_defers_transmission() {
    let mut m = modem();
    bring_up(&mut m, &EU868, 0);
    m.radio_mut().busy = true;
    m.host_bytes(&frame(cmd::DATA, &packet(20, 0)), 100);
    assert!(run(&mut m, 100, 3_000).is_empty());
    m.radio_mut().busy = false;
    let started = run(&mut m, 3_001, 5_000);
    assert_eq!(started.len(), 1);
    assert!(started[0].start_ms >= 3_001 + 48);
}

#[test]
fn airtime_lock_blocks_until_the_window_rolls() {
    let mut m = modem();
    let c = RnsConfig {
        sf: 12,
        st_alock: Some(10.0),
        lt_alock: None,
        ..EU868
    };
    assert!(bring_up(&mut m, &c, 0).accepts(&c));
    m.host_bytes(&frame(cmd::DATA, &packet(200, 1)), 100);
    m.host_bytes(&frame(cmd::DATA, &packet(200, 2)), 100);
    let started = run(&mut m, 100, 60_000);
    assert_eq!(started.len(), 2);
    let first = started[0];
    // ~7.7 s at SF12 is over half of the 15 s short-term window: locked at once.
    assert!(first.airtime_us > 7_000_000);
    let unlock = (first.start_ms / BIN_MS + 2) * BIN_MS;
    let second = started[1];
    assert!(second.start_ms >= unlock, "{} < {unlock}", second.start_ms);
    // Then CSMA: DIFS (200 ms) and a slot count drawn from the window set by the last
    // report before the lift, when short-term airtime was ~51 %: band 3, 30–44 slots
    // of 100 ms (RNode refreshes the window once a second, not at the lift).
    let csma_wait = second.start_ms - unlock;
    assert!(
        (200 + 30 * 100..=200 + 44 * 100).contains(&csma_wait),
        "{csma_wait}"
    );
    assert_eq!(csma_wait % 100, 0);
}

#[test]
fn long_term_lock_holds_for_the_hour() {
    let mut m = modem();
    let c = RnsConfig {
        sf: 12,
        st_alock: None,
        lt_alock: Some(0.2), // 7.2 s per hour
        ..EU868
    };
    bring_up(&mut m, &c, 0);
    m.host_bytes(&frame(cmd::DATA, &packet(200, 1)), 0);
    m.host_bytes(&frame(cmd::DATA, &packet(200, 2)), 0);
    let started = run(&mut m, 0, 3_700_000);
    assert_eq!(started.len(), 2);
    assert!(started[1].start_ms >= 3_600_000);
}

#[test]
fn queue_full_reports_error_then_ready_when_room_frees() {
    let mut m = modem_with(
        ModemConfig {
            queue_full_error: true,
            ..ModemConfig::default()
        },
        1,
    );
    drain(&mut m);
    for i in 0..TX_QUEUE_PACKETS {
        m.host_bytes(&frame(cmd::DATA, &packet(10, i as u8)), 0);
    }
    let f = drain(&mut m);
    assert_eq!(
        of(&f, cmd::READY).len(),
        TX_QUEUE_PACKETS - 1,
        "no READY when full"
    );
    m.host_bytes(&frame(cmd::READY, &[0]), 0);
    m.host_bytes(&frame(cmd::DATA, &[1]), 0);
    assert_eq!(
        drain(&mut m),
        vec![
            (cmd::READY, vec![0]),
            (cmd::ERROR, vec![cmd::ERROR_QUEUE_FULL])
        ]
    );
    assert_eq!(m.stats().queue_rejected, 1);

    let view = bring_up(&mut m, &EU868, 10);
    assert!(view.accepts(&EU868));
    let started = run(&mut m, 10, 1_000);
    assert!(!started.is_empty());
    assert_eq!(of(&drain(&mut m), cmd::READY), vec![vec![1]]);

    // The default, as current RNode firmware: drop silently.
    let mut silent = modem();
    for i in 0..=TX_QUEUE_PACKETS {
        silent.host_bytes(&frame(cmd::DATA, &packet(10, i as u8)), 0);
    }
    assert!(of(&drain(&mut silent), cmd::ERROR).is_empty());
    assert_eq!(silent.stats().queue_rejected, 1);
}

#[test]
fn a_failed_transmission_is_reported() {
    let mut m = modem();
    bring_up(&mut m, &EU868, 0);
    drain(&mut m);
    m.radio_mut().fail_transmit = true;
    m.host_bytes(&frame(cmd::DATA, &packet(10, 0)), 0);
    let _ = run(&mut m, 0, 500);
    let f = drain(&mut m);
    assert_eq!(of(&f, cmd::ERROR), vec![vec![cmd::ERROR_TXFAILED]]);
    assert_eq!(m.stats().tx_failed, 1);
    assert_eq!(m.queue_len(), 0);
}

#[test]
fn heavy_sending_widens_the_contention_window() {
    let mut m = modem();
    let c = RnsConfig {
        st_alock: None,
        lt_alock: None,
        ..EU868
    };
    bring_up(&mut m, &c, 0);
    drain(&mut m);
    for i in 0..6 {
        m.host_bytes(&frame(cmd::DATA, &packet(508, i)), 0);
    }
    let _ = run(&mut m, 0, 6_000);
    let f = drain(&mut m);
    // Six 508-byte packets at SF7 ≈ 4.8 s of 15 s (32 %): band 2.
    let csma = of(&f, cmd::STAT_CSMA);
    assert!(!csma.is_empty());
    assert_eq!(csma.last().unwrap()[0], m.contention_window().band);
    assert!(m.contention_window().band >= 2);
    let chtm = of(&f, cmd::STAT_CHTM);
    let last = chtm.last().unwrap();
    let airtime_short = u16::from_be_bytes([last[0], last[1]]);
    assert!(airtime_short > 2_000, "{airtime_short}");
}

#[test]
fn next_wakeup_tracks_air_time_and_reports() {
    let mut m = modem();
    bring_up(&mut m, &EU868, 0);
    // The radio came on at 200 (bring_up configures 200 ms after detecting).
    assert_eq!(m.next_wakeup(), Some(1_200), "first channel report");
    m.host_bytes(&frame(cmd::DATA, &packet(30, 0)), 300);
    assert_eq!(
        m.next_wakeup(),
        Some(300),
        "a queued packet wants a poll now"
    );
    let started = run(&mut m, 300, 900);
    let tx = started[0];
    assert_eq!(m.packet_airtime_us(30), Some(tx.airtime_us));
    assert_eq!(m.frame_airtime_us(31), Some(tx.airtime_us));
    let mut m2 = modem();
    bring_up(&mut m2, &EU868, 0);
    m2.host_bytes(&frame(cmd::DATA, &packet(30, 0)), 300);
    let mut now = 300;
    loop {
        if let Some(s) = m2.poll(now) {
            assert_eq!(m2.on_air_until(), Some(s.end_ms));
            assert_eq!(m2.next_wakeup(), Some(s.end_ms.min(1_200)));
            break;
        }
        now = m2.next_wakeup().unwrap();
    }
}

// ---- robustness ----------------------------------------------------------------

#[derive(Debug, Clone)]
enum Event {
    Host(Vec<u8>),
    Poll(u16),
    Rx(Vec<u8>),
    Busy(bool),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Event::Host),
        (0u8..12, proptest::collection::vec(any::<u8>(), 0..16)).prop_map(|(c, p)| {
            let c = [
                0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0B, 0x0C, 0x0F, 0x25, 0x55,
            ][c as usize];
            Event::Host(frame(c, &p))
        }),
        any::<u16>().prop_map(Event::Poll),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Event::Rx),
        any::<bool>().prop_map(Event::Busy),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn garbage_never_panics(configure in any::<bool>(), events in proptest::collection::vec(event(), 0..200)) {
        let mut m = modem();
        if configure {
            bring_up(&mut m, &EU868, 0);
        }
        let mut now = 0u64;
        for e in events {
            match e {
                Event::Host(bytes) => m.host_bytes(&bytes, now),
                Event::Poll(dt) => {
                    now += u64::from(dt);
                    if let Some(s) = m.poll(now) {
                        prop_assert!(s.frame_len <= split::SINGLE_MTU && s.end_ms >= s.start_ms);
                    }
                }
                Event::Rx(f) => m.radio_received(&f, -100, -8, now),
                Event::Busy(b) => m.radio_mut().busy = b,
            }
            prop_assert!(m.host_pending() <= HOST_OUTPUT_BYTES);
            prop_assert!(m.queue_len() <= TX_QUEUE_PACKETS);
            if let Some(t) = m.next_wakeup() {
                prop_assert!(t <= now.saturating_add(7_500 * 2));
            }
            if m.host_pending() > HOST_OUTPUT_BYTES / 2 {
                drain(&mut m);
            }
        }
    }
}
