//! An adapter package: a PEFT LoRA directory (`adapter_config.json` +
//! `adapter_model.safetensors`) plus our `adapter.toml`, validated strictly.
//!
//! Packages arrive from untrusted peers, so [`AdapterPackage::load`] checks every file
//! before anything else touches it, and every refusal names the file and the field so
//! a publisher can fix the package without guessing. The weights file is never read
//! into memory: only its safetensors header is parsed, and the header's offsets,
//! shapes and dtypes are checked against the file length and the LoRA rank.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// File name of our package description (name, version, description, ...).
pub const ADAPTER_TOML: &str = "adapter.toml";
/// File name of the PEFT adapter configuration.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// File name of the PEFT adapter weights (safetensors).
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// Largest weights file accepted (4 GiB): far above any LoRA adapter, bounds downloads.
pub const MAX_WEIGHTS_SIZE: u64 = 4 << 30;
/// Largest safetensors header accepted (100 MB, the limit of the reference implementation).
pub const MAX_HEADER_LEN: u64 = 100_000_000;
/// Largest `adapter.toml` read (1 MiB); a real one is a few hundred bytes.
pub const MAX_TOML_SIZE: u64 = 1 << 20;
/// Largest `adapter_config.json` read (4 MiB); PEFT writes a few kilobytes.
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;
/// Largest LoRA rank accepted.
pub const MAX_RANK: u64 = 4096;
/// Longest package name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 2000;
/// Most tags a package may carry.
pub const MAX_TAGS: usize = 16;
/// Longest tag, in characters.
pub const MAX_TAG_LEN: usize = 32;
/// Longest license string, in characters.
pub const MAX_LICENSE_LEN: usize = 64;
/// Longest base model id, in characters.
pub const MAX_BASE_MODEL_LEN: usize = 256;
/// Most example prompts a package may carry.
pub const MAX_EXAMPLES: usize = 32;
/// Longest example prompt, in characters.
pub const MAX_EXAMPLE_LEN: usize = 500;
/// License recorded when `adapter.toml` names none.
pub const DEFAULT_LICENSE: &str = "unknown";

/// Why a package was refused. Every variant names the file; `Invalid` also the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// A required file is not in the package directory.
    #[error("{file}: missing")]
    Missing {
        /// The missing file (e.g. `adapter.toml`).
        file: String,
    },
    /// A file exists but could not be read.
    #[error("{file}: {reason}")]
    Io {
        /// The file that failed.
        file: String,
        /// The I/O error, as text.
        reason: String,
    },
    /// A file was read but its contents break a rule.
    #[error("{file}: {field}: {reason}")]
    Invalid {
        /// The file holding the bad value.
        file: String,
        /// The field (TOML key, JSON key, tensor name, `header`, `size`, ...).
        field: String,
        /// What is wrong, with the offending value where useful.
        reason: String,
    },
}

impl PackageError {
    fn invalid(file: &str, field: impl Into<String>, reason: impl Into<String>) -> Self {
        PackageError::Invalid {
            file: file.to_string(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Map an I/O error on `file`: not-found becomes [`PackageError::Missing`].
    pub(crate) fn from_io(file: &str, err: &io::Error) -> Self {
        if err.kind() == io::ErrorKind::NotFound {
            PackageError::Missing {
                file: file.to_string(),
            }
        } else {
            PackageError::Io {
                file: file.to_string(),
                reason: err.to_string(),
            }
        }
    }
}

/// The validated contents of `adapter.toml`: what a publisher says about the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterToml {
    /// Package name: `[a-z0-9-]`, 1-64 chars, no leading, trailing or double hyphen.
    pub name: String,
    /// Semantic version of the package.
    pub version: String,
    /// What the adapter does (trimmed, non-empty, at most 2000 chars); searched semantically.
    pub description: String,
    /// Short topic labels (at most 16, each like a name, at most 32 chars).
    pub tags: Vec<String>,
    /// License, free text (at most 64 chars); `"unknown"` when not given.
    pub license: String,
    /// Base model id, when the TOML names one (else taken from `adapter_config.json`).
    pub base_model: Option<String>,
    /// Example prompts the adapter is good at (at most 32, each 1-500 chars).
    pub examples: Vec<String>,
}

/// A package directory that passed every check in [`AdapterPackage::load`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterPackage {
    /// The package directory.
    pub dir: PathBuf,
    /// The validated `adapter.toml`.
    pub toml: AdapterToml,
    /// The base model the adapter applies to (TOML first, else the PEFT config).
    pub base_model: String,
    /// The LoRA rank `r` from `adapter_config.json`, matched by every A/B tensor.
    pub rank: u32,
    /// The modules the adapter targets (PEFT `target_modules`; a single string is kept as one entry).
    pub target_modules: Vec<String>,
    /// Number of tensors in the weights file.
    pub tensors: usize,
    /// Size of the weights file in bytes.
    pub weights_size: u64,
}

impl AdapterPackage {
    /// Load and strictly validate the package in `dir`.
    ///
    /// Reads `adapter.toml` and `adapter_config.json` whole (both are size-capped) and
    /// only the header of `adapter_model.safetensors`. The first problem found is
    /// returned, naming its file and field.
    pub fn load(dir: &Path) -> Result<AdapterPackage, PackageError> {
        let toml_text = read_capped(&dir.join(ADAPTER_TOML), ADAPTER_TOML, MAX_TOML_SIZE)?;
        let toml = parse_adapter_toml(&toml_text)?;
        let config_bytes = read_capped(&dir.join(ADAPTER_CONFIG), ADAPTER_CONFIG, MAX_CONFIG_SIZE)?;
        let config = parse_adapter_config(&config_bytes)?;
        let weights = check_weights(&dir.join(ADAPTER_WEIGHTS), config.rank)?;

        let base_model = match (&toml.base_model, &config.base_model) {
            (Some(b), _) => b.clone(),
            (None, Some(b)) => b.clone(),
            (None, None) => {
                return Err(PackageError::invalid(
                    ADAPTER_TOML,
                    "base_model",
                    format!(
                        "missing, and {ADAPTER_CONFIG} has no non-empty base_model_name_or_path"
                    ),
                ))
            }
        };

        Ok(AdapterPackage {
            dir: dir.to_path_buf(),
            toml,
            base_model,
            rank: config.rank,
            target_modules: config.target_modules,
            tensors: weights.tensors,
            weights_size: weights.size,
        })
    }
}

// ---------------------------------------------------------------------------
// Shared field rules (also used by the manifest, which repeats these fields).

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

/// Read a whole small file, refusing it when larger than `max` bytes.
fn read_capped(path: &Path, file: &str, max: u64) -> Result<Vec<u8>, PackageError> {
    let f = File::open(path).map_err(|e| PackageError::from_io(file, &e))?;
    let meta = f.metadata().map_err(|e| PackageError::from_io(file, &e))?;
    if !meta.is_file() {
        return Err(PackageError::Io {
            file: file.to_string(),
            reason: "not a regular file".into(),
        });
    }
    let mut buf = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| PackageError::from_io(file, &e))?;
    if buf.len() as u64 > max {
        return Err(PackageError::invalid(
            file,
            "size",
            format!("larger than {max} bytes"),
        ));
    }
    Ok(buf)
}

