//! `adapter.toml`: what a publisher says about the adapter, parsed and validated.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::fields::{check_examples, check_slug, check_tags, check_text, check_version};
use super::{
    AdapterToml, PackageError, ADAPTER_TOML, DEFAULT_LICENSE, MAX_BASE_MODEL_LEN,
    MAX_DESCRIPTION_LEN, MAX_LICENSE_LEN, MAX_NAME_LEN,
};

/// The keys `adapter.toml` may hold.
const TOML_KEYS: [&str; 7] = [
    "name",
    "version",
    "description",
    "tags",
    "license",
    "base_model",
    "examples",
];

/// `adapter.toml` as written, before the field rules are applied.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToml {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
    license: Option<String>,
    base_model: Option<String>,
    examples: Option<Vec<String>>,
}

/// Parse and validate the text of `adapter.toml`.
pub(super) fn parse_adapter_toml(bytes: &[u8]) -> Result<AdapterToml, PackageError> {
    let f = ADAPTER_TOML;
    let text = std::str::from_utf8(bytes)
        .map_err(|e| PackageError::invalid(f, "syntax", format!("not UTF-8 ({e})")))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let msg = e.message().replace(['\n', '\r'], " ");
        let at = match e.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!(" at line {line}, column {col}")
            }
            None => String::new(),
        };
        PackageError::invalid(f, "syntax", format!("not valid TOML: {msg}{at}"))
    })?;

    // Name the exact key on an unknown key or a wrong type, before the
    // deny_unknown_fields parse (which would only say "some field").
    for key in table.keys() {
        if !TOML_KEYS.contains(&key.as_str()) {
            return Err(PackageError::invalid(
                f,
                key.clone(),
                format!("unknown key (known keys: {})", TOML_KEYS.join(", ")),
            ));
        }
    }
    check_toml_type::<String>(&table, "name")?;
    check_toml_type::<String>(&table, "version")?;
    check_toml_type::<String>(&table, "description")?;
    check_toml_type::<Vec<String>>(&table, "tags")?;
    check_toml_type::<String>(&table, "license")?;
    check_toml_type::<String>(&table, "base_model")?;
    check_toml_type::<Vec<String>>(&table, "examples")?;
    let raw = RawToml::deserialize(toml::Value::Table(table))
        .map_err(|e| PackageError::invalid(f, "syntax", e.message().replace('\n', " ")))?;

    let inv = |field: &str, reason: String| PackageError::invalid(f, field, reason);
    let missing = |field: &str| PackageError::invalid(f, field, "missing");

    let name = raw.name.ok_or_else(|| missing("name"))?;
    check_slug(&name, MAX_NAME_LEN).map_err(|r| inv("name", r))?;

    let version = raw.version.ok_or_else(|| missing("version"))?;
    check_version(&version).map_err(|r| inv("version", r))?;

    let description = raw.description.ok_or_else(|| missing("description"))?;
    let description = description.trim().to_string();
    check_text(&description, MAX_DESCRIPTION_LEN, true).map_err(|r| inv("description", r))?;

    let tags = raw.tags.unwrap_or_default();
    check_tags(&tags).map_err(|(field, r)| inv(&field, r))?;

    let license = match raw.license {
        Some(l) => {
            let l = l.trim().to_string();
            check_text(&l, MAX_LICENSE_LEN, false).map_err(|r| inv("license", r))?;
            l
        }
        None => DEFAULT_LICENSE.to_string(),
    };

    let base_model = match raw.base_model {
        Some(b) => {
            let b = b.trim().to_string();
            check_text(&b, MAX_BASE_MODEL_LEN, false).map_err(|r| inv("base_model", r))?;
            Some(b)
        }
        None => None,
    };

    let examples = raw.examples.unwrap_or_default();
    check_examples(&examples).map_err(|(field, r)| inv(&field, r))?;

    Ok(AdapterToml {
        name,
        version,
        description,
        tags,
        license,
        base_model,
        examples,
    })
}

/// Check that `key`, when present, deserializes as `T`; the error names the key.
fn check_toml_type<T: DeserializeOwned>(
    table: &toml::Table,
    key: &str,
) -> Result<(), PackageError> {
    match table.get(key) {
        None => Ok(()),
        Some(v) => T::deserialize(v.clone()).map(|_| ()).map_err(|e| {
            PackageError::invalid(
                ADAPTER_TOML,
                key,
                e.message().replace('\n', " ").trim().to_string(),
            )
        }),
    }
}
