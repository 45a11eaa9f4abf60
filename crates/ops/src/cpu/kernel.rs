//! Conv1d forward and backward on host slices, as GEMMs over a channels-last copy of each
//! batch item: `y[b] (L_out × F) = cols(x[b]) (L_out × K·C) · W (K·C × F)`.
//!
//! Why channels-last: with stride `s` and dilation 1, row `l` of the im2col matrix is the `K·C`
//! contiguous values starting at `l·s·C` of the padded channels-last input, so the matrix is a
//! strided *view* with overlapping rows and no copy at all. Dilation or groups break that
//! contiguity; those cases copy an explicit im2col block per batch item instead.

use rayon::prelude::*;

use super::gemm::{BadView, View, matmul};
use super::par::try_chunks_with_scratch;

/// The geometry of one call, already validated by `conv1d`'s checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Batch size.
    pub batch: usize,
    /// Input channels.
    pub channels: usize,
    /// Input length.
    pub length: usize,
    /// Output channels.
    pub filters: usize,
    /// Kernel taps.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Groups.
    pub groups: usize,
    /// Zeros before the input.
    pub pad_left: usize,
    /// Zeros after the input.
    pub pad_right: usize,
}

impl Geometry {
    /// Padded input length.
    pub fn padded(&self) -> usize {
        self.pad_left
            .saturating_add(self.length)
            .saturating_add(self.pad_right)
    }

    /// Output length, `None` when the window does not fit.
    pub fn out_len(&self) -> Option<usize> {
        let span = self
            .dilation
            .checked_mul(self.kernel.checked_sub(1)?)?
            .checked_add(1)?;
        let padded = self
            .pad_left
            .checked_add(self.length)?
            .checked_add(self.pad_right)?;
        (self.stride > 0 && padded >= span).then(|| (padded - span) / self.stride + 1)
    }

    fn in_per_group(&self) -> usize {
        self.channels / self.groups
    }

    fn out_per_group(&self) -> usize {
        self.filters / self.groups
    }

    /// Whether the im2col matrix is a plain view of the channels-last input.
    fn view_im2col(&self) -> bool {
        self.groups == 1 && self.dilation == 1
    }

    fn valid(&self) -> bool {
        [
            self.batch,
            self.channels,
            self.length,
            self.filters,
            self.kernel,
            self.stride,
            self.dilation,
            self.groups,
        ]
        .iter()
        .all(|&v| v > 0)
            && self.channels.is_multiple_of(self.groups)
            && self.filters.is_multiple_of(self.groups)
            && self.sizes_fit()
    }

    /// Every buffer size the kernels compute is representable (no wrapped products).
    fn sizes_fit(&self) -> bool {
        let Some(out_len) = self.out_len() else {
            return false;
        };
        let product = |v: &[usize]| v.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        [
            product(&[self.batch, self.filters, out_len]),
            product(&[self.batch, self.channels, self.padded()]),
            product(&[self.filters, self.channels, self.kernel]),
            product(&[out_len, self.kernel, self.channels]),
            product(&[out_len, self.stride, self.channels]),
        ]
        .iter()
        .all(|p| p.is_some_and(|p| p < isize::MAX as usize / 4))
    }
}

/// A strided read-only `[batch, channels, length]` tensor.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Backing storage.
    pub data: &'a [f32],
    /// Index of element `[0, 0, 0]`.
    pub offset: usize,
    /// Strides of batch, channel and length.
    pub strides: [usize; 3],
}

impl<'a> Input<'a> {
    /// A contiguous tensor of `shape`.
    pub fn contiguous(data: &'a [f32], shape: [usize; 3]) -> Self {
        Self {
            data,
            offset: 0,
            strides: [shape[1] * shape[2], shape[2], 1],
        }
    }

    fn fits(&self, shape: [usize; 3]) -> bool {
        let mut end = self.offset;
        for (d, s) in shape.iter().zip(self.strides) {
            match (d - 1).checked_mul(s).and_then(|v| end.checked_add(v)) {
                Some(e) => end = e,
                None => return false,
            }
        }
        shape.iter().all(|&d| d > 0) && end < self.data.len()
    }
}

/// The kernel refused the call (geometry or buffers inconsistent); callers fall back to Burn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

