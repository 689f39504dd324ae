//! The local status page `grid node` serves (`[web]`, default http://127.0.0.1:4280):
//! interfaces, peers, paths, radio airtime over the last hour, bundles, adapters,
//! pipelines, and a skill search box, updated live over server-sent events. The page
//! and its script are embedded in the binary (no CDN); the data comes from the node's
//! control socket, as the CLI's does. Loopback only, `Host` checked (DNS rebinding).

pub(crate) mod history;

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use grid::config::WebConfig;
use grid::control::{self, Request};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use history::Airtime;

/// The page: HTML, style and script in one embedded file.
const PAGE: &str = include_str!("page.html");
/// Connections served at once.
const MAX_CONNECTIONS: usize = 32;
/// Live streams open at once (each holds a connection).
const MAX_STREAMS: usize = 8;
/// How often a live stream sends the node's state.
const STREAM_EVERY: Duration = Duration::from_secs(1);
/// The longest search query taken from the box.
const MAX_QUERY: usize = 500;

type Body = BoxBody<Bytes, Infallible>;

/// What the page's handlers share.
struct Page {
    socket: PathBuf,
    started: Instant,
    airtime: Mutex<Airtime>,
    streams: Arc<Semaphore>,
    /// The last snapshot and when it was taken: streams share one per second.
    last: tokio::sync::Mutex<Option<(Instant, Value)>>,
}

/// Serve the page until the node stops; a port in use or a failed bind is logged, and
/// the node goes on without it.
pub(crate) async fn serve(socket: PathBuf, config: WebConfig) {
    if !config.enabled {
        return;
    }
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(
                listen = %config.listen,
                "no status page: cannot listen ({e}); set [web] listen to a free port, or enabled = false"
            );
            return;
        }
    };
    let at = listener.local_addr().map_or(config.listen, |a| a);
    tracing::info!("status page on http://{at}");
    let page = Arc::new(Page {
        socket,
        started: Instant::now(),
        airtime: Mutex::new(Airtime::default()),
        streams: Arc::new(Semaphore::new(MAX_STREAMS)),
        last: tokio::sync::Mutex::new(None),
    });
    tokio::spawn(sample_airtime(page.clone()));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let page = page.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let handler = hyper::service::service_fn(move |req| {
                let page = page.clone();
                async move { Ok::<_, Infallible>(route(page, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), handler);
            if let Err(e) = conn.await {
                tracing::debug!("status page connection: {e}");
            }
        });
    }
}

/// Record the radios' airtime every [`history::EVERY`].
async fn sample_airtime(page: Arc<Page>) {
    let mut tick = tokio::time::interval(history::EVERY);
    loop {
        tick.tick().await;
        if let Ok(status) = ask(&page.socket, &Request::Status).await {
            let t = page.started.elapsed().as_secs();
            if let Ok(mut a) = page.airtime.lock() {
                a.add(t, &status);
            }
        }
    }
}

async fn ask(socket: &std::path::Path, request: &Request) -> Result<Value, String> {
    control::ask(socket, request, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())
}

/// Run `command` on this node and return its result.
async fn local(socket: &std::path::Path, command: &str, params: Value) -> Result<Value, String> {
    let v = ask(
        socket,
        &Request::Exec {
            destination: "local-only".into(),
            command: command.into(),
            params,
            timeout_ms: Some(20_000),
            ttl_ms: None,
            detach: false,
        },
    )
    .await?;
    Ok(v["result"].clone())
}

/// Whether the request names this machine (a page on another site cannot reach the
/// node through a DNS name that resolves to 127.0.0.1).
fn local_host<B>(req: &hyper::Request<B>) -> bool {
    let Some(host) = req
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.chars().all(|c| c.is_ascii_digit()) => n,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

async fn route<B>(page: Arc<Page>, req: hyper::Request<B>) -> Response<Body> {
    if !local_host(&req) {
        return text(
            StatusCode::FORBIDDEN,
            "this page answers only to localhost names",
        );
    }
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only");
    }
    match req.uri().path() {
        "/" => respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            PAGE.as_bytes().to_vec(),
        ),
        "/api/snapshot" => json_response(snapshot(&page).await),
        "/api/events" => events(page).await,
        "/api/search" => {
            let q = query_param(req.uri().query().unwrap_or(""), "q").unwrap_or_default();
            if q.trim().is_empty() || q.len() > MAX_QUERY {
                return text(
                    StatusCode::BAD_REQUEST,
                    &format!("give q, 1 to {MAX_QUERY} characters"),
                );
            }
            let params = json!({"query": q, "limit": 10, "patience": "quick"});
            match local(&page.socket, "genome/search", params).await {
                Ok(v) => json_response(json!({"results": v})),
                Err(e) => json_response(json!({"error": e})),
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not here: try /"),
    }
}

/// Everything the page shows, at most a second old: status, adapters, pipelines, the
/// governor's running jobs and loaded models, and the radios' airtime history.
async fn snapshot(page: &Page) -> Value {
    let mut last = page.last.lock().await;
    if let Some((at, v)) = last.as_ref() {
        if at.elapsed() < STREAM_EVERY {
            return v.clone();
        }
    }
    let (status, adapters, pipelines, governor) = tokio::join!(
        ask(&page.socket, &Request::Status),
        local(&page.socket, "genome/list", json!({})),
        local(&page.socket, "sentinel/list", json!({})),
        local(&page.socket, "governor/status", json!({})),
    );
    let airtime = page.airtime.lock().map_or(Value::Null, |a| a.to_json());
    let v = json!({
        "status": status.unwrap_or_else(|e| json!({"error": e})),
        "adapters": adapters.unwrap_or(Value::Null),
        "pipelines": pipelines.unwrap_or(Value::Null),
        "jobs": governor.map_or(Value::Null, |g| json!({"jobs": g["status"]["jobs"], "loaded": g["status"]["loaded"]})),
        "airtime": airtime,
        "airtime_every_s": history::EVERY.as_secs(),
    });
    *last = Some((Instant::now(), v.clone()));
    v
}

/// The snapshot every second as server-sent events, while the page is open.
async fn events(page: Arc<Page>) -> Response<Body> {
    let Ok(permit) = page.streams.clone().try_acquire_owned() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{MAX_STREAMS} live views are open already"),
        );
    };
    let stream =
        futures_util::stream::unfold((page, permit, true), |(page, permit, first)| async move {
            if !first {
                tokio::time::sleep(STREAM_EVERY).await;
            }
            let data = format!("data: {}\n\n", snapshot(&page).await);
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from(data))),
                (page, permit, false),
            ))
        });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "stream"))
}

/// The value of `name` in a query string (`+` and percent escapes decoded).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        message.as_bytes().to_vec(),
    )
}

fn json_response(v: Value) -> Response<Body> {
    respond(
        StatusCode::OK,
        "application/json",
        v.to_string().into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_query_is_decoded() {
        assert_eq!(
            query_param("x=1&q=when+is%20high%20tide", "q").as_deref(),
            Some("when is high tide")
        );
        assert_eq!(query_param("x=1", "q"), None);
    }

    #[test]
    fn only_localhost_names_are_answered() {
        let req = |host: &str| {
            hyper::Request::builder()
                .header("host", host)
                .body(())
                .unwrap()
        };
        assert!(local_host(&req("127.0.0.1:4280")));
        assert!(local_host(&req("localhost:4280")));
        assert!(local_host(&req("[::1]:4280")));
        assert!(!local_host(&req("evil.example:4280")));
        assert!(!local_host(&req("127.0.0.1.evil.example")));
        assert!(!local_host(&hyper::Request::new(())));
    }
}
