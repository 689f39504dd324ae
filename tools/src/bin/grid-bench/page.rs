//! `--write`: put the generated parts of the report into a page that people also edit by
//! hand. Each part sits between a pair of marker comments,
//! `<!-- grid-bench:begin NAME -->` and `<!-- grid-bench:end NAME -->`; writing replaces
//! what is between them and keeps every other line of the page as it was.

use std::path::Path;

use anyhow::{Context, Result};

/// One generated part of the page: its marker name and its Markdown.
pub(crate) struct Block<'a> {
    pub(crate) name: &'a str,
    pub(crate) text: &'a str,
}

/// Why a page could not take the generated parts.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum MergeError {
    /// The page has no (or more than one) line with this begin or end marker.
    Marker {
        /// The marker line missing or repeated.
        marker: String,
    },
    /// A part's end marker comes before its begin marker.
    Order {
        /// The begin marker.
        begin: String,
        /// The end marker.
        end: String,
    },
}

impl std::fmt::Display for MergeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MergeError::Marker { marker } => {
                write!(f, "the page needs exactly one `{marker}` line")
            }
            MergeError::Order { begin, end } => write!(f, "`{end}` comes before `{begin}`"),
        }
    }
}

impl std::error::Error for MergeError {}

fn begin(name: &str) -> String {
    format!("<!-- grid-bench:begin {name} -->")
}

fn end(name: &str) -> String {
    format!("<!-- grid-bench:end {name} -->")
}

/// The one line of `page` that is `marker` (surrounding blanks ignored): its byte range.
fn find_line(page: &str, marker: &str) -> Result<std::ops::Range<usize>, MergeError> {
    let mut at = 0;
    let mut found = Vec::new();
    for line in page.split_inclusive('\n') {
        if line.trim() == marker {
            found.push(at..at + line.len());
        }
        at += line.len();
    }
    match <[_; 1]>::try_from(found) {
        Ok([r]) => Ok(r),
        Err(_) => Err(MergeError::Marker {
            marker: marker.to_string(),
        }),
    }
}

