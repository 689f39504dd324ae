//! PEFT LoRA adapters, applied beside the base weights for one request.
//!
//! An adapter directory holds `adapter_config.json` (rank `r`, `lora_alpha`,
//! `target_modules`, `use_rslora`) and `adapter_model.safetensors` with, per adapted
//! projection, `base_model.model.model.layers.{i}.{self_attn.q_proj|...|mlp.down_proj}`
//! `.lora_A.weight` `[r, in]` and `.lora_B.weight` `[out, r]` (f32, f16 or bf16). Each is
//! checked against the model; a refusal names the file or the tensor.
//!
//! For a target projection the worker computes `y = W·x + s·B·(A·x)` with
//! `s = alpha / r` (`alpha / sqrt(r)` with rsLoRA): the quantized base weight `W` is
//! never changed, so a request without adapter gets exactly the base output and
//! switching adapters costs nothing but loading one. `B` of `q_proj`/`k_proj` is put in
//! the GGUF's row order first ([`super::permute`]).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use candle_core::quantized::QMatMul;
use candle_core::{DType, Module, Tensor};
use safetensors::{Dtype, SafeTensors};

use super::config::{LlamaConfig, Proj};
use super::model::device;
use super::permute::permute_rows;

/// The PEFT configuration file.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The PEFT weights file.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// Largest `adapter_config.json` read.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// Largest `adapter_model.safetensors` read.
pub const MAX_WEIGHTS_BYTES: u64 = 512 << 20;
/// Largest rank accepted (as the genome package check).
pub const MAX_RANK: u64 = 4096;

