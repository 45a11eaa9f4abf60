//! The list of layer types. Each line registers one type: its spec variant, its configuration,
//! its module and the `"type"` tag `model.json` stores. Everything else about a layer lives in
//! its own file, behind [`LayerKind`]; this macro only writes the two enums and the dispatch.

use burn::module::Module;
use burn::tensor::TensorData;
use serde::{Deserialize, Serialize};

use crate::layer::{
    Arity, BuildContext, ChannelRole, InputKernel, LayerKind, ParamInfo, ShapeContext,
};
use crate::{FeatureShape, LayerError, Mode, Value};

macro_rules! layer_registry {
    (
        with_config {
            $( $(#[$attr:meta])* $variant:ident($config:ty) => $module:ty, $tag:literal; )*
        }
        unit {
            $( $(#[$uattr:meta])* $uvariant:ident => $umodule:ty, $utag:literal; )*
        }
    ) => {
        /// One layer's configuration, as stored in a checkpoint's architecture spec (the
        /// `"type"` field names the variant).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum LayerConfig {
            $( $(#[$attr])* #[serde(rename = $tag)] $variant($config), )*
            $( $(#[$uattr])* #[serde(rename = $utag)] $uvariant, )*
        }

        /// A built layer: one variant per registered type.
        #[derive(Module, Debug)]
        #[allow(clippy::large_enum_variant)]
        pub enum Layer {
            $( #[doc = concat!("A built `", $tag, "` layer.")] $variant($module), )*
            $( #[doc = concat!("A built `", $utag, "` layer.")] $uvariant($umodule), )*
        }

        impl LayerConfig {
            /// Keras' class name, for summaries.
            pub fn keras_class(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => <$module as LayerKind>::KERAS_CLASS, )*
                    $( Self::$uvariant => <$umodule as LayerKind>::KERAS_CLASS, )*
                }
            }
            /// Keras' default name stem (`conv1d`, `batch_normalization`, ...).
            pub fn default_stem(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => <$module as LayerKind>::STEM, )*
                    $( Self::$uvariant => <$umodule as LayerKind>::STEM, )*
                }
            }
            /// The `"type"` tag stored in `model.json`.
            pub fn type_tag(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $tag, )*
                    $( Self::$uvariant => $utag, )*
                }
            }
            /// How many inputs the layer takes.
            pub fn arity(&self) -> Arity {
                match self {
                    $( Self::$variant(c) => <$module as LayerKind>::arity(c), )*
                    $( Self::$uvariant => <$umodule as LayerKind>::arity(&()), )*
                }
            }
            /// How the layer treats its input's channels.
            pub fn channel_role(&self) -> ChannelRole {
                match self {
                    $( Self::$variant(c) => <$module as LayerKind>::channel_role(c), )*
                    $( Self::$uvariant => <$umodule as LayerKind>::channel_role(&()), )*
                }
            }
            /// The kernel that reads the input's channels, if the layer has one.
            pub fn input_kernel(&self, cx: &ShapeContext) -> Option<InputKernel> {
                match self {
                    $( Self::$variant(c) => <$module as LayerKind>::input_kernel(c, cx), )*
                    $( Self::$uvariant => <$umodule as LayerKind>::input_kernel(&(), cx), )*
                }
            }
            /// The output shape for these inputs, or why the layer cannot take them.
            pub fn output_shape(&self, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
                if !self.arity().allows(cx.inputs.len()) {
                    return Err(LayerError::config(
                        cx.name,
                        format!(
                            "{} takes {}, got {}",
                            self.keras_class(),
                            self.arity().describe(),
                            cx.inputs.len()
                        ),
                    ));
                }
                match self {
                    $( Self::$variant(c) => <$module as LayerKind>::output_shape(c, cx), )*
                    $( Self::$uvariant => <$umodule as LayerKind>::output_shape(&(), cx), )*
                }
            }
            /// The stored tensors, for inputs `output_shape` accepted.
            pub fn params(&self, cx: &ShapeContext) -> Vec<ParamInfo> {
                match self {
                    $( Self::$variant(c) => <$module as LayerKind>::params(c, cx), )*
                    $( Self::$uvariant => <$umodule as LayerKind>::params(&(), cx), )*
                }
            }
            /// Builds the layer.
            pub(crate) fn build(&self, cx: &BuildContext) -> Result<Layer, LayerError> {
                Ok(match self {
                    $( Self::$variant(c) => Layer::$variant(<$module as LayerKind>::build(c, cx)?), )*
                    $( Self::$uvariant => Layer::$uvariant(<$umodule as LayerKind>::build(&(), cx)?), )*
                })
            }
        }

        impl Layer {
            /// The layer's name.
            pub fn name(&self) -> &str {
                match self {
                    $( Self::$variant(l) => LayerKind::name(l), )*
                    $( Self::$uvariant(l) => LayerKind::name(l), )*
                }
            }
            /// Keras' class name.
            pub fn keras_class(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => <$module as LayerKind>::KERAS_CLASS, )*
                    $( Self::$uvariant(_) => <$umodule as LayerKind>::KERAS_CLASS, )*
                }
            }
            /// Runs the layer on its inputs (sequences channels-first).
            pub fn forward_all(&self, inputs: Vec<Value>, mode: Mode) -> Result<Value, LayerError> {
                match self {
                    $( Self::$variant(l) => LayerKind::forward(l, inputs, mode), )*
                    $( Self::$uvariant(l) => LayerKind::forward(l, inputs, mode), )*
                }
            }
            /// Reads one stored tensor.
            pub fn weight(&self, param: &str) -> Result<TensorData, LayerError> {
                match self {
                    $( Self::$variant(l) => LayerKind::weight(l, param), )*
                    $( Self::$uvariant(l) => LayerKind::weight(l, param), )*
                }
            }
            /// Replaces one stored tensor; the shape must match and every value be finite.
            pub fn set_weight(&mut self, param: &str, data: TensorData) -> Result<(), LayerError> {
                match self {
                    $( Self::$variant(l) => LayerKind::set_weight(l, param, data), )*
                    $( Self::$uvariant(l) => LayerKind::set_weight(l, param, data), )*
                }
            }
        }
    };
}

layer_registry! {
    with_config {
        /// Keras `Conv1D`.
        Conv1d(crate::Conv1dConfig) => crate::Conv1d, "conv1d";
        /// Keras `BatchNormalization`.
        BatchNorm1d(crate::BatchNormConfig) => crate::BatchNorm1d, "batch_norm1d";
        /// Keras `MaxPooling1D`.
        MaxPool1d(crate::PoolConfig) => crate::MaxPool1d, "max_pool1d";
        /// Keras `AveragePooling1D`.
        AvgPool1d(crate::PoolConfig) => crate::AvgPool1d, "avg_pool1d";
        /// Keras `Dense`.
        Dense(crate::DenseConfig) => crate::Dense, "dense";
        /// Keras `Dropout`.
        Dropout(crate::DropoutConfig) => crate::Dropout, "dropout";
        /// Keras `Activation`. Stored as `"activation": {"name": ...}`: flattened into the layer
        /// spec, the function's own `name` tag would overwrite the layer's name.
        #[serde(with = "crate::activation::nested")]
        Activation(crate::Activation) => crate::ActivationLayer, "activation";
        /// Keras `Normalization` (per-channel standardisation, not trained).
        Normalization(crate::NormalizationConfig) => crate::Normalization, "normalization";
        // -- merges and shape layers (merge.rs, padding.rs, reshape.rs) --
        /// Keras `Add`.
        Add(crate::MergeConfig) => crate::Add, "add";
        /// Keras `Subtract` (two inputs: first − second).
        Subtract(crate::MergeConfig) => crate::Subtract, "subtract";
        /// Keras `Multiply`.
        Multiply(crate::MergeConfig) => crate::Multiply, "multiply";
        /// Keras `Average`.
        Average(crate::MergeConfig) => crate::Average, "average";
        /// Keras `Maximum`.
        Maximum(crate::MergeConfig) => crate::Maximum, "maximum";
        /// Keras `Minimum`.
        Minimum(crate::MergeConfig) => crate::Minimum, "minimum";
        /// Keras `Concatenate`.
        Concatenate(crate::ConcatenateConfig) => crate::Concatenate, "concatenate";
        /// Keras `ZeroPadding1D`.
        ZeroPadding1d(crate::ZeroPaddingConfig) => crate::ZeroPadding1d, "zero_padding1d";
        /// Keras `Cropping1D`.
        Cropping1d(crate::CroppingConfig) => crate::Cropping1d, "cropping1d";
        /// Keras `UpSampling1D`.
        UpSampling1d(crate::UpSamplingConfig) => crate::UpSampling1d, "up_sampling1d";
        /// Keras `SpatialDropout1D`.
        SpatialDropout1d(crate::SpatialDropoutConfig) => crate::SpatialDropout1d, "spatial_dropout1d";
        /// Keras `Reshape`.
        Reshape(crate::ReshapeConfig) => crate::Reshape, "reshape";
        /// Keras `Permute`.
        Permute(crate::PermuteConfig) => crate::Permute, "permute";
        // -- recurrent and activation/normalisation layers (recurrent.rs, activations.rs, layer_norm.rs) --
        /// Keras `LSTM`.
        Lstm(crate::LstmConfig) => crate::Lstm, "lstm";
        /// Keras `GRU`.
        Gru(crate::GruConfig) => crate::Gru, "gru";
        /// Keras `ReLU` (the layer with max_value, negative_slope and threshold).
        Relu(crate::ReluConfig) => crate::ReluLayer, "relu";
        /// Keras `PReLU`.
        PRelu(crate::PReluConfig) => crate::PRelu, "prelu";
        /// Keras `LayerNormalization`.
        LayerNorm(crate::LayerNormConfig) => crate::LayerNorm, "layer_normalization";
    }
    unit {
        /// Keras `GlobalMaxPooling1D`.
        GlobalMaxPool1d => crate::GlobalMaxPool1d, "global_max_pool1d";
        /// Keras `GlobalAveragePooling1D`.
        GlobalAvgPool1d => crate::GlobalAvgPool1d, "global_avg_pool1d";
        /// Keras `Flatten`.
        Flatten => crate::Flatten, "flatten";
    }
}

impl Layer {
    /// Runs a single-input layer on `x`.
    pub fn forward(&self, x: Value, mode: Mode) -> Result<Value, LayerError> {
        self.forward_all(vec![x], mode)
    }
}
