//! `BatchNorm1d` with Keras' semantics (and a PyTorch preset): Burn 0.22's BatchNorm follows
//! PyTorch's momentum convention and epsilon, which silently changes a ported Keras model.

use burn::module::{Flag, Module, Param, RunningState};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{LayerError, Mode};

/// Which value the momentum weighs in the moving-statistics update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MomentumOn {
    /// Keras: `moving = moving · momentum + batch · (1 − momentum)`.
    Moving,
    /// PyTorch: `running = running · (1 − momentum) + batch · momentum`.
    Batch,
}

/// Configuration of a [`BatchNorm1d`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchNormConfig {
    /// Momentum of the moving statistics (Keras 0.99; PyTorch 0.1).
    pub momentum: f64,
    /// Added to the variance (Keras 1e-3; PyTorch 1e-5).
    pub epsilon: f64,
    /// Learn an offset `beta` (Keras `center`).
    #[serde(default = "yes")]
    pub center: bool,
    /// Learn a scale `gamma` (Keras `scale`).
    #[serde(default = "yes")]
    pub scale: bool,
    /// The momentum convention.
    pub momentum_on: MomentumOn,
    /// Update the moving variance with the unbiased batch variance (PyTorch) instead of the
    /// biased one (Keras). Normalisation in training always uses the biased variance.
    #[serde(default)]
    pub unbiased_moving_variance: bool,
}

fn yes() -> bool {
    true
}

impl Default for BatchNormConfig {
    fn default() -> Self {
        Self::keras()
    }
}

impl BatchNormConfig {
    /// Keras defaults: momentum 0.99 on the moving value, epsilon 1e-3, biased variance.
    pub fn keras() -> Self {
        Self {
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            momentum_on: MomentumOn::Moving,
            unbiased_moving_variance: false,
        }
    }

    /// PyTorch defaults: momentum 0.1 on the batch value, eps 1e-5, unbiased running variance.
    pub fn pytorch() -> Self {
        Self {
            momentum: 0.1,
            epsilon: 1e-5,
            center: true,
            scale: true,
            momentum_on: MomentumOn::Batch,
            unbiased_moving_variance: true,
        }
    }

    /// Sets the momentum.
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
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

    /// Checks momentum and epsilon.
    pub fn validate(&self, name: &str, channels: usize) -> Result<(), LayerError> {
        if channels == 0 {
            return Err(LayerError::config(name, "input channels must be > 0"));
        }
        if !(self.momentum.is_finite() && (0.0..=1.0).contains(&self.momentum)) {
            return Err(LayerError::config(
                name,
                format!("momentum must be in [0, 1], got {}", self.momentum),
            ));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(LayerError::config(
                name,
                format!("epsilon must be finite and > 0, got {}", self.epsilon),
            ));
        }
        Ok(())
    }

    /// Builds the layer: gamma 1, beta 0, moving mean 0, moving variance 1 (Keras' and
    /// PyTorch's initial values).
    pub fn init(
        &self,
        name: &str,
        channels: usize,
        device: &Device,
    ) -> Result<BatchNorm1d, LayerError> {
        self.validate(name, channels)?;
        Ok(BatchNorm1d {
            gamma: self
                .scale
                .then(|| Param::from_tensor(Tensor::ones([channels], device))),
            beta: self
                .center
                .then(|| Param::from_tensor(Tensor::zeros([channels], device))),
            moving_mean: RunningState::new(Tensor::zeros([channels], device)),
            moving_variance: RunningState::new(Tensor::ones([channels], device)),
            training: Param::from_bool(true),
            config: self.clone(),
            name: name.to_string(),
        })
    }
}

/// Batch normalisation over the channel axis of `[batch, channels, length]` or
/// `[batch, features]`.
#[derive(Module, Debug)]
pub struct BatchNorm1d {
    /// Scale, if `config.scale`.
    pub gamma: Option<Param<Tensor<1>>>,
    /// Offset, if `config.center`.
    pub beta: Option<Param<Tensor<1>>>,
    /// Moving mean used in inference.
    pub moving_mean: RunningState<Tensor<1>>,
    /// Moving variance used in inference.
    pub moving_variance: RunningState<Tensor<1>>,
    /// Cleared by `Module::freeze`: a frozen layer runs in inference mode, as in Keras.
    pub training: Param<Flag>,
    /// The configuration it was built from.
    #[module(skip)]
    pub config: BatchNormConfig,
    /// The layer's name, used in errors.
    #[module(skip)]
    pub name: String,
}

impl BatchNorm1d {
    /// Channels the layer normalises.
    pub fn channels(&self) -> usize {
        self.moving_mean.value_sync().dims()[0]
    }

