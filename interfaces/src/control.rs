//! The local control socket: how the `grid` CLI talks to a running node.
//!
//! A Unix stream socket in the node's state directory. Each connection carries JSON
//! lines: the client writes one request object, the node writes one response object.
//! Request lines are capped at [`MAX_LINE`] bytes (anything larger closes the
//! connection); responses, which come from the node the client trusts and may carry a
//! command's 16 MiB result, at [`MAX_RESPONSE`].

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Longest request line.
pub const MAX_LINE: usize = 1 << 20;
/// Longest response line a client reads.
pub const MAX_RESPONSE: usize = 64 << 20;

/// A request from a client, with the way to answer it.
#[derive(Debug)]
pub struct ControlRequest {
    /// The request object.
    pub body: Value,
    /// Where the node puts its response.
    pub reply: oneshot::Sender<Value>,
}

/// Why the control socket could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No node is listening at the path.
    #[error("no node is running for this state directory ({path}): {source}")]
    NotRunning {
        /// Socket path.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// Another node already owns the socket.
    #[error("a node is already running for this state directory (socket {0})")]
    AlreadyRunning(PathBuf),
    /// IO failed mid-conversation.
    #[error("control socket: {0}")]
    Io(#[from] io::Error),
    /// The node closed the connection or sent something that is not JSON.
    #[error("bad response from node: {0}")]
    BadResponse(String),
    /// The node did not answer in time.
    #[error("the node did not answer within {0:?}")]
    Timeout(Duration),
}

/// Bind the control socket, refusing if a live node already owns it and
/// removing a stale socket file left by a crashed one.
pub async fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::AlreadyRunning(path.to_path_buf()));
        }
        let _ = std::fs::remove_file(path);
    }
    Ok(UnixListener::bind(path)?)
}

/// Serve control connections, passing each request to `requests`.
pub async fn serve(listener: UnixListener, requests: mpsc::Sender<ControlRequest>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let requests = requests.clone();
        tokio::spawn(async move {
            let (rd, mut wr) = stream.into_split();
            let mut lines = BufReader::new(rd);
            let mut line = String::new();
            loop {
                line.clear();
                let n = match (&mut lines)
                    .take(MAX_LINE as u64 + 1)
                    .read_line(&mut line)
                    .await
                {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if n > MAX_LINE {
                    return;
                }
                let body = match serde_json::from_str::<Value>(&line) {
                    Ok(v) => v,
                    Err(e) => {
                        serde_json::json!({"ok": false, "error": format!("invalid JSON request: {e}")})
                    }
                };
                let response = if body.get("ok") == Some(&Value::Bool(false)) {
                    body
                } else {
                    let (tx, rx) = oneshot::channel();
                    if requests
                        .send(ControlRequest { body, reply: tx })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    match rx.await {
                        Ok(v) => v,
                        Err(_) => return,
                    }
                };
                let mut out = serde_json::to_vec(&response).unwrap_or_default();
                out.push(b'\n');
                if wr.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Send one request to the node at `path` and wait up to `timeout` for the answer.
pub async fn call(path: &Path, request: &Value, timeout: Duration) -> Result<Value, ControlError> {
    let stream = UnixStream::connect(path)
        .await
        .map_err(|source| ControlError::NotRunning {
            path: path.to_path_buf(),
            source,
        })?;
    let (rd, mut wr) = stream.into_split();
    let mut out =
        serde_json::to_vec(request).map_err(|e| ControlError::BadResponse(e.to_string()))?;
    out.push(b'\n');
    wr.write_all(&out).await?;
    let mut line = String::new();
    let mut rd = BufReader::new(rd).take(MAX_RESPONSE as u64);
    let n = tokio::time::timeout(timeout, rd.read_line(&mut line))
        .await
        .map_err(|_| ControlError::Timeout(timeout))??;
    if n == 0 {
        return Err(ControlError::BadResponse("connection closed".into()));
    }
    serde_json::from_str(&line).map_err(|e| ControlError::BadResponse(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn request_response_and_single_owner() {
        let dir = std::env::temp_dir().join(format!("grid-ctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grid.sock");
        let listener = bind(&path).await.unwrap();
        assert!(matches!(
            bind(&path).await,
            Err(ControlError::AlreadyRunning(_))
        ));
        let (tx, mut rx) = mpsc::channel(4);
        tokio::spawn(serve(listener, tx));
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                let _ = r.reply.send(serde_json::json!({"echo": r.body}));
            }
        });
        let v = call(
            &path,
            &serde_json::json!({"cmd": "x"}),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
        assert_eq!(v["echo"]["cmd"], "x");
        let _ = std::fs::remove_dir_all(&dir);
        let missing = call(&dir.join("nope.sock"), &Value::Null, Duration::from_secs(1)).await;
        assert!(matches!(missing, Err(ControlError::NotRunning { .. })));
    }
}
