//! A llama model's weights, loaded from a GGUF file with candle's quantized types.
//!
//! The projections are kept as [`WeightFormat`] says: dequantized to f16 (the default)
//! or f32 once at load, multiplied with `gemm` (which picks AVX2/FMA code at run time),
//! or quantized as in the file and multiplied with candle's GGML kernels (whose x86
//! SIMD paths exist only when the build enables AVX, and not at all for Q4_1). The token
//! embeddings are dequantized for the lookup (to f16 with f16 weights, else f32), and
//! the output head shares them when the file has no `output.weight` (tied embeddings, as
//! SmolLM2). The weights are
//! never changed after loading: adapters are applied beside them ([`super::lora`]), so
//! any number of requests and adapters share one copy.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Tensor};

use super::config::{LlamaConfig, Proj};
use super::gguf_check::check_header;
use super::lora::AdapterForm;

/// How the projection weights are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// Dequantized to f16 at load: 2 bytes a weight (the default; see docs/llm.md).
    #[default]
    F16,
    /// Dequantized to f32 at load: 4 bytes a weight, the fastest prompt processing.
    F32,
    /// As quantized in the file (Q4_1: 0.625 bytes a weight), candle's GGML kernels.
    Quantized,
    /// As quantized in the file, through our own forward pass and block kernels
    /// ([`super::native`]): Q4_1 and Q8_0 only.
    Native,
}

impl std::str::FromStr for WeightFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f16" => Ok(WeightFormat::F16),
            "f32" => Ok(WeightFormat::F32),
            "q" | "quantized" => Ok(WeightFormat::Quantized),
            "native" => Ok(WeightFormat::Native),
            other => Err(format!("weights {other:?}: native, f16, f32 or quantized")),
        }
    }
}

impl WeightFormat {
    /// What `--weights auto` (the default) picks for the file at `path`: native when
    /// every matrix is in Q4_1 or Q8_0 blocks (the fastest and the least memory, see
    /// docs/llm.md), else f16 for files up to
    /// [`F16_MAX_FILE`](grid_genome::generate::supervisor::F16_MAX_FILE) and the file's
    /// own quantization above it.
    pub fn auto(path: &Path) -> Result<WeightFormat> {
        let (content, len, _) = read_header(path)?;
        let native = content
            .tensor_infos
            .values()
            .filter(|t| t.shape.dims().len() == 2)
            .all(|t| matches!(t.ggml_dtype, GgmlDType::Q4_1 | GgmlDType::Q8_0));
        Ok(if native {
            WeightFormat::Native
        } else if len <= grid_genome::generate::supervisor::F16_MAX_FILE {
            WeightFormat::F16
        } else {
            WeightFormat::Quantized
        })
    }

    /// A matrix for `qt` in this format.
    fn matmul(self, qt: QTensor) -> Result<QMatMul> {
        Ok(match self {
            WeightFormat::F16 => QMatMul::TensorF16(qt.dequantize_f16(&device())?),
            WeightFormat::F32 => QMatMul::Tensor(qt.dequantize(&device())?),
            WeightFormat::Quantized | WeightFormat::Native => QMatMul::from_qtensor(qt)?,
        })
    }
}

/// One transformer block.
pub struct Block {
    /// RMSNorm weight before attention.
    pub attn_norm: Tensor,
    /// RMSNorm weight before the MLP.
    pub ffn_norm: Tensor,
    /// The seven projections, in [`Proj::ALL`] order, rows in the GGUF's order (for q
    /// and k, the converter's RoPE permutation; see [`super::permute`]).
    pub proj: Vec<QMatMul>,
}

/// A loaded llama model.
pub struct Model {
    /// Its dimensions.
    pub config: LlamaConfig,
    /// Token embeddings `[vocab, hidden]`, f16 or f32 (rows are made f32 when looked up).
    pub embed: Tensor,
    /// The blocks.
    pub blocks: Vec<Block>,
    /// The final RMSNorm weight.
    pub norm: Tensor,
    /// The output head (`[vocab, hidden]`, quantized).
    pub output: QMatMul,
    /// RoPE tables `[context, head_dim / 2]`.
    pub cos: Tensor,
    /// See `cos`.
    pub sin: Tensor,
    /// The GGUF metadata (the tokenizer is built from it).
    pub metadata: std::collections::HashMap<String, gguf_file::Value>,
    /// Vocabulary size (rows of the embeddings).
    pub vocab: usize,
    /// With [`WeightFormat::Native`]: the pass that runs instead of candle's.
    pub native: Option<super::native::Native>,
}

/// The device everything runs on.
pub fn device() -> Device {
    Device::Cpu
}

/// Read tensor `name`, checking its shape (candle's order: rows first).
fn tensor(
    content: &gguf_file::Content,
    r: &mut BufReader<File>,
    name: &str,
    shape: &[usize],
) -> Result<QTensor> {
    let info = content
        .tensor_infos
        .get(name)
        .ok_or_else(|| anyhow!("the model has no tensor {name}"))?;
    if info.shape.dims() != shape {
        bail!(
            "tensor {name} has shape {:?}, the metadata says {shape:?}",
            info.shape.dims()
        );
    }
    content
        .tensor(r, name, &device())
        .with_context(|| format!("reading tensor {name}"))
}

