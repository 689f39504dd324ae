//! `grid cp`: send a file over a link, with a progress bar.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use grid::control::response as r;
use grid::control::Request;
use grid::state::StateDir;

use super::{ask, parse_hash, timeout_ms};

/// `grid cp`
pub(crate) fn cp(
    state: &StateDir,
    file: &std::path::Path,
    hash: &str,
    timeout: f64,
    quiet: bool,
    json_out: bool,
) -> Result<()> {
    let d = parse_hash(hash)?;
    let limit = Duration::from_millis(timeout_ms(timeout)?);
    let path = std::fs::canonicalize(file).with_context(|| format!("{}", file.display()))?;
    let v = ask(
        state,
        &Request::Cp {
            path: path.clone(),
            destination: d,
        },
        Duration::from_secs(10),
    )?;
    let id = r::parse::<r::CpStarted>(v)?.id;
    let bar = (!quiet).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        b.set_message(format!(
            "{} → {}",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            d
        ));
        b
    });
    let started = std::time::Instant::now();
    let last = loop {
        std::thread::sleep(Duration::from_millis(100));
        let v = ask(
            state,
            &Request::CpStatus { id: id.clone() },
            Duration::from_secs(5),
        )?;
        let s: r::CpStatus = r::parse(v)?;
        if let Some(b) = &bar {
            b.set_length(s.total);
            b.set_position(s.done);
        }
        match s.state {
            r::CpState::Complete | r::CpState::Failed => break s,
            r::CpState::Connecting if started.elapsed() > limit => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                bail!("could not reach {d} within {timeout} s");
            }
            _ => {}
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    if last.state == r::CpState::Failed {
        bail!("{}", last.error.as_deref().unwrap_or("the transfer failed"));
    }
    if json_out {
        println!("{}", r::ok(&last));
    } else {
        let (bytes, secs) = (last.bytes, last.seconds);
        println!(
            "Sent {} ({} bytes) to {} in {:.2} s, {:.2} MB/s",
            path.display(),
            bytes,
            d,
            secs,
            if secs > 0.0 {
                bytes as f64 / secs / 1e6
            } else {
                0.0
            }
        );
    }
    Ok(())
}
