//! What a pipeline file says. JSON, validated as it is read: an unknown field, a wrong
//! type or a missing field is an error naming the field's path (`steps[2].placement`),
//! never a pipeline that half-runs. [`crate::validate`] checks what types cannot (ids,
//! references, caps).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The largest pipeline file read.
pub const MAX_FILE: usize = 1 << 20;
/// How long a `watch` step waits by default (the origin design's 300 s).
pub const DEFAULT_WATCH: Duration = Duration::from_secs(300);
/// The most iterations a loop may run (the origin design's cap).
pub const MAX_ITERATIONS: u64 = 10_000;

/// Why a pipeline file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Larger than [`MAX_FILE`].
    #[error("the pipeline is {0} bytes; at most {MAX_FILE}")]
    TooLarge(usize),
    /// Not a pipeline: the path of the field at fault and why.
    #[error("{path}: {reason}")]
    Parse {
        /// Where (`steps[2].placement.ram_mb`; `.` for the whole document).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A pipeline.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// The inputs it takes (`{{input.<name>}}`), with defaults.
    #[serde(default)]
    pub inputs: BTreeMap<String, Input>,
    /// The longest it may run.
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
    /// What it does, in order.
    pub steps: Vec<Step>,
}

/// An input a pipeline takes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Its value when none is given (none: the input is required).
    #[serde(default)]
    pub default: Option<Value>,
}

/// One step: what every step has, and what its type adds.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Its id (`{{steps.<id>.output}}`), unique in the pipeline.
    pub id: String,
    /// The longest it may take (a `watch` waits [`DEFAULT_WATCH`] without one).
    pub timeout: Option<Duration>,
    /// How often it is tried again after it failed (a lost peer is not a failure: the
    /// step is placed again).
    pub retries: u32,
    /// What it does.
    pub kind: StepKind,
}

/// Where a step runs when it does not name a node: what it needs.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// RAM the job needs, MB.
    #[serde(default)]
    pub ram_mb: Option<u32>,
    /// It needs a GPU.
    #[serde(default)]
    pub gpu: bool,
    /// The least loaded node that fits.
    #[serde(default)]
    pub least_loaded: bool,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Run a grid command.
    Command(CommandStep),
    /// Generate text (`ai/generate`).
    Llm(LlmStep),
    /// Emit an event.
    Emit(EmitStep),
    /// Wait for an event.
    Watch(WatchStep),
    /// Steps run on a condition.
    Condition(ConditionStep),
    /// Steps run again and again.
    Loop(LoopStep),
    /// Branches run at once.
    Parallel(ParallelStep),
    /// A pipeline inside this one.
    Sentinel(SentinelStep),
    /// A program on the runner's machine (only where its owner turned shell steps on).
    Shell(ShellStep),
}

/// Run a grid command.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandStep {
    /// `domain/action`.
    pub command: String,
    /// Its params (interpolated).
    #[serde(default)]
    pub params: Value,
    /// The node (a `grid.node` hash or a routing hint).
    #[serde(default)]
    pub target: Option<String>,
    /// Or what the node must offer.
    #[serde(default)]
    pub placement: Option<Placement>,
}

/// Generate text (`ai/generate`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmStep {
    /// The prompt (interpolated).
    pub prompt: String,
    /// An adapter by content hash or name.
    #[serde(default)]
    pub adapter: Option<String>,
    /// Or a skill by description (searched as `grid ask` does).
    #[serde(default)]
    pub skill: Option<String>,
    /// The most tokens.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Sampling temperature.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// The node.
    #[serde(default)]
    pub target: Option<String>,
    /// Or what it must offer.
    #[serde(default)]
    pub placement: Option<Placement>,
}

/// Emit an event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmitStep {
    /// Its name (interpolated).
    pub event: String,
    /// Its payload (interpolated).
    #[serde(default)]
    pub payload: Value,
}

/// Wait for an event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchStep {
    /// A name or glob (`demo:*`).
    pub event: String,
    /// Only from this node.
    #[serde(default)]
    pub node: Option<String>,
}

/// Steps run on a condition.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionStep {
    /// The condition (`{{steps.a.output.score}} >= 0.7`).
    #[serde(rename = "if")]
    pub when: String,
    /// Run when it holds.
    #[serde(default)]
    pub then: Vec<Step>,
    /// Run when it does not.
    #[serde(default, rename = "else")]
    pub otherwise: Vec<Step>,
}

/// Steps run again and again.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopStep {
    /// This many times.
    #[serde(default)]
    pub count: Option<u64>,
    /// While this holds (checked before each pass).
    #[serde(default, rename = "while")]
    pub while_: Option<String>,
    /// Until this holds (checked after each pass): a retry.
    #[serde(default)]
    pub until: Option<String>,
    /// At most this many passes ([`MAX_ITERATIONS`] at most, and by default).
    #[serde(default)]
    pub max_iterations: Option<u64>,
    /// The steps of a pass.
    pub steps: Vec<Step>,
}

/// Branches run at once.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParallelStep {
    /// The branches, each a list of steps.
    pub branches: Vec<Vec<Step>>,
    /// Stop the others when one fails.
    #[serde(default)]
    pub fail_fast: bool,
}

