//! Dot products of GGML weight blocks with 8-bit activations, as llama.cpp computes
//! them: the weights stay in the file's own blocks (Q4_1: 20 bytes for 32 weights, Q8_0:
//! 34), the activations are quantized to 8 bits per block of 32 with one scale, and the
//! products are summed in integers before one scale multiply per block.
//!
//! On x86-64 with AVX2, FMA and F16C (checked at run time, once) the blocks go through
//! `vpmaddubsw`; elsewhere through a plain loop that gives the same sums. Both are tested
//! against the dequantized weights.
//
// `unsafe` here, and only in `mod avx2` (grid's other crates forbid or deny it): the
// AVX2 functions use `core::arch` intrinsics, which Rust marks unsafe for two reasons,
// both handled: the CPU must have the features (they run only after
// `is_x86_feature_detected!` said so), and the pointer loads must stay in bounds (each
// reads 16 or 32 bytes at an offset the block layout puts inside a slice whose length
// was checked first).
#![warn(missing_docs)]

/// Weights in a block.
pub const BLOCK: usize = 32;
/// Bytes of a Q4_1 block: f16 scale, f16 minimum, 16 bytes of nibbles.
pub const Q4_1_BYTES: usize = 20;
/// Bytes of a Q8_0 block: f16 scale, 32 signed bytes.
pub const Q8_0_BYTES: usize = 34;

/// 32 activations as 8-bit integers: `x[i] ≈ d · q[i]`; `s = d · Σ q[i]` (for the
/// minimum of Q4_1 blocks).
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct Q8Block {
    /// The scale.
    pub d: f32,
    /// `d · Σ q`.
    pub s: f32,
    /// The quantized values.
    pub q: [i8; BLOCK],
}

/// Quantize `x` (a multiple of [`BLOCK`] long) into `out`, one block per 32 values.
pub fn quantize(x: &[f32], out: &mut Vec<Q8Block>) {
    out.clear();
    for chunk in x.chunks_exact(BLOCK) {
        let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let mut b = Q8Block {
            d,
            ..Q8Block::default()
        };
        let mut sum = 0i32;
        for (q, v) in b.q.iter_mut().zip(chunk) {
            let r = (v * id).round() as i32;
            *q = r.clamp(-127, 127) as i8;
            sum += i32::from(*q);
        }
        b.s = d * sum as f32;
        out.push(b);
    }
}

