//! The engine on a fake mesh: nodes that answer, fail, are busy or gone, as scripted.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::format::parse;

/// Answers a fake node gives a command, used in turn (the last repeats).
type Answers = Vec<Result<Value, MeshError>>;

/// A fake mesh: scripted answers by (node, command), and what happened.
#[derive(Default)]
struct Fake {
    script: Mutex<HashMap<(String, String), Answers>>,
    runs: Mutex<Vec<(String, String, Value)>>,
    compute: Vec<String>,
    emitted: Mutex<Vec<(String, Value)>>,
    sleeps: Mutex<Vec<Duration>>,
    events: Mutex<Vec<Value>>,
    logs: Mutex<Vec<String>>,
    /// The pipeline's deadline has passed (else it never does).
    past_deadline: bool,
    /// Timers up to this long have run out (a step's timeout; others never do).
    expired_up_to: Duration,
}

impl Fake {
    fn with_compute(nodes: &[&str]) -> Fake {
        Fake {
            compute: nodes.iter().map(|s| s.to_string()).collect(),
            ..Fake::default()
        }
    }

    fn script(&self, node: &str, command: &str, answers: Vec<Result<Value, MeshError>>) {
        self.script
            .lock()
            .unwrap()
            .insert((node.into(), command.into()), answers);
    }

    fn runs_of(&self, command: &str) -> Vec<String> {
        self.runs
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, c, _)| c == command)
            .map(|(n, _, _)| n.clone())
            .collect()
    }
}

impl Mesh for Fake {
    async fn candidates(&self, place: &Where, _command: &str) -> Result<Vec<String>, String> {
        Ok(match place {
            Where::Target(t) => vec![t.clone()],
            Where::Placement(_) => self.compute.clone(),
            Where::Here => vec!["here".into()],
        })
    }

    async fn execute(
        &self,
        node: &str,
        command: &str,
        params: &Value,
        _timeout: Duration,
    ) -> Result<Value, MeshError> {
        self.runs
            .lock()
            .unwrap()
            .push((node.into(), command.into(), params.clone()));
        let mut script = self.script.lock().unwrap();
        match script.get_mut(&(node.to_string(), command.to_string())) {
            Some(answers) if answers.len() > 1 => answers.remove(0),
            Some(answers) => answers[0].clone(),
            None => Ok(json!({"node": node, "echo": params})),
        }
    }

    async fn emit(&self, event: &str, payload: &Value) -> Result<(), String> {
        self.emitted
            .lock()
            .unwrap()
            .push((event.into(), payload.clone()));
        Ok(())
    }

    async fn watch(
        &self,
        pattern: &str,
        _node: Option<&str>,
        timeout: Duration,
    ) -> Result<Value, MeshError> {
        let emitted = self.emitted.lock().unwrap();
        let prefix = pattern.trim_end_matches('*');
        emitted
            .iter()
            .find(|(e, _)| e.starts_with(prefix))
            .map(|(e, p)| json!({"event": e, "payload": p}))
            .ok_or_else(|| MeshError::Failed(format!("no {pattern} in {timeout:?}")))
    }

    async fn sleep(&self, d: Duration) {
        self.sleeps.lock().unwrap().push(d);
    }

    async fn shell(
        &self,
        cmd: &str,
        args: &[String],
        _dir: Option<&str>,
        _timeout: Duration,
    ) -> Result<Value, MeshError> {
        let line = std::iter::once(cmd.to_string())
            .chain(args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        self.runs
            .lock()
            .unwrap()
            .push(("here".into(), "shell".into(), json!(line)));
        Ok(json!({"code": 0, "stdout": line}))
    }

    async fn deadline(&self, timeout: Duration) {
        if !self.past_deadline && timeout > self.expired_up_to {
            std::future::pending::<()>().await;
        }
    }

    fn step_event(&self, _key: &str, record: &Value) {
        self.events.lock().unwrap().push(record.clone());
    }

    fn log(&self, key: &str, message: &str) {
        self.logs.lock().unwrap().push(format!("{key}: {message}"));
    }
}

fn run_with(fake: &Fake, journal: &MemoryJournal, text: &str, inputs: &[(&str, Value)]) -> Outcome {
    let p = parse(text).unwrap();
    crate::validate(&p).unwrap();
    let run = Run::new(
        fake,
        journal,
        inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        HashMap::from([("GREETING".to_string(), "hello".to_string())]),
        Arc::new(AtomicBool::new(false)),
    );
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(run.start(&p))
}

fn run(fake: &Fake, text: &str) -> Outcome {
    run_with(fake, &MemoryJournal::default(), text, &[])
}

#[test]
fn the_demo_pipeline_runs_and_passes_outputs_on() {
    let fake = Fake::default();
    let o = run(
        &fake,
        r#"{"name": "demo", "steps": [
          {"id": "ping", "type": "command", "target": "n1", "command": "grid/ping", "params": {"say": "{{env.GREETING}}"}},
          {"id": "done", "type": "emit", "event": "demo:done", "payload": {"node": "{{steps.ping.output.node}}"}}
        ]}"#,
    );
    assert_eq!(o.status, Status::Completed, "{o:?}");
    assert_eq!(o.steps["ping"]["node"], "n1");
    assert_eq!(o.steps["ping"]["output"]["echo"]["say"], "hello");
    assert_eq!(
        fake.emitted.lock().unwrap().clone(),
        [("demo:done".to_string(), json!({"node": "n1"}))]
    );
}