// ---------------------------------------------------------------------------
// adapter.toml

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
fn parse_adapter_toml(bytes: &[u8]) -> Result<AdapterToml, PackageError> {
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

// ---------------------------------------------------------------------------
// adapter_config.json

/// What we take from the PEFT config.
#[derive(Debug)]
struct AdapterConfig {
    rank: u32,
    target_modules: Vec<String>,
    /// `base_model_name_or_path`, when present and non-empty.
    base_model: Option<String>,
}

/// Name a JSON value's kind for error messages.
fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Parse and validate `adapter_config.json`.
fn parse_adapter_config(bytes: &[u8]) -> Result<AdapterConfig, PackageError> {
    let f = ADAPTER_CONFIG;
    let inv = |field: &str, reason: String| PackageError::invalid(f, field, reason);
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| inv("syntax", format!("not valid JSON ({e})")))?;
    let obj = match &value {
        serde_json::Value::Object(o) => o,
        other => {
            return Err(inv(
                "root",
                format!("not a JSON object (found {})", json_kind(other)),
            ))
        }
    };

    if let Some(p) = obj.get("peft_type") {
        match p.as_str() {
            Some("LORA") => {}
            Some(other) => return Err(inv("peft_type", format!("{other:?} is not \"LORA\""))),
            None => {
                return Err(inv(
                    "peft_type",
                    format!("{} is not \"LORA\"", json_kind(p)),
                ))
            }
        }
    }

    let r = obj.get("r").ok_or_else(|| inv("r", "missing".into()))?;
    let rank = match r.as_u64() {
        Some(n) if (1..=MAX_RANK).contains(&n) => n as u32,
        Some(n) => return Err(inv("r", format!("{n} is not in 1..={MAX_RANK}"))),
        None => return Err(inv("r", format!("{r} is not a positive integer"))),
    };

    if let Some(a) = obj.get("lora_alpha") {
        if !a.is_number() {
            return Err(inv(
                "lora_alpha",
                format!("{} is not a number", json_kind(a)),
            ));
        }
    }

    // Per-module ranks would make the rank check below meaningless; refuse them
    // explicitly rather than with a confusing shape error.
    if let Some(rp) = obj.get("rank_pattern") {
        match rp {
            serde_json::Value::Null => {}
            serde_json::Value::Object(m) if m.is_empty() => {}
            _ => {
                return Err(inv(
                    "rank_pattern",
                    "per-module ranks are not supported (must be empty)".into(),
                ))
            }
        }
    }

    let tm = obj
        .get("target_modules")
        .ok_or_else(|| inv("target_modules", "missing".into()))?;
    let target_modules = match tm {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s) => out.push(s.to_string()),
                    None => {
                        return Err(inv(
                            &format!("target_modules[{i}]"),
                            format!("{} is not a string", json_kind(item)),
                        ))
                    }
                }
            }
            out
        }
        other => {
            return Err(inv(
                "target_modules",
                format!(
                    "{} is not a string or an array of strings",
                    json_kind(other)
                ),
            ))
        }
    };
    if target_modules.is_empty() {
        return Err(inv("target_modules", "is empty".into()));
    }
    if let Some(i) = target_modules.iter().position(|s| s.trim().is_empty()) {
        return Err(inv(&format!("target_modules[{i}]"), "is empty".into()));
    }

    let base_model = match obj.get("base_model_name_or_path") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() {
                None
            } else {
                check_text(s, MAX_BASE_MODEL_LEN, false)
                    .map_err(|r| inv("base_model_name_or_path", r))?;
                Some(s.to_string())
            }
        }
        Some(other) => {
            return Err(inv(
                "base_model_name_or_path",
                format!("{} is not a string", json_kind(other)),
            ))
        }
    };

    Ok(AdapterConfig {
        rank,
        target_modules,
        base_model,
    })
}

// ---------------------------------------------------------------------------
// adapter_model.safetensors (header only)

/// What the weights check reports back.
#[derive(Debug)]
struct WeightsSummary {
    tensors: usize,
    size: u64,
}