fn f16(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// Whether the SIMD kernels can run here.
fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static SIMD: OnceLock<bool> = OnceLock::new();
        *SIMD.get_or_init(|| {
            std::is_x86_feature_detected!("avx2")
                && std::is_x86_feature_detected!("fma")
                && std::is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `Σ w·x` for one row of Q4_1 blocks and the quantized activations (as many blocks).
pub fn dot_q4_1(row: &[u8], x: &[Q8Block]) -> f32 {
    assert_eq!(
        row.len(),
        x.len() * Q4_1_BYTES,
        "Q4_1 row and activations differ"
    );
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: the features were detected; lengths checked above.
        return unsafe { avx2::dot_q4_1(row, x) };
    }
    dot_q4_1_plain(row, x)
}

/// [`dot_q4_1`] without SIMD (what CPUs without AVX2 run; tests compare the two).
pub fn dot_q4_1_plain(row: &[u8], x: &[Q8Block]) -> f32 {
    assert_eq!(
        row.len(),
        x.len() * Q4_1_BYTES,
        "Q4_1 row and activations differ"
    );
    let mut sum = 0f32;
    for (b, a) in row.chunks_exact(Q4_1_BYTES).zip(x) {
        let (d, m) = (f16(&b[0..2]), f16(&b[2..4]));
        let mut acc = 0i32;
        for j in 0..16 {
            let byte = b[4 + j];
            acc += i32::from(byte & 0x0F) * i32::from(a.q[j]);
            acc += i32::from(byte >> 4) * i32::from(a.q[j + 16]);
        }
        sum += d * a.d * acc as f32 + m * a.s;
    }
    sum
}

/// `Σ w·x` for one row of Q8_0 blocks and the quantized activations (as many blocks).
pub fn dot_q8_0(row: &[u8], x: &[Q8Block]) -> f32 {
    assert_eq!(
        row.len(),
        x.len() * Q8_0_BYTES,
        "Q8_0 row and activations differ"
    );
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: the features were detected; lengths checked above.
        return unsafe { avx2::dot_q8_0(row, x) };
    }
    dot_q8_0_plain(row, x)
}

/// [`dot_q8_0`] without SIMD.
pub fn dot_q8_0_plain(row: &[u8], x: &[Q8Block]) -> f32 {
    assert_eq!(
        row.len(),
        x.len() * Q8_0_BYTES,
        "Q8_0 row and activations differ"
    );
    let mut sum = 0f32;
    for (b, a) in row.chunks_exact(Q8_0_BYTES).zip(x) {
        let d = f16(&b[0..2]);
        let acc: i32 = b[2..]
            .iter()
            .zip(&a.q)
            .map(|(w, q)| i32::from(*w as i8) * i32::from(*q))
            .sum();
        sum += d * a.d * acc as f32;
    }
    sum
}

/// A row of blocks, dequantized into `out` (for embedding lookups and tests).
pub fn dequantize_row(kind: Kind, row: &[u8], out: &mut [f32]) {
    match kind {
        Kind::Q4_1 => {
            for (b, o) in row
                .chunks_exact(Q4_1_BYTES)
                .zip(out.chunks_exact_mut(BLOCK))
            {
                let (d, m) = (f16(&b[0..2]), f16(&b[2..4]));
                for j in 0..16 {
                    o[j] = d * f32::from(b[4 + j] & 0x0F) + m;
                    o[j + 16] = d * f32::from(b[4 + j] >> 4) + m;
                }
            }
        }
        Kind::Q8_0 => {
            for (b, o) in row
                .chunks_exact(Q8_0_BYTES)
                .zip(out.chunks_exact_mut(BLOCK))
            {
                let d = f16(&b[0..2]);
                for (w, v) in o.iter_mut().zip(&b[2..]) {
                    *w = d * f32::from(*v as i8);
                }
            }
        }
    }
}

/// The block formats these kernels take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 4-bit weights with a scale and a minimum per block.
    Q4_1,
    /// 8-bit weights with a scale per block.
    Q8_0,
}

impl Kind {
    /// Bytes of one block.
    pub fn block_bytes(self) -> usize {
        match self {
            Kind::Q4_1 => Q4_1_BYTES,
            Kind::Q8_0 => Q8_0_BYTES,
        }
    }

    /// `Σ w·x` of a row.
    pub fn dot(self, row: &[u8], x: &[Q8Block]) -> f32 {
        match self {
            Kind::Q4_1 => dot_q4_1(row, x),
            Kind::Q8_0 => dot_q8_0(row, x),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Q8Block, Q4_1_BYTES, Q8_0_BYTES};
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scale(b: *const u8) -> f32 {
        let bits = u16::from_le_bytes([*b, *b.add(1)]);
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// One Q4_1 block times one activation block: the integer sums as 8 floats, and
    /// the block's scale product and minimum term.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4_1_block(b: *const u8, a: &Q8Block) -> (__m256, f32, f32) {
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let (d, m) = (scale(b), scale(b.add(2)));
        // Bytes 4..20: weight j in the low nibble of byte j, weight j + 16 in its
        // high nibble; spread to 32 bytes in weight order.
        let packed = _mm_loadu_si128(b.add(4) as *const __m128i);
        let w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low);
        let q = _mm256_loadu_si256(a.q.as_ptr() as *const __m256i);
        let sums = _mm256_madd_epi16(_mm256_maddubs_epi16(w, q), ones);
        (_mm256_cvtepi32_ps(sums), d * a.d, m * a.s)
    }

