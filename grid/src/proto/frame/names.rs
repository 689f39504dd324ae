//! Command and event names, and event patterns.
//!
//! A command is a slash path `domain/action` (more segments allowed: `grid/ping`,
//! `genome/adapter/publish`); an event is a colon path `domain:collection:operation`. A
//! pattern is an event name, `*`, or a prefix ending in `*` (`data:*` … , `gpu:pressure:*`),
//! and may use `*` as a whole segment (`data:*:created`).

/// The longest command or event name or pattern, bytes.
pub const MAX_NAME: usize = 128;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty or longer than [`MAX_NAME`].
    #[error("must be 1 to {MAX_NAME} bytes")]
    Length,
    /// A character outside letters, digits, `-`, `_`, `.` and the separator.
    #[error("may only hold letters, digits, '-', '_', '.' and '{0}'")]
    Character(char),
    /// A `*` that is neither a whole segment nor the end of the last one.
    #[error("may use '*' only as a whole segment or at the end")]
    Wildcard,
    /// An empty segment (`a//b`, `:x`, `a:`).
    #[error("has an empty segment")]
    EmptySegment,
}

fn check(name: &str, sep: char, wildcard: bool) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(NameError::Length);
    }
    for c in name.chars() {
        let ok = c.is_ascii_alphanumeric()
            || matches!(c, '-' | '_' | '.')
            || c == sep
            || (wildcard && c == '*');
        if !ok {
            return Err(NameError::Character(sep));
        }
    }
    if name.split(sep).any(str::is_empty) {
        return Err(NameError::EmptySegment);
    }
    Ok(())
}

/// Check a command name (`domain/action`; a single segment such as `list` is allowed).
pub fn check_command(name: &str) -> Result<(), NameError> {
    check(name, '/', false)
}

/// Check an event name (`domain:collection:operation`).
pub fn check_event(name: &str) -> Result<(), NameError> {
    check(name, ':', false)
}

/// Check an event pattern: `*` may be a whole segment, or end the last segment.
pub fn check_pattern(pattern: &str) -> Result<(), NameError> {
    check(pattern, ':', true)?;
    let segments: Vec<&str> = pattern.split(':').collect();
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let stars = seg.matches('*').count();
        let ok = stars == 0 || *seg == "*" || (last && stars == 1 && seg.ends_with('*'));
        if !ok {
            return Err(NameError::Wildcard);
        }
    }
    Ok(())
}

/// Whether `event` matches `pattern`: `*` matches everything; a segment `*` matches one
/// segment; a trailing `*` after a prefix matches the rest (`gpu:*` matches
/// `gpu:pressure:high`).
pub fn matches(pattern: &str, event: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let mut p = pattern.split(':').peekable();
    let mut e = event.split(':');
    while let Some(ps) = p.next() {
        let last = p.peek().is_none();
        match e.next() {
            None => return false,
            Some(es) => {
                if ps == "*" {
                    if last {
                        return true;
                    }
                    continue;
                }
                if last {
                    if let Some(prefix) = ps.strip_suffix('*') {
                        return es.starts_with(prefix);
                    }
                }
                if ps != es {
                    return false;
                }
            }
        }
    }
    e.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_command("grid/ping").is_ok());
        assert!(check_command("list").is_ok());
        assert!(check_command("genome/adapter/publish").is_ok());
        assert_eq!(check_command("grid//ping"), Err(NameError::EmptySegment));
        assert_eq!(check_command("grid/ping!"), Err(NameError::Character('/')));
        assert_eq!(check_command(""), Err(NameError::Length));
        assert_eq!(check_command(&"a".repeat(129)), Err(NameError::Length));
        assert!(check_event("data:users:created").is_ok());
        assert!(check_event("data:*").is_err(), "no wildcard in an event");
        assert!(check_pattern("data:*:created").is_ok());
        assert!(check_pattern("*").is_ok());
        assert!(check_pattern("genome:adapter:pub*").is_ok());
        assert_eq!(check_pattern("a:**x"), Err(NameError::Wildcard));
        assert_eq!(check_pattern("a*:b"), Err(NameError::Wildcard));
    }

    #[test]
    fn patterns_match_as_documented() {
        assert!(matches("*", "gpu:pressure:high"));
        assert!(matches("gpu:*", "gpu:pressure:high"));
        assert!(matches("gpu:pressure:*", "gpu:pressure:high"));
        assert!(matches("data:*:created", "data:users:created"));
        assert!(!matches("data:*:created", "data:users:deleted"));
        assert!(matches("genome:adapter:pub*", "genome:adapter:published"));
        assert!(matches("a:b", "a:b"));
        assert!(!matches("a:b", "a:b:c"));
        assert!(!matches("a:b:c", "a:b"));
        assert!(!matches("gpu:*", "genome:x"));
    }
}
