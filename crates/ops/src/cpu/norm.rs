//! Training-mode batch normalisation over `[batch, channels, length]` on host slices: statistics
//! in one f64 pass, the output in a second; the backward in two passes (per-channel sums of `dy`
//! and `dy·x̂`, then `dx`). Burn composes the same maths from ~15 tensor ops, each a full pass.

use rayon::prelude::*;

use super::kernel::{Input, Refused};

/// Per-channel batch statistics and the affine they give.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStats {
    /// Mean over batch and length.
    pub mean: Vec<f32>,
    /// Biased variance over batch and length.
    pub var: Vec<f32>,
    /// `gamma / sqrt(var + eps)`.
    pub scale: Vec<f32>,
    /// `beta − mean · scale`.
    pub shift: Vec<f32>,
}

/// Below this many elements one thread does the whole pass: rayon's hand-off costs more than
/// the work (the bench's seed shape has 15k).
const PARALLEL_FROM: usize = 1 << 16;

/// Minimum items per rayon job: all of them for small tensors, so they run on one thread.
fn min_len(elements: usize, items: usize) -> usize {
    if elements < PARALLEL_FROM {
        items.max(1)
    } else {
        1
    }
}

fn dims_ok(x: &Input<'_>, shape: [usize; 3]) -> bool {
    let [b, c, l] = shape;
    b > 0 && c > 0 && l > 0 && {
        let end =
            x.offset + (b - 1) * x.strides[0] + (c - 1) * x.strides[1] + (l - 1) * x.strides[2];
        end < x.data.len()
    }
}

/// Calls `f` on the `l` values of one row starting at `start`, contiguous rows as slices.
fn for_each_in_row(x: &Input<'_>, start: usize, l: usize, mut f: impl FnMut(f32)) {
    if x.strides[2] == 1 {
        x.data[start..start + l].iter().for_each(|&v| f(v));
    } else {
        (0..l).for_each(|t| f(x.data[start + t * x.strides[2]]));
    }
}

/// Batch statistics of `x` and the normalised output `x·scale + shift` (TensorFlow's order of
/// operations), `[B, C, L]` contiguous. `gamma`/`beta` default to 1/0.
pub fn forward_train(
    x: &Input<'_>,
    shape: [usize; 3],
    gamma: Option<&[f32]>,
    beta: Option<&[f32]>,
    eps: f64,
) -> Result<(Vec<f32>, BatchStats), Refused> {
    let [b, c, l] = shape;
    if !dims_ok(x, shape)
        || gamma.is_some_and(|g| g.len() != c)
        || beta.is_some_and(|v| v.len() != c)
    {
        return Err(Refused);
    }
    let n = (b * l) as f64;
    let moments: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .with_min_len(min_len(b * c * l, c))
        .map(|ch| {
            // One pass: Σx and Σx² in f64, shifted by the channel's first value so that a
            // large mean does not cancel the variance away (|mean| ≫ std loses nothing).
            let base = x.offset + ch * x.strides[1];
            let pivot = x.data[base] as f64;
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for bi in 0..b {
                let start = base + bi * x.strides[0];
                for_each_in_row(x, start, l, |v| {
                    let d = v as f64 - pivot;
                    s1 += d;
                    s2 += d * d;
                });
            }
            let shifted_mean = s1 / n;
            (
                pivot + shifted_mean,
                (s2 / n - shifted_mean * shifted_mean).max(0.0),
            )
        })
        .collect();
    let mut stats = BatchStats {
        mean: Vec::with_capacity(c),
        var: Vec::with_capacity(c),
        scale: Vec::with_capacity(c),
        shift: Vec::with_capacity(c),
    };
    for (ch, &(mean, var)) in moments.iter().enumerate() {
        let g = gamma.map_or(1.0, |g| g[ch]);
        let bt = beta.map_or(0.0, |v| v[ch]);
        let scale = ((var as f32 + eps as f32).sqrt()).recip() * g;
        stats.mean.push(mean as f32);
        stats.var.push(var as f32);
        stats.scale.push(scale);
        stats.shift.push(bt - mean as f32 * scale);
    }
    let y = affine(x, shape, &stats.scale, &stats.shift);
    Ok((y, stats))
}

