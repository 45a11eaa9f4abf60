//! Choosing how to widen from measurements (what `widen expand --strategy auto` and `widen
//! diagnose` say), following the study's findings (docs/STUDY.md, "What to do"): a
//! function-preserving start, standardised new channels when their scale or offset differs from
//! the trained ones, and the new part trained first with the base frozen.

use serde::Serialize;
use widen_layers::Model;

use crate::{AdaptError, ChannelMap, ProjectionInit, Strategy, input_region};

/// Per-channel scale of a sample, old channels against new.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelScale {
    /// Channel position in the widened input.
    pub channel: usize,
    /// Whether it is a new channel.
    pub new: bool,
    /// Mean over cases and steps.
    pub mean: f64,
    /// Standard deviation over cases and steps.
    pub std: f64,
}

/// What to do, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// The strategy.
    pub strategy: Strategy,
    /// Whether to standardise the new channels.
    pub standardize: bool,
    /// The fine-tuning recipe (`staged`: new parts first, then everything at a lower rate).
    pub recipe: &'static str,
    /// One sentence per decision.
    pub reasons: Vec<String>,
}

/// The largest factor by which a new channel's scale may differ from the old channels' median
/// before standardising pays (the study's new channels at ×10 scale were the erratic case).
pub const SCALE_TOLERANCE: f64 = 2.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => 0.5 * (v[n / 2 - 1] + v[n / 2]),
    }
}

/// Recommends a strategy for widening `base`, from the scales of a sample of the widened input
/// (`scales`, one per position, see [`channel_scales`]).
pub fn recommend(base: &Model, scales: &[ChannelScale]) -> Result<Recommendation, AdaptError> {
    let mut reasons = Vec::new();
    // `zero` where every reader of the input has a kernel to widen; a grouped input conv takes
    // only the projection.
    let strategy = match input_region(base, false) {
        Ok(_) => {
            reasons.push(
                "zero: every layer that reads the input can be widened with new slices at zero, \
                 so the widened model starts as the base (function preserving)"
                    .to_string(),
            );
            Strategy::Zero
        }
        Err(e) => {
            reasons.push(format!(
                "projection: `zero` does not apply ({e}); a 1×1 projection in front keeps the \
                 base's function"
            ));
            Strategy::Projection {
                init: ProjectionInit::Identity,
            }
        }
    };
    let old: Vec<&ChannelScale> = scales.iter().filter(|s| !s.new).collect();
    let new: Vec<&ChannelScale> = scales.iter().filter(|s| s.new).collect();
    let old_std = median(old.iter().map(|s| s.std).collect());
    let old_mean = median(old.iter().map(|s| s.mean).collect());
    let off = new.iter().find(|s| {
        let ratio = if old_std > 0.0 {
            s.std / old_std
        } else {
            f64::INFINITY
        };
        !(1.0 / SCALE_TOLERANCE..=SCALE_TOLERANCE).contains(&ratio)
            || (s.mean - old_mean).abs() > 0.5 * old_std.max(1e-12)
    });
    let standardize = match off {
        Some(s) => {
            reasons.push(format!(
                "standardize: new channel {} has mean {:.3} and std {:.3}, the old channels' \
                 median is mean {:.3}, std {:.3}; trained kernels expect the old scale",
                s.channel, s.mean, s.std, old_mean, old_std
            ));
            true
        }
        None if new.is_empty() => false,
        None => {
            reasons.push(format!(
                "no standardisation: the new channels' scales are within ×{SCALE_TOLERANCE} of \
                 the old channels' (median std {old_std:.3})"
            ));
            false
        }
    };
    reasons.push(
        "recipe staged: train only the new part first with the base frozen (the calmest start \
         in the study), then everything at a tenth of the learning rate, keeping the best \
         validation checkpoint"
            .to_string(),
    );
    Ok(Recommendation {
        strategy,
        standardize,
        recipe: "staged",
        reasons,
    })
}

/// Per-channel mean and std of `values` (`[cases, channels, length]` row-major), marking the
/// channels `map` says are new.
pub fn channel_scales(
    values: &[f32],
    channels: usize,
    length: usize,
    map: &ChannelMap,
) -> Vec<ChannelScale> {
    let cases = values.len() / (channels * length).max(1);
    (0..channels)
        .map(|c| {
            let mut sum = 0.0f64;
            let mut sq = 0.0f64;
            for n in 0..cases {
                for t in 0..length {
                    let v = values[(n * channels + c) * length + t] as f64;
                    sum += v;
                    sq += v * v;
                }
            }
            let count = (cases * length).max(1) as f64;
            let mean = sum / count;
            ChannelScale {
                channel: c,
                new: map.source.get(c).is_some_and(Option::is_none),
                mean,
                std: (sq / count - mean * mean).max(0.0).sqrt(),
            }
        })
        .collect()
}