/// Why an adapter was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// A file could not be read.
    #[error("{file}: {reason}")]
    Io {
        /// The file.
        file: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// `adapter_config.json` breaks a rule.
    #[error("{CONFIG_FILE}: {field}: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor of the weights file does not fit this model.
    #[error("{WEIGHTS_FILE}: {tensor}: {reason}")]
    Tensor {
        /// The tensor's name.
        tensor: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The adapter would take more memory than allowed.
    #[error("the adapter needs {bytes} bytes in memory, more than {max}")]
    TooLarge {
        /// Bytes it needs as f32.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A tensor computation failed.
    #[error("adapter tensors: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The low-rank pair of one projection, ready to apply: `x·a_t·b_t = s·B·(A·x)`.
pub struct LoraPair {
    /// `Aᵀ`, `[in, r]`.
    pub a_t: Tensor,
    /// `(s·B)ᵀ`, `[r, out]`, rows of B in the GGUF's order.
    pub b_t: Tensor,
}

/// A pair as plain `f32` rows for the native pass: `a_t` `[in, r]`, `b_t` `[r, out]`
/// (scale included), row-major.
pub struct PlainPair {
    /// The rank.
    pub r: usize,
    /// `Aᵀ`.
    pub a_t: Vec<f32>,
    /// `(s·B)ᵀ`.
    pub b_t: Vec<f32>,
}

/// Which pass an adapter is loaded for: each holds its pairs in its own form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterForm {
    /// Candle tensors, for the `f16`, `f32` and `quantized` passes ([`project`]).
    Tensors,
    /// Plain `f32` rows, for the native pass.
    Plain,
}

impl PlainPair {
    /// The same pair as candle tensors (the rows are moved, not copied).
    fn into_tensors(self) -> candle_core::Result<LoraPair> {
        let (inp, out) = (self.a_t.len() / self.r, self.b_t.len() / self.r);
        Ok(LoraPair {
            a_t: Tensor::from_vec(self.a_t, (inp, self.r), &device())?,
            b_t: Tensor::from_vec(self.b_t, (self.r, out), &device())?,
        })
    }
}

/// A loaded adapter: a pair for each adapted (layer, projection), in the form of the
/// pass it was loaded for (made at load, so nothing about it can fail afterwards).
pub struct Adapter {
    pairs: Pairs,
    /// Memory its pairs take, bytes.
    pub bytes: usize,
}

/// An adapter's pairs, indexed `layer * 7 + projection`.
enum Pairs {
    Tensors(Vec<Option<LoraPair>>),
    Plain(Vec<Option<PlainPair>>),
}

impl Adapter {
    /// An adapter with no pairs that counts `bytes` (for cache tests).
    #[cfg(test)]
    pub(crate) fn empty(bytes: usize) -> Adapter {
        Adapter {
            pairs: Pairs::Tensors(Vec::new()),
            bytes,
        }
    }

    /// The pass it was loaded for.
    pub fn form(&self) -> AdapterForm {
        match self.pairs {
            Pairs::Tensors(_) => AdapterForm::Tensors,
            Pairs::Plain(_) => AdapterForm::Plain,
        }
    }

    /// The pairs as plain rows, in the same order as [`Adapter::get`] indexes them
    /// (`layer * 7 + projection`), if it was loaded for the native pass.
    pub fn plain(&self) -> Option<&[Option<PlainPair>]> {
        match &self.pairs {
            Pairs::Plain(v) => Some(v),
            Pairs::Tensors(_) => None,
        }
    }

    /// The pair for `proj` of layer `layer`, if the adapter has one (and was loaded as
    /// tensors).
    pub fn get(&self, layer: usize, proj: Proj) -> Option<&LoraPair> {
        match &self.pairs {
            Pairs::Tensors(v) => v
                .get(layer * Proj::ALL.len() + proj.index())
                .and_then(Option::as_ref),
            Pairs::Plain(_) => None,
        }
    }
}

/// `w·x`, plus `s·B·(A·x)` with a pair: the projection of `x` `[tokens, in]`.
pub fn project(w: &QMatMul, x: &Tensor, lora: Option<&LoraPair>) -> candle_core::Result<Tensor> {
    let y = w.forward(x)?;
    match lora {
        None => Ok(y),
        Some(l) => y + x.matmul(&l.a_t)?.matmul(&l.b_t)?,
    }
}

/// What the worker takes from `adapter_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// The rank.
    pub r: usize,
    /// The scale `alpha / r` (or `alpha / sqrt(r)`).
    pub scale: f32,
    /// The projections it targets.
    pub targets: Vec<Proj>,
}

fn config_err(field: &'static str, reason: impl Into<String>) -> AdapterError {
    AdapterError::Config {
        field,
        reason: reason.into(),
    }
}

/// Parse `adapter_config.json`.
pub fn parse_config(bytes: &[u8]) -> Result<LoraConfig, AdapterError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| config_err("syntax", e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| config_err("root", "not a JSON object"))?;
    if let Some(t) = obj.get("peft_type") {
        if t.as_str() != Some("LORA") {
            return Err(config_err("peft_type", format!("{t} is not \"LORA\"")));
        }
    }
    let r = obj
        .get("r")
        .and_then(|r| r.as_u64())
        .filter(|r| (1..=MAX_RANK).contains(r))
        .ok_or_else(|| config_err("r", format!("missing or not in 1..={MAX_RANK}")))?;
    let alpha = match obj.get("lora_alpha") {
        None => 8.0, // PEFT's default
        Some(a) => a
            .as_f64()
            .filter(|a| a.is_finite())
            .ok_or_else(|| config_err("lora_alpha", format!("{a} is not a number")))?,
    };
    let flag = |field: &'static str| -> Result<bool, AdapterError> {
        match obj.get(field) {
            None | Some(serde_json::Value::Null) => Ok(false),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(other) => Err(config_err(field, format!("{other} is not a boolean"))),
        }
    };
    let rslora = flag("use_rslora")?;
    if flag("use_dora")? {
        return Err(config_err("use_dora", "DoRA adapters are not supported"));
    }
    if flag("fan_in_fan_out")? {
        return Err(config_err(
            "fan_in_fan_out",
            "transposed (Conv1D) weights are not supported",
        ));
    }
    if let Some(b) = obj.get("bias") {
        if !(b.is_null() || b.as_str() == Some("none")) {
            return Err(config_err(
                "bias",
                format!("{b}: only \"none\" is supported"),
            ));
        }
    }
    for field in ["rank_pattern", "alpha_pattern"] {
        if let Some(p) = obj.get(field) {
            if !(p.is_null() || p.as_object().is_some_and(|m| m.is_empty())) {
                return Err(config_err(
                    field,
                    "per-module ranks or alphas are not supported",
                ));
            }
        }
    }
    let names: Vec<String> = match obj.get("target_modules") {
        Some(serde_json::Value::String(s)) if s == "all-linear" => Proj::ALL
            .iter()
            .map(|p| p.peft_name().to_string())
            .collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| config_err("target_modules", format!("{i} is not a string")))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(config_err(
                "target_modules",
                "missing, or not a string or a list",
            ))
        }
    };
    let mut targets = Vec::new();
    for n in &names {
        let p = Proj::from_peft(n).ok_or_else(|| {
            config_err(
                "target_modules",
                format!("{n:?} is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"),
            )
        })?;
        if !targets.contains(&p) {
            targets.push(p);
        }
    }
    if targets.is_empty() {
        return Err(config_err("target_modules", "is empty"));
    }
    let r_f = r as f64;
    let scale = if rslora {
        alpha / r_f.sqrt()
    } else {
        alpha / r_f
    };
    Ok(LoraConfig {
        r: r as usize,
        scale: scale as f32,
        targets,
    })
}

