use super::*;
use crate::psi::{Psi, PsiLine};
use crate::GIB;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn mem(total_gib: u64, available_mib: u64) -> MemInfo {
    MemInfo {
        total: total_gib * GIB,
        available: available_mib * crate::MIB,
        ..MemInfo::default()
    }
}

fn psi(some10: f32, full10: Option<f32>) -> Psi {
    Psi {
        some: PsiLine {
            avg10: some10,
            ..PsiLine::default()
        },
        full: full10.map(|f| PsiLine {
            avg10: f,
            ..PsiLine::default()
        }),
    }
}

#[test]
fn memory_pressure_is_the_larger_of_use_and_stalls() {
    let mut r = Reading {
        mem: mem(8, 4096),
        ..Reading::default()
    };
    assert!((r.memory_pressure() - 0.5).abs() < 1e-6);
    assert_eq!(Level::of(r.memory_pressure()), Level::Normal);
    // 10 % of the last 10 s stalled on memory: warning, whatever is free.
    r.mem_psi = Some(psi(10.0, Some(0.0)));
    assert!((r.memory_pressure() - 0.80).abs() < 1e-6);
    r.mem_psi = Some(psi(30.0, None));
    assert_eq!(Level::of(r.memory_pressure()), Level::High);
    // Every task stalled: critical.
    r.mem_psi = Some(psi(0.0, Some(12.0)));
    assert_eq!(Level::of(r.memory_pressure()), Level::Critical);
    // Without PSI (the fallback): 400 MB of 8 GB free is critical.
    let r = Reading {
        mem: mem(8, 400),
        ..Reading::default()
    };
    assert_eq!(Level::of(r.memory_pressure()), Level::Critical);
    // Nothing known reads as full.
    assert_eq!(Reading::default().memory_pressure(), 1.0);
}

#[test]
fn cpu_pressure_from_psi_or_from_load_per_core() {
    let mut r = Reading {
        cpu_psi: Some(psi(75.0, None)),
        load1: Some(0.0),
        cores: 2,
        ..Reading::default()
    };
    assert!((r.cpu_pressure() - 0.90).abs() < 1e-6);
    r.cpu_psi = None;
    assert_eq!(r.cpu_pressure(), 0.0);
    r.load1 = Some(3.0); // 1.5 per core
    assert!((r.cpu_pressure() - 0.90).abs() < 1e-6);
    r.load1 = Some(f32::NAN);
    assert_eq!(r.cpu_pressure(), 0.0);
    r.load1 = Some(1e9);
    assert_eq!(r.cpu_pressure(), 1.0);
}

#[test]
fn a_level_rises_at_once_and_falls_only_after_holding_below_the_hysteresis() {
    let mut w = PressureWatcher::new(Resource::Memory);
    assert_eq!(w.observe(s(0), 0.5), None);
    assert_eq!(w.poll_interval(), s(10));
    let up = w.observe(s(10), 0.92).unwrap();
    assert_eq!((up.from, up.to), (Level::Normal, Level::High));
    assert_eq!(w.poll_interval(), s(2));
    // Hovering just under the threshold: no event.
    for t in 11..40 {
        assert_eq!(w.observe(s(t), 0.88), None, "t = {t}");
    }
    assert_eq!(w.level(), Level::High);
    // Below the hysteresis, but not for long enough.
    assert_eq!(w.observe(s(40), 0.84), None);
    assert_eq!(w.observe(s(45), 0.84), None);
    // A spike resets the hold.
    assert_eq!(w.observe(s(46), 0.90), None);
    assert_eq!(w.observe(s(47), 0.84), None);
    assert_eq!(w.observe(s(56), 0.84), None);
    let down = w.observe(s(57), 0.84).unwrap();
    assert_eq!((down.from, down.to), (Level::High, Level::Warning));
    // Straight to normal in one step when pressure dropped far.
    assert_eq!(w.observe(s(58), 0.1), None);
    let down = w.observe(s(68), 0.1).unwrap();
    assert_eq!(down.to, Level::Normal);
    // To critical from anywhere at once.
    assert_eq!(w.observe(s(69), 0.99).unwrap().to, Level::Critical);
    assert_eq!(w.poll_interval(), s(1));
    assert_eq!(w.observe(s(70), f32::NAN), None);
    assert_eq!(w.level(), Level::Critical);
}

proptest::proptest! {
    /// Whatever the readings, the level is never below what the pressure reads as, and
    /// never falls sooner than the hold time after a reading at its own level.
    #[test]
    fn the_watcher_never_sits_below_the_pressure(ps in proptest::collection::vec(0.0f32..1.0, 1..200)) {
        let mut w = PressureWatcher::new(Resource::Cpu);
        let mut last_at_level = Duration::ZERO;
        for (i, p) in ps.into_iter().enumerate() {
            let now = s(i as u64);
            let before = w.level();
            let _ = w.observe(now, p);
            proptest::prop_assert!(w.level() >= Level::of(p));
            if w.level() < before {
                proptest::prop_assert!(now - last_at_level >= HOLD);
            }
            if Level::of((p + HYSTERESIS).min(1.0)) >= w.level() {
                last_at_level = now;
            }
        }
    }
}
