//! `Sequential`: a stack of layers whose shapes are inferred at build time, and whose forward
//! checks its input and returns `Result` instead of panicking.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use widen_ops::conv_output;

use crate::{
    Activation, ActivationLayer, AvgPool1d, BatchNorm1d, BatchNormConfig, Conv1d, Conv1dConfig,
    DataFormat, Dense, DenseConfig, Dropout, DropoutConfig, FeatureShape, Flatten, GlobalAvgPool1d,
    GlobalMaxPool1d, LayerError, MaxPool1d, Mode, Normalization, NormalizationConfig, PoolConfig,
    Value, param_seed,
};

/// What the model accepts: channels (fixed), length (fixed or variable) and layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Input channels.
    pub channels: usize,
    /// Input length; `None` accepts any length long enough for the stack.
    #[serde(default)]
    pub length: Option<usize>,
    /// Layout of the 3-D input (Keras: channels-last).
    #[serde(default)]
    pub data_format: DataFormat,
}

impl InputSpec {
    /// `channels` inputs of any length, channels-last.
    pub fn new(channels: usize) -> Self {
        Self {
            channels,
            length: None,
            data_format: DataFormat::ChannelsLast,
        }
    }
    /// Fixes the length.
    pub fn with_length(mut self, length: usize) -> Self {
        self.length = Some(length);
        self
    }
    /// Sets the layout.
    pub fn with_data_format(mut self, data_format: DataFormat) -> Self {
        self.data_format = data_format;
        self
    }
}

/// One layer's configuration, as stored in a checkpoint's architecture spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerConfig {
    /// Keras `Conv1D`.
    Conv1d(Conv1dConfig),
    /// Keras `BatchNormalization`.
    BatchNorm1d(BatchNormConfig),
    /// Keras `MaxPooling1D`.
    MaxPool1d(PoolConfig),
    /// Keras `AveragePooling1D`.
    AvgPool1d(PoolConfig),
    /// Keras `GlobalMaxPooling1D`.
    GlobalMaxPool1d,
    /// Keras `GlobalAveragePooling1D`.
    GlobalAvgPool1d,
    /// Keras `Dense`.
    Dense(DenseConfig),
    /// Keras `Dropout`.
    Dropout(DropoutConfig),
    /// Keras `Flatten`.
    Flatten,
    /// Keras `Activation`. Stored as `"activation": {"name": ...}`: flattened into the layer
    /// spec, the function's own `name` tag would overwrite the layer's name.
    #[serde(with = "activation_field")]
    Activation(Activation),
    /// Keras `Normalization` (per-channel standardisation, not trained).
    Normalization(NormalizationConfig),
}

impl LayerConfig {
    /// Keras' class name, for summaries.
    pub fn keras_class(&self) -> &'static str {
        match self {
            Self::Conv1d(_) => "Conv1D",
            Self::BatchNorm1d(_) => "BatchNormalization",
            Self::MaxPool1d(_) => "MaxPooling1D",
            Self::AvgPool1d(_) => "AveragePooling1D",
            Self::GlobalMaxPool1d => "GlobalMaxPooling1D",
            Self::GlobalAvgPool1d => "GlobalAveragePooling1D",
            Self::Dense(_) => "Dense",
            Self::Dropout(_) => "Dropout",
            Self::Flatten => "Flatten",
            Self::Activation(_) => "Activation",
            Self::Normalization(_) => "Normalization",
        }
    }

    /// Keras' default name stem (`conv1d`, `batch_normalization`, ...).
    pub fn default_stem(&self) -> &'static str {
        match self {
            Self::Conv1d(_) => "conv1d",
            Self::BatchNorm1d(_) => "batch_normalization",
            Self::MaxPool1d(_) => "max_pooling1d",
            Self::AvgPool1d(_) => "average_pooling1d",
            Self::GlobalMaxPool1d => "global_max_pooling1d",
            Self::GlobalAvgPool1d => "global_average_pooling1d",
            Self::Dense(_) => "dense",
            Self::Dropout(_) => "dropout",
            Self::Flatten => "flatten",
            Self::Activation(_) => "activation",
            Self::Normalization(_) => "normalization",
        }
    }
}

/// (De)serialises `LayerConfig::Activation`'s payload nested under `activation`.
mod activation_field {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::Activation;

