//! `Normalization`: Keras' per-channel standardisation layer, `(x − mean) / sqrt(variance)`.
//! widen uses it to bring new input channels of another magnitude to the scale the trained
//! kernels expect (the first cause of erratic training after widening).

use burn::module::{Module, RunningState};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::LayerError;

/// Per-channel statistics. Channels with `variance = 1, mean = 0` pass through unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormalizationConfig {
    /// Per-channel mean (empty: zeros).
    #[serde(default)]
    pub mean: Vec<f32>,
    /// Per-channel variance (empty: ones).
    #[serde(default)]
    pub variance: Vec<f32>,
}

impl NormalizationConfig {
    /// Identity statistics (filled from data or a checkpoint later).
    pub fn identity() -> Self {
        Self {
            mean: Vec::new(),
            variance: Vec::new(),
        }
    }

    /// Checks the statistics against `channels`.
    pub fn validate(&self, name: &str, channels: usize) -> Result<(), LayerError> {
        for (what, v) in [("mean", &self.mean), ("variance", &self.variance)] {
            if !v.is_empty() && v.len() != channels {
                return Err(LayerError::config(
                    name,
                    format!("{what} has {} entries, expected {channels}", v.len()),
                ));
            }
            if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
                return Err(LayerError::config(name, format!("{what} holds {bad}")));
            }
        }
        if let Some(bad) = self.variance.iter().find(|&&v| v < 0.0) {
            return Err(LayerError::config(name, format!("variance {bad} < 0")));
        }
        Ok(())
    }

    /// Builds the layer for `channels`.
    pub fn init(
        &self,
        name: &str,
        channels: usize,
        device: &Device,
    ) -> Result<Normalization, LayerError> {
        self.validate(name, channels)?;
        let fill = |v: &Vec<f32>, default: f32| {
            let values = if v.is_empty() {
                vec![default; channels]
            } else {
                v.clone()
            };
            RunningState::new(Tensor::from_data(
                TensorData::new(values, [channels]),
                device,
            ))
        };
        Ok(Normalization {
            mean: fill(&self.mean, 0.0),
            variance: fill(&self.variance, 1.0),
            name: name.to_string(),
        })
    }
}

/// Keras `Normalization` over the channel axis. Its statistics are state, not parameters: no
/// gradient reaches them and freezing or unfreezing the model leaves them alone.
#[derive(Module, Debug)]
pub struct Normalization {
    /// `[channels]`.
    pub mean: RunningState<Tensor<1>>,
    /// `[channels]`.
    pub variance: RunningState<Tensor<1>>,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl Normalization {
    /// Channels the layer was built for.
    pub fn channels(&self) -> usize {
        self.mean.value_sync().dims()[0]
    }

    /// `[batch, channels, length]` → same shape, standardised per channel.
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>, LayerError> {
        let [b, c, l] = x.dims();
        if c != self.channels() {
            return Err(LayerError::ChannelMismatch {
                layer: self.name.clone(),
                expected: self.channels(),
                got: c,
            });
        }
        if b == 0 || l == 0 {
            return Err(LayerError::InputShape {
                layer: self.name.clone(),
                expected: format!("[batch > 0, {c}, length > 0]"),
                got: vec![b, c, l],
            });
        }
        // Keras: divide by max(sqrt(variance), epsilon) with epsilon = 1e-7 (backend epsilon).
        let std = self.variance.value_sync().sqrt().clamp_min(1e-7);
        let mean = self.mean.value_sync().reshape([1, c, 1]);
        Ok((x - mean) / std.reshape([1, c, 1]))
    }
}

impl crate::LayerKind for Normalization {
    type Config = NormalizationConfig;
    const KERAS_CLASS: &'static str = "Normalization";
    const STEM: &'static str = "normalization";

    fn channel_role(_: &NormalizationConfig) -> crate::ChannelRole {
        crate::ChannelRole::PerChannel
    }
    fn output_shape(
        c: &NormalizationConfig,
        cx: &crate::ShapeContext,
    ) -> Result<crate::FeatureShape, LayerError> {
        let (channels, _) = cx.seq()?;
        c.validate(cx.name, channels)?;
        Ok(cx.input())
    }

    fn params(_: &NormalizationConfig, cx: &crate::ShapeContext) -> Vec<crate::ParamInfo> {
        let ch = vec![cx.features()];
        vec![
            crate::ParamInfo::statistic("mean", ch.clone()),
            crate::ParamInfo::statistic("variance", ch),
        ]
    }

    fn build(c: &NormalizationConfig, cx: &crate::BuildContext) -> Result<Self, LayerError> {
        c.init(cx.shape.name, cx.shape.features(), cx.device)
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
        Ok(crate::Value::Seq(Normalization::forward(self, x)?))
    }

    fn weight(&self, param: &str) -> Result<burn::tensor::TensorData, LayerError> {
        match param {
            "mean" => Ok(self.mean.value_sync().into_data()),
            "variance" => Ok(self.variance.value_sync().into_data()),
            _ => Err(crate::layer::unknown_param(&self.name, param)),
        }
    }

    fn set_weight(
        &mut self,
        param: &str,
        data: burn::tensor::TensorData,
    ) -> Result<(), LayerError> {
        let name = self.name.as_str();
        match param {
            "mean" => crate::weights::set_state(&mut self.mean, name, param, data),
            "variance" => crate::weights::set_state(&mut self.variance, name, param, data),
            _ => Err(crate::layer::unknown_param(name, param)),
        }
    }
}
