//! Registers the kernels with Burn: `#[backend_extension]` ops (conv1d, training BatchNorm,
//! global max, the fused inference head) for flex and ndarray, and their backward passes for the
//! autodiff twins. Any call a kernel refuses (a tensor it cannot read on the host) runs the same
//! maths in Burn's own ops instead.

// Burn deprecates ndarray for flex; widen keeps serving users who still pick it.
#![allow(deprecated)]

use std::borrow::Cow;
use std::future::Future;
use std::task::{Context, Poll, Waker};

#[cfg(feature = "flex")]
use burn::backend::Flex;
#[cfg(feature = "ndarray")]
use burn::backend::NdArray;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, TensorMetadata, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, TensorData};

use super::kernel::{self, Geometry, GlobalPool, Input, Monotone};
use super::norm;
use super::pool;

#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Autodiff: cfg(feature = "autodiff")
)]
pub trait WidenCpu: Backend {
    /// Channels-first conv1d with `bias [F]` (zeros when the layer has none).
    fn widen_conv1d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;

    /// Training-mode batch norm of `[B, C, L]` over batch and length with `gamma`/`beta`
    /// `[C]`, and the moving statistics' update: `(y, new moving mean, new moving variance)`
    /// with `new = old·keep + batch·take` (the batch variance times `momentum[2]` first);
    /// only `y` carries gradients. `momentum = [keep, take, variance correction]`.
    #[allow(clippy::too_many_arguments)]
    fn widen_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        moving_mean: FloatTensor<Self>,
        moving_var: FloatTensor<Self>,
        epsilon: f64,
        momentum: [f64; 3],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Global max over length: `[B, C, L]` → `[B, C]`.
    fn widen_global_max_pool(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Inference-only conv → activation → `·scale + shift` → global pool: `[B, F]`.
    #[allow(clippy::too_many_arguments)]
    fn widen_conv1d_global_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        geometry: Geometry,
        activation: Monotone,
        pool: GlobalPool,
    ) -> FloatTensor<Self>;
}

/// Global max on the host: the pooled tensor and the argmax.
fn global_max_host<B: Host>(x: &FloatTensor<B>) -> Option<(FloatTensor<B>, Vec<u32>, [usize; 3])> {
    let xh = B::read(x)?;
    let shape = <[usize; 3]>::try_from(xh.shape.as_slice()).ok()?;
    let (values, argmax) = pool::global_max(&xh.input()?, shape).ok()?;
    Some((B::write(values, vec![shape[0], shape[1]], x), argmax, shape))
}

fn global_max<B: Host>(x: FloatTensor<B>) -> FloatTensor<B> {
    let out = global_max_host::<B>(&x);
    super::count(out.is_some());
    match out {
        Some((y, _, _)) => y,
        None => {
            let [b, c, _] = <[usize; 3]>::try_from(x.shape().as_slice()).unwrap_or([0, 0, 0]);
            B::float_reshape(B::float_max_dim(x, 2), [b, c].into())
        }
    }
}

/// The fused pipeline on the host; `None` if the kernel refuses.
#[allow(clippy::too_many_arguments)]
fn conv_pool_host<B: Host>(
    x: &FloatTensor<B>,
    w: &FloatTensor<B>,
    bias: &FloatTensor<B>,
    scale: &FloatTensor<B>,
    shift: &FloatTensor<B>,
    g: &Geometry,
    activation: Monotone,
    pool: GlobalPool,
) -> Option<FloatTensor<B>> {
    let (xh, wh, bh) = (B::read(x)?, B::read(w)?, B::read(bias)?);
    let (sh, hh) = (B::read(scale)?, B::read(shift)?);
    let y = kernel::forward_global_pool(
        &xh.input()?,
        &wh.contiguous(),
        Some(&bh.contiguous()),
        g,
        activation,
        &sh.contiguous(),
        &hh.contiguous(),
        pool,
    )
    .ok()?;
    Some(B::write(y, vec![g.batch, g.filters], x))
}