    #[derive(Serialize, Deserialize)]
    struct Field<T> {
        activation: T,
    }

    pub fn serialize<S: Serializer>(activation: &Activation, s: S) -> Result<S::Ok, S::Error> {
        Field { activation }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Activation, D::Error> {
        Field::<Activation>::deserialize(d).map(|f| f.activation)
    }
}

/// A named layer configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Unique name within the model.
    pub name: String,
    /// What the layer is.
    #[serde(flatten)]
    pub config: LayerConfig,
}

/// The architecture of a [`Sequential`] model: everything but the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// The input.
    pub input: InputSpec,
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
}

impl ModelSpec {
    /// An empty stack on `input`.
    pub fn new(input: InputSpec) -> Self {
        Self {
            input,
            layers: Vec::new(),
        }
    }

    /// Appends a layer with Keras' default name (`conv1d`, `conv1d_1`, ...).
    pub fn push(mut self, config: LayerConfig) -> Self {
        let stem = config.default_stem();
        let taken = |name: &str| self.layers.iter().any(|l| l.name == name);
        let mut name = stem.to_string();
        let mut i = 1;
        while taken(&name) {
            name = format!("{stem}_{i}");
            i += 1;
        }
        self.layers.push(LayerSpec { name, config });
        self
    }

    /// Appends a layer with an explicit name.
    pub fn push_named(mut self, name: &str, config: LayerConfig) -> Self {
        self.layers.push(LayerSpec {
            name: name.to_string(),
            config,
        });
        self
    }

    /// Infers every layer's output shape, or says which layer cannot work and why.
    pub fn infer_shapes(&self) -> Result<Vec<FeatureShape>, LayerError> {
        let input = self.input;
        if input.channels == 0 || input.length == Some(0) {
            return Err(LayerError::config(
                "input",
                format!(
                    "channels and length must be > 0, got {} and {:?}",
                    input.channels, input.length
                ),
            ));
        }
        let mut names = std::collections::HashSet::new();
        let mut shape = FeatureShape::Seq {
            channels: input.channels,
            length: input.length,
        };
        let mut shapes = Vec::with_capacity(self.layers.len());
        for spec in &self.layers {
            let name = spec.name.as_str();
            if !names.insert(name) {
                return Err(LayerError::config(name, "duplicate layer name"));
            }
            shape = next_shape(name, &spec.config, shape)?;
            shapes.push(shape);
        }
        Ok(shapes)
    }
}

fn need_seq(name: &str, shape: FeatureShape) -> Result<(usize, Option<usize>), LayerError> {
    match shape {
        FeatureShape::Seq { channels, length } => Ok((channels, length)),
        FeatureShape::Flat { features } => Err(LayerError::InputShape {
            layer: name.to_string(),
            expected: "a sequence [batch, length, channels]".into(),
            got: vec![features],
        }),
    }
}

