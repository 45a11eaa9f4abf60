//! What a layer type must say about itself: the [`LayerKind`] trait. Each layer file implements
//! it once (Keras class and name stem, output shape, parameters, build, forward, tensor access),
//! and `registry.rs` lists the types; the model graph only ever talks to this trait.

use burn::tensor::{Device, TensorData};

use crate::{DataFormat, FeatureShape, LayerError, Mode, Value};

/// How many inputs a layer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// Exactly one (every layer but the merges).
    One,
    /// Exactly `n` (Keras `Subtract`: two).
    Exactly(usize),
    /// `n` or more (Keras `Add`, `Concatenate`, ...).
    AtLeast(usize),
}

impl Arity {
    /// Whether `n` inputs are allowed.
    pub fn allows(self, n: usize) -> bool {
        match self {
            Self::One => n == 1,
            Self::Exactly(k) => n == k,
            Self::AtLeast(k) => n >= k,
        }
    }

    /// Text for errors: `"1 input"`, `"at least 2 inputs"`.
    pub fn describe(self) -> String {
        match self {
            Self::One => "1 input".into(),
            Self::Exactly(k) => format!("{k} inputs"),
            Self::AtLeast(k) => format!("at least {k} inputs"),
        }
    }
}

/// Where a layer sits: its name, the shapes of its inputs and the model's layout (Keras axes and
/// softmax follow the layout the user sees).
#[derive(Debug, Clone, Copy)]
pub struct ShapeContext<'a> {
    /// The layer's name (for errors).
    pub name: &'a str,
    /// Its inputs' shapes (batch excluded), in inbound order; the graph has checked the count
    /// against [`LayerKind::arity`].
    pub inputs: &'a [FeatureShape],
    /// The model's input layout.
    pub data_format: DataFormat,
}

impl ShapeContext<'_> {
    /// The single input's shape.
    pub fn input(&self) -> FeatureShape {
        self.inputs
            .first()
            .copied()
            .unwrap_or(FeatureShape::Flat { features: 0 })
    }

    /// The single input as a sequence `(channels, length)`, or a typed error.
    pub fn seq(&self) -> Result<(usize, Option<usize>), LayerError> {
        match self.input() {
            FeatureShape::Seq { channels, length } => Ok((channels, length)),
            FeatureShape::Flat { features } => Err(LayerError::InputShape {
                layer: self.name.to_string(),
                expected: "a sequence [batch, length, channels]".into(),
                got: vec![features],
            }),
        }
    }

    /// Features of the single input: channels of a sequence, or the flat width.
    pub fn features(&self) -> usize {
        match self.input() {
            FeatureShape::Seq { channels, .. } => channels,
            FeatureShape::Flat { features } => features,
        }
    }

    /// A config error naming this layer.
    pub fn config_error(&self, reason: impl Into<String>) -> LayerError {
        LayerError::config(self.name, reason)
    }
}

/// [`ShapeContext`] plus what building needs.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    /// Name, inputs and layout.
    pub shape: ShapeContext<'a>,
    /// This layer's parameter seed.
    pub seed: u64,
    /// Where the parameters live.
    pub device: &'a Device,
}

/// One tensor a layer stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// Name within the layer (`weight`, `gamma`, `kernel`, ...).
    pub name: &'static str,
    /// Shape, in the layout the layer stores.
    pub shape: Vec<usize>,
    /// Whether an optimiser trains it (Keras counts moving statistics as non-trainable).
    pub trainable: bool,
}

impl ParamInfo {
    /// A trained tensor.
    pub fn trained(name: &'static str, shape: Vec<usize>) -> Self {
        Self {
            name,
            shape,
            trainable: true,
        }
    }
    /// A stored statistic.
    pub fn statistic(name: &'static str, shape: Vec<usize>) -> Self {
        Self {
            name,
            shape,
            trainable: false,
        }
    }
}

/// How a layer treats its input's channels, which is what widening the model input needs to
/// know about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRole {
    /// Output channel `c` depends on input channel `c` alone, with no per-channel parameters
    /// (dropout, pooling, padding, cropping, element-wise activations, global pooling): a new
    /// input channel passes through to the next layer.
    Local,
    /// Channel-local, with one value per channel in each stored tensor (BatchNorm,
    /// Normalization): widening adds an entry per new channel.
    PerChannel,
    /// Channels are mixed (convolutions, Dense, recurrent kernels, merges, normalisation over
    /// channels): the layer is a consumer that must be widened itself, or cannot be.
    Mixes,
}

