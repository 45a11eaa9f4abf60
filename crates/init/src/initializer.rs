//! The initializers and their host-side sampling.
//!
//! An [`Initializer`] is plain data (`Copy`, comparable); [`Initializer::sample`] validates it
//! against a shape, computes fans through [`Fans::from_shape`] and draws the values on the host.
//! Uploading to a Burn device ([`Initializer::tensor`], [`Initializer::param`]) is a thin layer on
//! top, kept in its own module.

use crate::dirac::dirac;
use crate::error::InitError;
use crate::fans::{FanMode, Fans, KernelLayout, check_shape};
use crate::orthogonal::{matrix_dims, orthogonal};
use crate::rng::{HostRng, TRUNCATED_NORMAL_STD};

/// The distribution a [`VarianceScaling`] initializer draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Distribution {
    /// `U(-limit, limit)` with `limit = sqrt(3·scale/n)`, which has variance `scale/n`.
    Uniform,
    /// `N(0, sqrt(scale/n))`, not truncated.
    Normal,
    /// `N(0, σ)` cut at `±2σ`, with `σ = sqrt(scale/n) / 0.8796…` so that the standard deviation
    /// after truncation is `sqrt(scale/n)` (Keras' `"truncated_normal"`).
    TruncatedNormal,
}

/// Keras' `VarianceScaling`: values with variance `scale / n`, `n` chosen by [`FanMode`].
///
/// Glorot, He and LeCun initializations are all instances; see the preset constructors on
/// [`Initializer`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct VarianceScaling {
    /// Target variance times `n`; must be finite and positive.
    pub scale: f64,
    /// Which fan is `n`.
    pub mode: FanMode,
    /// The shape of the distribution.
    pub distribution: Distribution,
}

impl VarianceScaling {
    /// A variance-scaling initializer; parameters are checked when sampling.
    pub fn new(scale: f64, mode: FanMode, distribution: Distribution) -> Self {
        Self {
            scale,
            mode,
            distribution,
        }
    }

    /// The standard deviation `sqrt(scale / n)` the drawn values have for `fans`.
    ///
    /// # Errors
    ///
    /// [`InitError::NonFinite`] / [`InitError::OutOfRange`] for a bad `scale`, and
    /// [`InitError::ZeroFan`] when the fan the mode uses is zero.
    pub fn target_std(&self, fans: Fans) -> Result<f64, InitError> {
        positive("scale", self.scale)?;
        let n = fans.scaling_divisor(self.mode)?;
        Ok((self.scale / n).sqrt())
    }

    /// The per-element law for `fans`, with Keras' constants.
    fn law(&self, fans: Fans) -> Result<Law, InitError> {
        let std = self.target_std(fans)?;
        Ok(match self.distribution {
            Distribution::Uniform => {
                let limit = 3.0f64.sqrt() * std;
                Law::Uniform {
                    low: -limit,
                    high: limit,
                }
            }
            Distribution::Normal => Law::Normal { mean: 0.0, std },
            Distribution::TruncatedNormal => Law::TruncatedNormal {
                mean: 0.0,
                std: std / TRUNCATED_NORMAL_STD,
            },
        })
    }
}