impl From<BadView> for Refused {
    fn from(_: BadView) -> Self {
        Refused
    }
}

/// Copies batch item `b` of `x` into `xcl` as padded channels-last rows (`padded × C`).
#[inline(always)]
fn to_channels_last(x: &Input<'_>, b: usize, g: &Geometry, xcl: &mut Vec<f32>) {
    let c = g.channels;
    xcl.clear();
    xcl.resize(g.padded() * c, 0.0);
    let base = x.offset + b * x.strides[0];
    let rows = &mut xcl[g.pad_left * c..(g.pad_left + g.length) * c];
    if x.strides[1] == 1 {
        // Already channels-last in memory: copy rows.
        for (t, row) in rows.chunks_exact_mut(c).enumerate() {
            let start = base + t * x.strides[2];
            row.copy_from_slice(&x.data[start..start + c]);
        }
    } else {
        for ch in 0..c {
            let src = base + ch * x.strides[1];
            for (t, row) in rows.chunks_exact_mut(c).enumerate() {
                row[ch] = x.data[src + t * x.strides[2]];
            }
        }
    }
}

/// Explicit im2col of group `grp`: `out_len × (K·C_g)` rows from channels-last `xcl`.
fn im2col(xcl: &[f32], grp: usize, g: &Geometry, out_len: usize, col: &mut Vec<f32>) {
    let (c, cg, k) = (g.channels, g.in_per_group(), g.kernel);
    col.clear();
    col.resize(out_len * k * cg, 0.0);
    for (l, row) in col.chunks_exact_mut(k * cg).enumerate() {
        for (tap, dst) in row.chunks_exact_mut(cg).enumerate() {
            let t = l * g.stride + tap * g.dilation;
            let src = t * c + grp * cg;
            dst.copy_from_slice(&xcl[src..src + cg]);
        }
    }
}

/// The im2col matrix of group `grp` (`out_len × K·C_g`) over `xcl` or over `col`, whichever the
/// geometry allows.
fn cols<'a>(
    xcl: &'a [f32],
    col: &'a mut Vec<f32>,
    grp: usize,
    g: &Geometry,
    out_len: usize,
) -> (&'a [f32], View) {
    if g.view_im2col() {
        let v = View {
            offset: 0,
            rows: out_len,
            cols: g.kernel * g.channels,
            rs: g.stride * g.channels,
            cs: 1,
        };
        (xcl, v)
    } else {
        im2col(xcl, grp, g, out_len, col);
        (
            col,
            View::row_major(0, out_len, g.kernel * g.in_per_group()),
        )
    }
}

/// `W` regrouped per group as `(K·C_g) × F_g` row-major blocks: `[g][(tap·C_g + c)·F_g + f]`
/// from Burn's `[F, C_g, K]`.
fn pack_weight(w: &[f32], g: &Geometry) -> Vec<f32> {
    let (cg, fg, k) = (g.in_per_group(), g.out_per_group(), g.kernel);
    let mut packed = vec![0.0; w.len()];
    for grp in 0..g.groups {
        let block = &mut packed[grp * k * cg * fg..(grp + 1) * k * cg * fg];
        for fo in 0..fg {
            let f = grp * fg + fo;
            for ci in 0..cg {
                for tap in 0..k {
                    block[(tap * cg + ci) * fg + fo] = w[(f * cg + ci) * k + tap];
                }
            }
        }
    }
    packed
}

/// Below this many multiply-adds a call runs on the calling thread: rayon's hand-off costs
/// more than the work (the bench's seed conv has 0.37 M).
const PARALLEL_FROM: usize = 1 << 22;

/// Splits `0..batch` over rayon's threads when there are enough items; otherwise each GEMM
/// gets the threads itself. Returns (items run in parallel?, threads per GEMM).
fn plan(g: &Geometry) -> (bool, usize) {
    let threads = rayon::current_num_threads().max(1);
    let work = g.out_len().unwrap_or(0) * g.batch * g.filters * g.channels / g.groups * g.kernel;
    if work < PARALLEL_FROM || threads == 1 {
        (false, 1)
    } else if g.batch >= threads {
        (true, 1)
    } else {
        (false, threads)
    }
}

