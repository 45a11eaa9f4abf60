//! Layers with Keras semantics as Burn modules, and a shape-checked `Sequential` model.
//!
//! **Owns:** `Conv1d`, `BatchNorm1d` (Keras and PyTorch presets), `MaxPool1d`/`AvgPool1d`,
//! global pools, `Dense`, `Dropout`, `Flatten`, `Activation`, each a Config (serde, Keras names
//! and defaults) beside a Module; `Sequential` with build-time shape inference, `Result`-returning
//! forward passes, freezing, a Keras-style summary; checkpoints (architecture spec + weights).
//!
//! **Must not know:** expansion strategies, diagnostics, the study, or the CLI. It builds on
//! `widen-ops` for the maths and `widen-init` for parameters, and never picks a backend.
//!
//! Inside a model, sequences flow channels-first (`[batch, channels, length]`, Burn's layout);
//! the model converts a channels-last (Keras) input once on entry and back on exit.

mod activation;
mod activations;
mod batch_norm;
pub mod checkpoint;
mod conv1d;
mod dense;
mod error;
mod layer;
mod layer_norm;
mod merge;
mod misc;
mod model;
mod normalization;
mod padding;
mod pooling;
mod recurrent;
mod registry;
mod reshape;
mod shape;
mod weights;
pub mod zoo;

pub use activation::Activation;
pub use activations::{PRelu, PReluConfig, ReluConfig, ReluLayer};
pub use batch_norm::{BatchNorm1d, BatchNormConfig, MomentumOn};
pub use checkpoint::{CHECKPOINT_FORMAT, CHECKPOINT_VERSION, MODEL_FILE, WeightFormat, read_meta};
pub use conv1d::{Conv1d, Conv1dConfig, PaddingMode};
pub use dense::{Dense, DenseConfig};
pub use error::LayerError;
pub use layer::{
    Arity, BuildContext, ChannelRole, InputKernel, LayerKind, ParamInfo, ShapeContext,
};
pub use layer_norm::{LayerNorm, LayerNormConfig};
pub use merge::{
    Add, Average, Concatenate, ConcatenateConfig, Maximum, MergeConfig, Minimum, Multiply, Subtract,
};
pub use misc::{ActivationLayer, Dropout, DropoutConfig, Flatten};
pub use model::{
    DEFAULT_INPUT_NAME, InputSpec, LayerSpec, Model, ModelSpec, Resolved, Sequential, keras_ex1,
    keras_ex3, printable,
};
pub use normalization::{Normalization, NormalizationConfig};
pub use padding::{
    Cropping1d, CroppingConfig, SpatialDropout1d, SpatialDropoutConfig, UpSampling1d,
    UpSamplingConfig, ZeroPadding1d, ZeroPaddingConfig,
};
pub use pooling::{AvgPool1d, GlobalAvgPool1d, GlobalMaxPool1d, MaxPool1d, PoolConfig};
pub use recurrent::{Gru, GruConfig, Lstm, LstmConfig};
pub use registry::{Layer, LayerConfig};
pub use reshape::{Permute, PermuteConfig, Reshape, ReshapeConfig};
pub use shape::{DataFormat, FeatureShape, Mode, Value};
pub use weights::WeightInfo;

/// Draws a layer's kernel of `shape` and, with `bias_init`, its bias (one value per output: the
/// first axis in Torch layout, the last in Keras layout), both from the kernel's fans (a bias with
/// no fan_out of its own is what made Burn's Xavier-on-bias panic).
pub(crate) fn kernel_and_bias<const D: usize>(
    name: &str,
    kernel_init: &widen_init::Initializer,
    bias_init: Option<&widen_init::Initializer>,
    shape: [usize; D],
    layout: widen_init::KernelLayout,
    seed: u64,
    device: &burn::tensor::Device,
) -> Result<KernelAndBias<D>, LayerError> {
    use burn::module::Param;
    let fans = widen_init::Fans::from_shape(&shape, layout).map_err(LayerError::init(name))?;
    let bias_len = match layout {
        widen_init::KernelLayout::Torch => shape[0],
        widen_init::KernelLayout::Keras => shape[D - 1],
    };
    let weight = kernel_init
        .tensor_with_fans(shape, layout, fans, param_seed(seed, 0), device)
        .map_err(LayerError::init(name))?;
    let bias = match bias_init {
        Some(init) => Some(Param::from_tensor(
            init.tensor_with_fans([bias_len], layout, fans, param_seed(seed, 1), device)
                .map_err(LayerError::init(name))?,
        )),
        None => None,
    };
    Ok((Param::from_tensor(weight), bias))
}

/// A kernel parameter and an optional bias parameter.
pub(crate) type KernelAndBias<const D: usize> = (
    burn::module::Param<burn::tensor::Tensor<D>>,
    Option<burn::module::Param<burn::tensor::Tensor<1>>>,
);

pub(crate) fn default_kernel_init() -> widen_init::Initializer {
    widen_init::Initializer::glorot_uniform()
}

pub(crate) fn default_bias_init() -> widen_init::Initializer {
    widen_init::Initializer::Zeros
}

/// Derives an independent seed for parameter `index` from a base seed (splitmix64), so each
/// tensor of a model gets its own stream and the model is reproducible on every backend.
pub fn param_seed(seed: u64, index: u64) -> u64 {
    widen_init::derive_seed_indexed(seed, index)
}