/// How to fill a tensor.
///
/// Values come from [`sample`](Self::sample) (host `Vec<f32>`), or, on a Burn device,
/// [`tensor`](Self::tensor) and [`param`](Self::param). Names and numbers follow Keras unless a
/// variant says it follows PyTorch.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Initializer {
    /// Every value equal to the given one.
    Constant(f64),
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// `U(low, high)`; needs `low < high`, both finite.
    Uniform {
        /// Lower bound (inclusive).
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// `N(mean, std)`; needs `std >= 0`.
    Normal {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        std: f64,
    },
    /// `N(mean, std)` restricted to `mean ± 2·std` by resampling (Keras' `TruncatedNormal`:
    /// `std` is the parameter before truncation, so the values' spread is about `0.88·std`).
    TruncatedNormal {
        /// Mean.
        mean: f64,
        /// Standard deviation before truncation.
        std: f64,
    },
    /// Variance scaling (Glorot, He, LeCun and friends).
    VarianceScaling(VarianceScaling),
    /// PyTorch's default for `Conv*d` and `Linear`: `kaiming_uniform_(a = √5)` on the weight,
    /// i.e. `U(±gain·sqrt(3/fan_in))` with `gain = sqrt(2/(1+a²)) = sqrt(1/3)`, which is
    /// `U(±1/sqrt(fan_in))`. The bias uses the same bound with the *weight's* `fan_in`, so sample
    /// it with [`sample_with_fans`](Self::sample_with_fans) and the weight's [`Fans`].
    TorchConvDefault,
    /// A (semi-)orthogonal matrix times `gain` (Saxe et al. 2013; PyTorch's `orthogonal_`,
    /// Keras' `Orthogonal`). Needs rank >= 2. The kernel is flattened to a matrix with rows
    /// `shape[0]` (Torch layout, as PyTorch) or the product of all but the last axis (Keras
    /// layout, as Keras); its rows are orthonormal if it is wide, its columns if it is tall.
    Orthogonal {
        /// Multiplier of the orthonormal matrix; must be finite.
        gain: f64,
    },
    /// Identity kernel (PyTorch's `dirac_` for conv kernels, `eye_` for dense weights): a
    /// convolution with it and "same" padding returns its input. Needs rank >= 2 and `groups`
    /// dividing the output channels.
    Identity {
        /// Convolution groups the kernel is for (1 for an ordinary convolution).
        groups: usize,
    },
}

/// What an initializer amounts to once fans are known: an element-wise law or a structured fill.
#[derive(Debug, Clone, Copy)]
enum Fill {
    Elementwise(Law),
    Orthogonal { gain: f64 },
    Identity { groups: usize },
}

/// Element-wise laws every non-structured initializer reduces to once fans are known.
#[derive(Debug, Clone, Copy)]
enum Law {
    Constant(f64),
    Uniform { low: f64, high: f64 },
    Normal { mean: f64, std: f64 },
    TruncatedNormal { mean: f64, std: f64 },
}

impl Law {
    fn draw(self, rng: &mut HostRng) -> f64 {
        match self {
            // `low + (high - low)·u` may round past `high`; `max`/`min` (unlike `clamp`) cannot
            // panic, whatever the bounds.
            Law::Uniform { low, high } => (low + (high - low) * rng.uniform()).max(low).min(high),
            Law::Normal { mean, std } => mean + std * rng.normal(),
            Law::TruncatedNormal { mean, std } => mean + std * rng.truncated_normal(),
            Law::Constant(value) => value,
        }
    }
}

impl Initializer {
    /// Keras' `glorot_uniform` (Xavier): variance `1 / fan_avg`, uniform.
    pub fn glorot_uniform() -> Self {
        Self::variance_scaling(1.0, FanMode::FanAvg, Distribution::Uniform)
    }

    /// Keras' `glorot_normal`: variance `1 / fan_avg`, truncated normal (as Keras does).
    pub fn glorot_normal() -> Self {
        Self::variance_scaling(1.0, FanMode::FanAvg, Distribution::TruncatedNormal)
    }

    /// Keras' `he_uniform` (Kaiming): variance `2 / fan_in`, uniform.
    pub fn he_uniform() -> Self {
        Self::variance_scaling(2.0, FanMode::FanIn, Distribution::Uniform)
    }

    /// Keras' `he_normal`: variance `2 / fan_in`, truncated normal (as Keras does).
    pub fn he_normal() -> Self {
        Self::variance_scaling(2.0, FanMode::FanIn, Distribution::TruncatedNormal)
    }

    /// Keras' `lecun_uniform`: variance `1 / fan_in`, uniform.
    pub fn lecun_uniform() -> Self {
        Self::variance_scaling(1.0, FanMode::FanIn, Distribution::Uniform)
    }

    /// Keras' `lecun_normal`: variance `1 / fan_in`, truncated normal (as Keras does).
    pub fn lecun_normal() -> Self {
        Self::variance_scaling(1.0, FanMode::FanIn, Distribution::TruncatedNormal)
    }

