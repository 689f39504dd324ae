//! The supervisor against scripted workers (Python speaking the frame protocol), so
//! that crashes, hangs and queueing are exact; the real model worker is tested in
//! `tools/tests/llm.rs`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::*;

/// A Python worker: `body` runs after the helpers below are defined and Ready was sent
/// (unless `body` starts with `#noready`).
fn script(body: &str) -> (PathBuf, Vec<String>) {
    let prelude = r#"
import struct, sys
out = sys.stdout.buffer
def varint(n):
    b = bytearray()
    while True:
        x = n & 0x7f; n >>= 7
        if n: b.append(x | 0x80)
        else: b.append(x); return bytes(b)
def s(t):
    t = t.encode(); return varint(len(t)) + t
def frame(b):
    out.write(struct.pack('>I', len(b)) + b); out.flush()
def ready():
    frame(b'\x00' + s('fake') + s('llama') + varint(2048) + varint(10000)
          + struct.pack('<d', 5.0))
def token(t):
    frame(b'\x01' + s(t))
def done(text, n):
    frame(b'\x02' + s(text) + varint(3) + varint(n) + varint(n) + s('stop') + b'\x00'
          + struct.pack('<ddd', 1.0, 2.0, 3.0))
def failed(why):
    frame(b'\x03' + s(why))
def request():
    h = sys.stdin.buffer.read(4)
    if len(h) < 4: sys.exit(0)
    return sys.stdin.buffer.read(struct.unpack('>I', h)[0])
"#;
    let ready = if body.starts_with("#noready") {
        ""
    } else {
        "ready()\n"
    };
    let python = std::env::var("GRID_PYTHON").unwrap_or_else(|_| "python3".into());
    (
        PathBuf::from(python),
        vec!["-c".into(), format!("{prelude}{ready}{body}")],
    )
}

fn generator(body: &str) -> Generator {
    let (program, args) = script(body);
    Generator::new(program, args, 1 << 20)
}

fn request(prompt: &str) -> GenerateRequest {
    GenerateRequest {
        prompt: prompt.into(),
        max_tokens: 8,
        temperature: 0.0,
        seed: 1,
        adapter: None,
        context_limit: None,
    }
}

fn collect() -> (Arc<Mutex<String>>, impl FnMut(&str) + Send + 'static) {
    let text = Arc::new(Mutex::new(String::new()));
    let t = text.clone();
    (text, move |piece: &str| t.lock().unwrap().push_str(piece))
}

const ECHO: &str = r#"
while True:
    request()
    token('he'); token('llo')
    done('hello', 2)
"#;

#[tokio::test]
async fn tokens_stream_and_the_result_comes_back() {
    let g = generator(ECHO);
    let (text, on_token) = collect();
    let f = g.generate(request("hi"), on_token).await.unwrap();
    assert_eq!(*text.lock().unwrap(), "hello");
    assert_eq!((f.text.as_str(), f.completion_tokens), ("hello", 2));
    assert_eq!(g.model().unwrap().name, "fake");
    let pid = g.pid().unwrap();
    // The same worker serves the next request.
    g.generate(request("again"), |_| {}).await.unwrap();
    assert_eq!(g.pid(), Some(pid));
    assert!(!g.unload_idle(Duration::from_secs(60)));
    assert!(g.unload_idle(Duration::ZERO));
    assert_eq!(g.pid(), None);
}

#[tokio::test]
async fn a_worker_that_dies_mid_request_fails_it_and_the_next_starts_fresh() {
    // The first worker dies after one token; later ones are healthy.
    let dir = tempdir();
    let marker = dir.path().join("died");
    let body = format!(
        r#"
import os
while True:
    request()
    token('par')
    if not os.path.exists({m:?}):
        open({m:?}, 'w').close()
        os._exit(9)
    done('partial', 1)
"#,
        m = marker.display().to_string()
    );
    let g = generator(&body);
    let (text, on_token) = collect();
    let err = g.generate(request("hi"), on_token).await.unwrap_err();
    assert!(matches!(err, GenerateError::WorkerDied(_)), "{err}");
    assert!(err.to_string().contains("this node is fine"), "{err}");
    assert_eq!(*text.lock().unwrap(), "par");
    assert_eq!(g.pid(), None);
    let f = g.generate(request("hi"), |_| {}).await.unwrap();
    assert_eq!(f.text, "partial");
}

