//! What can go wrong training or scoring a model.

use thiserror::Error;

/// A failed fit or evaluation; messages name what was expected and what came.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A model or layer error (shapes, channels, a checkpoint).
    #[error(transparent)]
    Layer(#[from] widen_layers::LayerError),
    /// An expansion error (freezing, masks).
    #[error(transparent)]
    Adapt(#[from] widen_adapt::AdaptError),
    /// A data error.
    #[error(transparent)]
    Data(#[from] widen_data::DataError),
    /// The memory budget refused a size.
    #[error(transparent)]
    Budget(#[from] widen_guard::BudgetError),
    /// Data that does not fit the model or the task.
    #[error("{0}")]
    Mismatch(String),
    /// A setting that cannot work.
    #[error("invalid training setting: {0}")]
    Config(String),
    /// The loss became NaN or infinite.
    #[error(
        "training diverged at epoch {epoch}, step {step}: the loss is {loss} (learning rate {learning_rate}); lower --lr or set --clip-norm"
    )]
    Diverged {
        /// Epoch (1-based).
        epoch: usize,
        /// Step within the run (1-based).
        step: usize,
        /// The loss value.
        loss: f64,
        /// The learning rate in use.
        learning_rate: f64,
    },
    /// The resumable state could not be written or read.
    #[error("training state {path}: {reason}")]
    State {
        /// The state directory.
        path: String,
        /// What failed.
        reason: String,
    },
}
