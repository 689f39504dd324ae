//! What a pipeline must be before it runs, beyond what its types say: ids unique and
//! well formed, every reference naming a step, an input or a loop the pipeline has, caps
//! on size, nesting, retries and loops, and one way to say where a step runs. All
//! problems are reported together (up to [`MAX_PROBLEMS`]), each with its path.

use std::collections::HashSet;

use serde_json::Value;

use crate::format::{
    CommandStep, ConditionStep, EmitStep, LlmStep, LoopStep, ParallelStep, Pipeline, Placement,
    SentinelStep, ShellStep, Step, StepKind, WatchStep, MAX_ITERATIONS,
};
use crate::interpolate::{references, Root, Segment};

/// Steps a pipeline may hold, nested ones included.
pub const MAX_STEPS: usize = 1000;
/// How deep steps may nest (conditions, loops, branches, inner pipelines).
pub const MAX_DEPTH: usize = 8;
/// Retries a step may ask for.
pub const MAX_RETRIES: u32 = 10;
/// Branches a parallel step may have.
pub const MAX_BRANCHES: usize = 64;
/// Problems reported at most.
pub const MAX_PROBLEMS: usize = 20;

/// One problem with a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Invalid {
    /// Where (`steps[1].then[0].id`).
    pub path: String,
    /// What is wrong and what would be right.
    pub reason: String,
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What a pipeline names, for references to be checked against.
#[derive(Default)]
struct Names {
    steps: HashSet<String>,
    loops: HashSet<String>,
    inputs: HashSet<String>,
}

struct Check<'a> {
    names: &'a Names,
    problems: Vec<Invalid>,
    count: usize,
    seen: HashSet<String>,
}

