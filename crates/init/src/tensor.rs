//! Uploading host-drawn values to a Burn device.
//!
//! The only place this crate touches Burn tensors: values come from
//! [`Initializer::sample`] and go up with [`Tensor::from_data`], so the device never draws
//! random numbers itself and every backend receives the same bits.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::InitError;
use crate::fans::{Fans, KernelLayout};
use crate::initializer::Initializer;

impl Initializer {
    /// A tensor of `shape` on `device`, filled as [`sample`](Self::sample) fills it.
    ///
    /// # Errors
    ///
    /// As [`sample`](Self::sample); a rank-0 shape gives [`InitError::EmptyShape`].
    pub fn tensor<const D: usize>(
        &self,
        shape: [usize; D],
        layout: KernelLayout,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor<D>, InitError> {
        let values = self.sample(&shape, layout, seed)?;
        Ok(upload(values, shape, device))
    }

    /// A tensor filled as [`sample_with_fans`](Self::sample_with_fans) fills it.
    ///
    /// # Errors
    ///
    /// As [`sample_with_fans`](Self::sample_with_fans).
    pub fn tensor_with_fans<const D: usize>(
        &self,
        shape: [usize; D],
        layout: KernelLayout,
        fans: Fans,
        seed: u64,
        device: &Device,
    ) -> Result<Tensor<D>, InitError> {
        let values = self.sample_with_fans(&shape, layout, fans, seed)?;
        Ok(upload(values, shape, device))
    }

    /// A trainable parameter wrapping [`tensor`](Self::tensor).
    ///
    /// # Errors
    ///
    /// As [`sample`](Self::sample).
    pub fn param<const D: usize>(
        &self,
        shape: [usize; D],
        layout: KernelLayout,
        seed: u64,
        device: &Device,
    ) -> Result<Param<Tensor<D>>, InitError> {
        self.tensor(shape, layout, seed, device)
            .map(Param::from_tensor)
    }

    /// A trainable parameter wrapping [`tensor_with_fans`](Self::tensor_with_fans).
    ///
    /// # Errors
    ///
    /// As [`sample_with_fans`](Self::sample_with_fans).
    pub fn param_with_fans<const D: usize>(
        &self,
        shape: [usize; D],
        layout: KernelLayout,
        fans: Fans,
        seed: u64,
        device: &Device,
    ) -> Result<Param<Tensor<D>>, InitError> {
        self.tensor_with_fans(shape, layout, fans, seed, device)
            .map(Param::from_tensor)
    }
}

/// `values` has exactly `shape`'s element count and `D >= 1`, as `sample` guarantees, so the
/// shape checks inside `from_data` cannot fire.
fn upload<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}
