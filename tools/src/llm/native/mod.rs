//! The forward pass on the file's own quantized blocks (`--weights native`): one token
//! at a time, in plain loops over `f32` vectors, with every projection a matrix-vector
//! product of Q4_1 or Q8_0 rows and 8-bit activations (`grid_llm_kernels`) split over the
//! rayon threads. This is how llama.cpp decodes on a CPU: it reads 0.6–1.1 bytes per
//! weight instead of the 2 of f16, and does no tensor bookkeeping between the small
//! operations of a layer. Adapters are applied beside the base weights as in
//! [`super::lora`], from `f32` copies made once per adapter.

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use rayon::prelude::*;

use super::config::{LlamaConfig, Proj};
use super::lora::{Adapter, PlainPair};
use super::model::Model;
use grid_llm_kernels::{self as kernels, quantize, Kind, Q8Block, BLOCK};

/// A weight matrix as the file holds it: `rows` rows of `cols / 32` blocks.
pub struct QMatrix {
    kind: Kind,
    rows: usize,
    cols: usize,
    tensor: Arc<QTensor>,
}

impl QMatrix {
    /// The matrix of `m`, if it holds blocks these kernels take (Q4_1 or Q8_0).
    pub fn new(m: &QMatMul, rows: usize, cols: usize) -> Result<QMatrix> {
        let QMatMul::QTensor(t) = m else {
            bail!("native weights need quantized tensors");
        };
        let kind = match t.dtype() {
            GgmlDType::Q4_1 => Kind::Q4_1,
            GgmlDType::Q8_0 => Kind::Q8_0,
            other => {
                bail!("native weights take Q4_1 and Q8_0 blocks, not {other:?} (use --weights f16)")
            }
        };
        if !cols.is_multiple_of(BLOCK)
            || t.data()?.len() != rows * (cols / BLOCK) * kind.block_bytes()
        {
            bail!("a {rows}×{cols} {kind:?} tensor has the wrong size");
        }
        Ok(QMatrix {
            kind,
            rows,
            cols,
            tensor: t.clone(),
        })
    }

    fn row_bytes(&self) -> usize {
        self.cols / BLOCK * self.kind.block_bytes()
    }

    /// Row `r`, dequantized into `out` (`cols` long).
    pub fn row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        if r >= self.rows {
            bail!("row {r} of {}", self.rows);
        }
        let data = self.tensor.data()?;
        let n = self.row_bytes();
        kernels::dequantize_row(self.kind, &data[r * n..(r + 1) * n], out);
        Ok(())
    }
}

/// Rows a thread takes at a time.
const ROWS_PER_ITEM: usize = 64;

/// `out_i[t][r] = W_i[r] · x[t]` for matrices taking the same inputs `xs` (one per
/// token, each `cols / 32` blocks), all their rows split over the rayon threads in one
/// hand-off; each row is read once for all the tokens. `out_i` is token-major,
/// `tokens × rows`.
fn matmul(jobs: &mut [(&QMatrix, &mut Vec<f32>)], xs: &[Q8Block], tokens: usize) -> Result<()> {
    let blocks = xs.len() / tokens.max(1);
    let mut views = Vec::with_capacity(jobs.len());
    for (m, _) in jobs.iter() {
        if blocks * BLOCK != m.cols || blocks * tokens != xs.len() {
            bail!(
                "a {}×{} product given {} blocks for {tokens} tokens",
                m.rows,
                m.cols,
                xs.len()
            );
        }
        views.push((m.kind, m.row_bytes(), m.tensor.data()?));
    }
    // Row-major results first (a work item's rows are one slice), then transposed.
    let mut by_row: Vec<Vec<f32>> = jobs
        .iter()
        .map(|(m, _)| vec![0f32; m.rows * tokens])
        .collect();
    let mut items: Vec<(usize, usize, &mut [f32])> = Vec::new();
    for (j, out) in by_row.iter_mut().enumerate() {
        for (k, chunk) in out.chunks_mut(ROWS_PER_ITEM * tokens).enumerate() {
            items.push((j, k * ROWS_PER_ITEM, chunk));
        }
    }
    let per = items
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1);
    items.par_chunks_mut(per).for_each(|group| {
        for (j, first, out) in group.iter_mut() {
            let (kind, n, data) = &views[*j];
            for (i, row_out) in out.chunks_mut(tokens).enumerate() {
                let r = *first + i;
                let row = &data[r * n..(r + 1) * n];
                for (o, x) in row_out.iter_mut().zip(xs.chunks_exact(blocks)) {
                    *o = kind.dot(row, x);
                }
            }
        }
    });
    for ((m, out), rows) in jobs.iter_mut().zip(by_row) {
        out.resize(m.rows * tokens, 0.0);
        if tokens == 1 {
            out.copy_from_slice(&rows);
            continue;
        }
        for (r, row) in rows.chunks_exact(tokens).enumerate() {
            for (t, v) in row.iter().enumerate() {
                out[t * m.rows + r] = *v;
            }
        }
    }
    Ok(())
}

