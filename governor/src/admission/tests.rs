use super::*;
use crate::pressure::Reading;
use crate::profile::MemInfo;
use crate::psi::{Psi, PsiLine};
use crate::GIB;

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

/// An 8 GB laptop with `free_mib` available and a default budget of 4 GiB.
fn laptop(free_mib: u64) -> Reading {
    Reading {
        mem: MemInfo {
            total: 8 * GIB,
            available: free_mib * MIB,
            ..MemInfo::default()
        },
        cores: 2,
        load1: Some(0.2),
        ..Reading::default()
    }
}

fn governor(free_mib: u64) -> Governor {
    let mut g = Governor::new(Budget {
        ram: 4 * GIB,
        vram: 0,
    });
    let _ = g.observe(s(0), laptop(free_mib));
    g
}

fn job(priority: Priority, mib: u64) -> Job {
    Job::new(JobKind::Inference, "test", priority, mib * MIB)
}

#[test]
fn a_job_within_budget_and_free_memory_is_admitted_and_released() {
    let mut g = governor(6000);
    let a = g.admit(job(Priority::Interactive, 1000), s(1)).unwrap();
    assert!(a.evict.is_empty());
    assert_eq!(g.status(s(1)).ram_in_use, 1000 * MIB);
    assert_eq!(g.status(s(1)).jobs.len(), 1);
    // 3 GiB of the budget left; 6000 MiB free less the margin is more.
    assert_eq!(g.headroom(), 4 * GIB - 1000 * MIB);
    assert_eq!(g.release(a.grant).unwrap().ram, 1000 * MIB);
    assert_eq!(g.release(a.grant), None);
    assert_eq!(g.status(s(2)).ram_in_use, 0);
}

#[test]
fn over_budget_is_refused_with_the_setting_to_change() {
    let mut g = governor(7000);
    let e = g.admit(job(Priority::Interactive, 5000), s(1)).unwrap_err();
    assert!(
        matches!(e, Refusal::OverBudget { memory: Memory::Ram, need, .. } if need == 5000 * MIB)
    );
    assert!(e.to_string().contains("ram_budget"), "{e}");
    assert_eq!(e.code(), "over_budget");
    // Budget shared between jobs.
    let _a = g.admit(job(Priority::Interactive, 3000), s(1)).unwrap();
    assert!(matches!(
        g.admit(job(Priority::Interactive, 1500), s(1)),
        Err(Refusal::OverBudget { in_use, .. }) if in_use == 3000 * MIB
    ));
}

#[test]
fn too_little_free_memory_is_refused_whatever_the_budget() {
    let mut g = governor(4000);
    let e = g.admit(job(Priority::Interactive, 3600), s(1)).unwrap_err();
    assert_eq!(
        e,
        Refusal::NotEnoughFree {
            need: 3600 * MIB,
            available: 4000 * MIB,
            margin: FREE_MARGIN
        }
    );
    assert!(e.to_string().contains("close programs"), "{e}");
    // Free memory less the margin bounds what an offer may promise.
    assert_eq!(g.headroom(), 4000 * MIB - FREE_MARGIN);
    assert!(g.admit(job(Priority::Interactive, 3400), s(1)).is_ok());
}

