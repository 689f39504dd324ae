//! Serial ports: the settings (speed, data bits, parity, stop bits), opening one, and
//! the plain serial interface (RNS `SerialInterface`: HDLC frames on the line, as TCP).

use std::time::Duration;

use rns_core::transport::InterfaceConfig;
use tokio::sync::mpsc;

use crate::tcp::{pump, Ended};
use crate::{max_frame, report_up, Hub, InterfaceEvent, Readiness, OUTBOUND_QUEUE};

/// Delay between attempts to open a missing port (RNS: 5 s).
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
/// RNS's hardware MTU for serial and KISS interfaces.
pub const SERIAL_HW_MTU: usize = 564;

/// Parity bit setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    /// None (the default).
    None,
    /// Even.
    Even,
    /// Odd.
    Odd,
}

/// How to open a serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialConfig {
    /// Device path.
    pub port: String,
    /// Baud rate (RNS default 9600).
    pub speed: u32,
    /// 5–8 data bits.
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// 1 or 2 stop bits.
    pub stop_bits: u8,
}

impl SerialConfig {
    /// `port` at RNS's defaults: 9600 baud, 8N1.
    pub fn new(port: impl Into<String>) -> Self {
        SerialConfig {
            port: port.into(),
            speed: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
        }
    }

    /// Check the values; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.port.is_empty() {
            return Err(("port", "required (e.g. \"/dev/ttyUSB0\")".into()));
        }
        if self.speed == 0 {
            return Err(("speed", "must be a baud rate such as 9600 or 115200".into()));
        }
        if !(5..=8).contains(&self.data_bits) {
            return Err(("databits", "must be 5 to 8".into()));
        }
        if !(1..=2).contains(&self.stop_bits) {
            return Err(("stopbits", "must be 1 or 2".into()));
        }
        Ok(())
    }

    /// Open the port without flow control lines.
    pub fn open(&self) -> std::io::Result<tokio_serial::SerialStream> {
        use tokio_serial::SerialPortBuilderExt;
        let data_bits = match self.data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        };
        let parity = match self.parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        };
        let stop_bits = if self.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        };
        tokio_serial::new(&self.port, self.speed)
            .data_bits(data_bits)
            .parity(parity)
            .stop_bits(stop_bits)
            .flow_control(tokio_serial::FlowControl::None)
            .open_native_async()
            .map_err(std::io::Error::from)
    }
}

/// Log a port failure loudly once, then quietly while it stays the same.
pub(crate) fn report_failure(last: &mut String, port: &str, msg: &str) {
    if last != msg {
        tracing::warn!(port, "{msg}; retrying every {}s", RETRY_INTERVAL.as_secs());
        *last = msg.to_string();
    } else {
        tracing::debug!(port, "{msg}");
    }
}

/// Run a serial interface with HDLC framing until the node goes away, reopening the port
/// when it disappears.
pub async fn run(hub: Hub, config: SerialConfig, mut iface: InterfaceConfig) {
    iface.bitrate = u64::from(config.speed);
    let id = hub.allocate();
    let (tx, mut rx) = mpsc::channel(OUTBOUND_QUEUE);
    let max = max_frame(&iface);
    let mut last_error = String::new();
    loop {
        match config.open() {
            Ok(port) => {
                last_error.clear();
                tracing::info!(interface = %id, port = %config.port, "serial port open");
                if !report_up(&hub, id, &iface, (&tx, &mut rx), Readiness::Now).await {
                    return;
                }
                if let Ended::Node = pump(&hub, id, port, &mut rx, max).await {
                    return;
                }
                tracing::warn!(interface = %id, port = %config.port, "serial port gone; waiting for it to come back");
                if !hub.send(InterfaceEvent::Down { id, remove: false }).await {
                    return;
                }
            }
            Err(e) => report_failure(
                &mut last_error,
                &config.port,
                &format!("cannot open the serial port: {e}"),
            ),
        }
        if hub.is_closed() {
            return;
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}
