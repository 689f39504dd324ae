use super::*;
use serde_json::json;
use std::collections::HashMap;

#[derive(Default)]
struct Run {
    steps: HashMap<String, Value>,
    inputs: HashMap<String, Value>,
    env: HashMap<String, String>,
    loops: HashMap<String, u64>,
}

impl Scope for Run {
    fn step(&self, id: &str) -> Option<Value> {
        self.steps.get(id).cloned()
    }
    fn input(&self, name: &str) -> Option<Value> {
        self.inputs.get(name).cloned()
    }
    fn env(&self, var: &str) -> Option<String> {
        self.env.get(var).cloned()
    }
    fn loop_index(&self, id: &str) -> Option<u64> {
        self.loops.get(id).copied()
    }
}

fn run() -> Run {
    let mut r = Run::default();
    r.steps.insert(
        "grade".into(),
        json!({"status": "completed", "node": "ab12",
               "output": {"score": 0.75, "notes": ["clear", "short"], "who": {"name": "Ada"}}}),
    );
    r.inputs.insert("class".into(), json!("7b"));
    r.env.insert("HOME".into(), "/home/t".into());
    r.loops.insert("retry".into(), 2);
    r
}

#[test]
fn a_lone_placeholder_keeps_its_type_and_text_gets_text() {
    let r = run();
    assert_eq!(
        interpolate_str("{{steps.grade.output.score}}", &r),
        Ok(json!(0.75))
    );
    assert_eq!(
        interpolate_str("{{ steps.grade.output.notes }}", &r),
        Ok(json!(["clear", "short"]))
    );
    assert_eq!(
        interpolate_str("{{steps.grade.output.who.name}} in {{input.class}} scored {{steps.grade.output.score}}; notes {{steps.grade.output.notes}}", &r),
        Ok(json!("Ada in 7b scored 0.75; notes [\"clear\",\"short\"]"))
    );
    assert_eq!(
        interpolate_str("{{steps.grade.output.notes[1]}}", &r),
        Ok(json!("short"))
    );
    assert_eq!(
        interpolate_str("{{env.HOME}}/x", &r),
        Ok(json!("/home/t/x"))
    );
    assert_eq!(
        interpolate_str("pass {{loop.retry.index}}", &r),
        Ok(json!("pass 2"))
    );
    assert_eq!(
        interpolate_str("no placeholders", &r),
        Ok(json!("no placeholders"))
    );
    let v = interpolate(
        &json!({"a": ["{{input.class}}", 3, {"b": "{{steps.grade.status}}"}]}),
        &r,
    );
    assert_eq!(v, Ok(json!({"a": ["7b", 3, {"b": "completed"}]})));
}

#[test]
fn unknown_references_say_what_is_missing() {
    let r = run();
    let e = |s: &str| interpolate_str(s, &r).unwrap_err().to_string();
    assert!(
        e("{{steps.later.output}}").contains("step \"later\" has not run"),
        "{}",
        e("{{steps.later.output}}")
    );
    assert!(e("{{steps.grade.output.nope}}").contains("no field \"nope\""));
    assert!(e("{{steps.grade.output.notes[5]}}").contains("index 5 of an array of 2"));
    assert!(e("{{steps.grade.output.score.x}}").contains("field \"x\" of a number"));
    assert!(e("{{input.missing}}").contains("no input \"missing\""));
    assert!(e("{{env.NOPE}}").contains("$NOPE is not set"));
    for bad in [
        "{{steps}}",
        "{{nothing.x}}",
        "{{steps.a..b}}",
        "{{steps.a[x]}}",
        "{{env.A.b}}",
        "{{loop.a}}",
        "{{steps.a",
        "{{steps.a b}}",
    ] {
        assert!(
            matches!(interpolate_str(bad, &r), Err(InterpolateError::Syntax(..))),
            "{bad} should not parse"
        );
    }
}

#[test]
fn text_from_steps_is_looked_at_again_but_never_for_the_environment() {
    let mut r = run();
    r.env.insert("SECRET".into(), "hunter2".into());
    r.steps.insert(
        "peer".into(),
        json!({"output": "class {{input.class}} and {{env.SECRET}}"}),
    );
    // The peer's answer brings a placeholder: inputs resolve, the environment does not.
    assert_eq!(
        interpolate_str("got: {{steps.peer.output}}", &r),
        Ok(json!("got: class 7b and {{env.SECRET}}"))
    );
    // The pipeline's own text may read it.
    assert_eq!(interpolate_str("{{env.SECRET}}", &r), Ok(json!("hunter2")));
}

#[test]
fn doubling_placeholders_stop_at_the_size_cap() {
    let mut r = run();
    let big = "x".repeat(MAX_RESULT / 8);
    r.steps.insert(
        "grow".into(),
        json!({"output": format!("{big}{{{{steps.grow.output}}}}{{{{steps.grow.output}}}}")}),
    );
    assert_eq!(
        interpolate_str("{{steps.grow.output}}{{steps.grow.output}}", &r),
        Err(InterpolateError::TooLarge)
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_templates_never_panic(s in "\\PC{0,200}") {
        let _ = interpolate_str(&s, &run());
        let _ = references(&s);
    }
}

#[test]
fn a_loop_s_pass_indexes_an_array() {
    let mut r = run();
    r.inputs
        .insert("essays".into(), json!(["first", "second", "third"]));
    let v = interpolate_str("Grade: {{input.essays[loop.retry]}}", &r).unwrap();
    assert_eq!(v, json!("Grade: third"));
    let v = interpolate_str("{{steps.grade.output.notes[loop.retry.index]}}", &r);
    assert!(
        matches!(&v, Err(InterpolateError::Unknown(_, why)) if why.contains("index 2 of an array of 2")),
        "{v:?}"
    );
    let v = interpolate_str("{{input.essays[loop.nothing]}}", &r);
    assert!(
        matches!(&v, Err(InterpolateError::Unknown(_, why)) if why.contains("no loop \"nothing\"")),
        "{v:?}"
    );
    assert!(matches!(
        parse_reference("input.essays[loop.]"),
        Err(InterpolateError::Syntax(..))
    ));
    assert_eq!(
        parse_reference("input.essays[loop.each]").unwrap().path,
        vec![Segment::LoopIndex("each".into())]
    );
}
