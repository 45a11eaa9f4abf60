//! Training-mode batch normalisation over `[batch, channels, length]` on host slices: statistics
//! in one f64 pass, the output in a second; the backward in two passes (per-channel sums of `dy`
//! and `dy·x̂`, then `dx`). Burn composes the same maths from ~15 tensor ops, each a full pass.

use super::kernel::{Input, Refused};
use super::par::{PARALLEL_FROM, for_chunks_mut, map_range};

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

fn dims_ok(x: &Input<'_>, shape: [usize; 3]) -> bool {
    let [b, c, l] = shape;
    b > 0 && c > 0 && l > 0 && {
        let end =
            x.offset + (b - 1) * x.strides[0] + (c - 1) * x.strides[1] + (l - 1) * x.strides[2];
        end < x.data.len()
    }
}

/// Independent accumulators per reduction: one running float sum is bound by the adder's
/// latency (4 cycles an element); `LANES` of them vectorise.
const LANES: usize = 8;

/// `(Σ d, Σ d²)` with `d = v − pivot` over the `l` values of one row starting at `start`.
#[inline(always)]
fn shifted_moments(x: &Input<'_>, start: usize, l: usize, pivot: f64) -> (f64, f64) {
    if x.strides[2] != 1 {
        return (0..l).fold((0.0, 0.0), |(a, b), t| {
            let d = x.data[start + t * x.strides[2]] as f64 - pivot;
            (a + d, b + d * d)
        });
    }
    let row = &x.data[start..start + l];
    let (mut s1, mut s2) = ([0.0f64; LANES], [0.0f64; LANES]);
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            let d = chunk[i] as f64 - pivot;
            s1[i] += d;
            s2[i] += d * d;
        }
    }
    let (mut a, mut b) = (s1.iter().sum::<f64>(), s2.iter().sum::<f64>());
    for &v in rest {
        let d = v as f64 - pivot;
        a += d;
        b += d * d;
    }
    (a, b)
}

/// `(Σ dy, Σ dy·(x − mean))` over one contiguous row pair, in f32 lanes.
#[inline(always)]
fn dy_sums(x: &[f32], dy: &[f32], mean: f32) -> (f32, f32) {
    let (mut s0, mut s1) = ([0.0f32; 2 * LANES], [0.0f32; 2 * LANES]);
    let (xc, dc) = (x.chunks_exact(2 * LANES), dy.chunks_exact(2 * LANES));
    let (xr, dr) = (xc.remainder(), dc.remainder());
    for (xs, ds) in xc.zip(dc) {
        for i in 0..2 * LANES {
            s0[i] += ds[i];
            s1[i] += ds[i] * (xs[i] - mean);
        }
    }
    let (mut a, mut b) = (s0.iter().sum::<f32>(), s1.iter().sum::<f32>());
    for (&xv, &g) in xr.iter().zip(dr) {
        a += g;
        b += g * (xv - mean);
    }
    (a, b)
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
    let parallel = b * c * l >= PARALLEL_FROM;
    let moments: Vec<(f64, f64)> = map_range(
        c,
        parallel,
        #[inline(always)]
        |ch| {
            // One pass: Σx and Σx² in f64, shifted by the channel's first value so that a
            // large mean does not cancel the variance away (|mean| ≫ std loses nothing).
            let base = x.offset + ch * x.strides[1];
            let pivot = x.data[base] as f64;
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for bi in 0..b {
                let start = base + bi * x.strides[0];
                let (a, b) = shifted_moments(x, start, l, pivot);
                s1 += a;
                s2 += b;
            }
            let shifted_mean = s1 / n;
            (
                pivot + shifted_mean,
                (s2 / n - shifted_mean * shifted_mean).max(0.0),
            )
        },
    );
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
    for_chunks_mut(
        &mut y,
        c * l,
        b * c * l >= PARALLEL_FROM,
        #[inline(always)]
        |bi, yb| {
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
        },
    );
    y
}

/// `(dx, dgamma, dbeta)`.
pub type Gradients = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Per-channel constants of the input gradient.
struct Coefficients {
    mean: f32,
    rstd: f32,
    k: f32,
    mean_dy: f32,
    mean_dy_xhat: f32,
}

impl Coefficients {
    #[inline(always)]
    fn dx(&self, x: f32, dy: f32) -> f32 {
        self.k * (dy - self.mean_dy - (x - self.mean) * self.rstd * self.mean_dy_xhat)
    }
}

/// `dx` of one contiguous row.
#[inline(always)]
fn dx_row(out: &mut [f32], x: &[f32], dy: &[f32], coef: &Coefficients) {
    for ((o, &xv), &g) in out.iter_mut().zip(x).zip(dy) {
        *o = coef.dx(xv, g);
    }
}

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
    let parallel = b * c * l >= PARALLEL_FROM;
    let sums: Vec<(f64, f64)> = map_range(
        c,
        parallel,
        #[inline(always)]
        |ch| {
            let mean32 = stats.mean[ch];
            let rstd = 1.0 / (stats.var[ch] as f64 + eps).sqrt();
            // Σ dy and Σ dy·(x − mean) in one pass over both; 1/σ applied once at the end.
            let (mut sum_dy, mut sum_dy_centered) = (0.0f64, 0.0f64);
            for bi in 0..b {
                let xb = x.offset + bi * x.strides[0] + ch * x.strides[1];
                let dyb = &dy[(bi * c + ch) * l..(bi * c + ch + 1) * l];
                let (s0, s1) = if x.strides[2] == 1 {
                    dy_sums(&x.data[xb..xb + l], dyb, mean32)
                } else {
                    dyb.iter()
                        .enumerate()
                        .fold((0.0f32, 0.0f32), |(a, b), (t, &g)| {
                            (a + g, b + g * (x.data[xb + t * x.strides[2]] - mean32))
                        })
                };
                // f32 lanes within a row, f64 across rows.
                sum_dy += s0 as f64;
                sum_dy_centered += s1 as f64;
            }
            (sum_dy, sum_dy_centered * rstd)
        },
    );
    let dbeta: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let dgamma: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
    let mut dx = vec![0.0f32; b * c * l];
    for_chunks_mut(
        &mut dx,
        c * l,
        parallel,
        #[inline(always)]
        |bi, dxb| {
            for (ch, row) in dxb.chunks_exact_mut(l).enumerate() {
                let mean = stats.mean[ch];
                let rstd = (1.0 / (stats.var[ch] as f64 + eps).sqrt()) as f32;
                let k = stats.scale[ch]; // gamma · rstd
                let mean_dy = (sums[ch].0 / n) as f32;
                let mean_dy_xhat = (sums[ch].1 / n) as f32;
                let xb = x.offset + bi * x.strides[0] + ch * x.strides[1];
                let dyr = &dy[(bi * c + ch) * l..(bi * c + ch + 1) * l];
                let coef = Coefficients {
                    mean,
                    rstd,
                    k,
                    mean_dy,
                    mean_dy_xhat,
                };
                if x.strides[2] == 1 {
                    dx_row(row, &x.data[xb..xb + l], dyr, &coef);
                } else {
                    for (t, (o, &g)) in row.iter_mut().zip(dyr).enumerate() {
                        *o = coef.dx(x.data[xb + t * x.strides[2]], g);
                    }
                }
            }
        },
    );
    Ok((dx, dgamma, dbeta))
}
