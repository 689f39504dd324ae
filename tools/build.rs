//! Link-time layout of the `grid` binary (release builds on x86-64 Linux, where Rust
//! links with its own lld): the functions an idle node runs are placed together, in
//! the order of `link/grid-symbol-order.txt`, so a running node maps far fewer pages of
//! code: idle RSS 17.1 MB without it, 9.3 MB with it (docs/benchmarks.md). The list comes from
//! `tools/bench/symbol_order.sh` (callgrind on an idle node); symbols missing from it
//! (other compilers, changed code) are simply laid out as usual. Set
//! `GRID_NO_SYMBOL_ORDER=1` to link without it (a linker other than lld rejects it).

fn main() {
    println!("cargo:rerun-if-changed=link/grid-symbol-order.txt");
    println!("cargo:rerun-if-env-changed=GRID_NO_SYMBOL_ORDER");
    let linux_x86 = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86_64");
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if !linux_x86 || !release || std::env::var_os("GRID_NO_SYMBOL_ORDER").is_some() {
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