/// One tensor's entry in a safetensors header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// The header's top-level entries in file order; duplicate keys are refused
/// (a plain map would silently keep the last one).
struct HeaderEntries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for HeaderEntries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HeaderEntries;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HeaderEntries, A::Error> {
                let mut out: Vec<(String, serde_json::Value)> = Vec::new();
                let mut seen: HashSet<String> = HashSet::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    if !seen.insert(k.clone()) {
                        return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    out.push((k, v));
                }
                Ok(HeaderEntries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Bytes per element of a safetensors dtype; `None` for unknown (or sub-byte) dtypes.
fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" | "C64" => 8,
        _ => return None,
    })
}

/// Validate the weights file by its header alone.
fn check_weights(path: &Path, rank: u32) -> Result<WeightsSummary, PackageError> {
    let f = ADAPTER_WEIGHTS;
    let inv = |field: &str, reason: String| PackageError::invalid(f, field, reason);
    let mut file = File::open(path).map_err(|e| PackageError::from_io(f, &e))?;
    let meta = file.metadata().map_err(|e| PackageError::from_io(f, &e))?;
    if !meta.is_file() {
        return Err(PackageError::Io {
            file: f.to_string(),
            reason: "not a regular file".into(),
        });
    }
    let len = meta.len();
    if len > MAX_WEIGHTS_SIZE {
        return Err(inv(
            "size",
            format!("{len} bytes, more than {MAX_WEIGHTS_SIZE}"),
        ));
    }
    if len < 8 {
        return Err(inv(
            "header",
            format!("file is {len} bytes, too short for the 8-byte header length"),
        ));
    }
    let mut n8 = [0u8; 8];
    file.read_exact(&mut n8)
        .map_err(|e| PackageError::from_io(f, &e))?;
    let n = u64::from_le_bytes(n8);
    if n > MAX_HEADER_LEN {
        return Err(inv(
            "header",
            format!("header length {n} is more than {MAX_HEADER_LEN}"),
        ));
    }
    if n > len - 8 {
        return Err(inv(
            "header",
            format!("header length {n} goes beyond the end of the file ({len} bytes)"),
        ));
    }
    // n <= len <= 4 GiB and n <= 100 MB: the allocation is bounded by the file.
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header)
        .map_err(|e| PackageError::from_io(f, &e))?;
    let entries: HeaderEntries = serde_json::from_slice(&header)
        .map_err(|e| inv("header", format!("not a valid JSON object ({e})")))?;
    let data_len = len - 8 - n;

    // (name, dtype, shape, start, end) for each tensor, in header order.
    let mut tensors: Vec<(String, TensorInfo)> = Vec::with_capacity(entries.0.len());
    for (name, value) in entries.0 {
        if name == "__metadata__" {
            let ok = value
                .as_object()
                .is_some_and(|m| m.values().all(|v| v.is_string()));
            if !ok {
                return Err(inv(
                    "__metadata__",
                    "must be an object of string values".into(),
                ));
            }
            continue;
        }
        if name.is_empty() {
            return Err(inv("header", "empty tensor name".into()));
        }
        let info: TensorInfo = serde_json::from_value(value)
            .map_err(|e| inv(&name, format!("bad tensor entry ({e})")))?;
        let size = dtype_size(&info.dtype)
            .ok_or_else(|| inv(&name, format!("unknown dtype {:?}", info.dtype)))?;
        let [start, end] = info.data_offsets;
        if end < start {
            return Err(inv(
                &name,
                format!("data_offsets [{start}, {end}] end before they start"),
            ));
        }
        if end > data_len {
            return Err(inv(
                &name,
                format!(
                    "data_offsets [{start}, {end}] are out of range (the data is {data_len} bytes)"
                ),
            ));
        }
        let nbytes = info
            .shape
            .iter()
            .try_fold(size, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| inv(&name, format!("shape {:?} overflows", info.shape)))?;
        if nbytes != end - start {
            return Err(inv(
                &name,
                format!(
                    "dtype {} x shape {:?} is {nbytes} bytes but data_offsets [{start}, {end}] hold {}",
                    info.dtype,
                    info.shape,
                    end - start
                ),
            ));
        }
        tensors.push((name, info));
    }

    // Offsets must tile the data exactly: no overlaps, no gaps (as the reference
    // loader requires), and the file must end where the last tensor does.
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| tensors[i].1.data_offsets);
    let mut prev: Option<usize> = None;
    let mut cursor = 0u64;
    for &i in &order {
        let (name, info) = &tensors[i];
        let [start, end] = info.data_offsets;
        if start < cursor {
            let (pname, pinfo) = &tensors[prev.unwrap_or(i)];
            return Err(inv(
                name,
                format!(
                    "data_offsets [{start}, {end}] overlap {pname} [{}, {}]",
                    pinfo.data_offsets[0], pinfo.data_offsets[1]
                ),
            ));
        }
        if start > cursor {
            return Err(inv(
                name,
                format!("data_offsets [{start}, {end}] leave a gap after byte {cursor}"),
            ));
        }
        cursor = end;
        prev = Some(i);
    }
    if cursor != data_len {
        return Err(inv(
            "size",
            format!(
                "file is {len} bytes but 8 + header {n} + tensor data {cursor} = {}",
                8 + n + cursor
            ),
        ));
    }

    check_lora_pairs(&tensors, rank)?;

    Ok(WeightsSummary {
        tensors: tensors.len(),
        size: len,
    })
}

