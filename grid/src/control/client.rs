//! The client end of the control socket: one request line out, one response line back.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{ControlError, Request, MAX_RESPONSE};

/// Send `request` to the node at `path` and wait up to `timeout` for the answer: the
/// answer's JSON when the node did it, [`ControlError::Refused`] with the typed error
/// when it refused.
pub async fn ask(path: &Path, request: &Request, timeout: Duration) -> Result<Value, ControlError> {
    let v = call(path, request, timeout).await?;
    match crate::Error::from_json(&v) {
        Some(e) => Err(ControlError::Refused(e)),
        None => Ok(v),
    }
}

/// Send one request line (any JSON: tests send malformed ones) to the node at `path` and
/// wait up to `timeout` for the answer, refusals included.
pub async fn call(
    path: &Path,
    request: &impl serde::Serialize,
    timeout: Duration,
) -> Result<Value, ControlError> {
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
