//! Bring-up against scripted devices on an in-memory pipe.

use super::*;
use grid_firmware::kiss;
use tokio::io::DuplexStream;

/// A device that answers like RNode firmware `version`, echoing settings through `echo`
/// (which may alter them, as a radio that refuses a value would).
async fn device(mut io: DuplexStream, version: (u8, u8), echo: fn(u8, &[u8]) -> Vec<u8>) {
    let mut d = kiss::Decoder::<600>::new();
    let mut buf = [0u8; 512];
    loop {
        let n = match io.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut out = Vec::new();
        for &b in &buf[..n] {
            let Some(f) = d.push(b) else { continue };
            let answer: Option<(u8, Vec<u8>)> = match f.cmd {
                cmd::DETECT => Some((cmd::DETECT, vec![cmd::DETECT_RESP])),
                cmd::FW_VERSION => Some((cmd::FW_VERSION, vec![version.0, version.1])),
                cmd::PLATFORM => Some((cmd::PLATFORM, vec![cmd::PLATFORM_ESP32])),
                cmd::MCU => Some((cmd::MCU, vec![0x81])),
                cmd::DATA => Some((cmd::DATA, f.data.to_vec())),
                c => Some((c, echo(c, f.data))),
            };
            if let Some((c, p)) = answer {
                out.extend(kiss::escaped(c, &p));
            }
        }
        if io.write_all(&out).await.is_err() {
            return;
        }
    }
}

fn config() -> RnodeConfig {
    RnodeConfig::new("test", 868_100_000, 125_000, 9, 5)
}

/// A device that echoes everything, brought up with `c`.
async fn echoing_device_up(c: &RnodeConfig) -> (DuplexStream, Reports, RadioInfo) {
    let (mut host, dev) = tokio::io::duplex(4096);
    tokio::spawn(device(dev, (1, 82), |_, d| d.to_vec()));
    let mut reports = Reports::default();
    let info = bring_up(&mut host, c, &mut reports).await.unwrap();
    (host, reports, info)
}

#[tokio::test]
async fn brings_up_a_device_that_echoes_its_settings() {
    let mut c = config();
    c.lt_alock = Some(1.0);
    let (_host, reports, info) = echoing_device_up(&c).await;
    assert_eq!(info.firmware, Some((1, 82)));
    assert_eq!(info.platform, Some(cmd::PLATFORM_ESP32));
    assert_eq!(reports.echo.lt_alock, Some(100));
    assert_eq!(reports.echo.cr, Some(5));
}

#[tokio::test]
async fn refuses_old_firmware_and_rejected_settings() {
    let (mut host, dev) = tokio::io::duplex(4096);
    tokio::spawn(device(dev, (1, 51), |_, d| d.to_vec()));
    let err = bring_up(&mut host, &config(), &mut Reports::default())
        .await
        .unwrap_err();
    assert!(matches!(err, BringUpError::FirmwareTooOld(1, 51)), "{err}");
    assert!(err.to_string().contains("1.52"));

    // A radio that clamps the power to 10 dBm.
    let (mut host, dev) = tokio::io::duplex(4096);
    tokio::spawn(device(dev, (1, 82), |c, d| {
        if c == cmd::TXPOWER {
            vec![10]
        } else {
            d.to_vec()
        }
    }));
    let err = bring_up(&mut host, &config(), &mut Reports::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BringUpError::Rejected { what: "tx_power", wanted, got } if wanted == "14" && got == "10"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_port_is_not_an_rnode() {
    let (mut host, _dev) = tokio::io::duplex(4096);
    let err = bring_up(&mut host, &config(), &mut Reports::default())
        .await
        .unwrap_err();
    assert!(matches!(err, BringUpError::NotAnRnode), "{err}");
}

/// Bring an echoing device up with `c` and run the pump on it; returns where to send
/// frames and the node's event stream.
async fn pumping(c: RnodeConfig) -> (mpsc::Sender<Vec<u8>>, mpsc::Receiver<InterfaceEvent>) {
    let (mut host, mut reports, _) = echoing_device_up(&c).await;
    let mut governor = c.governor();
    let (hub, events) = Hub::new(16);
    let (tx, mut rx) = mpsc::channel(16);
    let id = hub.allocate();
    tokio::spawn(async move {
        let mut link = Link {
            hub: &hub,
            id,
            config: &c,
            reports: &mut reports,
            governor: governor.as_mut(),
        };
        link.pump(&mut host, &mut rx).await
    });
    (tx, events)
}

#[tokio::test]
async fn the_pump_moves_data_frames_both_ways() {
    let (tx, mut events) = pumping(config()).await;
    // The scripted device loops data back, so what the node sends comes back in.
    let packet: Vec<u8> = (0..=255u8).chain(0..=200).collect();
    tx.send(packet.clone()).await.unwrap();
    loop {
        match events.recv().await.unwrap() {
            InterfaceEvent::Frame { data, .. } => {
                assert_eq!(data, packet);
                break;
            }
            InterfaceEvent::Radio { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_governor_holds_frames_beyond_the_duty_cycle() {
    let mut c = config();
    // SF9: a 300-byte packet takes ~1.5 s; allow ~2 s an hour, so one fits.
    c.lt_alock = Some(0.06);
    assert!(c.governor().is_some(), "a limit makes a governor");
    let (tx, mut events) = pumping(c).await;
    tx.send(vec![0; 300]).await.unwrap();
    tx.send(vec![1; 300]).await.unwrap();
    let mut frames = Vec::new();
    let mut deferred = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.recv()).await {
        match ev {
            InterfaceEvent::Frame { data, .. } => frames.push(data[0]),
            InterfaceEvent::Radio { stats, .. } => deferred = stats.duty_deferred,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(frames, [0], "only the first frame fits the hour's airtime");
    assert_eq!(deferred, 1, "the second one waits");
}