#[test]
fn busy_and_lost_nodes_are_passed_over_and_failures_retried_with_backoff() {
    let fake = Fake::with_compute(&["a", "b", "c"]);
    fake.script("a", "x/y", vec![Err(MeshError::Busy("pressure".into()))]);
    fake.script("b", "x/y", vec![Err(MeshError::Lost("no path".into()))]);
    let o = run(
        &fake,
        r#"{"name": "p", "steps": [{"id": "s", "type": "command", "command": "x/y", "placement": {"least_loaded": true}}]}"#,
    );
    assert_eq!(o.steps["s"]["node"], "c", "{o:?}");
    assert_eq!(fake.runs_of("x/y"), ["a", "b", "c"]);
    assert!(
        fake.sleeps.lock().unwrap().is_empty(),
        "no retry was needed"
    );
    assert_eq!(
        *fake.logs.lock().unwrap(),
        [
            "s: a passed over (busy: pressure); trying the next",
            "s: b passed over (lost: no path); trying the next"
        ]
    );

    // The step itself fails twice, then works: tried again after 1 s and 2 s.
    let fake = Fake::with_compute(&["a"]);
    fake.script(
        "a",
        "x/y",
        vec![
            Err(MeshError::Failed("oops".into())),
            Err(MeshError::Failed("oops".into())),
            Ok(json!(7)),
        ],
    );
    let o = run(
        &fake,
        r#"{"name": "p", "steps": [{"id": "s", "type": "command", "command": "x/y", "retries": 2, "placement": {"gpu": true}}]}"#,
    );
    assert_eq!(o.status, Status::Completed);
    assert_eq!(
        (
            o.steps["s"]["output"].clone(),
            o.steps["s"]["attempts"].clone()
        ),
        (json!(7), json!(3))
    );
    assert_eq!(
        *fake.sleeps.lock().unwrap(),
        [Duration::from_secs(1), Duration::from_secs(2)]
    );
    assert_eq!(
        fake.logs.lock().unwrap()[1],
        "s: attempt 2 of 3 failed (a: oops); trying again in 2s"
    );

    // Out of retries: the run fails, saying why, and later steps do not run.
    let fake = Fake::with_compute(&["a"]);
    fake.script("a", "x/y", vec![Err(MeshError::Failed("disk full".into()))]);
    let o = run(
        &fake,
        r#"{"name": "p", "steps": [{"id": "s", "type": "command", "command": "x/y", "retries": 1, "placement": {"gpu": true}},
                                   {"id": "t", "type": "emit", "event": "never"}]}"#,
    );
    assert_eq!(o.status, Status::Failed);
    assert!(o.error.as_deref().unwrap().contains("disk full"), "{o:?}");
    assert_eq!(o.steps["s"]["status"], "failed");
    assert!(!o.steps.contains_key("t"));
    assert_eq!(fake.runs_of("x/y").len(), 2);
}

