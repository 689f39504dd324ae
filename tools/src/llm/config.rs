//! The llama model's dimensions, from the GGUF metadata, and its seven projections.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

/// Most layers, hidden size, heads and context a model file may declare; far above the
/// models this worker is meant for, they keep a damaged file from sizing buffers.
const MAX_LAYERS: usize = 512;
const MAX_HIDDEN: usize = 1 << 16;
const MAX_CONTEXT: usize = 1 << 20;

/// The dimensions of a llama-architecture model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    /// `general.name` (or empty).
    pub name: String,
    /// Transformer blocks.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Size of one head (hidden / heads).
    pub head_dim: usize,
    /// Feed-forward size.
    pub ffn: usize,
    /// The longest context, tokens.
    pub context: usize,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// RoPE frequency base.
    pub rope_base: f32,
}

/// One of the seven projections of a llama block that a LoRA adapter may target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proj {
    /// Attention query.
    Q,
    /// Attention key.
    K,
    /// Attention value.
    V,
    /// Attention output.
    O,
    /// MLP gate.
    Gate,
    /// MLP up.
    Up,
    /// MLP down.
    Down,
}

impl Proj {
    /// All seven, in the order a layer keeps them.
    pub const ALL: [Proj; 7] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::Down,
    ];

    /// Index in [`Proj::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The module's name in PEFT (`target_modules`).
    pub fn peft_name(self) -> &'static str {
        match self {
            Proj::Q => "q_proj",
            Proj::K => "k_proj",
            Proj::V => "v_proj",
            Proj::O => "o_proj",
            Proj::Gate => "gate_proj",
            Proj::Up => "up_proj",
            Proj::Down => "down_proj",
        }
    }

    /// The module's path inside a Hugging Face llama layer.
    pub fn hf_path(self) -> &'static str {
        match self {
            Proj::Q => "self_attn.q_proj",
            Proj::K => "self_attn.k_proj",
            Proj::V => "self_attn.v_proj",
            Proj::O => "self_attn.o_proj",
            Proj::Gate => "mlp.gate_proj",
            Proj::Up => "mlp.up_proj",
            Proj::Down => "mlp.down_proj",
        }
    }

    /// The tensor's name in a GGUF block (`blk.N.<this>.weight`).
    pub fn gguf_name(self) -> &'static str {
        match self {
            Proj::Q => "attn_q",
            Proj::K => "attn_k",
            Proj::V => "attn_v",
            Proj::O => "attn_output",
            Proj::Gate => "ffn_gate",
            Proj::Up => "ffn_up",
            Proj::Down => "ffn_down",
        }
    }

    /// The projection PEFT calls `name`.
    pub fn from_peft(name: &str) -> Option<Proj> {
        Proj::ALL.into_iter().find(|p| p.peft_name() == name)
    }
}

impl LlamaConfig {
    /// (in, out) features of a projection.
    pub fn dims(&self, p: Proj) -> (usize, usize) {
        let kv = self.kv_heads * self.head_dim;
        match p {
            Proj::Q | Proj::O => (self.hidden, self.hidden),
            Proj::K | Proj::V => (self.hidden, kv),
            Proj::Gate | Proj::Up => (self.hidden, self.ffn),
            Proj::Down => (self.ffn, self.hidden),
        }
    }

    /// Read the dimensions of a `llama` GGUF, checking that they fit together.
    pub fn from_metadata(md: &HashMap<String, Value>) -> Result<LlamaConfig, String> {
        let arch = md
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .ok_or("no general.architecture")?;
        if arch != "llama" {
            return Err(format!(
                "architecture {arch:?}: this worker runs llama models only"
            ));
        }
        let int = |key: &str, max: usize| -> Result<usize, String> {
            let v = md
                .get(&format!("llama.{key}"))
                .ok_or_else(|| format!("no llama.{key} in the metadata"))?;
            let n = v
                .to_u64()
                .or_else(|_| v.to_u32().map(u64::from))
                .or_else(|_| v.to_i32().map(|x| x.max(0) as u64))
                .map_err(|_| format!("llama.{key} is not an integer"))?;
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n == 0 || n > max {
                return Err(format!("llama.{key} = {n} (1..={max})"));
            }
            Ok(n)
        };
        let layers = int("block_count", MAX_LAYERS)?;
        let hidden = int("embedding_length", MAX_HIDDEN)?;
        let heads = int("attention.head_count", MAX_HIDDEN)?;
        let kv_heads = match md.get("llama.attention.head_count_kv") {
            Some(_) => int("attention.head_count_kv", MAX_HIDDEN)?,
            None => heads,
        };
        let ffn = int("feed_forward_length", 4 * MAX_HIDDEN)?;
        let context = int("context_length", MAX_CONTEXT)?;
        if !hidden.is_multiple_of(heads) || !heads.is_multiple_of(kv_heads) {
            return Err(format!(
                "{heads} heads and {kv_heads} key/value heads do not divide hidden size {hidden}"
            ));
        }
        let head_dim = hidden / heads;
        if !head_dim.is_multiple_of(2) {
            return Err(format!("head size {head_dim} is odd"));
        }
        if md.contains_key("llama.rope.dimension_count") {
            let rot = int("rope.dimension_count", MAX_HIDDEN)?;
            if rot != head_dim {
                return Err(format!(
                    "rotary dimensions {rot} differ from the head size {head_dim} (not supported)"
                ));
            }
        }
        let float = |key: &str, default: f32| -> Result<f32, String> {
            match md.get(key) {
                None => Ok(default),
                Some(v) => v
                    .to_f32()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| format!("{key} is not a positive number")),
            }
        };
        let rms_eps = float("llama.attention.layer_norm_rms_epsilon", 1e-5)?;
        let rope_base = float("llama.rope.freq_base", 10_000.0)?;
        let scaling = md
            .get("llama.rope.scaling.type")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str);
        if !matches!(scaling, None | Some("none")) {
            return Err(format!("RoPE scaling {scaling:?} is not supported"));
        }
        let name = md
            .get("general.name")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        Ok(LlamaConfig {
            name,
            layers,
            hidden,
            heads,
            kv_heads,
            head_dim,
            ffn,
            context,
            rms_eps,
            rope_base,
        })
    }
}