    /// Whether a training-mode call would use batch statistics (false once frozen).
    pub fn is_trainable(&self) -> bool {
        self.training.is_enabled()
    }

    fn check(&self, dims: &[usize]) -> Result<(), LayerError> {
        let c = self.channels();
        match dims {
            [b, got, rest @ ..] if *b > 0 && rest.iter().all(|&d| d > 0) => {
                if *got == c {
                    Ok(())
                } else {
                    Err(LayerError::ChannelMismatch {
                        layer: self.name.clone(),
                        expected: c,
                        got: *got,
                    })
                }
            }
            _ => Err(LayerError::InputShape {
                layer: self.name.clone(),
                expected: format!("[batch > 0, {c}, ...] with no zero dimension"),
                got: dims.to_vec(),
            }),
        }
    }

    /// Normalises `[batch, channels, length]` (channels-first).
    pub fn forward_seq(&self, x: Tensor<3>, mode: Mode) -> Result<Tensor<3>, LayerError> {
        self.check(&x.dims())?;
        let [b, c, l] = x.dims();
        if mode == Mode::Training && self.is_trainable() {
            // widen-ops' fused CPU kernel where it serves the device: 2 passes forward and 2
            // backward instead of Burn's ~15 (see widen_ops::cpu::norm), the moving statistics
            // updated in the same call.
            let gamma = self.gamma.as_ref().map(Param::val);
            let beta = self.beta.as_ref().map(Param::val);
            let (old_mean, old_var) = (
                self.moving_mean.value_sync(),
                self.moving_variance.value_sync(),
            );
            let (keep, take) = self.momentum_weights();
            let n = b * l;
            let variance_correction = if self.config.unbiased_moving_variance && n > 1 {
                n as f64 / (n as f64 - 1.0)
            } else {
                1.0
            };
            let moving = widen_ops::cpu::MovingUpdate {
                mean: &old_mean,
                variance: &old_var,
                keep,
                take,
                variance_correction,
            };
            if let Some((y, mean, var)) = widen_ops::cpu::batch_norm_train(
                &x,
                gamma.as_ref(),
                beta.as_ref(),
                self.config.epsilon,
                Some(moving),
            ) {
                self.moving_mean.update(mean.detach());
                self.moving_variance.update(var.detach());
                return Ok(y);
            }
        }
        // Mean over length, then over batch: equal-size groups give the same mean, and the
        // two-level sum loses less to float rounding than one long sum (Keras agrees to ~1e-6).
        Ok(self.normalize(x, mode, [1, c, 1], b * l, |t| t.mean_dim(2).mean_dim(0)))
    }

    /// Normalises `[batch, features]`.
    pub fn forward_flat(&self, x: Tensor<2>, mode: Mode) -> Result<Tensor<2>, LayerError> {
        self.check(&x.dims())?;
        let [n, c] = x.dims();
        Ok(self.normalize(x, mode, [1, c], n, |t| t.mean_dim(0)))
    }

    /// `reduce` averages over every axis but the channel one, keeping dims as `stat`.
    fn normalize<const D: usize>(
        &self,
        x: Tensor<D>,
        mode: Mode,
        stat: [usize; D],
        n: usize,
        reduce: impl Fn(Tensor<D>) -> Tensor<D>,
    ) -> Tensor<D> {
        let device = x.device();
        let (mean, var) = if mode == Mode::Training && self.is_trainable() {
            let mean = reduce(x.clone());
            let centered = x.clone() - mean.clone();
            let var = reduce(centered.clone() * centered); // biased, as Keras normalises
            let c: usize = stat.iter().product();
            self.update_moving(mean.clone().reshape([c]), var.clone().reshape([c]), n);
            (mean, var)
        } else {
            (
                self.moving_mean
                    .value_sync()
                    .to_device(&device)
                    .reshape(stat),
                self.moving_variance
                    .value_sync()
                    .to_device(&device)
                    .reshape(stat),
            )
        };
        // TensorFlow's order of operations (`tf.nn.batch_normalization`): one scale and one
        // shift per channel.
        let mut inv = var.add_scalar(self.config.epsilon).sqrt().recip();
        if let Some(gamma) = &self.gamma {
            inv = inv * gamma.val().reshape(stat);
        }
        let shift = match &self.beta {
            Some(beta) => beta.val().reshape(stat) - mean * inv.clone(),
            None => mean.neg() * inv.clone(),
        };
        x * inv + shift
    }

