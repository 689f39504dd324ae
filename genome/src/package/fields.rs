//! Field rules shared by `adapter.toml` and the manifest, which repeats these fields.

use super::{MAX_EXAMPLES, MAX_EXAMPLE_LEN, MAX_TAGS, MAX_TAG_LEN};

/// A slug: `[a-z0-9-]`, 1..=max chars, no leading, trailing or double hyphen.
pub(crate) fn check_slug(value: &str, max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.chars().count() > max {
        return Err(format!("{value:?} is longer than {max} characters"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{value:?} has character {c:?} (allowed: a-z, 0-9, -)"
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(format!("{value:?} starts or ends with a hyphen"));
    }
    if value.contains("--") {
        return Err(format!("{value:?} has a double hyphen"));
    }
    Ok(())
}

/// A semantic version, as the `semver` crate parses it.
pub(crate) fn check_version(value: &str) -> Result<(), String> {
    semver::Version::parse(value)
        .map(|_| ())
        .map_err(|e| format!("{value:?} is not semver ({e})"))
}

/// Free text: non-empty after trimming, at most `max` chars, no control characters
/// other than newline and tab when `multiline`.
pub(crate) fn check_text(value: &str, max: usize, multiline: bool) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("is empty".into());
    }
    let n = value.chars().count();
    if n > max {
        return Err(format!("is {n} characters, more than {max}"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| c.is_control() && !(multiline && (*c == '\n' || *c == '\t' || *c == '\r')))
    {
        return Err(format!("has control character {c:?}"));
    }
    Ok(())
}

/// The list rules for tags: at most 16, each a slug of at most 32 chars, no duplicates.
pub(crate) fn check_tags(tags: &[String]) -> Result<(), (String, String)> {
    if tags.len() > MAX_TAGS {
        return Err((
            "tags".into(),
            format!("{} tags, more than {MAX_TAGS}", tags.len()),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        check_slug(tag, MAX_TAG_LEN).map_err(|r| (format!("tags[{i}]"), r))?;
        if tags[..i].contains(tag) {
            return Err((format!("tags[{i}]"), format!("{tag:?} is repeated")));
        }
    }
    Ok(())
}

/// The list rules for examples: at most 32, each 1..=500 chars of text.
pub(crate) fn check_examples(examples: &[String]) -> Result<(), (String, String)> {
    if examples.len() > MAX_EXAMPLES {
        return Err((
            "examples".into(),
            format!("{} examples, more than {MAX_EXAMPLES}", examples.len()),
        ));
    }
    for (i, ex) in examples.iter().enumerate() {
        check_text(ex, MAX_EXAMPLE_LEN, true).map_err(|r| (format!("examples[{i}]"), r))?;
    }
    Ok(())
}