#[test]
fn pressure_gates_by_priority() {
    // 85 % of memory in use: pressure 0.85, warning.
    let mut g = governor(1229);
    assert_eq!(g.level(Resource::Memory), Level::Warning);
    let e = g.admit(job(Priority::Interactive, 10), s(1)).unwrap_err();
    assert!(
        matches!(
            e,
            Refusal::Pressure {
                resource: Resource::Memory,
                priority: Priority::Interactive,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("memory pressure is warning"), "{e}");
    assert!(g.admit(job(Priority::Realtime, 10), s(1)).is_ok());
    // CPU pressure holds back background work, never interactive work.
    let mut g = governor(6000);
    let busy = Reading {
        cpu_psi: Some(Psi {
            some: PsiLine {
                avg10: 80.0,
                ..PsiLine::default()
            },
            full: None,
        }),
        ..laptop(6000)
    };
    let _ = g.observe(s(1), busy);
    assert!(matches!(
        g.admit(job(Priority::Background, 10), s(1)),
        Err(Refusal::Pressure {
            resource: Resource::Cpu,
            ..
        })
    ));
    assert!(g.admit(job(Priority::Interactive, 10), s(1)).is_ok());
}

#[test]
fn the_job_cap_holds() {
    let mut g = governor(7000);
    for _ in 0..MAX_GRANTS {
        let _ = g.admit(job(Priority::Interactive, 1), s(1)).unwrap();
    }
    assert_eq!(
        g.admit(job(Priority::Interactive, 1), s(1)),
        Err(Refusal::TooManyJobs { limit: MAX_GRANTS })
    );
}

#[test]
fn admission_evicts_idle_models_to_make_room_but_never_interactive_ones() {
    let mut g = governor(7000);
    let r = g.registry_mut();
    r.register("old-adapter", 1000 * MIB, Priority::Background, s(0))
        .unwrap();
    r.register("preload", 1500 * MIB, Priority::Background, s(5))
        .unwrap();
    r.register("chat-model", 1000 * MIB, Priority::Interactive, s(0))
        .unwrap();
    // 3.5 GiB loaded of 4: a 1.2 GiB job needs 0.7 GiB freed, the oldest idle first.
    let a = g.admit(job(Priority::Interactive, 1200), s(10)).unwrap();
    assert_eq!(a.evict, ["old-adapter"]);
    assert!(g.registry().get("old-adapter").is_none());
    // Nothing idle and evictable is left but `preload`: not enough for 3 GiB.
    let e = g
        .admit(job(Priority::Interactive, 3000), s(11))
        .unwrap_err();
    assert!(matches!(e, Refusal::OverBudget { .. }), "{e:?}");
    assert!(
        g.registry().get("preload").is_some(),
        "a refused job evicts nothing"
    );
    // A model in use is not evicted.
    assert!(g.registry_mut().begin_use("preload", s(12)));
    g.release(a.grant);
    assert!(matches!(
        g.admit(job(Priority::Interactive, 2000), s(13)),
        Err(Refusal::OverBudget { .. })
    ));
}

#[test]
fn memory_pressure_evicts_idle_models_and_announces_levels() {
    let mut g = governor(6000);
    let r = g.registry_mut();
    r.register("idle-long", 500 * MIB, Priority::Background, s(0))
        .unwrap();
    r.register("idle-short", 500 * MIB, Priority::Batch, s(100))
        .unwrap();
    r.register("chat", 500 * MIB, Priority::Interactive, s(0))
        .unwrap();
    // High (92 % in use): what has been idle a minute goes.
    let d = g.observe(s(120), laptop(655));
    assert_eq!(d.len(), 2, "{d:?}");
    assert!(
        matches!(&d[0], Decision::Level(c) if c.resource == Resource::Memory && c.to == Level::High)
    );
    assert!(matches!(&d[1], Decision::Evict { key, level: Level::High, .. } if key == "idle-long"));
    assert_eq!(g.poll_interval(), s(2));
    // Critical: everything idle and evictable, at once.
    let d = g.observe(s(121), laptop(200));
    assert!(matches!(&d[0], Decision::Level(c) if c.to == Level::Critical));
    assert!(matches!(&d[1], Decision::Evict { key, .. } if key == "idle-short"));
    assert_eq!(d.len(), 2);
    assert!(g.registry().get("chat").is_some());
    // Calm again: back to normal after the hold, nothing more evicted.
    assert!(g.observe(s(122), laptop(6000)).is_empty());
    let d = g.observe(s(133), laptop(6000));
    assert_eq!(d.len(), 1);
    assert!(
        matches!(&d[0], Decision::Level(c) if c.from == Level::Critical && c.to == Level::Normal)
    );
}

#[test]
fn vram_is_budgeted_too() {
    let mut g = Governor::new(Budget {
        ram: 4 * GIB,
        vram: 2 * GIB,
    });
    let mut big = job(Priority::Interactive, 100);
    big.vram = 3 * GIB;
    assert!(matches!(
        g.admit(big, s(0)),
        Err(Refusal::OverBudget {
            memory: Memory::Vram,
            ..
        })
    ));
    let mut ok = job(Priority::Interactive, 100);
    ok.vram = GIB;
    assert!(g.admit(ok, s(0)).is_ok());
    // Before any reading free memory is not checked (the budget still is).
    assert!(g.admit(job(Priority::Interactive, 3000), s(0)).is_ok());
}

#[test]
fn refusals_serialize_with_their_reason() {
    let e = Refusal::TooManyJobs { limit: 64 };
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["reason"], "too_many_jobs");
    assert_eq!(v["limit"], 64);
}

#[test]
fn gpu_memory_pressure_holds_back_only_gpu_jobs() {
    let mut g = Governor::new(Budget {
        ram: 4 * GIB,
        vram: 8 * GIB,
    });
    let gpu = |used_gib: u64| Reading {
        vram_used: used_gib * GIB,
        vram_total: 8 * GIB,
        ..laptop(6000)
    };
    let changes = g.observe(s(0), gpu(1));
    assert!(changes.is_empty(), "{changes:?}");
    assert_eq!(g.level(Resource::Vram), Level::Normal);
    // 7.9 of 8 GiB in use: critical, announced as a VRAM level change.
    let mut full = gpu(7);
    full.vram_used += 900 * MIB;
    let changes = g.observe(s(10), full);
    assert!(
        changes.iter().any(|d| matches!(d,
            Decision::Level(c) if c.resource == Resource::Vram && c.to == Level::Critical)),
        "{changes:?}"
    );
    let mut on_gpu = job(Priority::Interactive, 100);
    on_gpu.vram = GIB;
    assert!(matches!(
        g.admit(on_gpu, s(10)),
        Err(Refusal::Pressure {
            resource: Resource::Vram,
            ..
        })
    ));
    assert!(
        g.admit(job(Priority::Interactive, 100), s(10)).is_ok(),
        "RAM-only work goes on"
    );
    assert_eq!(g.status(s(10)).vram.level, Level::Critical);
    // No GPU: no VRAM pressure, whatever "used" says.
    let none = Reading {
        vram_used: 5 * GIB,
        vram_total: 0,
        ..laptop(6000)
    };
    assert_eq!(none.vram_pressure(), 0.0);
}
