//! The sans-IO cores stay free of IO: `rns-core` and the grid layer's `proto` module may
//! not use tokio, files, sockets, threads or the clock. Time and randomness are handed in.

use std::path::{Path, PathBuf};

use grid_test_support::TempDir;

/// Words that mean IO, threads or a clock read.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "std::fs",
    "std::net",
    "std::thread",
    "std::process",
    "SystemTime",
    "Instant::now",
    "OsRng",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Modules of the grid crate that do IO or drive it: `proto` may not name them (nothing
/// imports upward).
const UPWARD: &[&str] = &[
    "crate::node",
    "crate::api",
    "crate::bundle",
    "crate::state",
    "crate::config",
    "crate::known_nodes",
    "crate::clock",
    "crate::audit::AuditLog",
    "crate::trust::TrustStore",
    "grid_interfaces",
];

fn check(dir: &Path) -> Vec<String> {
    check_words(dir, FORBIDDEN)
}

fn check_words(dir: &Path, forbidden: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    assert!(!files.is_empty(), "no sources under {}", dir.display());
    let mut found = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    found.push(format!(
                        "{}:{}: {word}: {}",
                        f.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn sans_io_cores_do_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = check(&root.join("src/proto"));
    found.extend(check(&root.join("../rns-core/src")));
    assert!(
        found.is_empty(),
        "IO in a sans-IO core:\n{}",
        found.join("\n")
    );
}

#[test]
fn proto_imports_nothing_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = check_words(&root.join("src/proto"), UPWARD);
    assert!(
        found.is_empty(),
        "grid::proto uses the driver layer:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_finds_io_when_there_is_some() {
    let dir = TempDir::new("layering");
    let dir = dir.path();
    std::fs::write(
        dir.join("bad.rs"),
        "fn f() { let _ = std::fs::read(\"x\"); }\n",
    )
    .unwrap();
    let found = check(dir);
    assert_eq!(found.len(), 1, "{found:?}");
}