/// Every `<p>.lora_A.weight` is `[r, in]` with a `<p>.lora_B.weight` `[out, r]`, and
/// vice versa; at least one such pair exists.
fn check_lora_pairs(tensors: &[(String, TensorInfo)], rank: u32) -> Result<(), PackageError> {
    const A: &str = ".lora_A.weight";
    const B: &str = ".lora_B.weight";
    let inv = |field: &str, reason: String| PackageError::invalid(ADAPTER_WEIGHTS, field, reason);
    let by_name: HashMap<&str, &TensorInfo> =
        tensors.iter().map(|(n, i)| (n.as_str(), i)).collect();
    let r = u64::from(rank);
    let mut pairs = 0usize;
    for (name, info) in tensors {
        if let Some(prefix) = name.strip_suffix(A) {
            if info.shape.len() != 2 || info.shape[0] != r {
                return Err(inv(
                    name,
                    format!(
                        "shape {:?} does not match r = {rank} (want [{rank}, in])",
                        info.shape
                    ),
                ));
            }
            let b_name = format!("{prefix}{B}");
            if !by_name.contains_key(b_name.as_str()) {
                return Err(inv(name, format!("no matching {b_name}")));
            }
            pairs += 1;
        } else if let Some(prefix) = name.strip_suffix(B) {
            if info.shape.len() != 2 || info.shape[1] != r {
                return Err(inv(
                    name,
                    format!(
                        "shape {:?} does not match r = {rank} (want [out, {rank}])",
                        info.shape
                    ),
                ));
            }
            let a_name = format!("{prefix}{A}");
            if !by_name.contains_key(a_name.as_str()) {
                return Err(inv(name, format!("no matching {a_name}")));
            }
        }
    }
    if pairs == 0 {
        return Err(inv(
            "tensors",
            format!("no LoRA tensors (<module>{A} / <module>{B} pairs)"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Test and demo packages

/// The base model [`write_test_package`] names: a small public chat model.
pub const TEST_BASE_MODEL: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

/// `adapter.toml` as [`write_test_package`] writes it.
#[derive(Serialize)]
struct TestToml<'a> {
    name: &'a str,
    version: &'a str,
    description: &'a str,
    examples: &'a [&'a str],
}

/// Write a small valid PEFT LoRA package (for tests and demos): rank r, the given targets, `layers` layers of hidden size `hidden`, deterministic pseudo-random f32 weights, and adapter.toml from the args.
///
/// The targets are `q_proj` and `v_proj`; tensors are
/// `base_model.model.model.layers.{i}.self_attn.{q,v}_proj.lora_A.weight` `[r, hidden]`
/// and `...lora_B.weight` `[hidden, r]`, laid out as PEFT and `safetensors` write them.
/// `adapter.toml` names no base model, so it resolves from the config.
#[allow(clippy::too_many_arguments)]
pub fn write_test_package(
    dir: &Path,
    name: &str,
    version: &str,
    description: &str,
    examples: &[&str],
    r: u32,
    hidden: usize,
    layers: usize,
) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;

    let toml_text = toml::to_string(&TestToml {
        name,
        version,
        description,
        examples,
    })
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    std::fs::write(dir.join(ADAPTER_TOML), toml_text)?;

    let config = serde_json::json!({
        "alpha_pattern": {},
        "auto_mapping": null,
        "base_model_name_or_path": TEST_BASE_MODEL,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layers_pattern": null,
        "layers_to_transform": null,
        "lora_alpha": u64::from(r) * 2,
        "lora_dropout": 0.05,
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": r,
        "rank_pattern": {},
        "revision": null,
        "target_modules": ["q_proj", "v_proj"],
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": false
    });
    let config_text = serde_json::to_string_pretty(&config)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    std::fs::write(dir.join(ADAPTER_CONFIG), config_text)?;

    let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "test package too large");
    let r64 = u64::from(r);
    let h64 = u64::try_from(hidden).map_err(|_| too_big())?;
    let elems = r64.checked_mul(h64).ok_or_else(too_big)?;
    let bytes_each = elems.checked_mul(4).ok_or_else(too_big)?;

    // Tensors in data order; each has r*hidden f32 elements.
    let mut specs: Vec<(String, [u64; 2])> = Vec::new();
    for i in 0..layers {
        for m in ["q_proj", "v_proj"] {
            let p = format!("base_model.model.model.layers.{i}.self_attn.{m}");
            specs.push((format!("{p}.lora_A.weight"), [r64, h64]));
            specs.push((format!("{p}.lora_B.weight"), [h64, r64]));
        }
    }
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut offset = 0u64;
    for (name, shape) in &specs {
        let end = offset.checked_add(bytes_each).ok_or_else(too_big)?;
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut header_bytes = serde_json::to_vec(&header)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    // Pad with spaces to 8-byte alignment, as the safetensors writer does.
    while header_bytes.len() % 8 != 0 {
        header_bytes.push(b' ');
    }

    let mut out = BufWriter::new(File::create(dir.join(ADAPTER_WEIGHTS))?);
    out.write_all(&(header_bytes.len() as u64).to_le_bytes())?;
    out.write_all(&header_bytes)?;
    // Deterministic xorshift values in [-0.01, 0.01), seeded by the name and rank.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ r64.wrapping_mul(0x100_0000_01B3);
    for b in name.bytes() {
        state = (state ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
    state |= 1;
    for _ in 0..specs.len() {
        for _ in 0..elems {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            let v = (unit - 0.5) * 0.02;
            out.write_all(&v.to_le_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------

/// Helpers shared by this crate's tests.
#[cfg(test)]
pub(crate) mod testutil {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A unique directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> TempDir {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let path = std::env::temp_dir().join(format!(
                "grid-genome-{tag}-{}-{nanos}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A valid package (r = 4, hidden 64, 2 layers) in a fresh temp dir.
    pub(crate) fn valid_package(tag: &str) -> TempDir {
        let dir = TempDir::new(tag);
        super::write_test_package(
            dir.path(),
            "geometry-tutor",
            "1.0.0",
            "Explains triangle congruence step by step.",
            &["prove two triangles congruent", "what is SAS?"],
            4,
            64,
            2,
        )
        .expect("write test package");
        dir
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{valid_package, TempDir};
    use super::*;

    fn load_err(dir: &Path) -> String {
        match AdapterPackage::load(dir) {
            Ok(p) => panic!("expected an error, loaded {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_msg(msg: &str, parts: &[&str]) {
        for p in parts {
            assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
        }
    }

    /// Valid package with adapter.toml replaced by `text`; returns the error message.
    fn toml_err(text: &str) -> String {
        let dir = valid_package("toml");
        std::fs::write(dir.path().join(ADAPTER_TOML), text).unwrap();
        load_err(dir.path())
    }

    /// Valid package with adapter_config.json replaced by `text`.
    fn config_err(text: &str) -> String {
        let dir = valid_package("config");
        std::fs::write(dir.path().join(ADAPTER_CONFIG), text).unwrap();
        load_err(dir.path())
    }

    /// Valid package with the weights replaced by raw bytes.
    fn weights_err(bytes: &[u8]) -> String {
        let dir = valid_package("weights");
        std::fs::write(dir.path().join(ADAPTER_WEIGHTS), bytes).unwrap();
        load_err(dir.path())
    }

    /// A safetensors file from a header JSON and `data_len` zero bytes of data.
    fn safetensors(header: &str, data_len: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(0u8, data_len));
        out
    }

    const VALID_TOML: &str =
        "name = \"geometry-tutor\"\nversion = \"1.0.0\"\ndescription = \"Explains things.\"\n";

    #[test]
    fn valid_package_loads() {
        let dir = valid_package("ok");
        let pkg = AdapterPackage::load(dir.path()).unwrap();
        assert_eq!(pkg.toml.name, "geometry-tutor");
        assert_eq!(pkg.toml.version, "1.0.0");
        assert_eq!(pkg.toml.license, "unknown");
        assert_eq!(pkg.toml.base_model, None);
        assert_eq!(pkg.toml.examples.len(), 2);
        assert!(pkg.toml.tags.is_empty());
        assert_eq!(pkg.base_model, TEST_BASE_MODEL);
        assert_eq!(pkg.rank, 4);
        assert_eq!(pkg.target_modules, vec!["q_proj", "v_proj"]);
        assert_eq!(pkg.tensors, 2 * 2 * 2);
        let len = std::fs::metadata(dir.path().join(ADAPTER_WEIGHTS))
            .unwrap()
            .len();
        assert_eq!(pkg.weights_size, len);
        assert_eq!(pkg.dir, dir.path());
    }

    #[test]
    fn toml_fields_and_base_model_override() {
        let dir = valid_package("override");
        std::fs::write(
            dir.path().join(ADAPTER_TOML),
            "name = \"a1\"\nversion = \"2.3.4-beta.1+build\"\ndescription = \"  padded  \"\n\
             tags = [\"math\", \"education\"]\nlicense = \"apache-2.0\"\n\
             base_model = \"org/other-model\"\nexamples = [\"x\"]\n",
        )
        .unwrap();
        let pkg = AdapterPackage::load(dir.path()).unwrap();
        assert_eq!(pkg.toml.description, "padded");
        assert_eq!(pkg.toml.tags, vec!["math", "education"]);
        assert_eq!(pkg.toml.license, "apache-2.0");
        assert_eq!(pkg.base_model, "org/other-model");
        assert_eq!(pkg.toml.base_model.as_deref(), Some("org/other-model"));
    }

    #[test]
    fn base_model_missing_everywhere() {
        let dir = valid_package("nobase");
        std::fs::write(
            dir.path().join(ADAPTER_CONFIG),
            r#"{"peft_type":"LORA","r":4,"target_modules":["q_proj","v_proj"]}"#,
        )
        .unwrap();
        assert_msg(
            &load_err(dir.path()),
            &["adapter.toml: base_model:", "missing"],
        );
    }

    #[test]
    fn missing_files() {
        for file in [ADAPTER_TOML, ADAPTER_CONFIG, ADAPTER_WEIGHTS] {
            let dir = valid_package("missing");
            std::fs::remove_file(dir.path().join(file)).unwrap();
            let err = AdapterPackage::load(dir.path()).unwrap_err();
            assert_eq!(
                err,
                PackageError::Missing {
                    file: file.to_string()
                }
            );
            assert_eq!(err.to_string(), format!("{file}: missing"));
        }
    }

    #[test]
    fn toml_refusals() {
        let cases: &[(&str, &[&str])] = &[
            ("name = [", &["adapter.toml: syntax:", "not valid TOML", "line 1"]),
            ("version = \"1.0.0\"\ndescription = \"d\"\n", &["adapter.toml: name: missing"]),
            ("name = \"a\"\ndescription = \"d\"\n", &["adapter.toml: version: missing"]),
            ("name = \"a\"\nversion = \"1.0.0\"\n", &["adapter.toml: description: missing"]),
            (
                "name = \"Geometry_Tutor\"\nversion = \"1.0.0\"\ndescription = \"d\"\n",
                &["adapter.toml: name:", "'G'"],
            ),
            (
                "name = \"-a\"\nversion = \"1.0.0\"\ndescription = \"d\"\n",
                &["adapter.toml: name:", "hyphen"],
            ),
            (
                "name = \"a--b\"\nversion = \"1.0.0\"\ndescription = \"d\"\n",
                &["adapter.toml: name:", "double hyphen"],
            ),
            (
                "name = \"\"\nversion = \"1.0.0\"\ndescription = \"d\"\n",
                &["adapter.toml: name:", "empty"],
            ),
            (
                "name = 5\nversion = \"1.0.0\"\ndescription = \"d\"\n",
                &["adapter.toml: name:", "string"],
            ),
            (
                "name = \"a\"\nversion = \"1.0\"\ndescription = \"d\"\n",
                &["adapter.toml: version: \"1.0\" is not semver ("],
            ),
            (
                "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"   \\n \"\n",
                &["adapter.toml: description:", "empty"],
            ),
            (
                "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"\"\n",
                &["adapter.toml: description:", "empty"],
            ),
            (
                "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\nauthor = \"x\"\n",
                &["adapter.toml: author: unknown key"],
            ),
            (
                "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\n[extra]\nx = 1\n",
                &["adapter.toml: extra: unknown key"],
            ),
            (
                "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\ntags = [\"Math\"]\n",
                &["adapter.toml: tags[0]:"],
            ),
            (
                "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\ntags = [\"m\", \"m\"]\n",
                &["adapter.toml: tags[1]:", "repeated"],
            ),
            (
                "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\nlicense = \"\"\n",
                &["adapter.toml: license:", "empty"],
            ),
            (
                "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\nexamples = [\"ok\", \" \"]\n",
                &["adapter.toml: examples[1]:", "empty"],
            ),
            (
                "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\nexamples = \"one\"\n",
                &["adapter.toml: examples:"],
            ),
        ];
        for (text, parts) in cases {
            assert_msg(&toml_err(text), parts);
        }
    }

    #[test]
    fn toml_limits() {
        let tags: Vec<String> = (0..17).map(|i| format!("\"t{i}\"")).collect();
        let text = format!("{VALID_TOML}tags = [{}]\n", tags.join(", "));
        assert_msg(&toml_err(&text), &["adapter.toml: tags:", "more than 16"]);

        let long_tag = "a".repeat(33);
        let text = format!("{VALID_TOML}tags = [\"{long_tag}\"]\n");
        assert_msg(
            &toml_err(&text),
            &["adapter.toml: tags[0]:", "longer than 32"],
        );

        let long_name = "a".repeat(65);
        let text = format!("name = \"{long_name}\"\nversion = \"1.0.0\"\ndescription = \"d\"\n");
        assert_msg(&toml_err(&text), &["adapter.toml: name:", "longer than 64"]);

        let long_desc = "d".repeat(2001);
        let text = format!("name = \"a\"\nversion = \"1.0.0\"\ndescription = \"{long_desc}\"\n");
        assert_msg(
            &toml_err(&text),
            &["adapter.toml: description:", "more than 2000"],
        );

        let examples: Vec<String> = (0..33).map(|i| format!("\"e{i}\"")).collect();
        let text = format!("{VALID_TOML}examples = [{}]\n", examples.join(", "));
        assert_msg(
            &toml_err(&text),
            &["adapter.toml: examples:", "more than 32"],
        );

        let long_ex = "e".repeat(501);
        let text = format!("{VALID_TOML}examples = [\"{long_ex}\"]\n");
        assert_msg(
            &toml_err(&text),
            &["adapter.toml: examples[0]:", "more than 500"],
        );

        let long_license = "l".repeat(65);
        let text = format!("{VALID_TOML}license = \"{long_license}\"\n");
        assert_msg(
            &toml_err(&text),
            &["adapter.toml: license:", "more than 64"],
        );

        // Exactly at the limits is fine.
        let tags: Vec<String> = (0..16).map(|i| format!("\"t{i}\"")).collect();
        let text = format!(
            "name = \"{}\"\nversion = \"1.0.0\"\ndescription = \"{}\"\ntags = [{}]\n",
            "a".repeat(64),
            "d".repeat(2000),
            tags.join(", ")
        );
        let dir = valid_package("limits");
        std::fs::write(dir.path().join(ADAPTER_TOML), text).unwrap();
        AdapterPackage::load(dir.path()).unwrap();
    }

    #[test]
    fn toml_not_utf8_and_too_large() {
        let dir = valid_package("utf8");
        std::fs::write(dir.path().join(ADAPTER_TOML), [0xff, 0xfe, b'a']).unwrap();
        assert_msg(&load_err(dir.path()), &["adapter.toml: syntax:", "UTF-8"]);
        let big = format!("{VALID_TOML}# {}\n", "x".repeat(MAX_TOML_SIZE as usize));
        std::fs::write(dir.path().join(ADAPTER_TOML), big).unwrap();
        assert_msg(&load_err(dir.path()), &["adapter.toml: size:"]);
    }

    #[test]
    fn config_refusals() {
        let ok_tail = r#""target_modules":["q_proj"],"base_model_name_or_path":"m""#;
        let cases: Vec<(String, &[&str])> = vec![
            (
                "{not json".into(),
                &["adapter_config.json: syntax:", "not valid JSON"],
            ),
            (
                "[1, 2]".into(),
                &["adapter_config.json: root:", "not a JSON object", "array"],
            ),
            (
                format!("{{{ok_tail}}}"),
                &["adapter_config.json: r: missing"],
            ),
            (
                format!("{{\"r\":0,{ok_tail}}}"),
                &["adapter_config.json: r:", "0 is not in"],
            ),
            (
                format!("{{\"r\":4097,{ok_tail}}}"),
                &["adapter_config.json: r:", "4097"],
            ),
            (
                format!("{{\"r\":-1,{ok_tail}}}"),
                &["adapter_config.json: r:", "not a positive integer"],
            ),
            (
                format!("{{\"r\":4.5,{ok_tail}}}"),
                &["adapter_config.json: r:", "not a positive integer"],
            ),
            (
                format!("{{\"r\":\"4\",{ok_tail}}}"),
                &["adapter_config.json: r:", "not a positive integer"],
            ),
            (
                format!("{{\"peft_type\":\"IA3\",\"r\":4,{ok_tail}}}"),
                &["adapter_config.json: peft_type:", "\"IA3\" is not \"LORA\""],
            ),
            (
                format!("{{\"peft_type\":1,\"r\":4,{ok_tail}}}"),
                &["adapter_config.json: peft_type:"],
            ),
            (
                format!("{{\"lora_alpha\":\"8\",\"r\":4,{ok_tail}}}"),
                &["adapter_config.json: lora_alpha:", "not a number"],
            ),
            (
                r#"{"r":4,"base_model_name_or_path":"m"}"#.into(),
                &["adapter_config.json: target_modules: missing"],
            ),
            (
                r#"{"r":4,"target_modules":[]}"#.into(),
                &["adapter_config.json: target_modules: is empty"],
            ),
            (
                r#"{"r":4,"target_modules":["q_proj", 3]}"#.into(),
                &["adapter_config.json: target_modules[1]:", "not a string"],
            ),
            (
                r#"{"r":4,"target_modules":{"a":1}}"#.into(),
                &["adapter_config.json: target_modules:", "an object"],
            ),
            (
                r#"{"r":4,"target_modules":"q_proj","base_model_name_or_path":7}"#.into(),
                &[
                    "adapter_config.json: base_model_name_or_path:",
                    "not a string",
                ],
            ),
            (
                r#"{"r":4,"target_modules":"q_proj","rank_pattern":{"q_proj":8}}"#.into(),
                &["adapter_config.json: rank_pattern:", "not supported"],
            ),
        ];
        for (text, parts) in &cases {
            assert_msg(&config_err(text), parts);
        }
    }

    #[test]
    fn config_target_modules_string_and_null_base() {
        let dir = valid_package("tmstr");
        std::fs::write(
            dir.path().join(ADAPTER_CONFIG),
            r#"{"r":4,"lora_alpha":8.5,"target_modules":"all-linear","base_model_name_or_path":null}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join(ADAPTER_TOML),
            format!("{VALID_TOML}base_model = \"x/y\"\n"),
        )
        .unwrap();
        let pkg = AdapterPackage::load(dir.path()).unwrap();
        assert_eq!(pkg.target_modules, vec!["all-linear"]);
        assert_eq!(pkg.base_model, "x/y");
    }

    const T: &str = "base_model.model.model.layers.0.self_attn.q_proj";

    /// A valid A/B pair header for r = 4, in 4 and out 4: 64 + 64 bytes of F32.
    fn pair_header(a_shape: &str, b_shape: &str, a_off: &str, b_off: &str) -> String {
        format!(
            r#"{{"__metadata__":{{"format":"pt"}},"{T}.lora_A.weight":{{"dtype":"F32","shape":{a_shape},"data_offsets":{a_off}}},"{T}.lora_B.weight":{{"dtype":"F32","shape":{b_shape},"data_offsets":{b_off}}}}}"#
        )
    }

    #[test]
    fn handmade_safetensors_valid() {
        let dir = valid_package("hand");
        let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[64,128]");
        std::fs::write(dir.path().join(ADAPTER_WEIGHTS), safetensors(&h, 128)).unwrap();
        let pkg = AdapterPackage::load(dir.path()).unwrap();
        assert_eq!(pkg.tensors, 2);
    }

    #[test]
    fn weights_refusals() {
        let w = "adapter_model.safetensors";
        // Too short for the length prefix.
        assert_msg(&weights_err(&[1, 2, 3]), &[w, ": header:", "too short"]);
        assert_msg(&weights_err(&[]), &[w, ": header:", "too short"]);
        // Header length beyond the file.
        let mut b = 1000u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        assert_msg(&weights_err(&b), &[w, ": header:", "beyond the end"]);
        // Header length beyond the 100 MB cap.
        let b = u64::MAX.to_le_bytes().to_vec();
        assert_msg(&weights_err(&b), &[w, ": header:", "more than"]);
        // Header not JSON / not an object / duplicate key.
        assert_msg(
            &weights_err(&safetensors("not json", 0)),
            &[w, ": header:", "not a valid JSON"],
        );
        assert_msg(
            &weights_err(&safetensors("[1]", 0)),
            &[w, ": header:", "not a valid JSON"],
        );
        let dup = format!(
            r#"{{"{T}.lora_A.weight":{{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}},"{T}.lora_A.weight":{{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}}}"#
        );
        assert_msg(
            &weights_err(&safetensors(&dup, 64)),
            &[w, ": header:", "duplicate"],
        );
        // Bad tensor entries.
        let h = format!(r#"{{"{T}.lora_A.weight":{{"dtype":"F32","shape":[4,4]}}}}"#);
        assert_msg(&weights_err(&safetensors(&h, 64)), &[w, T, "data_offsets"]);
        let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[64,128]").replacen("F32", "Q4", 1);
        assert_msg(
            &weights_err(&safetensors(&h, 128)),
            &[w, &format!("{T}.lora_A.weight:"), "unknown dtype"],
        );
        let h = r#"{"__metadata__":{"format":1}}"#;
        assert_msg(&weights_err(&safetensors(h, 0)), &[w, ": __metadata__:"]);
        // Offsets out of range.
        let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[64,1000]");
        assert_msg(
            &weights_err(&safetensors(&h, 128)),
            &[w, &format!("{T}.lora_B.weight:"), "out of range"],
        );
        // End before start.
        let h = pair_header("[4,4]", "[4,4]", "[64,0]", "[64,128]");
        assert_msg(
            &weights_err(&safetensors(&h, 128)),
            &[w, "lora_A.weight:", "end before"],
        );
        // Overlapping.
        let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[32,96]");
        assert_msg(
            &weights_err(&safetensors(&h, 128)),
            &[
                w,
                &format!("{T}.lora_B.weight:"),
                "overlap",
                "lora_A.weight [0, 64]",
            ],
        );
        // Gap between tensors.
        let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[72,136]");
        assert_msg(
            &weights_err(&safetensors(&h, 136)),
            &[w, "lora_B.weight:", "gap"],
        );
        // File length mismatch (trailing bytes).
        let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[64,128]");
        assert_msg(
            &weights_err(&safetensors(&h, 130)),
            &[w, ": size:", "file is"],
        );
        // dtype x shape not matching the byte length.
        let h = pair_header("[4,5]", "[4,4]", "[0,64]", "[64,128]");
        assert_msg(
            &weights_err(&safetensors(&h, 128)),
            &[
                w,
                &format!("{T}.lora_A.weight:"),
                "dtype F32 x shape [4, 5] is 80 bytes",
            ],
        );
        // Shape overflow.
        let h = pair_header("[4294967296,4294967296]", "[4,4]", "[0,64]", "[64,128]");
        assert_msg(
            &weights_err(&safetensors(&h, 128)),
            &[w, "lora_A.weight:", "overflows"],
        );
        // lora_A shape[0] != r (r = 4).
        let h = pair_header("[8,2]", "[4,4]", "[0,64]", "[64,128]");
        assert_msg(
            &weights_err(&safetensors(&h, 128)),
            &[
                w,
                &format!("{T}.lora_A.weight: shape [8, 2] does not match r = 4"),
            ],
        );
        // lora_B shape[1] != r.
        let h = pair_header("[4,4]", "[8,2]", "[0,64]", "[64,128]");
        assert_msg(
            &weights_err(&safetensors(&h, 128)),
            &[
                w,
                &format!("{T}.lora_B.weight: shape [8, 2] does not match r = 4"),
            ],
        );
        // lora_A not 2-D.
        let h = pair_header("[4,2,2]", "[4,4]", "[0,64]", "[64,128]");
        assert_msg(
            &weights_err(&safetensors(&h, 128)),
            &[w, "lora_A.weight: shape [4, 2, 2]"],
        );
        // lora_A without lora_B, and the reverse.
        let h = format!(
            r#"{{"{T}.lora_A.weight":{{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}}}"#
        );
        assert_msg(
            &weights_err(&safetensors(&h, 64)),
            &[
                w,
                &format!("{T}.lora_A.weight: no matching {T}.lora_B.weight"),
            ],
        );
        let h = format!(
            r#"{{"{T}.lora_B.weight":{{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}}}"#
        );
        assert_msg(
            &weights_err(&safetensors(&h, 64)),
            &[
                w,
                &format!("{T}.lora_B.weight: no matching {T}.lora_A.weight"),
            ],
        );
        // No LoRA tensors at all.
        let h = r#"{"model.embed.weight":{"dtype":"F16","shape":[4,4],"data_offsets":[0,32]}}"#;
        assert_msg(
            &weights_err(&safetensors(h, 32)),
            &[w, ": tensors:", "no LoRA tensors"],
        );
        assert_msg(
            &weights_err(&safetensors("{}", 0)),
            &[w, ": tensors:", "no LoRA tensors"],
        );
    }

    #[test]
    fn weights_trailing_byte_on_real_package() {
        let dir = valid_package("trail");
        let p = dir.path().join(ADAPTER_WEIGHTS);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.push(0);
        std::fs::write(&p, &bytes).unwrap();
        assert_msg(&load_err(dir.path()), &["adapter_model.safetensors: size:"]);
    }

    #[test]
    fn weights_rank_mismatch_with_config() {
        let dir = valid_package("rank");
        let p = dir.path().join(ADAPTER_CONFIG);
        let text = std::fs::read_to_string(&p)
            .unwrap()
            .replace("\"r\": 4", "\"r\": 8");
        std::fs::write(&p, text).unwrap();
        assert_msg(
            &load_err(dir.path()),
            &[
                "adapter_model.safetensors: base_model.model.model.layers.",
                "does not match r = 8",
            ],
        );
    }

    #[test]
    fn test_package_is_deterministic() {
        let a = TempDir::new("det-a");
        let b = TempDir::new("det-b");
        for d in [&a, &b] {
            write_test_package(d.path(), "x", "0.1.0", "d", &[], 2, 8, 1).unwrap();
        }
        let wa = std::fs::read(a.path().join(ADAPTER_WEIGHTS)).unwrap();
        let wb = std::fs::read(b.path().join(ADAPTER_WEIGHTS)).unwrap();
        assert_eq!(wa, wb);
        // Header is 8-aligned like the reference writer's.
        let n = u64::from_le_bytes(wa[..8].try_into().unwrap());
        assert_eq!(n % 8, 0);
    }

    #[test]
    fn directory_in_place_of_file() {
        let dir = valid_package("isdir");
        std::fs::remove_file(dir.path().join(ADAPTER_CONFIG)).unwrap();
        std::fs::create_dir(dir.path().join(ADAPTER_CONFIG)).unwrap();
        assert_msg(&load_err(dir.path()), &["adapter_config.json:"]);
    }
}
