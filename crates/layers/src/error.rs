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
    /// A checkpoint could not be read or written for a reason no narrower variant covers
    /// (a target that is not a directory, a directory that is not a checkpoint, ...).
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: String, reason: String },
    /// A checkpoint directory or one of its files does not exist.
    #[error("checkpoint {path}: {what} not found")]
    CheckpointNotFound { path: String, what: String },
    /// The operating system refused a checkpoint read or write.
    #[error("checkpoint {path}: {source}")]
    CheckpointIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `model.json` is not JSON, not a widen model, or lacks a required field.
    #[error("checkpoint {path}: {reason}")]
    ModelJson { path: String, reason: String },
    /// `model.json` declares a format version this build cannot read.
    #[error(
        "checkpoint {path}: format version {found} is not supported (this build reads versions {oldest} to {supported})"
    )]
    CheckpointVersion {
        path: String,
        found: String,
        supported: u32,
        oldest: u32,
    },
    /// One layer of the architecture in `model.json` cannot be read (an unknown layer type, a
    /// missing or mistyped field).
    #[error("checkpoint {path}: layer {index} (`{name}`): {reason}")]
    LayerSpecJson {
        path: String,
        index: usize,
        name: String,
        reason: String,
    },
    /// The architecture in `model.json` parses but does not build (or, on save, disagrees with
    /// the model's tensors).
    #[error("checkpoint {path}: invalid architecture: {source}")]
    InvalidSpec {
        path: String,
        #[source]
        source: Box<LayerError>,
    },
    /// The weights file is truncated or is not a valid container of its format.
    #[error("checkpoint {path}: corrupt weights file: {reason}")]
    CorruptWeights { path: String, reason: String },
    /// The weights file lacks a tensor the architecture needs.
    #[error("checkpoint {path}: tensor `{tensor}` (expected shape {expected:?}) is missing")]
    MissingTensor {
        path: String,
        tensor: String,
        expected: Vec<usize>,
    },
    /// The weights file holds a tensor the architecture has no place for.
    #[error(
        "checkpoint {path}: unexpected tensor `{tensor}` with shape {shape:?} (not in the architecture)"
    )]
    UnexpectedTensor {
        path: String,
        tensor: String,
        shape: Vec<usize>,
    },
    /// A weight tensor has the wrong shape.
    #[error("checkpoint {path}: tensor `{tensor}`: expected shape {expected:?}, got {got}")]
    WeightShape {
        path: String,
        tensor: String,
        expected: Vec<usize>,
        got: String,
    },
    /// A stored tensor has an element type widen does not read (only F32 and F64).
    #[error("checkpoint {path}: tensor `{tensor}` has dtype {dtype}, expected F32 or F64")]
    WeightDtype {
        path: String,
        tensor: String,
        dtype: String,
    },
    /// A stored tensor's bytes do not match the CRC-32 recorded beside them.
    #[error(
        "checkpoint {path}: tensor `{tensor}` fails its CRC-32 check (recorded {recorded}, computed {computed}): the data is corrupt"
    )]
    WeightChecksum {
        path: String,
        tensor: String,
        recorded: String,
        computed: String,
    },
    /// A tensor holds NaN or an infinity.
    #[error(
        "checkpoint {path}: tensor `{tensor}` holds the non-finite value {value} at flat index {index}"
    )]
    NonFiniteWeight {
        path: String,
        tensor: String,
        index: usize,
        value: f32,
    },
    /// A statistic that no data can produce (a negative variance): the file is corrupt or was
    /// edited, and running it would give NaN.
    #[error(
        "checkpoint {path}: tensor `{tensor}` holds {value} at flat index {index}, but {expected}; refusing a checkpoint that would predict NaN"
    )]
    InvalidStatistic {
        path: String,
        tensor: String,
        index: usize,
        value: f32,
        expected: String,
    },
    /// A request larger than the memory budget (see `widen_guard`).
    #[error(transparent)]
    Budget(#[from] widen_guard::BudgetError),
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
