//! Diagnostics for the three causes of erratic training after widening: (1) new channels of
//! another magnitude unbalance the weight contributions, (2) learned relationships are disturbed
//! (function drift, gradient norms), (3) BatchNorm statistics shift.

use burn::module::ParamId;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};
use widen_layers::{Layer, Mode, Sequential, Value};

use crate::{AdaptError, host};

/// Cause (1): how much each input channel feeds the first convolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelContribution {
    /// Input channel.
    pub channel: usize,
    /// L2 norm of the kernel slice that reads this channel (over filters and taps).
    pub kernel_norm: f64,
    /// Root mean square of the channel over batch and length.
    pub input_rms: f64,
    /// `kernel_norm × input_rms`.
    pub contribution: f64,
    /// Fraction of the summed contributions.
    pub share: f64,
}

/// Mean and standard deviation of one layer's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivationStats {
    /// Layer name.
    pub layer: String,
    /// Mean over every element.
    pub mean: f64,
    /// Standard deviation over every element.
    pub std: f64,
}

/// L2 norm of one parameter's gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradientNorm {
    /// Layer name.
    pub layer: String,
    /// Parameter name.
    pub param: String,
    /// Norm (0 when the parameter got no gradient, e.g. frozen).
    pub norm: f64,
}

/// Cause (3): a BatchNorm layer's batch statistics against its moving statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchNormShift {
    /// Layer name.
    pub layer: String,
    /// Mean over channels of `|μ_batch − μ_moving| / sqrt(σ²_moving + ε)`.
    pub mean_shift: f64,
    /// The largest per-channel value of the same.
    pub max_mean_shift: f64,
    /// Mean over channels of `|ln(σ²_batch / σ²_moving)|` (0 when the scales agree).
    pub log_variance_ratio: f64,
}

/// Cause (2): output difference against the base model on the same old-channel data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Mean absolute difference.
    pub mean_abs: f64,
}

/// Everything above for one model on one batch (serde → JSON).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Report {
    /// Per-input-channel contributions to the first convolution.
    pub channel_contributions: Vec<ChannelContribution>,
    /// Per-layer activation statistics (inference mode).
    pub activations: Vec<ActivationStats>,
    /// Per-parameter gradient norms, when gradients were given.
    pub gradient_norms: Vec<GradientNorm>,
    /// Per-BatchNorm statistic shift.
    pub batchnorm_shift: Vec<BatchNormShift>,
    /// Drift against a base model, when one was given.
    pub drift: Option<Drift>,
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

fn value_data(v: &Value) -> Result<Vec<f32>, AdaptError> {
    host::values(match v {
        Value::Seq(t) => t.to_data(),
        Value::Flat(t) => t.to_data(),
    })
}

/// Per-channel (mean, biased variance) of a channels-first `[b, c, l]` or `[b, c]` value.
fn channel_moments(v: &Value) -> Result<(Vec<f64>, Vec<f64>), AdaptError> {
    let dims = v.dims();
    let (b, c, l) = match dims.as_slice() {
        [b, c, l] => (*b, *c, *l),
        [b, c] => (*b, *c, 1),
        _ => {
            return Err(AdaptError::Data(format!(
                "unexpected activation shape {dims:?}"
            )));
        }
    };
    let x = value_data(v)?;
    let n = (b * l).max(1) as f64;
    let mut mean = vec![0.0; c];
    let mut var = vec![0.0; c];
    for ci in 0..c {
        let vals = (0..b).flat_map(|bi| (0..l).map(move |t| (bi * c + ci) * l + t));
        let m = vals.clone().map(|i| x[i] as f64).sum::<f64>() / n;
        mean[ci] = m;
        var[ci] = vals.map(|i| (x[i] as f64 - m).powi(2)).sum::<f64>() / n;
    }
    Ok((mean, var))
}

/// Cause (1) for the Conv1d that reads the model input (behind an optional Normalization).
pub fn channel_contributions(
    model: &Sequential,
    x: Tensor<3>,
) -> Result<Vec<ChannelContribution>, AdaptError> {
    let trace = model.forward_trace(x, Mode::Inference)?;
    // The first Conv1D among the layers reading the input's channels (behind any
    // channel-local layers such as a Normalization).
    let region = crate::input_region(model, true)?;
    let Some((index, conv)) =
        region
            .consumers
            .iter()
            .find_map(|c| match model.layers().get(c.layer) {
                Some(Layer::Conv1d(conv)) => Some((c.layer, conv)),
                _ => None,
            })
    else {
        return Err(AdaptError::Data(
            "no Conv1D reads the model input's channels".into(),
        ));
    };
    let conv_in = &trace[model.inbound(index).first().copied().unwrap_or(0)].1;
    let (mean, var) = channel_moments(conv_in)?;
    let w = host::values(conv.weight.val().into_data())?;
    let [o, cg, k] = conv.weight.dims();
    let groups = conv.config.groups.max(1);
    let og = o / groups;
    let c = cg * groups;
    let mut out = Vec::with_capacity(c);
    for ch in 0..c {
        let (g, local) = (ch / cg, ch % cg);
        let mut sq = 0.0f64;
        for oi in g * og..(g + 1) * og {
            for ki in 0..k {
                sq += (w[(oi * cg + local) * k + ki] as f64).powi(2);
            }
        }
        // RMS² = variance + mean²
        let input_rms = (var[ch] + mean[ch] * mean[ch]).sqrt();
        let kernel_norm = sq.sqrt();
        out.push(ChannelContribution {
            channel: ch,
            kernel_norm,
            input_rms,
            contribution: kernel_norm * input_rms,
            share: 0.0,
        });
    }
    let total: f64 = out.iter().map(|c| c.contribution).sum();
    if total > 0.0 {
        for c in &mut out {
            c.share = c.contribution / total;
        }
    }
    Ok(out)
}

