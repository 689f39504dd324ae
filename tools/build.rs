//! Link-time layout of the `grid` binary (release builds on x86-64 Linux, where Rust
//! links with its own lld): the functions an idle node runs are placed together, in
//! the order of `link/grid-symbol-order.txt`, so a running node maps far fewer pages of
//! code: idle RSS 17.1 MB without it, 9.7 MB with it (docs/benchmarks.md). The release
//! profile's `codegen-units = 1` keeps the names the same in every checkout (no ThinLTO
//! `.llvm.<hash>` copies, whose hash depends on the checkout's path). The list comes from
//! `tools/bench/symbol_order.sh` (callgrind on an idle node), one section for each way of
//! building `grid` (from the workspace root or as the `grid-tools` package alone: other
//! features, other symbol names); symbols missing from it (the other build's, other
//! compilers, changed code) are simply laid out as usual.
//!
//! Only lld (and mold) take `--symbol-ordering-file`; GNU ld would fail the link. So the
//! list is used only where lld is Rust's default linker (rustc 1.90 and later, with its
//! bundled lld) and no other linker was asked for; `GRID_NO_SYMBOL_ORDER=1` links without it (for a linker
//! chosen in `.cargo/config.toml`, which a build script cannot see).

use std::process::Command;

/// The first rustc whose x86-64 Linux target links with its bundled lld by default.
const LLD_DEFAULT_SINCE_MINOR: u32 = 90;

fn main() {
    println!("cargo:rerun-if-changed=link/grid-symbol-order.txt");
    println!("cargo:rerun-if-env-changed=GRID_NO_SYMBOL_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let linux_x86 = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if !linux_x86
        || !release
        || std::env::var_os("GRID_NO_SYMBOL_ORDER").is_some()
        || !default_lld()
    {
        return;
    }
    let order = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("link/grid-symbol-order.txt");
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=grid=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=grid=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether the link will use rustc's bundled lld: a new enough rustc, and neither a
/// linker nor linker flavour set through the environment or RUSTFLAGS.
fn default_lld() -> bool {
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let other_linker = std::env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
        || flags
            .split('\x1f')
            .any(|f| f.contains("linker") || f.contains("fuse-ld") || f.contains("link-self"));
    !other_linker && rustc_minor().is_some_and(|m| m >= LLD_DEFAULT_SINCE_MINOR) && bundled_lld()
}

/// Whether the toolchain ships the lld it links with by default (a distribution's rustc
/// built against its own LLVM may not, and then links with the system's `ld`).
fn bundled_lld() -> bool {
    let Some(rustc) = std::env::var_os("RUSTC") else {
        return false;
    };
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    std::path::Path::new(&sysroot)
        .join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld")
        .is_file()
}

/// The minor version of the rustc building this crate (`rustc -vV`: `release: 1.95.0`).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var_os("RUSTC")?;
    let out = Command::new(rustc).arg("-vV").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let release = text.lines().find_map(|l| l.strip_prefix("release: "))?;
    let mut parts = release.trim().split('.');
    (parts.next()? == "1").then_some(())?;
    parts.next()?.parse().ok()
}
