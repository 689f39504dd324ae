//! The RNS shared-instance RPC, so that Python's `rnstatus`, `rnpath` and `rnprobe`
//! attached to a Grid node's shared instance work: the abstract socket
//! `\0rns/<instance>/rpc`, Python's `multiprocessing.connection` handshake ([`auth`]),
//! then one msgpack call and its msgpack answer per connection, as RNS 1.5.7 does.
//!
//! RNS derives the key from the transport identity in the client's own storage, which a
//! Python program does not share with a Grid node; so the node keeps a key in
//! `<state>/rns/config` (an RNS config for the utilities: `rnstatus --config
//! <state>/rns`). The answers come from the node's control socket, like the CLI's.

pub(crate) mod auth;
mod calls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use grid::control::{self, Request};
use rand_core::{OsRng, RngCore};
use tokio::sync::Semaphore;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 16;
/// The longest call accepted, bytes (RNS's calls are a few dozen).
const MAX_CALL: usize = 64 << 10;
/// How long one connection may take, handshake to answer.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The RNS config directory written for the Python utilities.
pub(crate) fn config_dir(state_root: &Path) -> PathBuf {
    state_root.join("rns")
}

/// The RPC key in `<state>/rns/config`, written (with the instance name) if missing.
fn key_for(state_root: &Path, instance: &str) -> Result<Vec<u8>> {
    let dir = config_dir(state_root);
    let path = dir.join("config");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let key = text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "rpc_key")
                .then(|| hex::decode(v.trim()).ok())
                .flatten()
        });
        if let Some(k) = key.filter(|k| !k.is_empty()) {
            return Ok(k);
        }
    }
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = format!(
        "# Written by grid node: an RNS config for Python's rnstatus, rnpath and rnprobe,\n\
         # so they attach to this node's shared instance: rnstatus --config {}\n\
         [reticulum]\n  share_instance = Yes\n  instance_name = {instance}\n  rpc_key = {}\n\n\
         [logging]\n  loglevel = 2\n",
        dir.display(),
        hex::encode(key)
    );
    write_private(&path, &text)?;
    Ok(key.to_vec())
}

/// Write `text` readable by this user only (it holds a key).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// Serve the RPC while the node serves a shared instance; log why not otherwise.
pub(crate) async fn serve(socket: PathBuf, state_root: PathBuf) {
    let status = match control::ask(&socket, &Request::Status, Duration::from_secs(10)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("no RNS RPC for rnstatus and rnpath: {e}");
            return;
        }
    };
    let Some(instance) = status["shared_instance"].as_str().map(str::to_string) else {
        return;
    };
    if let Err(e) = run(socket, &state_root, &instance).await {
        tracing::warn!("no RNS RPC for rnstatus and rnpath: {e:#}");
    }
}

async fn run(socket: PathBuf, state_root: &Path, instance: &str) -> Result<()> {
    let key: Arc<[u8]> = key_for(state_root, instance)?.into();
    let listener = bind(instance)?;
    tracing::info!(
        instance,
        "RNS RPC for rnstatus, rnpath and rnprobe: use --config {}",
        config_dir(state_root).display()
    );
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let socket: Arc<Path> = socket.into();
    loop {
        let permit = slots.clone().acquire_owned().await?;
        let (mut stream, _) = listener.accept().await?;
        let (key, socket) = (key.clone(), socket.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let served = tokio::time::timeout(CONNECTION_TIMEOUT, async {
                let mut random = [0u8; 20];
                OsRng.fill_bytes(&mut random);
                auth::server(&mut stream, &key, random).await?;
                let call = auth::recv(&mut stream, MAX_CALL).await?;
                let answer = calls::answer(&socket, &call).await?;
                auth::send(&mut stream, &answer).await
            })
            .await;
            match served {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!("RNS RPC call refused: {e:#}"),
                Err(_) => tracing::debug!("RNS RPC call timed out"),
            }
        });
    }
}

/// Bind `\0rns/<instance>/rpc`.
fn bind(instance: &str) -> Result<tokio::net::UnixListener> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("{}/rpc", grid_interfaces::local::socket_name(instance));
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name)?;
    let l = std::os::unix::net::UnixListener::bind_addr(&addr)
        .with_context(|| format!("binding the abstract socket {name}"))?;
    l.set_nonblocking(true)?;
    Ok(tokio::net::UnixListener::from_std(l)?)
}
