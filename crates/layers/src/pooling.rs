//! Pooling over length: windowed (`MaxPool1d`, `AvgPool1d`) and global (Burn 0.22 has no global
//! max pool).

use burn::module::Module;
use burn::tensor::ops::{AvgPoolOptions, MaxPoolOptions};
use burn::tensor::{Tensor, module};
use serde::{Deserialize, Serialize};
use widen_ops::conv_output;

use crate::{LayerError, PaddingMode};

/// Configuration of a windowed pooling layer, Keras names and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConfig {
    /// Window length (Keras default 2).
    pub pool_size: usize,
    /// Step; `None` means `pool_size`, as in Keras.
    #[serde(default)]
    pub strides: Option<usize>,
    /// `valid` or `same` (causal is not a pooling mode).
    #[serde(default)]
    pub padding: PaddingMode,
}

impl PoolConfig {
    /// A `pool_size` window, stride `pool_size`, valid padding.
    pub fn new(pool_size: usize) -> Self {
        Self {
            pool_size,
            strides: None,
            padding: PaddingMode::Valid,
        }
    }
    /// Sets the stride.
    pub fn with_strides(mut self, strides: usize) -> Self {
        self.strides = Some(strides);
        self
    }
    /// Sets the padding.
    pub fn with_padding(mut self, padding: PaddingMode) -> Self {
        self.padding = padding;
        self
    }
    /// The effective stride.
    pub fn stride(&self) -> usize {
        self.strides.unwrap_or(self.pool_size)
    }
    /// Checks sizes and padding.
    pub fn validate(&self, name: &str) -> Result<(), LayerError> {
        if self.pool_size == 0 || self.stride() == 0 {
            return Err(LayerError::config(
                name,
                "pool_size and strides must be > 0",
            ));
        }
        if self.padding == PaddingMode::Causal {
            return Err(LayerError::config(
                name,
                "pooling supports padding `valid` or `same`, got `causal`",
            ));
        }
        Ok(())
    }
    /// Output length for an input of `length`.
    pub fn output_length(&self, name: &str, length: usize) -> Result<usize, LayerError> {
        self.validate(name)?;
        conv_output(
            length,
            self.pool_size,
            self.stride(),
            1,
            self.padding.into(),
        )
        .map(|g| g.length_out)
        .map_err(LayerError::ops(name))
    }
    fn geometry(&self, name: &str, length: usize) -> Result<(usize, usize), LayerError> {
        self.validate(name)?;
        conv_output(
            length,
            self.pool_size,
            self.stride(),
            1,
            self.padding.into(),
        )
        .map(|g| (g.left, g.right))
        .map_err(LayerError::ops(name))
    }
}

fn check_seq(name: &str, x: &Tensor<3>) -> Result<[usize; 3], LayerError> {
    let dims = x.dims();
    if dims.contains(&0) {
        return Err(LayerError::InputShape {
            layer: name.to_string(),
            expected: "[batch, channels, length] with no zero dimension".into(),
            got: dims.to_vec(),
        });
    }
    Ok(dims)
}