/// The same pipeline in Burn's ops, for a call the kernel refuses.
#[allow(clippy::too_many_arguments)]
fn conv_pool_burn<B: Backend>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    bias: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
    g: &Geometry,
    activation: Monotone,
    pool: GlobalPool,
) -> FloatTensor<B> {
    let f = g.filters;
    let mut y = B::conv1d(x, w, Some(bias), options(g));
    if activation == Monotone::Relu {
        y = B::relu(y);
    }
    let y = B::float_add(
        B::float_mul(y, B::float_reshape(scale, [1, f, 1].into())),
        B::float_reshape(shift, [1, f, 1].into()),
    );
    let pooled = match pool {
        GlobalPool::Max => B::float_max_dim(y, 2),
        GlobalPool::Avg => B::float_mean_dim(y, 2),
    };
    B::float_reshape(pooled, [g.batch, f].into())
}

#[allow(clippy::too_many_arguments)]
fn conv_pool<B: Host>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    bias: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
    g: Geometry,
    activation: Monotone,
    pool: GlobalPool,
) -> FloatTensor<B> {
    let y = conv_pool_host::<B>(&x, &w, &bias, &scale, &shift, &g, activation, pool);
    super::count(y.is_some());
    y.unwrap_or_else(|| conv_pool_burn::<B>(x, w, bias, scale, shift, &g, activation, pool))
}

type Triple<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// The moving statistics after one batch, in f32 as Burn's `mul_scalar` and `add` compute them
/// (so fused and unfused training agree bit for bit).
fn moving_update(old: &[f32], batch: &[f32], [keep, take, correction]: [f64; 3]) -> Vec<f32> {
    old.iter()
        .zip(batch)
        .map(|(&o, &b)| o * keep as f32 + b * correction as f32 * take as f32)
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn batch_norm_host<B: Host>(
    x: &FloatTensor<B>,
    gamma: &FloatTensor<B>,
    beta: &FloatTensor<B>,
    moving_mean: &FloatTensor<B>,
    moving_var: &FloatTensor<B>,
    eps: f64,
    momentum: [f64; 3],
) -> Option<(Triple<B>, norm::BatchStats)> {
    let (xh, gh, bh) = (B::read(x)?, B::read(gamma)?, B::read(beta)?);
    let (mh, vh) = (B::read(moving_mean)?, B::read(moving_var)?);
    let shape = <[usize; 3]>::try_from(xh.shape.as_slice()).ok()?;
    let (y, stats) = norm::forward_train(
        &xh.input()?,
        shape,
        Some(&gh.contiguous()),
        Some(&bh.contiguous()),
        eps,
    )
    .ok()?;
    let c = shape[1];
    let (old_mean, old_var) = (mh.contiguous(), vh.contiguous());
    if old_mean.len() != c || old_var.len() != c {
        return None;
    }
    // The mean's update takes no variance correction.
    let mean_momentum = [momentum[0], momentum[1], 1.0];
    let out = (
        B::write(y, shape.to_vec(), x),
        B::write(
            moving_update(&old_mean, &stats.mean, mean_momentum),
            vec![c],
            x,
        ),
        B::write(moving_update(&old_var, &stats.var, momentum), vec![c], x),
    );
    Some((out, stats))
}

/// The same maths in Burn's tensor ops, for a call the kernel refuses.
#[allow(clippy::too_many_arguments)]
fn batch_norm_burn<B: Backend>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    moving_mean: FloatTensor<B>,
    moving_var: FloatTensor<B>,
    eps: f64,
    [keep, take, correction]: [f64; 3],
) -> Triple<B> {
    let c = x.shape()[1];
    let stat = |t| B::float_mean_dim(B::float_mean_dim(t, 2), 0);
    let mean = stat(x.clone());
    let centered = B::float_sub(x.clone(), mean.clone());
    let var = stat(B::float_mul(centered.clone(), centered));
    let inv = B::float_recip(B::float_sqrt(B::float_add_scalar(
        var.clone(),
        burn::backend::Scalar::Float(eps),
    )));
    let inv = B::float_mul(inv, B::float_reshape(gamma, [1, c, 1].into()));
    let shift = B::float_sub(
        B::float_reshape(beta, [1, c, 1].into()),
        B::float_mul(mean.clone(), inv.clone()),
    );
    let y = B::float_add(B::float_mul(x, inv), shift);
    let scalar = burn::backend::Scalar::Float;
    let update = |old, batch| {
        B::float_add(
            B::float_mul_scalar(old, scalar(keep)),
            B::float_mul_scalar(B::float_reshape(batch, [c].into()), scalar(take)),
        )
    };
    let var = B::float_mul_scalar(var, scalar(correction));
    (y, update(moving_mean, mean), update(moving_var, var))
}

