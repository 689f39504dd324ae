//! Conditions (`if` of a condition step, `while` and `until` of a loop):
//! `<left> <op> <right>` with `== != > < >= <=`, or one value's truthiness.
//!
//! The operator is found in the condition's own text (outside `{{…}}` and quotes)
//! before anything is interpolated, and each side is interpolated on its own: a step's
//! answer that happens to contain `==` cannot change what is compared. A side that is a
//! lone placeholder keeps its JSON type; literal sides are read as JSON when they are
//! (`0.7`, `true`, `"text"`, `null`) and as text otherwise (`completed`). Numbers compare
//! as numbers, text as text; ordering anything else is an error. Truthiness: `false`,
//! `null`, `0`, `""`, `"false"`, `"0"`, `[]` and `{}` are false; everything else is true.

use serde_json::Value;

use crate::interpolate::{interpolate_str, InterpolateError, Scope};

/// Why a condition could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionError {
    /// A side could not be interpolated.
    #[error(transparent)]
    Interpolate(#[from] InterpolateError),
    /// Ordered comparison of things without an order.
    #[error("cannot compare {left} {op} {right}: only numbers or texts have an order")]
    Unordered {
        /// The left side.
        left: String,
        /// The operator.
        op: &'static str,
        /// The right side.
        right: String,
    },
    /// Nothing to decide.
    #[error("an empty condition")]
    Empty,
}

const OPS: [&str; 6] = ["==", "!=", ">=", "<=", ">", "<"];

/// Where the operator is in `text` (outside placeholders and quotes), and which.
fn find_op(text: &str) -> Option<(usize, &'static str)> {
    let bytes = text.as_bytes();
    let (mut i, mut depth, mut quoted) = (0, 0usize, false);
    while i < bytes.len() {
        let rest = &text[i..];
        if !quoted && rest.starts_with("{{") {
            depth += 1;
            i += 2;
            continue;
        }
        if !quoted && depth > 0 && rest.starts_with("}}") {
            depth -= 1;
            i += 2;
            continue;
        }
        if depth == 0 && bytes[i] == b'"' {
            quoted = !quoted;
        } else if depth == 0 && !quoted {
            if let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) {
                return Some((i, op));
            }
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// One side: interpolated, then read as JSON when it is.
fn side(text: &str, scope: &dyn Scope) -> Result<Value, InterpolateError> {
    let t = text.trim();
    Ok(match interpolate_str(t, scope)? {
        Value::String(s) if !t.starts_with("{{") || !t.ends_with("}}") => {
            serde_json::from_str(&s).unwrap_or(Value::String(s))
        }
        v => v,
    })
}

/// Whether a value counts as true.
#[must_use]
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !(s.is_empty() || s == "false" || s == "0"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// Numbers as numbers, texts as texts (a text that reads as a number counts as one).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (Value::String(x), y) | (y, Value::String(x)) if !y.is_string() => {
                *x == crate::interpolate::as_text(y)
            }
            _ => a == b,
        },
    }
}

/// Decide `condition` with what the run knows.
pub fn evaluate(condition: &str, scope: &dyn Scope) -> Result<bool, ConditionError> {
    if condition.trim().is_empty() {
        return Err(ConditionError::Empty);
    }
    let Some((at, op)) = find_op(condition) else {
        return Ok(truthy(&side(condition, scope)?));
    };
    let left = side(&condition[..at], scope)?;
    let right = side(&condition[at + op.len()..], scope)?;
    Ok(match op {
        "==" => equal(&left, &right),
        "!=" => !equal(&left, &right),
        _ => {
            let ord = match (number(&left), number(&right), &left, &right) {
                (Some(x), Some(y), _, _) => x.partial_cmp(&y),
                (_, _, Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                _ => None,
            };
            let Some(ord) = ord else {
                return Err(ConditionError::Unordered {
                    left: left.to_string(),
                    op,
                    right: right.to_string(),
                });
            };
            match op {
                ">" => ord.is_gt(),
                "<" => ord.is_lt(),
                ">=" => ord.is_ge(),
                _ => ord.is_le(),
            }
        }
    })
}

/// The references a condition makes (for checking a pipeline before it runs).
pub fn references(condition: &str) -> Result<Vec<crate::interpolate::Reference>, InterpolateError> {
    crate::interpolate::references(condition)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Run(Value);

    impl Scope for Run {
        fn step(&self, id: &str) -> Option<Value> {
            self.0.get(id).cloned()
        }
        fn input(&self, _: &str) -> Option<Value> {
            None
        }
        fn env(&self, _: &str) -> Option<String> {
            None
        }
        fn loop_index(&self, _: &str) -> Option<u64> {
            Some(3)
        }
    }

    fn run() -> Run {
        Run(json!({
            "grade": {"status": "completed", "output": {"score": 0.75, "text": "a == b", "n": "12", "ok": false, "list": []}},
        }))
    }

    #[test]
    fn comparisons_of_numbers_texts_and_placeholders() {
        let r = run();
        let t = |c: &str| evaluate(c, &r).unwrap();
        assert!(t("{{steps.grade.output.score}} >= 0.7"));
        assert!(!t("{{steps.grade.output.score}} > 0.75"));
        assert!(t("{{steps.grade.output.score}} <= 0.75"));
        assert!(t("{{steps.grade.status}} == completed"));
        assert!(t("{{steps.grade.status}} == \"completed\""));
        assert!(t("{{steps.grade.status}} != failed"));
        assert!(
            t("{{steps.grade.output.n}} > 9"),
            "a text that is a number compares as one"
        );
        assert!(t("{{loop.x.index}} < 5"));
        // An answer holding the operator does not split the condition.
        assert!(t("{{steps.grade.output.text}} == \"a == b\""));
        assert!(t("b < c"), "texts have an order");
        assert!(matches!(
            evaluate("{{steps.grade.output.list}} > 1", &r),
            Err(ConditionError::Unordered { .. })
        ));
        assert!(matches!(
            evaluate("{{steps.nope.status}} == x", &r),
            Err(ConditionError::Interpolate(_))
        ));
        assert_eq!(evaluate("  ", &r), Err(ConditionError::Empty));
    }

    #[test]
    fn truthiness() {
        let r = run();
        let t = |c: &str| evaluate(c, &r).unwrap();
        assert!(!t("{{steps.grade.output.ok}}"));
        assert!(!t("{{steps.grade.output.list}}"));
        assert!(t("{{steps.grade.output.score}}"));
        assert!(t("{{steps.grade.status}}"));
        for falsy in ["false", "0", "null", "\"\"", "[]", "{}"] {
            assert!(!t(falsy), "{falsy}");
        }
        assert!(t("yes"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_conditions_never_panic(s in "\\PC{0,120}") {
            let _ = evaluate(&s, &run());
        }
    }
}