/// Keras `MaxPooling1D`; `same` pads with -inf, so padding never wins.
#[derive(Module, Debug)]
pub struct MaxPool1d {
    /// The configuration.
    #[module(skip)]
    pub config: PoolConfig,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl MaxPool1d {
    /// Builds the layer.
    pub fn new(name: &str, config: PoolConfig) -> Result<Self, LayerError> {
        config.validate(name)?;
        Ok(Self {
            config,
            name: name.to_string(),
        })
    }
    /// Forward on channels-first `[batch, channels, length]`.
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>, LayerError> {
        let [_, _, l] = check_seq(&self.name, &x)?;
        let (left, right) = self.config.geometry(&self.name, l)?;
        let options = MaxPoolOptions::new([self.config.pool_size])
            .with_stride([self.config.stride()])
            .with_padding_pairs([(left, right)]);
        Ok(module::max_pool1d(x, options))
    }
}

/// Keras `AveragePooling1D`; `same` averages over the real elements only (padding not counted).
#[derive(Module, Debug)]
pub struct AvgPool1d {
    /// The configuration.
    #[module(skip)]
    pub config: PoolConfig,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl AvgPool1d {
    /// Builds the layer.
    pub fn new(name: &str, config: PoolConfig) -> Result<Self, LayerError> {
        config.validate(name)?;
        Ok(Self {
            config,
            name: name.to_string(),
        })
    }
    /// Forward on channels-first `[batch, channels, length]`.
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<3>, LayerError> {
        let [_, _, l] = check_seq(&self.name, &x)?;
        let (left, right) = self.config.geometry(&self.name, l)?;
        // Keras divides by the number of real elements in the window.
        let options = AvgPoolOptions::new([self.config.pool_size])
            .with_stride([self.config.stride()])
            .with_padding_pairs([(left, right)])
            .with_count_include_pad(false);
        Ok(module::avg_pool1d(x, options))
    }
}

/// Keras `GlobalMaxPooling1D`: `[batch, channels, length]` → `[batch, channels]`.
#[derive(Module, Debug)]
pub struct GlobalMaxPool1d {
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl GlobalMaxPool1d {
    /// Forward on channels-first input.
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<2>, LayerError> {
        widen_ops::global_max_pool1d(x).map_err(LayerError::ops(&self.name))
    }
}

/// Keras `GlobalAveragePooling1D`: `[batch, channels, length]` → `[batch, channels]`.
#[derive(Module, Debug)]
pub struct GlobalAvgPool1d {
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl GlobalAvgPool1d {
    /// Forward on channels-first input.
    pub fn forward(&self, x: Tensor<3>) -> Result<Tensor<2>, LayerError> {
        widen_ops::global_avg_pool1d(x).map_err(LayerError::ops(&self.name))
    }
}

fn windowed_shape(
    c: &PoolConfig,
    cx: &crate::ShapeContext,
) -> Result<crate::FeatureShape, LayerError> {
    let (channels, length) = cx.seq()?;
    c.validate(cx.name)?;
    let length = length.map(|l| c.output_length(cx.name, l)).transpose()?;
    Ok(crate::FeatureShape::Seq { channels, length })
}

fn global_shape(cx: &crate::ShapeContext) -> Result<crate::FeatureShape, LayerError> {
    let (channels, _) = cx.seq()?;
    Ok(crate::FeatureShape::Flat { features: channels })
}

/// The `LayerKind` of a pooling layer: its shape rule, how it is built and what it returns.
macro_rules! pool_kind {
    ($ty:ident, $config:ty, $class:literal, $stem:literal, $shape:expr, $build:expr, $out:ident) => {
        impl crate::LayerKind for $ty {
            type Config = $config;
            const KERAS_CLASS: &'static str = $class;
            const STEM: &'static str = $stem;

            fn channel_role(_: &$config) -> crate::ChannelRole {
                crate::ChannelRole::Local
            }
            fn output_shape(
                c: &$config,
                cx: &crate::ShapeContext,
            ) -> Result<crate::FeatureShape, LayerError> {
                $shape(c, cx)
            }
            fn build(c: &$config, cx: &crate::BuildContext) -> Result<Self, LayerError> {
                $build(c, cx.shape.name)
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
                Ok(crate::Value::$out($ty::forward(self, x)?))
            }
        }
    };
}

fn global_shape_of(_: &(), cx: &crate::ShapeContext) -> Result<crate::FeatureShape, LayerError> {
    global_shape(cx)
}

pool_kind!(
    MaxPool1d,
    PoolConfig,
    "MaxPooling1D",
    "max_pooling1d",
    windowed_shape,
    |c: &PoolConfig, name: &str| MaxPool1d::new(name, c.clone()),
    Seq
);
pool_kind!(
    AvgPool1d,
    PoolConfig,
    "AveragePooling1D",
    "average_pooling1d",
    windowed_shape,
    |c: &PoolConfig, name: &str| AvgPool1d::new(name, c.clone()),
    Seq
);
pool_kind!(
    GlobalMaxPool1d,
    (),
    "GlobalMaxPooling1D",
    "global_max_pooling1d",
    global_shape_of,
    |_: &(), name: &str| Ok(GlobalMaxPool1d {
        name: name.to_string()
    }),
    Flat
);
pool_kind!(
    GlobalAvgPool1d,
    (),
    "GlobalAveragePooling1D",
    "global_average_pooling1d",
    global_shape_of,
    |_: &(), name: &str| Ok(GlobalAvgPool1d {
        name: name.to_string()
    }),
    Flat
);
