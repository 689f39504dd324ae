//! `{{…}}` in a pipeline's strings, replaced at run time by what the run knows:
//!
//! - `{{steps.<id>.output}}`, `{{steps.<id>.output.a[0].b}}`, `{{steps.<id>.status}}`,
//!   `{{steps.<id>.node}}`: a step's record (what it answered, how it ended, where it ran);
//! - `{{input.<name>}}` (and paths into it);
//! - `{{env.<VAR>}}`: the runner's environment;
//! - `{{loop.<id>.index}}`: the pass a loop is in (from 0);
//! - `[loop.<id>]` in a path: the element at that pass, as in
//!   `{{input.essays[loop.each]}}` (one essay per pass of the loop `each`).
//!
//! A string that is one placeholder and nothing else becomes the value itself (a number
//! stays a number, an object an object); a placeholder inside longer text becomes text
//! (strings as they are, anything else as compact JSON). Replaced text is looked at again,
//! at most [`MAX_PASSES`] times in all, for placeholders the first values brought — but
//! `env` is resolved only in the pipeline's own text, never in text that came from a step
//! or an input (a peer's answer must not be able to read the runner's environment). A
//! result larger than [`MAX_RESULT`] is an error, so doubling placeholders cannot grow
//! memory without bound.

use serde_json::Value;

/// Passes over a string at most (the origin design's 5).
pub const MAX_PASSES: usize = 5;
/// The largest text an interpolation may produce.
pub const MAX_RESULT: usize = 4 << 20;

/// Why a placeholder could not be replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InterpolateError {
    /// `{{` without `}}`, or a reference that does not parse.
    #[error("\"{{{{{0}}}}}\" is not a reference: {1}")]
    Syntax(String, &'static str),
    /// The reference names nothing the run has (yet).
    #[error("{{{{{0}}}}}: {1}")]
    Unknown(String, String),
    /// The result grew past [`MAX_RESULT`].
    #[error("interpolation produced more than {MAX_RESULT} bytes")]
    TooLarge,
}

/// Where a reference starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// A step's record.
    Step(String),
    /// An input.
    Input(String),
    /// An environment variable.
    Env(String),
    /// A loop's pass.
    Loop(String),
}

/// One step into a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// An object's field.
    Key(String),
    /// An array's element.
    Index(usize),
    /// An array's element at the pass the loop with this id is in (`[loop.<id>]`).
    LoopIndex(String),
}

/// A parsed `{{…}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Where it starts.
    pub root: Root,
    /// The path from there.
    pub path: Vec<Segment>,
}

/// What a run knows, for references to look up.
pub trait Scope {
    /// A step's record (`{"output": …, "status": …, "node": …}`), once it has one.
    fn step(&self, id: &str) -> Option<Value>;
    /// An input's value.
    fn input(&self, name: &str) -> Option<Value>;
    /// An environment variable.
    fn env(&self, var: &str) -> Option<String>;
    /// The pass the loop `id` is in.
    fn loop_index(&self, id: &str) -> Option<u64>;
}

fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Parse the inside of a `{{…}}`.
pub fn parse_reference(text: &str) -> Result<Reference, InterpolateError> {
    let t = text.trim();
    let bad = |why| InterpolateError::Syntax(t.to_string(), why);
    let mut segments = Vec::new();
    let mut rest = t;
    // The first word, then `.name` and `[n]` steps.
    let first_len = rest.find(['.', '[']).unwrap_or(rest.len());
    segments.push(Segment::Key(rest[..first_len].to_string()));
    rest = &rest[first_len..];
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let len = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..len];
            if key.is_empty() || !key.chars().all(name_char) {
                return Err(bad("a name may hold letters, digits, `_` and `-`"));
            }
            segments.push(Segment::Key(key.to_string()));
            rest = &r[len..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(|| bad("`[` without `]`"))?;
            let inside = r[..end].trim();
            let segment = match inside.strip_prefix("loop.") {
                Some(id) => {
                    let id = id.strip_suffix(".index").unwrap_or(id);
                    if id.is_empty() || !id.chars().all(name_char) {
                        return Err(bad("an index is a number or loop.<id>"));
                    }
                    Segment::LoopIndex(id.to_string())
                }
                None => Segment::Index(
                    inside
                        .parse::<usize>()
                        .map_err(|_| bad("an index is a number or loop.<id>"))?,
                ),
            };
            segments.push(segment);
            rest = &r[end + 1..];
        } else {
            return Err(bad("expected `.name` or `[index]`"));
        }
    }
    let mut it = segments.into_iter();
    let (Some(Segment::Key(root)), Some(Segment::Key(name))) = (it.next(), it.next()) else {
        return Err(bad(
            "start with steps.<id>, input.<name>, env.<VAR> or loop.<id>",
        ));
    };
    let path: Vec<Segment> = it.collect();
    let root = match root.as_str() {
        "steps" => Root::Step(name),
        "input" => Root::Input(name),
        "env" if path.is_empty() => Root::Env(name),
        "env" => return Err(bad("env.<VAR> has no path")),
        "loop" if path == [Segment::Key("index".into())] => Root::Loop(name),
        "loop" => return Err(bad("say loop.<id>.index")),
        _ => {
            return Err(bad(
                "start with steps.<id>, input.<name>, env.<VAR> or loop.<id>",
            ))
        }
    };
    let path = if matches!(root, Root::Loop(_)) {
        Vec::new()
    } else {
        path
    };
    Ok(Reference { root, path })
}

