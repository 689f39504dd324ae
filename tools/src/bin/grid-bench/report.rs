//! The report: one row per measurement, written as Markdown.

use std::process::Command;

use crate::genome;

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

/// The generated parts of `docs/benchmarks.md`: the main results (how they were run,
/// then the table against Python RNS) and the genome table. The rest of the page is kept
/// by hand (see [`crate::page`]).
pub(crate) struct Report {
    pub(crate) results: String,
    pub(crate) genome: String,
}

impl Report {
    /// The parts as the page's blocks, by marker name.
    pub(crate) fn blocks(&self) -> [crate::page::Block<'_>; 2] {
        [
            crate::page::Block {
                name: "results",
                text: &self.results,
            },
            crate::page::Block {
                name: "genome",
                text: &self.genome,
            },
        ]
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n{}", self.results, self.genome)
    }
}

pub(crate) fn render(
    rows: &[Row],
    genome_rows: &[genome::GenomeRow],
    rns_version: &str,
    quick: bool,
) -> Report {
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
    Report {
        results: s,
        genome: genome_table(genome_rows),
    }
}

/// The genome table (its own block on the page).
pub(crate) fn genome_table(genome_rows: &[genome::GenomeRow]) -> String {
    let mut g = String::from(
        "### Genome (skill search; Python RNS has no counterpart)\n\n| measurement | Grid | goal | met |\n|---|---|---|---|\n",
    );
    for r in genome_rows {
        g.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.what,
            r.grid,
            r.goal,
            if r.met { "yes" } else { "**no**" }
        ));
    }
    g
}
