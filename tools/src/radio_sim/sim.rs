//! The simulator loop: N modems (the `grid-firmware` core) on N pseudo-terminals, their
//! transmissions on one [`Medium`], driven in real time.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use grid_firmware::airtime::Modulation;
use grid_firmware::modem::{Modem, ModemConfig};
use grid_firmware::radio::{Radio, RadioError};
use grid_firmware::rng::XorShift32;
use rand_core::{RngCore, SeedableRng};
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use super::medium::{Medium, Topology};
use super::pty::VirtualPort;

/// RSSI and SNR every received frame is reported with.
const RX_RSSI_DBM: i16 = -80;
const RX_SNR_X4: i8 = 40;
/// The channel's RSSI when quiet and when a carrier is heard.
const NOISE_FLOOR_DBM: i16 = -120;
const CARRIER_DBM: i16 = -80;

/// Most radios one simulator serves (each is a pseudo-terminal).
pub const MAX_RADIOS: usize = 64;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// How many radios.
    pub radios: usize,
    /// Where the `rnodeN` links go.
    pub dir: PathBuf,
    /// Who hears whom.
    pub topology: Topology,
    /// Probability that a reception is lost.
    pub loss: f64,
    /// Seed for loss and the modems' randomness (random if `None`).
    pub seed: Option<u64>,
}

/// One radio's view of the shared medium: what a `grid-firmware` modem drives in the
/// simulator (and in virtual-time tests).
pub struct SimRadio {
    index: usize,
    medium: Rc<RefCell<Medium>>,
    now: Rc<Cell<u64>>,
    /// Modulation and frequency while the radio is on.
    tuned: Option<(Modulation, u32)>,
    configured: Option<(Modulation, u32)>,
}

impl SimRadio {
    /// Radio `index` on `medium`, reading the simulation time from `now` (ms).
    pub fn new(index: usize, medium: Rc<RefCell<Medium>>, now: Rc<Cell<u64>>) -> SimRadio {
        SimRadio {
            index,
            medium,
            now,
            tuned: None,
            configured: None,
        }
    }

    /// The channel it listens on while on; radios hear each other only on identical
    /// settings.
    pub fn channel(&self) -> Option<u64> {
        self.tuned.map(|(m, f)| {
            (u64::from(f) << 24)
                ^ (u64::from(m.bandwidth_hz) << 4)
                ^ (u64::from(m.sf) << 60)
                ^ (u64::from(m.coding_rate) << 56)
        })
    }
}

impl Radio for SimRadio {
    fn configure(&mut self, m: &Modulation, frequency_hz: u32, _p: i8) -> Result<(), RadioError> {
        self.configured = Some((*m, frequency_hz));
        if self.tuned.is_some() {
            self.tuned = self.configured;
        }
        Ok(())
    }

    fn set_on(&mut self, on: bool) -> Result<(), RadioError> {
        self.tuned = if on { self.configured } else { None };
        Ok(())
    }

    fn channel_busy(&mut self) -> bool {
        self.medium.borrow().busy_for(self.index, self.now.get())
    }

    fn current_rssi(&mut self) -> i16 {
        if self.channel_busy() {
            CARRIER_DBM
        } else {
            NOISE_FLOOR_DBM
        }
    }

    fn transmit(&mut self, frame: &[u8]) -> Result<(), RadioError> {
        let (Some((m, _)), Some(channel)) = (self.tuned, self.channel()) else {
            return Err(RadioError::Transmit);
        };
        let airtime_ms = m.airtime_us(frame.len()).div_ceil(1000);
        self.medium
            .borrow_mut()
            .transmit(self.index, channel, frame, self.now.get(), airtime_ms);
        Ok(())
    }
}

type SimModem = Modem<SimRadio, XorShift32>;

/// A radio's port and the task reading it.
struct Plugged {
    port: Arc<VirtualPort>,
    reader: tokio::task::JoinHandle<()>,
}