/// Read a whole file of at most `max` bytes.
fn read_capped(path: &Path, file: &'static str, max: u64) -> Result<Vec<u8>, AdapterError> {
    let io = |e: std::io::Error| AdapterError::Io {
        file,
        reason: e.to_string(),
    };
    let f = File::open(path).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(AdapterError::Io {
            file,
            reason: "not a regular file".into(),
        });
    }
    if meta.len() > max {
        return Err(AdapterError::Io {
            file,
            reason: format!("{} bytes, more than {max}", meta.len()),
        });
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() as u64 > max {
        return Err(AdapterError::Io {
            file,
            reason: format!("more than {max} bytes"),
        });
    }
    Ok(buf)
}

/// Which tensor a name is: (layer, projection, is B).
fn parse_name(name: &str, layers: usize) -> Option<(usize, Proj, bool)> {
    let rest = name.strip_prefix("base_model.model.model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok().filter(|l| *l < layers)?;
    let (module, is_b) = if let Some(m) = rest.strip_suffix(".lora_A.weight") {
        (m, false)
    } else {
        (rest.strip_suffix(".lora_B.weight")?, true)
    };
    let proj = Proj::ALL.into_iter().find(|p| p.hf_path() == module)?;
    Some((layer, proj, is_b))
}

/// One tensor as f32 values, its shape checked to be `want`.
fn read_tensor(
    st: &SafeTensors<'_>,
    name: &str,
    want: [usize; 2],
) -> Result<Vec<f32>, AdapterError> {
    let bad = |reason: String| AdapterError::Tensor {
        tensor: name.to_string(),
        reason,
    };
    let view = st.tensor(name).map_err(|e| bad(e.to_string()))?;
    if view.shape() != want {
        return Err(bad(format!(
            "shape {:?} does not fit this model (want {want:?})",
            view.shape()
        )));
    }
    let dtype = match view.dtype() {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        other => return Err(bad(format!("dtype {other:?} (f32, f16 or bf16 only)"))),
    };
    let values = Tensor::from_raw_buffer(view.data(), dtype, &want, &device())?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad("holds a value that is not finite".into()));
    }
    Ok(values)
}

