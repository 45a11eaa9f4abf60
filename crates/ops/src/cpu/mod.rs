//! widen's CPU kernels. conv1d as im2col-as-a-view GEMMs on gemm's AVX-512/AVX2 kernels, batch
//! items spread over rayon's threads, with its own backward pass (a full correlation for the
//! input gradient, one accumulating GEMM per worker for the weight gradient); training-mode
//! BatchNorm in two passes each way ([`norm`]); global max with its argmax ([`pool`]); and a
//! fused conv → affine → global-pool inference head ([`conv1d_global_pool`]). [`peak`] measures
//! the machine's FP32 FMA peak that `widen bench` reports its GFLOP/s against.
//!
//! Registered for flex and ndarray (and their autodiff twins) through Burn's
//! `#[backend_extension]` when widen-ops' `flex`/`ndarray`/`autodiff` features are on;
//! [`crate::conv1d`] and the other entry points here route to them on those devices for f32
//! tensors and leave everything else (wgpu, other dtypes) to Burn. Why: Burn 0.22's CPU conv1d
//! goes through conv2d/conv3d with an im2col copy per tile and a generic backward, and its
//! BatchNorm is ~15 full passes of tensor ops (measured in docs/PERFORMANCE.md).

mod gemm;
pub mod kernel;
pub mod norm;
mod par;
pub mod peak;
pub mod pool;

#[cfg(any(feature = "flex", feature = "ndarray"))]
mod backend;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use burn::tensor::{Device, Tensor};

pub use kernel::{Geometry, GlobalPool, Monotone};

static ENABLED: AtomicBool = AtomicBool::new(true);
static KERNEL_RUNS: AtomicU64 = AtomicU64::new(0);
static FALLBACKS: AtomicU64 = AtomicU64::new(0);

/// Process-wide counts since start: passes (forward, or one backward) the kernel ran, and
/// passes routed to it that it handed back to Burn's conv (a dtype or layout it cannot read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Passes the kernel ran.
    pub kernel_runs: u64,
    /// Passes it handed to Burn's conv.
    pub fallbacks: u64,
}

/// The counts so far.
pub fn stats() -> Stats {
    Stats {
        kernel_runs: KERNEL_RUNS.load(Ordering::Relaxed),
        fallbacks: FALLBACKS.load(Ordering::Relaxed),
    }
}

#[cfg_attr(not(any(feature = "flex", feature = "ndarray")), allow(dead_code))]
fn count(ran: bool) {
    let counter = if ran { &KERNEL_RUNS } else { &FALLBACKS };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Turns the kernel on or off process-wide (on by default). Off, [`crate::conv1d`] runs Burn's
/// conv on every backend: what `widen bench --conv burn` measures side by side.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether [`crate::conv1d`] runs widen's kernel for tensors on `device`: the kernel is
/// enabled, compiled for that backend, and (for training) its backward is compiled too.
#[allow(unreachable_patterns, clippy::match_like_matches_macro)]
pub fn accelerated(device: &Device) -> bool {
    use burn::backend::DispatchDevice as D;
    fn plain(d: &D) -> bool {
        match d {
            #[cfg(feature = "flex")]
            D::Flex(_) => true,
            #[cfg(feature = "ndarray")]
            D::NdArray(_) => true,
            _ => false,
        }
    }
    if !ENABLED.load(Ordering::Relaxed) {
        return false;
    }
    match device.as_dispatch() {
        #[cfg(all(feature = "autodiff", any(feature = "flex", feature = "ndarray")))]
        D::Autodiff(inner) => plain(inner),
        d => plain(d),
    }
}

/// conv1d of `x [B, C, L]` and `weight [F, C/groups, K]` (geometry already checked) in the
/// kernel, or `None` when it does not serve the device or a dtype; the caller runs Burn's.
pub(crate) fn conv1d(
    x: &Tensor<3>,
    weight: &Tensor<3>,
    bias: Option<&Tensor<1>>,
    geometry: Geometry,
) -> Option<Tensor<3>> {
    let f32s = [x.dtype(), weight.dtype()]
        .into_iter()
        .chain(bias.map(Tensor::dtype))
        .all(|d| d == burn::tensor::DType::F32);
    if !f32s || !accelerated(&x.device()) {
        return None;
    }
    conv1d_dispatch(x, weight, bias, geometry)
}

#[cfg(any(feature = "flex", feature = "ndarray"))]
fn conv1d_dispatch(
    x: &Tensor<3>,
    weight: &Tensor<3>,
    bias: Option<&Tensor<1>>,
    geometry: Geometry,
) -> Option<Tensor<3>> {
    use backend::WidenCpu;
    use burn::backend::Dispatch;
    let bias = bias
        .cloned()
        .unwrap_or_else(|| Tensor::zeros([geometry.filters], &x.device()));
    Some(Tensor::from_dispatch(Dispatch::widen_conv1d(
        x.clone().into_dispatch(),
        weight.clone().into_dispatch(),
        bias.into_dispatch(),
        geometry,
    )))
}

#[cfg(not(any(feature = "flex", feature = "ndarray")))]
fn conv1d_dispatch(
    _: &Tensor<3>,
    _: &Tensor<3>,
    _: Option<&Tensor<1>>,
    _: Geometry,
) -> Option<Tensor<3>> {
    None
}

/// Where a training-mode batch norm's moving statistics go: `new = old·keep + batch·take`,
/// the batch variance multiplied by `variance_correction` first (`n/(n−1)` for an unbiased
/// moving variance, else 1).
#[derive(Debug, Clone, Copy)]
pub struct MovingUpdate<'a> {
    /// Moving mean before this batch.
    pub mean: &'a Tensor<1>,
    /// Moving variance before this batch.
    pub variance: &'a Tensor<1>,
    /// Weight of the old value.
    pub keep: f64,
    /// Weight of the batch value.
    pub take: f64,
    /// Factor on the batch variance.
    pub variance_correction: f64,
}

