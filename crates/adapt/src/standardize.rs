//! `Standardize`: per-channel affine normalisation of chosen input channels from a data sample,
//! the direct answer to new channels arriving at another magnitude.

use burn::tensor::{Tensor, TensorData};
use widen_layers::{DataFormat, LayerConfig, NormalizationConfig, Sequential};

use crate::{AdaptError, host};

/// Name of the layer [`standardize`] puts in front of the model.
pub const STANDARDIZE_LAYER: &str = "widen_standardize";

/// Per-channel mean and (biased) variance over batch and length of `sample`, given in the
/// model's data format. Channels with zero variance get variance 1, so they are centred but
/// never divided by ~0.
pub fn channel_stats(
    sample: &Tensor<3>,
    format: DataFormat,
) -> Result<(Vec<f32>, Vec<f32>), AdaptError> {
    let [b, d1, d2] = sample.dims();
    let (c, l) = match format {
        DataFormat::ChannelsLast => (d2, d1),
        DataFormat::ChannelsFirst => (d1, d2),
    };
    if b == 0 || c == 0 || l == 0 {
        return Err(AdaptError::Data(format!(
            "sample has an empty dimension: {:?}",
            sample.dims()
        )));
    }
    let v = host::values(sample.to_data())?;
    let idx = |bi: usize, ci: usize, t: usize| match format {
        DataFormat::ChannelsLast => (bi * l + t) * c + ci,
        DataFormat::ChannelsFirst => (bi * c + ci) * l + t,
    };
    let n = (b * l) as f64;
    let mut mean = vec![0.0f32; c];
    let mut var = vec![1.0f32; c];
    for ci in 0..c {
        let mut s = 0.0f64;
        for bi in 0..b {
            for t in 0..l {
                s += v[idx(bi, ci, t)] as f64;
            }
        }
        let m = s / n;
        let mut q = 0.0f64;
        for bi in 0..b {
            for t in 0..l {
                let d = v[idx(bi, ci, t)] as f64 - m;
                q += d * d;
            }
        }
        if !(m.is_finite() && q.is_finite()) {
            return Err(AdaptError::Data(format!(
                "channel {ci} of the sample holds NaN or Inf"
            )));
        }
        mean[ci] = m as f32;
        let q = q / n;
        var[ci] = if q > 1e-12 { q as f32 } else { 1.0 };
    }
    Ok((mean, var))
}

/// Puts a Normalization layer in front of `model` that standardises `channels` (indices of the
/// model input) with statistics from `sample` and passes every other channel through unchanged
/// (mean 0, variance 1: bit-exact). Calling it again replaces the previous standardisation.
pub fn standardize(
    model: &Sequential,
    sample: &Tensor<3>,
    channels: &[usize],
) -> Result<Sequential, AdaptError> {
    let input = model.input();
    let (mean, var) = channel_stats(sample, input.data_format)?;
    if mean.len() != input.channels {
        return Err(AdaptError::Data(format!(
            "sample has {} channels, the model takes {}",
            mean.len(),
            input.channels
        )));
    }
    let mut m = vec![0.0f32; input.channels];
    let mut v = vec![1.0f32; input.channels];
    for &c in channels {
        if c >= input.channels {
            return Err(AdaptError::BadIndexMap(format!(
                "channel {c} to standardise is outside 0..{}",
                input.channels
            )));
        }
        m[c] = mean[c];
        v[c] = var[c];
    }
    let mut spec = model.spec().clone();
    spec.bypass(STANDARDIZE_LAYER);
    spec.insert_after_input(
        STANDARDIZE_LAYER,
        LayerConfig::Normalization(NormalizationConfig {
            mean: m.clone(),
            variance: v.clone(),
        }),
    );
    let device = sample.device();
    let mut out = Sequential::new(spec, 0, &device)?;
    for info in model.weight_infos() {
        if info.layer != STANDARDIZE_LAYER {
            out.set_weight(
                &info.layer,
                &info.param,
                model.weight(&info.layer, &info.param)?,
            )?;
        }
    }
    out.set_weight(
        STANDARDIZE_LAYER,
        "mean",
        TensorData::new(m, [input.channels]),
    )?;
    out.set_weight(
        STANDARDIZE_LAYER,
        "variance",
        TensorData::new(v, [input.channels]),
    )?;
    Ok(out)
}
