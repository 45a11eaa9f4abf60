//! Fine-tuning for widen models: the training loop the CLI's `widen fit` and the study run.
//!
//! **Owns:** batches from a [`widen_data::Dataset`] in the model's layout, the loss (from logits
//! or from probabilities, whichever the model ends in), evaluation with a confusion matrix, the
//! recipes ([`Recipe::Plain`], [`Recipe::NewOnly`], [`Recipe::Staged`]), early stopping on
//! validation, best-checkpoint keeping, resumption after a kill, the per-epoch history and the
//! divergence guard.
//! Also the study ([`study`]: every strategy trained side by side, its Markdown/JSON/SVG
//! report) and the benchmark shapes ([`bench`](mod@bench)), on the same loaders and loss.
//!
//! Dependencies beyond burn and widen's own crates: with the `png` feature (the CLI turns it
//! on), resvg rasterises the study's figure. It is the maintained pure-Rust SVG renderer (no C
//! library, text through fontdb's system fonts); the figure itself is hand-written SVG, since a
//! few polylines and polygons need no plotting crate.
//!
//! **Must not know:** argument parsing or progress bars (the CLI prints; this crate reports
//! through callbacks).
//!
//! Why not burn-train's `Learner`: it drives training through its own `TrainStep`/`ValidStep`
//! traits over `burn::data` dataloaders and writes its own checkpoint and metric files; a
//! widened model needs per-phase freezing, gradient masks on the new kernel slices between
//! backward and the optimiser step, and a resumable state that reproduces an uninterrupted run
//! bit for bit (stable parameter ids, the optimiser's record, the seeded batch order). The loop
//! here is about 400 lines and uses burn's `ModuleOptimizer` (Adam, its record and gradient
//! clipping) directly.

mod batch;
pub mod bench;
mod error;
mod fit;
mod loss;
pub mod study;

pub use batch::{batch, labels_of, stable_param_ids};
pub use error::TrainError;
pub use fit::{
    EpochRecord, Expanded, FitConfig, FitOutcome, History, Recipe, fit, fit_observed, state_dir_for,
};
pub use loss::{Evaluation, OutputKind, Score, evaluate, loss_of, output_kind, score};