/// One layer's weights for the native pass.
struct Layer {
    attn_norm: Vec<f32>,
    ffn_norm: Vec<f32>,
    /// In [`Proj::ALL`] order.
    proj: Vec<QMatrix>,
}

/// The model's weights as the native pass reads them (sharing the tensors of the
/// loaded [`Model`]: nothing is copied but the norms and the RoPE tables).
pub struct Native {
    config: LlamaConfig,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// The token embeddings, which are also the output head when the file ties them.
    embed: QMatrix,
    output: QMatrix,
    /// `[context, head_dim / 2]`.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Native {
    /// The native view of `model`, loaded with quantized projections and the quantized
    /// embeddings in `embed_q`. Fails, naming the tensor type, for blocks other than
    /// Q4_1 and Q8_0.
    pub fn new(model: &Model, embed_q: &QMatMul) -> Result<Native> {
        let c = model.config.clone();
        let vec1 = |t: &candle_core::Tensor| -> Result<Vec<f32>> {
            Ok(t.flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1()?)
        };
        let mut layers = Vec::with_capacity(c.layers);
        for b in &model.blocks {
            let mut proj = Vec::with_capacity(Proj::ALL.len());
            for p in Proj::ALL {
                let (inp, out) = c.dims(p);
                proj.push(QMatrix::new(&b.proj[p.index()], out, inp)?);
            }
            layers.push(Layer {
                attn_norm: vec1(&b.attn_norm)?,
                ffn_norm: vec1(&b.ffn_norm)?,
                proj,
            });
        }
        Ok(Native {
            embed: QMatrix::new(embed_q, model.vocab, c.hidden)?,
            output: QMatrix::new(&model.output, model.vocab, c.hidden)?,
            norm: vec1(&model.norm)?,
            cos: vec1(&model.cos)?,
            sin: vec1(&model.sin)?,
            layers,
            config: c,
        })
    }
}

/// The keys and values of the tokens seen so far, per layer, `f32`.
#[derive(Default)]
pub struct NativeCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl NativeCache {
    /// Room for `capacity` tokens of `c` before it grows.
    pub fn new(c: &LlamaConfig, capacity: usize) -> NativeCache {
        let per = c.kv_heads * c.head_dim * capacity;
        NativeCache {
            k: (0..c.layers).map(|_| Vec::with_capacity(per)).collect(),
            v: (0..c.layers).map(|_| Vec::with_capacity(per)).collect(),
        }
    }
}

/// `Σ a·b` in eight lanes, so the compiler can use vector registers (a sum in one
/// order cannot be).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let ms = dot(x, x) / x.len() as f32;
    let k = 1.0 / (ms + eps).sqrt();
    for ((o, v), w) in out.iter_mut().zip(x).zip(w) {
        *o = v * k * w;
    }
}