    /// Caller: the CPU has AVX2, FMA and F16C; `row.len() == x.len() * 20`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q4_1(row: &[u8], x: &[Q8Block]) -> f32 {
        // Two blocks a step into two accumulators: the FMA latency chains overlap.
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut mins0, mut mins1) = (0f32, 0f32);
        let p = row.as_ptr();
        let mut pairs = x.chunks_exact(2);
        let mut i = 0;
        for pair in &mut pairs {
            let (s0, d0, m0) = q4_1_block(p.add(i * Q4_1_BYTES), &pair[0]);
            let (s1, d1, m1) = q4_1_block(p.add((i + 1) * Q4_1_BYTES), &pair[1]);
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0), s0, acc0);
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d1), s1, acc1);
            mins0 += m0;
            mins1 += m1;
            i += 2;
        }
        if let [a] = pairs.remainder() {
            let (s0, d0, m0) = q4_1_block(p.add(i * Q4_1_BYTES), a);
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0), s0, acc0);
            mins0 += m0;
        }
        hsum(_mm256_add_ps(acc0, acc1)) + mins0 + mins1
    }

    /// One Q8_0 block times one activation block: the integer sums as 8 floats and the
    /// scale product.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q8_0_block(b: *const u8, a: &Q8Block) -> (__m256, f32) {
        let ones = _mm256_set1_epi16(1);
        let w = _mm256_loadu_si256(b.add(2) as *const __m256i);
        let q = _mm256_loadu_si256(a.q.as_ptr() as *const __m256i);
        // maddubs multiplies unsigned by signed: |w| times q with w's sign.
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w));
        let sums = _mm256_madd_epi16(pairs, ones);
        (_mm256_cvtepi32_ps(sums), scale(b) * a.d)
    }

    /// Caller: the CPU has AVX2, FMA and F16C; `row.len() == x.len() * 34`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q8_0(row: &[u8], x: &[Q8Block]) -> f32 {
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let p = row.as_ptr();
        let mut pairs = x.chunks_exact(2);
        let mut i = 0;
        for pair in &mut pairs {
            let (s0, d0) = q8_0_block(p.add(i * Q8_0_BYTES), &pair[0]);
            let (s1, d1) = q8_0_block(p.add((i + 1) * Q8_0_BYTES), &pair[1]);
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0), s0, acc0);
            acc1 = _mm256_fmadd_ps(_mm256_set1_ps(d1), s1, acc1);
            i += 2;
        }
        if let [a] = pairs.remainder() {
            let (s0, d0) = q8_0_block(p.add(i * Q8_0_BYTES), a);
            acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d0), s0, acc0);
        }
        hsum(_mm256_add_ps(acc0, acc1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic row of `blocks` blocks of `kind` with varied scales and values.
    fn row(kind: Kind, blocks: usize, seed: u32) -> Vec<u8> {
        let mut v = Vec::new();
        let mut r = seed;
        let mut next = || {
            r = r.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (r >> 8) as u8
        };
        for i in 0..blocks {
            let d = half::f16::from_f32(0.01 + i as f32 * 0.003)
                .to_bits()
                .to_le_bytes();
            v.extend_from_slice(&d);
            if kind == Kind::Q4_1 {
                let m = half::f16::from_f32(-0.05 * i as f32)
                    .to_bits()
                    .to_le_bytes();
                v.extend_from_slice(&m);
                v.extend((0..16).map(|_| next()));
            } else {
                v.extend((0..32).map(|_| next() & 0xFE)); // no -128, as llama.cpp writes
            }
        }
        v
    }

    #[test]
    fn block_dots_match_the_dequantized_weights_and_the_plain_loop() {
        let n = 6 * BLOCK;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let mut xq = Vec::new();
        quantize(&x, &mut xq);
        // The quantized activations, as floats: what the integer sums multiply.
        let xd: Vec<f32> = xq
            .iter()
            .flat_map(|b| b.q.iter().map(move |q| b.d * f32::from(*q)))
            .collect();
        for (i, (a, b)) in x.iter().zip(&xd).enumerate() {
            assert!(
                (a - b).abs() <= xq[i / BLOCK].d * 0.5 + 1e-6,
                "{i}: {a} {b}"
            );
        }
        for kind in [Kind::Q4_1, Kind::Q8_0] {
            let r = row(kind, n / BLOCK, 7);
            let mut w = vec![0f32; n];
            dequantize_row(kind, &r, &mut w);
            let want: f32 = w.iter().zip(&xd).map(|(w, x)| w * x).sum();
            let plain = match kind {
                Kind::Q4_1 => dot_q4_1_plain(&r, &xq),
                Kind::Q8_0 => dot_q8_0_plain(&r, &xq),
            };
            // The SIMD path where this CPU has it (the same sums in another order).
            let fast = kind.dot(&r, &xq);
            for got in [plain, fast] {
                assert!(
                    (got - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "{kind:?}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn an_all_zero_input_quantizes_to_zero_scales() {
        let mut q = Vec::new();
        quantize(&[0.0; 64], &mut q);
        assert_eq!(q.len(), 2);
        assert!(q.iter().all(|b| b.d == 0.0 && b.s == 0.0 && b.q == [0; 32]));
    }
}
