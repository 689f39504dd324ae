use super::*;
use crate::{GIB, MIB};

const MEMINFO: &str = "MemTotal:        8041576 kB
MemFree:          512000 kB
MemAvailable:    3145728 kB
Buffers:           10240 kB
Cached:          2097152 kB
SwapCached:            0 kB
SwapTotal:       2097148 kB
SwapFree:        2000000 kB
";

#[test]
fn meminfo_of_an_8_gb_laptop() {
    let m = parse_meminfo(MEMINFO).unwrap();
    assert_eq!(m.total, 8041576 * 1024);
    assert_eq!(m.available, 3 * GIB);
    assert_eq!(m.swap_total, 2097148 * 1024);
    assert_eq!(m.swap_free, 2000000 * 1024);
    let used = m.used_fraction();
    assert!((0.60..0.61).contains(&used), "{used}");
}

#[test]
fn an_old_kernel_without_memavailable_estimates_it() {
    let old = MEMINFO.replace("MemAvailable:    3145728 kB\n", "");
    let m = parse_meminfo(&old).unwrap();
    assert_eq!(m.available, (512000 + 10240 + 2097152) * 1024);
    // `SwapCached` must not be read as `Cached`, nor `MemAvailable` found in a longer name.
    assert!(parse_meminfo("MemTotalX: 5 kB\n").is_err());
}

#[test]
fn broken_meminfo_is_an_error_not_a_panic() {
    assert_eq!(
        parse_meminfo("MemFree: 1 kB\n"),
        Err(ParseError::Missing {
            file: "/proc/meminfo",
            field: "MemTotal"
        })
    );
    assert!(matches!(
        parse_meminfo("MemTotal: lots kB\n"),
        Err(ParseError::BadValue { .. })
    ));
    assert!(parse_meminfo("MemTotal: 99999999999999999999 kB\n").is_err());
    // Available above total (a lying file) is capped.
    let m = parse_meminfo("MemTotal: 1000 kB\nMemAvailable: 5000 kB\n").unwrap();
    assert_eq!(m.available, m.total);
}

#[test]
fn a_cgroup_limit_below_the_host_narrows_memory() {
    let host = MemInfo {
        total: 24 * GIB,
        available: 20 * GIB,
        ..MemInfo::default()
    };
    let boxed = host.within_cgroup(4 * GIB, 3 * GIB);
    assert_eq!((boxed.total, boxed.available), (4 * GIB, GIB));
    // cgroup v1's "unlimited" is a huge number.
    assert_eq!(host.within_cgroup(9223372036854771712, 3 * GIB), host);
    assert_eq!(parse_cgroup_bytes("max\n"), Ok(None));
    assert_eq!(parse_cgroup_bytes("4294967296\n"), Ok(Some(4 * GIB)));
    assert!(parse_cgroup_bytes("-1").is_err());
}

#[test]
fn cpuinfo_on_x86_and_arm() {
    let x86 = "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i5\nflags\t\t: fpu sse4_2 avx avx2 fma f16c\n\n\
               processor\t: 1\nmodel name\t: Intel(R) Core(TM) i5\nflags\t\t: fpu sse4_2 avx avx2 fma f16c\n";
    let c = parse_cpuinfo(x86);
    assert_eq!(c.logical, 2);
    assert_eq!(c.model, "Intel(R) Core(TM) i5");
    assert_eq!(c.features, ["sse4_2", "avx", "avx2", "fma", "f16c"]);
    let arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm asimddp\n\nprocessor\t: 1\n\nHardware\t: BCM2835\n";
    let c = parse_cpuinfo(arm);
    assert_eq!((c.logical, c.model.as_str()), (2, "BCM2835"));
    assert_eq!(c.features, ["asimd", "asimddp"]);
    assert_eq!(parse_cpuinfo(""), CpuInfo::default());
}

#[test]
fn nvidia_smi_csv() {
    let gpus =
        parse_nvidia_smi("NVIDIA GeForce RTX 3060, 12288, 512\nTesla T4, 15360, 0\n").unwrap();
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[0].name, "NVIDIA GeForce RTX 3060");
    assert_eq!(
        (gpus[0].vram_total, gpus[0].vram_used),
        (12 * GIB, 512 * MIB)
    );
    // Names with commas keep them.
    let g = parse_nvidia_smi("Odd, Name, 1024, 1\n").unwrap();
    assert_eq!(g[0].name, "Odd, Name");
    assert!(parse_nvidia_smi("garbage\n").is_err());
    assert!(parse_nvidia_smi("x, [N/A], 0\n").is_err());
    assert_eq!(parse_nvidia_smi("").unwrap(), []);
    let many = "g, 1, 0\n".repeat(100);
    assert_eq!(parse_nvidia_smi(&many).unwrap().len(), MAX_GPUS);
}

proptest::proptest! {
    #[test]
    fn parsers_never_panic(text in "\\PC{0,300}") {
        let _ = parse_meminfo(&text);
        let _ = parse_cpuinfo(&text);
        let _ = parse_nvidia_smi(&text);
        let _ = parse_cgroup_bytes(&text);
    }
}
