//! Registers the kernel with Burn: a `#[backend_extension]` op for flex and ndarray, and its
//! backward pass for their autodiff twins. Any call the kernel refuses (a dtype other than f32,
//! a tensor it cannot read on the host) runs Burn's own conv ops instead.

// Burn deprecates ndarray for flex; widen keeps serving users who still pick it.
#![allow(deprecated)]

use std::borrow::Cow;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use burn::backend::tensor::FloatTensor;
#[cfg(feature = "flex")]
use burn::backend::Flex;
#[cfg(feature = "ndarray")]
use burn::backend::NdArray;
use burn::backend::{Backend, TensorMetadata, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Shape, TensorData};

use super::kernel::{self, Geometry, Input};

#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Autodiff: cfg(feature = "autodiff")
)]
pub trait WidenConv: Backend {
    /// Channels-first conv1d with `bias [F]` (zeros when the layer has none).
    fn widen_conv1d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self>;
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
    #[cfg(feature = "flex")]
    Flex(burn::backend::flex::FlexTensor),
}

impl HostTensor {
    fn data(&self) -> &[f32] {
        match &self.keep {
            Keep::Owned(v) => v,
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
        let data = ready(Self::float_into_data(t.clone()))?.ok()?;
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

    /// A tensor on `like`'s device.
    fn write(values: Vec<f32>, shape: Vec<usize>, like: &FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_from_data(TensorData::new(values, Shape::from(shape)), &like.device())
    }
}

#[cfg(feature = "ndarray")]
impl Host for NdArray {}

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

#[cfg(feature = "flex")]
impl WidenConv for Flex {
    fn widen_conv1d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        forward::<Self>(x, weight, bias, geometry)
    }
}

#[cfg(feature = "ndarray")]
impl WidenConv for NdArray {
    fn widen_conv1d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: Geometry,
    ) -> FloatTensor<Self> {
        forward::<Self>(x, weight, bias, geometry)
    }
}

#[cfg(feature = "autodiff")]
mod autodiff {
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::{Autodiff, tensor::FloatTensor};

    use super::{Host, WidenConv, kernel, options};
    use crate::cpu::kernel::Geometry;

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
            if let Some(node) = node_w {
                let shape = vec![g.filters, g.channels / g.groups, g.kernel];
                let dw = B::read(&x)
                    .and_then(|xh| kernel::backward_weight(&xh.input()?, &dyv, &g).ok())
                    .map(|v| B::write(v, shape, &dy))
                    .unwrap_or_else(|| {
                        ran = false;
                        B::conv1d_weight_backward(x.clone(), w.clone(), dy.clone(), o.clone())
                    });
                grads.register::<B>(node.id, dw);
            }
            if let Some(node) = node_b {
                let db = kernel::backward_bias(&dyv, &g)
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

    impl<B: Host + WidenConv, C: CheckpointStrategy> WidenConv for Autodiff<B, C> {
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
    }
}
