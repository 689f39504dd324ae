//! The governor on a real `grid node`: machine readings injected through
//! `[governor] system_root` (a directory standing in for `/`). Under critical memory
//! pressure the node announces `governor:pressure:critical`, evicts the idle embedding
//! worker, answers skill searches by keywords without starting a model, refuses an
//! adapter fetch as `busy` with the reason, and shows it all in `grid governor`; when
//! pressure falls it announces that too and loads the model again.
//!
//! Needs the embedding model (`GRID_MODELS`, set up by scripts/test.sh); fails loudly
//! without it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(40);

/// Write a stand-in `/proc` below `root`: an 8 GiB machine with `free_mib` available.
fn machine(root: &Path, free_mib: u64) {
    let proc_dir = root.join("proc");
    std::fs::create_dir_all(&proc_dir).unwrap();
    let meminfo = format!(
        "MemTotal: {} kB\nMemAvailable: {} kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
        8 << 20,
        free_mib << 10
    );
    // Written whole and renamed, so the node never reads half a file.
    let tmp = proc_dir.join("meminfo.tmp");
    std::fs::write(&tmp, meminfo).unwrap();
    std::fs::rename(&tmp, proc_dir.join("meminfo")).unwrap();
    std::fs::write(proc_dir.join("loadavg"), "0.10 0.10 0.10 1/100 1\n").unwrap();
}

/// The `governor:*` events the node keeps.
fn governor_events(g: &Grid) -> Vec<Value> {
    let (ok, out, err) = g.cli(&[
        "listen",
        "governor:*",
        "--recent",
        "--timeout",
        "1",
        "--json",
    ]);
    assert!(ok, "{err}");
    out.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn memory_level(g: &Grid) -> String {
    let v = g.json(&["governor"]);
    v["status"]["memory"]["level"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

#[test]
fn a_node_under_memory_pressure_refuses_model_work_with_the_reason_and_recovers() {
    let _slot = slot();
    let models = std::env::var("GRID_MODELS").unwrap_or_else(|_| {
        panic!("GRID_MODELS is not set: run `python3 tools/models_fetch.py .cache/models` (scripts/test.sh does this)")
    });
    assert!(
        Path::new(&models).is_dir(),
        "GRID_MODELS={models} is not a directory"
    );
    let root = TempDir::new("fake-root");
    machine(&root.0, 6000);
    let port = free_port();
    let g = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n\
         [governor]\nsystem_root = \"{}\"\nram_budget_mb = 2048\n\
         [[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n",
        root.0.display()
    ));
    wait_for(T, "the genome service", || {
        g.cli(&["adapter", "list", "--json"]).0.then_some(())
    });
    let v = g.json(&["governor"]);
    assert_eq!(v["status"]["budget"]["ram"], 2048u64 << 20, "{v}");
    assert_eq!(
        v["profile"]["mem"]["total"],
        8u64 << 30,
        "read below system_root: {v}"
    );
    assert_eq!(memory_level(&g), "normal");

    // Publishing embeds the package's texts: the worker starts and is registered.
    let (_pkgs, dir) = tide_package();
    g.json(&["adapter", "publish", dir.to_str().unwrap()]);
    assert_eq!(workers_of(g.pid()).len(), 1);
    let v = g.json(&["governor"]);
    assert_eq!(v["status"]["loaded"][0]["key"], "embedding-model", "{v}");

    // 150 MiB free of 8 GiB: critical. The idle worker is evicted at once.
    machine(&root.0, 150);
    wait_for(Duration::from_secs(30), "critical memory pressure", || {
        (memory_level(&g) == "critical").then_some(())
    });
    wait_for(T, "the evicted worker to stop", || {
        (workers_of(g.pid()).is_empty()).then_some(())
    });
    let st = g.status();
    assert_eq!(
        st["governor"]["memory"], "critical",
        "grid status says it: {st}"
    );
    assert_eq!(st["governor"]["ram_budget_mb"], 2048);
    let events = governor_events(&g);
    let critical = events
        .iter()
        .find(|e| e["event"] == "governor:pressure:critical")
        .unwrap_or_else(|| panic!("no pressure event in {events:?}"));
    assert_eq!(critical["payload"]["resource"], "memory", "{critical}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "governor:evicted" && e["payload"]["model"] == "embedding-model"),
        "{events:?}"
    );

    // A search still answers, by keywords, and starts no model.
    let v = g.json(&["skills", "search", "high tide", "--patience", "immediate"]);
    assert_eq!(v[0]["name"], "tide-tables", "{v}");
    assert!(
        workers_of(g.pid()).is_empty(),
        "no model loaded under critical pressure"
    );
    assert!(
        g.log().contains("skill search by keywords only"),
        "{}",
        g.log()
    );

    // A fetch is refused at once, as busy, with the reason and what to do.
    let (ok, out, err) = g.cli(&[
        "adapter",
        "fetch",
        &"ab".repeat(32),
        "--from",
        &g.destination(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("busy") && err.contains("memory pressure is critical"),
        "{err}"
    );
    assert!(err.contains("run it on a peer"), "{err}");

    // Plenty free again: after the hold the level falls, and a search loads the model.
    machine(&root.0, 6000);
    wait_for(Duration::from_secs(40), "pressure to fall", || {
        (memory_level(&g) == "normal").then_some(())
    });
    let events = governor_events(&g);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "governor:pressure:normal"),
        "{events:?}"
    );
    g.json(&[
        "skills",
        "search",
        "ocean water level forecasts",
        "--patience",
        "immediate",
    ]);
    assert_eq!(workers_of(g.pid()).len(), 1, "the model loads again");
    let human = g.cli(&["governor"]).1;
    assert!(human.contains("Memory:  normal"), "{human}");
    assert!(human.contains("Loaded:  embedding-model"), "{human}");
}

/// A GPU's video memory in use is read with each reading (here an AMD card's sysfs
/// counters below `system_root`): nearly full VRAM is VRAM pressure, announced.
#[test]
fn video_memory_in_use_is_watched_where_there_is_a_gpu() {
    let _slot = slot();
    let root = TempDir::new("fake-gpu-root");
    machine(&root.0, 6000);
    let dev = root.0.join("sys/class/drm/card0/device");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("product_name"), "Test GPU\n").unwrap();
    std::fs::write(dev.join("mem_info_vram_total"), format!("{}\n", 8u64 << 30)).unwrap();
    let used = |mib: u64| {
        let tmp = dev.join("used.tmp");
        std::fs::write(&tmp, format!("{}\n", mib << 20)).unwrap();
        std::fs::rename(&tmp, dev.join("mem_info_vram_used")).unwrap();
    };
    used(512);
    let g = Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n\
         [governor]\nsystem_root = \"{}\"\n\
         [[interface]]\ntype = \"tcp_server\"\nlisten = \"127.0.0.1:{}\"\n",
        root.0.display(),
        free_port()
    ));
    let level = || {
        let v = g.json(&["governor"]);
        v["status"]["vram"]["level"]
            .as_str()
            .unwrap_or("?")
            .to_string()
    };
    wait_for(T, "a reading", || (level() == "normal").then_some(()));
    used(8100);
    wait_for(Duration::from_secs(30), "VRAM pressure", || {
        (level() == "critical").then_some(())
    });
    let events = governor_events(&g);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "governor:pressure:critical"
                && e["payload"]["resource"] == "vram"),
        "{events:?}"
    );
}