    /// Variance scaling with the given parameters.
    pub fn variance_scaling(scale: f64, mode: FanMode, distribution: Distribution) -> Self {
        Self::VarianceScaling(VarianceScaling::new(scale, mode, distribution))
    }

    /// The identity kernel for an ordinary (ungrouped) layer.
    pub fn identity() -> Self {
        Self::Identity { groups: 1 }
    }

    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Constant(_) => "Constant",
            Self::Zeros => "Zeros",
            Self::Ones => "Ones",
            Self::Uniform { .. } => "Uniform",
            Self::Normal { .. } => "Normal",
            Self::TruncatedNormal { .. } => "TruncatedNormal",
            Self::VarianceScaling(_) => "VarianceScaling",
            Self::TorchConvDefault => "TorchConvDefault",
            Self::Orthogonal { .. } => "Orthogonal",
            Self::Identity { .. } => "Identity",
        }
    }

    /// Checks the parameters that do not depend on a shape.
    ///
    /// [`sample`](Self::sample) calls this itself; it is public so configurations can be
    /// rejected before any tensor exists.
    ///
    /// # Errors
    ///
    /// [`InitError::NonFinite`] for NaN or infinite parameters, [`InitError::OutOfRange`] for a
    /// negative `std`, a non-positive `scale` or `groups == 0`, and [`InitError::EmptyRange`] for
    /// `low >= high`.
    pub fn validate(&self) -> Result<(), InitError> {
        match *self {
            Self::Constant(value) => finite("value", value),
            Self::Zeros | Self::Ones | Self::TorchConvDefault => Ok(()),
            Self::Uniform { low, high } => {
                finite("low", low)?;
                finite("high", high)?;
                if low < high {
                    Ok(())
                } else {
                    Err(InitError::EmptyRange { low, high })
                }
            }
            Self::Normal { mean, std } | Self::TruncatedNormal { mean, std } => {
                finite("mean", mean)?;
                non_negative("std", std)
            }
            Self::VarianceScaling(vs) => positive("scale", vs.scale),
            Self::Orthogonal { gain } => finite("gain", gain),
            Self::Identity { groups: 0 } => Err(InitError::OutOfRange {
                name: "groups",
                expected: ">= 1",
                value: 0.0,
            }),
            Self::Identity { .. } => Ok(()),
        }
    }

    /// Values for a tensor of `shape` stored in `layout`, drawn from the stream `seed`.
    ///
    /// Row-major order, one `f32` per element. The same arguments give the same bits on every
    /// machine's backends, because drawing happens here on the host (see [`crate::rng`]).
    ///
    /// # Errors
    ///
    /// Any [`InitError`]: a bad shape, bad parameters, a shape the initializer cannot fill
    /// (e.g. [`Orthogonal`](Self::Orthogonal) of rank 1), or values that overflow `f32`.
    pub fn sample(
        &self,
        shape: &[usize],
        layout: KernelLayout,
        seed: u64,
    ) -> Result<Vec<f32>, InitError> {
        let fans = Fans::from_shape(shape, layout)?;
        self.sample_with_fans(shape, layout, fans, seed)
    }

    /// Like [`sample`](Self::sample) with fans supplied by the caller instead of derived from
    /// `shape`: a bias initialised from its weight's fans, or fans known from elsewhere.
    ///
    /// `layout` still matters to [`Orthogonal`](Self::Orthogonal) and
    /// [`Identity`](Self::Identity), which look at the axes. A zero fan that the initializer
    /// needs gives [`InitError::ZeroFan`], never a panic or an infinite bound.
    ///
    /// # Errors
    ///
    /// As [`sample`](Self::sample), plus [`InitError::ZeroFan`].
    pub fn sample_with_fans(
        &self,
        shape: &[usize],
        layout: KernelLayout,
        fans: Fans,
        seed: u64,
    ) -> Result<Vec<f32>, InitError> {
        self.validate()?;
        let len = check_shape(shape)?;
        let mut out = Vec::new();
        out.try_reserve_exact(len)
            .map_err(|_| InitError::Allocation { len })?;

        let mut rng = HostRng::new(seed);
        match self.fill(fans)? {
            Fill::Elementwise(law) => {
                self.push_f32(&mut out, (0..len).map(|_| law.draw(&mut rng)))?;
            }
            Fill::Orthogonal { gain } => {
                if shape.len() < 2 {
                    return Err(InitError::UnsupportedRank {
                        initializer: self.name(),
                        expected: "2 or more",
                        shape: shape.to_vec(),
                    });
                }
                let (rows, cols) = matrix_dims(shape, layout);
                self.push_f32(&mut out, orthogonal(rows, cols, gain, &mut rng))?;
            }
            Fill::Identity { groups } => {
                self.push_f32(&mut out, dirac(shape, layout, groups)?)?;
            }
        }
        Ok(out)
    }

    /// What filling a tensor amounts to once `fans` are known.
    fn fill(&self, fans: Fans) -> Result<Fill, InitError> {
        let law = match *self {
            Self::Constant(value) => Law::Constant(value),
            Self::Zeros => Law::Constant(0.0),
            Self::Ones => Law::Constant(1.0),
            Self::Uniform { low, high } => Law::Uniform { low, high },
            Self::Normal { mean, std } => Law::Normal { mean, std },
            Self::TruncatedNormal { mean, std } => Law::TruncatedNormal { mean, std },
            Self::VarianceScaling(vs) => vs.law(fans)?,
            Self::TorchConvDefault => {
                if fans.fan_in == 0 {
                    return Err(InitError::ZeroFan {
                        mode: FanMode::FanIn,
                        fan_in: fans.fan_in,
                        fan_out: fans.fan_out,
                    });
                }
                // gain·sqrt(3/fan_in) with gain = sqrt(1/3), simplified exactly.
                let bound = 1.0 / (fans.fan_in as f64).sqrt();
                Law::Uniform {
                    low: -bound,
                    high: bound,
                }
            }
            Self::Orthogonal { gain } => return Ok(Fill::Orthogonal { gain }),
            Self::Identity { groups } => return Ok(Fill::Identity { groups }),
        };
        Ok(Fill::Elementwise(law))
    }

    /// Rounds `values` to `f32` into `out`, refusing any that overflow.
    fn push_f32(
        &self,
        out: &mut Vec<f32>,
        values: impl IntoIterator<Item = f64>,
    ) -> Result<(), InitError> {
        for value in values {
            let rounded = value as f32;
            if !rounded.is_finite() {
                return Err(InitError::NotRepresentable {
                    initializer: self.name(),
                    value,
                });
            }
            out.push(rounded);
        }
        Ok(())
    }
}

