use thiserror::Error;
use widen_init::InitError;
use widen_ops::OpsError;

/// Everything that can go wrong building, running, saving or loading a layer or model. Messages
/// name the layer, what was expected and what came.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The input's channel count is not the one the layer was built for (Keras raises a
    /// `ValueError` here; Burn panics).
    #[error("layer `{layer}`: expected {expected} input channels, got {got}")]
    ChannelMismatch {
        layer: String,
        expected: usize,
        got: usize,
    },
    /// The input has the wrong rank or shape.
    #[error("layer `{layer}`: expected input shape {expected}, got {got:?}")]
    InputShape {
        layer: String,
        expected: String,
        got: Vec<usize>,
    },
    /// A layer configuration that cannot work (zero filters, rate outside [0, 1), ...).
    #[error("layer `{layer}`: invalid config: {reason}")]
    Config { layer: String, reason: String },
    /// A tensor op refused its arguments.
    #[error("layer `{layer}`: {source}")]
    Ops {
        layer: String,
        #[source]
        source: OpsError,
    },
    /// An initializer refused its arguments.
    #[error("layer `{layer}`: {source}")]
    Init {
        layer: String,
        #[source]
        source: InitError,
    },
    /// A checkpoint could not be read or written.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    /// A weight tensor in a checkpoint has the wrong shape or is missing.
    #[error("checkpoint {path}: tensor `{tensor}`: expected shape {expected:?}, got {got}")]
    WeightShape {
        path: String,
        tensor: String,
        expected: Vec<usize>,
        got: String,
    },
}

impl LayerError {
    pub(crate) fn config(layer: &str, reason: impl Into<String>) -> Self {
        Self::Config {
            layer: layer.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn ops(layer: &str) -> impl FnOnce(OpsError) -> Self + '_ {
        move |source| match source {
            // Lift channel mismatches to the layer level: that is the error users meet first.
            OpsError::ChannelMismatch { expected, got, .. } => Self::ChannelMismatch {
                layer: layer.to_string(),
                expected,
                got,
            },
            source => Self::Ops {
                layer: layer.to_string(),
                source,
            },
        }
    }

    pub(crate) fn init(layer: &str) -> impl FnOnce(InitError) -> Self + '_ {
        move |source| Self::Init {
            layer: layer.to_string(),
            source,
        }
    }
}
