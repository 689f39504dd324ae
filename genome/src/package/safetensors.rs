//! `adapter_model.safetensors`, checked by its header alone: offsets, shapes and dtypes
//! against the file length and the LoRA rank. The tensor data is never read.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use serde::de::{MapAccess, Visitor};
use serde::Deserialize;

use super::{PackageError, ADAPTER_WEIGHTS, MAX_HEADER_LEN, MAX_WEIGHTS_SIZE};

/// What the weights check reports back.
#[derive(Debug)]
pub(super) struct WeightsSummary {
    pub(super) tensors: usize,
    pub(super) size: u64,
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
pub(super) fn check_weights(path: &Path, rank: u32) -> Result<WeightsSummary, PackageError> {
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
