//! Global max pooling over length with its argmax, and the backward that routes each pooled
//! gradient to that position (Burn's `max_dim` backward gathers indices and scatters them in
//! separate full-size passes).

use super::kernel::{Input, Refused};
use super::par::{PARALLEL_FROM, for_chunks_mut, map_range};

/// Max over length of `x [B, C, L]`: values `[B·C]` and the first index reaching each.
/// A NaN in a row makes that row's max NaN, at the first NaN.
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
        if x.strides[2] == 1 {
            return row_max(&x.data[base..base + l]);
        }
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
    let pairs = map_range(b * c, b * c * l >= PARALLEL_FROM, row);
    Ok(pairs.into_iter().unzip())
}

/// Max and first argmax of a contiguous row; NaN (at the first NaN) if the row holds one.
#[inline(always)]
fn row_max(row: &[f32]) -> (f32, u32) {
    // 16 independent maxima vectorise (a select on `>` is exactly `vmaxps`); a NaN never
    // compares greater, so it is looked for separately.
    const LANES: usize = 16;
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut nan = false;
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            let v = chunk[i];
            nan |= v.is_nan();
            lanes[i] = if v > lanes[i] { v } else { lanes[i] };
        }
    }
    let mut best = lanes
        .iter()
        .fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
    for &v in rest {
        nan |= v.is_nan();
        best = if v > best { v } else { best };
    }
    let at = if nan {
        row.iter().position(|v| v.is_nan())
    } else {
        row.iter().position(|&v| v == best)
    };
    let at = at.unwrap_or(0) as u32;
    (if nan { f32::NAN } else { best }, at)
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
    for_chunks_mut(&mut dx, l, b * c * l >= PARALLEL_FROM, |r, row| {
        row[argmax[r] as usize] = dy[r];
    });
    Ok(dx)
}