fn next_shape(
    name: &str,
    config: &LayerConfig,
    shape: FeatureShape,
) -> Result<FeatureShape, LayerError> {
    Ok(match config {
        LayerConfig::Conv1d(c) => {
            let (channels, length) = need_seq(name, shape)?;
            c.validate(name, channels)?;
            let length = length
                .map(|l| {
                    conv_output(
                        l,
                        c.kernel_size,
                        c.strides,
                        c.dilation_rate,
                        c.padding.into(),
                    )
                    .map(|g| g.length_out)
                    .map_err(LayerError::ops(name))
                })
                .transpose()?;
            FeatureShape::Seq {
                channels: c.filters,
                length,
            }
        }
        LayerConfig::BatchNorm1d(c) => {
            let channels = match shape {
                FeatureShape::Seq { channels, .. } => channels,
                FeatureShape::Flat { features } => features,
            };
            c.validate(name, channels)?;
            shape
        }
        LayerConfig::MaxPool1d(c) | LayerConfig::AvgPool1d(c) => {
            let (channels, length) = need_seq(name, shape)?;
            c.validate(name)?;
            let length = length.map(|l| c.output_length(name, l)).transpose()?;
            FeatureShape::Seq { channels, length }
        }
        LayerConfig::GlobalMaxPool1d | LayerConfig::GlobalAvgPool1d => {
            let (channels, _) = need_seq(name, shape)?;
            FeatureShape::Flat { features: channels }
        }
        LayerConfig::Flatten => {
            let (channels, length) = need_seq(name, shape)?;
            let Some(length) = length else {
                return Err(LayerError::config(
                    name,
                    "Flatten needs a fixed input length (the model input has a variable length)",
                ));
            };
            let features = channels.checked_mul(length).ok_or_else(|| {
                LayerError::config(
                    name,
                    format!("Flatten of {channels} channels × {length} steps overflows a size"),
                )
            })?;
            FeatureShape::Flat { features }
        }
        LayerConfig::Dense(c) => match shape {
            FeatureShape::Flat { .. } if c.units > 0 => FeatureShape::Flat { features: c.units },
            FeatureShape::Flat { .. } => return Err(LayerError::config(name, "units must be > 0")),
            FeatureShape::Seq { channels, length } => {
                return Err(LayerError::InputShape {
                    layer: name.to_string(),
                    expected: "flat features [batch, features] (add Flatten or global pooling)"
                        .into(),
                    got: vec![length.unwrap_or(0), channels],
                });
            }
        },
        LayerConfig::Dropout(c) => {
            if !(c.rate.is_finite() && (0.0..1.0).contains(&c.rate)) {
                return Err(LayerError::config(
                    name,
                    format!("dropout rate must be in [0, 1), got {}", c.rate),
                ));
            }
            shape
        }
        LayerConfig::Activation(a) => {
            a.validate().map_err(|r| LayerError::config(name, r))?;
            shape
        }
        LayerConfig::Normalization(c) => {
            let (channels, _) = need_seq(name, shape)?;
            c.validate(name, channels)?;
            shape
        }
    })
}

/// A built layer.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Layer {
    /// Convolution.
    Conv1d(Conv1d),
    /// Batch normalisation.
    BatchNorm1d(BatchNorm1d),
    /// Windowed max pooling.
    MaxPool1d(MaxPool1d),
    /// Windowed average pooling.
    AvgPool1d(AvgPool1d),
    /// Global max pooling.
    GlobalMaxPool1d(GlobalMaxPool1d),
    /// Global average pooling.
    GlobalAvgPool1d(GlobalAvgPool1d),
    /// Fully connected.
    Dense(Dense),
    /// Dropout.
    Dropout(Dropout),
    /// Flatten.
    Flatten(Flatten),
    /// Activation.
    Activation(ActivationLayer),
    /// Per-channel standardisation.
    Normalization(Normalization),
}

impl Layer {
    fn build(
        spec: &LayerSpec,
        input: FeatureShape,
        format: DataFormat,
        seed: u64,
        device: &Device,
    ) -> Result<Self, LayerError> {
        let name = spec.name.as_str();
        let channels = match input {
            FeatureShape::Seq { channels, .. } => channels,
            FeatureShape::Flat { features } => features,
        };
        Ok(match &spec.config {
            // Inside a model the model's layout rules (it decides softmax's axis).
            LayerConfig::Conv1d(c) => Self::Conv1d(
                c.clone()
                    .with_data_format(format)
                    .init(name, channels, seed, device)?,
            ),
            LayerConfig::BatchNorm1d(c) => Self::BatchNorm1d(c.init(name, channels, device)?),
            LayerConfig::MaxPool1d(c) => Self::MaxPool1d(MaxPool1d::new(name, c.clone())?),
            LayerConfig::AvgPool1d(c) => Self::AvgPool1d(AvgPool1d::new(name, c.clone())?),
            LayerConfig::GlobalMaxPool1d => Self::GlobalMaxPool1d(GlobalMaxPool1d {
                name: name.to_string(),
            }),
            LayerConfig::GlobalAvgPool1d => Self::GlobalAvgPool1d(GlobalAvgPool1d {
                name: name.to_string(),
            }),
            LayerConfig::Dense(c) => Self::Dense(c.init(name, channels, seed, device)?),
            LayerConfig::Dropout(c) => Self::Dropout(Dropout::new(name, *c)?),
            LayerConfig::Flatten => Self::Flatten(Flatten {
                data_format: format,
                name: name.to_string(),
            }),
            LayerConfig::Activation(a) => Self::Activation(ActivationLayer {
                activation: *a,
                data_format: format,
                name: name.to_string(),
            }),
            LayerConfig::Normalization(c) => Self::Normalization(c.init(name, channels, device)?),
        })
    }