#[tokio::test]
async fn a_worker_killed_while_idle_is_replaced_without_failing_the_request() {
    let g = generator(ECHO);
    g.generate(request("hi"), |_| {}).await.unwrap();
    let pid = g.pid().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let f = g.generate(request("hi"), |_| {}).await.unwrap();
    assert_eq!(f.text, "hello");
    assert_ne!(g.pid(), Some(pid));
}

#[tokio::test]
async fn a_model_failure_is_the_request_s_alone() {
    let g = generator(
        r#"
first = True
while True:
    request()
    if first:
        failed('adapter blk.0.attn_q does not fit'); first = False
    else:
        done('ok', 1)
"#,
    );
    let err = g.generate(request("hi"), |_| {}).await.unwrap_err();
    assert!(
        matches!(&err, GenerateError::Model(m) if m.contains("attn_q")),
        "{err}"
    );
    let pid = g.pid();
    assert_eq!(g.generate(request("hi"), |_| {}).await.unwrap().text, "ok");
    assert_eq!(g.pid(), pid, "the worker went on");
}

#[tokio::test]
async fn a_worker_that_cannot_load_says_so() {
    let g = generator("#noready\nimport sys\nsys.stderr.write('no model file\\n')\nsys.exit(3)\n");
    let err = g.generate(request("hi"), |_| {}).await.unwrap_err();
    assert!(matches!(err, GenerateError::Start(_)), "{err}");
    assert!(
        err.to_string().contains("before its model was loaded"),
        "{err}"
    );
    let g = Generator::new("/nonexistent/grid".into(), vec![], 1);
    let err = g.generate(request("hi"), |_| {}).await.unwrap_err();
    assert!(matches!(err, GenerateError::Start(_)), "{err}");
}