/// `page` with the text between each block's markers replaced by the block's text (ending
/// in one newline); everything outside the markers, the markers included, is kept.
pub(crate) fn merge(page: &str, blocks: &[Block<'_>]) -> Result<String, MergeError> {
    let mut out = page.to_string();
    for b in blocks {
        let (open, close) = (begin(b.name), end(b.name));
        let first = find_line(&out, &open)?;
        let last = find_line(&out, &close)?;
        if last.start < first.end {
            return Err(MergeError::Order {
                begin: open,
                end: close,
            });
        }
        let mut text = b.text.trim_end_matches('\n').to_string();
        text.push('\n');
        // A page whose begin marker is its last line, without a newline.
        if !out[..first.end].ends_with('\n') {
            text.insert(0, '\n');
        }
        out.replace_range(first.end..last.start, &text);
    }
    Ok(out)
}

/// A new page holding only the blocks, each between its markers.
fn fresh(blocks: &[Block<'_>]) -> String {
    let mut out = String::new();
    for b in blocks {
        out.push_str(&format!(
            "{}\n{}\n{}\n\n",
            begin(b.name),
            b.text.trim_end_matches('\n'),
            end(b.name)
        ));
    }
    out
}

/// Write `blocks` into the page at `path`: between their markers if it exists (refusing
/// a page without them, so hand-kept text is never lost), as a new page if not.
pub(crate) fn write(path: &Path, blocks: &[Block<'_>]) -> Result<()> {
    let page = match std::fs::read_to_string(path) {
        Ok(page) => merge(&page, blocks).with_context(|| {
            format!(
                "{}: not writing the results (add the grid-bench marker lines around the generated parts)",
                path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fresh(blocks),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "\
# Benchmarks

How it is measured (by hand).

<!-- grid-bench:begin results -->
| old | table |
<!-- grid-bench:end results -->

### A hand-kept run

Notes nobody may lose.

<!-- grid-bench:begin genome -->
old genome
<!-- grid-bench:end genome -->

### After
";

    #[test]
    fn only_the_marked_blocks_change() {
        let blocks = [
            Block {
                name: "results",
                text: "| new | table |\n| row | 2 |\n\n",
            },
            Block {
                name: "genome",
                text: "new genome",
            },
        ];
        let merged = merge(PAGE, &blocks).unwrap();
        let want = PAGE
            .replace("| old | table |\n", "| new | table |\n| row | 2 |\n")
            .replace("old genome\n", "new genome\n");
        assert_eq!(merged, want);
        // Writing the same report again changes nothing.
        assert_eq!(merge(&merged, &blocks).unwrap(), merged);
    }

    #[test]
    fn an_empty_block_and_a_page_ending_on_its_marker() {
        let page = "intro\n<!-- grid-bench:begin results -->\n<!-- grid-bench:end results -->";
        let blocks = [Block {
            name: "results",
            text: "table",
        }];
        assert_eq!(
            merge(page, &blocks).unwrap(),
            "intro\n<!-- grid-bench:begin results -->\ntable\n<!-- grid-bench:end results -->"
        );
    }

    #[test]
    fn a_page_without_sound_markers_is_refused() {
        let blocks = [Block {
            name: "results",
            text: "x",
        }];
        assert_eq!(
            merge("# Benchmarks\n\nhand-kept\n", &blocks).unwrap_err(),
            MergeError::Marker {
                marker: "<!-- grid-bench:begin results -->".into()
            }
        );
        let twice = "<!-- grid-bench:begin results -->\n<!-- grid-bench:begin results -->\n<!-- grid-bench:end results -->\n";
        assert!(matches!(
            merge(twice, &blocks),
            Err(MergeError::Marker { .. })
        ));
        let reversed = "<!-- grid-bench:end results -->\nkept\n<!-- grid-bench:begin results -->\n";
        assert!(matches!(
            merge(reversed, &blocks),
            Err(MergeError::Order { .. })
        ));
    }

    #[test]
    fn the_benchmarks_page_has_its_markers_and_keeps_its_hand_kept_sections() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
        let page = std::fs::read_to_string(&path).unwrap();
        let blocks = [
            Block {
                name: "results",
                text: "RESULTS",
            },
            Block {
                name: "genome",
                text: "GENOME",
            },
        ];
        let merged = merge(&page, &blocks).unwrap();
        for kept in [
            "## Results\n",
            "### Paced forwarding and link set-up",
            "### Resources from an RNS sender",
            "### Discovery in the simulator",
        ] {
            assert!(merged.contains(kept), "{kept} kept");
        }
        assert!(
            !merged.contains("| Idle node RSS |"),
            "the old table replaced"
        );
        let at = |s: &str| merged.find(s).unwrap();
        assert!(
            at("RESULTS") < at("### Paced forwarding") && at("GENOME") > at("### Paced forwarding")
        );
    }

    #[test]
    fn a_missing_page_is_written_fresh_and_a_hand_kept_one_is_kept() {
        let dir = grid_test_support::TempDir::new("bench-page");
        let path = dir.0.join("benchmarks.md");
        let blocks = [Block {
            name: "results",
            text: "table v1",
        }];
        write(&path, &blocks).unwrap();
        let first = std::fs::read_to_string(&path).unwrap();
        assert!(first.contains("table v1"), "{first}");
        std::fs::write(&path, format!("# Kept\n\n{first}more kept\n")).unwrap();
        let blocks = [Block {
            name: "results",
            text: "table v2",
        }];
        write(&path, &blocks).unwrap();
        let second = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            second,
            "# Kept\n\n<!-- grid-bench:begin results -->\ntable v2\n<!-- grid-bench:end results -->\n\nmore kept\n"
        );
        // A page without markers is left alone.
        std::fs::write(&path, "hand-kept only\n").unwrap();
        assert!(write(&path, &blocks).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hand-kept only\n");
    }
}