/// Per-thread buffers of the forward: channels-last input, im2col block, product block.
#[derive(Default)]
struct Scratch {
    xcl: Vec<f32>,
    col: Vec<f32>,
    out: Vec<f32>,
}

/// `dst[f·rows + l] = src[l·cols + f] + bias[f]`, in tiles of 16 rows so both sides stream.
#[inline(always)]
fn transpose_add_bias(
    src: &[f32],
    dst: &mut [f32],
    rows: usize,
    cols: usize,
    bias: Option<&[f32]>,
) {
    const TILE: usize = 16;
    for l0 in (0..rows).step_by(TILE) {
        let l1 = (l0 + TILE).min(rows);
        for f in 0..cols {
            let b = bias.map_or(0.0, |b| b[f]);
            let row = &mut dst[f * rows + l0..f * rows + l1];
            for (i, o) in row.iter_mut().enumerate() {
                *o = src[(l0 + i) * cols + f] + b;
            }
        }
    }
}

/// The forward's shared part: checks, packs the weight, and for each batch item computes every
/// group's product `(L_out × F_g)` channels-last into a per-worker block, handing it to
/// `epilogue(group, block, item_output)` while it sits in cache (an epilogue that loops wraps
/// its body in `par::simd`). Each item owns `per_item`
/// output values. The product is channels-last because gemm runs fastest with the filters as
/// its short side.
// Inlined into both forwards: as a call it cost the seed-shape forward ~1 µs of its 12.
#[inline(always)]
fn forward_blocks(
    x: &Input<'_>,
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    per_item: impl Fn(usize) -> usize,
    epilogue: impl Fn(usize, &[f32], &mut [f32]) + Sync + Send,
) -> Result<Vec<f32>, Refused> {
    if !g.valid()
        || !x.fits([g.batch, g.channels, g.length])
        || w.len() != g.filters * g.in_per_group() * g.kernel
        || bias.is_some_and(|b| b.len() != g.filters)
    {
        return Err(Refused);
    }
    let out_len = g.out_len().ok_or(Refused)?;
    let (fg, cg, k) = (g.out_per_group(), g.in_per_group(), g.kernel);
    let packed = pack_weight(w, g);
    let chunk = per_item(out_len);
    let mut y = vec![0.0f32; g.batch * chunk];
    let (par_items, gemm_threads) = plan(g);
    let item = |scratch: &mut Scratch, (b, yb): (usize, &mut [f32])| {
        let Scratch { xcl, col, out } = scratch;
        super::par::simd(|| to_channels_last(x, b, g, xcl));
        out.resize(out_len * fg, 0.0);
        for grp in 0..g.groups {
            let (lhs, l) = cols(xcl, col, grp, g, out_len);
            let d = View::row_major(0, out_len, fg);
            let r = View::row_major(grp * k * cg * fg, k * cg, fg);
            matmul(out, d, lhs, l, &packed, r, false, gemm_threads)?;
            epilogue(grp, out, yb);
        }
        Ok::<(), Refused>(())
    };
    try_chunks_with_scratch(&mut y, chunk, par_items, Scratch::default, item)?;
    Ok(y)
}

/// Forward: `x [B, C, L]`, `w [F, C/groups, K]` (contiguous), `bias [F]`; returns `[B, F, L_out]`.
pub fn forward(
    x: &Input<'_>,
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
) -> Result<Vec<f32>, Refused> {
    let (f, fg) = (g.filters, g.out_per_group());
    forward_blocks(
        x,
        w,
        bias,
        g,
        |out_len| f * out_len,
        |grp, block, yb| {
            // Transposed into the item's channels-first output, bias added on the way.
            let out_len = block.len() / fg;
            let yg = &mut yb[grp * fg * out_len..(grp + 1) * fg * out_len];
            let bias_g = bias.map(|b| &b[grp * fg..(grp + 1) * fg]);
            super::par::simd(|| transpose_add_bias(block, yg, out_len, fg, bias_g));
        },
    )
}