/// Rotate pairs `(2i, 2i + 1)` of each `hd`-long head by position `pos`'s angles.
fn rope(x: &mut [f32], hd: usize, cos: &[f32], sin: &[f32]) {
    for head in x.chunks_exact_mut(hd) {
        for (i, pair) in head.chunks_exact_mut(2).enumerate() {
            let (a, b) = (pair[0], pair[1]);
            pair[0] = a * cos[i] - b * sin[i];
            pair[1] = a * sin[i] + b * cos[i];
        }
    }
}

/// `y += s·B·(A·x)` with the adapter's plain pair.
fn add_lora(pair: Option<&PlainPair>, x: &[f32], y: &mut [f32]) {
    let Some(p) = pair else { return };
    let mut u = vec![0f32; p.r];
    for (xi, a_row) in x.iter().zip(p.a_t.chunks_exact(p.r)) {
        for (u, a) in u.iter_mut().zip(a_row) {
            *u += xi * a;
        }
    }
    for (uj, b_row) in u.iter().zip(p.b_t.chunks_exact(y.len())) {
        for (y, b) in y.iter_mut().zip(b_row) {
            *y += uj * b;
        }
    }
}

/// Quantize each `width`-long row of `x` (one per token) into `out`.
fn quantize_rows(x: &[f32], width: usize, out: &mut Vec<Q8Block>) {
    out.clear();
    let mut row = Vec::new();
    for chunk in x.chunks_exact(width) {
        quantize(chunk, &mut row);
        out.extend_from_slice(&row);
    }
}

/// `y += s·B·(A·x)` for each token's row of `x` and `y`.
fn add_lora_rows(pair: Option<&PlainPair>, x: &[f32], y: &mut [f32], tokens: usize) {
    if pair.is_none() {
        return;
    }
    let (xw, yw) = (x.len() / tokens, y.len() / tokens);
    for (xr, yr) in x.chunks_exact(xw).zip(y.chunks_exact_mut(yw)) {
        add_lora(pair, xr, yr);
    }
}