/// The GGUF header of the file at `path` (checked before candle parses it), the file's
/// length, and the reader past the header.
fn read_header(path: &Path) -> Result<(gguf_file::Content, u64, BufReader<File>)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata()?.len();
    let mut r = BufReader::new(file);
    check_header(&mut r, len).with_context(|| path.display().to_string())?;
    let content = gguf_file::Content::read(&mut r)
        .with_context(|| format!("reading the GGUF header of {}", path.display()))?;
    Ok((content, len, r))
}

/// Every tensor's data must lie inside the file.
fn check_tensor_ranges(content: &gguf_file::Content, file_len: u64) -> Result<()> {
    for (name, info) in &content.tensor_infos {
        let elems = info
            .shape
            .dims()
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        let block = info.ggml_dtype.block_size() as u64;
        let bytes = elems
            .filter(|e| e % block == 0)
            .and_then(|e| (e / block).checked_mul(info.ggml_dtype.type_size() as u64));
        let end = bytes
            .and_then(|b| b.checked_add(info.offset))
            .and_then(|b| b.checked_add(content.tensor_data_offset));
        match end {
            Some(end) if end <= file_len => {}
            _ => bail!("tensor {name} lies outside the file or has a bad shape"),
        }
    }
    Ok(())
}

/// RoPE tables for positions 0..context: angle p / base^(2i / head_dim).
fn rope_tables(c: &LlamaConfig) -> Result<(Tensor, Tensor)> {
    let half = c.head_dim / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / c.rope_base.powf((2 * i) as f32 / c.head_dim as f32))
        .collect();
    let inv = Tensor::from_vec(inv, (1, half), &device())?;
    let pos = Tensor::arange(0u32, c.context as u32, &device())?
        .to_dtype(DType::F32)?
        .reshape((c.context, 1))?;
    let angles = pos.matmul(&inv)?;
    Ok((angles.cos()?, angles.sin()?))
}

impl Model {
    /// The form adapters take for this model's pass.
    pub fn adapter_form(&self) -> AdapterForm {
        if self.native.is_some() {
            AdapterForm::Plain
        } else {
            AdapterForm::Tensors
        }
    }

    /// Load the llama GGUF at `path`, its projections held as `format` says.
    pub fn load(path: &Path, format: WeightFormat) -> Result<Model> {
        let (content, len, mut r) = read_header(path)?;
        check_tensor_ranges(&content, len)?;
        let config = LlamaConfig::from_metadata(&content.metadata).map_err(|e| anyhow!(e))?;

        let embed_q = {
            let info = content
                .tensor_infos
                .get("token_embd.weight")
                .ok_or_else(|| anyhow!("the model has no token_embd.weight"))?;
            let dims = info.shape.dims().to_vec();
            if dims.len() != 2 || dims[1] != config.hidden || dims[0] == 0 {
                bail!("token_embd.weight has shape {dims:?}");
            }
            tensor(&content, &mut r, "token_embd.weight", &dims)?
        };
        let vocab = embed_q.shape().dims()[0];
        let embed = match format {
            WeightFormat::F16 => embed_q.dequantize_f16(&device())?,
            WeightFormat::F32 | WeightFormat::Quantized => embed_q.dequantize(&device())?,
            // Rows are dequantized when looked up.
            WeightFormat::Native => Tensor::zeros((1, config.hidden), DType::F32, &device())?,
        };
        let embed_q = QMatMul::from_qtensor(embed_q)?;
        let output = if content.tensor_infos.contains_key("output.weight") {
            format.matmul(tensor(
                &content,
                &mut r,
                "output.weight",
                &[vocab, config.hidden],
            )?)?
        } else {
            match format {
                // The embeddings themselves: no second copy.
                WeightFormat::F32 => QMatMul::Tensor(embed.clone()),
                WeightFormat::F16 => QMatMul::TensorF16(embed.clone()),
                WeightFormat::Quantized | WeightFormat::Native => embed_q.clone(),
            }
        };
        let norm = tensor(&content, &mut r, "output_norm.weight", &[config.hidden])?
            .dequantize(&device())?;

        let mut blocks = Vec::with_capacity(config.layers);
        for i in 0..config.layers {
            let norm = |r: &mut BufReader<File>, n: &str| -> Result<Tensor> {
                Ok(tensor(
                    &content,
                    r,
                    &format!("blk.{i}.{n}.weight"),
                    &[config.hidden],
                )?
                .dequantize(&device())?)
            };
            let attn_norm = norm(&mut r, "attn_norm")?;
            let ffn_norm = norm(&mut r, "ffn_norm")?;
            let mut proj = Vec::with_capacity(Proj::ALL.len());
            for p in Proj::ALL {
                let (inp, out) = config.dims(p);
                let name = format!("blk.{i}.{}.weight", p.gguf_name());
                proj.push(format.matmul(tensor(&content, &mut r, &name, &[out, inp])?)?);
            }
            blocks.push(Block {
                attn_norm,
                ffn_norm,
                proj,
            });
        }
        let (cos, sin) = rope_tables(&config)?;
        let mut model = Model {
            config,
            embed,
            blocks,
            norm,
            output,
            cos,
            sin,
            metadata: content.metadata,
            vocab,
            native: None,
        };
        if format == WeightFormat::Native {
            model.native = Some(super::native::Native::new(&model, &embed_q)?);
        }
        Ok(model)
    }
}
