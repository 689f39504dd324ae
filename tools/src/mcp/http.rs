//! `grid mcp --http ADDR`: the same tools over MCP's streamable HTTP transport at
//! `http://ADDR/mcp`, for clients that connect rather than spawn. Loopback addresses
//! only: the tools act as the node's owner, so the server is as local as its control
//! socket. rmcp checks the `Host` header against loopback names (DNS rebinding).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::GridMcp;

/// Most HTTP connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 64;

/// Serve MCP on `addr` (a loopback address) until the process is stopped.
pub(crate) fn serve_http(state: &grid::state::StateDir, addr: &str) -> Result<()> {
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("--http {addr}: an address like 127.0.0.1:8931"))?;
    if !addr.ip().is_loopback() {
        bail!(
            "--http {addr}: only loopback addresses (127.0.0.1, ::1): the tools act as this \
             node's owner"
        );
    }
    let server = GridMcp::new(state);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let service = Arc::new(StreamableHttpService::new(
                move || Ok(server.clone()),
                Arc::new(LocalSessionManager::default()),
                StreamableHttpServerConfig::default(),
            ));
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))?;
            eprintln!("grid mcp: serving http://{}/mcp", listener.local_addr()?);
            let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
            loop {
                let permit = slots.clone().acquire_owned().await?;
                let (stream, _) = listener.accept().await?;
                let service = service.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let handler = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let service = service.clone();
                        async move { Ok::<_, std::convert::Infallible>(service.handle(req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), handler);
                    if let Err(e) = conn.await {
                        tracing::debug!("mcp http connection: {e}");
                    }
                });
            }
        })
}
