use super::*;
use crate::format::parse;

fn problems(text: &str) -> Vec<String> {
    match validate(&parse(text).unwrap()) {
        Ok(()) => Vec::new(),
        Err(v) => v.into_iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn a_good_pipeline_passes() {
    let p = problems(
        r#"{"name": "grade", "inputs": {"essays": {}},
        "steps": [
          {"id": "each", "type": "loop", "count": 3, "steps": [
            {"id": "g", "type": "llm", "prompt": "grade {{input.essays[loop.each]}} #{{loop.each.index}}", "skill": "grading essays",
             "placement": {"ram_mb": 512, "least_loaded": true}}]},
          {"id": "check", "type": "condition", "if": "{{steps.g.output.score}} >= 0.7",
           "then": [{"id": "ok", "type": "emit", "event": "graded", "payload": {"by": "{{steps.g.node}}"}}]},
          {"id": "retry", "type": "loop", "until": "{{steps.ping.status}} == completed", "max_iterations": 5,
           "steps": [{"id": "ping", "type": "command", "command": "grid/ping", "target": "least-loaded"}]}
        ]}"#,
    );
    assert!(p.is_empty(), "{p:?}");
}

#[test]
fn every_problem_is_named_with_its_path() {
    let p = problems(
        r#"{"name": "", "inputs": {"bad name": {}},
        "steps": [
          {"id": "a", "type": "command", "command": "grid ping", "target": "x", "placement": {"gpu": true}},
          {"id": "a", "type": "emit", "event": "{{steps.nobody.output}}"},
          {"id": "b c", "type": "llm", "prompt": " ", "adapter": "x", "skill": "y", "max_tokens": 0, "temperature": 3},
          {"id": "l", "type": "loop", "count": 2, "until": "x", "steps": []},
          {"id": "m", "type": "loop", "steps": [{"id": "m1", "type": "emit", "event": "{{input.nope}}"}]},
          {"id": "p", "type": "parallel", "branches": [[]]},
          {"id": "c", "type": "condition", "if": "{{loop.c.index}} > 1", "then": []},
          {"id": "r", "type": "command", "command": "x/y", "retries": 11, "placement": {}}
        ]}"#,
    );
    let want = [
        "name: a name of 1 to 128 printable characters",
        "inputs.bad name: an input's name",
        "steps[0].command: a command is `domain/action`",
        "steps[0]: give \"target\" (a node) or \"placement\"",
        "steps[1].id: the id \"a\" is used twice",
        "steps[1].event: no step has the id \"nobody\"",
        "steps[2].id: \"b c\" is not an id",
        "steps[2].prompt: an empty prompt",
        "steps[2]: give \"adapter\" or \"skill\", not both",
        "steps[2].max_tokens: 1 to 4096",
        "steps[2].temperature: 0 to 2",
        "steps[3]: give one of \"count\", \"while\" and \"until\"",
        "steps[3].steps: a loop with no steps",
        "steps[4]: a loop needs",
        "steps[4].steps[0].event: no input \"nope\" is declared",
        "steps[5].branches[0]: an empty branch",
        "steps[6].if: no loop step has the id \"c\"",
        "steps[7].retries: at most 10",
    ];
    for w in want {
        assert!(
            p.iter().any(|x| x.starts_with(w)),
            "missing {w:?} in {p:#?}"
        );
    }
    assert_eq!(p.len(), MAX_PROBLEMS.min(want.len() + 1), "{p:#?}");
}

#[test]
fn inner_pipelines_are_checked_and_caps_hold() {
    let p = problems(
        r#"{"name": "outer", "steps": [
          {"id": "s", "type": "sentinel", "pipeline": {"name": "inner", "inputs": {"who": {}},
             "steps": [{"id": "x", "type": "emit", "event": "{{steps.s.output}}"}]}}
        ]}"#,
    );
    assert!(
        p.iter()
            .any(|x| x.starts_with("steps[0].pipeline.steps[0].event: no step has the id \"s\"")),
        "an inner pipeline has its own names: {p:?}"
    );
    assert!(
        p.iter().any(|x| x.contains("needs the input \"who\"")),
        "{p:?}"
    );

    // Nesting deeper than the cap.
    let mut inner = r#"{"id": "leaf", "type": "emit", "event": "e"}"#.to_string();
    for i in 0..=MAX_DEPTH {
        inner = format!(r#"{{"id": "c{i}", "type": "condition", "if": "1", "then": [{inner}]}}"#);
    }
    let p = problems(&format!(r#"{{"name": "deep", "steps": [{inner}]}}"#));
    assert!(p.iter().any(|x| x.contains("may nest")), "{p:?}");

    // More steps than the cap.
    let steps: Vec<String> = (0..=MAX_STEPS)
        .map(|i| format!(r#"{{"id": "s{i}", "type": "emit", "event": "e"}}"#))
        .collect();
    let p = problems(&format!(
        r#"{{"name": "big", "steps": [{}]}}"#,
        steps.join(",")
    ));
    assert!(p.iter().any(|x| x.contains("may hold 1000 steps")), "{p:?}");
}

#[test]
fn a_loop_index_names_a_loop_the_pipeline_has() {
    let p = problems(
        r#"{"name": "x", "inputs": {"essays": {}},
        "steps": [{"id": "e", "type": "emit", "event": "a", "payload": "{{input.essays[loop.each]}}"}]}"#,
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].contains("steps[0].payload") && p[0].contains("no loop step has the id \"each\""),
        "{p:?}"
    );
}