#[allow(clippy::too_many_arguments)]
fn batch_norm<B: Host>(
    x: FloatTensor<B>,
    gamma: FloatTensor<B>,
    beta: FloatTensor<B>,
    moving_mean: FloatTensor<B>,
    moving_var: FloatTensor<B>,
    eps: f64,
    momentum: [f64; 3],
) -> Triple<B> {
    let out = batch_norm_host::<B>(&x, &gamma, &beta, &moving_mean, &moving_var, eps, momentum);
    super::count(out.is_some());
    match out {
        Some((out, _)) => out,
        None => batch_norm_burn::<B>(x, gamma, beta, moving_mean, moving_var, eps, momentum),
    }
}

/// Burn's options for the same geometry (the fallback path).
fn options(g: &Geometry) -> ConvOptions<1> {
    ConvOptions::new_with_padding(
        [g.stride],
        [(g.pad_left, g.pad_right)],
        [g.dilation],
        g.groups,
    )
}

/// An f32 tensor readable on the host, as a strided buffer.
pub(crate) struct HostTensor {
    keep: Keep,
    offset: usize,
    strides: Vec<usize>,
    shape: Vec<usize>,
}

enum Keep {
    Owned(Vec<f32>),
    #[cfg(feature = "ndarray")]
    NdArray(burn::backend::ndarray::NdArrayTensor),
    #[cfg(feature = "flex")]
    Flex(burn::backend::flex::FlexTensor),
}

impl HostTensor {
    fn data(&self) -> &[f32] {
        match &self.keep {
            Keep::Owned(v) => v,
            #[cfg(feature = "ndarray")]
            Keep::NdArray(burn::backend::ndarray::NdArrayTensor::F32(s)) => {
                s.view().to_slice_memory_order().unwrap_or(&[])
            }
            #[cfg(feature = "ndarray")]
            Keep::NdArray(_) => &[],
            #[cfg(feature = "flex")]
            Keep::Flex(t) => t.storage::<f32>(),
        }
    }

    /// The values in row-major order, borrowed when they already are.
    fn contiguous(&self) -> Cow<'_, [f32]> {
        let n: usize = self.shape.iter().product();
        let mut dense = vec![0; self.shape.len()];
        let mut acc = 1;
        for (d, s) in self.shape.iter().zip(dense.iter_mut()).rev() {
            *s = acc;
            acc *= d;
        }
        let data = self.data();
        let same = self
            .shape
            .iter()
            .zip(self.strides.iter().zip(&dense))
            .all(|(&d, (s, ds))| d <= 1 || s == ds);
        if same && self.offset + n <= data.len() {
            return Cow::Borrowed(&data[self.offset..self.offset + n]);
        }
        let mut out = Vec::with_capacity(n);
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..n {
            let at = self.offset
                + index
                    .iter()
                    .zip(&self.strides)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            out.push(data.get(at).copied().unwrap_or(f32::NAN));
            for (i, &d) in index.iter_mut().zip(&self.shape).rev() {
                *i += 1;
                if *i < d {
                    break;
                }
                *i = 0;
            }
        }
        Cow::Owned(out)
    }

    fn input(&self) -> Option<Input<'_>> {
        let [b, c, l] = <[usize; 3]>::try_from(self.strides.as_slice()).ok()?;
        Some(Input {
            data: self.data(),
            offset: self.offset,
            strides: [b, c, l],
        })
    }
}