/// Gradient of the input: `dy [B, F, L_out]` (contiguous) and `w`; returns `[B, C, L]`.
pub fn backward_input(dy: &[f32], w: &[f32], g: &Geometry) -> Result<Vec<f32>, Refused> {
    let out_len = g.out_len().ok_or(Refused)?;
    if !g.valid()
        || dy.len() != g.batch * g.filters * out_len
        || w.len() != g.filters * g.in_per_group() * g.kernel
    {
        return Err(Refused);
    }
    let (c, f, fg, cg, k, l) = (
        g.channels,
        g.filters,
        g.out_per_group(),
        g.in_per_group(),
        g.kernel,
        g.length,
    );
    // Stride 1, dilation 1, one group: dx is a full correlation of dy with the flipped kernel,
    // one GEMM over an overlapping view of zero-padded channels-last dy, inner dimension K·F.
    let full = g.view_im2col() && g.stride == 1;
    let flipped = if full {
        let mut flip = vec![0.0; k * f * c];
        for fi in 0..f {
            for ci in 0..c {
                for tap in 0..k {
                    flip[((k - 1 - tap) * f + fi) * c + ci] = w[(fi * c + ci) * k + tap];
                }
            }
        }
        flip
    } else {
        Vec::new()
    };
    let mut dx = vec![0.0f32; g.batch * c * l];
    let (par_items, gemm_threads) = plan(g);
    let item = |scratch: &mut Vec<f32>, (b, dxb): (usize, &mut [f32])| {
        let dyb = &dy[b * f * out_len..(b + 1) * f * out_len];
        if full {
            // dypad: (out_len + 2(K-1)) × F channels-last, K-1 zero rows each side.
            scratch.clear();
            scratch.resize((out_len + 2 * (k - 1)) * f, 0.0);
            for fi in 0..f {
                for (t, &v) in dyb[fi * out_len..(fi + 1) * out_len].iter().enumerate() {
                    scratch[(k - 1 + t) * f + fi] = v;
                }
            }
            // Padded-frame row t of dx reads dypad rows t..t+K; the real input is t ∈ [pl, pl+L).
            let lhs = View {
                offset: g.pad_left * f,
                rows: l,
                cols: k * f,
                rs: f,
                cs: 1,
            };
            let d = View {
                offset: 0,
                rows: l,
                cols: c,
                rs: 1,
                cs: l,
            };
            matmul(
                dxb,
                d,
                scratch,
                lhs,
                &flipped,
                View::row_major(0, k * f, c),
                false,
                gemm_threads,
            )?;
            return Ok(());
        }
        // General: one accumulating GEMM per group and tap into the padded channels-last frame.
        scratch.clear();
        scratch.resize(g.padded() * c, 0.0);
        for grp in 0..g.groups {
            let lhs = View {
                offset: grp * fg * out_len,
                rows: out_len,
                cols: fg,
                rs: 1,
                cs: out_len,
            };
            for tap in 0..k {
                let d = View {
                    offset: tap * g.dilation * c + grp * cg,
                    rows: out_len,
                    cols: cg,
                    rs: g.stride * c,
                    cs: 1,
                };
                let r = View {
                    offset: grp * fg * cg * k + tap,
                    rows: fg,
                    cols: cg,
                    rs: cg * k,
                    cs: k,
                };
                matmul(scratch, d, dyb, lhs, w, r, true, gemm_threads)?;
            }
        }
        for ci in 0..c {
            for t in 0..l {
                dxb[ci * l + t] = scratch[(g.pad_left + t) * c + ci];
            }
        }
        Ok::<(), Refused>(())
    };
    try_chunks_with_scratch(&mut dx, c * l, par_items, Vec::new, item)?;
    Ok(dx)
}

