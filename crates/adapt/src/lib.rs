//! Expansion adapters: make a trained Conv1D model accept more input channels, and measure why
//! plain widening trains erratically.
//!
//! **Owns:** channel placement ([`Placement`]), the strategies ([`Strategy`]: zero slices,
//! repeat-and-rescale, fan-scaled random slices, a 1×1 projection in front), zero-padded input
//! ([`ZeroPadInput`]), per-channel standardisation ([`standardize`]), training only what was
//! added ([`freeze_base`], [`GradientMask`]), diagnostics ([`Report`]) and checkpoint expansion.
//!
//! **Must not know:** the study, the CLI, or which backend runs. It works on
//! `widen_layers::Sequential` through its public API (specs and named weights), so a widened
//! model is an ordinary model: it saves, loads and trains like any other.
//!
//! ```
//! use burn::tensor::Device;
//! use widen_adapt::{ExpandRequest, Strategy, expand};
//! use widen_layers::{Sequential, keras_ex1};
//!
//! let device = Device::flex();
//! let base = Sequential::new(keras_ex1(8, 50), 0, &device)?;
//! let wide = expand(&base, &ExpandRequest::new(32, Strategy::Zero))?;
//! assert_eq!(wide.model.input().channels, 32);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checkpoint;
mod consumers;
mod diagnostics;
mod error;
mod expand;
mod freeze;
mod host;
mod placement;
mod recommend;
mod standardize;
mod zero_pad;

pub use checkpoint::{CheckpointExpansion, expand_checkpoint, expand_checkpoint_with};
pub use consumers::{InputRegion, KernelView, input_region};
pub use diagnostics::{
    ActivationStats, BatchNormShift, ChannelContribution, Drift, GradientNorm, Report,
    activation_stats, batchnorm_shift, channel_contributions, drift, gradient_norms,
};
pub use error::AdaptError;
pub use expand::{
    ADAPTER_LAYER, ExpandRequest, Expansion, PROJECTION_LAYER, ProjectionInit, Strategy,
    compensate_dropped, expand,
};
pub use freeze::{GradientMask, freeze_base, unfreeze_all};
pub use placement::{ChannelMap, Placement};
pub use recommend::{ChannelScale, Recommendation, SCALE_TOLERANCE, channel_scales, recommend};
pub use standardize::{STANDARDIZE_LAYER, channel_stats, standardize};
pub use zero_pad::ZeroPadInput;
