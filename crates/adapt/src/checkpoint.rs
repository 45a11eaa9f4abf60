//! Expanding a saved checkpoint: load → expand → (standardise) → save to a new directory. The
//! save is atomic (widen-layers writes a hidden sibling and renames), so a failure leaves no
//! partial output, and the input checkpoint is only read.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use widen_layers::{Sequential, WeightFormat};

use crate::{AdaptError, ChannelMap, ExpandRequest, expand, standardize};

/// What [`expand_checkpoint`] did.
#[derive(Debug, Clone)]
pub struct CheckpointExpansion {
    /// Input channels before.
    pub old_channels: usize,
    /// Input channels after.
    pub new_channels: usize,
    /// The channel mapping.
    pub map: ChannelMap,
    /// The layers holding adapted parameters.
    pub adapted_layers: Vec<String>,
    /// Whether a standardisation layer was added.
    pub standardized: bool,
    /// The weight format written (the input's).
    pub format: WeightFormat,
}

/// Loads the checkpoint at `src`, widens it as `request` says, standardises the new channels
/// with statistics from `sample` (the widened model's input layout) when given, and saves the
/// result at `dst` in the input's weight format. `src` is never written; `dst` must differ.
pub fn expand_checkpoint(
    src: &Path,
    dst: &Path,
    request: &ExpandRequest,
    sample: Option<Tensor<3>>,
    device: &Device,
) -> Result<CheckpointExpansion, AdaptError> {
    expand_checkpoint_with(src, dst, request, sample, None, device)
}

/// [`expand_checkpoint`], and for a narrowing, the dropped channels' mean contribution moved
/// into the readers' biases, the means from `compensate` (the base model's layout, all old
/// channels; see [`crate::compensate_dropped`]).
pub fn expand_checkpoint_with(
    src: &Path,
    dst: &Path,
    request: &ExpandRequest,
    sample: Option<Tensor<3>>,
    compensate: Option<Tensor<3>>,
    device: &Device,
) -> Result<CheckpointExpansion, AdaptError> {
    let same = match (src.canonicalize(), dst.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => src == dst,
    };
    if same {
        return Err(AdaptError::Data(format!(
            "the output directory {} is the input checkpoint; choose another path (the input is never modified)",
            dst.display()
        )));
    }
    let base = Sequential::load(src, device)?;
    let format = if src.join(WeightFormat::Burnpack.file_name()).is_file() {
        WeightFormat::Burnpack
    } else {
        WeightFormat::Safetensors
    };
    let mut expansion = expand(&base, request)?;
    if let Some(old_sample) = compensate {
        crate::compensate_dropped(&base, &mut expansion, old_sample)?;
    }
    let new_positions = expansion.map.new_positions();
    let model = match &sample {
        Some(sample) => standardize(&expansion.model, sample, &new_positions)?,
        None => expansion.model,
    };
    // What fine-tuning needs to train only the new parts (`widen fit --recipe new-only`).
    let meta = serde_json::json!({
        "expansion": {
            "map": expansion.map,
            "strategy": expansion.strategy,
            "adapted_layers": expansion.adapted_layers,
            "standardized": sample.is_some(),
        }
    });
    model.save_with_meta(dst, format, Some(&meta))?;
    Ok(CheckpointExpansion {
        old_channels: base.input().channels,
        new_channels: model.input().channels,
        map: expansion.map,
        adapted_layers: expansion.adapted_layers,
        standardized: sample.is_some(),
        format,
    })
}