/// Gradients of the weight and the bias: `x` and `dy [B, F, L_out]`; returns `([F, C/groups,
/// K], [F])`. The bias sums run on each item's `dy` block while the GEMM has it in cache.
pub fn backward_weight(
    x: &Input<'_>,
    dy: &[f32],
    g: &Geometry,
) -> Result<(Vec<f32>, Vec<f32>), Refused> {
    let out_len = g.out_len().ok_or(Refused)?;
    if !g.valid()
        || !x.fits([g.batch, g.channels, g.length])
        || dy.len() != g.batch * g.filters * out_len
    {
        return Err(Refused);
    }
    let (f, fg, cg, k) = (g.filters, g.out_per_group(), g.in_per_group(), g.kernel);
    let size = f * cg * k;
    let (par_items, gemm_threads) = plan(g);
    // Each worker sums its batch items into its own packed gradient; the partial sums add up.
    let accumulate = |acc: &mut Vec<f32>, xcl: &mut Vec<f32>, col: &mut Vec<f32>, b: usize| {
        super::par::simd(|| to_channels_last(x, b, g, xcl));
        let dyb = &dy[b * f * out_len..(b + 1) * f * out_len];
        // The bias gradient rides in the accumulator's tail.
        for (d, row) in acc[size..].iter_mut().zip(dyb.chunks_exact(out_len)) {
            *d += row.iter().sum::<f32>();
        }
        for grp in 0..g.groups {
            let (lhs, l) = cols(xcl, col, grp, g, out_len);
            let r = View {
                offset: grp * fg * out_len,
                rows: out_len,
                cols: fg,
                rs: 1,
                cs: out_len,
            };
            // Column-major (K·C_g × F_g): gemm then keeps the long K·C side as its M.
            let d = View {
                offset: grp * k * cg * fg,
                rows: k * cg,
                cols: fg,
                rs: 1,
                cs: k * cg,
            };
            matmul(acc, d, lhs, l.t(), dyb, r, true, gemm_threads)?;
        }
        Ok::<(), Refused>(())
    };
    let packed = if par_items {
        let threads = rayon::current_num_threads().max(1);
        let per = g.batch.div_ceil(threads);
        let partials: Result<Vec<Vec<f32>>, Refused> = (0..g.batch.div_ceil(per))
            .into_par_iter()
            .map(|chunk| {
                let (mut acc, mut xcl, mut col) = (vec![0.0; size + f], Vec::new(), Vec::new());
                for b in chunk * per..((chunk + 1) * per).min(g.batch) {
                    accumulate(&mut acc, &mut xcl, &mut col, b)?;
                }
                Ok(acc)
            })
            .collect();
        let mut partials = partials?.into_iter();
        let mut total = partials.next().unwrap_or_else(|| vec![0.0; size + f]);
        for p in partials {
            total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
        }
        total
    } else {
        let (mut acc, mut xcl, mut col) = (vec![0.0; size + f], Vec::new(), Vec::new());
        for b in 0..g.batch {
            accumulate(&mut acc, &mut xcl, &mut col, b)?;
        }
        acc
    };
    let db = packed[size..].to_vec();
    // Back to Burn's [F, C_g, K] from the per-group column-major (K·C_g × F_g) blocks.
    let mut dw = vec![0.0; size];
    for grp in 0..g.groups {
        let block = &packed[grp * k * cg * fg..(grp + 1) * k * cg * fg];
        for fo in 0..fg {
            for ci in 0..cg {
                for tap in 0..k {
                    dw[((grp * fg + fo) * cg + ci) * k + tap] = block[fo * k * cg + tap * cg + ci];
                }
            }
        }
    }
    Ok((dw, db))
}

/// Gradient of the bias: `dy [B, F, L_out]` summed over batch and length.
pub fn backward_bias(dy: &[f32], g: &Geometry) -> Result<Vec<f32>, Refused> {
    let out_len = g.out_len().ok_or(Refused)?;
    if !g.valid() || dy.len() != g.batch * g.filters * out_len {
        return Err(Refused);
    }
    let mut db = vec![0.0f32; g.filters];
    for row in dy.chunks_exact(g.filters * out_len) {
        for (d, r) in db.iter_mut().zip(row.chunks_exact(out_len)) {
            *d += r.iter().sum::<f32>();
        }
    }
    Ok(db)
}

/// An elementwise activation that never decreases, so a global max commutes with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Monotone {
    /// Identity.
    Linear,
    /// `max(v, 0)`.
    Relu,
}

impl Monotone {
    fn apply(self, v: f32) -> f32 {
        match self {
            Self::Linear => v,
            Self::Relu => v.max(0.0),
        }
    }
}

/// A global pooling over length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlobalPool {
    /// Maximum.
    Max,
    /// Mean.
    Avg,
}

