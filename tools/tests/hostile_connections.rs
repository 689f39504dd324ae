//! Attack: connections that pin a node. Against a victim that may hold only 256 open
//! files, an attacker opens 340 TCP connections that never send a frame (40 from one
//! address, 300 from ten others) and 100 control-socket connections that never send a
//! request, and holds them about 10 s, while an honest node pings the victim every 100 ms.
//!
//! The victim holds at most `max_connections_per_ip` (32) from one address and
//! `max_connections` (128) in all, closing the rest at once; it closes the silent ones
//! after `first_frame_timeout` without ever making interfaces of them; the control socket
//! holds 64 and lets newcomers (the CLI) displace idle ones. So it never runs out of file
//! descriptors, `grid status` keeps answering, the honest node stays connected, and the
//! log says what happened in a few lines, not one per connection.

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::hostile::*;
use common::*;

/// V's open-file limit.
const NOFILE: u64 = 256;
/// V's listener defaults (`max_connections`, `max_connections_per_ip`).
const MAX_CONNECTIONS: usize = 128;
const MAX_PER_IP: usize = 32;
/// The control socket's cap.
const MAX_CONTROL: usize = 64;
/// V's `first_frame_timeout` here: long enough that the caps are checked before any
/// silent connection could have timed out.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(8);

/// A TCP connection to V from the loopback address `source`.
fn connect_from(source: Ipv4Addr, port: u16) -> TcpStream {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    sock.connect(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into())
        .unwrap();
    let s: TcpStream = sock.into();
    s.set_nonblocking(true).unwrap();
    s
}

/// Whether V has closed a connection (end of stream or reset; never blocks).
fn is_closed(s: &mut impl Read) -> bool {
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// How many of `conns` V has closed.
fn closed<S: Read>(conns: &mut [S]) -> usize {
    conns
        .iter_mut()
        .filter_map(|s| is_closed(s).then_some(()))
        .count()
}

/// V's warnings about refused, dropped or failed connections.
fn connection_warnings(v: &Grid) -> Vec<String> {
    v.log()
        .lines()
        .filter(|l| l.contains("connections refused") || l.contains("connections closed"))
        .chain(v.log().lines().filter(|l| l.contains("accept failed")))
        .map(str::to_string)
        .collect()
}

#[test]
fn idle_tcp_and_control_connections_do_not_pin_the_node() {
    let _slot = slot();
    let (mut v, port) = victim_limited(
        &format!(
            "first_frame_timeout = \"{}s\"",
            FIRST_FRAME_TIMEOUT.as_secs()
        ),
        NOFILE,
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", v.pid())).unwrap();
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(&format!(" {NOFILE} "))),
        "V runs with ulimit -n {NOFILE}:\n{limits}"
    );
    let v_dest = v.destination();
    let h = Honest::start(port, &v_dest);
    let before = before(&v);
    let interfaces = |v: &Grid| v.status()["interfaces"].as_array().map_or(0, Vec::len);
    let interfaces_before = interfaces(&v);
    let fds_before = v.open_fds();
    let socket = v.dir.0.join("grid.sock");

    let (peak_fds, peak) = peak_rss_during(&v, || {
        let started = Instant::now();
        let mut peak_fds = v.open_fds();
        // 40 from one address: 32 held, 8 closed at once.
        let mut one: Vec<TcpStream> = (0..40)
            .map(|_| connect_from(Ipv4Addr::new(127, 0, 0, 12), port))
            .collect();
        wait_for(Duration::from_secs(5), "the per-address cap", || {
            (closed(&mut one) >= 40 - MAX_PER_IP).then_some(())
        });
        // 300 from ten addresses (30 each, under the per-address cap): the listener
        // fills up (H holds one connection, the 32 above others) and the rest are closed.
        let mut many: Vec<TcpStream> = (0..300u16)
            .map(|i| connect_from(Ipv4Addr::new(127, 0, 0, 2 + (i % 10) as u8), port))
            .collect();
        let held_max = MAX_CONNECTIONS - 1 - MAX_PER_IP;
        wait_for(Duration::from_secs(5), "the total cap", || {
            (closed(&mut many) >= 300 - held_max).then_some(())
        });
        // 100 control connections that never send a request.
        let mut ctl: Vec<UnixStream> = (0..100)
            .map(|_| {
                let s = UnixStream::connect(&socket).unwrap();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect();
        wait_for(Duration::from_secs(5), "the control socket's cap", || {
            (closed(&mut ctl) >= 100 - MAX_CONTROL).then_some(())
        });
        peak_fds = peak_fds.max(v.open_fds());
        let checked_at = started.elapsed();
        assert!(
            checked_at < FIRST_FRAME_TIMEOUT,
            "the caps were checked before any connection could time out ({checked_at:?})"
        );
        let held_one = one.len() - closed(&mut one);
        let held_many = many.len() - closed(&mut many);
        let held_ctl = ctl.len() - closed(&mut ctl);
        eprintln!(
            "after {checked_at:?}: V holds {held_one}/40 from one address, {held_many}/300 \
             from ten, {held_ctl}/100 on the control socket; {} open files",
            v.open_fds()
        );
        assert!(held_one <= MAX_PER_IP, "{held_one} held from one address");
        assert!(
            held_one + held_many < MAX_CONNECTIONS,
            "{held_one} + {held_many} held besides H"
        );
        assert!(
            held_ctl <= MAX_CONTROL,
            "{held_ctl} control connections held"
        );

        // The CLI is still served (each call displaces one idle control connection), and
        // the silent TCP connections never became interfaces.
        for _ in 0..5 {
            let (ok, _, err) = v.cli(&["status", "--json"]);
            assert!(ok, "grid status during the attack: {err}");
            assert_eq!(
                interfaces(&v),
                interfaces_before,
                "no interface for silent peers"
            );
            peak_fds = peak_fds.max(v.open_fds());
            std::thread::sleep(Duration::from_secs(1));
        }

        // After first_frame_timeout every silent TCP connection is closed.
        wait_for(
            FIRST_FRAME_TIMEOUT + Duration::from_secs(10),
            "silent TCP connections closed",
            || (closed(&mut one) + closed(&mut many) == 340).then_some(()),
        );
        eprintln!(
            "every silent TCP connection closed {:?} after the attack began",
            started.elapsed()
        );
        // Hold the control connections to about 10 s, then let go.
        std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
        let (ok, _, err) = v.cli(&["status", "--json"]);
        assert!(ok, "grid status at the end of the attack: {err}");
        drop(ctl);
        peak_fds
    });

    let warnings = connection_warnings(&v);
    eprintln!(
        "V's open files: {fds_before} before, peak {peak_fds} (limit {NOFILE}); {} warning \
         lines:\n{}",
        warnings.len(),
        warnings.join("\n")
    );
    assert!(peak_fds < NOFILE as usize, "V ran out of file descriptors");
    assert!(
        !warnings.iter().any(|l| l.contains("accept failed")),
        "V's accept failed"
    );
    // Hundreds of refusals and timeouts, a handful of lines: one per kind at once, then
    // one per kind per 10 s with a count.
    assert!(
        (1..=12).contains(&warnings.len()),
        "{} warning lines",
        warnings.len()
    );
    assert_held(
        "340 silent TCP + 100 silent control connections",
        &mut v,
        h,
        before,
        peak,
        64 * 1024,
    );
}