    /// The inference-mode normalisation as one scale and shift per channel (`y = x·scale +
    /// shift`), computed exactly as the inference forward computes them.
    pub fn inference_affine(&self) -> (Tensor<1>, Tensor<1>) {
        let mean = self.moving_mean.value_sync();
        let var = self.moving_variance.value_sync();
        let mut inv = var.add_scalar(self.config.epsilon).sqrt().recip();
        if let Some(gamma) = &self.gamma {
            inv = inv * gamma.val();
        }
        let shift = match &self.beta {
            Some(beta) => beta.val() - mean * inv.clone(),
            None => mean.neg() * inv.clone(),
        };
        (inv, shift)
    }

    /// `(keep, take)`: moving = moving·keep + batch·take.
    fn momentum_weights(&self) -> (f64, f64) {
        let m = self.config.momentum;
        match self.config.momentum_on {
            crate::MomentumOn::Moving => (m, 1.0 - m),
            crate::MomentumOn::Batch => (1.0 - m, m),
        }
    }

    fn update_moving(&self, mean: Tensor<1>, var: Tensor<1>, n: usize) {
        let mean = mean.detach();
        let mut var = var.detach();
        if self.config.unbiased_moving_variance && n > 1 {
            var = var.mul_scalar(n as f64 / (n as f64 - 1.0));
        }
        let device = mean.device();
        let old_mean = self.moving_mean.value_sync().to_device(&device);
        let old_var = self.moving_variance.value_sync().to_device(&device);
        let (keep, take) = self.momentum_weights();
        self.moving_mean
            .update((old_mean.mul_scalar(keep) + mean.mul_scalar(take)).detach());
        self.moving_variance
            .update((old_var.mul_scalar(keep) + var.mul_scalar(take)).detach());
    }
}

impl crate::LayerKind for BatchNorm1d {
    type Config = BatchNormConfig;
    const KERAS_CLASS: &'static str = "BatchNormalization";
    const STEM: &'static str = "batch_normalization";

    fn channel_role(_: &BatchNormConfig) -> crate::ChannelRole {
        crate::ChannelRole::PerChannel
    }
    fn output_shape(
        c: &BatchNormConfig,
        cx: &crate::ShapeContext,
    ) -> Result<crate::FeatureShape, LayerError> {
        c.validate(cx.name, cx.features())?;
        Ok(cx.input())
    }

    fn params(c: &BatchNormConfig, cx: &crate::ShapeContext) -> Vec<crate::ParamInfo> {
        let ch = vec![cx.features()];
        let mut v = Vec::new();
        if c.scale {
            v.push(crate::ParamInfo::trained("gamma", ch.clone()));
        }
        if c.center {
            v.push(crate::ParamInfo::trained("beta", ch.clone()));
        }
        v.push(crate::ParamInfo::statistic("moving_mean", ch.clone()));
        v.push(crate::ParamInfo::statistic("moving_variance", ch));
        v
    }

    fn build(c: &BatchNormConfig, cx: &crate::BuildContext) -> Result<Self, LayerError> {
        c.init(cx.shape.name, cx.shape.features(), cx.device)
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn forward(&self, inputs: Vec<crate::Value>, mode: Mode) -> Result<crate::Value, LayerError> {
        Ok(match crate::layer::single(&self.name, inputs)? {
            crate::Value::Seq(x) => crate::Value::Seq(self.forward_seq(x, mode)?),
            crate::Value::Flat(x) => crate::Value::Flat(self.forward_flat(x, mode)?),
        })
    }

    fn weight(&self, param: &str) -> Result<burn::tensor::TensorData, LayerError> {
        match (param, &self.gamma, &self.beta) {
            ("gamma", Some(g), _) => Ok(g.val().into_data()),
            ("beta", _, Some(b)) => Ok(b.val().into_data()),
            ("moving_mean", ..) => Ok(self.moving_mean.value_sync().into_data()),
            ("moving_variance", ..) => Ok(self.moving_variance.value_sync().into_data()),
            _ => Err(crate::layer::unknown_param(&self.name, param)),
        }
    }

    fn set_weight(
        &mut self,
        param: &str,
        data: burn::tensor::TensorData,
    ) -> Result<(), LayerError> {
        let name = self.name.as_str();
        match (param, &mut self.gamma, &mut self.beta) {
            ("gamma", Some(g), _) => crate::weights::set_param(g, name, param, data),
            ("beta", _, Some(b)) => crate::weights::set_param(b, name, param, data),
            ("moving_mean", ..) => {
                crate::weights::set_state(&mut self.moving_mean, name, param, data)
            }
            ("moving_variance", ..) => {
                crate::weights::set_state(&mut self.moving_variance, name, param, data)
            }
            _ => Err(crate::layer::unknown_param(name, param)),
        }
    }
}