/// Polls a future once: CPU backends answer reads immediately.
fn ready<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// Host access to a CPU backend's float tensors.
pub(crate) trait Host: Backend {
    /// The tensor's f32 values, `None` for other dtypes.
    fn read(t: &FloatTensor<Self>) -> Option<HostTensor> {
        read_via_data::<Self>(t)
    }

    /// A tensor on `like`'s device.
    fn write(values: Vec<f32>, shape: Vec<usize>, like: &FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_from_data(TensorData::new(values, Shape::from(shape)), &like.device())
    }
}

/// Any backend: a contiguous copy through `into_data`.
fn read_via_data<B: Backend>(t: &FloatTensor<B>) -> Option<HostTensor> {
    let data = ready(B::float_into_data(t.clone()))?.ok()?;
    if data.dtype() != DType::F32 {
        return None;
    }
    let shape = data.shape().to_vec();
    let values = data.try_into_vec::<f32>().ok()?;
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for (d, s) in shape.iter().zip(strides.iter_mut()).rev() {
        *s = acc;
        acc *= d;
    }
    Some(HostTensor {
        keep: Keep::Owned(values),
        offset: 0,
        strides,
        shape,
    })
}

#[cfg(feature = "ndarray")]
impl Host for NdArray {
    /// Zero-copy when the array is contiguous in some axis order (a transposed view included):
    /// ndarray's `into_data` walks a strided view element by element.
    fn read(t: &FloatTensor<Self>) -> Option<HostTensor> {
        use burn::backend::ndarray::NdArrayTensor;
        if let NdArrayTensor::F32(storage) = t {
            let view = storage.view();
            let strides = view
                .strides()
                .iter()
                .map(|&s| usize::try_from(s).ok())
                .collect::<Option<Vec<_>>>();
            if let (Some(strides), Some(_)) = (strides, view.to_slice_memory_order()) {
                return Some(HostTensor {
                    keep: Keep::NdArray(t.clone()),
                    offset: 0,
                    strides,
                    shape: view.shape().to_vec(),
                });
            }
        }
        read_via_data::<Self>(t)
    }
}

#[cfg(feature = "flex")]
impl Host for Flex {
    /// Zero-copy: keeps a handle on the tensor's storage and reads it through its strides.
    fn read(t: &FloatTensor<Self>) -> Option<HostTensor> {
        if t.dtype() != DType::F32 {
            return None;
        }
        let t = if t.layout().strides().iter().all(|&s| s >= 0) {
            t.clone()
        } else {
            t.to_contiguous()
        };
        let layout = t.layout();
        let strides = layout
            .strides()
            .iter()
            .map(|&s| usize::try_from(s).ok())
            .collect::<Option<Vec<_>>>()?;
        let shape = layout.shape().to_vec();
        let offset = layout.start_offset();
        Some(HostTensor {
            keep: Keep::Flex(t),
            offset,
            strides,
            shape,
        })
    }
}

fn forward_host<B: Host>(
    x: &FloatTensor<B>,
    w: &FloatTensor<B>,
    bias: &FloatTensor<B>,
    g: &Geometry,
) -> Option<FloatTensor<B>> {
    let (xh, wh, bh) = (B::read(x)?, B::read(w)?, B::read(bias)?);
    let y = kernel::forward(&xh.input()?, &wh.contiguous(), Some(&bh.contiguous()), g).ok()?;
    Some(B::write(y, vec![g.batch, g.filters, g.out_len()?], x))
}

fn forward<B: Host>(
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    bias: FloatTensor<B>,
    g: Geometry,
) -> FloatTensor<B> {
    let y = forward_host::<B>(&x, &w, &bias, &g);
    super::count(y.is_some());
    y.unwrap_or_else(|| B::conv1d(x, w, Some(bias), options(&g)))
}

