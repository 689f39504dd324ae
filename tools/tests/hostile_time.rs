//! Attack on time: the victim's wall clock steps an hour ahead, then two hours back (NTP
//! correcting a Raspberry Pi that has no real-time clock), while an honest node pings it
//! every 100 ms over a link. Timers run on a monotonic clock, so nothing expires early
//! and nothing freezes: the link stays up, the path stays, and the pings keep answering.
//!
//! The step is made with libfaketime (Debian's `libfaketime`, installed by
//! `scripts/test.sh`), preloaded into the victim only, faking the wall clock but not the
//! monotonic one.

mod common;

use std::path::Path;
use std::time::Duration;

use common::hostile::*;
use common::*;

/// libfaketime: `$GRID_LIBFAKETIME` (set by scripts/test.sh), or Debian's path.
fn libfaketime() -> String {
    let path = std::env::var("GRID_LIBFAKETIME")
        .unwrap_or_else(|_| "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1".into());
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: install Debian's libfaketime (scripts/test.sh does)"
    );
    path
}

#[test]
fn wall_clock_steps_expire_nothing_and_freeze_nothing() {
    let lib = libfaketime();
    let _slot = slot();
    let offset = TempDir::new("faketime");
    let offset_file = offset.0.join("offset");
    std::fs::write(&offset_file, "+0").unwrap();
    let port = free_port();
    let offset_path = offset_file.display().to_string();
    let mut v = Grid::start_with_env(
        &format!(
            "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
        &[
            ("LD_PRELOAD", &lib),
            ("FAKETIME_TIMESTAMP_FILE", &offset_path),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let v_dest = v.destination();
    let h = Honest::start(port, &v_dest);
    let before = before(&v);
    let wall = |v: &Grid| {
        let (ok, out, _) = v.cli(&["status", "--json"]);
        assert!(ok);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };
    let links_before = wall(&v)["links"].as_array().map_or(0, Vec::len);
    assert!(links_before >= 1, "H's link to V");
    let h_dest = h.destination.clone();
    let (_, peak) = peak_rss_during(&v, || {
        for step in ["+1h", "-1h"] {
            std::fs::write(&offset_file, step).unwrap();
            std::thread::sleep(Duration::from_secs(4));
            let s = wall(&v);
            let links = s["links"].as_array().map_or(0, Vec::len);
            assert!(
                links >= links_before,
                "after a {step} step V dropped links: {links} of {links_before}"
            );
            let (ok, _, err) = v.cli(&["path", &h_dest, "--timeout", "2"]);
            assert!(ok, "after a {step} step V lost its path to H: {err}");
            assert!(
                h.max_gap() <= MAX_GAP,
                "H's pings stalled after a {step} step"
            );
        }
        std::fs::write(&offset_file, "+0").unwrap();
        std::thread::sleep(Duration::from_secs(2));
    });
    // The step was real for V: its audit records carry the faked wall time.
    let audit = std::fs::read_to_string(v.dir.0.join("audit.jsonl")).unwrap_or_default();
    assert!(!audit.is_empty());
    assert_held(
        "wall clock +1h, then -1h",
        &mut v,
        h,
        before,
        peak,
        96 * 1024,
    );
}