/// Inference forward of conv → activation → per-channel affine (`·scale + shift`, a BatchNorm
/// in inference) → global pool, returning `[B, F]` without materialising the `[B, F, L_out]`
/// activation: each batch item's product block is pooled while it sits in cache.
///
/// The max is exact, not approximate: bias add, a non-decreasing activation and a positive
/// scale are all monotone under rounding, so the max of the pipeline is the pipeline of the
/// max (of the min, for a negative scale). The mean sums `act(v + b)` over length, then scales.
#[allow(clippy::too_many_arguments)]
pub fn forward_global_pool(
    x: &Input<'_>,
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    activation: Monotone,
    scale: &[f32],
    shift: &[f32],
    pool: GlobalPool,
) -> Result<Vec<f32>, Refused> {
    if scale.len() != g.filters || shift.len() != g.filters {
        return Err(Refused);
    }
    let fg = g.out_per_group();
    forward_blocks(
        x,
        w,
        bias,
        g,
        |_| g.filters,
        |grp, block, yb| {
            let out_len = block.len() / fg;
            let channels = grp * fg..(grp + 1) * fg;
            let bias_g = |j: usize| bias.map_or(0.0, |b| b[grp * fg + j]);
            super::par::simd(|| match pool {
                GlobalPool::Max => {
                    let mut hi = vec![f32::NEG_INFINITY; fg];
                    let mut lo = vec![f32::INFINITY; fg];
                    for row in block.chunks_exact(fg) {
                        for ((h, l), &v) in hi.iter_mut().zip(lo.iter_mut()).zip(row) {
                            *h = h.max(v);
                            *l = l.min(v);
                        }
                    }
                    for (j, ch) in channels.enumerate() {
                        let s = scale[ch];
                        let v = if s >= 0.0 { hi[j] } else { lo[j] };
                        yb[ch] = activation.apply(v + bias_g(j)) * s + shift[ch];
                    }
                }
                GlobalPool::Avg => {
                    let mut sum = vec![0.0f64; fg];
                    for row in block.chunks_exact(fg) {
                        for (j, (acc, &v)) in sum.iter_mut().zip(row).enumerate() {
                            *acc += activation.apply(v + bias_g(j)) as f64;
                        }
                    }
                    for (j, ch) in channels.enumerate() {
                        yb[ch] = (sum[j] / out_len as f64) as f32 * scale[ch] + shift[ch];
                    }
                }
            });
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        Geometry {
            batch: 2,
            channels: 3,
            length: 8,
            filters: 4,
            kernel: 3,
            stride: 1,
            dilation: 1,
            groups: 1,
            pad_left: 0,
            pad_right: 0,
        }
    }

    /// Zero sizes, windows longer than the input, wrapped products and short buffers are
    /// refusals, never panics.
    #[test]
    fn bad_geometry_and_buffers_are_refused() {
        let x = vec![0.0f32; 2 * 3 * 8];
        let w = vec![0.0f32; 4 * 3 * 3];
        let dy = vec![0.0f32; 2 * 4 * 6];
        let good = geometry();
        let input = Input::contiguous(&x, [2, 3, 8]);
        assert!(forward(&input, &w, None, &good).is_ok());
        let bad = [
            Geometry { kernel: 0, ..good },
            Geometry { stride: 0, ..good },
            Geometry { groups: 2, ..good },
            Geometry { kernel: 20, ..good },
            Geometry {
                pad_left: usize::MAX,
                ..good
            },
            Geometry {
                filters: usize::MAX / 2,
                ..good
            },
            Geometry {
                dilation: usize::MAX,
                ..good
            },
        ];
        for g in bad {
            assert_eq!(forward(&input, &w, None, &g), Err(Refused), "{g:?}");
            assert_eq!(backward_input(&dy, &w, &g), Err(Refused), "{g:?}");
            assert_eq!(backward_weight(&input, &dy, &g), Err(Refused), "{g:?}");
            assert_eq!(backward_bias(&dy, &g), Err(Refused), "{g:?}");
        }
        let short = Input::contiguous(&x[..10], [2, 3, 8]);
        assert_eq!(forward(&short, &w, None, &good), Err(Refused));
        assert_eq!(forward(&input, &w[..5], None, &good), Err(Refused));
        assert_eq!(backward_input(&dy[..5], &w, &good), Err(Refused));
    }
}
