//! The worker's frames, its serving loop, and the node's side when the worker is missing,
//! crashes or answers nonsense. (The real worker, `grid worker embed`, is run by the
//! process tests in `tools/tests/genome.rs`.)

use std::io::Cursor;

use super::*;

/// Vectors that say which text they came from: every float is the text's length.
struct Lengths;

impl Embedder for Lengths {
    fn id(&self) -> &str {
        MINILM_ID
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.contains(&"fail") {
            return Err(EmbedError::Runtime("asked to fail".into()));
        }
        Ok(texts.iter().map(|t| vec![t.len() as f32; DIM]).collect())
    }
}

fn frames(requests: &[Request]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in requests {
        write_frame(&mut out, &postcard::to_stdvec(r).unwrap()).unwrap();
    }
    out
}

fn answers(bytes: Vec<u8>) -> Vec<Response> {
    let mut input = Cursor::new(bytes);
    let mut out = Vec::new();
    while let Some(f) = read_frame(&mut input, MAX_RESPONSE).unwrap() {
        out.push(postcard::from_bytes(&f).unwrap());
    }
    out
}

#[test]
fn the_worker_answers_each_request_in_order_and_survives_a_failed_one() {
    let input = frames(&[
        Request::Embed(vec!["a".into(), "abc".into()]),
        Request::Embed(vec!["fail".into()]),
        Request::Embed(vec![]),
        Request::Embed(vec!["four".into()]),
    ]);
    let mut output = Vec::new();
    serve(&Lengths, &mut Cursor::new(input), &mut output).unwrap();
    let got = answers(output);
    assert_eq!(got.len(), 4);
    assert_eq!(
        got[0],
        Response::Vectors(vec![vec![1.0; DIM], vec![3.0; DIM]])
    );
    assert!(matches!(&got[1], Response::Failed(e) if e.contains("asked to fail")));
    assert_eq!(got[2], Response::Vectors(vec![]));
    assert_eq!(got[3], Response::Vectors(vec![vec![4.0; DIM]]));
}

