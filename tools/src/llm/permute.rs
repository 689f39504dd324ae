//! The row order llama.cpp's converter gives the query and key projections.
//!
//! `convert_hf_to_gguf.py` reorders the rows of `q_proj` (with the number of heads) and
//! `k_proj` (with the number of key/value heads) so that each head's rotary pairs are
//! adjacent, the layout its RoPE (and candle's `rope_i`) expects:
//! `w.reshape(n_head, 2, rows / n_head / 2, cols).swapaxes(1, 2).reshape(rows, cols)`.
//! A PEFT adapter is in Hugging Face's order, so `B` (whose rows are the projection's
//! outputs) must be reordered the same way before `B·A` is added to the GGUF weight; `A`
//! (the input side) is not. Since the reorder only moves rows,
//! `permute(W + s·B·A) = permute(W) + s·permute(B)·A`.

/// Where the converter puts row `row` of a `[rows, ·]` matrix split into `n_head`
/// heads: within a head of size d, row `p·d/2 + j` goes to `2·j + p`.
pub fn gguf_row(row: usize, rows: usize, n_head: usize) -> usize {
    let d = rows / n_head;
    let half = d / 2;
    let (head, within) = (row / d, row % d);
    let (p, j) = (within / half, within % half);
    head * d + 2 * j + p
}

/// `m` (`rows × cols`, row-major, Hugging Face order) with its rows in the converter's
/// order. `None` when `rows` does not split into `n_head` heads of even size.
pub fn permute_rows(m: &[f32], rows: usize, cols: usize, n_head: usize) -> Option<Vec<f32>> {
    if n_head == 0
        || !rows.is_multiple_of(n_head)
        || !(rows / n_head).is_multiple_of(2)
        || m.len() != rows * cols
    {
        return None;
    }
    let mut out = vec![0f32; m.len()];
    for r in 0..rows {
        let to = gguf_row(r, rows, n_head);
        out[to * cols..(to + 1) * cols].copy_from_slice(&m[r * cols..(r + 1) * cols]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matmul(a: &[f32], b: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
        let mut c = vec![0f32; n * m];
        for i in 0..n {
            for j in 0..m {
                c[i * m + j] = (0..k).map(|x| a[i * k + x] * b[x * m + j]).sum();
            }
        }
        c
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0
                    - 1.0
            })
            .collect()
    }

    /// The converter's reshape/swapaxes, written out index by index.
    fn reference(m: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
        let half = rows / n_head / 2;
        let mut out = vec![0f32; m.len()];
        // new[h][j][p] = old[h][p][j]
        for h in 0..n_head {
            for j in 0..half {
                for p in 0..2 {
                    let new_row = (h * half + j) * 2 + p;
                    let old_row = (h * 2 + p) * half + j;
                    out[new_row * cols..(new_row + 1) * cols]
                        .copy_from_slice(&m[old_row * cols..(old_row + 1) * cols]);
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_converters_reshape() {
        let (rows, cols) = (24, 5);
        for heads in [1, 2, 3, 6] {
            let m = values(rows * cols, heads as u32);
            assert_eq!(
                permute_rows(&m, rows, cols, heads).unwrap(),
                reference(&m, rows, cols, heads)
            );
        }
        assert!(permute_rows(&values(10, 0), 5, 2, 2).is_none());
        assert!(
            permute_rows(&values(12, 0), 6, 2, 2).is_none(),
            "odd head size"
        );
    }

    #[test]
    fn permuting_the_merged_weight_is_permuting_b() {
        // W: [out 12, in 7], B: [12, r 3], A: [3, 7], 3 heads (key/value-like) and s = 1.7.
        let (out, inp, r, heads, s) = (12, 7, 3, 3, 1.7f32);
        let w = values(out * inp, 1);
        let b = values(out * r, 2);
        let a = values(r * inp, 3);
        let ba = matmul(&b, &a, out, r, inp);
        let merged: Vec<f32> = w.iter().zip(&ba).map(|(w, d)| w + s * d).collect();
        let left = permute_rows(&merged, out, inp, heads).unwrap();
        let pb = permute_rows(&b, out, r, heads).unwrap();
        let pba = matmul(&pb, &a, out, r, inp);
        let pw = permute_rows(&w, out, inp, heads).unwrap();
        let right: Vec<f32> = pw.iter().zip(&pba).map(|(w, d)| w + s * d).collect();
        for (l, r) in left.iter().zip(&right) {
            assert!((l - r).abs() < 1e-6, "{l} vs {r}");
        }
    }
}
