//! The KISS TNC interface (RNS `KISSInterface`): packets as KISS data frames to a
//! terminal node controller (a packet radio modem) on a serial port.
//!
//! At start the TNC is told its TX delay, persistence, slot time and TX tail, and
//! whether to signal READY for flow control. As in generic KISS, the command byte's high
//! nibble is the TNC port and is ignored on receipt; frames that are not data (or do not
//! decode) are skipped.

use std::time::Duration;

use grid_firmware::kiss;
use rns_core::transport::{InterfaceConfig, InterfaceId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::serial::{report_failure, SerialConfig, RETRY_INTERVAL, SERIAL_HW_MTU};
use crate::tcp::Ended;
use crate::{report_up, Hub, InterfaceEvent, Readiness, OUTBOUND_QUEUE};

/// KISS commands sent to a TNC.
const TXDELAY: u8 = 0x01;
const PERSISTENCE: u8 = 0x02;
const SLOTTIME: u8 = 0x03;
const TXTAIL: u8 = 0x04;
const READY: u8 = 0x0F;
const DATA: u8 = 0x00;
/// Longest wait for READY before sending anyway (RNS: 5 s).
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// A KISS TNC's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KissConfig {
    /// The serial port.
    pub serial: SerialConfig,
    /// Key-up delay before data, ms (RNS default 350).
    pub preamble_ms: u32,
    /// Hold after data, ms (default 20).
    pub txtail_ms: u32,
    /// p-persistence, 0–255 (default 64).
    pub persistence: u8,
    /// CSMA slot time, ms (default 20).
    pub slottime_ms: u32,
    /// Wait for READY after each frame (default off).
    pub flow_control: bool,
    /// Pause after opening before configuring (RNS: 2 s).
    pub open_settle: Duration,
}

impl KissConfig {
    /// A TNC on `serial` with RNS's defaults.
    pub fn new(serial: SerialConfig) -> Self {
        KissConfig {
            serial,
            preamble_ms: 350,
            txtail_ms: 20,
            persistence: 64,
            slottime_ms: 20,
            flow_control: false,
            open_settle: Duration::from_secs(2),
        }
    }

    /// The configuration frames, as RNS sends them (times in units of 10 ms).
    pub fn setup_bytes(&self) -> Vec<u8> {
        let tens = |ms: u32| (ms / 10).min(255) as u8;
        let mut out = Vec::new();
        for (c, v) in [
            (TXDELAY, tens(self.preamble_ms)),
            (TXTAIL, tens(self.txtail_ms)),
            (PERSISTENCE, self.persistence),
            (SLOTTIME, tens(self.slottime_ms)),
            (READY, u8::from(self.flow_control)),
        ] {
            out.extend(kiss::escaped(c, &[v]));
        }
        out
    }
}

