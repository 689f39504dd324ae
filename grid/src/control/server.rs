//! The server end of the control socket: connections within [`Limits`], one request line
//! at a time, each passed to the node as a [`ControlRequest`].

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, Notify};

use grid_interfaces::admission::{accept_backoff, earliest, sleep_until_std, Tally};

use super::{ControlError, ControlRequest, Request, MAX_LINE};

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

/// Connections the control socket holds at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may wait without sending a complete request line.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the control socket lets its clients hold.
///
/// At most `max_connections` at once. When that many are open, a newcomer takes the place
/// of the connection that has waited longest for a request line (a client that connected
/// and said nothing), and is closed at once only if every connection is busy with a
/// request. The CLI writes its request as soon as it connects, so idle connections
/// cannot lock it out. A connection idle for `idle_timeout` without a complete request
/// line is closed; time spent waiting for the node's answer does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at once.
    pub max_connections: usize,
    /// How long a connection may wait without sending a complete request line.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// The connections the control socket holds, and its tallies of dropped ones.
#[derive(Debug)]
struct Conns {
    /// Connections held (evicted ones no longer count).
    open: usize,
    /// The next idle ticket: a larger one went idle later.
    next: u64,
    /// Connections waiting for a request line, by ticket (longest waiting first), with
    /// the way to close each.
    idle: BTreeMap<u64, Arc<Notify>>,
    evicted: Tally,
    refused: Tally,
    timed_out: Tally,
    accept_failed: Tally,
}

type Shared = Arc<Mutex<Conns>>;

fn lock(c: &Shared) -> MutexGuard<'_, Conns> {
    c.lock().unwrap_or_else(|e| e.into_inner())
}

impl Conns {
    fn new() -> Shared {
        Arc::new(Mutex::new(Conns {
            open: 0,
            next: 0,
            idle: BTreeMap::new(),
            evicted: Tally::new(
                "control connections closed to make room for new ones (the longest idle)",
            ),
            refused: Tally::new(
                "control connections refused: every connection held is busy with a request",
            ),
            timed_out: Tally::new(
                "control connections closed: no request line within the idle timeout",
            ),
            accept_failed: Tally::new("control socket accept failed"),
        }))
    }

    fn tallies(&mut self) -> [&mut Tally; 4] {
        [
            &mut self.evicted,
            &mut self.refused,
            &mut self.timed_out,
            &mut self.accept_failed,
        ]
    }

    /// Count a new connection in, idle from the start (so a burst of newcomers can
    /// displace each other before any of them has run), making room for it if need be;
    /// `None` if there is none.
    fn admit(shared: &Shared, max: usize) -> Option<Conn> {
        let mut c = lock(shared);
        if !c.make_room(max) {
            return None;
        }
        c.open += 1;
        let close = Arc::new(Notify::new());
        let ticket = c.enqueue_idle(&close);
        Some(Conn {
            conns: shared.clone(),
            standing: Standing::Idle(ticket),
            close,
        })
    }

    /// Put a connection among the idle ones, last in line for eviction; its ticket.
    fn enqueue_idle(&mut self, close: &Arc<Notify>) -> u64 {
        let ticket = self.next;
        self.next += 1;
        self.idle.insert(ticket, close.clone());
        ticket
    }

    /// Make room for one more connection if need be; false if there is none.
    fn make_room(&mut self, max: usize) -> bool {
        let now = std::time::Instant::now();
        if self.open >= max {
            match self.idle.pop_first() {
                Some((_, close)) => {
                    close.notify_one();
                    self.open -= 1;
                    self.evicted.hit(SERVER, None, now);
                }
                None => {
                    self.refused.hit(SERVER, None, now);
                    return false;
                }
            }
        }
        true
    }
}

/// The server name in warnings.
const SERVER: &str = "control socket";

/// Where one connection stands.
#[derive(Debug, Clone, Copy)]
enum Standing {
    /// Waiting for a request line, with its ticket.
    Idle(u64),
    /// Handling a request.
    Busy,
    /// Closed to make room (no longer counted).
    Evicted,
}

/// One connection's place among [`Conns`], given back when it drops.
#[derive(Debug)]
struct Conn {
    conns: Shared,
    standing: Standing,
    close: Arc<Notify>,
}

impl Conn {
    /// Wait for a request line: the connection may be evicted from now on.
    fn idle(&mut self) {
        let ticket = lock(&self.conns).enqueue_idle(&self.close);
        self.standing = Standing::Idle(ticket);
    }

