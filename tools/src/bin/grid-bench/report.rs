//! The report: one row per measurement, written as Markdown.

use std::process::Command;

use crate::genome;
use crate::harness::workspace;

pub(crate) struct Row {
    pub(crate) what: String,
    pub(crate) grid: String,
    pub(crate) python: String,
    pub(crate) ratio: f64,
    pub(crate) goal: &'static str,
    pub(crate) met: bool,
    note: &'static str,
}

impl Row {
    pub(crate) fn new(
        what: &str,
        grid: String,
        python: String,
        ratio: f64,
        goal: &'static str,
        met: bool,
        note: &'static str,
    ) -> Row {
        Row {
            what: what.to_string(),
            grid,
            python,
            ratio,
            goal,
            met,
            note,
        }
    }
}

pub(crate) fn render(
    rows: &[Row],
    genome_rows: &[genome::GenomeRow],
    rns_version: &str,
    quick: bool,
) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse::<u64>()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0);
    let date = String::from_utf8(
        Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let mut s = String::new();
    s.push_str(&format!(
        "- Command: `cargo build --release --bins && target/release/grid-bench{} --write docs/benchmarks.md`\n",
        if quick { " --quick" } else { "" }
    ));
    s.push_str(&format!("- Date: {}\n", date.trim()));
    s.push_str(&format!(
        "- Machine: {cpu}, {cores} cores, {:.0} GiB RAM, {}\n",
        mem as f64 / 1048576.0,
        std::env::consts::ARCH
    ));
    s.push_str(&format!(
        "- Reference: Python RNS {rns_version}, measured in the same run on the same inputs\n\n"
    ));
    s.push_str(
        "| measurement | Grid | Python RNS | ratio | goal | met |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1}× ({}) | {} | {} |\n",
            r.what,
            r.grid,
            r.python,
            r.ratio,
            r.note,
            r.goal,
            if r.met { "yes" } else { "**no**" }
        ));
    }
    s.push_str(
        "\n### Genome (skill search; Python RNS has no counterpart)\n\n| measurement | Grid | goal | met |\n|---|---|---|---|\n",
    );
    for r in genome_rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.what,
            r.grid,
            r.goal,
            if r.met { "yes" } else { "**no**" }
        ));
    }
    let header =
        std::fs::read_to_string(workspace().join("docs/benchmarks.head.md")).unwrap_or_default();
    format!("{header}{s}")
}