/// A template split into text and placeholders.
enum Piece<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

fn pieces(s: &str) -> Result<Vec<Piece<'_>>, InterpolateError> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            InterpolateError::Syntax(after.chars().take(40).collect(), "`{{` without `}}`")
        })?;
        out.push(Piece::Placeholder(&after[..end]));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Every reference in a template string (for checking a pipeline before it runs).
pub fn references(s: &str) -> Result<Vec<Reference>, InterpolateError> {
    pieces(s)?
        .into_iter()
        .filter_map(|p| match p {
            Piece::Placeholder(r) => Some(parse_reference(r)),
            Piece::Text(_) => None,
        })
        .collect()
}

/// The value a reference names.
pub fn resolve(r: &Reference, scope: &dyn Scope) -> Result<Value, InterpolateError> {
    let shown = || reference_text(r);
    let unknown = |why: String| InterpolateError::Unknown(shown(), why);
    let mut v = match &r.root {
        Root::Step(id) => scope
            .step(id)
            .ok_or_else(|| unknown(format!("step \"{id}\" has not run (yet)")))?,
        Root::Input(name) => scope
            .input(name)
            .ok_or_else(|| unknown(format!("no input \"{name}\" was given")))?,
        Root::Env(var) => {
            return scope
                .env(var)
                .map(Value::String)
                .ok_or_else(|| unknown(format!("${var} is not set")))
        }
        Root::Loop(id) => {
            return scope
                .loop_index(id)
                .map(Value::from)
                .ok_or_else(|| unknown(format!("no loop \"{id}\" is running")))
        }
    };
    for seg in &r.path {
        let looped;
        let seg = match seg {
            Segment::LoopIndex(id) => {
                let i = scope
                    .loop_index(id)
                    .ok_or_else(|| unknown(format!("no loop \"{id}\" is running")))?;
                looped = Segment::Index(usize::try_from(i).unwrap_or(usize::MAX));
                &looped
            }
            other => other,
        };
        v = match (seg, v) {
            (Segment::Key(k), Value::Object(mut m)) => m
                .remove(k)
                .ok_or_else(|| unknown(format!("no field \"{k}\"")))?,
            (Segment::Index(i), Value::Array(mut a)) if *i < a.len() => a.swap_remove(*i),
            (Segment::Index(i), Value::Array(a)) => {
                return Err(unknown(format!("index {i} of an array of {}", a.len())))
            }
            (seg, other) => {
                return Err(unknown(format!(
                    "{} of {}",
                    match seg {
                        Segment::Key(k) => format!("field \"{k}\""),
                        Segment::Index(i) => format!("index {i}"),
                        Segment::LoopIndex(id) => format!("index loop.{id}"),
                    },
                    kind(&other)
                )))
            }
        };
    }
    Ok(v)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn reference_text(r: &Reference) -> String {
    let mut s = match &r.root {
        Root::Step(id) => format!("steps.{id}"),
        Root::Input(n) => format!("input.{n}"),
        Root::Env(v) => format!("env.{v}"),
        Root::Loop(id) => format!("loop.{id}.index"),
    };
    for seg in &r.path {
        match seg {
            Segment::Key(k) => s += &format!(".{k}"),
            Segment::Index(i) => s += &format!("[{i}]"),
            Segment::LoopIndex(id) => s += &format!("[loop.{id}]"),
        }
    }
    s
}

/// A value as text in a longer string.
#[must_use]
pub fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One pass over `s`; `env` says whether `{{env.…}}` may be resolved in it.
fn pass(s: &str, scope: &dyn Scope, env: bool) -> Result<Value, InterpolateError> {
    let pieces = pieces(s)?;
    let resolve_piece = |r: &str| -> Result<Option<Value>, InterpolateError> {
        let reference = parse_reference(r)?;
        if !env && matches!(reference.root, Root::Env(_)) {
            return Ok(None);
        }
        resolve(&reference, scope).map(Some)
    };
    if let [Piece::Placeholder(r)] = pieces.as_slice() {
        return Ok(resolve_piece(r)?.unwrap_or_else(|| Value::String(s.to_string())));
    }
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Placeholder(r) => match resolve_piece(r)? {
                Some(v) => out.push_str(&as_text(&v)),
                None => {
                    out.push_str("{{");
                    out.push_str(r);
                    out.push_str("}}");
                }
            },
        }
        if out.len() > MAX_RESULT {
            return Err(InterpolateError::TooLarge);
        }
    }
    Ok(Value::String(out))
}

/// Interpolate one template string.
pub fn interpolate_str(s: &str, scope: &dyn Scope) -> Result<Value, InterpolateError> {
    let mut v = pass(s, scope, true)?;
    for _ in 1..MAX_PASSES {
        match &v {
            Value::String(t) if t.contains("{{") => {
                let next = pass(t, scope, false)?;
                if next == v {
                    break;
                }
                v = next;
            }
            _ => break,
        }
    }
    Ok(v)
}

/// Interpolate every string in a value (arrays and objects all the way down; keys stay).
pub fn interpolate(v: &Value, scope: &dyn Scope) -> Result<Value, InterpolateError> {
    Ok(match v {
        Value::String(s) => interpolate_str(s, scope)?,
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| interpolate(x, scope))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), interpolate(x, scope)?)))
                .collect::<Result<_, InterpolateError>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests;
