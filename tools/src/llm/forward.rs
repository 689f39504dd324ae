//! The llama forward pass: embeddings, RMSNorm, attention with RoPE and grouped
//! key/value heads over a KV cache, the SiLU-gated MLP, and the output head; LoRA
//! deltas are added beside the base projections when an adapter is given.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::kv_cache::KvCache;
use candle_nn::ops::{rms_norm, softmax_last_dim};
use candle_nn::rotary_emb::rope_i;

use super::config::Proj;
use super::lora::{project, Adapter, AdapterForm, LoraPair};
use super::model::{device, Block, Model};

/// The keys and values of the tokens seen so far in one request.
pub struct Cache {
    layers: Vec<KvCache>,
    native: super::native::NativeCache,
    pos: usize,
}

impl Cache {
    /// An empty cache for `model`, with room for `capacity` tokens before it grows.
    pub fn new(model: &Model, capacity: usize) -> Cache {
        if model.native.is_some() {
            return Cache {
                layers: Vec::new(),
                native: super::native::NativeCache::new(&model.config, capacity),
                pos: 0,
            };
        }
        Cache {
            layers: (0..model.config.layers)
                .map(|_| KvCache::new(2, capacity.max(1)))
                .collect(),
            native: super::native::NativeCache::default(),
            pos: 0,
        }
    }

    /// Tokens in the cache.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether no token was run yet.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }
}

/// Additive causal mask `[s, pos + s]`: query i (at position pos + i) sees keys 0..=pos + i.
fn causal_mask(s: usize, pos: usize) -> Result<Tensor> {
    let t = pos + s;
    let mask: Vec<f32> = (0..s)
        .flat_map(|i| (0..t).map(move |j| if j <= pos + i { 0.0 } else { f32::NEG_INFINITY }))
        .collect();
    Tensor::from_vec(mask, (s, t), &device())
}

impl Model {
    /// Run `tokens` (at the cache's position) and return the logits of the last one,
    /// `[vocab]` f32. With `adapter`, its deltas are added on its target projections.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut Cache,
        adapter: Option<&Adapter>,
    ) -> Result<Tensor> {
        let s = tokens.len();
        if s == 0 {
            candle_core::bail!("no tokens to run");
        }
        let pos = cache.pos;
        if pos + s > self.config.context {
            candle_core::bail!(
                "{} tokens do not fit the context of {}",
                pos + s,
                self.config.context
            );
        }
        if let Some(native) = &self.native {
            // On a pool thread, so the pass's parallel products are hand-offs between
            // pool threads, not from outside the pool.
            let logits =
                rayon::scope(|_| native.forward(tokens, pos, &mut cache.native, adapter, true))
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?
                    .unwrap_or_default();
            cache.pos += s;
            let n = logits.len();
            return Tensor::from_vec(logits, n, &device());
        }
        if adapter.is_some_and(|a| a.form() != AdapterForm::Tensors) {
            candle_core::bail!("the adapter was loaded for the native pass, not as tensors");
        }
        let ids = Tensor::new(tokens, &device())?;
        let mut x = self.embed.index_select(&ids, 0)?.to_dtype(DType::F32)?;
        let cos = self.cos.narrow(0, pos, s)?;
        let sin = self.sin.narrow(0, pos, s)?;
        let mask = if s > 1 {
            Some(causal_mask(s, pos)?)
        } else {
            None
        };
        let eps = self.config.rms_eps;
        for (i, block) in self.blocks.iter().enumerate() {
            let lora = |p: Proj| adapter.and_then(|a| a.get(i, p));
            let h = rms_norm(&x, &block.attn_norm, eps)?;
            let att = self.attention(
                block,
                &h,
                &cos,
                &sin,
                mask.as_ref(),
                &mut cache.layers[i],
                &lora,
            )?;
            x = (x + att)?;
            let h = rms_norm(&x, &block.ffn_norm, eps)?;
            let gate = project(&block.proj[Proj::Gate.index()], &h, lora(Proj::Gate))?;
            let up = project(&block.proj[Proj::Up.index()], &h, lora(Proj::Up))?;
            let m = (gate.silu()? * up)?;
            let down = project(&block.proj[Proj::Down.index()], &m, lora(Proj::Down))?;
            x = (x + down)?;
        }
        cache.pos += s;
        let last = x.narrow(0, s - 1, 1)?;
        let last = rms_norm(&last, &self.norm, eps)?;
        self.output.forward(&last)?.squeeze(0)
    }

    /// Self-attention of block `block` on `h` `[s, hidden]`, appending to `kv`.
    #[allow(clippy::too_many_arguments)]
    fn attention<'a>(
        &self,
        block: &Block,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        kv: &mut KvCache,
        lora: &dyn Fn(Proj) -> Option<&'a LoraPair>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let s = h.dim(0)?;
        let (hd, nh, nkv) = (c.head_dim, c.heads, c.kv_heads);
        let group = nh / nkv;
        let heads = |t: Tensor, n: usize| -> Result<Tensor> {
            t.reshape((1, s, n, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = heads(project(&block.proj[Proj::Q.index()], h, lora(Proj::Q))?, nh)?;
        let k = heads(
            project(&block.proj[Proj::K.index()], h, lora(Proj::K))?,
            nkv,
        )?;
        let v = heads(
            project(&block.proj[Proj::V.index()], h, lora(Proj::V))?,
            nkv,
        )?;
        let q = rope_i(&q, cos, sin)?;
        let k = rope_i(&k, cos, sin)?;
        let (k, v) = kv.append(&k, &v)?;
        let t = k.dim(2)?;
        // Query head j uses key/value head j / group: view the queries as
        // [1, kv heads, group * s, hd] so no key or value is copied per query head.
        let q = q.reshape((1, nkv, group * s, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let att = (q.matmul(&k.t()?)? * scale)?;
        let att = match mask {
            None => att,
            Some(m) => att
                .reshape((1, nkv, group, s, t))?
                .broadcast_add(m)?
                .reshape((1, nkv, group * s, t))?,
        };
        let att = softmax_last_dim(&att)?;
        let y = att.matmul(&v)?; // [1, kv, group * s, hd]
        let y = y
            .reshape((1, nh, s, hd))?
            .transpose(1, 2)?
            .reshape((s, nh * hd))?;
        project(&block.proj[Proj::O.index()], &y, lora(Proj::O))
    }
}