/// Where a channel-mixing layer's kernel reads its input's channels: the stored tensor
/// `param`, viewed row-major as `[outer, channels, inner]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputKernel {
    /// The stored tensor (`weight`, `kernel`).
    pub param: &'static str,
    /// Product of the axes before the channel axis.
    pub outer: usize,
    /// Product of the axes after it.
    pub inner: usize,
    /// Stored in Keras' `[in, out]` layout (`true`) or PyTorch's `[out, in, k]` (`false`):
    /// which fans a new slice is drawn with.
    pub keras_layout: bool,
}

/// Everything the model needs to know about one layer type. Implemented by the built module;
/// the configuration-side functions take the module's `Config` so they work before anything is
/// allocated (shape inference, checkpoint checks, memory estimates).
pub trait LayerKind: Sized {
    /// What is stored in the architecture spec.
    type Config;
    /// Keras' class name (`Conv1D`), for summaries and errors.
    const KERAS_CLASS: &'static str;
    /// Keras' default name stem (`conv1d` → `conv1d`, `conv1d_1`, ...).
    const STEM: &'static str;

    /// How many inputs the layer takes.
    fn arity(_config: &Self::Config) -> Arity {
        Arity::One
    }
    /// How the layer treats its input's channels (see [`ChannelRole`]).
    fn channel_role(_config: &Self::Config) -> ChannelRole {
        ChannelRole::Mixes
    }
    /// The kernel that reads the input's channels, for layers that mix them through one
    /// (convolutions, Dense, recurrent input kernels); `None` for the rest.
    fn input_kernel(_config: &Self::Config, _cx: &ShapeContext) -> Option<InputKernel> {
        None
    }
    /// The output shape, or why the layer cannot take these inputs.
    fn output_shape(config: &Self::Config, cx: &ShapeContext) -> Result<FeatureShape, LayerError>;
    /// The stored tensors, for inputs `output_shape` accepted.
    fn params(_config: &Self::Config, _cx: &ShapeContext) -> Vec<ParamInfo> {
        Vec::new()
    }
    /// Builds the layer (parameters drawn on the host from `cx.seed`).
    fn build(config: &Self::Config, cx: &BuildContext) -> Result<Self, LayerError>;

    /// The layer's name.
    fn name(&self) -> &str;
    /// Runs the layer; sequences are channels-first.
    fn forward(&self, inputs: Vec<Value>, mode: Mode) -> Result<Value, LayerError>;
    /// Reads one stored tensor.
    fn weight(&self, param: &str) -> Result<TensorData, LayerError> {
        Err(unknown_param(self.name(), param))
    }
    /// Replaces one stored tensor (shape checked, values finite).
    fn set_weight(&mut self, param: &str, _data: TensorData) -> Result<(), LayerError> {
        Err(unknown_param(self.name(), param))
    }
}

/// The error for a tensor name a layer does not have.
pub(crate) fn unknown_param(layer: &str, param: &str) -> LayerError {
    LayerError::config(layer, format!("layer has no tensor named `{param}`"))
}

/// The one input of a single-input layer.
pub(crate) fn single(name: &str, mut inputs: Vec<Value>) -> Result<Value, LayerError> {
    match inputs.len() {
        1 => inputs
            .pop()
            .ok_or_else(|| LayerError::config(name, "no input")),
        n => Err(LayerError::config(name, format!("takes 1 input, got {n}"))),
    }
}

/// The one input of a single-input layer, which must be a sequence.
pub(crate) fn single_seq(
    name: &str,
    inputs: Vec<Value>,
) -> Result<burn::tensor::Tensor<3>, LayerError> {
    match single(name, inputs)? {
        Value::Seq(x) => Ok(x),
        other => Err(LayerError::InputShape {
            layer: name.to_string(),
            expected: "[batch, channels, length]".into(),
            got: other.dims(),
        }),
    }
}

/// The one input of a single-input layer, which must be flat.
pub(crate) fn single_flat(
    name: &str,
    inputs: Vec<Value>,
) -> Result<burn::tensor::Tensor<2>, LayerError> {
    match single(name, inputs)? {
        Value::Flat(x) => Ok(x),
        other => Err(LayerError::InputShape {
            layer: name.to_string(),
            expected: "[batch, features]".into(),
            got: other.dims(),
        }),
    }
}
