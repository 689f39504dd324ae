//! The counterpart of RNS's `Examples/Filetransfer.py`: the same app name and aspects
//! (`example_utilities.filetransfer.server`) and the same flow. The server sends a
//! client the list of its files (msgpack) when the link comes up; the client asks for
//! one by name (a link packet); the server sends it as a resource, read from the file a
//! segment at a time (`send_file`), and the client has it written into `TO` a segment at
//! a time (`accept_resources_into`), so files of any size fit in little memory.
//!
//! ```sh
//! cargo run --release --example filetransfer -- --config DIR --serve FILES
//! cargo run --release --example filetransfer -- --config DIR <hash> --save TO [--file NAME]
//! ```
//! DIR holds a `config.toml`, as for `grid node`. Without `--file` the client takes the
//! first file listed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use grid::api::{NodeEvent, NodeHandle, ProofStrategy, ResourceOptions};
use grid::state::StateDir;
use rns_core::rmpv::Value;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let usage = "usage: filetransfer --config DIR (--serve FILES | <hash> --save TO [--file NAME])";
    let config = value("--config").ok_or(usage)?;
    let node = grid::api::spawn(StateDir::resolve(Some(config.as_ref()))).await?;
    if let Some(files) = value("--serve") {
        return serve(node, PathBuf::from(files)).await;
    }
    let hash = args
        .iter()
        .find(|a| a.len() == 32 && a.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or(usage)?
        .parse()?;
    let save = PathBuf::from(value("--save").ok_or(usage)?);
    fetch(node, hash, value("--file"), &save).await
}

/// The regular files in `dir`, by name.
fn list_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

async fn serve(node: NodeHandle, dir: PathBuf) -> Result<()> {
    let mut events = node.subscribe();
    let server = node
        .register_destination(
            "example_utilities",
            &["filetransfer", "server"],
            ProofStrategy::None,
        )
        .await?;
    println!("{server}");
    node.announce_destination(server, &[]).await?;
    eprintln!("File server {server} running, serving {}", dir.display());
    let mut clients = std::collections::HashSet::new();
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        match event {
            NodeEvent::LinkEstablished {
                link,
                destination,
                initiator: false,
                ..
            } if destination == server => {
                clients.insert(link);
                let list = Value::Array(list_files(&dir).into_iter().map(Value::from).collect());
                let mut bytes = Vec::new();
                rns_core::rmpv::encode::write_value(&mut bytes, &list)?;
                node.send_nowait(link, &bytes).await?;
                println!("Client connected, sent the file list");
            }
            NodeEvent::Packet { link, data } if clients.contains(&link) => {
                let name = String::from_utf8_lossy(&data).to_string();
                if !list_files(&dir).contains(&name) {
                    println!("Client asked for an unknown file {name:?}");
                    continue;
                }
                let path = dir.join(&name);
                println!("Sending {name} ({} bytes)", std::fs::metadata(&path)?.len());
                let options = ResourceOptions {
                    metadata: None,
                    compress: true,
                    timeout: Duration::from_secs(3600),
                };
                let transfer = node.send_file(link, path, options).await?;
                tokio::spawn(async move {
                    match transfer.finished().await {
                        Ok(()) => println!("Sent {name}"),
                        Err(e) => println!("Sending {name} failed: {e}"),
                    }
                });
            }
            NodeEvent::LinkClosed { link, .. } => {
                clients.remove(&link);
            }
            _ => {}
        }
    }
}

async fn fetch(
    node: NodeHandle,
    server: rns_core::AddressHash,
    file: Option<String>,
    save: &Path,
) -> Result<()> {
    std::fs::create_dir_all(save)?;
    node.accept_resources_into(save, u64::MAX).await?;
    let mut events = node.subscribe();
    let up = node.open_link(server, Duration::from_secs(30)).await?;
    let link = up.link;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut wanted: Option<String> = None;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| "no answer from the server in time")?;
        let event = match event {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        match event {
            NodeEvent::Packet { link: l, data } if l == link && wanted.is_none() => {
                let list = rns_core::rmpv::decode::read_value(&mut &data[..])?;
                let names: Vec<String> = list
                    .as_array()
                    .ok_or("the file list is not a list")?
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect();
                println!("Files on the server: {}", names.join(", "));
                let name = match &file {
                    Some(f) if names.contains(f) => f.clone(),
                    Some(f) => return Err(format!("the server has no file {f:?}").into()),
                    None => names.first().cloned().ok_or("the server has no files")?,
                };
                node.send_nowait(link, name.as_bytes()).await?;
                wanted = Some(name);
            }
            NodeEvent::ResourceSaved {
                link: l,
                path,
                bytes,
                ..
            } if l == link => {
                let name = wanted.clone().ok_or("a resource came before we asked")?;
                // Only the file's own name, never a path from the server.
                let name = Path::new(&name)
                    .file_name()
                    .ok_or("a file name without a name")?
                    .to_owned();
                std::fs::rename(&path, save.join(&name))?;
                println!("Saved {} ({bytes} bytes)", name.to_string_lossy());
                node.close_link(link).await?;
                return Ok(());
            }
            NodeEvent::LinkClosed { link: l, reason } if l == link => {
                return Err(format!("the link closed: {reason}").into());
            }
            _ => {}
        }
    }
}