    /// The layer's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Conv1d(l) => &l.name,
            Self::BatchNorm1d(l) => &l.name,
            Self::MaxPool1d(l) => &l.name,
            Self::AvgPool1d(l) => &l.name,
            Self::GlobalMaxPool1d(l) => &l.name,
            Self::GlobalAvgPool1d(l) => &l.name,
            Self::Dense(l) => &l.name,
            Self::Dropout(l) => &l.name,
            Self::Flatten(l) => &l.name,
            Self::Activation(l) => &l.name,
            Self::Normalization(l) => &l.name,
        }
    }

    /// Runs the layer on a value.
    pub fn forward(&self, x: Value, mode: Mode) -> Result<Value, LayerError> {
        let wrong = |x: &Value, expected: &str| LayerError::InputShape {
            layer: self.name().to_string(),
            expected: expected.to_string(),
            got: x.dims(),
        };
        Ok(match (self, x) {
            (Self::Conv1d(l), Value::Seq(x)) => Value::Seq(l.forward_channels_first(x)?),
            (Self::BatchNorm1d(l), Value::Seq(x)) => Value::Seq(l.forward_seq(x, mode)?),
            (Self::BatchNorm1d(l), Value::Flat(x)) => Value::Flat(l.forward_flat(x, mode)?),
            (Self::MaxPool1d(l), Value::Seq(x)) => Value::Seq(l.forward(x)?),
            (Self::AvgPool1d(l), Value::Seq(x)) => Value::Seq(l.forward(x)?),
            (Self::GlobalMaxPool1d(l), Value::Seq(x)) => Value::Flat(l.forward(x)?),
            (Self::GlobalAvgPool1d(l), Value::Seq(x)) => Value::Flat(l.forward(x)?),
            (Self::Dense(l), Value::Flat(x)) => Value::Flat(l.forward(x)?),
            (Self::Dropout(l), Value::Seq(x)) => Value::Seq(l.forward(x, mode)),
            (Self::Dropout(l), Value::Flat(x)) => Value::Flat(l.forward(x, mode)),
            (Self::Flatten(l), Value::Seq(x)) => Value::Flat(l.forward(x)),
            (Self::Activation(l), Value::Seq(x)) => Value::Seq(l.forward_seq(x)),
            (Self::Activation(l), Value::Flat(x)) => Value::Flat(l.activation.apply(x, 1)),
            (Self::Normalization(l), Value::Seq(x)) => Value::Seq(l.forward(x)?),
            (Self::Dense(_), x) => return Err(wrong(&x, "[batch, features]")),
            (_, x) => return Err(wrong(&x, "[batch, channels, length]")),
        })
    }
}

/// A stack of layers with build-time shape inference and checked forward passes.
#[derive(Module, Debug)]
pub struct Sequential {
    /// The layers, in order.
    pub layers: Vec<Layer>,
    /// The architecture (kept beside the weights for checkpoints and summaries).
    #[module(skip)]
    pub spec: ModelSpec,
    /// Each layer's inferred output shape.
    #[module(skip)]
    pub shapes: Vec<FeatureShape>,
}

impl Sequential {
    /// Builds the model; layer `i`'s parameters come from `param_seed(seed, i)` on the host, so
    /// a seed gives the same weights on every backend.
    pub fn new(spec: ModelSpec, seed: u64, device: &Device) -> Result<Self, LayerError> {
        let shapes = spec.infer_shapes()?;
        // Parameters are drawn on the host and uploaded (two copies at once), and every layer
        // costs its module's bookkeeping besides: check the total before building anything.
        let params = crate::checkpoint::spec_tensors(&spec)?
            .iter()
            .map(|w| {
                w.shape
                    .iter()
                    .fold(1u128, |a, &d| a.saturating_mul(d as u128))
            })
            .fold(0u128, u128::saturating_add);
        let bytes = params
            .saturating_mul(8)
            .saturating_add((spec.layers.len() as u128).saturating_mul(1024));
        widen_guard::budget().check(
            &format!(
                "building a model of {} layers and {params} parameters",
                spec.layers.len()
            ),
            bytes,
        )?;
        let mut shape = FeatureShape::Seq {
            channels: spec.input.channels,
            length: spec.input.length,
        };
        let mut layers = Vec::with_capacity(spec.layers.len());
        for (i, layer) in spec.layers.iter().enumerate() {
            layers.push(Layer::build(
                layer,
                shape,
                spec.input.data_format,
                param_seed(seed, 1000 + i as u64),
                device,
            )?);
            shape = shapes[i];
        }
        Ok(Self {
            layers,
            spec,
            shapes,
        })
    }

