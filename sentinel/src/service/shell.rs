//! `shell` steps on a node: a program run directly (no shell in between: `cmd` and
//! `args` are its argv), with stdin empty, stdout and stderr kept up to [`MAX_OUTPUT`]
//! each, killed at its timeout or when the run is cancelled.

use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::engine::MeshError;

/// Bytes of stdout (and of stderr) a step keeps; the rest is read and dropped.
pub const MAX_OUTPUT: usize = 1 << 20;

/// Read all of `r`, keeping the first [`MAX_OUTPUT`] bytes.
async fn capped(mut r: impl AsyncRead + Unpin) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut cut = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, cut),
            Ok(n) => {
                let room = MAX_OUTPUT - kept.len();
                kept.extend_from_slice(&buf[..n.min(room)]);
                cut |= n > room;
            }
        }
    }
}

/// Run `cmd args…` in `dir`; `{"code", "stdout", "stderr", "truncated"}` when it exits 0.
pub(crate) async fn run(
    cmd: &str,
    args: &[String],
    dir: Option<&str>,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<Value, MeshError> {
    let mut command = tokio::process::Command::new(cmd);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(d) = dir {
        command.current_dir(d);
    }
    let mut child = command
        .spawn()
        .map_err(|e| MeshError::Failed(format!("cannot run {cmd}: {e}")))?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(MeshError::Failed(format!("{cmd} has no output pipes")));
    };
    let work = async {
        let ((stdout, cut_out), (stderr, cut_err)) = tokio::join!(capped(out), capped(err));
        let status = child.wait().await;
        (status, stdout, stderr, cut_out || cut_err)
    };
    let cancelled = async {
        while !cancel.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (status, stdout, stderr, truncated) = tokio::select! {
        done = work => done,
        () = tokio::time::sleep(timeout) => {
            return Err(MeshError::Failed(format!(
                "{cmd} did not end within {} (killed)",
                humantime::format_duration(timeout)
            )))
        }
        () = cancelled => return Err(MeshError::Failed(format!("{cmd}: cancelled (killed)"))),
    };
    let status = status.map_err(|e| MeshError::Failed(format!("{cmd}: {e}")))?;
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    let (stdout, stderr) = (text(stdout), text(stderr));
    match status.code() {
        Some(0) => {
            Ok(json!({"code": 0, "stdout": stdout, "stderr": stderr, "truncated": truncated}))
        }
        code => {
            let tail: String = stderr
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(MeshError::Failed(format!(
                "{cmd} exited with {}: {}",
                code.map_or("a signal".to_string(), |c| format!("code {c}")),
                tail.trim()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_program_s_output_and_failures() {
        let no = AtomicBool::new(false);
        let t = Duration::from_secs(10);
        let v = run("echo", &["hello".into()], None, t, &no).await.unwrap();
        assert_eq!(
            (v["code"].as_i64(), v["stdout"].as_str()),
            (Some(0), Some("hello\n"))
        );
        let e = run(
            "sh",
            &["-c".into(), "echo oops >&2; exit 3".into()],
            None,
            t,
            &no,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("code 3: oops"), "{e}");
        let e = run("/nonexistent/program", &[], None, t, &no)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("cannot run"), "{e}");
        let e = run(
            "sleep",
            &["5".into()],
            None,
            Duration::from_millis(200),
            &no,
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("did not end within"), "{e}");
        let v = run("pwd", &[], Some("/tmp"), t, &no).await.unwrap();
        assert_eq!(v["stdout"], "/tmp\n");
    }

    #[tokio::test]
    async fn output_is_capped() {
        let no = AtomicBool::new(false);
        let script = format!("head -c {} /dev/zero", MAX_OUTPUT * 3);
        let v = run(
            "sh",
            &["-c".into(), script],
            None,
            Duration::from_secs(20),
            &no,
        )
        .await
        .unwrap();
        assert_eq!(v["stdout"].as_str().unwrap().len(), MAX_OUTPUT);
        assert_eq!(v["truncated"], true);
    }
}
