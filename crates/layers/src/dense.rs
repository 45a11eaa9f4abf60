//! `Dense`: Keras' fully connected layer on `[batch, features]`.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use widen_init::{Initializer, KernelLayout};

use crate::{Activation, LayerError};

/// Configuration of a [`Dense`] layer, Keras names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenseConfig {
    /// Output features.
    pub units: usize,
    /// Activation (default linear).
    #[serde(default)]
    pub activation: Activation,
    /// Bias (default true).
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Kernel initializer (Keras default glorot_uniform).
    #[serde(default = "crate::default_kernel_init")]
    pub kernel_initializer: Initializer,
    /// Bias initializer (Keras default zeros).
    #[serde(default = "crate::default_bias_init")]
    pub bias_initializer: Initializer,
}

fn yes() -> bool {
    true
}

impl DenseConfig {
    /// `units` outputs, Keras defaults.
    pub fn new(units: usize) -> Self {
        Self {
            units,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::glorot_uniform(),
            bias_initializer: Initializer::Zeros,
        }
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

    /// Builds the layer for `in_features` inputs.
    pub fn init(
        &self,
        name: &str,
        in_features: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Dense, LayerError> {
        if self.units == 0 || in_features == 0 {
            return Err(LayerError::config(
                name,
                format!(
                    "units and input features must be > 0, got {} and {in_features}",
                    self.units
                ),
            ));
        }
        self.activation
            .validate()
            .map_err(|reason| LayerError::config(name, reason))?;
        let shape = [in_features, self.units];
        let (weight, bias) = crate::kernel_and_bias(
            name,
            &self.kernel_initializer,
            self.use_bias.then_some(&self.bias_initializer),
            shape,
            KernelLayout::Keras,
            seed,
            device,
        )?;
        Ok(Dense {
            weight,
            bias,
            config: self.clone(),
            name: name.to_string(),
        })
    }
}

/// A fully connected layer; the weight is `[in_features, units]`, Keras' layout.
#[derive(Module, Debug)]
pub struct Dense {
    /// `[in_features, units]`.
    pub weight: Param<Tensor<2>>,
    /// `[units]`.
    pub bias: Option<Param<Tensor<1>>>,
    /// The configuration.
    #[module(skip)]
    pub config: DenseConfig,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl Dense {
    /// Input features the layer was built for.
    pub fn in_features(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `[batch, in_features]` → `[batch, units]`.
    pub fn forward(&self, x: Tensor<2>) -> Result<Tensor<2>, LayerError> {
        let [b, f] = x.dims();
        if b == 0 || f != self.in_features() {
            return Err(LayerError::InputShape {
                layer: self.name.clone(),
                expected: format!("[batch > 0, {}]", self.in_features()),
                got: vec![b, f],
            });
        }
        let mut y = x.matmul(self.weight.val());
        if let Some(bias) = &self.bias {
            y = y + bias.val().reshape([1, self.config.units]);
        }
        Ok(self.config.activation.apply(y, 1))
    }
}

impl crate::LayerKind for Dense {
    type Config = DenseConfig;
    const KERAS_CLASS: &'static str = "Dense";
    const STEM: &'static str = "dense";

    fn input_kernel(c: &DenseConfig, _: &crate::ShapeContext) -> Option<crate::InputKernel> {
        Some(crate::InputKernel {
            param: "weight",
            outer: 1,
            inner: c.units,
            keras_layout: true,
        })
    }
    fn output_shape(
        c: &DenseConfig,
        cx: &crate::ShapeContext,
    ) -> Result<crate::FeatureShape, LayerError> {
        match cx.input() {
            crate::FeatureShape::Flat { .. } if c.units > 0 => {
                c.activation
                    .validate()
                    .map_err(|r| LayerError::config(cx.name, r))?;
                Ok(crate::FeatureShape::Flat { features: c.units })
            }
            crate::FeatureShape::Flat { .. } => Err(cx.config_error("units must be > 0")),
            crate::FeatureShape::Seq { channels, length } => Err(LayerError::InputShape {
                layer: cx.name.to_string(),
                expected: "flat features [batch, features] (add Flatten or global pooling)".into(),
                got: vec![length.unwrap_or(0), channels],
            }),
        }
    }

    fn params(c: &DenseConfig, cx: &crate::ShapeContext) -> Vec<crate::ParamInfo> {
        let mut v = vec![crate::ParamInfo::trained(
            "weight",
            vec![cx.features(), c.units],
        )];
        if c.use_bias {
            v.push(crate::ParamInfo::trained("bias", vec![c.units]));
        }
        v
    }

    fn build(c: &DenseConfig, cx: &crate::BuildContext) -> Result<Self, LayerError> {
        c.init(cx.shape.name, cx.shape.features(), cx.seed, cx.device)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn forward(
        &self,
        inputs: Vec<crate::Value>,
        _mode: crate::Mode,
    ) -> Result<crate::Value, LayerError> {
        let x = crate::layer::single_flat(&self.name, inputs)?;
        Ok(crate::Value::Flat(Dense::forward(self, x)?))
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
