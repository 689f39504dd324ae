//! Small valid packages written from scratch, for tests, benchmarks and demos
//! (feature `test-support`, and this crate's own tests).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use super::{ADAPTER_CONFIG, ADAPTER_TOML, ADAPTER_WEIGHTS};

mod llama;
pub use llama::{
    write_llama_adapter, write_llama_package, LlamaAdapterSpec, LlamaShape, SMOLLM2_135M,
};

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

    let r64 = u64::from(r);
    let h64 = u64::try_from(hidden).map_err(|_| too_big())?;

    // Tensors in data order; each has r*hidden f32 elements.
    let mut specs: Vec<(String, [u64; 2])> = Vec::new();
    for i in 0..layers {
        for m in ["q_proj", "v_proj"] {
            let p = format!("base_model.model.model.layers.{i}.self_attn.{m}");
            specs.push((format!("{p}.lora_A.weight"), [r64, h64]));
            specs.push((format!("{p}.lora_B.weight"), [h64, r64]));
        }
    }
    // Deterministic xorshift values in [-0.01, 0.01), seeded by the name and rank.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15 ^ r64.wrapping_mul(0x100_0000_01B3);
    for b in name.bytes() {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
    }
    let mut rng = XorShift::new(seed);
    write_f32_safetensors(&dir.join(ADAPTER_WEIGHTS), &specs, |_, _| {
        (rng.unit() - 0.5) * 0.02
    })
}

/// The error for a fixture whose sizes overflow.
fn too_big() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "test package too large")
}

/// A small deterministic generator for fixture weights (xorshift64).
pub(super) struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (any value; zero is avoided).
    pub(super) fn new(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    /// The next value, uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f32 {
        let s = &mut self.0;
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Write a safetensors file of 2-D f32 tensors `specs` (name, shape) in that order,
/// element `j` of tensor `i` being `value(i, j)`, laid out as the `safetensors` writer
/// does (header padded with spaces to 8 bytes, data in header order).
pub(super) fn write_f32_safetensors(
    path: &Path,
    specs: &[(String, [u64; 2])],
    mut value: impl FnMut(usize, u64) -> f32,
) -> io::Result<()> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut offset = 0u64;
    for (name, shape) in specs {
        let bytes = shape[0]
            .checked_mul(shape[1])
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(too_big)?;
        let end = offset.checked_add(bytes).ok_or_else(too_big)?;
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

    let mut out = BufWriter::new(File::create(path)?);
    out.write_all(&(header_bytes.len() as u64).to_le_bytes())?;
    out.write_all(&header_bytes)?;
    for (i, (_, shape)) in specs.iter().enumerate() {
        for j in 0..shape[0] * shape[1] {
            out.write_all(&value(i, j).to_le_bytes())?;
        }
    }
    out.flush()
}

/// Helpers shared by this crate's tests.
#[cfg(test)]
pub(crate) mod testutil {
    pub(crate) use grid_test_support::TempDir;

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