    /// The input spec.
    pub fn input(&self) -> InputSpec {
        self.spec.input
    }

    /// The output shape (batch excluded).
    pub fn output_shape(&self) -> FeatureShape {
        self.shapes.last().copied().unwrap_or(FeatureShape::Seq {
            channels: self.spec.input.channels,
            length: self.spec.input.length,
        })
    }

    fn first_layer_name(&self) -> String {
        self.layers
            .first()
            .map_or_else(|| "input".to_string(), |l| l.name().to_string())
    }

    /// Checks `x` against the input spec and returns it channels-first.
    fn enter(&self, x: Tensor<3>) -> Result<Tensor<3>, LayerError> {
        let input = self.spec.input;
        let dims = x.dims();
        let (channels, length) = match input.data_format {
            DataFormat::ChannelsLast => (dims[2], dims[1]),
            DataFormat::ChannelsFirst => (dims[1], dims[2]),
        };
        if channels != input.channels {
            return Err(LayerError::ChannelMismatch {
                layer: self.first_layer_name(),
                expected: input.channels,
                got: channels,
            });
        }
        let length_ok = input.length.is_none_or(|l| l == length);
        if dims[0] == 0 || length == 0 || !length_ok {
            let len = input
                .length
                .map_or("length > 0".to_string(), |l| l.to_string());
            let expected = match input.data_format {
                DataFormat::ChannelsLast => format!("[batch > 0, {len}, {}]", input.channels),
                DataFormat::ChannelsFirst => format!("[batch > 0, {}, {len}]", input.channels),
            };
            return Err(LayerError::InputShape {
                layer: self.first_layer_name(),
                expected,
                got: dims.to_vec(),
            });
        }
        Ok(match input.data_format {
            DataFormat::ChannelsLast => x.swap_dims(1, 2),
            DataFormat::ChannelsFirst => x,
        })
    }

    fn leave(&self, y: Value) -> Value {
        match (y, self.spec.input.data_format) {
            (Value::Seq(t), DataFormat::ChannelsLast) => Value::Seq(t.swap_dims(1, 2)),
            (y, _) => y,
        }
    }

    /// Runs the model in `mode`. 3-D outputs come back in the input's data format.
    pub fn forward_mode(&self, x: Tensor<3>, mode: Mode) -> Result<Value, LayerError> {
        let mut value = Value::Seq(self.enter(x)?);
        let mut i = 0;
        while let Some(layer) = self.layers.get(i) {
            if let Some((y, used)) = self.fused_head(i, &value, mode) {
                value = Value::Flat(y);
                i += used;
                continue;
            }
            value = layer.forward(value, mode)?;
            i += 1;
        }
        Ok(self.leave(value))
    }

    /// Conv1D → [BatchNorm in inference] → GlobalMax/AvgPool starting at layer `i`, run as one
    /// fused CPU op (widen-ops' `conv1d_global_pool`): the `[B, F, L]` activation is never
    /// materialised. Returns the pooled output and how many layers it covered, or `None` where
    /// the pattern, the mode, the activation or the device does not allow it (the layers then
    /// run one by one, with the same result).
    fn fused_head(&self, i: usize, value: &Value, mode: Mode) -> Option<(Tensor<2>, usize)> {
        let Value::Seq(x) = value else {
            return None;
        };
        let Some(Layer::Conv1d(conv)) = self.layers.get(i) else {
            return None;
        };
        let activation = match conv.config.activation {
            crate::Activation::Linear => widen_ops::cpu::Monotone::Linear,
            crate::Activation::Relu => widen_ops::cpu::Monotone::Relu,
            _ => return None,
        };
        let f = conv.weight.dims()[0];
        let device = x.device();
        let (scale, shift, next) = match self.layers.get(i + 1) {
            Some(Layer::BatchNorm1d(bn)) if mode == Mode::Inference || !bn.is_trainable() => {
                let (scale, shift) = bn.inference_affine();
                (scale, shift, i + 2)
            }
            _ => (
                Tensor::ones([f], &device),
                Tensor::zeros([f], &device),
                i + 1,
            ),
        };
        let pool = match self.layers.get(next) {
            Some(Layer::GlobalMaxPool1d(_)) => widen_ops::cpu::GlobalPool::Max,
            Some(Layer::GlobalAvgPool1d(_)) => widen_ops::cpu::GlobalPool::Avg,
            _ => return None,
        };
        let bias = conv.bias.as_ref().map(|b| b.val());
        let y = widen_ops::cpu::conv1d_global_pool(
            x,
            &conv.weight.val(),
            bias.as_ref(),
            &conv.config.spec(),
            activation,
            &scale,
            &shift,
            pool,
        )?;
        Some((y, next + 1 - i))
    }

