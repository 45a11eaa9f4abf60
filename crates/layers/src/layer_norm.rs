//! `LayerNorm`: Keras `LayerNormalization` over the channel axis (each sample and step
//! normalised on its own, biased variance, learned `gamma` and `beta`).

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::layer::{BuildContext, ParamInfo, ShapeContext, unknown_param};
use crate::{DataFormat, FeatureShape, LayerError, Mode, Value};

fn yes() -> bool {
    true
}

fn minus_one() -> i64 {
    -1
}

fn default_epsilon() -> f64 {
    1e-3
}

/// Configuration of a [`LayerNorm`], Keras `LayerNormalization`'s names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerNormConfig {
    /// The axis normalised over, numbered as Keras does on the input the user sees (batch is
    /// 0, negatives count from the end; default -1). Only the channel (feature) axis is
    /// supported: -1 or 2 for a channels-last sequence, 1 or -2 for a channels-first one, 1 or
    /// -1 for flat input.
    #[serde(default = "minus_one")]
    pub axis: i64,
    /// Added to the variance (default 1e-3).
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// Learn an offset `beta` (default true).
    #[serde(default = "yes")]
    pub center: bool,
    /// Learn a scale `gamma` (default true).
    #[serde(default = "yes")]
    pub scale: bool,
    /// Keras' deprecated RMS scaling; not supported (refused when true).
    #[serde(default)]
    pub rms_scaling: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerNormConfig {
    /// Keras defaults: last axis, epsilon 1e-3, center and scale.
    pub fn new() -> Self {
        Self {
            axis: -1,
            epsilon: 1e-3,
            center: true,
            scale: true,
            rms_scaling: false,
        }
    }
    /// Sets the axis (Keras numbering).
    pub fn with_axis(mut self, axis: i64) -> Self {
        self.axis = axis;
        self
    }
    /// Sets epsilon.
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    /// Turns the learned offset on or off.
    pub fn with_center(mut self, center: bool) -> Self {
        self.center = center;
        self
    }
    /// Turns the learned scale on or off.
    pub fn with_scale(mut self, scale: bool) -> Self {
        self.scale = scale;
        self
    }

    /// Checks the options against the input and returns the channels normalised over.
    pub fn validate(&self, cx: &ShapeContext) -> Result<usize, LayerError> {
        if self.rms_scaling {
            return Err(cx.config_error(
                "rms_scaling=true is not supported (Keras deprecates it; use center/scale)",
            ));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(cx.config_error(format!(
                "epsilon must be finite and > 0, got {}",
                self.epsilon
            )));
        }
        let (rank, channel_axis, channels) = match (cx.input(), cx.data_format) {
            (FeatureShape::Flat { features }, _) => (2, 1, features),
            (FeatureShape::Seq { channels, .. }, DataFormat::ChannelsLast) => (3, 2, channels),
            (FeatureShape::Seq { channels, .. }, DataFormat::ChannelsFirst) => (3, 1, channels),
        };
        let axis = if self.axis < 0 {
            self.axis + rank
        } else {
            self.axis
        };
        if axis != channel_axis {
            return Err(cx.config_error(format!(
                "axis={} is not supported: only the channel axis ({channel_axis} or {}) of this \
                 rank-{rank} input can be normalised over",
                self.axis,
                channel_axis - rank
            )));
        }
        if channels == 0 {
            return Err(cx.config_error("input channels must be > 0"));
        }
        Ok(channels)
    }

    /// Builds the layer for `channels` features: gamma 1, beta 0 (Keras' initial values).
    pub fn init(
        &self,
        name: &str,
        channels: usize,
        device: &Device,
    ) -> Result<LayerNorm, LayerError> {
        if channels == 0 {
            return Err(LayerError::config(name, "input channels must be > 0"));
        }
        Ok(LayerNorm {
            gamma: self
                .scale
                .then(|| Param::from_tensor(Tensor::ones([channels], device))),
            beta: self
                .center
                .then(|| Param::from_tensor(Tensor::zeros([channels], device))),
            channels,
            config: *self,
            name: name.to_string(),
        })
    }
}

