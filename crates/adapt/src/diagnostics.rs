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

/// Cause (1): how much each input channel feeds the layers that read the input's channels
/// (every Conv1D and recurrent input kernel among them, behind channel-local layers such as a
/// Normalization; a ResNet's first conv and shortcut conv both count). Per channel,
/// `kernel_norm² = Σ_layers ‖slice‖²` and `contribution² = Σ_layers ‖slice‖² · rms²`, each
/// layer's rms taken on its own input; `input_rms = contribution / kernel_norm`. With one input
/// conv this is that conv's slice norm times its input's rms.
pub fn channel_contributions(
    model: &Sequential,
    x: Tensor<3>,
) -> Result<Vec<ChannelContribution>, AdaptError> {
    let trace = model.forward_trace(x, Mode::Inference)?;
    let region = crate::input_region(model, true)?;
    let c = model.input().channels;
    let mut norm_sq = vec![0.0f64; c];
    let mut contrib_sq = vec![0.0f64; c];
    let mut fallback_rms = vec![0.0f64; c];
    let mut seen = 0;
    for view in &region.consumers {
        let input = &trace[model.inbound(view.layer).first().copied().unwrap_or(0)].1;
        if !matches!(input, Value::Seq(_)) {
            continue; // Dense after Flatten: features are steps × channels, not channels.
        }
        let (mean, var) = channel_moments(input)?;
        let w = host::values(model.weight(&view.name, view.param)?)?;
        // Per channel, the squared norm of the slice that reads it.
        let sq: Vec<f64> = match model.layers().get(view.layer) {
            Some(Layer::Conv1d(conv)) if conv.config.groups > 1 => {
                let [o, cg, k] = conv.weight.dims();
                let og = o / conv.config.groups;
                (0..c)
                    .map(|ch| {
                        let (g, local) = (ch / cg, ch % cg);
                        (g * og..(g + 1) * og)
                            .flat_map(|oi| (0..k).map(move |ki| (oi * cg + local) * k + ki))
                            .map(|i| (w[i] as f64).powi(2))
                            .sum()
                    })
                    .collect()
            }
            _ => {
                let (o, k) = (view.outer, view.inner);
                (0..c)
                    .map(|ch| {
                        (0..o)
                            .flat_map(|oi| (0..k).map(move |ki| (oi * c + ch) * k + ki))
                            .map(|i| (w[i] as f64).powi(2))
                            .sum()
                    })
                    .collect()
            }
        };
        for ch in 0..c {
            // RMS² = variance + mean²
            let rms_sq = var[ch] + mean[ch] * mean[ch];
            norm_sq[ch] += sq[ch];
            contrib_sq[ch] += sq[ch] * rms_sq;
            if seen == 0 {
                fallback_rms[ch] = rms_sq.sqrt();
            }
        }
        seen += 1;
    }
    if seen == 0 {
        return Err(AdaptError::Data(
            "no Conv1D or recurrent layer reads the model input's channels".into(),
        ));
    }
    let mut out: Vec<ChannelContribution> = (0..c)
        .map(|ch| {
            let kernel_norm = norm_sq[ch].sqrt();
            let contribution = contrib_sq[ch].sqrt();
            ChannelContribution {
                channel: ch,
                kernel_norm,
                input_rms: if kernel_norm > 0.0 {
                    contribution / kernel_norm
                } else {
                    fallback_rms[ch]
                },
                contribution,
                share: 0.0,
            }
        })
        .collect();
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
    // Computed once, not per layer: the spec's tensor lists name the parameters of the layers
    // handled generically below (this runs every training step).
    let params = model.spec().layer_params().unwrap_or_default();
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
            other => {
                // Any other layer: its float parameters in the module's order, named by the
                // trainable tensors its spec lists (same order and sizes), else `param<k>`.
                let names: Vec<String> = params
                    .iter()
                    .find(|(n, _)| n == other.name())
                    .map(|(_, ps)| {
                        ps.iter()
                            .filter(|p| p.trainable)
                            .map(|p| p.name.to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                for (k, (id, rank)) in float_params(other).into_iter().enumerate() {
                    let n = match rank {
                        1 => norm::<1>(grads, id)?,
                        2 => norm::<2>(grads, id)?,
                        _ => norm::<3>(grads, id)?,
                    };
                    let name = names.get(k).cloned().unwrap_or_else(|| format!("param{k}"));
                    push(other.name(), &name, n);
                }
            }
        }
    }
    Ok(out)
}

/// The ids and ranks of a layer's float parameters, in the module's field order.
fn float_params(layer: &Layer) -> Vec<(ParamId, usize)> {
    struct Collect(Vec<(ParamId, usize)>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            self.0.push((p.id, D));
        }
    }
    let mut c = Collect(Vec::new());
    burn::module::Module::visit(layer, &mut c);
    c.0
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