    /// Inference forward (Keras `model(x, training=False)`).
    pub fn forward(&self, x: Tensor<3>) -> Result<Value, LayerError> {
        self.forward_mode(x, Mode::Inference)
    }

    /// Training forward (Keras `model(x, training=True)`): batch statistics, dropout; frozen
    /// layers still infer.
    pub fn forward_train(&self, x: Tensor<3>) -> Result<Value, LayerError> {
        self.forward_mode(x, Mode::Training)
    }

    /// Runs the layers up to and including `name`, in inference mode, returning that layer's
    /// output (channels-first for sequences). Used by diagnostics.
    pub fn forward_until(&self, x: Tensor<3>, name: &str, mode: Mode) -> Result<Value, LayerError> {
        let mut value = Value::Seq(self.enter(x)?);
        for layer in &self.layers {
            value = layer.forward(value, mode)?;
            if layer.name() == name {
                return Ok(value);
            }
        }
        Err(LayerError::config(
            name,
            "no layer with this name in the model",
        ))
    }

    /// Runs the model and returns the model input (channels-first, named `"input"`) followed
    /// by every layer's output (sequences channels-first), for diagnostics.
    pub fn forward_trace(
        &self,
        x: Tensor<3>,
        mode: Mode,
    ) -> Result<Vec<(String, Value)>, LayerError> {
        let mut value = Value::Seq(self.enter(x)?);
        let mut trace = Vec::with_capacity(self.layers.len() + 1);
        trace.push(("input".to_string(), value.clone()));
        for layer in &self.layers {
            value = layer.forward(value, mode)?;
            trace.push((layer.name().to_string(), value.clone()));
        }
        Ok(trace)
    }