    /// A request line came; false if the connection was evicted first.
    fn busy(&mut self) -> bool {
        if let Standing::Idle(t) = self.standing {
            let evicted = lock(&self.conns).idle.remove(&t).is_none();
            self.standing = if evicted {
                Standing::Evicted
            } else {
                Standing::Busy
            };
        }
        matches!(self.standing, Standing::Busy)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let mut c = lock(&self.conns);
        let counted = match self.standing {
            Standing::Idle(t) => c.idle.remove(&t).is_some(),
            Standing::Busy => true,
            Standing::Evicted => false,
        };
        if counted {
            c.open -= 1;
        }
    }
}

/// Serve control connections, passing each request to `requests`, within the default
/// [`Limits`].
pub async fn serve(listener: UnixListener, requests: mpsc::Sender<ControlRequest>) {
    serve_with(listener, requests, Limits::default(), Conns::new()).await
}

async fn serve_with(
    listener: UnixListener,
    requests: mpsc::Sender<ControlRequest>,
    limits: Limits,
    conns: Shared,
) {
    loop {
        let flush_at = earliest(lock(&conns).tallies().map(|t| t.due()));
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = sleep_until_std(flush_at) => {
                let now = std::time::Instant::now();
                for t in lock(&conns).tallies() {
                    t.flush(SERVER, now);
                }
                continue;
            }
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                let wait = accept_backoff(&e);
                lock(&conns)
                    .accept_failed
                    .hit(SERVER, Some(&e), std::time::Instant::now());
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        let Some(conn) = Conns::admit(&conns, limits.max_connections) else {
            drop(stream); // closed at once
            continue;
        };
        tokio::spawn(serve_conn(
            stream,
            conn,
            requests.clone(),
            limits.idle_timeout,
        ));
    }
}