impl Native {
    /// Run `tokens` from position `pos` (the cache holds `pos` tokens) and return the
    /// logits of the last one when `logits` (the end of a prompt, and every decoded
    /// token). The projections take all the tokens at once; attention goes token by
    /// token over the cache, each seeing itself and what came before.
    pub fn forward(
        &self,
        tokens: &[u32],
        pos: usize,
        cache: &mut NativeCache,
        adapter: Option<&Adapter>,
        logits: bool,
    ) -> Result<Option<Vec<f32>>> {
        let c = &self.config;
        let n = tokens.len();
        if n == 0 {
            bail!("no tokens to run");
        }
        if pos + n > c.context {
            bail!("{} tokens do not fit the context of {}", pos + n, c.context);
        }
        let (hd, nh, nkv) = (c.head_dim, c.heads, c.kv_heads);
        let (hidden, kv, half) = (c.hidden, nkv * hd, hd / 2);
        let plain = adapter.map(Adapter::plain);
        let lora = |i: usize, p: Proj| {
            plain.and_then(|v| {
                v.get(i * Proj::ALL.len() + p.index())
                    .and_then(Option::as_ref)
            })
        };
        let mut x = vec![0f32; n * hidden];
        for (t, row) in tokens.iter().zip(x.chunks_exact_mut(hidden)) {
            self.embed.row(*t as usize, row)?;
        }
        let (mut h, mut xq) = (vec![0f32; n * hidden], Vec::new());
        let (mut q, mut k, mut v) = (Vec::new(), Vec::new(), Vec::new());
        let (mut att, mut o) = (vec![0f32; n * hidden], Vec::new());
        let (mut gate, mut up) = (Vec::new(), Vec::new());
        let mut scores = vec![0f32; pos + n];
        let scale = 1.0 / (hd as f32).sqrt();
        let norm_rows = |x: &[f32], w: &[f32], h: &mut [f32]| {
            for (xr, hr) in x.chunks_exact(hidden).zip(h.chunks_exact_mut(hidden)) {
                rms_norm(xr, w, c.rms_eps, hr);
            }
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let w = |p: Proj| &layer.proj[p.index()];
            norm_rows(&x, &layer.attn_norm, &mut h);
            quantize_rows(&h, hidden, &mut xq);
            matmul(
                &mut [
                    (w(Proj::Q), &mut q),
                    (w(Proj::K), &mut k),
                    (w(Proj::V), &mut v),
                ],
                &xq,
                n,
            )?;
            add_lora_rows(lora(i, Proj::Q), &h, &mut q, n);
            add_lora_rows(lora(i, Proj::K), &h, &mut k, n);
            add_lora_rows(lora(i, Proj::V), &h, &mut v, n);
            for t in 0..n {
                let p = pos + t;
                let (cos, sin) = (
                    &self.cos[p * half..(p + 1) * half],
                    &self.sin[p * half..(p + 1) * half],
                );
                rope(&mut q[t * hidden..(t + 1) * hidden], hd, cos, sin);
                rope(&mut k[t * kv..(t + 1) * kv], hd, cos, sin);
            }
            cache.k[i].extend_from_slice(&k);
            cache.v[i].extend_from_slice(&v);
            let (keys, values) = (&cache.k[i], &cache.v[i]);
            for t in 0..n {
                // Token t sees positions 0..=pos + t; query head j reads key/value head
                // j / (heads / kv heads).
                let seen = &mut scores[..pos + t + 1];
                let (qt, at) = (
                    &q[t * hidden..(t + 1) * hidden],
                    &mut att[t * hidden..(t + 1) * hidden],
                );
                for (j, (qh, out)) in qt.chunks_exact(hd).zip(at.chunks_exact_mut(hd)).enumerate() {
                    let g = j / (nh / nkv);
                    let mut max = f32::NEG_INFINITY;
                    for (u, s) in seen.iter_mut().enumerate() {
                        *s = dot(qh, &keys[u * kv + g * hd..u * kv + (g + 1) * hd]) * scale;
                        max = max.max(*s);
                    }
                    let mut total = 0f32;
                    for s in seen.iter_mut() {
                        *s = (*s - max).exp();
                        total += *s;
                    }
                    out.fill(0.0);
                    for (u, s) in seen.iter().enumerate() {
                        let value = &values[u * kv + g * hd..u * kv + (g + 1) * hd];
                        let p = s / total;
                        for (o, v) in out.iter_mut().zip(value) {
                            *o += p * v;
                        }
                    }
                }
            }
            quantize_rows(&att, hidden, &mut xq);
            matmul(&mut [(w(Proj::O), &mut o)], &xq, n)?;
            add_lora_rows(lora(i, Proj::O), &att, &mut o, n);
            for (x, o) in x.iter_mut().zip(&o) {
                *x += o;
            }
            norm_rows(&x, &layer.ffn_norm, &mut h);
            quantize_rows(&h, hidden, &mut xq);
            matmul(
                &mut [(w(Proj::Gate), &mut gate), (w(Proj::Up), &mut up)],
                &xq,
                n,
            )?;
            add_lora_rows(lora(i, Proj::Gate), &h, &mut gate, n);
            add_lora_rows(lora(i, Proj::Up), &h, &mut up, n);
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            quantize_rows(&gate, c.ffn, &mut xq);
            matmul(&mut [(w(Proj::Down), &mut o)], &xq, n)?;
            add_lora_rows(lora(i, Proj::Down), &gate, &mut o, n);
            for (x, o) in x.iter_mut().zip(&o) {
                *x += o;
            }
        }
        if !logits {
            return Ok(None);
        }
        let last = &x[(n - 1) * hidden..];
        let mut hl = vec![0f32; hidden];
        rms_norm(last, &self.norm, c.rms_eps, &mut hl);
        quantize(&hl, &mut xq);
        let mut out = Vec::new();
        matmul(&mut [(&self.output, &mut out)], &xq, 1)?;
        Ok(Some(out))
    }
}
