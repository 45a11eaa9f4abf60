//! `Conv1d`: Keras' `Conv1D` as a Burn module.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use widen_init::{Initializer, KernelLayout};
use widen_ops::{Conv1dSpec, Padding};

use crate::{Activation, DataFormat, LayerError};

/// Length-axis padding of a convolution or pooling layer, as Keras names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaddingMode {
    /// No padding.
    #[default]
    Valid,
    /// Output length `ceil(L / stride)`, odd padding on the right (TensorFlow's rule).
    Same,
    /// Left padding only: output `t` sees inputs up to `t`.
    Causal,
}

impl From<PaddingMode> for Padding {
    fn from(mode: PaddingMode) -> Self {
        match mode {
            PaddingMode::Valid => Padding::Valid,
            PaddingMode::Same => Padding::Same,
            PaddingMode::Causal => Padding::Causal,
        }
    }
}

/// Configuration of a [`Conv1d`], with Keras' argument names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conv1dConfig {
    /// Output channels.
    pub filters: usize,
    /// Kernel taps.
    pub kernel_size: usize,
    /// Step between windows (default 1).
    #[serde(default = "one")]
    pub strides: usize,
    /// Spacing between taps (default 1).
    #[serde(default = "one")]
    pub dilation_rate: usize,
    /// Channel groups (default 1).
    #[serde(default = "one")]
    pub groups: usize,
    /// Padding (default valid).
    #[serde(default)]
    pub padding: PaddingMode,
    /// Activation applied after the bias (default linear).
    #[serde(default)]
    pub activation: Activation,
    /// Whether the layer has a bias (default true).
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Kernel initializer (Keras default: glorot_uniform).
    #[serde(default = "crate::default_kernel_init")]
    pub kernel_initializer: Initializer,
    /// Bias initializer (Keras default: zeros).
    #[serde(default = "crate::default_bias_init")]
    pub bias_initializer: Initializer,
    /// Input layout when the layer is called on its own (inside a `Sequential` the model's
    /// input format rules).
    #[serde(default)]
    pub data_format: DataFormat,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

impl Conv1dConfig {
    /// `filters` outputs, `kernel_size` taps, every other argument at Keras' default.
    pub fn new(filters: usize, kernel_size: usize) -> Self {
        Self {
            filters,
            kernel_size,
            strides: 1,
            dilation_rate: 1,
            groups: 1,
            padding: PaddingMode::Valid,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::glorot_uniform(),
            bias_initializer: Initializer::Zeros,
            data_format: DataFormat::ChannelsLast,
        }
    }

    /// PyTorch's `nn.Conv1d` defaults: kaiming_uniform(a=√5) kernel and U(±1/√fan_in) bias,
    /// channels-first.
    pub fn pytorch(filters: usize, kernel_size: usize) -> Self {
        Self {
            kernel_initializer: Initializer::TorchConvDefault,
            bias_initializer: Initializer::TorchConvDefault,
            data_format: DataFormat::ChannelsFirst,
            ..Self::new(filters, kernel_size)
        }
    }

    /// Sets the stride.
    pub fn with_strides(mut self, strides: usize) -> Self {
        self.strides = strides;
        self
    }
    /// Sets the dilation.
    pub fn with_dilation_rate(mut self, dilation_rate: usize) -> Self {
        self.dilation_rate = dilation_rate;
        self
    }
    /// Sets the group count.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
    /// Sets the padding.
    pub fn with_padding(mut self, padding: PaddingMode) -> Self {
        self.padding = padding;
        self
    }
    /// Sets the activation.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }
    /// Turns the bias on or off.
    pub fn with_bias(mut self, use_bias: bool) -> Self {
        self.use_bias = use_bias;
        self
    }
    /// Sets the kernel initializer.
    pub fn with_kernel_initializer(mut self, init: Initializer) -> Self {
        self.kernel_initializer = init;
        self
    }
    /// Sets the bias initializer.
    pub fn with_bias_initializer(mut self, init: Initializer) -> Self {
        self.bias_initializer = init;
        self
    }
    /// Sets the layout used when the layer is called on its own.
    pub fn with_data_format(mut self, data_format: DataFormat) -> Self {
        self.data_format = data_format;
        self
    }

    /// The op-level spec.
    pub fn spec(&self) -> Conv1dSpec {
        Conv1dSpec::new(self.padding.into())
            .with_stride(self.strides)
            .with_dilation(self.dilation_rate)
            .with_groups(self.groups)
    }

    /// Checks the config against `in_channels` without touching a device.
    pub fn validate(&self, name: &str, in_channels: usize) -> Result<(), LayerError> {
        for (what, v) in [
            ("filters", self.filters),
            ("kernel_size", self.kernel_size),
            ("strides", self.strides),
            ("dilation_rate", self.dilation_rate),
            ("groups", self.groups),
            ("input channels", in_channels),
        ] {
            if v == 0 {
                return Err(LayerError::config(name, format!("{what} must be > 0")));
            }
        }
        if self.strides > 1 && self.dilation_rate > 1 {
            return Err(LayerError::config(
                name,
                format!(
                    "strides {} > 1 together with dilation_rate {} > 1 is not supported (as in Keras)",
                    self.strides, self.dilation_rate
                ),
            ));
        }
        for (what, count) in [("input channels", in_channels), ("filters", self.filters)] {
            if count % self.groups != 0 {
                return Err(LayerError::config(
                    name,
                    format!(
                        "{what} = {count} is not divisible by groups = {}",
                        self.groups
                    ),
                ));
            }
        }
        self.activation
            .validate()
            .map_err(|reason| LayerError::config(name, reason))
    }

