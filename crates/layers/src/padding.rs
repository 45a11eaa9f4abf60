//! Sequence layers that work on the length axis: `ZeroPadding1D`, `Cropping1D`,
//! `UpSampling1D`, and `SpatialDropout1D` (drops whole channels).

use burn::module::{Flag, Module, Param};
use burn::tensor::ops::PadMode;
use burn::tensor::{Distribution, Tensor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::layer::{BuildContext, ChannelRole, LayerKind, ShapeContext};
use crate::{FeatureShape, LayerError, Mode, Value};

/// Reads Keras' `int | (int, int)`: one integer applies to both ends.
fn pair<'de, D: Deserializer<'de>>(d: D) -> Result<[usize; 2], D::Error> {
    struct PairVisitor;
    impl<'de> serde::de::Visitor<'de> for PairVisitor {
        type Value = [usize; 2];
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a non-negative integer or a pair [before, after]")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            let v = usize::try_from(v).map_err(E::custom)?;
            Ok([v, v])
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            let v = usize::try_from(v)
                .map_err(|_| E::custom(format!("expected a non-negative integer, got {v}")))?;
            Ok([v, v])
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            use serde::de::Error;
            let before = seq
                .next_element()?
                .ok_or_else(|| A::Error::invalid_length(0, &self))?;
            let after = seq
                .next_element()?
                .ok_or_else(|| A::Error::invalid_length(1, &self))?;
            if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                return Err(A::Error::invalid_length(3, &self));
            }
            Ok([before, after])
        }
    }
    d.deserialize_any(PairVisitor)
}

fn one_each() -> [usize; 2] {
    [1, 1]
}

/// Configuration of a [`ZeroPadding1d`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZeroPaddingConfig {
    /// Zero steps added before and after the sequence (Keras default `(1, 1)`; a single
    /// integer is read as both).
    #[serde(default = "one_each", deserialize_with = "pair")]
    pub padding: [usize; 2],
}

impl Default for ZeroPaddingConfig {
    fn default() -> Self {
        Self { padding: [1, 1] }
    }
}

/// Keras `ZeroPadding1D`: zeros added at both ends of the length axis.
#[derive(Module, Debug)]
pub struct ZeroPadding1d {
    /// Steps added before and after.
    #[module(skip)]
    pub padding: [usize; 2],
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl LayerKind for ZeroPadding1d {
    type Config = ZeroPaddingConfig;
    const KERAS_CLASS: &'static str = "ZeroPadding1D";
    const STEM: &'static str = "zero_padding1d";

    fn channel_role(_: &ZeroPaddingConfig) -> ChannelRole {
        ChannelRole::Local
    }
    fn output_shape(c: &ZeroPaddingConfig, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
        let (channels, length) = cx.seq()?;
        let [before, after] = c.padding;
        let length = length
            .map(|l| {
                l.checked_add(before)
                    .and_then(|l| l.checked_add(after))
                    .ok_or_else(|| cx.config_error("the padded length overflows a size"))
            })
            .transpose()?;
        Ok(FeatureShape::Seq { channels, length })
    }
    fn build(c: &ZeroPaddingConfig, cx: &BuildContext) -> Result<Self, LayerError> {
        Self::output_shape(c, &cx.shape)?;
        Ok(Self {
            padding: c.padding,
            name: cx.shape.name.to_string(),
        })
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: Vec<Value>, _mode: Mode) -> Result<Value, LayerError> {
        let x = crate::layer::single_seq(&self.name, inputs)?;
        let [before, after] = self.padding;
        if before == 0 && after == 0 {
            return Ok(Value::Seq(x));
        }
        Ok(Value::Seq(x.pad([(before, after)], PadMode::Constant(0.0))))
    }
}

/// Configuration of a [`Cropping1d`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CroppingConfig {
    /// Steps removed from the start and the end (Keras default `(1, 1)`; a single integer is
    /// read as both).
    #[serde(default = "one_each", deserialize_with = "pair")]
    pub cropping: [usize; 2],
}

impl Default for CroppingConfig {
    fn default() -> Self {
        Self { cropping: [1, 1] }
    }
}

/// Keras `Cropping1D`: steps removed at both ends of the length axis; at least one must stay.
#[derive(Module, Debug)]
pub struct Cropping1d {
    /// Steps removed from the start and the end.
    #[module(skip)]
    pub cropping: [usize; 2],
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl CroppingConfig {
    /// Steps removed in all, or an error if that overflows.
    fn total(&self, name: &str) -> Result<usize, LayerError> {
        let [before, after] = self.cropping;
        before
            .checked_add(after)
            .ok_or_else(|| LayerError::config(name, "the cropping overflows a size"))
    }
}

impl LayerKind for Cropping1d {
    type Config = CroppingConfig;
    const KERAS_CLASS: &'static str = "Cropping1D";
    const STEM: &'static str = "cropping1d";