#[test]
fn the_worker_refuses_oversized_and_garbled_input() {
    // A length past the bound ends the worker before anything is read into memory.
    let mut input = Cursor::new(((MAX_REQUEST + 1) as u32).to_be_bytes().to_vec());
    let err = serve(&Lengths, &mut input, &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    // A body that is no request.
    let mut bytes = Vec::new();
    write_frame(&mut bytes, &[0xff, 0xff, 0xff]).unwrap();
    let err = serve(&Lengths, &mut Cursor::new(bytes), &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    // Too many texts: an answer saying so, and the worker goes on.
    let input = frames(&[
        Request::Embed(vec![String::new(); MAX_TEXTS + 1]),
        Request::Embed(vec!["ok".into()]),
    ]);
    let mut output = Vec::new();
    serve(&Lengths, &mut Cursor::new(input), &mut output).unwrap();
    let got = answers(output);
    assert!(matches!(&got[0], Response::Failed(e) if e.contains("at most")));
    assert_eq!(got[1], Response::Vectors(vec![vec![2.0; DIM]]));
    // A frame cut short is an error, an empty input a clean end.
    let mut cut = frames(&[Request::Embed(vec!["x".into()])]);
    cut.pop();
    assert!(serve(&Lengths, &mut Cursor::new(cut), &mut Vec::new()).is_err());
    serve(&Lengths, &mut Cursor::new(Vec::new()), &mut Vec::new()).unwrap();
}

#[test]
fn a_missing_worker_program_is_a_clear_error() {
    let w = WorkerEmbedder::new("/nonexistent/grid-worker".into(), vec![]);
    let err = w.embed(&["text"]).unwrap_err().to_string();
    assert!(
        err.contains("cannot start the embedding worker: /nonexistent/grid-worker"),
        "{err}"
    );
    assert_eq!(w.pid(), None);
    assert!(
        w.embed(&[]).unwrap().is_empty(),
        "nothing to embed starts nothing"
    );
}

#[test]
fn a_worker_that_dies_is_replaced_on_the_next_request() {
    // A "worker" that reads the request and exits: the node sees it end, says so, and
    // the next request starts another.
    let w = WorkerEmbedder::new(
        "/bin/sh".into(),
        vec!["-c".into(), "head -c 4 >/dev/null; exit 3".into()],
    );
    let err = w.embed(&["text"]).unwrap_err().to_string();
    assert!(err.contains("the embedding worker stopped"), "{err}");
    assert_eq!(w.pid(), None, "a dead worker is forgotten");
    assert!(w.embed(&["again"]).is_err());
    // One that answers nonsense is stopped too.
    let w = WorkerEmbedder::new(
        "/bin/sh".into(),
        vec![
            "-c".into(),
            "printf '\\000\\000\\000\\001\\377'; cat >/dev/null".into(),
        ],
    );
    let err = w.embed(&["text"]).unwrap_err().to_string();
    assert!(err.contains("undecodable answer"), "{err}");
    assert_eq!(w.pid(), None);
}

#[test]
fn an_idle_worker_is_stopped() {
    // A process that stays up until it is stopped.
    let w = WorkerEmbedder::new("/bin/sh".into(), vec!["-c".into(), "sleep 30".into()]);
    assert!(!w.unload_idle(Duration::ZERO), "nothing running");
    let mut r = w.running.lock().unwrap();
    *r = Some(w.start().unwrap());
    let pid = r.as_ref().unwrap().process.child.id();
    drop(r);
    assert_eq!(w.pid(), Some(pid));
    assert!(
        !w.unload_idle(Duration::from_secs(3600)),
        "not idle for an hour"
    );
    assert!(w.unload_idle(Duration::ZERO));
    assert_eq!(w.pid(), None);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the worker process is killed and reaped"
    );
}

/// A stand-in worker that answers one vector at once, whatever it is asked (its answer
/// file lives in `dir`).
fn answering_worker(dir: &std::path::Path) -> WorkerEmbedder {
    std::fs::create_dir_all(dir).unwrap();
    let answer = dir.join("answer");
    let mut bytes = Vec::new();
    let body = postcard::to_stdvec(&Response::Vectors(vec![vec![0.5; DIM]])).unwrap();
    write_frame(&mut bytes, &body).unwrap();
    std::fs::write(&answer, bytes).unwrap();
    let script = format!("cat '{}'; cat >/dev/null", answer.display());
    WorkerEmbedder::new("/bin/sh".into(), vec!["-c".into(), script])
}

#[test]
fn a_worker_killed_while_idle_is_replaced_within_the_request() {
    let dir = std::env::temp_dir().join(format!("grid-worker-test-{}", std::process::id()));
    let w = answering_worker(&dir);
    assert_eq!(w.embed(&["first"]).unwrap(), vec![vec![0.5; DIM]]);
    let first = w.pid().unwrap();
    // Killed while idle (as the kernel's OOM killer would).
    let killed = std::process::Command::new("kill")
        .args(["-9", &first.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(w.embed(&["second"]).unwrap(), vec![vec![0.5; DIM]]);
    let second = w.pid().unwrap();
    assert_ne!(first, second, "a new worker answered");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A governor with `ram_mib` of budget on an 8 GiB machine with `free_mib` available.
fn governor(ram_mib: u64, free_mib: u64) -> GovernorHandle {
    use grid::governor::{Budget, MemInfo, Reading, System, SystemProfile};
    let g = GovernorHandle::new(
        Budget {
            ram: ram_mib << 20,
            vram: 0,
        },
        SystemProfile::default(),
        System::at("/nonexistent"),
    );
    let _ = g.observe(Reading {
        mem: MemInfo {
            total: 8 << 30,
            available: free_mib << 20,
            ..MemInfo::default()
        },
        ..Reading::default()
    });
    g
}

#[test]
fn the_governor_refuses_to_start_a_worker_under_pressure_or_over_budget() {
    // Critical memory pressure (200 MiB free of 8 GiB): refused before anything starts
    // (the program does not even exist: trying would be a different error).
    let w = WorkerEmbedder::new("/nonexistent/grid-worker".into(), vec![])
        .with_governor(governor(4096, 200));
    match w.embed(&["text"]) {
        Err(EmbedError::Refused(grid::governor::Refusal::Pressure { .. })) => {}
        other => panic!("expected a pressure refusal, got {other:?}"),
    }
    assert_eq!(w.pid(), None);
    // A budget smaller than the model.
    let w = WorkerEmbedder::new("/nonexistent/grid-worker".into(), vec![])
        .with_governor(governor(128, 6000));
    let e = w.embed(&["text"]).unwrap_err();
    assert!(
        matches!(
            e,
            EmbedError::Refused(grid::governor::Refusal::OverBudget { .. })
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("ram_budget"), "{e}");
}

#[test]
fn a_running_worker_is_in_the_governors_registry_until_it_stops() {
    let dir = std::env::temp_dir().join(format!("grid-worker-gov-{}", std::process::id()));
    let g = governor(4096, 6000);
    let w = answering_worker(&dir).with_governor(g.clone());
    let loaded = |g: &GovernorHandle| g.status_json()["status"]["loaded"].clone();
    assert_eq!(loaded(&g), serde_json::json!([]));
    w.embed(&["first"]).unwrap();
    let l = loaded(&g);
    assert_eq!(l[0]["key"], GOVERNOR_KEY, "{l}");
    assert_eq!(l[0]["bytes"], WORKER_RAM);
    assert_eq!(l[0]["in_use"], 0, "the request has ended");
    // The load's grant was handed back: only the registry holds the memory.
    assert_eq!(g.status_json()["status"]["jobs"], serde_json::json!([]));
    assert_eq!(g.status_json()["status"]["ram_in_use"], WORKER_RAM);
    assert!(w.unload_idle(Duration::ZERO));
    assert_eq!(loaded(&g), serde_json::json!([]));
    let _ = std::fs::remove_dir_all(&dir);
}
