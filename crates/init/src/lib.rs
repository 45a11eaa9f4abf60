//! Weight initializers for [Burn](https://burn.dev) that give the same numbers on every backend.
//!
//! `widen-init` owns three things: the initializers themselves (Keras' variance-scaling family
//! and presets, PyTorch's default conv init, orthogonal, identity/Dirac, constants and plain
//! distributions), the computation of fans for Keras (`[k, in, out]`) and PyTorch
//! (`[out, in/groups, k]`) kernel layouts, and seeded drawing of the values on the host. It knows
//! nothing of layers, models or adapters: it depends only on `burn`, `thiserror` and
//! `rand_chacha`, and is meant to be useful on its own to any Burn user.
//!
//! Values are drawn on the host in `f64` from a ChaCha8 stream, rounded to `f32` and uploaded
//! with [`Tensor::from_data`](burn::tensor::Tensor::from_data), so one seed gives bit-identical
//! weights on every backend. Bad input (a zero dimension, a NaN scale, a missing fan) is an
//! [`InitError`]; nothing here panics on caller input, unlike `burn::nn::Initializer`, which
//! panics for a Conv1d bias under Xavier because the bias has no `fan_out`.
//!
//! ```
//! use burn::tensor::Device;
//! use widen_init::{Fans, Initializer, KernelLayout, derive_seed};
//!
//! # fn main() -> Result<(), widen_init::InitError> {
//! let device = Device::flex();
//! let seed = 42;
//! // A Conv1d weight in Burn's (PyTorch's) layout: [out, in, kernel].
//! let shape = [32, 16, 3];
//! let weight = Initializer::glorot_uniform().param(
//!     shape,
//!     KernelLayout::Torch,
//!     derive_seed(seed, "conv.weight"),
//!     &device,
//! )?;
//! assert_eq!(weight.val().dims(), shape);
//!
//! // Its bias, drawn with the weight's fans as PyTorch does.
//! let fans = Fans::from_shape(&shape, KernelLayout::Torch)?;
//! let bias = Initializer::TorchConvDefault.tensor_with_fans(
//!     [32],
//!     KernelLayout::Torch,
//!     fans,
//!     derive_seed(seed, "conv.bias"),
//!     &device,
//! )?;
//! assert_eq!(bias.dims(), [32]);
//! # Ok(())
//! # }
//! ```

mod dirac;
pub mod error;
pub mod fans;
pub mod initializer;
mod orthogonal;
pub mod rng;
pub mod seed;
mod tensor;

pub use error::InitError;
pub use fans::{FanMode, Fans, KernelLayout};
pub use initializer::{Distribution, Initializer, VarianceScaling};
pub use rng::HostRng;
pub use seed::{derive_seed, derive_seed_indexed};
