//! The forward pass on the file's own quantized blocks (`--weights native`): one token
//! at a time, in plain loops over `f32` vectors, with every projection a matrix-vector
//! product of Q4_1 or Q8_0 rows and 8-bit activations (`grid_llm_kernels`) split over the
//! rayon threads. This is how llama.cpp decodes on a CPU: it reads 0.6–1.1 bytes per
//! weight instead of the 2 of f16, and does no tensor bookkeeping between the small
//! operations of a layer. Adapters are applied beside the base weights as in
//! [`super::lora`], from the plain `f32` rows it makes when it loads an adapter.

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
    for &(m, _) in jobs.iter() {
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
    for (m, out) in jobs.iter_mut() {
        out.clear();
        out.resize(m.rows * tokens, 0.0);
    }
    // Work items are runs of rows, so results are written row-major: straight into the
    // outputs for one token (decoding), into a scratch transposed afterwards for more.
    let mut scratch: Vec<Vec<f32>> = if tokens == 1 {
        Vec::new()
    } else {
        jobs.iter()
            .map(|(m, _)| vec![0f32; m.rows * tokens])
            .collect()
    };
    {
        let targets: Vec<&mut [f32]> = if tokens == 1 {
            jobs.iter_mut().map(|(_, out)| out.as_mut_slice()).collect()
        } else {
            scratch.iter_mut().map(Vec::as_mut_slice).collect()
        };
        let mut items: Vec<(usize, usize, &mut [f32])> = Vec::new();
        for (j, out) in targets.into_iter().enumerate() {
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
    }
    for ((m, out), rows) in jobs.iter_mut().zip(scratch) {
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
        let plain = match adapter.map(Adapter::plain) {
            None => None,
            Some(Some(rows)) => Some(rows),
            Some(None) => bail!("the adapter was loaded as tensors, not for the native pass"),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7 + seed) as f32 * 0.37).sin())
            .collect()
    }

    /// A `rows × cols` matrix quantized to `dtype`, and its rows dequantized.
    fn matrix(dtype: GgmlDType, rows: usize, cols: usize, seed: usize) -> (QMatrix, Vec<f32>) {
        let w = Tensor::from_vec(values(rows * cols, seed), (rows, cols), &Device::Cpu).unwrap();
        let q = QMatMul::from_qtensor(QTensor::quantize(&w, dtype).unwrap()).unwrap();
        let m = QMatrix::new(&q, rows, cols).unwrap();
        let mut deq = vec![0f32; rows * cols];
        for (r, row) in deq.chunks_exact_mut(cols).enumerate() {
            m.row(r, row).unwrap();
        }
        (m, deq)
    }

    #[test]
    fn a_batch_of_tokens_gives_each_token_what_it_gets_alone() {
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            // 130 rows: three work items, the last one short; a second matrix beside it.
            let (rows, rows_b, cols, tokens) = (130, 40, 64, 3);
            let (a, deq) = matrix(dtype, rows, cols, 1);
            let (b, _) = matrix(dtype, rows_b, cols, 2);
            let x = values(tokens * cols, 3);
            let mut xq = Vec::new();
            quantize_rows(&x, cols, &mut xq);
            let (mut ya, mut yb) = (Vec::new(), Vec::new());
            matmul(&mut [(&a, &mut ya), (&b, &mut yb)], &xq, tokens).unwrap();
            assert_eq!((ya.len(), yb.len()), (tokens * rows, tokens * rows_b));
            let per = cols / BLOCK;
            for t in 0..tokens {
                // Stale contents are replaced, whatever their length.
                let (mut one_a, mut one_b) = (vec![9.0; 3], vec![9.0; 500]);
                let xt = &xq[t * per..(t + 1) * per];
                matmul(&mut [(&a, &mut one_a), (&b, &mut one_b)], xt, 1).unwrap();
                assert_eq!(one_a, ya[t * rows..(t + 1) * rows], "{dtype:?} token {t}");
                assert_eq!(
                    one_b,
                    yb[t * rows_b..(t + 1) * rows_b],
                    "{dtype:?} token {t}"
                );
                // Against f32: off by no more than the 8-bit rounding of x allows.
                let xr = &x[t * cols..(t + 1) * cols];
                for (r, w) in deq.chunks_exact(cols).enumerate() {
                    let bound: f32 = w
                        .chunks_exact(BLOCK)
                        .zip(xr.chunks_exact(BLOCK))
                        .map(|(w, x)| {
                            let step = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                            w.iter().map(|v| v.abs() * step).sum::<f32>()
                        })
                        .sum();
                    let want = dot(w, xr);
                    assert!(
                        (one_a[r] - want).abs() <= bound + 1e-4,
                        "{dtype:?} row {r}: {} vs {want} (bound {bound})",
                        one_a[r]
                    );
                }
            }
            let e = matmul(&mut [(&a, &mut ya)], &xq[..per * 2], 3).unwrap_err();
            assert!(e.to_string().contains("130×64"), "{e}");
        }
    }

    #[test]
    fn the_plain_pair_adds_what_the_tensor_pair_adds() {
        let (inp, out, r, tokens) = (8, 5, 2, 2);
        let pair = PlainPair {
            r,
            a_t: values(inp * r, 4),
            b_t: values(r * out, 5),
        };
        let dev = Device::Cpu;
        let a_t = Tensor::from_slice(&pair.a_t, (inp, r), &dev).unwrap();
        let b_t = Tensor::from_slice(&pair.b_t, (r, out), &dev).unwrap();
        let x = values(tokens * inp, 6);
        let base = values(tokens * out, 7);
        let xt = Tensor::from_slice(&x, (tokens, inp), &dev).unwrap();
        let delta: Vec<f32> = xt
            .matmul(&a_t)
            .unwrap()
            .matmul(&b_t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let mut y = base.clone();
        add_lora_rows(Some(&pair), &x, &mut y, tokens);
        for ((y, b), d) in y.iter().zip(&base).zip(&delta) {
            assert!((y - (b + d)).abs() < 1e-5, "{y} vs {b} + {d}");
        }
        let mut untouched = base.clone();
        add_lora_rows(None, &x, &mut untouched, tokens);
        assert_eq!(untouched, base);
    }
}