    /// The index of the layer called `name`.
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name() == name)
    }

    /// Freezes one layer (no gradients; BatchNorm and Dropout run in inference mode).
    pub fn freeze_layer(mut self, name: &str) -> Result<Self, LayerError> {
        let i = self
            .layer_index(name)
            .ok_or_else(|| LayerError::config(name, "no layer with this name in the model"))?;
        let layer = self.layers.remove(i).freeze();
        self.layers.insert(i, layer);
        Ok(self)
    }

    /// Unfreezes one layer.
    pub fn unfreeze_layer(mut self, name: &str) -> Result<Self, LayerError> {
        let i = self
            .layer_index(name)
            .ok_or_else(|| LayerError::config(name, "no layer with this name in the model"))?;
        let layer = self.layers.remove(i).unfreeze();
        self.layers.insert(i, layer);
        Ok(self)
    }

    /// Checks, against the memory budget (`widen_guard`), what a forward pass over `batch`
    /// sequences of `length` steps needs: in inference the largest activation twice (input and
    /// output of a layer), in training every activation and its gradient, which autodiff keeps
    /// until the backward pass. A length the model refuses is left to [`Sequential::forward`].
    pub fn check_memory(
        &self,
        batch: usize,
        length: usize,
        training: bool,
    ) -> Result<(), LayerError> {
        let mut spec = self.spec.clone();
        if spec.input.length.is_some_and(|l| l != length) {
            return Ok(());
        }
        spec.input.length = Some(length);
        let Ok(shapes) = spec.infer_shapes() else {
            return Ok(());
        };
        let size = |s: &FeatureShape| -> u128 {
            match *s {
                FeatureShape::Seq { channels, length } => {
                    (channels as u128).saturating_mul(length.unwrap_or(1) as u128)
                }
                FeatureShape::Flat { features } => features as u128,
            }
        };
        let input = (spec.input.channels as u128).saturating_mul(length as u128);
        let per_item = if training {
            shapes
                .iter()
                .map(size)
                .fold(input, u128::saturating_add)
                .saturating_mul(2)
        } else {
            shapes
                .iter()
                .map(size)
                .fold(input, u128::max)
                .saturating_mul(2)
        };
        widen_guard::budget().check(
            &format!(
                "{} the model on {batch} sequences of length {length}",
                if training { "training" } else { "running" }
            ),
            per_item.saturating_mul(batch as u128).saturating_mul(4),
        )?;
        Ok(())
    }

    /// Keras-style `model.summary()`: layer (type), output shape, parameter count, total.
    pub fn summary(&self) -> String {
        let format = self.spec.input.data_format;
        let rows: Vec<(String, String, usize)> = self
            .layers
            .iter()
            .zip(&self.spec.layers)
            .zip(&self.shapes)
            .map(|((layer, spec), shape)| {
                (
                    format!("{} ({})", printable(&spec.name), spec.config.keras_class()),
                    shape.keras_text(format),
                    trainable_count(layer) + non_trainable_count(layer),
                )
            })
            .collect();
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(12);
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(12);
        let total: usize = rows.iter().map(|r| r.2).sum();
        let non_trainable: usize = self.layers.iter().map(non_trainable_count).sum();
        let trainable = total - non_trainable;
        let rule = "-".repeat(w0 + w1 + 16);
        let mut out = String::from("Model: \"sequential\"\n");
        out += &format!(
            "{rule}\n{:<w0$}  {:<w1$}  {:>10}\n{rule}\n",
            "Layer (type)", "Output Shape", "Param #"
        );
        for (name, shape, params) in &rows {
            out += &format!("{name:<w0$}  {shape:<w1$}  {params:>10}\n");
        }
        out += &format!(
            "{rule}\nTotal params: {}\nTrainable params: {}\nNon-trainable params: {}\n",
            total, trainable, non_trainable
        );
        out
    }
}

/// `name` safe to print on a terminal: control characters (ANSI escapes among them) and the
/// invisible direction overrides are shown as `\u{..}` escapes instead of acting on the screen.
pub fn printable(name: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !name.chars().any(hidden) {
        return name.to_string();
    }
    name.chars()
        .map(|c| {
            if hidden(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Parameters that learn: weights, biases, gamma and beta (Keras counts moving statistics as
/// non-trainable).
fn trainable_count(layer: &Layer) -> usize {
    match layer {
        Layer::Conv1d(l) => l.weight.num_params() + l.bias.as_ref().map_or(0, |b| b.num_params()),
        Layer::Dense(l) => l.weight.num_params() + l.bias.as_ref().map_or(0, |b| b.num_params()),
        Layer::BatchNorm1d(l) => {
            l.gamma.as_ref().map_or(0, |g| g.num_params())
                + l.beta.as_ref().map_or(0, |b| b.num_params())
        }
        _ => 0,
    }
}

fn non_trainable_count(layer: &Layer) -> usize {
    match layer {
        Layer::BatchNorm1d(l) => 2 * l.channels(),
        Layer::Normalization(l) => 2 * l.channels(),
        _ => 0,
    }
}

/// A convenience for stacks built in code: `ModelSpec::new(input).push(...)`.
pub fn keras_ex1(channels: usize, length: usize) -> ModelSpec {
    ModelSpec::new(InputSpec::new(channels).with_length(length))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(32, 3).with_activation(Activation::Relu),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
        .push(LayerConfig::GlobalMaxPool1d)
}

/// The seed's Example 3 stack: Conv1D(16, 3, relu) → Conv1D(32, 1, relu) → BatchNorm → GMP.
pub fn keras_ex3(channels: usize, length: usize) -> ModelSpec {
    ModelSpec::new(InputSpec::new(channels).with_length(length))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(16, 3).with_activation(Activation::Relu),
        ))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(32, 1).with_activation(Activation::Relu),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
        .push(LayerConfig::GlobalMaxPool1d)
}
