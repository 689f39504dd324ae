//! Linux pressure stall information (`/proc/pressure/memory`, `/proc/pressure/cpu`).
//!
//! Each file has a `some` line (the share of time at least one task stalled on the
//! resource) and, for memory and on newer kernels for CPU, a `full` line (the share of time
//! every task stalled), each as averages over 10, 60 and 300 s plus a total in µs. The
//! kernel documents it in `Documentation/accounting/psi.rst`.

use crate::profile::ParseError;
use serde::Serialize;

/// One line of a PSI file: stall percentages, 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PsiLine {
    /// Over the last 10 s.
    pub avg10: f32,
    /// Over the last 60 s.
    pub avg60: f32,
    /// Over the last 300 s.
    pub avg300: f32,
}

/// A whole PSI file.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Psi {
    /// Some tasks stalled.
    pub some: PsiLine,
    /// All tasks stalled (absent for CPU on older kernels).
    pub full: Option<PsiLine>,
}

/// Parse a PSI file's text. `file` names it in errors.
pub fn parse_psi(file: &'static str, text: &str) -> Result<Psi, ParseError> {
    let mut some = None;
    let mut full = None;
    for line in text.lines().take(8) {
        let mut words = line.split_whitespace();
        let slot = match words.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        let mut parsed = PsiLine::default();
        let mut seen = 0;
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let target = match key {
                "avg10" => &mut parsed.avg10,
                "avg60" => &mut parsed.avg60,
                "avg300" => &mut parsed.avg300,
                _ => continue,
            };
            *target = value
                .parse::<f32>()
                .ok()
                .filter(|v| v.is_finite() && (0.0..=100.0).contains(v))
                .ok_or_else(|| ParseError::BadValue {
                    file,
                    field: "avg",
                    value: value.chars().take(40).collect(),
                })?;
            seen += 1;
        }
        if seen != 3 {
            return Err(ParseError::Missing {
                file,
                field: "avg10, avg60 and avg300",
            });
        }
        *slot = Some(parsed);
    }
    Ok(Psi {
        some: some.ok_or(ParseError::Missing {
            file,
            field: "some",
        })?,
        full,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_file_with_both_lines() {
        let p = parse_psi(
            "memory",
            "some avg10=6.93 avg60=5.84 avg300=2.59 total=17075940\n\
             full avg10=1.50 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        assert_eq!(p.some.avg10, 6.93);
        assert_eq!(p.some.avg300, 2.59);
        assert_eq!(p.full.unwrap().avg10, 1.5);
    }

    #[test]
    fn a_cpu_file_of_an_older_kernel_has_no_full_line() {
        let p = parse_psi("cpu", "some avg10=0.00 avg60=0.10 avg300=0.00 total=12\n").unwrap();
        assert_eq!(p.full, None);
        assert_eq!(p.some.avg60, 0.1);
    }

    #[test]
    fn values_out_of_range_and_missing_lines_are_errors() {
        for bad in [
            "",
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0",
            "some avg10=101 avg60=0 avg300=0 total=0",
            "some avg10=-1 avg60=0 avg300=0 total=0",
            "some avg10=NaN avg60=0 avg300=0 total=0",
            "some avg10=1 avg60=0 total=0",
        ] {
            assert!(parse_psi("memory", bad).is_err(), "{bad:?} was accepted");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse_psi("memory", &text);
        }
    }
}