    fn channel_role(_: &CroppingConfig) -> ChannelRole {
        ChannelRole::Local
    }
    fn output_shape(c: &CroppingConfig, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
        let (channels, length) = cx.seq()?;
        let total = c.total(cx.name)?;
        let length = match length {
            Some(l) if l > total => Some(l - total),
            Some(l) => {
                return Err(cx.config_error(format!(
                    "cropping {:?} removes {total} steps from a length of {l}: at least one \
                     step must remain",
                    c.cropping
                )));
            }
            None => None,
        };
        Ok(FeatureShape::Seq { channels, length })
    }
    fn build(c: &CroppingConfig, cx: &BuildContext) -> Result<Self, LayerError> {
        Self::output_shape(c, &cx.shape)?;
        Ok(Self {
            cropping: c.cropping,
            name: cx.shape.name.to_string(),
        })
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: Vec<Value>, _mode: Mode) -> Result<Value, LayerError> {
        let x = crate::layer::single_seq(&self.name, inputs)?;
        let [b, c, l] = x.dims();
        let total = CroppingConfig {
            cropping: self.cropping,
        }
        .total(&self.name)?;
        if l <= total {
            return Err(LayerError::InputShape {
                layer: self.name.clone(),
                expected: format!(
                    "[batch, {c}, length > {total}] (cropping {:?} must leave a step)",
                    self.cropping
                ),
                got: vec![b, c, l],
            });
        }
        Ok(Value::Seq(x.narrow(2, self.cropping[0], l - total)))
    }
}

/// Configuration of an [`UpSampling1d`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpSamplingConfig {
    /// How many times each step is repeated, ≥ 1 (Keras default 2).
    #[serde(default = "two")]
    pub size: usize,
}

fn two() -> usize {
    2
}

impl Default for UpSamplingConfig {
    fn default() -> Self {
        Self { size: 2 }
    }
}

/// Keras `UpSampling1D`: each step repeated `size` times (`[a, b]` → `[a, a, b, b]`).
#[derive(Module, Debug)]
pub struct UpSampling1d {
    /// Repeats per step.
    #[module(skip)]
    pub size: usize,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl LayerKind for UpSampling1d {
    type Config = UpSamplingConfig;
    const KERAS_CLASS: &'static str = "UpSampling1D";
    const STEM: &'static str = "up_sampling1d";

    fn channel_role(_: &UpSamplingConfig) -> ChannelRole {
        ChannelRole::Local
    }
    fn output_shape(c: &UpSamplingConfig, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
        let (channels, length) = cx.seq()?;
        if c.size == 0 {
            return Err(cx.config_error("UpSampling1D size must be ≥ 1, got 0"));
        }
        let length = length
            .map(|l| {
                l.checked_mul(c.size)
                    .ok_or_else(|| cx.config_error("the upsampled length overflows a size"))
            })
            .transpose()?;
        Ok(FeatureShape::Seq { channels, length })
    }
    fn build(c: &UpSamplingConfig, cx: &BuildContext) -> Result<Self, LayerError> {
        Self::output_shape(c, &cx.shape)?;
        Ok(Self {
            size: c.size,
            name: cx.shape.name.to_string(),
        })
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: Vec<Value>, _mode: Mode) -> Result<Value, LayerError> {
        let x = crate::layer::single_seq(&self.name, inputs)?;
        if self.size == 1 {
            return Ok(Value::Seq(x));
        }
        let [b, c, l] = x.dims();
        let out = l.checked_mul(self.size).ok_or_else(|| {
            LayerError::config(&self.name, "the upsampled length overflows a size")
        })?;
        let y: Tensor<4> = x.unsqueeze_dim::<4>(3).repeat_dim(3, self.size);
        Ok(Value::Seq(y.reshape([b, c, out])))
    }
}

/// Configuration of a [`SpatialDropout1d`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpatialDropoutConfig {
    /// Fraction of channels zeroed in training, in `[0, 1)`.
    pub rate: f64,
}

impl SpatialDropoutConfig {
    /// Checks the rate.
    fn validate(&self, name: &str) -> Result<(), LayerError> {
        if self.rate.is_finite() && (0.0..1.0).contains(&self.rate) {
            Ok(())
        } else {
            Err(LayerError::config(
                name,
                format!("spatial dropout rate must be in [0, 1), got {}", self.rate),
            ))
        }
    }
}

/// Keras `SpatialDropout1D`: in training, whole channels of each sample are zeroed with
/// probability `rate` and the kept ones scaled by `1 / (1 − rate)`; identity in inference or
/// when frozen.
#[derive(Module, Debug)]
pub struct SpatialDropout1d {
    /// Cleared by `Module::freeze`.
    pub training: Param<Flag>,
    /// The rate.
    #[module(skip)]
    pub rate: f64,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl SpatialDropout1d {
    /// Applies spatial dropout to a channels-first sequence in training mode; identity
    /// otherwise.
    pub fn forward_seq(&self, x: Tensor<3>, mode: Mode) -> Tensor<3> {
        if mode == Mode::Inference || !self.training.is_enabled() || self.rate == 0.0 {
            return x;
        }
        let keep = 1.0 - self.rate;
        let [b, c, l] = x.dims();
        let mask = Tensor::<3>::random(
            [b, c, 1],
            Distribution::Bernoulli(keep),
            (&x.device(), x.dtype()),
        );
        x * mask.expand([b, c, l]) / keep
    }
}

impl LayerKind for SpatialDropout1d {
    type Config = SpatialDropoutConfig;
    const KERAS_CLASS: &'static str = "SpatialDropout1D";
    const STEM: &'static str = "spatial_dropout1d";

    fn channel_role(_: &SpatialDropoutConfig) -> ChannelRole {
        ChannelRole::Local
    }
    fn output_shape(
        c: &SpatialDropoutConfig,
        cx: &ShapeContext,
    ) -> Result<FeatureShape, LayerError> {
        cx.seq()?;
        c.validate(cx.name)?;
        Ok(cx.input())
    }
    fn build(c: &SpatialDropoutConfig, cx: &BuildContext) -> Result<Self, LayerError> {
        c.validate(cx.shape.name)?;
        Ok(Self {
            training: Param::from_bool(true),
            rate: c.rate,
            name: cx.shape.name.to_string(),
        })
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: Vec<Value>, mode: Mode) -> Result<Value, LayerError> {
        let x = crate::layer::single_seq(&self.name, inputs)?;
        Ok(Value::Seq(self.forward_seq(x, mode)))
    }
}