/// Load the adapter in `dir` for `model` and the pass that takes `form`, refusing one
/// that takes more than `max_bytes` of memory.
pub fn load(
    dir: &Path,
    model: &LlamaConfig,
    form: AdapterForm,
    max_bytes: usize,
) -> Result<Adapter, AdapterError> {
    let cfg = parse_config(&read_capped(
        &dir.join(CONFIG_FILE),
        CONFIG_FILE,
        MAX_CONFIG_BYTES,
    )?)?;
    let bytes = read_capped(&dir.join(WEIGHTS_FILE), WEIGHTS_FILE, MAX_WEIGHTS_BYTES)?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| AdapterError::Io {
        file: WEIGHTS_FILE,
        reason: e.to_string(),
    })?;

    // Which (layer, projection) pairs the file has; every name must be one of ours.
    let n = model.layers * Proj::ALL.len();
    let mut has = vec![[false; 2]; n];
    for name in st.names() {
        let (layer, proj, is_b) =
            parse_name(name, model.layers).ok_or_else(|| AdapterError::Tensor {
                tensor: name.to_string(),
                reason: format!(
                    "not a lora_A/lora_B weight of a projection of layers 0..{} of this model",
                    model.layers
                ),
            })?;
        if !cfg.targets.contains(&proj) {
            return Err(AdapterError::Tensor {
                tensor: name.to_string(),
                reason: format!("{} is not in target_modules", proj.peft_name()),
            });
        }
        has[layer * Proj::ALL.len() + proj.index()][usize::from(is_b)] = true;
    }

    // Plain rows first; the tensor form takes them over without a copy.
    let mut plain: Vec<Option<PlainPair>> = Vec::with_capacity(n);
    let mut total = 0usize;
    let r = cfg.r;
    for layer in 0..model.layers {
        for proj in Proj::ALL {
            let prefix = format!("base_model.model.model.layers.{layer}.{}", proj.hf_path());
            let [a, b] = has[layer * Proj::ALL.len() + proj.index()];
            if !a && !b {
                plain.push(None);
                continue;
            }
            if a != b {
                let (present, missing) = if a {
                    ("lora_A", "lora_B")
                } else {
                    ("lora_B", "lora_A")
                };
                return Err(AdapterError::Tensor {
                    tensor: format!("{prefix}.{present}.weight"),
                    reason: format!("has no matching {missing}"),
                });
            }
            let (inp, out) = model.dims(proj);
            total += 4 * r * (inp + out);
            if total > max_bytes {
                return Err(AdapterError::TooLarge {
                    bytes: total,
                    max: max_bytes,
                });
            }
            let a_name = format!("{prefix}.lora_A.weight");
            let b_name = format!("{prefix}.lora_B.weight");
            let a = read_tensor(&st, &a_name, [r, inp])?;
            let mut b = read_tensor(&st, &b_name, [out, r])?;
            let heads = match proj {
                Proj::Q => Some(model.heads),
                Proj::K => Some(model.kv_heads),
                _ => None,
            };
            if let Some(heads) = heads {
                b = permute_rows(&b, out, r, heads).ok_or_else(|| AdapterError::Tensor {
                    tensor: b_name.clone(),
                    reason: "rows do not split into the model's heads".into(),
                })?;
            }
            let a_t = transpose(&a, r, inp);
            let b_t = transpose(&b, out, r)
                .into_iter()
                .map(|v| v * cfg.scale)
                .collect();
            plain.push(Some(PlainPair { r, a_t, b_t }));
        }
    }
    if plain.iter().all(Option::is_none) {
        return Err(AdapterError::Tensor {
            tensor: "(none)".into(),
            reason: "the file has no lora_A/lora_B pair".into(),
        });
    }
    let pairs = match form {
        AdapterForm::Plain => Pairs::Plain(plain),
        AdapterForm::Tensors => Pairs::Tensors(
            plain
                .into_iter()
                .map(|p| p.map(PlainPair::into_tensors).transpose())
                .collect::<candle_core::Result<_>>()?,
        ),
    };
    Ok(Adapter {
        pairs,
        bytes: total,
    })
}