impl From<VarianceScaling> for Initializer {
    fn from(vs: VarianceScaling) -> Self {
        Self::VarianceScaling(vs)
    }
}

fn finite(name: &'static str, value: f64) -> Result<(), InitError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(InitError::NonFinite { name, value })
    }
}

fn non_negative(name: &'static str, value: f64) -> Result<(), InitError> {
    finite(name, value)?;
    if value >= 0.0 {
        Ok(())
    } else {
        Err(InitError::OutOfRange {
            name,
            expected: ">= 0",
            value,
        })
    }
}

fn positive(name: &'static str, value: f64) -> Result<(), InitError> {
    finite(name, value)?;
    if value > 0.0 {
        Ok(())
    } else {
        Err(InitError::OutOfRange {
            name,
            expected: "> 0",
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::rng::{TRUNCATION_BOUND, truncated_moment};

    /// Central moments (variance, fourth moment) of a standard normal truncated to ±2, scaled by
    /// `sigma`.
    fn truncated_moments(sigma: f64) -> (f64, f64) {
        let mass = truncated_moment(0, TRUNCATION_BOUND);
        let var = truncated_moment(2, TRUNCATION_BOUND) / mass;
        let mu4 = truncated_moment(4, TRUNCATION_BOUND) / mass;
        (var * sigma.powi(2), mu4 * sigma.powi(4))
    }

    /// Checks the sample mean and variance against a law with the given mean, variance and
    /// fourth central moment, with 5-sigma tolerances derived from the sample size: the mean's
    /// standard error is `sqrt(var / n)`, the variance estimate's `sqrt((mu4 - var²) / n)`.
    fn assert_moments(values: &[f32], mean: f64, var: f64, mu4: f64, what: &str) {
        let n = values.len() as f64;
        let sample_mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let sample_var = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        let mean_tol = 5.0 * (var / n).sqrt();
        let var_tol = 5.0 * ((mu4 - var * var) / n).sqrt();
        assert!(
            (sample_mean - mean).abs() <= mean_tol,
            "{what}: mean {sample_mean}, expected {mean} ± {mean_tol}"
        );
        assert!(
            (sample_var - var).abs() <= var_tol,
            "{what}: variance {sample_var}, expected {var} ± {var_tol}"
        );
    }

    fn assert_within(values: &[f32], low: f64, high: f64, what: &str) {
        // Rounding to f32 is monotonic, so rounded bounds are respected exactly.
        let (low, high) = (low as f32, high as f32);
        assert!(
            values.iter().all(|&v| low <= v && v <= high),
            "{what}: a value escapes [{low}, {high}]"
        );
    }

    /// Shapes big enough for tight moments, in both layouts: (shape, layout, fan_in, fan_out)
    /// with fans written out from the Keras and PyTorch definitions.
    fn big_kernels() -> Vec<(Vec<usize>, KernelLayout, f64, f64)> {
        vec![
            (
                vec![3, 64, 512],
                KernelLayout::Keras,
                3.0 * 64.0,
                3.0 * 512.0,
            ),
            (
                vec![256, 128, 5],
                KernelLayout::Torch,
                128.0 * 5.0,
                256.0 * 5.0,
            ),
            (vec![300, 400], KernelLayout::Keras, 300.0, 400.0),
            (vec![300, 400], KernelLayout::Torch, 400.0, 300.0),
        ]
    }

    /// Variance from `(fan_in, fan_out)`.
    type KerasVariance = fn(f64, f64) -> f64;

    /// The variance Keras gives each preset: glorot `2/(fan_in+fan_out)`, he `2/fan_in`,
    /// lecun `1/fan_in`.
    fn presets() -> Vec<(&'static str, Initializer, KerasVariance, Distribution)> {
        vec![
            (
                "glorot_uniform",
                Initializer::glorot_uniform(),
                |i, o| 2.0 / (i + o),
                Distribution::Uniform,
            ),
            (
                "glorot_normal",
                Initializer::glorot_normal(),
                |i, o| 2.0 / (i + o),
                Distribution::TruncatedNormal,
            ),
            (
                "he_uniform",
                Initializer::he_uniform(),
                |i, _| 2.0 / i,
                Distribution::Uniform,
            ),
            (
                "he_normal",
                Initializer::he_normal(),
                |i, _| 2.0 / i,
                Distribution::TruncatedNormal,
            ),
            (
                "lecun_uniform",
                Initializer::lecun_uniform(),
                |i, _| 1.0 / i,
                Distribution::Uniform,
            ),
            (
                "lecun_normal",
                Initializer::lecun_normal(),
                |i, _| 1.0 / i,
                Distribution::TruncatedNormal,
            ),
        ]
    }

    #[test]
    fn presets_have_keras_variance_and_bounds() {
        for (name, init, keras_var, distribution) in presets() {
            for (seed, (shape, layout, fan_in, fan_out)) in big_kernels().into_iter().enumerate() {
                let what = format!("{name} {shape:?} {layout:?}");
                let values = init.sample(&shape, layout, seed as u64).unwrap();
                let var = keras_var(fan_in, fan_out);
                match distribution {
                    Distribution::Uniform => {
                        let limit = (3.0 * var).sqrt();
                        assert_within(&values, -limit, limit, &what);
                        assert_moments(&values, 0.0, var, limit.powi(4) / 5.0, &what);
                    }
                    Distribution::TruncatedNormal => {
                        // Keras draws N(0, σ) cut at ±2σ with σ = sqrt(var)/0.8796…
                        let sigma = var.sqrt() / TRUNCATED_NORMAL_STD;
                        assert_within(&values, -2.0 * sigma, 2.0 * sigma, &what);
                        let (trunc_var, mu4) = truncated_moments(sigma);
                        // The 0.8796 factor is what makes the truncated variance right.
                        assert!((trunc_var - var).abs() < 1e-9 * var, "{what}");
                        assert_moments(&values, 0.0, var, mu4, &what);
                    }
                    Distribution::Normal => unreachable!("no Keras preset is untruncated"),
                }
            }
        }
    }

    #[test]
    fn untruncated_normal_variance_scaling_has_variance_scale_over_n() {
        let (shape, layout) = ([3, 64, 512], KernelLayout::Keras);
        for (scale, mode, n) in [
            (1.0, FanMode::FanIn, 192.0),
            (2.0, FanMode::FanOut, 1536.0),
            (0.5, FanMode::FanAvg, 864.0),
        ] {
            let init = Initializer::variance_scaling(scale, mode, Distribution::Normal);
            let values = init.sample(&shape, layout, 9).unwrap();
            let var: f64 = scale / n;
            assert_moments(&values, 0.0, var, 3.0 * var * var, &format!("{mode:?}"));
        }
    }

    #[test]
    fn target_std_is_sqrt_scale_over_n() {
        let vs = VarianceScaling::new(2.0, FanMode::FanAvg, Distribution::Uniform);
        let std = vs.target_std(Fans::new(10, 30)).unwrap();
        assert!((std * std - 2.0 / 20.0).abs() < 1e-15);
    }

    #[test]
    fn plain_distributions_have_their_moments() {
        let shape = [200, 500];
        let layout = KernelLayout::Torch;

        let (low, high) = (-0.5, 1.5);
        let values = Initializer::Uniform { low, high }
            .sample(&shape, layout, 1)
            .unwrap();
        let half = (high - low) / 2.0_f64;
        assert_within(&values, low, high, "uniform");
        assert_moments(
            &values,
            (low + high) / 2.0,
            half * half / 3.0,
            half.powi(4) / 5.0,
            "uniform",
        );

        let (mean, std) = (0.3, 0.02);
        let values = Initializer::Normal { mean, std }
            .sample(&shape, layout, 2)
            .unwrap();
        let var: f64 = std * std;
        assert_moments(&values, mean, var, 3.0 * var * var, "normal");

        let values = Initializer::TruncatedNormal { mean, std }
            .sample(&shape, layout, 3)
            .unwrap();
        assert_within(
            &values,
            mean - 2.0 * std,
            mean + 2.0 * std,
            "truncated normal",
        );
        let (var, mu4) = truncated_moments(std);
        assert_moments(&values, mean, var, mu4, "truncated normal");
    }

    #[test]
    fn constants_fill_every_element() {
        let shape = [2, 3, 4];
        for (init, expected) in [
            (Initializer::Zeros, 0.0f32),
            (Initializer::Ones, 1.0),
            (Initializer::Constant(-0.25), -0.25),
        ] {
            let values = init.sample(&shape, KernelLayout::Keras, 0).unwrap();
            assert_eq!(values, vec![expected; 24]);
        }
    }

    #[test]
    fn torch_conv_default_is_uniform_within_inverse_sqrt_fan_in() {
        // Conv1d(in = 24, out = 512, k = 5, groups = 2): weight [512, 12, 5], fan_in = 60.
        let weight_shape = [512, 12, 5];
        let fans = Fans::from_shape(&weight_shape, KernelLayout::Torch).unwrap();
        let bound = 1.0 / 60.0_f64.sqrt();

        let weight = Initializer::TorchConvDefault
            .sample(&weight_shape, KernelLayout::Torch, 4)
            .unwrap();
        assert_within(&weight, -bound, bound, "weight");
        // kaiming_uniform(a=√5): gain² · 3 / fan_in · 1/3 = 1/(3·fan_in).
        let gain = (2.0 / (1.0 + 5.0_f64)).sqrt();
        let limit = gain * (3.0 / 60.0_f64).sqrt();
        assert!((limit - bound).abs() < 1e-15);
        assert_moments(
            &weight,
            0.0,
            limit * limit / 3.0,
            limit.powi(4) / 5.0,
            "weight",
        );

        let bias = Initializer::TorchConvDefault
            .sample_with_fans(&[512], KernelLayout::Torch, fans, 5)
            .unwrap();
        assert_eq!(bias.len(), 512);
        assert_within(&bias, -bound, bound, "bias");
        // With its own fans a length-512 bias would be bounded by 1/√512, which is tighter;
        // some values must use the wider, weight-derived bound.
        let own = 1.0 / 512.0_f64.sqrt();
        assert!(bias.iter().any(|&v| f64::from(v).abs() > own));
    }

    #[test]
    fn glorot_bias_for_a_conv_never_panics() {
        let weight_fans = Fans::from_shape(&[3, 16, 32], KernelLayout::Keras).unwrap();
        let glorot = Initializer::glorot_uniform();

        // The caller knows both fans: values.
        let bias = glorot
            .sample_with_fans(&[32], KernelLayout::Keras, weight_fans, 1)
            .unwrap();
        let limit = (3.0 * 2.0 / (48.0 + 96.0_f64)).sqrt();
        assert_within(&bias, -limit, limit, "bias with weight fans");

        // fan_out unknown (Burn's Conv1d bias case): a typed error instead of a panic.
        let missing = Fans::new(weight_fans.fan_in, 0);
        assert_eq!(
            glorot.sample_with_fans(&[32], KernelLayout::Keras, missing, 1),
            Err(InitError::ZeroFan {
                mode: FanMode::FanAvg,
                fan_in: 48,
                fan_out: 0
            })
        );

        // On its own, a bias takes its length as both fans, as in Keras.
        let alone = glorot.sample(&[32], KernelLayout::Keras, 1).unwrap();
        assert_within(
            &alone,
            -(3.0 / 32.0_f64).sqrt(),
            (3.0 / 32.0_f64).sqrt(),
            "bias alone",
        );
    }

    #[test]
    fn orthogonal_rows_or_columns_are_orthonormal_in_f32() {
        let cases: &[(&[usize], KernelLayout)] = &[
            (&[8, 8], KernelLayout::Torch),
            (&[4, 10], KernelLayout::Keras),
            (&[10, 4], KernelLayout::Torch),
            (&[16, 4, 3], KernelLayout::Torch),
            (&[3, 4, 16], KernelLayout::Keras),
            (&[3, 16, 4], KernelLayout::Keras),
            (&[2, 3, 5, 7], KernelLayout::Torch),
        ];
        for gain in [1.0, 0.5, 3.0] {
            for &(shape, layout) in cases {
                let w = Initializer::Orthogonal { gain }
                    .sample(shape, layout, 6)
                    .unwrap();
                let (rows, cols) = matrix_dims(shape, layout);
                let at = |r: usize, c: usize| f64::from(w[r * cols + c]);
                // Gram matrix of the shorter side.
                let (side, long) = (rows.min(cols), rows.max(cols));
                for i in 0..side {
                    for j in 0..side {
                        let dot: f64 = (0..long)
                            .map(|k| {
                                if rows <= cols {
                                    at(i, k) * at(j, k)
                                } else {
                                    at(k, i) * at(k, j)
                                }
                            })
                            .sum();
                        let expected = if i == j { gain * gain } else { 0.0 };
                        assert!(
                            (dot - expected).abs() < 1e-5 * gain * gain,
                            "{shape:?} {layout:?} gain {gain}: ({i},{j}) = {dot}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn same_seed_same_values_different_seed_different_values() {
        for init in [
            Initializer::glorot_uniform(),
            Initializer::he_normal(),
            Initializer::Orthogonal { gain: 1.0 },
            Initializer::TorchConvDefault,
        ] {
            let a = init.sample(&[8, 4, 3], KernelLayout::Torch, 17).unwrap();
            let b = init.sample(&[8, 4, 3], KernelLayout::Torch, 17).unwrap();
            let c = init.sample(&[8, 4, 3], KernelLayout::Torch, 18).unwrap();
            assert_eq!(a, b);
            assert_ne!(a, c);
        }
    }

    #[test]
    fn invalid_input_gives_the_matching_error() {
        let layout = KernelLayout::Torch;
        let glorot = Initializer::glorot_uniform();
        assert_eq!(
            glorot.sample(&[4, 0, 3], layout, 0),
            Err(InitError::ZeroDim {
                shape: vec![4, 0, 3],
                axis: 1
            })
        );
        assert_eq!(glorot.sample(&[], layout, 0), Err(InitError::EmptyShape));

        let nan = Initializer::variance_scaling(f64::NAN, FanMode::FanIn, Distribution::Uniform);
        assert!(matches!(
            nan.sample(&[4, 4], layout, 0),
            Err(InitError::NonFinite { name: "scale", value }) if value.is_nan()
        ));
        for scale in [0.0, -1.0] {
            let init = Initializer::variance_scaling(scale, FanMode::FanIn, Distribution::Normal);
            assert!(matches!(
                init.sample(&[4, 4], layout, 0),
                Err(InitError::OutOfRange { name: "scale", .. })
            ));
        }

        for (low, high) in [(1.0, 1.0), (2.0, -2.0)] {
            assert_eq!(
                Initializer::Uniform { low, high }.sample(&[4], layout, 0),
                Err(InitError::EmptyRange { low, high })
            );
        }
        assert!(matches!(
            Initializer::Uniform {
                low: 0.0,
                high: f64::INFINITY
            }
            .sample(&[4], layout, 0),
            Err(InitError::NonFinite { name: "high", .. })
        ));

        assert!(matches!(
            Initializer::Normal {
                mean: 0.0,
                std: -0.1
            }
            .sample(&[4], layout, 0),
            Err(InitError::OutOfRange { name: "std", .. })
        ));
        assert!(matches!(
            Initializer::TruncatedNormal {
                mean: 0.0,
                std: f64::INFINITY
            }
            .sample(&[4], layout, 0),
            Err(InitError::NonFinite { name: "std", .. })
        ));
        assert!(matches!(
            Initializer::Orthogonal { gain: 1.0 }.sample(&[4], layout, 0),
            Err(InitError::UnsupportedRank {
                initializer: "Orthogonal",
                ..
            })
        ));
        assert!(matches!(
            Initializer::Orthogonal { gain: f64::NAN }.sample(&[4, 4], layout, 0),
            Err(InitError::NonFinite { name: "gain", .. })
        ));
        assert!(matches!(
            Initializer::Identity { groups: 0 }.sample(&[4, 4, 3], layout, 0),
            Err(InitError::OutOfRange { name: "groups", .. })
        ));
        assert!(matches!(
            Initializer::Constant(1e39).sample(&[4], layout, 0),
            Err(InitError::NotRepresentable { .. })
        ));
        assert!(matches!(
            Initializer::TorchConvDefault.sample_with_fans(&[4], layout, Fans::new(0, 4), 0),
            Err(InitError::ZeroFan {
                mode: FanMode::FanIn,
                ..
            })
        ));
    }

    #[test]
    fn errors_name_what_was_expected_and_what_came() {
        let message = Initializer::Uniform {
            low: 1.0,
            high: 0.5,
        }
        .sample(&[2], KernelLayout::Keras, 0)
        .unwrap_err()
        .to_string();
        assert!(
            message.contains("low < high") && message.contains("0.5"),
            "{message}"
        );
        let message = Initializer::glorot_normal()
            .sample(&[3, 0], KernelLayout::Keras, 0)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("at least 1") && message.contains("[3, 0]"),
            "{message}"
        );
    }
}
