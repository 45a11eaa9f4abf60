//! Parameter-free layers: `Dropout`, `Flatten`, `ActivationLayer`.

use burn::module::{Flag, Module, Param};
use burn::tensor::{Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::{Activation, DataFormat, LayerError, Mode};

/// Configuration of a [`Dropout`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DropoutConfig {
    /// Fraction of inputs zeroed in training, in `[0, 1)`.
    pub rate: f64,
}

/// Inverted dropout (kept values scaled by `1 / (1 − rate)`), active only in training mode.
#[derive(Module, Debug)]
pub struct Dropout {
    /// Cleared by `Module::freeze`.
    pub training: Param<Flag>,
    /// The rate.
    #[module(skip)]
    pub rate: f64,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl Dropout {
    /// Builds the layer; the rate must be in `[0, 1)`.
    pub fn new(name: &str, config: DropoutConfig) -> Result<Self, LayerError> {
        if !(config.rate.is_finite() && (0.0..1.0).contains(&config.rate)) {
            return Err(LayerError::config(
                name,
                format!("dropout rate must be in [0, 1), got {}", config.rate),
            ));
        }
        Ok(Self {
            training: Param::from_bool(true),
            rate: config.rate,
            name: name.to_string(),
        })
    }

    /// Applies dropout in training mode; identity otherwise.
    pub fn forward<const D: usize>(&self, x: Tensor<D>, mode: Mode) -> Tensor<D> {
        if mode == Mode::Inference || !self.training.is_enabled() || self.rate == 0.0 {
            return x;
        }
        let keep = 1.0 - self.rate;
        let mask = x.random_like(Distribution::Bernoulli(keep));
        x * mask / keep
    }
}

/// Keras `Flatten`: `[batch, channels, length]` → `[batch, length · channels]`, in the element
/// order of the model's data format (Keras flattens `[length, channels]` row-major, which a Dense
/// layer after it depends on).
#[derive(Module, Debug)]
pub struct Flatten {
    /// The model's data format.
    #[module(skip)]
    pub data_format: DataFormat,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl Flatten {
    /// Flattens channels-first input.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let [b, c, l] = x.dims();
        match self.data_format {
            DataFormat::ChannelsLast => x.swap_dims(1, 2).reshape([b, l * c]),
            DataFormat::ChannelsFirst => x.reshape([b, c * l]),
        }
    }
}

/// Keras `Activation` layer.
#[derive(Module, Debug)]
pub struct ActivationLayer {
    /// The function.
    #[module(skip)]
    pub activation: Activation,
    /// The model's data format: softmax on a sequence normalises over Keras' last axis.
    #[module(skip)]
    pub data_format: DataFormat,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl ActivationLayer {
    /// Applies the activation to a channels-first sequence.
    pub fn forward_seq(&self, x: Tensor<3>) -> Tensor<3> {
        let last = match self.data_format {
            DataFormat::ChannelsLast => 1,
            DataFormat::ChannelsFirst => 2,
        };
        self.activation.apply(x, last)
    }
}

impl crate::LayerKind for Dropout {
    type Config = DropoutConfig;
    const KERAS_CLASS: &'static str = "Dropout";
    const STEM: &'static str = "dropout";

    fn channel_role(_: &DropoutConfig) -> crate::ChannelRole {
        crate::ChannelRole::Local
    }
    fn output_shape(
        c: &DropoutConfig,
        cx: &crate::ShapeContext,
    ) -> Result<crate::FeatureShape, LayerError> {
        if !(c.rate.is_finite() && (0.0..1.0).contains(&c.rate)) {
            return Err(cx.config_error(format!("dropout rate must be in [0, 1), got {}", c.rate)));
        }
        Ok(cx.input())
    }
    fn build(c: &DropoutConfig, cx: &crate::BuildContext) -> Result<Self, LayerError> {
        Self::new(cx.shape.name, *c)
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: Vec<crate::Value>, mode: Mode) -> Result<crate::Value, LayerError> {
        Ok(match crate::layer::single(&self.name, inputs)? {
            crate::Value::Seq(x) => crate::Value::Seq(Dropout::forward(self, x, mode)),
            crate::Value::Flat(x) => crate::Value::Flat(Dropout::forward(self, x, mode)),
        })
    }
}

impl crate::LayerKind for Flatten {
    type Config = ();
    const KERAS_CLASS: &'static str = "Flatten";
    const STEM: &'static str = "flatten";

    fn output_shape(_: &(), cx: &crate::ShapeContext) -> Result<crate::FeatureShape, LayerError> {
        let (channels, length) = cx.seq()?;
        let Some(length) = length else {
            return Err(cx.config_error(
                "Flatten needs a fixed input length (the model input has a variable length)",
            ));
        };
        let features = channels.checked_mul(length).ok_or_else(|| {
            cx.config_error(format!(
                "Flatten of {channels} channels × {length} steps overflows a size"
            ))
        })?;
        Ok(crate::FeatureShape::Flat { features })
    }
    fn build(_: &(), cx: &crate::BuildContext) -> Result<Self, LayerError> {
        Ok(Self {
            data_format: cx.shape.data_format,
            name: cx.shape.name.to_string(),
        })
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: Vec<crate::Value>, _mode: Mode) -> Result<crate::Value, LayerError> {
        let x = crate::layer::single_seq(&self.name, inputs)?;
        Ok(crate::Value::Flat(Flatten::forward(self, x)))
    }
}

impl crate::LayerKind for ActivationLayer {
    type Config = Activation;
    const KERAS_CLASS: &'static str = "Activation";
    const STEM: &'static str = "activation";

    fn channel_role(a: &Activation) -> crate::ChannelRole {
        // Softmax normalises across channels (channels-last) or steps: not channel-local.
        match a {
            Activation::Softmax | Activation::LogSoftmax => crate::ChannelRole::Mixes,
            _ => crate::ChannelRole::Local,
        }
    }
    fn output_shape(
        a: &Activation,
        cx: &crate::ShapeContext,
    ) -> Result<crate::FeatureShape, LayerError> {
        a.validate().map_err(|r| cx.config_error(r))?;
        Ok(cx.input())
    }
    fn build(a: &Activation, cx: &crate::BuildContext) -> Result<Self, LayerError> {
        Ok(Self {
            activation: *a,
            data_format: cx.shape.data_format,
            name: cx.shape.name.to_string(),
        })
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: Vec<crate::Value>, _mode: Mode) -> Result<crate::Value, LayerError> {
        Ok(match crate::layer::single(&self.name, inputs)? {
            crate::Value::Seq(x) => crate::Value::Seq(self.forward_seq(x)),
            crate::Value::Flat(x) => crate::Value::Flat(self.activation.apply(x, 1)),
        })
    }
}
