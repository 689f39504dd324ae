//! `adapter_config.json`: the PEFT LoRA configuration, of which we take the rank, the
//! target modules and the base model.

use super::fields::check_text;
use super::{PackageError, ADAPTER_CONFIG, MAX_BASE_MODEL_LEN, MAX_RANK};

/// What we take from the PEFT config.
#[derive(Debug)]
pub(super) struct AdapterConfig {
    pub(super) rank: u32,
    pub(super) target_modules: Vec<String>,
    /// `base_model_name_or_path`, when present and non-empty.
    pub(super) base_model: Option<String>,
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
pub(super) fn parse_adapter_config(bytes: &[u8]) -> Result<AdapterConfig, PackageError> {
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