/// `x·scale[c] + shift[c]`, `[B, C, L]` contiguous, batch items in parallel.
pub fn affine(x: &Input<'_>, shape: [usize; 3], scale: &[f32], shift: &[f32]) -> Vec<f32> {
    let [b, c, l] = shape;
    let mut y = vec![0.0f32; shape.iter().product()];
    y.par_chunks_mut(c * l)
        .with_min_len(min_len(b * c * l, b))
        .enumerate()
        .for_each(|(bi, yb)| {
            for (ch, row) in yb.chunks_exact_mut(l).enumerate() {
                let base = x.offset + bi * x.strides[0] + ch * x.strides[1];
                let (s, h) = (scale[ch], shift[ch]);
                if x.strides[2] == 1 {
                    for (o, &v) in row.iter_mut().zip(&x.data[base..base + l]) {
                        *o = v * s + h;
                    }
                } else {
                    for (t, o) in row.iter_mut().enumerate() {
                        *o = x.data[base + t * x.strides[2]] * s + h;
                    }
                }
            }
        });
    y
}

/// `(dx, dgamma, dbeta)`.
pub type Gradients = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Gradients of [`forward_train`] for upstream `dy` (`[B, C, L]` contiguous): `(dx, dgamma,
/// dbeta)`. `dx = scale·(dy − mean(dy) − x̂·mean(dy·x̂))` with `x̂ = (x − mean)/σ`.
pub fn backward_train(
    x: &Input<'_>,
    shape: [usize; 3],
    dy: &[f32],
    stats: &BatchStats,
    eps: f64,
) -> Result<Gradients, Refused> {
    let [b, c, l] = shape;
    if !dims_ok(x, shape) || dy.len() != b * c * l || stats.mean.len() != c {
        return Err(Refused);
    }
    let n = (b * l) as f64;
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .with_min_len(min_len(b * c * l, c))
        .map(|ch| {
            let mean32 = stats.mean[ch];
            let rstd = 1.0 / (stats.var[ch] as f64 + eps).sqrt();
            // Σ dy and Σ dy·(x − mean) in one pass over both; 1/σ applied once at the end.
            let (mut sum_dy, mut sum_dy_centered) = (0.0f64, 0.0f64);
            for bi in 0..b {
                let xb = x.offset + bi * x.strides[0] + ch * x.strides[1];
                let dyb = &dy[(bi * c + ch) * l..(bi * c + ch + 1) * l];
                let (mut s0, mut s1) = (0.0f32, 0.0f32);
                if x.strides[2] == 1 {
                    for (&xv, &g) in x.data[xb..xb + l].iter().zip(dyb) {
                        s0 += g;
                        s1 += g * (xv - mean32);
                    }
                } else {
                    for (t, &g) in dyb.iter().enumerate() {
                        s0 += g;
                        s1 += g * (x.data[xb + t * x.strides[2]] - mean32);
                    }
                }
                // f32 within a row (vectorises), f64 across rows.
                sum_dy += s0 as f64;
                sum_dy_centered += s1 as f64;
            }
            (sum_dy, sum_dy_centered * rstd)
        })
        .collect();
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    let mut dx = vec![0.0f32; b * c * l];
    dx.par_chunks_mut(c * l)
        .with_min_len(min_len(b * c * l, b))
        .enumerate()
        .for_each(|(bi, dxb)| {
            for (ch, row) in dxb.chunks_exact_mut(l).enumerate() {
                let mean = stats.mean[ch];
                let rstd = (1.0 / (stats.var[ch] as f64 + eps).sqrt()) as f32;
                let k = stats.scale[ch]; // gamma · rstd
                let mean_dy = (sums[ch].0 / n) as f32;
                let mean_dy_xhat = (sums[ch].1 / n) as f32;
                let xb = x.offset + bi * x.strides[0] + ch * x.strides[1];
                let db = (bi * c + ch) * l;
                for (t, o) in row.iter_mut().enumerate() {
                    let xhat = (x.data[xb + t * x.strides[2]] - mean) * rstd;
                    *o = k * (dy[db + t] - mean_dy - xhat * mean_dy_xhat);
                }
            }
        });
    Ok((dx, dgamma, dbeta))
}
