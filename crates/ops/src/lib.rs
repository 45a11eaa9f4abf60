//! Tensor operations for 1-D convolutional models on Burn tensors.
//!
//! **Owns:** Keras-exact padding arithmetic (`valid`, `same`, `causal`, explicit), a checked
//! `conv1d` in both layouts (channels-first `[batch, channels, length]` as Burn, channels-last
//! `[batch, length, channels]` as Keras), channel surgery (zero-pad to a wider count, concat,
//! select, slice), global pooling over length, layout transposes, finiteness checks, a naive
//! f64 reference convolution (forward and backward) that tests use as their oracle, and widen's
//! CPU kernels ([`cpu`]: conv1d, training BatchNorm, global max, a fused inference head) that
//! `conv1d` and friends route to on flex and ndarray.
//!
//! **Must not know:** layers, models, initializers or training. Every function takes
//! backend-erased `burn::tensor::Tensor`s; the device a tensor lives on picks the backend, and
//! only [`cpu`] (behind the `flex`/`ndarray`/`autodiff` features) knows particular backends.
//! Bad shapes and configs come back as [`OpsError`] before Burn would panic.
//!
//! ```
//! use widen_ops::{conv_output, Padding};
//! // Burn 0.22's `Same` ignores dilation (k3, d2, L10 gives 8); Keras and widen give 10.
//! let geo = conv_output(10, 3, 1, 2, Padding::Same)?;
//! assert_eq!((geo.left, geo.right, geo.length_out), (2, 2, 10));
//! # Ok::<(), widen_ops::OpsError>(())
//! ```

mod channels;
mod conv;
pub mod cpu;
mod error;
mod finite;
mod layout;
mod padding;
mod pool;
pub mod reference;

pub use channels::{
    concat_channels, pad_channels, pad_channels_appended, select_channels, slice_channels,
};
pub use conv::{Conv1dSpec, conv1d, conv1d_channels_last};
pub use error::OpsError;
pub use finite::ensure_finite;
pub use layout::{burn_kernel_to_keras, keras_kernel_to_burn, to_channels_first, to_channels_last};
pub use padding::{ConvGeometry, Padding, conv_output};
pub use pool::{global_avg_pool1d, global_max_pool1d};
