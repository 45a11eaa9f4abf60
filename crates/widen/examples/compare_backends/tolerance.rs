//! How closely every backend must agree with ndarray (the reference), shared by the
//! `compare_backends` example (`cargo xtask compare-backends`) and the backend test suite. Each
//! bound and its reason is in docs/BACKENDS.md.
//!
//! Differences are measured against the reference's magnitude: `rel = max|a − b| / max|b|` over
//! one tensor. Element-wise ratios are meaningless where the reference is near zero (ReLU
//! outputs, BatchNorm outputs around their mean, gradients that nearly cancel), which every one
//! of these tensors has.

/// What a difference is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// A layer's output in inference mode.
    Inference,
    /// A layer's output in training mode (batch statistics).
    Training,
    /// A parameter's gradient after one backward pass.
    Gradient,
}

impl Quantity {
    /// The largest `rel` allowed.
    pub fn tolerance(self) -> f64 {
        match self {
            Self::Inference => INFERENCE_REL,
            Self::Training => TRAINING_REL,
            Self::Gradient => GRADIENT_REL,
        }
    }

    /// A short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Inference => "inference",
            Self::Training => "training",
            Self::Gradient => "gradient",
        }
    }
}

/// u = 2⁻²⁴, float32's unit roundoff. A sum of n float32 products, in any order (tiles,
/// shared-memory reductions, FMA), is within `γ_n ≈ n·u` of the exact value relative to the sum
/// of the terms' magnitudes: the bounds below are that, for each pass's longest sum.
const UNIT_ROUNDOFF: f64 = 5.960_464_477_539_063e-8;

/// Inference outputs: every value is a conv sum of at most 97 terms (Ex3: 32 channels × kernel
/// 3, plus the bias), `γ_97 ≈ 5.8e-6`, rounded up to 1e-5 — the bound the CPU suite already
/// holds Keras parity to. Measured: ≤ 5.1e-7.
pub const INFERENCE_REL: f64 = 1e-5;

/// Training-mode outputs: as inference, times BatchNorm's amplification. Batch statistics
/// subtract the batch mean and divide by the batch std, so the rounding of the features is
/// multiplied by `|γ| / σ_batch` while the output is rescaled by `1 / σ_batch`: relative to the
/// output's magnitude the growth is `(|mean| + max|x|) / (σ · max|z|)`, a few for ReLU features.
/// 5× the inference bound. Measured: ≤ 5.9e-7.
pub const TRAINING_REL: f64 = 5.0 * INFERENCE_REL;

/// Gradients: a conv weight's gradient is a sum over batch × output length = 10 × 48 = 480
/// positions, `γ_480 ≈ 2.9e-5`, after BatchNorm's backward (the amplification above), rounded to
/// 5e-5. Measured: ≤ 1.4e-6.
pub const GRADIENT_REL: f64 = 5.0 * INFERENCE_REL;

/// `γ_n`, for the bounds above (and for tests that derive their own).
#[allow(dead_code)] // used by the backend test suite
pub const fn gamma(n: usize) -> f64 {
    n as f64 * UNIT_ROUNDOFF
}

/// How far `got` is from `reference`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diff {
    /// `max |got − reference|`.
    pub max_abs: f64,
    /// `max_abs / max |reference|` (0 when both are all zero, infinite when only the
    /// reference is).
    pub max_rel: f64,
}

impl Diff {
    /// Compares two tensors' values; different lengths are an infinite difference.
    pub fn between(got: &[f32], reference: &[f32]) -> Self {
        if got.len() != reference.len() {
            return Self {
                max_abs: f64::INFINITY,
                max_rel: f64::INFINITY,
            };
        }
        let mut max_abs = 0.0f64;
        let mut scale = 0.0f64;
        for (&g, &r) in got.iter().zip(reference) {
            let d = (f64::from(g) - f64::from(r)).abs();
            // NaN anywhere is a failure, not a silently ignored comparison.
            max_abs = if d.is_nan() {
                f64::INFINITY
            } else {
                max_abs.max(d)
            };
            scale = scale.max(f64::from(r).abs());
        }
        let max_rel = if max_abs == 0.0 {
            0.0
        } else if scale == 0.0 {
            f64::INFINITY
        } else {
            max_abs / scale
        };
        Self { max_abs, max_rel }
    }

    /// Whether the difference is within `quantity`'s tolerance.
    pub fn within(&self, quantity: Quantity) -> bool {
        self.max_rel <= quantity.tolerance()
    }
}
