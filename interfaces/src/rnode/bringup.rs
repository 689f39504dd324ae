//! Bringing an RNode up, as RNS's `RNodeInterface` does: detect it, check its firmware,
//! configure the radio in RNS's order and validate what it echoes back.

use std::time::Duration;

use grid_firmware::{cmd, kiss};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::config::RnodeConfig;
use super::reports::{RadioInfo, Reports};

/// How long the device has to answer detect.
const DETECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the device has to echo the configuration.
const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a device could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum BringUpError {
    /// Reading or writing the port failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Nothing answered the detect request the way an RNode does.
    #[error("not an RNode: no answer to the detect request (is this the right port, and is RNode firmware installed?)")]
    NotAnRnode,
    /// The firmware predates what RNS (and Grid) need.
    #[error(
        "RNode firmware {0}.{1:02} is too old: 1.52 or later is needed (update it with rnodeconf)"
    )]
    FirmwareTooOld(u8, u8),
    /// The radio did not take a setting.
    #[error("the radio did not accept {what}: asked for {wanted}, it reports {got}")]
    Rejected {
        /// Which setting.
        what: &'static str,
        /// What was sent.
        wanted: String,
        /// What came back (`nothing` if no echo).
        got: String,
    },
    /// The device reported an error while configuring.
    #[error("the radio reported error 0x{0:02x} while configuring")]
    DeviceError(u8),
}

/// The detect burst: detect, firmware version, platform and MCU queries in one write.
pub const DETECT_BURST: [u8; 13] = [
    kiss::FEND,
    cmd::DETECT,
    cmd::DETECT_REQ,
    kiss::FEND,
    cmd::FW_VERSION,
    0x00,
    kiss::FEND,
    cmd::PLATFORM,
    0x00,
    kiss::FEND,
    cmd::MCU,
    0x00,
    kiss::FEND,
];

/// Append one KISS frame to `out`.
pub(crate) fn frame_into(out: &mut Vec<u8>, command: u8, payload: &[u8]) {
    out.extend(kiss::escaped(command, payload));
}

/// The configuration writes, in RNS's order.
pub(crate) fn configure_bytes(c: &RnodeConfig) -> Vec<u8> {
    let mut out = Vec::new();
    frame_into(&mut out, cmd::FREQUENCY, &c.frequency.to_be_bytes());
    frame_into(&mut out, cmd::BANDWIDTH, &c.bandwidth.to_be_bytes());
    frame_into(&mut out, cmd::TXPOWER, &[c.tx_power]);
    frame_into(&mut out, cmd::SF, &[c.spreading_factor]);
    frame_into(&mut out, cmd::CR, &[c.coding_rate]);
    if let Some(p) = c.st_alock {
        frame_into(
            &mut out,
            cmd::ST_ALOCK,
            &RnodeConfig::lock_value(p).to_be_bytes(),
        );
    }
    if let Some(p) = c.lt_alock {
        frame_into(
            &mut out,
            cmd::LT_ALOCK,
            &RnodeConfig::lock_value(p).to_be_bytes(),
        );
    }
    frame_into(&mut out, cmd::RADIO_STATE, &[cmd::RADIO_ON]);
    out
}

/// Read reports until `done` holds or `timeout` passes. Data frames that arrive meanwhile
/// are kept for the node.
async fn read_until<S: AsyncRead + Unpin>(
    io: &mut S,
    reports: &mut Reports,
    timeout: Duration,
    done: impl Fn(&Reports) -> bool,
) -> Result<bool, std::io::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 1024];
    while !done(reports) {
        let n = match tokio::time::timeout_at(deadline, io.read(&mut buf)).await {
            Err(_) => return Ok(false),
            Ok(Ok(0)) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the port closed",
                ))
            }
            Ok(r) => r?,
        };
        reports.feed(&buf[..n]);
    }
    Ok(true)
}

/// Detect, check and configure the radio on `io`. Returns what the device said about
/// itself; `reports` keeps decoding state (and any early data frames) for the pump.
pub async fn bring_up<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    config: &RnodeConfig,
    reports: &mut Reports,
) -> Result<RadioInfo, BringUpError> {
    io.write_all(&DETECT_BURST).await?;
    io.flush().await?;
    let detected = read_until(io, reports, DETECT_TIMEOUT, |r| {
        r.detected && r.info.firmware.is_some()
    })
    .await?;
    if !reports.detected {
        return Err(BringUpError::NotAnRnode);
    }
    let Some((major, minor)) = reports.info.firmware else {
        return Err(BringUpError::NotAnRnode);
    };
    if (major, minor) < cmd::MIN_FIRMWARE {
        return Err(BringUpError::FirmwareTooOld(major, minor));
    }
    let _ = detected;
    // Platform and MCU answers may trail the version; give them a moment.
    let _ = read_until(io, reports, Duration::from_millis(200), |r| {
        r.info.platform.is_some() && r.info.mcu.is_some()
    })
    .await?;

    reports.clear_echoes();
    io.write_all(&configure_bytes(config)).await?;
    io.flush().await?;
    let _ = read_until(io, reports, CONFIGURE_TIMEOUT, |r| {
        r.echo.frequency.is_some()
            && r.echo.bandwidth.is_some()
            && r.echo.tx_power.is_some()
            && r.echo.sf.is_some()
            && r.echo.state == Some(cmd::RADIO_ON)
    })
    .await?;
    if let Some(e) = reports.last_error.take() {
        return Err(BringUpError::DeviceError(e));
    }
    validate_echoes(config, reports)?;
    Ok(reports.info.clone())
}

/// RNS's checks: frequency within 100 Hz; bandwidth, power, SF and state exact.
fn validate_echoes(c: &RnodeConfig, r: &Reports) -> Result<(), BringUpError> {
    fn check<T: PartialEq + std::fmt::Display>(
        what: &'static str,
        wanted: T,
        got: Option<T>,
        ok: impl Fn(&T, &T) -> bool,
    ) -> Result<(), BringUpError> {
        match got {
            Some(g) if ok(&wanted, &g) => Ok(()),
            got => Err(BringUpError::Rejected {
                what,
                wanted: wanted.to_string(),
                got: got.map_or_else(|| "nothing".into(), |g| g.to_string()),
            }),
        }
    }
    check("frequency", c.frequency, r.echo.frequency, |a, b| {
        a.abs_diff(*b) <= 100
    })?;
    check("bandwidth", c.bandwidth, r.echo.bandwidth, |a, b| a == b)?;
    check("tx_power", c.tx_power, r.echo.tx_power, |a, b| a == b)?;
    check("spreading_factor", c.spreading_factor, r.echo.sf, |a, b| {
        a == b
    })?;
    check("radio state", cmd::RADIO_ON, r.echo.state, |a, b| a == b)?;
    Ok(())
}

/// Turn the radio off and tell the device the host is leaving (best effort).
pub(crate) fn detach_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    frame_into(&mut out, cmd::RADIO_STATE, &[cmd::RADIO_OFF]);
    frame_into(&mut out, cmd::LEAVE, &[cmd::LEAVE_VALUE]);
    out
}