/// Training-mode batch normalisation of channels-first `x [B, C, L]` over batch and length:
/// `(y, mean, var)` with `y = x·scale + shift`, `scale = γ/√(var+ε)`, `shift = β − mean·scale`
/// (TensorFlow's order). `mean`/`var` are the batch's (biased) statistics, or with `moving`
/// the updated moving statistics. `None` when the kernel does not serve `x`'s device or dtype,
/// or the shapes disagree; the caller then composes Burn's ops.
pub fn batch_norm_train(
    x: &Tensor<3>,
    gamma: Option<&Tensor<1>>,
    beta: Option<&Tensor<1>>,
    epsilon: f64,
    moving: Option<MovingUpdate<'_>>,
) -> Option<(Tensor<3>, Tensor<1>, Tensor<1>)> {
    let [b, c, l] = x.dims();
    let fits = |t: Option<&Tensor<1>>| {
        t.is_none_or(|t| t.dims() == [c] && t.dtype() == burn::tensor::DType::F32)
    };
    if b == 0
        || c == 0
        || l == 0
        || x.dtype() != burn::tensor::DType::F32
        || !fits(gamma)
        || !fits(beta)
        || !fits(moving.map(|m| m.mean))
        || !fits(moving.map(|m| m.variance))
        || !accelerated(&x.device())
    {
        return None;
    }
    batch_norm_dispatch(x, gamma, beta, epsilon, moving)
}

#[cfg(any(feature = "flex", feature = "ndarray"))]
fn batch_norm_dispatch(
    x: &Tensor<3>,
    gamma: Option<&Tensor<1>>,
    beta: Option<&Tensor<1>>,
    epsilon: f64,
    moving: Option<MovingUpdate<'_>>,
) -> Option<(Tensor<3>, Tensor<1>, Tensor<1>)> {
    use backend::WidenCpu;
    use burn::backend::Dispatch;
    let c = x.dims()[1];
    let device = x.device();
    let gamma = gamma.cloned().unwrap_or_else(|| Tensor::ones([c], &device));
    let beta = beta.cloned().unwrap_or_else(|| Tensor::zeros([c], &device));
    // Without a moving update: `0·0 + batch·1` returns the batch statistics exactly.
    let (old_mean, old_var, momentum) = match moving {
        Some(m) => (
            m.mean.clone().to_device(&device),
            m.variance.clone().to_device(&device),
            [m.keep, m.take, m.variance_correction],
        ),
        None => (
            Tensor::zeros([c], &device),
            Tensor::zeros([c], &device),
            [0.0, 1.0, 1.0],
        ),
    };
    let (y, mean, var) = Dispatch::widen_batch_norm_train(
        x.clone().into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        old_mean.into_dispatch(),
        old_var.into_dispatch(),
        epsilon,
        momentum,
    );
    Some((
        Tensor::from_dispatch(y),
        Tensor::from_dispatch(mean),
        Tensor::from_dispatch(var),
    ))
}