/// Run a KISS TNC interface until the node goes away, reopening the port when it
/// disappears.
pub async fn run(hub: Hub, config: KissConfig, iface: InterfaceConfig) {
    let id = hub.allocate();
    let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
    let mut last_error = String::new();
    loop {
        match config.serial.open() {
            Ok(mut port) => {
                last_error.clear();
                tokio::time::sleep(config.open_settle).await;
                if port.write_all(&config.setup_bytes()).await.is_ok() {
                    tracing::info!(interface = %id, port = %config.serial.port, "KISS TNC configured");
                    if !report_up(&hub, id, &iface, (&tx, &mut rx), Readiness::Now).await {
                        return;
                    }
                    if let Ended::Node =
                        pump(&hub, id, &mut port, &mut rx, config.flow_control).await
                    {
                        return;
                    }
                    tracing::warn!(interface = %id, port = %config.serial.port, "TNC gone; waiting for it to come back");
                    if !hub.send(InterfaceEvent::Down { id, remove: false }).await {
                        return;
                    }
                }
            }
            Err(e) => report_failure(
                &mut last_error,
                &config.serial.port,
                &format!("cannot open the TNC's serial port: {e}"),
            ),
        }
        if hub.is_closed() {
            return;
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// Move KISS data frames between the TNC and the node until either side ends.
pub(crate) async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    hub: &Hub,
    id: InterfaceId,
    port: &mut S,
    outbound: &mut mpsc::Receiver<Vec<u8>>,
    flow_control: bool,
) -> Ended {
    let mut decoder = kiss::Decoder::<SERIAL_HW_MTU>::new();
    let mut buf = [0u8; 2048];
    let mut waiting_since: Option<tokio::time::Instant> = None;
    loop {
        let wait = waiting_since
            .map(|t| (t + READY_TIMEOUT).saturating_duration_since(tokio::time::Instant::now()));
        tokio::select! {
            r = port.read(&mut buf) => {
                let n = match r {
                    Ok(0) | Err(_) => return Ended::Peer,
                    Ok(n) => n,
                };
                let mut frames = Vec::new();
                for &b in &buf[..n] {
                    let Some(f) = decoder.push(b) else { continue };
                    match f.cmd & 0x0F {
                        DATA if !f.data.is_empty() => frames.push(f.data.to_vec()),
                        READY => waiting_since = None,
                        _ => {}
                    }
                }
                for data in frames {
                    if !hub.send(InterfaceEvent::Frame { id, data }).await {
                        return Ended::Node;
                    }
                }
            }
            f = outbound.recv(), if waiting_since.is_none() => {
                let Some(frame) = f else { return Ended::Node };
                let mut out: Vec<u8> = kiss::escaped(DATA, &frame).collect();
                if flow_control {
                    waiting_since = Some(tokio::time::Instant::now());
                } else {
                    while let Ok(more) = outbound.try_recv() {
                        out.extend(kiss::escaped(DATA, &more));
                        if out.len() > 8 * 1024 { break; }
                    }
                }
                if port.write_all(&out).await.is_err() {
                    return Ended::Peer;
                }
            }
            _ = tokio::time::sleep(wait.unwrap_or(Duration::MAX)), if wait.is_some() => {
                waiting_since = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_is_what_rns_sends() {
        let c = KissConfig::new(SerialConfig::new("/dev/x"));
        assert_eq!(
            c.setup_bytes(),
            [
                0xC0, 0x01, 35, 0xC0, 0xC0, 0x04, 2, 0xC0, 0xC0, 0x02, 64, 0xC0, 0xC0, 0x03, 2,
                0xC0, 0xC0, 0x0F, 0, 0xC0
            ]
        );
    }

    #[tokio::test]
    async fn data_on_any_tnc_port_is_received_and_other_frames_skipped() {
        let (mut host, mut tnc) = tokio::io::duplex(4096);
        let (hub, mut events) = Hub::new(16);
        let (tx, mut rx) = mpsc::channel(16);
        let id = hub.allocate();
        tokio::spawn(async move { pump(&hub, id, &mut host, &mut rx, false).await });
        let mut bytes: Vec<u8> = kiss::escaped(0x10, &[0xC0, 1, 2]).collect(); // port 1 data
        bytes.extend(kiss::escaped(0x06, &[9])); // a hardware command
        bytes.extend([0xC0, 0x00, 0xC0]); // empty data
        bytes.extend([b'C', b'Q', 0xC0]); // noise, then an ID beacon's tail
        bytes.extend(kiss::escaped(0x00, b"rns"));
        tnc.write_all(&bytes).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 2 {
            if let Some(InterfaceEvent::Frame { data, .. }) = events.recv().await {
                got.push(data);
            }
        }
        assert_eq!(got, [vec![0xC0, 1, 2], b"rns".to_vec()]);
        tx.send(vec![0xDB, 7]).await.unwrap();
        let mut out = [0u8; 16];
        let n = tnc.read(&mut out).await.unwrap();
        assert_eq!(&out[..n], [0xC0, 0x00, 0xDB, 0xDD, 7, 0xC0]);
    }
}