#[test]
fn a_resumed_run_takes_completed_steps_from_the_journal() {
    let text = r#"{"name": "r", "steps": [
        {"id": "first", "type": "command", "target": "n1", "command": "count/one"},
        {"id": "each", "type": "loop", "count": 3, "steps": [
            {"id": "item", "type": "command", "target": "n1", "command": "count/item", "params": {"i": "{{loop.each.index}}"}}]},
        {"id": "last", "type": "command", "target": "n1", "command": "count/last", "params": {"from": "{{steps.first.output.node}}"}}
    ]}"#;
    let journal = MemoryJournal::default();
    // The first run stops at `last` (its node is gone and it has no retries).
    let fake = Fake::default();
    fake.script(
        "n1",
        "count/last",
        vec![Err(MeshError::Lost("gone".into()))],
    );
    let o = run_with(&fake, &journal, text, &[]);
    assert_eq!(o.status, Status::Failed);
    assert_eq!(fake.runs_of("count/item").len(), 3);
    let keys: Vec<String> = journal.0.lock().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["each", "each#0/item", "each#1/item", "each#2/item", "first"]
    );
    // Resumed: only `last` runs, with the first run's output.
    let fake = Fake::default();
    let o = run_with(&fake, &journal, text, &[]);
    assert_eq!(o.status, Status::Completed, "{o:?}");
    assert!(fake.runs_of("count/one").is_empty() && fake.runs_of("count/item").is_empty());
    assert_eq!(fake.runs_of("count/last"), ["n1"]);
    assert_eq!(fake.runs.lock().unwrap()[0].2, json!({"from": "n1"}));
}

#[test]
fn loops_conditions_and_parallel_branches() {
    // `until` as a retry: the check passes on the third try.
    let fake = Fake::default();
    fake.script(
        "n1",
        "check/it",
        vec![
            Ok(json!({"ok": false})),
            Ok(json!({"ok": false})),
            Ok(json!({"ok": true})),
        ],
    );
    let o = run(
        &fake,
        r#"{"name": "l", "steps": [
          {"id": "retry", "type": "loop", "until": "{{steps.c.output.ok}} == true", "max_iterations": 5,
           "steps": [{"id": "c", "type": "command", "target": "n1", "command": "check/it"}]},
          {"id": "branch", "type": "condition", "if": "{{steps.retry.output.passes}} > 2",
           "then": [{"id": "yes", "type": "emit", "event": "many"}],
           "else": [{"id": "no", "type": "emit", "event": "few"}]}
        ]}"#,
    );
    assert_eq!(o.status, Status::Completed, "{o:?}");
    assert_eq!(o.steps["retry"]["output"]["passes"], 3);
    assert!(o.steps.contains_key("yes") && !o.steps.contains_key("no"));
    // An `until` that never holds fails the loop.
    let fake = Fake::default();
    fake.script("n1", "check/it", vec![Ok(json!({"ok": false}))]);
    let o = run(
        &fake,
        r#"{"name": "l", "steps": [{"id": "retry", "type": "loop", "until": "{{steps.c.output.ok}}", "max_iterations": 4,
           "steps": [{"id": "c", "type": "command", "target": "n1", "command": "check/it"}]}]}"#,
    );
    assert_eq!(o.status, Status::Failed);
    assert!(o.error.unwrap().contains("did not hold in 4 passes"));

    // Branches on two nodes; one fails: the run fails, the other branch completed.
    let fake = Fake::default();
    fake.script(
        "n2",
        "work/b",
        vec![Err(MeshError::Failed("bad input".into()))],
    );
    let o = run(
        &fake,
        r#"{"name": "p", "steps": [{"id": "fan", "type": "parallel", "branches": [
            [{"id": "a", "type": "command", "target": "n1", "command": "work/a"}],
            [{"id": "b", "type": "command", "target": "n2", "command": "work/b"}]]}]}"#,
    );
    assert_eq!(o.status, Status::Failed);
    assert_eq!(o.steps["a"]["status"], "completed");
    assert_eq!(o.steps["fan"]["status"], "failed");
}

#[test]
fn inputs_nested_pipelines_cancellation_and_shell() {
    let fake = Fake::default();
    let text = r#"{"name": "outer", "inputs": {"who": {}, "greeting": {"default": "hi"}}, "steps": [
        {"id": "inner", "type": "sentinel", "inputs": {"name": "{{input.who}}"},
         "pipeline": {"name": "in", "inputs": {"name": {}}, "steps": [
            {"id": "say", "type": "emit", "event": "said", "payload": "{{input.name}}"}]}},
        {"id": "after", "type": "emit", "event": "done", "payload": "{{input.greeting}} {{steps.inner.output.steps.say.output.event}}"}
    ]}"#;
    let o = run(&fake, text);
    assert_eq!(o.status, Status::Failed);
    assert!(o.error.unwrap().contains("the input(s) who are needed"));
    let o = run_with(
        &fake,
        &MemoryJournal::default(),
        text,
        &[("who", json!("Ada"))],
    );
    assert_eq!(o.status, Status::Completed, "{o:?}");
    let emitted = fake.emitted.lock().unwrap().clone();
    assert_eq!(emitted[0], ("said".to_string(), json!("Ada")));
    assert_eq!(emitted[1], ("done".to_string(), json!("hi said")));

    // Cancelled before it starts: nothing runs.
    let p = parse(r#"{"name": "c", "steps": [{"id": "a", "type": "command", "target": "n", "command": "x/y"}]}"#).unwrap();
    let fake = Fake::default();
    let journal = MemoryJournal::default();
    let cancelled = Run::new(
        &fake,
        &journal,
        BTreeMap::new(),
        HashMap::new(),
        Arc::new(AtomicBool::new(true)),
    );
    let o = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(cancelled.start(&p));
    assert_eq!(o.status, Status::Cancelled);
    assert!(fake.runs.lock().unwrap().is_empty());

    let o = run(
        &Fake::default(),
        r#"{"name": "s", "steps": [{"id": "sh", "type": "shell", "cmd": "rm"}]}"#,
    );
    assert!(o.error.unwrap().contains("shell steps are off"));
}