#[tokio::test]
async fn requests_out_of_bounds_never_reach_the_worker() {
    let g = Generator::new("/nonexistent/grid".into(), vec![], 1);
    for r in [
        GenerateRequest {
            prompt: String::new(),
            ..request("x")
        },
        GenerateRequest {
            prompt: "x".repeat(MAX_PROMPT + 1),
            ..request("x")
        },
        GenerateRequest {
            max_tokens: 0,
            ..request("x")
        },
        GenerateRequest {
            max_tokens: MAX_TOKENS + 1,
            ..request("x")
        },
        GenerateRequest {
            temperature: f32::NAN,
            ..request("x")
        },
    ] {
        let err = g.generate(r, |_| {}).await.unwrap_err();
        assert!(matches!(err, GenerateError::BadRequest(_)), "{err}");
        let e: CommandError = err.into();
        assert_eq!(e.code, ErrorCode::BadParams);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_queue_requests_are_refused_as_busy() {
    // A worker that takes one second per request.
    let g = Arc::new(generator(
        "import time\nwhile True:\n    request(); time.sleep(1); done('slow', 1)\n",
    ));
    let mut running = Vec::new();
    for _ in 0..=QUEUE {
        let g = g.clone();
        running.push(tokio::spawn(async move {
            g.generate(request("hi"), |_| {}).await
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // One generating, QUEUE waiting: the next is refused at once.
    let err = g.generate(request("hi"), |_| {}).await.unwrap_err();
    assert!(matches!(err, GenerateError::QueueFull), "{err}");
    let e: CommandError = err.into();
    assert_eq!(e.code, ErrorCode::Busy);
    for r in running {
        assert_eq!(r.await.unwrap().unwrap().text, "slow");
    }
}

#[tokio::test]
async fn the_governor_is_asked_before_loading() {
    use grid::governor::{Budget, SystemProfile};
    let budget = Budget {
        ram: 64 << 20,
        vram: 0,
    };
    let governor = GovernorHandle::new(
        budget,
        SystemProfile::default(),
        grid::governor::System::at(tempdir().path()),
    );
    let (program, args) = script(ECHO);
    let g = Generator::new(program, args, 512 << 20).with_governor(governor);
    let err = g.generate(request("hi"), |_| {}).await.unwrap_err();
    assert!(matches!(err, GenerateError::Refused(_)), "{err}");
    assert_eq!(g.pid(), None, "nothing was started");
    let e: CommandError = err.into();
    assert_eq!(e.code, ErrorCode::Busy);
}

#[tokio::test]
async fn each_request_is_planned_from_its_length_and_held_to_it() {
    use grid::governor::{Budget, SystemProfile};
    // The fake model says 10,000 bytes per context token and 2048 tokens of context.
    let governor = GovernorHandle::new(
        Budget {
            ram: 40 << 20,
            vram: 0,
        },
        SystemProfile::default(),
        grid::governor::System::at(tempdir().path()),
    );
    // Echo the request's context_limit (the last field: 0x01 + varint) as the text.
    let body = r#"
def varint_at_end(b):
    # The body ends with Some(varint): find the 0x01 that starts it.
    for i in range(len(b) - 1, -1, -1):
        if b[i] == 1:
            n, shift = 0, 0
            for x in b[i + 1:]:
                n |= (x & 0x7f) << shift; shift += 7
            return n
while True:
    b = request()
    t = str(varint_at_end(b))
    token(t); done(t, 1)
"#;
    let (program, args) = script(body);
    let g = Generator::new(program, args, 1 << 20).with_governor(governor);
    // A short prompt: 2 bytes + 64 template tokens + 8 new ones, 740 KB on top of the base.
    let f = g.generate(request("hi"), |_| {}).await.unwrap();
    assert_eq!(f.text, "74");
    let info = g.model().unwrap();
    let plan = request_plan(&info, 2, 8);
    assert_eq!(plan.context_tokens, 74);
    assert_eq!(plan.ram, REQUEST_BASE_RAM + 740_000);
    // A long prompt would need 32 MiB + 20 MB (its 2048 tokens of context): over the 40
    // MiB budget, refused at once with the worker still loaded (planned at 1 MiB).
    let long = "x".repeat(10_000);
    let err = g.generate(request(&long), |_| {}).await.unwrap_err();
    assert!(matches!(err, GenerateError::Refused(_)), "{err}");
    assert!(g.pid().is_some());
    // A prompt longer than the context is planned at the whole context only.
    assert_eq!(request_plan(&info, 1 << 20, 8).context_tokens, 2048);
}

fn tempdir() -> grid_test_support::TempDir {
    grid_test_support::TempDir::new("generate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_request_stops_its_worker() {
    // A worker that streams a token every 50 ms for ever.
    let g = Arc::new(generator(
        "import time\nrequest()\nwhile True:\n    token('x'); time.sleep(0.05)\n",
    ));
    let (text, on_token) = collect();
    let g2 = g.clone();
    let running = tokio::spawn(async move { g2.generate(request("hi"), on_token).await });
    let t = text.clone();
    tokio::time::timeout(Duration::from_secs(10), async move {
        while t.lock().unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    running.abort();
    // The blocking side notices at the next token and stops the worker.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(r) = g.running.try_lock() {
                if r.is_none() {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the worker was stopped");
}

#[test]
fn the_worker_picks_the_weights_and_the_plan_covers_what_it_may_pick() {
    let smollm = 98_362_432;
    assert_eq!(weights_for(smollm), Weights::Auto);
    assert_eq!(Weights::Auto.arg(), "auto");
    // Measured peak 320 MB with f16 weights (the fallback for small files whose blocks
    // the native kernels do not take; native itself peaks at 137 MB): the plan covers it.
    assert!(planned_ram(smollm, Weights::Auto) > 320_000_000);
    assert_eq!(
        planned_ram(smollm, Weights::Auto),
        planned_ram(smollm, Weights::F16)
    );
    let seven_b = 4 << 30;
    assert_eq!(weights_for(seven_b), Weights::Auto);
    assert!(planned_ram(seven_b, Weights::Auto) < 9 << 30);
    assert_eq!(
        planned_ram(seven_b, Weights::Auto),
        planned_ram(seven_b, Weights::Quantized)
    );
}