#[cfg(not(any(feature = "flex", feature = "ndarray")))]
fn batch_norm_dispatch(
    _: &Tensor<3>,
    _: Option<&Tensor<1>>,
    _: Option<&Tensor<1>>,
    _: f64,
    _: Option<MovingUpdate<'_>>,
) -> Option<(Tensor<3>, Tensor<1>, Tensor<1>)> {
    None
}

/// Global max over length of `x [B, C, L]` → `[B, C]`, with a backward that writes each
/// gradient at its argmax. `None` when the kernel does not serve `x`'s device or dtype.
pub fn global_max_pool(x: &Tensor<3>) -> Option<Tensor<2>> {
    let [b, c, l] = x.dims();
    if b == 0 || c == 0 || l == 0 || x.dtype() != burn::tensor::DType::F32 {
        return None;
    }
    if !accelerated(&x.device()) {
        return None;
    }
    global_max_dispatch(x)
}

#[cfg(any(feature = "flex", feature = "ndarray"))]
fn global_max_dispatch(x: &Tensor<3>) -> Option<Tensor<2>> {
    use backend::WidenCpu;
    use burn::backend::Dispatch;
    Some(Tensor::from_dispatch(Dispatch::widen_global_max_pool(
        x.clone().into_dispatch(),
    )))
}

#[cfg(not(any(feature = "flex", feature = "ndarray")))]
fn global_max_dispatch(_: &Tensor<3>) -> Option<Tensor<2>> {
    None
}

/// Inference of conv → `activation` → `·scale + shift` (a BatchNorm in inference; ones and
/// zeros for none) → global `pool` over length, fused: `[B, F]` from `x [B, C, L]` without the
/// `[B, F, L_out]` activation. `None` when the kernel does not serve the device (autodiff
/// devices included: the fused output has no gradient) or a dtype; the caller runs the layers.
#[allow(clippy::too_many_arguments)]
pub fn conv1d_global_pool(
    x: &Tensor<3>,
    weight: &Tensor<3>,
    bias: Option<&Tensor<1>>,
    spec: &crate::Conv1dSpec,
    activation: Monotone,
    scale: &Tensor<1>,
    shift: &Tensor<1>,
    pool: GlobalPool,
) -> Option<Tensor<2>> {
    let device = x.device();
    if device.is_autodiff() || !accelerated(&device) {
        return None;
    }
    let geometry = crate::conv::geometry(x, weight, bias, spec).ok()?;
    let f = geometry.filters;
    let f32s = [x.dtype(), weight.dtype(), scale.dtype(), shift.dtype()]
        .into_iter()
        .chain(bias.map(Tensor::dtype))
        .all(|d| d == burn::tensor::DType::F32);
    if !f32s || scale.dims() != [f] || shift.dims() != [f] {
        return None;
    }
    conv_pool_dispatch(x, weight, bias, geometry, activation, scale, shift, pool)
}

#[cfg(any(feature = "flex", feature = "ndarray"))]
#[allow(clippy::too_many_arguments)]
fn conv_pool_dispatch(
    x: &Tensor<3>,
    weight: &Tensor<3>,
    bias: Option<&Tensor<1>>,
    geometry: Geometry,
    activation: Monotone,
    scale: &Tensor<1>,
    shift: &Tensor<1>,
    pool: GlobalPool,
) -> Option<Tensor<2>> {
    use backend::WidenCpu;
    use burn::backend::Dispatch;
    let bias = bias
        .cloned()
        .unwrap_or_else(|| Tensor::zeros([geometry.filters], &x.device()));
    Some(Tensor::from_dispatch(Dispatch::widen_conv1d_global_pool(
        x.clone().into_dispatch(),
        weight.clone().into_dispatch(),
        bias.into_dispatch(),
        scale.clone().into_dispatch(),
        shift.clone().into_dispatch(),
        geometry,
        activation,
        pool,
    )))
}

#[cfg(not(any(feature = "flex", feature = "ndarray")))]
#[allow(clippy::too_many_arguments)]
fn conv_pool_dispatch(
    _: &Tensor<3>,
    _: &Tensor<3>,
    _: Option<&Tensor<1>>,
    _: Geometry,
    _: Monotone,
    _: &Tensor<1>,
    _: &Tensor<1>,
    _: GlobalPool,
) -> Option<Tensor<2>> {
    None
}
