//! Activation layers with parameters of their own: `ReluLayer` (Keras `ReLU`, with maximum,
//! threshold and negative slope) and `PRelu` (Keras `PReLU`, a learned slope per element).

use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData, activation};
use serde::{Deserialize, Serialize};
use widen_init::{Initializer, KernelLayout};

use crate::layer::{BuildContext, ParamInfo, ShapeContext, unknown_param};
use crate::{DataFormat, FeatureShape, LayerError, Mode, Value};

/// Configuration of a [`ReluLayer`], Keras `ReLU`'s names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ReluConfig {
    /// Largest output (`None`: unbounded); must be ≥ 0.
    #[serde(default)]
    pub max_value: Option<f64>,
    /// Slope below the threshold (default 0); must be ≥ 0.
    #[serde(default)]
    pub negative_slope: f64,
    /// Inputs at or below it are damped (default 0); must be ≥ 0, as Keras requires.
    #[serde(default)]
    pub threshold: f64,
}

impl ReluConfig {
    /// The plain ReLU, `max(x, 0)`.
    pub fn new() -> Self {
        Self::default()
    }
    /// Caps the output at `max_value`.
    pub fn with_max_value(mut self, max_value: f64) -> Self {
        self.max_value = Some(max_value);
        self
    }
    /// Sets the slope below the threshold.
    pub fn with_negative_slope(mut self, negative_slope: f64) -> Self {
        self.negative_slope = negative_slope;
        self
    }
    /// Sets the threshold.
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Checks that every number is finite and non-negative (Keras' rules).
    pub fn validate(&self, name: &str) -> Result<(), LayerError> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if let Some(m) = self.max_value
            && !ok(m)
        {
            return Err(LayerError::config(
                name,
                format!("max_value must be finite and >= 0, got {m}"),
            ));
        }
        for (what, v) in [
            ("negative_slope", self.negative_slope),
            ("threshold", self.threshold),
        ] {
            if !ok(v) {
                return Err(LayerError::config(
                    name,
                    format!("{what} must be finite and >= 0, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Keras `ReLU`: `max_value` at or above it, `x` above `threshold`, `negative_slope · (x −
/// threshold)` at or below it (Keras' code, which gives 0 at exactly `threshold`).
#[derive(Module, Debug)]
pub struct ReluLayer {
    /// The configuration.
    #[module(skip)]
    pub config: ReluConfig,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl ReluLayer {
    /// Applies the function element-wise (Keras' `activations.relu` order of operations).
    pub fn apply<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let ReluConfig {
            max_value,
            negative_slope,
            threshold,
        } = self.config;
        let mut y = if threshold == 0.0 {
            activation::relu(x.clone())
        } else {
            let below = x.clone().lower_equal_scalar(threshold);
            x.clone().mask_fill(below, 0.0)
        };
        if let Some(m) = max_value {
            y = y.clamp_max(m);
        }
        if negative_slope != 0.0 {
            y = y - activation::relu(x.neg().add_scalar(threshold)).mul_scalar(negative_slope);
        }
        y
    }
}

impl crate::LayerKind for ReluLayer {
    type Config = ReluConfig;
    const KERAS_CLASS: &'static str = "ReLU";
    const STEM: &'static str = "re_lu";

    fn channel_role(_: &ReluConfig) -> crate::ChannelRole {
        crate::ChannelRole::Local
    }

    fn output_shape(c: &ReluConfig, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
        c.validate(cx.name)?;
        Ok(cx.input())
    }

    fn build(c: &ReluConfig, cx: &BuildContext) -> Result<Self, LayerError> {
        c.validate(cx.shape.name)?;
        Ok(Self {
            config: *c,
            name: cx.shape.name.to_string(),
        })
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn forward(&self, inputs: Vec<Value>, _mode: Mode) -> Result<Value, LayerError> {
        Ok(match crate::layer::single(&self.name, inputs)? {
            Value::Seq(x) => Value::Seq(self.apply(x)),
            Value::Flat(x) => Value::Flat(self.apply(x)),
        })
    }
}

/// Configuration of a [`PRelu`], Keras `PReLU`'s names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PReluConfig {
    /// Axes sharing one slope, numbered as Keras does: axes of the full input as the user
    /// sees it, batch being axis 0 (so `[1]` shares across the steps of a channels-last
    /// sequence). `None`: no sharing.
    #[serde(default)]
    pub shared_axes: Option<Vec<usize>>,
    /// Initializer of `alpha` (default zeros).
    #[serde(default = "crate::default_bias_init")]
    pub alpha_initializer: Initializer,
}

impl Default for PReluConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl PReluConfig {
    /// No shared axes, alpha starting at 0 (Keras' defaults).
    pub fn new() -> Self {
        Self {
            shared_axes: None,
            alpha_initializer: Initializer::Zeros,
        }
    }
    /// Shares the slope along `axes` (1-based, batch is 0).
    pub fn with_shared_axes(mut self, axes: Vec<usize>) -> Self {
        self.shared_axes = Some(axes);
        self
    }
    /// Sets the initializer of `alpha`.
    pub fn with_alpha_initializer(mut self, init: Initializer) -> Self {
        self.alpha_initializer = init;
        self
    }

    /// `alpha`'s shape in Keras' layout (the input as the user sees it, batch dropped, each
    /// shared axis set to 1), or why the input cannot take it.
    pub fn alpha_shape(&self, cx: &ShapeContext) -> Result<Vec<usize>, LayerError> {
        self.alpha_initializer
            .validate()
            .map_err(|e| cx.config_error(format!("alpha_initializer: {e}")))?;
        // Axes 1.. of the user-visible input; `None` marks a variable length.
        let axes: Vec<(Option<usize>, &str)> = match (cx.input(), cx.data_format) {
            (FeatureShape::Flat { features }, _) => vec![(Some(features), "features")],
            (FeatureShape::Seq { channels, length }, DataFormat::ChannelsLast) => {
                vec![(length, "length"), (Some(channels), "channels")]
            }
            (FeatureShape::Seq { channels, length }, DataFormat::ChannelsFirst) => {
                vec![(Some(channels), "channels"), (length, "length")]
            }
        };
        let shared = self.shared_axes.as_deref().unwrap_or(&[]);
        if let Some(&bad) = shared.iter().find(|&&a| a == 0 || a > axes.len()) {
            return Err(cx.config_error(format!(
                "shared_axes entry {bad} is not an axis of the input (axes 1..={} of a rank-{} \
                 input; axis 0 is the batch)",
                axes.len(),
                axes.len() + 1
            )));
        }
        axes.iter()
            .enumerate()
            .map(|(i, &(size, what))| {
                if shared.contains(&(i + 1)) {
                    Ok(1)
                } else {
                    size.ok_or_else(|| {
                        cx.config_error(format!(
                            "PReLU needs a fixed input length for an unshared {what} axis \
                             (axis {}): the input has a variable length; share it with \
                             shared_axes=[{}] or fix the length",
                            i + 1,
                            i + 1
                        ))
                    })
                }
            })
            .collect()
    }
}

/// Keras `PReLU`: `x` where `x ≥ 0`, `alpha · x` below, computed as Keras does:
/// `relu(x) − alpha · relu(−x)`.
#[derive(Module, Debug)]
pub struct PRelu {
    /// The slopes, held channels-first for the forward pass: `[channels or 1, length or 1]`
    /// for a sequence, `[1, features]` for flat input. [`crate::LayerKind::weight`] and
    /// `set_weight` exchange Keras' layout ([`PReluConfig::alpha_shape`]).
    pub alpha: Param<Tensor<2>>,
    /// `alpha`'s shape in Keras' layout.
    #[module(skip)]
    pub keras_shape: Vec<usize>,
    /// The model's layout (which axis of Keras' `alpha` is the length).
    #[module(skip)]
    pub data_format: DataFormat,
    /// The configuration.
    #[module(skip)]
    pub config: PReluConfig,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

/// Whether Keras' layout of `alpha` has the length before the channels (a channels-last
/// sequence), so that it is held transposed.
fn transposed(keras_shape: &[usize], data_format: DataFormat) -> bool {
    keras_shape.len() == 2 && data_format == DataFormat::ChannelsLast
}

impl PRelu {
    /// Whether `alpha` is held transposed from Keras' layout.
    fn transposed(&self) -> bool {
        transposed(&self.keras_shape, self.data_format)
    }

    /// Keras' layout → the layout held here.
    fn to_internal(&self, keras: Tensor<2>) -> Tensor<2> {
        if self.transposed() {
            keras.swap_dims(0, 1)
        } else {
            keras
        }
    }

    /// The slopes broadcast to `dims`, or an error if `dims` do not fit them.
    fn alpha_for<const D: usize>(&self, dims: [usize; D]) -> Result<Tensor<D>, LayerError> {
        let [a, b] = self.alpha.dims();
        let (wanted, shaped): ([usize; 2], [usize; D]) = match D {
            3 => {
                let mut s = [1; D];
                s[1] = a;
                s[2] = b;
                ([dims[1], dims[2]], s)
            }
            _ => {
                let mut s = [1; D];
                s[D - 1] = b;
                ([1, dims[D - 1]], s)
            }
        };
        let fits = |have: usize, want: usize| have == 1 || have == want;
        if dims[0] == 0 || !(fits(a, wanted[0]) && fits(b, wanted[1])) {
            return Err(LayerError::InputShape {
                layer: self.name.clone(),
                expected: format!("[batch > 0, ...] matching alpha {:?}", self.keras_shape),
                got: dims.to_vec(),
            });
        }
        Ok(self.alpha.val().reshape(shaped).expand(dims))
    }

    /// Applies the function to a channels-first sequence or a flat input.
    pub fn apply<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>, LayerError> {
        let alpha = self.alpha_for(x.dims())?;
        Ok(activation::relu(x.clone()) - alpha * activation::relu(x.neg()))
    }
}

impl crate::LayerKind for PRelu {
    type Config = PReluConfig;
    const KERAS_CLASS: &'static str = "PReLU";
    const STEM: &'static str = "p_re_lu";

    // `channel_role` stays `Mixes`: `alpha` may hold one slope per step and channel (in a 2-D
    // Keras layout that depends on the data format), which a per-channel widening cannot extend.

    fn output_shape(c: &PReluConfig, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
        c.alpha_shape(cx)?;
        Ok(cx.input())
    }

    fn params(c: &PReluConfig, cx: &ShapeContext) -> Vec<ParamInfo> {
        c.alpha_shape(cx)
            .map(|s| vec![ParamInfo::trained("alpha", s)])
            .unwrap_or_default()
    }

    fn build(c: &PReluConfig, cx: &BuildContext) -> Result<Self, LayerError> {
        let name = cx.shape.name;
        let keras_shape = c.alpha_shape(&cx.shape)?;
        let values = c
            .alpha_initializer
            .sample(
                &keras_shape,
                KernelLayout::Keras,
                crate::param_seed(cx.seed, 0),
            )
            .map_err(LayerError::init(name))?;
        let keras_2d = match keras_shape.as_slice() {
            [f] => [1, *f],
            [a, b] => [*a, *b],
            _ => return Err(LayerError::config(name, "alpha must have rank 1 or 2")),
        };
        let keras = Tensor::from_data(TensorData::new(values, keras_2d), cx.device);
        let data_format = cx.shape.data_format;
        let alpha = if transposed(&keras_shape, data_format) {
            keras.swap_dims(0, 1)
        } else {
            keras
        };
        Ok(Self {
            alpha: Param::from_tensor(alpha),
            keras_shape,
            data_format,
            config: c.clone(),
            name: name.to_string(),
        })
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
        if param != "alpha" {
            return Err(unknown_param(&self.name, param));
        }
        let a = self.alpha.val();
        Ok(match self.keras_shape.as_slice() {
            [f] => a.reshape([*f]).into_data(),
            _ if self.transposed() => a.swap_dims(0, 1).into_data(),
            _ => a.into_data(),
        })
    }

    fn set_weight(&mut self, param: &str, data: TensorData) -> Result<(), LayerError> {
        if param != "alpha" {
            return Err(unknown_param(&self.name, param));
        }
        let device = self.alpha.val().device();
        let name = self.name.as_str();
        let keras = match self.keras_shape.as_slice() {
            [f] => crate::weights::upload(name, param, data, [*f], &device)?.reshape([1, *f]),
            [a, b] => crate::weights::upload(name, param, data, [*a, *b], &device)?,
            _ => return Err(LayerError::config(name, "alpha must have rank 1 or 2")),
        };
        self.alpha = Param::from_tensor(self.to_internal(keras));
        Ok(())
    }
}