/// Per-layer output mean and std in inference mode.
pub fn activation_stats(
    model: &Sequential,
    x: Tensor<3>,
) -> Result<Vec<ActivationStats>, AdaptError> {
    model
        .forward_trace(x, Mode::Inference)?
        .into_iter()
        .skip(1)
        .map(|(layer, v)| {
            let (mean, std) = mean_std(&value_data(&v)?);
            Ok(ActivationStats { layer, mean, std })
        })
        .collect()
}

/// Cause (3): each BatchNorm's batch statistics on `x` against its moving statistics.
pub fn batchnorm_shift(
    model: &Sequential,
    x: Tensor<3>,
) -> Result<Vec<BatchNormShift>, AdaptError> {
    let trace = model.forward_trace(x, Mode::Inference)?;
    let mut out = Vec::new();
    for (i, layer) in model.layers().iter().enumerate() {
        let Layer::BatchNorm1d(bn) = layer else {
            continue;
        };
        let input = model.inbound(i).first().copied().unwrap_or(0);
        let (mean, var) = channel_moments(&trace[input].1)?;
        let mm = host::values(model.weight(&bn.name, "moving_mean")?)?;
        let mv = host::values(model.weight(&bn.name, "moving_variance")?)?;
        let eps = bn.config.epsilon;
        let c = mean.len().max(1) as f64;
        let shifts: Vec<f64> = mean
            .iter()
            .zip(&mm)
            .zip(&mv)
            .map(|((m, &mm), &mv)| (m - mm as f64).abs() / (mv as f64 + eps).sqrt())
            .collect();
        let log_ratio = var
            .iter()
            .zip(&mv)
            .map(|(v, &mv)| ((v + eps) / (mv as f64 + eps)).ln().abs())
            .sum::<f64>()
            / c;
        out.push(BatchNormShift {
            layer: bn.name.clone(),
            mean_shift: shifts.iter().sum::<f64>() / c,
            max_mean_shift: shifts.iter().copied().fold(0.0, f64::max),
            log_variance_ratio: log_ratio,
        });
    }
    Ok(out)
}

/// Gradient norms of every trainable tensor of `model`, read from optimiser-ready gradients
/// (`GradientsParams::from_grads(loss.backward(), &model)`); a parameter without a gradient
/// (frozen) reports 0.
pub fn gradient_norms(
    model: &Sequential,
    grads: &GradientsParams,
) -> Result<Vec<GradientNorm>, AdaptError> {
    fn norm<const D: usize>(grads: &GradientsParams, id: ParamId) -> Result<f64, AdaptError> {
        match grads.get::<D>(id) {
            Some(g) => {
                let v = host::values(g.into_data())?;
                Ok(v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt())
            }
            None => Ok(0.0),
        }
    }
    let mut out = Vec::new();
    let mut push = |layer: &str, param: &str, n: f64| {
        out.push(GradientNorm {
            layer: layer.to_string(),
            param: param.to_string(),
            norm: n,
        });
    };
    for layer in model.layers() {
        match layer {
            Layer::Conv1d(l) => {
                push(&l.name, "weight", norm::<3>(grads, l.weight.id)?);
                if let Some(b) = &l.bias {
                    push(&l.name, "bias", norm::<1>(grads, b.id)?);
                }
            }
            Layer::Dense(l) => {
                push(&l.name, "weight", norm::<2>(grads, l.weight.id)?);
                if let Some(b) = &l.bias {
                    push(&l.name, "bias", norm::<1>(grads, b.id)?);
                }
            }
            Layer::BatchNorm1d(l) => {
                if let Some(g) = &l.gamma {
                    push(&l.name, "gamma", norm::<1>(grads, g.id)?);
                }
                if let Some(b) = &l.beta {
                    push(&l.name, "beta", norm::<1>(grads, b.id)?);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Cause (2): `widened(x_new)` against `base(x_old)`, same samples.
pub fn drift(
    base: &Sequential,
    x_old: Tensor<3>,
    widened: &Sequential,
    x_new: Tensor<3>,
) -> Result<Drift, AdaptError> {
    let a = value_data(&base.forward(x_old)?)?;
    let b = value_data(&widened.forward(x_new)?)?;
    if a.len() != b.len() {
        return Err(AdaptError::Data(format!(
            "outputs differ in size: base {} values, widened {}",
            a.len(),
            b.len()
        )));
    }
    let diffs: Vec<f64> = a
        .iter()
        .zip(&b)
        .map(|(p, q)| (*p as f64 - *q as f64).abs())
        .collect();
    Ok(Drift {
        max_abs: diffs.iter().copied().fold(0.0, f64::max),
        mean_abs: diffs.iter().sum::<f64>() / diffs.len().max(1) as f64,
    })
}

impl Report {
    /// Collects every diagnostic that needs no gradients for `model` on `x`, plus drift
    /// against `base` on `x_old` when given.
    pub fn collect(
        model: &Sequential,
        x: Tensor<3>,
        base: Option<(&Sequential, Tensor<3>)>,
    ) -> Result<Self, AdaptError> {
        Ok(Self {
            channel_contributions: channel_contributions(model, x.clone())?,
            activations: activation_stats(model, x.clone())?,
            gradient_norms: Vec::new(),
            batchnorm_shift: batchnorm_shift(model, x.clone())?,
            drift: match base {
                Some((base, x_old)) => Some(drift(base, x_old, model, x)?),
                None => None,
            },
        })
    }
}
