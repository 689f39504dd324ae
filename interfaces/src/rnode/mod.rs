//! The RNode interface (RNS `RNodeInterface`): a LoRa radio on a serial port, speaking
//! KISS with RNode's command set.
//!
//! The driver opens the port, brings the radio up ([`bringup`]: detect, firmware check,
//! configuration in RNS's order, validation of the echoes), then moves packets as KISS
//! data frames. It reports the radio's signal and channel figures to the node, and when
//! the device disappears (unplugged, port closed) it reports the interface down and
//! keeps trying to bring it back every few seconds.

mod bringup;
mod config;
mod reports;

use std::time::Duration;

use grid_firmware::cmd;
use rns_core::transport::{InterfaceConfig, InterfaceId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

pub use bringup::{bring_up, BringUpError, DETECT_BURST};
pub use config::RnodeConfig;
pub use reports::{RadioInfo, RadioStats, Reports};

use crate::tcp::Ended;
use crate::{Hub, InterfaceEvent, Readiness, OUTBOUND_QUEUE};

/// Delay between attempts to open or bring up the radio.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait for READY after a frame when flow control is on.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Statistics go to the node at most this often.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// Run an RNode interface until the node goes away. `iface` is how the transport treats
/// it; its bitrate is set from the modulation.
pub async fn run(hub: Hub, config: RnodeConfig, mut iface: InterfaceConfig) {
    iface.bitrate = config.bitrate();
    let id = hub.allocate();
    let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
    let mut last_error = String::new();
    loop {
        match open(&config).await {
            Ok(mut port) => {
                let mut reports = Reports::default();
                match bring_up(&mut port, &config, &mut reports).await {
                    Ok(info) => {
                        last_error.clear();
                        tracing::info!(
                            interface = %id, port = %config.port,
                            firmware = ?info.firmware, platform = ?info.platform,
                            bitrate = iface.bitrate,
                            "radio up"
                        );
                        while rx.try_recv().is_ok() {}
                        let up = InterfaceEvent::Up {
                            id,
                            config: Box::new(iface.clone()),
                            outbound: tx.clone(),
                            ready: Readiness::Now,
                        };
                        if !hub.send(up).await {
                            return;
                        }
                        let ended = pump(&hub, id, &mut port, &mut rx, &mut reports, &config).await;
                        if let Ended::Node = ended {
                            let _ = port.write_all(&bringup::detach_bytes()).await;
                            return;
                        }
                        tracing::warn!(interface = %id, port = %config.port, "radio gone; waiting for it to come back");
                        if !hub.send(InterfaceEvent::Down { id, remove: false }).await {
                            return;
                        }
                    }
                    Err(e) => report(&mut last_error, &config.port, &e.to_string()),
                }
            }
            Err(e) => report(
                &mut last_error,
                &config.port,
                &format!("cannot open the port: {e}"),
            ),
        }
        if hub.is_closed() {
            return;
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// Log a bring-up failure loudly once, then quietly while it stays the same.
fn report(last: &mut String, port: &str, msg: &str) {
    if last != msg {
        tracing::warn!(
            port,
            "radio: {msg}; retrying every {}s",
            RETRY_INTERVAL.as_secs()
        );
        *last = msg.to_string();
    } else {
        tracing::debug!(port, "radio: {msg}");
    }
}

/// Open the serial port at 115200 8N1 and let the board settle.
async fn open(config: &RnodeConfig) -> std::io::Result<tokio_serial::SerialStream> {
    use tokio_serial::SerialPortBuilderExt;
    let port = tokio_serial::new(&config.port, 115_200)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(tokio_serial::StopBits::One)
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(std::io::Error::from)?;
    tokio::time::sleep(config.open_settle).await;
    Ok(port)
}

/// Move data frames between the radio and the node until either side ends.
async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
    hub: &Hub,
    id: InterfaceId,
    port: &mut S,
    outbound: &mut mpsc::Receiver<Vec<u8>>,
    reports: &mut Reports,
    config: &RnodeConfig,
) -> Ended {
    let mut buf = [0u8; 2048];
    // With flow control, when the last frame was sent and READY not yet seen.
    let mut awaiting_ready: Option<tokio::time::Instant> = None;
    let mut stats_due = tokio::time::Instant::now();
    let mut stats_dirty = true;
    reports.ready = 0;
    loop {
        // Frames that arrived during bring-up or in the last read.
        while let Some(data) = reports.data.pop_front() {
            if !hub.send(InterfaceEvent::Frame { id, data }).await {
                return Ended::Node;
            }
        }
        if reports.ready > 0 {
            reports.ready = 0;
            awaiting_ready = None;
        }
        if let Some(t) = awaiting_ready {
            if tokio::time::Instant::now() >= t + READY_TIMEOUT {
                tracing::debug!(interface = %id, "no READY from the radio; sending anyway");
                awaiting_ready = None;
            }
        }
        if let Some(code) = reports.last_error.take() {
            tracing::warn!(interface = %id, code, "the radio reported an error");
        }
        stats_dirty |= reports.take_stats_changed();
        if stats_dirty && tokio::time::Instant::now() >= stats_due {
            stats_due = tokio::time::Instant::now() + STATS_INTERVAL;
            stats_dirty = false;
            let stats = Box::new(reports.stats.clone());
            if !hub.send(InterfaceEvent::Radio { id, stats }).await {
                return Ended::Node;
            }
        }
        let can_send = awaiting_ready.is_none();
        let ready_wait = awaiting_ready.map_or(READY_TIMEOUT, |t| {
            (t + READY_TIMEOUT).saturating_duration_since(tokio::time::Instant::now())
        });
        tokio::select! {
            r = port.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Ended::Peer,
                Ok(n) => reports.feed(&buf[..n]),
            },
            f = outbound.recv(), if can_send => {
                let Some(frame) = f else { return Ended::Node };
                let mut out = Vec::with_capacity(frame.len() * 2 + 4);
                bringup::frame_into(&mut out, cmd::DATA, &frame);
                if config.flow_control {
                    awaiting_ready = Some(tokio::time::Instant::now());
                } else {
                    // Without flow control, send what else is queued in the same write.
                    while let Ok(more) = outbound.try_recv() {
                        bringup::frame_into(&mut out, cmd::DATA, &more);
                        if out.len() > 8 * 1024 { break; }
                    }
                }
                if port.write_all(&out).await.is_err() {
                    return Ended::Peer;
                }
            }
            _ = tokio::time::sleep(ready_wait), if !can_send => {}
            _ = tokio::time::sleep_until(stats_due), if stats_dirty => {}
        }
    }
}

#[cfg(test)]
mod tests;