/// Answer one connection's requests, one line at a time, until it closes, idles out or
/// is evicted.
async fn serve_conn(
    stream: UnixStream,
    mut conn: Conn,
    requests: mpsc::Sender<ControlRequest>,
    idle_timeout: Duration,
) {
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd);
    let mut line = String::new();
    let close = conn.close.clone();
    loop {
        line.clear();
        let mut limited = (&mut lines).take(MAX_LINE as u64 + 1);
        let n = tokio::select! {
            r = limited.read_line(&mut line) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = tokio::time::sleep(idle_timeout) => {
                let mut c = lock(&conn.conns);
                c.timed_out.hit(SERVER, None, std::time::Instant::now());
                return;
            }
            _ = close.notified() => return,
        };
        if !conn.busy() || n > MAX_LINE {
            return;
        }
        let response = match Request::parse(&line) {
            Err(e) => e.to_json(),
            Ok(request) => {
                let (tx, rx) = oneshot::channel();
                if requests
                    .send(ControlRequest { request, reply: tx })
                    .await
                    .is_err()
                {
                    return;
                }
                match rx.await {
                    Ok(v) => v,
                    Err(_) => return,
                }
            }
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_default();
        out.push(b'\n');
        if wr.write_all(&out).await.is_err() {
            return;
        }
        conn.idle(); // waiting for the next request line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::call;
    use serde_json::Value;
    use std::path::PathBuf;

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
                let _ = r
                    .reply
                    .send(serde_json::json!({"ok": true, "echo": r.request.name()}));
            }
        });
        let v = call(&path, &Request::Status, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(v["echo"], "status");
        // What is not a request is refused with a typed error, and the node never sees it.
        for bad in [
            serde_json::json!({"cmd": "x"}),
            serde_json::json!({"no": "cmd"}),
            serde_json::json!({"cmd": "path", "destination": "zz"}),
            serde_json::json!([1, 2]),
        ] {
            let e = ask_raw(&path, &bad).await;
            assert!(
                matches!(e, Some(crate::Error::BadRequest(_))),
                "{bad} → {e:?}"
            );
        }
        let e = crate::control::ask(&path, &Request::Status, Duration::from_secs(2)).await;
        assert_eq!(e.unwrap()["echo"], "status");
        let _ = std::fs::remove_dir_all(&dir);
        let missing = call(&dir.join("nope.sock"), &Value::Null, Duration::from_secs(1)).await;
        assert!(matches!(missing, Err(ControlError::NotRunning { .. })));
    }

    /// The typed refusal `request` gets, if any.
    async fn ask_raw(path: &Path, request: &Value) -> Option<crate::Error> {
        let v = call(path, request, Duration::from_secs(2)).await.unwrap();
        crate::Error::from_json(&v)
    }

    /// A control server in a fresh directory with `limits`, whose node answers every
    /// request at once except `{"cmd": "pair_status"}`, whose answer goes to the returned
    /// receiver for the test to give.
    async fn server(
        tag: &str,
        limits: Limits,
    ) -> (PathBuf, Shared, mpsc::Receiver<oneshot::Sender<Value>>) {
        let dir = std::env::temp_dir().join(format!("grid-ctl-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grid.sock");
        let listener = bind(&path).await.unwrap();
        let conns = Conns::new();
        let (tx, mut rx) = mpsc::channel(4);
        tokio::spawn(serve_with(listener, tx, limits, conns.clone()));
        let (held_tx, held_rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                if r.request == Request::PairStatus {
                    let _ = held_tx.send(r.reply).await;
                } else {
                    let _ = r.reply.send(serde_json::json!({"echo": r.request.name()}));
                }
            }
        });
        (path, conns, held_rx)
    }

    /// Wait until the server's counts satisfy `f` (panics after 10 s).
    async fn until(conns: &Shared, what: &str, f: impl Fn(&Conns) -> bool) {
        for _ in 0..2000 {
            if f(&lock(conns)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never: {what} ({:?})", lock(conns));
    }

    /// Whether the server closed `s` (end of stream or an error; false after 10 s).
    async fn closed(s: &mut UnixStream) -> bool {
        let mut b = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await;
        matches!(r, Ok(Ok(0) | Err(_)))
    }

    /// Write one request line on `s` and read one answer line.
    async fn ask(s: &mut UnixStream, req: &str) -> Value {
        s.write_all(format!("{req}\n").as_bytes()).await.unwrap();
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).await.unwrap();
        serde_json::from_str(&line).unwrap()
    }

    #[tokio::test]
    async fn newcomers_displace_idle_connections_and_busy_ones_are_kept() {
        let limits = Limits {
            max_connections: 2,
            idle_timeout: Duration::from_secs(3600),
        };
        let (path, conns, mut held) = server("cap", limits).await;
        // a says nothing; b asks something the node takes its time over.
        let mut a = UnixStream::connect(&path).await.unwrap();
        until(&conns, "a idle", |c| c.open == 1 && c.idle.len() == 1).await;
        let mut b = UnixStream::connect(&path).await.unwrap();
        b.write_all(b"{\"cmd\":\"pair_status\"}\n").await.unwrap();
        let b_reply = held.recv().await.unwrap();
        // Full: c takes the place of idle a, not of busy b.
        let mut c = UnixStream::connect(&path).await.unwrap();
        assert!(closed(&mut a).await, "a was evicted");
        until(&conns, "c idle", |c| c.open == 2 && c.idle.len() == 1).await;
        // d takes c's place and is served.
        let mut d = UnixStream::connect(&path).await.unwrap();
        assert!(closed(&mut c).await, "c was evicted");
        assert_eq!(ask(&mut d, "{\"cmd\":\"status\"}").await["echo"], "status");
        // With b and d both busy, a newcomer is closed at once.
        d.write_all(b"{\"cmd\":\"pair_status\"}\n").await.unwrap();
        let d_reply = held.recv().await.unwrap();
        let mut e = UnixStream::connect(&path).await.unwrap();
        assert!(closed(&mut e).await, "e was refused");
        {
            let c = lock(&conns);
            assert_eq!((c.evicted.total(), c.refused.total(), c.open), (2, 1, 2));
        }
        // The busy ones get their answers.
        b_reply.send(serde_json::json!({"ok": true})).unwrap();
        d_reply.send(serde_json::json!({"ok": true})).unwrap();
        for s in [&mut b, &mut d] {
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).await.unwrap();
            assert_eq!(line.trim(), "{\"ok\":true}");
        }
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[tokio::test]
    async fn idle_connections_are_closed_but_waiting_for_an_answer_is_not_idle() {
        let limits = Limits {
            max_connections: 4,
            idle_timeout: Duration::from_millis(200),
        };
        let (path, conns, mut held) = server("idle", limits).await;
        let mut busy = UnixStream::connect(&path).await.unwrap();
        busy.write_all(b"{\"cmd\":\"pair_status\"}\n")
            .await
            .unwrap();
        let reply = held.recv().await.unwrap();
        // Half a request line, then nothing: closed after the idle timeout.
        let mut slow = UnixStream::connect(&path).await.unwrap();
        slow.write_all(b"{\"cmd\":").await.unwrap();
        assert!(closed(&mut slow).await, "the idle connection was closed");
        until(&conns, "slow gone", |c| c.open == 1).await;
        assert_eq!(lock(&conns).timed_out.total(), 1);
        // The busy one has waited longer than the idle timeout, and still gets its answer.
        reply.send(serde_json::json!({"ok": true})).unwrap();
        let mut line = String::new();
        BufReader::new(&mut busy)
            .read_line(&mut line)
            .await
            .unwrap();
        assert_eq!(line.trim(), "{\"ok\":true}");
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