/// Layer normalisation over the channels of `[batch, channels, length]` (at each step) or the
/// features of `[batch, features]`.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// Scale `[channels]`, if `config.scale`.
    pub gamma: Option<Param<Tensor<1>>>,
    /// Offset `[channels]`, if `config.center`.
    pub beta: Option<Param<Tensor<1>>>,
    /// Channels normalised over.
    #[module(skip)]
    pub channels: usize,
    /// The configuration.
    #[module(skip)]
    pub config: LayerNormConfig,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl LayerNorm {
    /// Normalises over axis 1 of `x` (channels-first sequence or flat features), in
    /// TensorFlow's order of operations: `x · inv + (beta − mean · inv)` with `inv = gamma /
    /// sqrt(var + eps)`.
    pub fn apply<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>, LayerError> {
        let dims = x.dims();
        if dims[1] != self.channels {
            return Err(LayerError::ChannelMismatch {
                layer: self.name.clone(),
                expected: self.channels,
                got: dims[1],
            });
        }
        if dims.contains(&0) {
            return Err(LayerError::InputShape {
                layer: self.name.clone(),
                expected: format!("[batch > 0, {}, ...] with no zero dimension", self.channels),
                got: dims.to_vec(),
            });
        }
        let mut stat = [1; D];
        stat[1] = self.channels;
        let mean = x.clone().mean_dim(1);
        let centered = x.clone() - mean.clone();
        let var = (centered.clone() * centered).mean_dim(1);
        let mut inv = var.add_scalar(self.config.epsilon).sqrt().recip();
        if let Some(gamma) = &self.gamma {
            inv = inv * gamma.val().reshape(stat);
        }
        let shift = match &self.beta {
            Some(beta) => beta.val().reshape(stat) - mean * inv.clone(),
            None => mean.neg() * inv.clone(),
        };
        Ok(x * inv + shift)
    }
}

impl crate::LayerKind for LayerNorm {
    type Config = LayerNormConfig;
    const KERAS_CLASS: &'static str = "LayerNormalization";
    const STEM: &'static str = "layer_normalization";

    fn output_shape(c: &LayerNormConfig, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
        c.validate(cx)?;
        Ok(cx.input())
    }

    fn params(c: &LayerNormConfig, cx: &ShapeContext) -> Vec<ParamInfo> {
        let ch = vec![cx.features()];
        let mut v = Vec::new();
        if c.scale {
            v.push(ParamInfo::trained("gamma", ch.clone()));
        }
        if c.center {
            v.push(ParamInfo::trained("beta", ch));
        }
        v
    }

    fn build(c: &LayerNormConfig, cx: &BuildContext) -> Result<Self, LayerError> {
        let channels = c.validate(&cx.shape)?;
        c.init(cx.shape.name, channels, cx.device)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn forward(&self, inputs: Vec<Value>, _mode: Mode) -> Result<Value, LayerError> {
        Ok(match crate::layer::single(&self.name, inputs)? {
            Value::Seq(x) => Value::Seq(self.apply(x)?),
            Value::Flat(x) => Value::Flat(self.apply(x)?),
        })
    }

    fn weight(&self, param: &str) -> Result<TensorData, LayerError> {
        match (param, &self.gamma, &self.beta) {
            ("gamma", Some(g), _) => Ok(g.val().into_data()),
            ("beta", _, Some(b)) => Ok(b.val().into_data()),
            _ => Err(unknown_param(&self.name, param)),
        }
    }

    fn set_weight(&mut self, param: &str, data: TensorData) -> Result<(), LayerError> {
        let name = self.name.as_str();
        match (param, &mut self.gamma, &mut self.beta) {
            ("gamma", Some(g), _) => crate::weights::set_param(g, name, param, data),
            ("beta", _, Some(b)) => crate::weights::set_param(b, name, param, data),
            _ => Err(unknown_param(name, param)),
        }
    }
}
