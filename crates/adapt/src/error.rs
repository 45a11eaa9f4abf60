use thiserror::Error;
use widen_init::InitError;
use widen_layers::LayerError;
use widen_ops::OpsError;

/// Everything an expansion or a diagnostic can refuse. Messages name what was asked and what
/// the model has.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AdaptError {
    /// Fewer channels than the model has, without saying which to keep.
    #[error(
        "cannot widen {old} input channels to {new}: that is fewer; pass an explicit channel selection (Placement::Keep) to drop channels"
    )]
    FewerChannels { old: usize, new: usize },
    /// Asked to widen to the width the model already has.
    #[error(
        "the model already has {channels} input channels: nothing to widen; pass a larger channel count"
    )]
    SameWidth { channels: usize },
    /// A request larger than the memory budget.
    #[error(transparent)]
    Budget(#[from] widen_guard::BudgetError),
    /// No layer of that name.
    #[error("no layer named `{name}` in the model (layers: {available})")]
    NoSuchLayer { name: String, available: String },
    /// The layer exists but is not a Conv1d.
    #[error("layer `{name}` is a {kind}, not a Conv1D")]
    NotConv1d { name: String, kind: String },
    /// The Conv1d does not read the model input, so its input width is not the model's.
    #[error(
        "layer `{name}` (layer {index}) does not read the model input's channels; only the layers that do can be widened (all of them are, together)"
    )]
    NotInputConv { name: String, index: usize },
    /// A layer that reads the input's channels cannot be widened by this strategy.
    #[error("layer `{name}` ({kind}) cannot be widened: {reason}")]
    CannotWiden {
        name: String,
        kind: String,
        reason: String,
    },
    /// A grouped convolution that cannot be widened as asked.
    #[error("layer `{name}` has groups = {groups}: {reason}")]
    Groups {
        name: String,
        groups: usize,
        reason: String,
    },
    /// A channel map that is not one-to-one or out of range.
    #[error("bad channel map: {0}")]
    BadIndexMap(String),
    /// Data given to a diagnostic or to `Standardize` does not fit.
    #[error("data: {0}")]
    Data(String),
    /// A layer refused.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// A tensor op refused.
    #[error(transparent)]
    Ops(#[from] OpsError),
    /// An initializer refused.
    #[error(transparent)]
    Init(#[from] InitError),
}