/// flex and ndarray serve the extension with the same host code.
macro_rules! host_backend {
    ($backend:ty, $feature:literal) => {
        #[cfg(feature = $feature)]
        impl WidenCpu for $backend {
            fn widen_global_max_pool(x: FloatTensor<Self>) -> FloatTensor<Self> {
                global_max::<Self>(x)
            }

            fn widen_conv1d_global_pool(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                bias: FloatTensor<Self>,
                scale: FloatTensor<Self>,
                shift: FloatTensor<Self>,
                geometry: Geometry,
                activation: Monotone,
                pool: GlobalPool,
            ) -> FloatTensor<Self> {
                conv_pool::<Self>(x, weight, bias, scale, shift, geometry, activation, pool)
            }

            fn widen_conv1d(
                x: FloatTensor<Self>,
                weight: FloatTensor<Self>,
                bias: FloatTensor<Self>,
                geometry: Geometry,
            ) -> FloatTensor<Self> {
                forward::<Self>(x, weight, bias, geometry)
            }

            fn widen_batch_norm_train(
                x: FloatTensor<Self>,
                gamma: FloatTensor<Self>,
                beta: FloatTensor<Self>,
                moving_mean: FloatTensor<Self>,
                moving_var: FloatTensor<Self>,
                epsilon: f64,
                momentum: [f64; 3],
            ) -> Triple<Self> {
                batch_norm::<Self>(x, gamma, beta, moving_mean, moving_var, epsilon, momentum)
            }
        }
    };
}

host_backend!(Flex, "flex");
host_backend!(NdArray, "ndarray");

#[cfg(feature = "autodiff")]
mod autodiff {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::{Autodiff, tensor::FloatTensor};

    use super::pool;
    use burn::backend::ops::FloatTensorOps;
    use burn::backend::{AutodiffBackend, TensorMetadata};

    use super::{
        Host, Triple, WidenCpu, batch_norm_burn, batch_norm_host, global_max_host, kernel, norm,
        options,
    };
    use crate::cpu::kernel::{Geometry, GlobalPool, Monotone};

    /// The backward in Burn's ops, for a `dy` the kernel cannot read:
    /// `dx = scale·(dy − mean(dy) − x̂·mean(dy·x̂))`, `dγ = Σ dy·x̂`, `dβ = Σ dy`.
    fn norm_backward_burn<B: Host>(
        x: FloatTensor<B>,
        dy: FloatTensor<B>,
        stats: &norm::BatchStats,
        eps: f64,
    ) -> Triple<B> {
        let c = stats.mean.len();
        let like = dy.clone();
        let per_channel = |v: Vec<f32>| B::write(v, vec![1, c, 1], &like);
        let rstd: Vec<f32> = stats
            .var
            .iter()
            .map(|&v| (1.0 / (v as f64 + eps).sqrt()) as f32)
            .collect();
        let xhat = B::float_mul(
            B::float_sub(x, per_channel(stats.mean.clone())),
            per_channel(rstd),
        );
        let stat = |t| B::float_mean_dim(B::float_mean_dim(t, 2), 0);
        let dy_xhat = B::float_mul(dy.clone(), xhat.clone());
        let mean_dy = stat(dy.clone());
        let mean_dy_xhat = stat(dy_xhat.clone());
        let total = |t| B::float_reshape(B::float_sum_dim(B::float_sum_dim(t, 2), 0), [c].into());
        let dgamma = total(dy_xhat);
        let dbeta = total(dy.clone());
        let inner = B::float_sub(B::float_sub(dy, mean_dy), B::float_mul(xhat, mean_dy_xhat));
        let dx = B::float_mul(inner, per_channel(stats.scale.clone()));
        (dx, dgamma, dbeta)
    }

    #[derive(Debug)]
    struct MaxBackward;

