use super::*;

const DEMO: &str = r#"{"name": "demo", "steps": [
  {"id": "ping", "type": "command", "target": "0123456789abcdef0123456789abcdef", "command": "grid/ping", "params": {}},
  {"id": "done", "type": "emit", "event": "demo:done", "payload": {"node": "{{steps.ping.output.node}}"}}
]}"#;

#[test]
fn the_minimal_pipeline_reads() {
    let p = parse(DEMO).unwrap();
    assert_eq!(p.name, "demo");
    assert_eq!(p.steps.len(), 2);
    assert_eq!(p.steps[0].id, "ping");
    assert!(
        matches!(&p.steps[0].kind, StepKind::Command(CommandStep { command, target: Some(_), .. }) if command == "grid/ping")
    );
    assert!(
        matches!(&p.steps[1].kind, StepKind::Emit(EmitStep { event, .. }) if event == "demo:done")
    );
}

#[test]
fn every_step_type_reads_with_its_fields() {
    let text = r#"{"name": "all", "timeout": "30m", "inputs": {"essays": {"default": []}},
      "steps": [
        {"id": "a", "type": "llm", "prompt": "grade {{input.essays}}", "skill": "grading", "retries": 2, "timeout": 60,
         "placement": {"ram_mb": 512, "least_loaded": true}},
        {"id": "b", "type": "watch", "event": "grade:*"},
        {"id": "c", "type": "condition", "if": "{{steps.a.output.score}} >= 0.7",
         "then": [{"id": "c1", "type": "emit", "event": "ok"}], "else": []},
        {"id": "d", "type": "loop", "until": "{{steps.d1.status}} == completed", "max_iterations": 5,
         "steps": [{"id": "d1", "type": "command", "command": "grid/ping"}]},
        {"id": "e", "type": "parallel", "fail_fast": true,
         "branches": [[{"id": "e1", "type": "emit", "event": "x"}], [{"id": "e2", "type": "emit", "event": "y"}]]},
        {"id": "f", "type": "sentinel", "pipeline": {"name": "inner", "steps": []}},
        {"id": "g", "type": "shell", "cmd": "echo", "args": ["hi"]}
      ]}"#;
    let p = parse(text).unwrap();
    assert_eq!(p.timeout, Some(Duration::from_secs(1800)));
    let kinds: Vec<&str> = p.steps.iter().map(|s| s.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "llm",
            "watch",
            "condition",
            "loop",
            "parallel",
            "sentinel",
            "shell"
        ]
    );
    assert_eq!(p.steps[0].retries, 2);
    assert_eq!(p.steps[0].timeout, Some(Duration::from_secs(60)));
    match &p.steps[0].kind {
        StepKind::Llm(LlmStep {
            max_tokens,
            temperature,
            placement: Some(pl),
            ..
        }) => {
            assert_eq!((*max_tokens, *temperature), (256, 0.7));
            assert_eq!(pl.ram_mb, Some(512));
            assert!(pl.least_loaded);
        }
        other => panic!("{other:?}"),
    }
}

/// The error's path and the start of its reason.
fn error(text: &str) -> (String, String) {
    match parse(text) {
        Err(FormatError::Parse { path, reason }) => (path, reason),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn errors_name_the_path_of_the_bad_field() {
    let (path, reason) = error(r#"{"name": "x", "steps": [{"id": "a", "type": "command"}]}"#);
    assert_eq!(path, "steps[0]");
    assert!(reason.contains("missing field `command`"), "{reason}");

    let (path, reason) = error(
        r#"{"name": "x", "steps": [{"id": "a", "type": "emit", "event": "e"},
            {"id": "b", "type": "command", "command": "c", "placement": {"ram_mb": "lots"}}]}"#,
    );
    assert_eq!(path, "steps[1].placement.ram_mb");
    assert!(reason.contains("invalid type"), "{reason}");

    let (path, reason) = error(
        r#"{"name": "x", "steps": [{"id": "c", "type": "condition", "if": "1",
            "then": [{"id": "d", "type": "emit", "evnt": "typo"}]}]}"#,
    );
    assert_eq!(path, "steps[0].then[0].evnt");
    assert!(reason.contains("unknown field `evnt`"), "{reason}");

    let (path, reason) = error(r#"{"name": "x", "steps": [{"id": "a", "type": "teleport"}]}"#);
    assert_eq!(path, "steps[0].type");
    assert!(reason.contains("unknown step type `teleport`"), "{reason}");

    let (path, reason) = error(r#"{"name": "x", "steps": [{"type": "emit", "event": "e"}]}"#);
    assert_eq!(path, "steps[0]");
    assert!(reason.contains("missing field `id`"), "{reason}");

    let (path, reason) = error(r#"{"name": "x", "timeout": "soon", "steps": []}"#);
    assert_eq!(path, "timeout");
    assert!(reason.contains("not a duration"), "{reason}");

    let (path, _) = error(r#"{"steps": []}"#);
    assert_eq!(path, ".");
    let (path, _) = error("not json");
    assert_eq!(path, ".");
    assert_eq!(
        parse(&" ".repeat(MAX_FILE + 1)),
        Err(FormatError::TooLarge(MAX_FILE + 1))
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = parse(&text);
    }
}