    /// Builds the layer for `in_channels` inputs; parameters are drawn on the host from `seed`,
    /// so the same seed gives the same weights on every backend.
    pub fn init(
        &self,
        name: &str,
        in_channels: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Conv1d, LayerError> {
        self.validate(name, in_channels)?;
        let shape = [self.filters, in_channels / self.groups, self.kernel_size];
        let (weight, bias) = crate::kernel_and_bias(
            name,
            &self.kernel_initializer,
            self.use_bias.then_some(&self.bias_initializer),
            shape,
            KernelLayout::Torch,
            seed,
            device,
        )?;
        Ok(Conv1d {
            weight,
            bias,
            config: self.clone(),
            name: name.to_string(),
        })
    }
}

/// A 1-D convolution layer. The weight is stored in Burn's `[filters, in / groups, kernel]`
/// layout (Keras stores `[kernel, in / groups, filters]`; see `widen_ops::keras_kernel_to_burn`).
#[derive(Module, Debug)]
pub struct Conv1d {
    /// `[filters, in_channels / groups, kernel_size]`.
    pub weight: Param<Tensor<3>>,
    /// `[filters]`, if the layer has a bias.
    pub bias: Option<Param<Tensor<1>>>,
    /// The configuration it was built from.
    #[module(skip)]
    pub config: Conv1dConfig,
    /// The layer's name, used in errors.
    #[module(skip)]
    pub name: String,
}

impl Conv1d {
    /// Input channels the layer was built for.
    pub fn in_channels(&self) -> usize {
        self.weight.dims()[1] * self.config.groups
    }

    /// Forward on channels-first `[batch, channels, length]`.
    pub fn forward_channels_first(&self, x: Tensor<3>) -> Result<Tensor<3>, LayerError> {
        let y = widen_ops::conv1d(
            x,
            self.weight.val(),
            self.bias.as_ref().map(Param::val),
            &self.config.spec(),
        )
        .map_err(LayerError::ops(&self.name))?;
        // Keras normalises softmax over the last axis of its layout: channels when channels-last,
        // length when channels-first (dim 1 or 2 of the channels-first tensor here).
        let last = match self.config.data_format {
            DataFormat::ChannelsLast => 1,
            DataFormat::ChannelsFirst => 2,
        };
        Ok(self.config.activation.apply(y, last))
    }

    /// Forward in the layer's own `data_format` (Keras default: `[batch, length, channels]`).
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>, LayerError> {
        match self.config.data_format {
            DataFormat::ChannelsFirst => self.forward_channels_first(x),
            DataFormat::ChannelsLast => Ok(self
                .forward_channels_first(x.swap_dims(1, 2))?
                .swap_dims(1, 2)),
        }
    }
}

impl crate::LayerKind for Conv1d {
    type Config = Conv1dConfig;
    const KERAS_CLASS: &'static str = "Conv1D";
    const STEM: &'static str = "conv1d";

    fn input_kernel(c: &Conv1dConfig, _: &crate::ShapeContext) -> Option<crate::InputKernel> {
        // A grouped kernel reads each channel with one group's filters only: no plain view.
        (c.groups == 1).then_some(crate::InputKernel {
            param: "weight",
            outer: c.filters,
            inner: c.kernel_size,
            keras_layout: false,
        })
    }
    fn output_shape(
        c: &Conv1dConfig,
        cx: &crate::ShapeContext,
    ) -> Result<crate::FeatureShape, LayerError> {
        let (channels, length) = cx.seq()?;
        c.validate(cx.name, channels)?;
        let length = length
            .map(|l| {
                widen_ops::conv_output(
                    l,
                    c.kernel_size,
                    c.strides,
                    c.dilation_rate,
                    c.padding.into(),
                )
                .map(|g| g.length_out)
                .map_err(LayerError::ops(cx.name))
            })
            .transpose()?;
        Ok(crate::FeatureShape::Seq {
            channels: c.filters,
            length,
        })
    }

    fn params(c: &Conv1dConfig, cx: &crate::ShapeContext) -> Vec<crate::ParamInfo> {
        // output_shape has checked groups > 0 and divides the channels.
        let weight = vec![c.filters, cx.features() / c.groups.max(1), c.kernel_size];
        let mut v = vec![crate::ParamInfo::trained("weight", weight)];
        if c.use_bias {
            v.push(crate::ParamInfo::trained("bias", vec![c.filters]));
        }
        v
    }

    fn build(c: &Conv1dConfig, cx: &crate::BuildContext) -> Result<Self, LayerError> {
        // Inside a model the model's layout rules (it decides softmax's axis).
        c.clone().with_data_format(cx.shape.data_format).init(
            cx.shape.name,
            cx.shape.features(),
            cx.seed,
            cx.device,
        )
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn forward(
        &self,
        inputs: Vec<crate::Value>,
        _mode: crate::Mode,
    ) -> Result<crate::Value, LayerError> {
        let x = crate::layer::single_seq(&self.name, inputs)?;
        Ok(crate::Value::Seq(self.forward_channels_first(x)?))
    }

    fn weight(&self, param: &str) -> Result<burn::tensor::TensorData, LayerError> {
        crate::weights::kernel_or_bias(&self.name, &self.weight, self.bias.as_ref(), param)
    }

    fn set_weight(
        &mut self,
        param: &str,
        data: burn::tensor::TensorData,
    ) -> Result<(), LayerError> {
        let bias = self.bias.as_mut();
        crate::weights::set_kernel_or_bias(&self.name, &mut self.weight, bias, param, data)
    }
}