/// The `[cols, rows]` transpose of the row-major `[rows, cols]` matrix `m`.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; m.len()];
    for (i, row) in m.chunks_exact(cols).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t[j * rows + i] = v;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use grid_genome::package::{write_llama_adapter, LlamaAdapterSpec, LlamaShape};
    use grid_test_support::TempDir;

    const TINY: LlamaShape = LlamaShape {
        layers: 2,
        hidden: 8,
        heads: 2,
        kv_heads: 1,
        ffn: 16,
    };

    fn config(shape: LlamaShape) -> LlamaConfig {
        LlamaConfig {
            name: "tiny".into(),
            layers: shape.layers,
            hidden: shape.hidden,
            heads: shape.heads,
            kv_heads: shape.kv_heads,
            head_dim: shape.hidden / shape.heads,
            ffn: shape.ffn,
            context: 64,
            rms_eps: 1e-5,
            rope_base: 10_000.0,
        }
    }

    #[test]
    fn an_adapter_loads_for_its_model_and_names_the_tensor_that_does_not_fit() {
        let dir = TempDir::new("lora-load");
        let spec = LlamaAdapterSpec {
            shape: TINY,
            r: 2,
            alpha: 4.0,
            strength: 1.0,
            seed: 9,
        };
        write_llama_adapter(dir.path(), &spec).unwrap();
        let a = load(dir.path(), &config(TINY), AdapterForm::Tensors, 1 << 20).unwrap();
        for layer in 0..2 {
            for p in Proj::ALL {
                let pair = a.get(layer, p).expect("every projection adapted");
                let (inp, out) = config(TINY).dims(p);
                assert_eq!(pair.a_t.dims(), [inp, 2]);
                assert_eq!(pair.b_t.dims(), [2, out]);
            }
        }
        // Two layers of r = 2 pairs in f32, in one form.
        let bytes = 2 * 4 * 2 * (8 + 8 + 8 + 4 + 8 + 4 + 8 + 8 + 8 + 16 + 8 + 16 + 16 + 8);
        assert_eq!(a.bytes, bytes);
        assert_eq!(a.form(), AdapterForm::Tensors);
        assert!(a.plain().is_none());
        let plain = load(dir.path(), &config(TINY), AdapterForm::Plain, 1 << 20).unwrap();
        assert_eq!((plain.form(), plain.bytes), (AdapterForm::Plain, bytes));
        assert!(plain.get(0, Proj::Q).is_none());
        assert!(plain.plain().unwrap().iter().all(Option::is_some));

        let wider = LlamaShape { hidden: 16, ..TINY };
        let e = load(dir.path(), &config(wider), AdapterForm::Tensors, 1 << 20)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
                && e.contains("[2, 8]")
                && e.contains("[2, 16]"),
            "{e}"
        );
        let deeper = LlamaShape { layers: 1, ..TINY };
        let e = load(dir.path(), &config(deeper), AdapterForm::Tensors, 1 << 20)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("layers.1."), "{e}");
        let e = load(dir.path(), &config(TINY), AdapterForm::Tensors, 100)
            .err()
            .unwrap();
        assert!(matches!(e, AdapterError::TooLarge { .. }), "{e}");
        let e = load(
            &dir.path().join("nowhere"),
            &config(TINY),
            AdapterForm::Tensors,
            1 << 20,
        )
        .err()
        .unwrap();
        assert!(e.to_string().starts_with(CONFIG_FILE), "{e}");
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn the_unmerged_delta_equals_the_merged_weight() {
        // W [out 6, in 8], A [r 2, 8], B [6, 2], s = 16 / 2; x: 3 tokens.
        let (out, inp, r, s) = (6usize, 8usize, 2usize, 8.0f64);
        let dev = device();
        let w = Tensor::from_vec(values(out * inp, 1), (out, inp), &dev).unwrap();
        let a = Tensor::from_vec(values(r * inp, 2), (r, inp), &dev).unwrap();
        let b = Tensor::from_vec(values(out * r, 3), (out, r), &dev).unwrap();
        let x = Tensor::from_vec(values(3 * inp, 4), (3, inp), &dev).unwrap();
        let qw = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::F32).unwrap()).unwrap();
        let pair = LoraPair {
            a_t: a.t().unwrap().contiguous().unwrap(),
            b_t: (&b * s).unwrap().t().unwrap().contiguous().unwrap(),
        };
        let got = project(&qw, &x, Some(&pair)).unwrap();
        let merged = (&w + (b.matmul(&a).unwrap() * s).unwrap()).unwrap();
        let want = x.matmul(&merged.t().unwrap()).unwrap();
        let diff = (got - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-4, "max difference {diff}");
        let base = project(&qw, &x, None).unwrap();
        let plain = x.matmul(&w.t().unwrap()).unwrap();
        let diff = (base - plain)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5);
    }

    /// A safetensors file of (name, dtype, shape, little-endian bytes), in that order.
    fn safetensors_file(tensors: &[(&str, &str, [usize; 2], Vec<u8>)]) -> Vec<u8> {
        let mut header = serde_json::Map::new();
        let mut offset = 0;
        for (name, dtype, shape, data) in tensors {
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + data.len()]}),
            );
            offset += data.len();
        }
        let h = serde_json::to_vec(&header).unwrap();
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        for (_, _, _, data) in tensors {
            out.extend_from_slice(data);
        }
        out
    }

    #[test]
    fn f16_and_bf16_weights_load_as_f32_and_q_rows_are_reordered() {
        let dir = TempDir::new("lora-dtypes");
        let cfg = config(TINY); // hidden 8, 2 heads of 4, 1 key/value head
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            br#"{"r": 1, "lora_alpha": 2, "target_modules": ["q_proj", "v_proj"]}"#,
        )
        .unwrap();
        // bf16 is the top half of an f32; these f16 bit patterns are exact.
        let bf16 = |v: &[f32]| -> Vec<u8> {
            v.iter()
                .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
                .collect()
        };
        let f16_bits: [(f32, u16); 4] =
            [(1.0, 0x3C00), (-2.0, 0xC000), (0.5, 0x3800), (0.25, 0x3400)];
        let f16 = |v: &[f32]| -> Vec<u8> {
            v.iter()
                .flat_map(|x| {
                    f16_bits
                        .iter()
                        .find(|(f, _)| f == x)
                        .unwrap()
                        .1
                        .to_le_bytes()
                })
                .collect()
        };
        let a: Vec<f32> = (0..8).map(|i| i as f32 - 3.5).collect();
        // q_proj B: 8 rows of values exact in f16.
        let q_b: Vec<f32> = [1.0, -2.0, 0.5, 0.25, 1.0, -2.0, 0.5, 0.25].to_vec();
        let v_b: Vec<f32> = [0.5, 0.25, 1.0, -2.0].to_vec();
        let p = "base_model.model.model.layers.0.self_attn";
        let file = safetensors_file(&[
            (
                &format!("{p}.q_proj.lora_A.weight"),
                "BF16",
                [1, 8],
                bf16(&a),
            ),
            (
                &format!("{p}.q_proj.lora_B.weight"),
                "F16",
                [8, 1],
                f16(&q_b),
            ),
            (
                &format!("{p}.v_proj.lora_A.weight"),
                "F32",
                [1, 8],
                a.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            (
                &format!("{p}.v_proj.lora_B.weight"),
                "BF16",
                [4, 1],
                bf16(&v_b),
            ),
        ]);
        std::fs::write(dir.path().join(WEIGHTS_FILE), file).unwrap();
        let adapter = load(dir.path(), &cfg, AdapterForm::Tensors, 1 << 20).unwrap();
        assert!(adapter.get(0, Proj::K).is_none() && adapter.get(1, Proj::Q).is_none());
        let q = adapter.get(0, Proj::Q).unwrap();
        let got_a: Vec<f32> = q.a_t.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got_a, a);
        // s = 2 / 1; rows in the GGUF's order for 2 heads.
        let got_b: Vec<f32> = q.b_t.flatten_all().unwrap().to_vec1().unwrap();
        let mut want = vec![0f32; 8];
        for (row, v) in q_b.iter().enumerate() {
            want[super::super::permute::gguf_row(row, 8, 2)] = 2.0 * v;
        }
        assert_eq!(got_b, want);
        assert_ne!(
            got_b,
            q_b.iter().map(|v| 2.0 * v).collect::<Vec<_>>(),
            "reordered"
        );
        let v = adapter.get(0, Proj::V).unwrap();
        let got_v: Vec<f32> = v.b_t.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(
            got_v,
            v_b.iter().map(|x| 2.0 * x).collect::<Vec<_>>(),
            "v is not reordered"
        );
    }

    #[test]
    fn plain_rows_and_tensors_hold_the_same_transposes() {
        // v_proj of TINY: in 8, out 4 (one key/value head of 4); r 2, s = 6 / 2.
        let dir = TempDir::new("lora-plain");
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            br#"{"r": 2, "lora_alpha": 6, "target_modules": ["v_proj"]}"#,
        )
        .unwrap();
        let (inp, out, r, s) = (8usize, 4usize, 2usize, 3.0f32);
        let a = values(r * inp, 5); // [r, in]
        let b = values(out * r, 6); // [out, r]
        let le = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let p = "base_model.model.model.layers.1.self_attn.v_proj";
        let file = safetensors_file(&[
            (&format!("{p}.lora_A.weight"), "F32", [r, inp], le(&a)),
            (&format!("{p}.lora_B.weight"), "F32", [out, r], le(&b)),
        ]);
        std::fs::write(dir.path().join(WEIGHTS_FILE), file).unwrap();
        let want_a: Vec<f32> = (0..inp * r).map(|i| a[(i % r) * inp + i / r]).collect();
        let want_b: Vec<f32> = (0..r * out)
            .map(|i| s * b[(i % out) * r + i / out])
            .collect();

        let tensors = load(dir.path(), &config(TINY), AdapterForm::Tensors, 1 << 20).unwrap();
        assert_eq!(tensors.bytes, 4 * r * (inp + out));
        let pair = tensors.get(1, Proj::V).unwrap();
        assert_eq!(pair.a_t.dims(), [inp, r]);
        assert_eq!(pair.b_t.dims(), [r, out]);
        let got_a: Vec<f32> = pair.a_t.flatten_all().unwrap().to_vec1().unwrap();
        let got_b: Vec<f32> = pair.b_t.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!((got_a, got_b), (want_a.clone(), want_b.clone()));

        let plain = load(dir.path(), &config(TINY), AdapterForm::Plain, 1 << 20).unwrap();
        assert_eq!(plain.bytes, 4 * r * (inp + out));
        let rows = plain.plain().unwrap();
        let index = Proj::ALL.len() + Proj::V.index();
        assert!(rows
            .iter()
            .enumerate()
            .all(|(i, p)| p.is_some() == (i == index)));
        let pair = rows[index].as_ref().unwrap();
        assert_eq!((pair.r, &pair.a_t, &pair.b_t), (r, &want_a, &want_b));
    }

    #[test]
    fn the_config_gives_scale_and_targets() {
        let c =
            parse_config(br#"{"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"]}"#)
                .unwrap();
        assert_eq!((c.r, c.scale, c.targets), (8, 2.0, vec![Proj::Q, Proj::V]));
        let c = parse_config(
            br#"{"r": 4, "lora_alpha": 8, "use_rslora": true, "target_modules": "all-linear"}"#,
        )
        .unwrap();
        assert_eq!((c.scale, c.targets.len()), (4.0, 7));
        for (bad, field) in [
            (&br#"{"r": 0, "target_modules": ["q_proj"]}"#[..], "r"),
            (
                br#"{"r": 4, "target_modules": ["lm_head"]}"#,
                "target_modules",
            ),
            (
                br#"{"r": 4, "use_dora": true, "target_modules": ["q_proj"]}"#,
                "use_dora",
            ),
            (
                br#"{"r": 4, "rank_pattern": {"q": 2}, "target_modules": ["q_proj"]}"#,
                "rank_pattern",
            ),
            (br#"[1]"#, "root"),
        ] {
            let e = parse_config(bad).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    #[test]
    fn tensor_names_map_to_layers_and_projections() {
        assert_eq!(
            parse_name(
                "base_model.model.model.layers.3.self_attn.k_proj.lora_B.weight",
                30
            ),
            Some((3, Proj::K, true))
        );
        assert_eq!(
            parse_name(
                "base_model.model.model.layers.29.mlp.down_proj.lora_A.weight",
                30
            ),
            Some((29, Proj::Down, false))
        );
        assert_eq!(
            parse_name(
                "base_model.model.model.layers.30.mlp.up_proj.lora_A.weight",
                30
            ),
            None
        );
        assert_eq!(
            parse_name("base_model.model.lm_head.lora_A.weight", 30),
            None
        );
    }
}