impl Check<'_> {
    fn bad(&mut self, path: &str, reason: impl Into<String>) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Invalid {
                path: path.to_string(),
                reason: reason.into(),
            });
        }
    }

    /// The references in a template string.
    fn template(&mut self, path: &str, s: &str) {
        match references(s) {
            Err(e) => self.bad(path, e.to_string()),
            Ok(refs) => {
                for r in refs {
                    let missing = match &r.root {
                        Root::Step(id) if !self.names.steps.contains(id) => {
                            Some(format!("no step has the id \"{id}\""))
                        }
                        Root::Input(n) if !self.names.inputs.contains(n) => Some(format!(
                            "no input \"{n}\" is declared (add it under \"inputs\")"
                        )),
                        Root::Loop(id) if !self.names.loops.contains(id) => {
                            Some(format!("no loop step has the id \"{id}\""))
                        }
                        _ => None,
                    };
                    if let Some(m) = missing {
                        self.bad(path, m);
                    }
                    for seg in &r.path {
                        if let Segment::LoopIndex(id) = seg {
                            if !self.names.loops.contains(id) {
                                self.bad(path, format!("no loop step has the id \"{id}\""));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Every string inside a JSON value.
    fn json(&mut self, path: &str, v: &Value) {
        match v {
            Value::String(s) => self.template(path, s),
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    self.json(&format!("{path}[{i}]"), x);
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    self.json(&format!("{path}.{k}"), x);
                }
            }
            _ => {}
        }
    }

    fn placement(&mut self, path: &str, target: &Option<String>, placement: &Option<Placement>) {
        match (target, placement) {
            (Some(_), Some(_)) => self.bad(
                path,
                "give \"target\" (a node) or \"placement\" (what it needs), not both",
            ),
            (Some(t), None) => self.template(&format!("{path}.target"), t),
            (None, Some(p)) if p.ram_mb.is_none() && !p.gpu && !p.least_loaded => self.bad(
                &format!("{path}.placement"),
                "say what the node needs: ram_mb, gpu or least_loaded",
            ),
            _ => {}
        }
    }

    fn steps(&mut self, path: &str, steps: &[Step], depth: usize) {
        for (i, step) in steps.iter().enumerate() {
            self.step(&format!("{path}[{i}]"), step, depth);
        }
    }

    fn step(&mut self, path: &str, step: &Step, depth: usize) {
        self.count += 1;
        if self.count == MAX_STEPS + 1 {
            self.bad(path, format!("a pipeline may hold {MAX_STEPS} steps"));
        }
        if depth > MAX_DEPTH {
            self.bad(path, format!("steps may nest {MAX_DEPTH} deep"));
            return;
        }
        if !name_ok(&step.id) {
            self.bad(
                &format!("{path}.id"),
                format!(
                    "\"{}\" is not an id: 1 to 64 letters, digits, `_` or `-`",
                    step.id
                ),
            );
        } else if !self.seen.insert(step.id.clone()) {
            self.bad(
                &format!("{path}.id"),
                format!("the id \"{}\" is used twice", step.id),
            );
        }
        if step.retries > MAX_RETRIES {
            self.bad(&format!("{path}.retries"), format!("at most {MAX_RETRIES}"));
        }
        match &step.kind {
            StepKind::Command(CommandStep {
                command,
                params,
                target,
                placement,
            }) => {
                if command.is_empty()
                    || command.len() > 128
                    || command.chars().any(char::is_whitespace)
                {
                    self.bad(
                        &format!("{path}.command"),
                        "a command is `domain/action`, without spaces",
                    );
                }
                self.json(&format!("{path}.params"), params);
                self.placement(path, target, placement);
            }
            StepKind::Llm(LlmStep {
                prompt,
                adapter,
                skill,
                max_tokens,
                temperature,
                target,
                placement,
                ..
            }) => {
                if prompt.trim().is_empty() {
                    self.bad(&format!("{path}.prompt"), "an empty prompt");
                }
                self.template(&format!("{path}.prompt"), prompt);
                if adapter.is_some() && skill.is_some() {
                    self.bad(path, "give \"adapter\" or \"skill\", not both");
                }
                if let Some(s) = skill {
                    self.template(&format!("{path}.skill"), s);
                }
                if !(1..=4096).contains(max_tokens) {
                    self.bad(&format!("{path}.max_tokens"), "1 to 4096");
                }
                if !(0.0..=2.0).contains(temperature) {
                    self.bad(&format!("{path}.temperature"), "0 to 2");
                }
                self.placement(path, target, placement);
            }
            StepKind::Emit(EmitStep { event, payload }) => {
                if event.trim().is_empty() {
                    self.bad(&format!("{path}.event"), "an empty event name");
                }
                self.template(&format!("{path}.event"), event);
                self.json(&format!("{path}.payload"), payload);
            }
            StepKind::Watch(WatchStep { event, node }) => {
                if event.trim().is_empty() {
                    self.bad(&format!("{path}.event"), "an empty event pattern");
                }
                if let Some(n) = node {
                    self.template(&format!("{path}.node"), n);
                }
            }
            StepKind::Condition(ConditionStep {
                when,
                then,
                otherwise,
            }) => {
                if when.trim().is_empty() {
                    self.bad(&format!("{path}.if"), "an empty condition");
                }
                self.template(&format!("{path}.if"), when);
                self.steps(&format!("{path}.then"), then, depth + 1);
                self.steps(&format!("{path}.else"), otherwise, depth + 1);
            }
            StepKind::Loop(LoopStep {
                count,
                while_,
                until,
                max_iterations,
                steps,
            }) => {
                let ways = [count.is_some(), while_.is_some(), until.is_some()]
                    .iter()
                    .filter(|w| **w)
                    .count();
                if ways > 1 {
                    self.bad(path, "give one of \"count\", \"while\" and \"until\"");
                }
                if ways == 0 && max_iterations.is_none() {
                    self.bad(
                        path,
                        "a loop needs \"count\", \"while\", \"until\" or at least \"max_iterations\"",
                    );
                }
                for (key, n) in [("count", count), ("max_iterations", max_iterations)] {
                    if let Some(n) = n {
                        if *n == 0 || *n > MAX_ITERATIONS {
                            self.bad(&format!("{path}.{key}"), format!("1 to {MAX_ITERATIONS}"));
                        }
                    }
                }
                if let Some(c) = while_ {
                    self.template(&format!("{path}.while"), c);
                }
                if let Some(c) = until {
                    self.template(&format!("{path}.until"), c);
                }
                if steps.is_empty() {
                    self.bad(&format!("{path}.steps"), "a loop with no steps");
                }
                self.steps(&format!("{path}.steps"), steps, depth + 1);
            }
            StepKind::Parallel(ParallelStep { branches, .. }) => {
                if branches.is_empty() || branches.len() > MAX_BRANCHES {
                    self.bad(
                        &format!("{path}.branches"),
                        format!("1 to {MAX_BRANCHES} branches"),
                    );
                }
                for (b, branch) in branches.iter().enumerate() {
                    let bp = format!("{path}.branches[{b}]");
                    if branch.is_empty() {
                        self.bad(&bp, "an empty branch");
                    }
                    self.steps(&bp, branch, depth + 1);
                }
            }
            StepKind::Sentinel(SentinelStep { pipeline, inputs }) => {
                for (k, v) in inputs {
                    self.json(&format!("{path}.inputs.{k}"), v);
                }
                let inner = format!("{path}.pipeline");
                if let Err(problems) = check(pipeline, &inner, depth + 1) {
                    for p in problems {
                        if self.problems.len() < MAX_PROBLEMS {
                            self.problems.push(p);
                        }
                    }
                }
                for name in pipeline.inputs.keys() {
                    let declared = pipeline.inputs[name].default.is_some();
                    if !declared && !inputs.contains_key(name) {
                        self.bad(
                            &format!("{path}.inputs"),
                            format!("the inner pipeline needs the input \"{name}\""),
                        );
                    }
                }
            }
            StepKind::Shell(ShellStep {
                cmd,
                args,
                working_dir,
            }) => {
                if cmd.trim().is_empty() {
                    self.bad(&format!("{path}.cmd"), "an empty program");
                }
                for (i, a) in args.iter().enumerate() {
                    self.template(&format!("{path}.args[{i}]"), a);
                }
                if let Some(d) = working_dir {
                    self.template(&format!("{path}.working_dir"), d);
                }
            }
        }
    }
}

/// Every step id and loop id in `steps`, nested ones included (not inner pipelines').
fn collect(steps: &[Step], names: &mut Names) {
    for s in steps {
        names.steps.insert(s.id.clone());
        match &s.kind {
            StepKind::Condition(ConditionStep {
                then, otherwise, ..
            }) => {
                collect(then, names);
                collect(otherwise, names);
            }
            StepKind::Loop(LoopStep { steps, .. }) => {
                names.loops.insert(s.id.clone());
                collect(steps, names);
            }
            StepKind::Parallel(ParallelStep { branches, .. }) => {
                for b in branches {
                    collect(b, names);
                }
            }
            _ => {}
        }
    }
}

fn check(p: &Pipeline, path: &str, depth: usize) -> Result<(), Vec<Invalid>> {
    let mut names = Names::default();
    collect(&p.steps, &mut names);
    names.inputs = p.inputs.keys().cloned().collect();
    let mut c = Check {
        names: &names,
        problems: Vec::new(),
        count: 0,
        seen: HashSet::new(),
    };
    let at = |field: &str| {
        if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    if p.name.trim().is_empty() || p.name.len() > 128 || p.name.chars().any(char::is_control) {
        c.bad(&at("name"), "a name of 1 to 128 printable characters");
    }
    for name in p.inputs.keys() {
        if !name_ok(name) {
            c.bad(
                &at(&format!("inputs.{name}")),
                "an input's name is 1 to 64 letters, digits, `_` or `-`",
            );
        }
    }
    c.steps(&at("steps"), &p.steps, depth);
    if c.problems.is_empty() {
        Ok(())
    } else {
        Err(c.problems)
    }
}

/// Check a pipeline; every problem found, with its path.
pub fn validate(p: &Pipeline) -> Result<(), Vec<Invalid>> {
    check(p, "", 0)
}

#[cfg(test)]
mod tests;