#[tokio::test]
async fn a_pipeline_past_its_timeout_fails_and_says_so() {
    let text = r#"{"name": "slow", "timeout": "2m",
        "steps": [{"id": "a", "type": "command", "command": "grid/ping", "target": "n1"}]}"#;
    let p = parse(text).unwrap();
    let mesh = Fake::default();
    let run = Run::new(
        &mesh,
        &NoJournal,
        BTreeMap::new(),
        HashMap::new(),
        Arc::default(),
    );
    assert_eq!(
        run.start(&p).await.status,
        Status::Completed,
        "within its time"
    );
    let mesh = Fake {
        past_deadline: true,
        ..Fake::default()
    };
    let cancelled = Arc::new(AtomicBool::new(false));
    let run = Run::new(
        &mesh,
        &NoJournal,
        BTreeMap::new(),
        HashMap::new(),
        cancelled.clone(),
    );
    let out = run.start(&p).await;
    assert_eq!(out.status, Status::Failed);
    assert_eq!(
        out.error.as_deref(),
        Some("the pipeline's timeout (2m) passed")
    );
    assert!(mesh.runs_of("grid/ping").is_empty(), "nothing ran after it");
    assert!(cancelled.load(Ordering::Relaxed));
}

#[tokio::test]
async fn shell_steps_run_only_when_allowed() {
    let text = r#"{"name": "sh", "inputs": {"who": {}},
        "steps": [{"id": "say", "type": "shell", "cmd": "echo", "args": ["hi", "{{input.who}}"]}]}"#;
    let p = parse(text).unwrap();
    let inputs: BTreeMap<String, Value> = [("who".to_string(), json!("class"))].into();
    let mesh = Fake::default();
    let run = Run::new(
        &mesh,
        &NoJournal,
        inputs.clone(),
        HashMap::new(),
        Arc::default(),
    );
    let out = run.start(&p).await;
    assert_eq!(out.status, Status::Failed);
    assert!(out.error.unwrap().contains("[sentinel] shell = true"));
    assert!(mesh.runs_of("shell").is_empty(), "nothing ran");
    let mut run = Run::new(&mesh, &NoJournal, inputs, HashMap::new(), Arc::default());
    run.allow_shell = true;
    let out = run.start(&p).await;
    assert_eq!(out.status, Status::Completed, "{:?}", out.error);
    assert_eq!(out.steps["say"]["output"]["stdout"], "echo hi class");
}

#[test]
fn a_composite_steps_timeout_covers_its_inner_steps() {
    let mesh = Fake {
        expired_up_to: Duration::from_secs(5),
        ..Fake::with_compute(&["a"])
    };
    let o = run(
        &mesh,
        r#"{"name": "p", "steps": [
          {"id": "slow", "type": "loop", "count": 3, "timeout": "2s",
           "steps": [{"id": "s", "type": "command", "command": "x/y", "placement": {"least_loaded": true}}]},
          {"id": "after", "type": "emit", "event": "never"}]}"#,
    );
    assert_eq!(o.status, Status::Failed, "{o:?}");
    assert_eq!(o.steps["slow"]["status"], "failed", "{o:?}");
    assert_eq!(
        o.error.as_deref(),
        Some("step \"slow\": the step's timeout (2s) passed")
    );
    assert!(!o.steps.contains_key("after"), "{o:?}");
    // A timeout that does not run out changes nothing.
    let o = run(
        &mesh,
        r#"{"name": "p", "steps": [
          {"id": "fine", "type": "parallel", "timeout": "60s",
           "branches": [[{"id": "s", "type": "command", "command": "x/y", "placement": {"least_loaded": true}}]]}]}"#,
    );
    assert_eq!(o.status, Status::Completed, "{o:?}");
}