/// A pipeline inside this one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelStep {
    /// The pipeline.
    pub pipeline: Box<Pipeline>,
    /// Its inputs (interpolated).
    #[serde(default)]
    pub inputs: BTreeMap<String, Value>,
}

/// A program on the runner's machine (only where its owner turned shell steps on).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellStep {
    /// The program.
    pub cmd: String,
    /// Its arguments (interpolated).
    #[serde(default)]
    pub args: Vec<String>,
    /// Where it runs.
    #[serde(default)]
    pub working_dir: Option<String>,
}

impl StepKind {
    /// The type's name, as the file spells it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Command(_) => "command",
            StepKind::Llm(_) => "llm",
            StepKind::Emit(_) => "emit",
            StepKind::Watch(_) => "watch",
            StepKind::Condition(_) => "condition",
            StepKind::Loop(_) => "loop",
            StepKind::Parallel(_) => "parallel",
            StepKind::Sentinel(_) => "sentinel",
            StepKind::Shell(_) => "shell",
        }
    }
}

fn default_max_tokens() -> u32 {
    256
}

fn default_temperature() -> f32 {
    0.7
}

/// A duration as seconds (a number) or as text (`"90s"`, `"5m"`, `"1h 30m"`).
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
            .map(|s| Some(Duration::from_secs_f64(s)))
            .ok_or_else(|| D::Error::custom(format!("{n} is not a positive number of seconds"))),
        Some(Value::String(s)) => humantime::parse_duration(&s).map(Some).map_err(|e| {
            D::Error::custom(format!(
                "\"{s}\" is not a duration ({e}): say \"90s\" or \"5m\""
            ))
        }),
        Some(other) => Err(D::Error::custom(format!(
            "{other} is not a duration: say \"90s\", \"5m\" or a number of seconds"
        ))),
    }
}

/// The fields every step has, read apart from its type's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Common {
    id: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    timeout: Option<Duration>,
    #[serde(default)]
    retries: u32,
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Step, D::Error> {
        use serde::de::Error;
        let mut map = serde_json::Map::deserialize(d)?;
        let mut common = serde_json::Map::new();
        for key in ["id", "timeout", "retries"] {
            if let Some(v) = map.remove(key) {
                common.insert(key.into(), v);
            }
        }
        let common: Common = inner(Value::Object(common)).map_err(D::Error::custom)?;
        let id = common.id.ok_or_else(|| D::Error::missing_field("id"))?;
        let kind = match map.remove("type") {
            Some(Value::String(t)) => kind(&t, Value::Object(map)).map_err(D::Error::custom)?,
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "{MARK}type{MARK}{other} is not a step type"
                )))
            }
            None => return Err(D::Error::missing_field("type")),
        };
        Ok(Step {
            id,
            timeout: common.timeout,
            retries: common.retries,
            kind,
        })
    }
}

/// Marks an error that carries the path inside a step (`\u{1}placement.ram_mb\u{1}why`),
/// so the step's own path can be put in front of it.
const MARK: char = '\u{1}';

/// `path` joined with the path an error from inside it carries, and the reason.
fn join(path: &str, error: &str) -> (String, String) {
    let (inside, reason) = match error.strip_prefix(MARK).and_then(|r| r.split_once(MARK)) {
        Some((inside, reason)) => (inside, reason),
        None => ("", error),
    };
    let inside = if inside == "." { "" } else { inside };
    let path = match (path, inside) {
        (".", "") | ("", "") => ".".to_string(),
        (".", i) | ("", i) => i.to_string(),
        (p, "") => p.to_string(),
        (p, i) if i.starts_with('[') => format!("{p}{i}"),
        (p, i) => format!("{p}.{i}"),
    };
    (path, reason.to_string())
}

/// Read `v` as `T`; an error carries the path inside `v` behind [`MARK`].
fn inner<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let (path, reason) = join(&e.path().to_string(), &e.inner().to_string());
        format!("{MARK}{path}{MARK}{reason}")
    })
}

/// The step of type `t` from the rest of its fields.
fn kind(t: &str, v: Value) -> Result<StepKind, String> {
    match t {
        "command" => inner(v).map(StepKind::Command),
        "llm" => inner(v).map(StepKind::Llm),
        "emit" => inner(v).map(StepKind::Emit),
        "watch" => inner(v).map(StepKind::Watch),
        "condition" => inner(v).map(StepKind::Condition),
        "loop" => inner(v).map(StepKind::Loop),
        "parallel" => inner(v).map(StepKind::Parallel),
        "sentinel" => inner(v).map(StepKind::Sentinel),
        "shell" => inner(v).map(StepKind::Shell),
        other => Err(format!(
            "{MARK}type{MARK}unknown step type `{other}`: command, llm, emit, watch, condition, loop, parallel, sentinel or shell"
        )),
    }
}

/// Read a pipeline file's text.
pub fn parse(text: &str) -> Result<Pipeline, FormatError> {
    if text.len() > MAX_FILE {
        return Err(FormatError::TooLarge(text.len()));
    }
    let d = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(d).map_err(|e| {
        let (path, reason) = join(&e.path().to_string(), &e.inner().to_string());
        FormatError::Parse { path, reason }
    })
}

#[cfg(test)]
mod tests;
