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
mod governor;
mod reports;

use std::time::Duration;

use grid_firmware::cmd;
use rns_core::transport::{InterfaceConfig, InterfaceId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

pub use bringup::{bring_up, BringUpError, DETECT_BURST};
pub use config::RnodeConfig;
pub use governor::{AirtimeGovernor, GovernorStats, GRACE_MS, MAX_HELD, WINDOW_MS};
pub use reports::{RadioInfo, RadioStats, Reports};

use crate::serial::report_failure;
use crate::tcp::Ended;
use crate::{report_up, Hub, InterfaceEvent, Readiness, OUTBOUND_QUEUE};

pub use crate::serial::RETRY_INTERVAL;
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
    // Airtime used within the hour is remembered across reconnects.
    let mut governor = config.governor();
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
                        if !report_up(&hub, id, &iface, (&tx, &mut rx), Readiness::Now).await {
                            return;
                        }
                        let mut link = Link {
                            hub: &hub,
                            id,
                            config: &config,
                            reports: &mut reports,
                            governor: governor.as_mut(),
                        };
                        let ended = link.pump(&mut port, &mut rx).await;
                        if let Ended::Node = ended {
                            let _ = port.write_all(&bringup::detach_bytes()).await;
                            return;
                        }
                        tracing::warn!(interface = %id, port = %config.port, "radio gone; waiting for it to come back");
                        if !hub.send(InterfaceEvent::Down { id, remove: false }).await {
                            return;
                        }
                    }
                    Err(e) => report_failure(&mut last_error, &config.port, &format!("radio: {e}")),
                }
            }
            Err(e) => report_failure(
                &mut last_error,
                &config.port,
                &format!("radio: cannot open the port: {e}"),
            ),
        }
        if hub.is_closed() {
            return;
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
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

/// What the pump works with while a radio is up.
struct Link<'a> {
    hub: &'a Hub,
    id: InterfaceId,
    config: &'a RnodeConfig,
    reports: &'a mut Reports,
    governor: Option<&'a mut AirtimeGovernor>,
}

fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

impl Link<'_> {
    /// Move data frames between the radio and the node until either side ends.
    async fn pump<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        port: &mut S,
        outbound: &mut mpsc::Receiver<Vec<u8>>,
    ) -> Ended {
        let (hub, id) = (self.hub, self.id);
        let mut buf = [0u8; 2048];
        // With flow control, when the last frame was sent and READY not yet seen.
        let mut awaiting_ready: Option<tokio::time::Instant> = None;
        let mut stats_due = tokio::time::Instant::now();
        let mut stats_dirty = true;
        self.reports.ready = 0;
        loop {
            // Frames that arrived during bring-up or in the last read.
            while let Some(data) = self.reports.data.pop_front() {
                if !hub.send(InterfaceEvent::Frame { id, data }).await {
                    return Ended::Node;
                }
            }
            if self.reports.ready > 0 {
                self.reports.ready = 0;
                awaiting_ready = None;
            }
            if let Some(t) = awaiting_ready {
                if tokio::time::Instant::now() >= t + READY_TIMEOUT {
                    tracing::debug!(interface = %id, "no READY from the radio; sending anyway");
                    awaiting_ready = None;
                }
            }
            if let Some(code) = self.reports.last_error.take() {
                tracing::warn!(interface = %id, code, "the radio reported an error");
            }
            // Frames the duty cycle held back whose airtime has come.
            if awaiting_ready.is_none() {
                match self.send_governed(port, &mut awaiting_ready).await {
                    Ok(true) => stats_dirty = true,
                    Ok(false) => {}
                    Err(()) => return Ended::Peer,
                }
            }
            stats_dirty |= self.reports.take_stats_changed();
            if stats_dirty && tokio::time::Instant::now() >= stats_due {
                stats_due = tokio::time::Instant::now() + STATS_INTERVAL;
                stats_dirty = false;
                let mut stats = self.reports.stats.clone();
                stats.airtime_limit_pct = self.config.lt_alock;
                if let Some(g) = self.governor.as_deref_mut() {
                    stats.duty_used_pct = Some(g.used_us(now_ms()) as f32 / 36_000_000.0);
                    stats.duty_deferred = g.held();
                }
                let stats = Box::new(stats);
                if !hub.send(InterfaceEvent::Radio { id, stats }).await {
                    return Ended::Node;
                }
            }
            let can_send = awaiting_ready.is_none();
            let ready_wait = awaiting_ready.map_or(READY_TIMEOUT, |t| {
                (t + READY_TIMEOUT).saturating_duration_since(tokio::time::Instant::now())
            });
            let governed_wait = match self.governor.as_deref_mut() {
                Some(g) if can_send => g
                    .next_ready(now_ms())
                    .map(|t| Duration::from_millis(t.saturating_sub(now_ms()).max(1))),
                _ => None,
            };
            tokio::select! {
                r = port.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return Ended::Peer,
                    Ok(n) => self.reports.feed(&buf[..n]),
                },
                f = outbound.recv(), if can_send || self.governor.is_some() => {
                    let Some(frame) = f else { return Ended::Node };
                    if let Some(g) = self.governor.as_deref_mut() {
                        g.offer(frame);
                        continue;
                    }
                    let mut out = Vec::with_capacity(frame.len() * 2 + 4);
                    bringup::frame_into(&mut out, cmd::DATA, &frame);
                    if self.config.flow_control {
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
                _ = tokio::time::sleep(governed_wait.unwrap_or(Duration::MAX)), if governed_wait.is_some() => {}
                _ = tokio::time::sleep_until(stats_due), if stats_dirty => {}
            }
        }
    }

    /// Send the frames the governor lets through now (one with flow control). Returns
    /// whether anything was sent; `Err` if the port failed.
    async fn send_governed<S: AsyncWrite + Unpin>(
        &mut self,
        port: &mut S,
        awaiting_ready: &mut Option<tokio::time::Instant>,
    ) -> Result<bool, ()> {
        let Some(g) = self.governor.as_deref_mut() else {
            return Ok(false);
        };
        let now = now_ms();
        let mut out = Vec::new();
        while let Some(frame) = g.poll(now) {
            bringup::frame_into(&mut out, cmd::DATA, &frame);
            if self.config.flow_control {
                *awaiting_ready = Some(tokio::time::Instant::now());
                break;
            }
        }
        if out.is_empty() {
            return Ok(false);
        }
        port.write_all(&out).await.map_err(|_| ())?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
