//! The client end of the control socket: one request line out, one response line back.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::{ControlError, MAX_RESPONSE};

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