fn plug(
    dir: &std::path::Path,
    i: usize,
    tx: &mpsc::Sender<(usize, Vec<u8>)>,
) -> std::io::Result<Plugged> {
    let port = Arc::new(VirtualPort::create(&dir.join(format!("rnode{i}")))?);
    let (p, tx) = (port.clone(), tx.clone());
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = p.read(&mut buf).await {
            if n > 0 && tx.send((i, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    });
    Ok(Plugged { port, reader })
}

fn unplug(p: Plugged) {
    p.reader.abort();
    if let Ok(port) = Arc::try_unwrap(p.port) {
        port.unplug();
    }
}

/// Run the simulation until `stop` resolves. Commands on stdin (one per line):
/// `unplug N`, `plug N`, `stats`. Events and answers are JSON lines on stdout.
pub async fn run(
    config: SimConfig,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=MAX_RADIOS).contains(&config.radios),
        "--radios must be 1 to {MAX_RADIOS}"
    );
    anyhow::ensure!(
        (0.0..1.0).contains(&config.loss),
        "--loss must be a probability in [0, 1)"
    );
    std::fs::create_dir_all(&config.dir)?;
    let seed = config.seed.unwrap_or_else(|| rand_core::OsRng.next_u64());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let medium = Rc::new(RefCell::new(Medium::new(
        config.radios,
        config.topology,
        config.loss,
    )));
    let now = Rc::new(Cell::new(0u64));
    let mut modems: Vec<SimModem> = (0..config.radios)
        .map(|i| {
            let radio = SimRadio::new(i, medium.clone(), now.clone());
            let seed = (rng.next_u32() | 1).max(1);
            Modem::new(radio, XorShift32::new(seed), ModemConfig::default())
        })
        .collect();
    let (tx, mut rx) = mpsc::channel::<(usize, Vec<u8>)>(256);
    let mut ports: Vec<Option<Plugged>> = Vec::new();
    for i in 0..config.radios {
        ports.push(Some(plug(&config.dir, i, &tx)?));
    }
    let links: Vec<String> = ports
        .iter()
        .flatten()
        .map(|p| p.port.link.display().to_string())
        .collect();
    println!(
        "{}",
        json!({"event": "ready", "radios": links, "seed": seed})
    );

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let start = tokio::time::Instant::now();
    let mut out = vec![0u8; 8192];
    let mut dropped_host_bytes = 0u64;
    tokio::pin!(stop);
    loop {
        let t = start.elapsed().as_millis() as u64;
        now.set(t);
        let channels: Vec<Option<u64>> = modems.iter().map(|m| m.radio().channel()).collect();
        let deliveries = medium.borrow_mut().deliver(
            t,
            |i| channels[i],
            |p| (rng.next_u32() as f64 / u32::MAX as f64) < p,
        );
        for d in deliveries {
            modems[d.to].radio_received(&d.frame, RX_RSSI_DBM, RX_SNR_X4, t);
        }
        for (i, m) in modems.iter_mut().enumerate() {
            let _started = m.poll(t);
            // Host bytes go out as a UART would: when nobody reads, they are lost.
            loop {
                let n = m.host_output(&mut out);
                if n == 0 {
                    break;
                }
                match ports[i].as_ref() {
                    Some(p) => match p.port.try_write(&out[..n]) {
                        Ok(w) if w == n => {}
                        Ok(w) => dropped_host_bytes += (n - w) as u64,
                        Err(_) => dropped_host_bytes += n as u64,
                    },
                    None => dropped_host_bytes += n as u64,
                }
            }
        }
        let mut wake = t + 1000;
        for m in &modems {
            if let Some(w) = m.next_wakeup() {
                wake = wake.min(w);
            }
        }
        if let Some(w) = medium.borrow().next_end() {
            wake = wake.min(w);
        }
        let wake = start + Duration::from_millis(wake.max(t + 1));
        tokio::select! {
            Some((i, bytes)) = rx.recv() => {
                modems[i].host_bytes(&bytes, start.elapsed().as_millis() as u64);
            }
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    let answer = command(&line, &config, &mut ports, &tx, &medium, &modems, dropped_host_bytes);
                    println!("{answer}");
                }
                _ => stdin_open = false,
            },
            _ = tokio::time::sleep_until(wake) => {}
            _ = &mut stop => break,
        }
    }
    for p in ports.into_iter().flatten() {
        unplug(p);
    }
    Ok(())
}

/// Handle one control line.
fn command(
    line: &str,
    config: &SimConfig,
    ports: &mut [Option<Plugged>],
    tx: &mpsc::Sender<(usize, Vec<u8>)>,
    medium: &Rc<RefCell<Medium>>,
    modems: &[SimModem],
    dropped_host_bytes: u64,
) -> serde_json::Value {
    let words: Vec<&str> = line.split_whitespace().collect();
    let radio = |w: Option<&&str>| {
        w.and_then(|s| s.parse::<usize>().ok())
            .filter(|&i| i < config.radios)
    };
    match words.as_slice() {
        ["unplug", rest @ ..] => match radio(rest.first()) {
            Some(i) => {
                if let Some(p) = ports[i].take() {
                    unplug(p);
                }
                json!({"event": "unplugged", "radio": i})
            }
            None => json!({"error": format!("unplug N, with N < {}", config.radios)}),
        },
        ["plug", rest @ ..] => match radio(rest.first()) {
            Some(i) if ports[i].is_none() => match plug(&config.dir, i, tx) {
                Ok(p) => {
                    let link = p.port.link.display().to_string();
                    ports[i] = Some(p);
                    json!({"event": "plugged", "radio": i, "link": link})
                }
                Err(e) => json!({"error": format!("cannot create radio {i}: {e}")}),
            },
            Some(i) => json!({"error": format!("radio {i} is plugged in")}),
            None => json!({"error": format!("plug N, with N < {}", config.radios)}),
        },
        ["stats"] => {
            let m = medium.borrow();
            let radios: Vec<_> = modems
                .iter()
                .enumerate()
                .map(|(i, modem)| {
                    let s = modem.stats();
                    json!({
                        "radio": i,
                        "on": modem.is_radio_on(),
                        "airtime_ms": m.airtime_ms[i],
                        "tx_packets": s.tx_packets,
                        "rx_packets": s.rx_packets,
                        "queue_rejected": s.queue_rejected,
                    })
                })
                .collect();
            json!({
                "event": "stats",
                "radios": radios,
                "transmitted": m.stats.transmitted,
                "delivered": m.stats.delivered,
                "collisions": m.stats.collisions,
                "lost": m.stats.lost,
                "dropped_host_bytes": dropped_host_bytes,
            })
        }
        _ => json!({"error": format!("unknown command {line:?} (unplug N, plug N, stats)")}),
    }
}
