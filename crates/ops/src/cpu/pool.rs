//! Global max pooling over length with its argmax, and the backward that routes each pooled
//! gradient to that position (Burn's `max_dim` backward gathers indices and scatters them in
//! separate full-size passes).

use rayon::prelude::*;

use super::kernel::{Input, Refused};

/// Rows (batch × channel) below which one thread does the whole pass.
const PARALLEL_FROM: usize = 1 << 16;

/// Max over length of `x [B, C, L]`: values `[B·C]` and the first index reaching each.
/// A NaN in a row makes that row's max NaN (as `max_dim`'s comparison-free maths would not).
pub fn global_max(x: &Input<'_>, shape: [usize; 3]) -> Result<(Vec<f32>, Vec<u32>), Refused> {
    let [b, c, l] = shape;
    let fits = b > 0 && c > 0 && l > 0 && u32::try_from(l).is_ok() && {
        x.offset + (b - 1) * x.strides[0] + (c - 1) * x.strides[1] + (l - 1) * x.strides[2]
            < x.data.len()
    };
    if !fits {
        return Err(Refused);
    }
    let row = |r: usize| {
        let base = x.offset + (r / c) * x.strides[0] + (r % c) * x.strides[1];
        let (mut best, mut at) = (x.data[base], 0u32);
        for t in 1..l {
            let v = x.data[base + t * x.strides[2]];
            if v > best || (v.is_nan() && !best.is_nan()) {
                best = v;
                at = t as u32;
            }
        }
        (best, at)
    };
    let min_len = if b * c * l < PARALLEL_FROM { b * c } else { 1 };
    let pairs: Vec<(f32, u32)> = (0..b * c)
        .into_par_iter()
        .with_min_len(min_len)
        .map(row)
        .collect();
    Ok(pairs.into_iter().unzip())
}

/// Gradient of [`global_max`]: `dy [B·C]` placed at each row's argmax of a zero `[B, C, L]`.
pub fn global_max_backward(
    dy: &[f32],
    argmax: &[u32],
    shape: [usize; 3],
) -> Result<Vec<f32>, Refused> {
    let [b, c, l] = shape;
    if dy.len() != b * c || argmax.len() != b * c || argmax.iter().any(|&a| a as usize >= l) {
        return Err(Refused);
    }
    let mut dx = vec![0.0f32; b * c * l];
    let min_len = if b * c * l < PARALLEL_FROM { b * c } else { 1 };
    dx.par_chunks_mut(l)
        .with_min_len(min_len)
        .zip(dy.par_iter().zip(argmax))
        .for_each(|(row, (&g, &at))| row[at as usize] = g);
    Ok(dx)
}