    impl<B: Host> Backward<B, 1> for MaxBackward {
        /// Each row's argmax and the input shape.
        type State = (Vec<u32>, [usize; 3]);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node] = ops.parents;
            let dy = grads.consume::<B>(&ops.node);
            let Some(node) = node else {
                return;
            };
            let (argmax, shape) = ops.state;
            let dx = B::read(&dy)
                .and_then(|h| pool::global_max_backward(&h.contiguous(), &argmax, shape).ok());
            super::super::count(dx.is_some());
            let dx = match dx {
                Some(dx) => B::write(dx, shape.to_vec(), &dy),
                None => {
                    // Scatter with Burn's ops: a one-hot mask of the argmax times dy.
                    let [b, c, l] = shape;
                    let hot: Vec<f32> = argmax
                        .iter()
                        .flat_map(|&a| (0..l).map(move |t| if t == a as usize { 1.0 } else { 0.0 }))
                        .collect();
                    let mask = B::write(hot, shape.to_vec(), &dy);
                    B::float_mul(mask, B::float_reshape(dy, [b, c, 1].into()))
                }
            };
            grads.register::<B>(node.id, dx);
        }
    }

    #[derive(Debug)]
    struct NormBackward;

    impl<B: Host> Backward<B, 3> for NormBackward {
        /// The input handle, its batch statistics, epsilon.
        type State = (FloatTensor<B>, norm::BatchStats, f64);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_gamma, node_beta] = ops.parents;
            let dy = grads.consume::<B>(&ops.node);
            let (x, stats, eps) = ops.state;
            let c = stats.mean.len();
            let computed = B::read(&x).zip(B::read(&dy)).and_then(|(xh, dyh)| {
                let shape = <[usize; 3]>::try_from(xh.shape.as_slice()).ok()?;
                norm::backward_train(&xh.input()?, shape, &dyh.contiguous(), &stats, eps)
                    .ok()
                    .map(|r| (r, shape))
            });
            super::super::count(computed.is_some());
            let (dx, dgamma, dbeta) = match computed {
                Some(((dx, dgamma, dbeta), shape)) => (
                    B::write(dx, shape.to_vec(), &dy),
                    B::write(dgamma, vec![c], &dy),
                    B::write(dbeta, vec![c], &dy),
                ),
                None => norm_backward_burn::<B>(x, dy, &stats, eps),
            };
            if let Some(node) = node_x {
                grads.register::<B>(node.id, dx);
            }
            if let Some(node) = node_gamma {
                grads.register::<B>(node.id, dgamma);
            }
            if let Some(node) = node_beta {
                grads.register::<B>(node.id, dbeta);
            }
        }
    }

    #[derive(Debug)]
    struct ConvBackward;

    impl<B: Host> Backward<B, 3> for ConvBackward {
        /// The forward's input and weight (handles, not copies).
        type State = (FloatTensor<B>, FloatTensor<B>, Geometry);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
            let [node_x, node_w, node_b] = ops.parents;
            let dy = grads.consume::<B>(&ops.node);
            let (x, w, g) = ops.state;
            let Some(dyh) = B::read(&dy) else {
                // Not readable on the host: Burn's own backward ops.
                super::super::count(false);
                let o = options(&g);
                if let Some(node) = node_x {
                    let dx = B::conv1d_x_backward(x.clone(), w.clone(), dy.clone(), o.clone());
                    grads.register::<B>(node.id, dx);
                }
                if let Some(node) = node_w {
                    let dw = B::conv1d_weight_backward(x.clone(), w.clone(), dy.clone(), o);
                    grads.register::<B>(node.id, dw);
                }
                if let Some(node) = node_b {
                    let db = B::float_sum_dim(B::float_sum_dim(dy, 2), 0);
                    let f = g.filters;
                    grads.register::<B>(node.id, B::float_reshape(db, [f].into()));
                }
                return;
            };
            let dyv = dyh.contiguous();
            let o = options(&g);
            let mut ran = true;
            if let Some(node) = node_x {
                let dx = B::read(&w)
                    .and_then(|wh| kernel::backward_input(&dyv, &wh.contiguous(), &g).ok())
                    .map(|v| B::write(v, vec![g.batch, g.channels, g.length], &dy))
                    .unwrap_or_else(|| {
                        ran = false;
                        B::conv1d_x_backward(x.clone(), w.clone(), dy.clone(), o.clone())
                    });
                grads.register::<B>(node.id, dx);
            }
            let mut db_fused = None;
            if let Some(node) = node_w {
                let shape = vec![g.filters, g.channels / g.groups, g.kernel];
                let dw = B::read(&x)
                    .and_then(|xh| kernel::backward_weight(&xh.input()?, &dyv, &g).ok())
                    .map(|(dw, db)| {
                        db_fused = Some(db);
                        B::write(dw, shape, &dy)
                    })
                    .unwrap_or_else(|| {
                        ran = false;
                        B::conv1d_weight_backward(x.clone(), w.clone(), dy.clone(), o.clone())
                    });
                grads.register::<B>(node.id, dw);
            }
            if let Some(node) = node_b {
                let db = db_fused
                    .ok_or(kernel::Refused)
                    .or_else(|_| kernel::backward_bias(&dyv, &g))
                    .map(|v| B::write(v, vec![g.filters], &dy))
                    .unwrap_or_else(|_| {
                        ran = false;
                        let db = B::float_sum_dim(B::float_sum_dim(dy.clone(), 2), 0);
                        B::float_reshape(db, [g.filters].into())
                    });
                grads.register::<B>(node.id, db);
            }
            super::super::count(ran);
        }
    }

    impl<B: Host + WidenCpu, C: CheckpointStrategy> WidenCpu for Autodiff<B, C> {
        fn widen_conv1d(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            geometry: Geometry,
        ) -> FloatTensor<Self> {
            let nodes = [x.node(), weight.node(), bias.node()];
            let (x, w, bias) = (
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            );
            match ConvBackward.prepare::<C>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let y = B::widen_conv1d(x.clone(), w.clone(), bias, geometry);
                    prep.finish((x, w, geometry), y)
                }
                OpsKind::UnTracked(prep) => prep.finish(B::widen_conv1d(x, w, bias, geometry)),
            }
        }

        fn widen_global_max_pool(x: FloatTensor<Self>) -> FloatTensor<Self> {
            let Some((y, argmax, shape)) = global_max_host::<B>(x.primitive()) else {
                super::super::count(false);
                let [b, c, _] = <[usize; 3]>::try_from(x.shape().as_slice()).unwrap_or([0, 0, 0]);
                return Self::float_reshape(Self::float_max_dim(x, 2), [b, c].into());
            };
            super::super::count(true);
            let nodes = [x.node()];
            drop(x);
            match MaxBackward.prepare::<C>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((argmax, shape), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            }
        }

        /// Inference only: the output carries no gradient (callers route autodiff devices to
        /// the unfused layers).
        fn widen_conv1d_global_pool(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            bias: FloatTensor<Self>,
            scale: FloatTensor<Self>,
            shift: FloatTensor<Self>,
            geometry: Geometry,
            activation: Monotone,
            pool: GlobalPool,
        ) -> FloatTensor<Self> {
            <Self as AutodiffBackend>::from_inner(B::widen_conv1d_global_pool(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                scale.into_primitive(),
                shift.into_primitive(),
                geometry,
                activation,
                pool,
            ))
        }

        fn widen_batch_norm_train(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            moving_mean: FloatTensor<Self>,
            moving_var: FloatTensor<Self>,
            epsilon: f64,
            momentum: [f64; 3],
        ) -> Triple<Self> {
            let host = batch_norm_host::<B>(
                x.primitive(),
                gamma.primitive(),
                beta.primitive(),
                moving_mean.primitive(),
                moving_var.primitive(),
                epsilon,
                momentum,
            );
            super::super::count(host.is_some());
            let Some(((y, mean, var), stats)) = host else {
                // Burn's composed ops, differentiated by Burn's autodiff.
                return batch_norm_burn::<Self>(
                    x,
                    gamma,
                    beta,
                    moving_mean,
                    moving_var,
                    epsilon,
                    momentum,
                );
            };
            let detached = |t| <Self as AutodiffBackend>::from_inner(t);
            let nodes = [x.node(), gamma.node(), beta.node()];
            let x = x.into_primitive();
            let y = match NormBackward.prepare::<C>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, stats, epsilon), y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            (y, detached(mean), detached(var))
        }
    }
}
