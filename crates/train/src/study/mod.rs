//! `widen study`: why does a Conv1D model go erratic when its input widens, and what helps?
//!
//! For each scenario (a labelled train/test pair and which channels are old), each architecture
//! ([`Arch`]: the seed's Ex1 stack, FCN, ResNet) and each seed:
//! 1. the **base** model trains on the old channels ([`fit`](crate::fit), plain recipe, early
//!    stopping on a stratified validation split of the training data);
//! 2. every **variant** starts from it widened with one strategy (or, for `scratch`, from a new
//!    model on all channels) and fine-tunes through the same `fit` with the same validation
//!    split, so the study trains exactly what `widen fit` trains. The `auto+staged` variant is
//!    what a user gets from `widen expand --strategy auto` followed by `widen fit` with its
//!    defaults.
//!
//! After every epoch the model is scored on the test split (no decision uses it), giving the
//! curves and the per-run measures: steps to recover the base accuracy, steps to reach the
//! scratch model's accuracy, the worst dip below the base, loss jumps, spikes, gradient norms,
//! the BatchNorm statistic shift and the function drift at step 0. Seeds are paired (same base,
//! same data, same validation split), so the report compares variants by per-seed differences
//! with 95% t-intervals. Everything is seeded; the same seeds give the same `study.json`.

#[cfg(feature = "png")]
mod png;
mod report;
mod stats;
mod svg;

use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use serde::Serialize;
use thiserror::Error;
use widen_adapt::{
    AdaptError, ExpandRequest, Placement, ProjectionInit, Strategy, batchnorm_shift,
    channel_scales, drift, expand, recommend, standardize,
};
use widen_data::{DataError, Dataset};
use widen_init::Initializer;
use widen_layers::zoo::{FcnConfig, ResNetConfig, fcn, resnet};
use widen_layers::{
    Activation, BatchNormConfig, Conv1dConfig, DataFormat, DenseConfig, InputSpec, LayerConfig,
    LayerError, Model, ModelSpec,
};

pub use report::{OUTPUT_FILES, StudyFiles, markdown, write_outputs};
pub use stats::{Paired, Stat, t975};

use crate::{EpochRecord, Expanded, FitConfig, Recipe, TrainError, batch, fit_observed, score};

/// The layout every study model takes: the datasets hold each case channels-first.
const FORMAT: DataFormat = DataFormat::ChannelsFirst;

/// What can stop a study.
#[derive(Debug, Error)]
pub enum StudyError {
    /// A bad setting.
    #[error("study config: {0}")]
    Config(String),
    /// Data could not be loaded or generated.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A model could not be built or run.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// An expansion was refused.
    #[error(transparent)]
    Adapt(#[from] AdaptError),
    /// Training failed (a non-finite loss names the step and the learning rate). Boxed: it
    /// nests the other errors and would make every study result large.
    #[error(transparent)]
    Train(Box<TrainError>),
    /// Output could not be written.
    #[error("writing {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
}

impl From<TrainError> for StudyError {
    fn from(e: TrainError) -> Self {
        Self::Train(Box::new(e))
    }
}

/// One dataset pair and which channels are old.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name (`real_sensors`, `controlled`).
    pub name: String,
    /// What it is, for the report.
    pub description: String,
    /// Training split, all channels (the study holds out its validation split from it).
    pub train: Dataset,
    /// Test split, all channels.
    pub test: Dataset,
    /// Indices of the channels the base model is trained on.
    pub old_channels: Vec<usize>,
}

/// The architectures the study trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// The seed's Ex1 stack: Conv1D(32, 3, relu) → BatchNorm → GlobalMaxPool → Dense.
    Ex1,
    /// FCN (Wang et al. 2017) at a third of the paper's widths (32, 64, 32; kernels 8, 5, 3).
    Fcn,
    /// ResNet (Wang et al. 2017) at a quarter of the paper's widths (blocks of 16, 32, 32);
    /// its input has two readers (the first conv and the 1×1 shortcut), both widened.
    #[serde(rename = "resnet")]
    ResNet,
}

impl Arch {
    /// All of them, in report order.
    pub const ALL: [Arch; 3] = [Arch::Ex1, Arch::Fcn, Arch::ResNet];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ex1 => "ex1",
            Self::Fcn => "fcn",
            Self::ResNet => "resnet",
        }
    }

    /// Parses a command-line name.
    pub fn parse(name: &str) -> Result<Self, StudyError> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == name)
            .ok_or_else(|| {
                StudyError::Config(format!(
                    "unknown architecture `{name}` (expected ex1, fcn, resnet)"
                ))
            })
    }

    /// The model for `channels` inputs of `length` steps and `classes` classes.
    pub fn spec(self, channels: usize, length: usize, classes: usize) -> ModelSpec {
        let input = InputSpec::new(channels)
            .with_length(length)
            .with_data_format(FORMAT);
        match self {
            Self::Ex1 => ModelSpec::new(input)
                .push(LayerConfig::Conv1d(
                    Conv1dConfig::new(32, 3).with_activation(Activation::Relu),
                ))
                .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
                .push(LayerConfig::GlobalMaxPool1d)
                .push(LayerConfig::Dense(DenseConfig::new(classes))),
            Self::Fcn => fcn(
                input,
                classes,
                &FcnConfig {
                    filters: [32, 64, 32],
                    kernels: [8, 5, 3],
                },
            ),
            Self::ResNet => resnet(
                input,
                classes,
                &ResNetConfig {
                    filters: vec![16, 32, 32],
                    kernels: [8, 5, 3],
                },
            ),
        }
    }
}

/// How a variant's model starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Start {
    /// A new model on all channels, Keras default init, trained as long as the base (the
    /// reference a widened model should reach).
    Scratch,
    /// The trained base, widened with this strategy.
    Expand {
        /// The strategy.
        strategy: Strategy,
    },
    /// The trained base, widened with what `widen expand --strategy auto` recommends for the
    /// training data (strategy and standardisation).
    Recommended,
}

/// One variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variant {
    /// Name used in tables and the plot.
    pub name: String,
    /// Where it starts.
    pub start: Start,
    /// Standardise the new channels from the training data first (`Recommended` decides
    /// itself).
    pub standardize: bool,
    /// The fit recipe.
    pub recipe: Recipe,
}

/// The variant every other is compared against first.
pub const SCRATCH: &str = "scratch+std";
/// The recommended road: `expand --strategy auto`, then `fit` with its defaults.
pub const RECOMMENDED: &str = "auto+staged";

fn variant(name: &str, start: Start, standardize: bool, recipe: Recipe) -> Variant {
    Variant {
        name: name.to_string(),
        start,
        standardize,
        recipe,
    }
}

/// The default variants: a scratch model, the naive widenings (Keras-style random slices,
/// repeat, fan), the function-preserving ones with and without standardisation, and the
/// recommended road.
pub fn default_variants() -> Vec<Variant> {
    let e = |s: Strategy| Start::Expand { strategy: s };
    let random = Strategy::FanScaled {
        initializer: Initializer::glorot_uniform(),
        rescale_old: false,
    };
    let fan = Strategy::FanScaled {
        initializer: Initializer::he_normal(),
        rescale_old: true,
    };
    let projection = Strategy::Projection {
        init: ProjectionInit::Identity,
    };
    vec![
        variant(SCRATCH, Start::Scratch, true, Recipe::Plain),
        variant("random", e(random), false, Recipe::Plain),
        variant("repeat", e(Strategy::RepeatRescale), false, Recipe::Plain),
        variant("fan", e(fan), false, Recipe::Plain),
        variant("zero", e(Strategy::Zero), false, Recipe::Plain),
        variant("zero+std", e(Strategy::Zero), true, Recipe::Plain),
        variant("projection+std", e(projection), true, Recipe::Plain),
        variant(RECOMMENDED, Start::Recommended, true, Recipe::Staged),
    ]
}

/// Epochs have at least this many steps (the batch shrinks on small datasets).
pub const MIN_STEPS_PER_EPOCH: usize = 4;

/// Study settings. Budgets are in optimiser steps, turned into whole epochs per dataset, so a
/// small dataset (BasicMotions: 32 training cases) trains as many steps as a large one.
#[derive(Debug, Clone, Serialize)]
pub struct StudyConfig {
    /// Seeds; each gives its own validation split, base model, init and batch order.
    pub seeds: Vec<u64>,
    /// Architectures.
    pub archs: Vec<Arch>,
    /// Steps of the base and of `scratch+std`, at most (early stopping on validation).
    pub base_steps: usize,
    /// Fine-tuning steps of each widened variant (the staged recipe may stop earlier).
    pub steps: usize,
    /// Cases per step (both phases).
    pub batch_size: usize,
    /// Adam learning rate of the base and of `scratch+std`.
    pub learning_rate: f64,
    /// Adam learning rate of fine-tuning (`fit`'s default).
    pub finetune_learning_rate: f64,
    /// Early-stopping patience of the base and of `scratch+std`, in steps.
    pub base_patience: usize,
    /// Fraction of the training split held out for validation.
    pub validation_fraction: f64,
    /// A step is a spike when its loss exceeds this multiple of the mean of the five before
    /// (`fit`'s measure).
    pub spike_factor: f64,
    /// The variants.
    pub variants: Vec<Variant>,
    /// (architecture, seed) jobs run side by side; 0: one per core. Not part of the results
    /// (they do not depend on it), so not in `study.json`.
    #[serde(skip)]
    pub threads: usize,
}

impl Default for StudyConfig {
    fn default() -> Self {
        let fit = FitConfig::default();
        Self {
            seeds: vec![1, 2, 3, 4, 5],
            archs: Arch::ALL.to_vec(),
            base_steps: 400,
            steps: 160,
            batch_size: 32,
            learning_rate: 3e-3,
            finetune_learning_rate: fit.learning_rate,
            base_patience: 100,
            validation_fraction: 0.2,
            spike_factor: fit.spike_factor,
            variants: default_variants(),
            threads: 0,
        }
    }
}

impl StudyConfig {
    fn validate(&self) -> Result<(), StudyError> {
        let bad = |m: String| Err(StudyError::Config(m));
        if self.seeds.is_empty() || self.variants.is_empty() || self.archs.is_empty() {
            return bad("need at least one seed, one architecture and one variant".into());
        }
        let lr_ok = |lr: f64| lr > 0.0 && lr.is_finite();
        if self.batch_size == 0 || !lr_ok(self.learning_rate) || !lr_ok(self.finetune_learning_rate)
        {
            return bad(format!(
                "batch size must be > 0 and learning rates finite and > 0 (got {}, {}, {})",
                self.batch_size, self.learning_rate, self.finetune_learning_rate
            ));
        }
        if self.base_steps == 0 || self.steps == 0 || self.base_patience == 0 {
            return bad(format!(
                "steps and patience must be > 0 (got base {}, fine-tune {}, patience {})",
                self.base_steps, self.steps, self.base_patience
            ));
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 1.0) {
            return bad(format!(
                "the validation fraction must be in (0, 1), got {}",
                self.validation_fraction
            ));
        }
        Ok(())
    }

    /// The batch on `cases` training cases: the configured one, but small enough for
    /// [`MIN_STEPS_PER_EPOCH`] steps, so a tiny dataset is not scored after every single step.
    fn batch_for(&self, cases: usize) -> usize {
        self.batch_size
            .min(cases.div_ceil(MIN_STEPS_PER_EPOCH))
            .max(1)
    }

    /// Steps per epoch on `cases` training cases.
    fn steps_per_epoch(&self, cases: usize) -> usize {
        cases.div_ceil(self.batch_for(cases)).max(1)
    }

    /// Whole epochs covering `steps` (at least one).
    fn epochs_for(&self, steps: usize, cases: usize) -> usize {
        steps.div_ceil(self.steps_per_epoch(cases)).max(1)
    }

    /// The base's and scratch's fit: plain, early stopping.
    fn base_fit(&self, seed: u64, cases: usize) -> FitConfig {
        FitConfig {
            recipe: Recipe::Plain,
            epochs: self.epochs_for(self.base_steps, cases),
            batch_size: self.batch_for(cases),
            learning_rate: self.learning_rate,
            seed,
            patience: Some(self.epochs_for(self.base_patience, cases)),
            spike_factor: self.spike_factor,
            ..FitConfig::default()
        }
    }

    fn fit_config(&self, v: &Variant, seed: u64, cases: usize) -> FitConfig {
        if v.start == Start::Scratch {
            return self.base_fit(seed, cases);
        }
        let defaults = FitConfig::default();
        FitConfig {
            recipe: v.recipe,
            epochs: self.epochs_for(self.steps, cases),
            batch_size: self.batch_for(cases),
            learning_rate: self.finetune_learning_rate,
            seed,
            // The recommended road is `widen fit` as it ships (its patience and phases); the
            // others train every epoch so the curve shows the whole way (`fit` still returns
            // the best validation checkpoint).
            patience: if v.recipe == Recipe::Staged {
                defaults.patience
            } else {
                None
            },
            spike_factor: self.spike_factor,
            ..defaults
        }
    }
}

/// One point of a curve, after `step` optimiser steps (step 0: the starting model).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Optimiser steps so far.
    pub step: usize,
    /// Mean training-batch loss of the epoch that ended here (NaN at step 0).
    pub train_loss: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_accuracy: f64,
    /// Test loss.
    pub test_loss: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
}

/// One variant on one seed.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Seed.
    pub seed: u64,
    /// What `auto` chose (strategy and standardisation), for the recommended variant.
    pub chosen: Option<String>,
    /// Test accuracy of the starting model.
    pub accuracy_before: f64,
    /// Test accuracy of the checkpoint `fit` keeps (best on validation): what the user gets.
    pub accuracy_kept: f64,
    /// Training-split accuracy of the kept checkpoint (with `accuracy_kept`: the gap).
    pub train_accuracy_kept: f64,
    /// Test accuracy after the last epoch trained.
    pub accuracy_last: f64,
    /// Training loss of the starting model (inference mode, training split).
    pub loss_step0: f64,
    /// Mean |Δ output| against the base on the test cases (the base sees the old channels).
    pub drift_step0: f64,
    /// Mean BatchNorm |μ_batch − μ_moving| / σ_moving on training cases, before fine-tuning.
    pub bn_shift_step0: f64,
    /// Steps until the test accuracy first reached the base's (0: it started there).
    pub steps_to_base: Option<usize>,
    /// Steps until it first reached this seed's `scratch+std` kept accuracy.
    pub steps_to_scratch: Option<usize>,
    /// Deepest fall of test accuracy below the base's over the curve (0 if never below).
    pub worst_dip: f64,
    /// Largest step-to-step rise of the batch loss.
    pub max_loss_jump: f64,
    /// Spike steps (`fit`'s measure).
    pub spikes: usize,
    /// Largest global gradient norm.
    pub max_grad_norm: f64,
    /// Optimiser steps per epoch.
    pub steps_per_epoch: usize,
    /// Epochs trained (the staged recipe may stop early).
    pub epochs_run: usize,
    /// The epoch `fit` kept (0: the starting model).
    pub best_epoch: usize,
    /// The curve, step 0 first.
    pub curve: Vec<Point>,
}

/// A measure that some runs never reach: statistics over those that did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Reached {
    /// Runs that reached it.
    pub reached: usize,
    /// Runs in all.
    pub of: usize,
    /// Over the runs that reached it.
    pub steps: Stat,
}

impl Reached {
    fn of(values: &[Option<usize>]) -> Self {
        let got: Vec<f64> = values.iter().flatten().map(|&s| s as f64).collect();
        Self {
            reached: got.len(),
            of: values.len(),
            steps: Stat::of(&got),
        }
    }
}

/// Per-variant statistics over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// See [`Run`].
    pub accuracy_before: Stat,
    /// See [`Run`].
    pub accuracy_kept: Stat,
    /// See [`Run`].
    pub train_accuracy_kept: Stat,
    /// See [`Run`].
    pub accuracy_last: Stat,
    /// See [`Run`].
    pub loss_step0: Stat,
    /// See [`Run`].
    pub drift_step0: Stat,
    /// See [`Run`].
    pub bn_shift_step0: Stat,
    /// See [`Run`].
    pub steps_to_base: Reached,
    /// See [`Run`].
    pub steps_to_scratch: Reached,
    /// See [`Run`].
    pub worst_dip: Stat,
    /// See [`Run`].
    pub max_loss_jump: Stat,
    /// See [`Run`].
    pub spikes: Stat,
    /// See [`Run`].
    pub max_grad_norm: Stat,
}

impl Summary {
    fn of(runs: &[Run]) -> Self {
        let s = |f: fn(&Run) -> f64| Stat::of(&runs.iter().map(f).collect::<Vec<_>>());
        let r = |f: fn(&Run) -> Option<usize>| Reached::of(&runs.iter().map(f).collect::<Vec<_>>());
        Self {
            accuracy_before: s(|r| r.accuracy_before),
            accuracy_kept: s(|r| r.accuracy_kept),
            train_accuracy_kept: s(|r| r.train_accuracy_kept),
            accuracy_last: s(|r| r.accuracy_last),
            loss_step0: s(|r| r.loss_step0),
            drift_step0: s(|r| r.drift_step0),
            bn_shift_step0: s(|r| r.bn_shift_step0),
            steps_to_base: r(|r| r.steps_to_base),
            steps_to_scratch: r(|r| r.steps_to_scratch),
            worst_dip: s(|r| r.worst_dip),
            max_loss_jump: s(|r| r.max_loss_jump),
            spikes: s(|r| r.spikes as f64),
            max_grad_norm: s(|r| r.max_grad_norm),
        }
    }
}

/// The measures compared pairwise across seeds.
pub const PAIRED_METRICS: [&str; 3] = ["accuracy_kept", "accuracy_last", "worst_dip"];

fn metric(r: &Run, name: &str) -> f64 {
    match name {
        "accuracy_kept" => r.accuracy_kept,
        "accuracy_last" => r.accuracy_last,
        _ => r.worst_dip,
    }
}

/// A variant's runs, summary and paired comparisons.
#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    /// The variant.
    pub variant: Variant,
    /// Its runs, one per seed.
    pub runs: Vec<Run>,
    /// Statistics over seeds.
    pub summary: Summary,
    /// Per-seed differences against `scratch+std` and against the recommended road, for each
    /// of [`PAIRED_METRICS`] (absent where the reference is not in the study, or is this one).
    pub paired: Vec<Paired>,
}

/// The base model of one scenario and architecture.
#[derive(Debug, Clone, Serialize)]
pub struct BaseResult {
    /// Test accuracy on the old channels, per seed.
    pub test_accuracy: Vec<f64>,
    /// Training-split accuracy, per seed (the train/test gap).
    pub train_accuracy: Vec<f64>,
    /// Epochs trained, per seed.
    pub epochs_run: Vec<usize>,
    /// Statistics of `test_accuracy`.
    pub test: Stat,
    /// Statistics of `train_accuracy`.
    pub train: Stat,
}

/// One scenario on one architecture.
#[derive(Debug, Clone, Serialize)]
pub struct ArchResult {
    /// The architecture.
    pub arch: Arch,
    /// Parameters of the base model.
    pub base_parameters: usize,
    /// The base model.
    pub base: BaseResult,
    /// Per variant.
    pub variants: Vec<VariantResult>,
}

/// A scenario's results.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Old channel indices.
    pub old_channels: Vec<usize>,
    /// All channels.
    pub new_channels: usize,
    /// Training cases (before the validation split).
    pub train_cases: usize,
    /// Validation cases held out of them.
    pub val_cases: usize,
    /// Test cases.
    pub test_cases: usize,
    /// Classes.
    pub classes: usize,
    /// Per architecture.
    pub archs: Vec<ArchResult>,
}

/// Wall time, kept out of `study.json` (which must reproduce exactly).
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Scenario.
    pub scenario: String,
    /// Architecture.
    pub arch: String,
    /// Variant (or `base`).
    pub variant: String,
    /// Seconds, summed over seeds.
    pub seconds: f64,
}

/// The whole study.
#[derive(Debug, Clone, Serialize)]
pub struct StudyResult {
    /// Settings.
    pub config: StudyConfig,
    /// Backend name.
    pub backend: String,
    /// Per scenario.
    pub scenarios: Vec<ScenarioResult>,
    /// Wall times (written apart: they do not reproduce).
    #[serde(skip)]
    pub timing: Vec<Timing>,
}

/// Progress callbacks (the CLI shows bars; tests pass no-ops).
pub trait Progress {
    /// Called with the total number of epochs the study will train at most.
    fn start(&mut self, total_epochs: u64);
    /// Called with a short message when a run starts.
    fn run(&mut self, message: &str);
    /// Called after every epoch, with the epochs a run skipped by stopping early on the
    /// first call after it.
    fn step(&mut self, epochs: u64);
}

/// No progress output.
#[derive(Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: u64) {}
    fn run(&mut self, _: &str) {}
    fn step(&mut self, _: u64) {}
}

/// Runs the study on `device` (plain; training uses its autodiff twin).
pub fn run(
    scenarios: &[Scenario],
    config: &StudyConfig,
    device: &Device,
    backend: &str,
    progress: &mut dyn Progress,
) -> Result<StudyResult, StudyError> {
    config.validate()?;
    let mut total = 0usize;
    for s in scenarios {
        // The validation split takes about this many cases out of training.
        let cases = s.train.cases - (s.train.cases as f64 * config.validation_fraction) as usize;
        let base = config.epochs_for(config.base_steps, cases);
        let per_seed = config
            .variants
            .iter()
            .map(|v| match v.start {
                Start::Scratch => base,
                _ => config.epochs_for(config.steps, cases),
            })
            .fold(base, usize::saturating_add);
        total = total.saturating_add(
            per_seed
                .saturating_mul(config.archs.len())
                .saturating_mul(config.seeds.len()),
        );
    }
    // Every epoch keeps one curve point (six f64) per run.
    widen_guard::budget()
        .check_elements("the study's curves", &[total, 6], 8)
        .map_err(|e| StudyError::Config(e.to_string()))?;
    progress.start(total as u64);
    let train_device = device.clone().autodiff();
    let mut results = Vec::new();
    let mut timing = Vec::new();
    for scenario in scenarios {
        let (r, t) = run_scenario(scenario, config, device, &train_device, progress)?;
        results.push(r);
        timing.extend(t);
    }
    Ok(StudyResult {
        config: config.clone(),
        backend: backend.to_string(),
        scenarios: results,
        timing,
    })
}

/// The old-channel and all-channel views of one seed's splits, and what every variant of
/// the seed standardises with.
struct Splits {
    fit: Dataset,
    val: Dataset,
    test: Dataset,
    old_fit: Dataset,
    old_val: Dataset,
    old_test: Dataset,
    /// All of `fit` on the training device: the standardisation statistics' sample.
    fit_sample: burn::tensor::Tensor<3>,
    /// Indices of the new channels.
    new_positions: Vec<usize>,
}

fn classes_of(s: &Scenario) -> usize {
    s.train.class_names.len().max(
        s.train
            .labels
            .iter()
            .chain(&s.test.labels)
            .max()
            .map_or(0, |m| m + 1),
    )
}

/// What one (architecture, seed) job produced.
struct SeedResult {
    base_test: f64,
    base_train: f64,
    base_epochs: usize,
    base_parameters: usize,
    val_cases: usize,
    runs: Vec<Run>,
    /// Base first, then per variant.
    seconds: Vec<f64>,
}

/// A progress event from a worker, forwarded to the caller's [`Progress`] on its thread.
enum Event {
    Run(String),
    Step(u64),
}

/// Where a worker reports progress.
#[derive(Clone)]
struct Reporter(std::sync::mpsc::Sender<Event>);

impl Reporter {
    fn run(&self, message: String) {
        // The receiver lives until every worker ends: a failed send only loses a bar update.
        let _ = self.0.send(Event::Run(message));
    }
    fn step(&self, epochs: u64) {
        let _ = self.0.send(Event::Step(epochs));
    }
}

/// Workers running (architecture, seed) jobs side by side: the networks are small, so one job
/// keeps about one core busy. Each job is independent and seeded, and results are put back in
/// job order, so the output does not depend on how many ran at once.
fn workers(config: &StudyConfig, jobs: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wanted = if config.threads == 0 {
        cores
    } else {
        config.threads
    };
    wanted.clamp(1, jobs.max(1))
}

fn run_scenario(
    s: &Scenario,
    config: &StudyConfig,
    device: &Device,
    train_device: &Device,
    progress: &mut dyn Progress,
) -> Result<(ScenarioResult, Vec<Timing>), StudyError> {
    for (set, split) in [(&s.train, "training"), (&s.test, "test")] {
        crate::loss::require_labels(set, &format!("{} ({split} split)", s.name))?;
    }
    let classes = classes_of(s);
    let jobs: Vec<(Arch, u64)> = config
        .archs
        .iter()
        .flat_map(|&a| config.seeds.iter().map(move |&seed| (a, seed)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Result<SeedResult, StudyError>>>> =
        jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let (tx, rx) = std::sync::mpsc::channel::<Event>();
    std::thread::scope(|scope| {
        for _ in 0..workers(config, jobs.len()) {
            let reporter = Reporter(tx.clone());
            let (jobs, next, slots) = (&jobs, &next, &slots);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(arch, seed)) = jobs.get(i) else {
                        break;
                    };
                    let job = SeedJob {
                        s,
                        arch,
                        classes,
                        config,
                        device,
                        train_device,
                        reporter: &reporter,
                    };
                    let result = job.run(seed);
                    let failed = result.is_err();
                    if let Ok(mut slot) = slots[i].lock() {
                        *slot = Some(result);
                    }
                    if failed {
                        // Stop handing out work: the study fails with the first error.
                        next.store(jobs.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
        drop(tx);
        for event in rx {
            match event {
                Event::Run(m) => progress.run(&m),
                Event::Step(n) => progress.step(n),
            }
        }
    });
    let mut results = Vec::with_capacity(jobs.len());
    for slot in slots {
        match slot.into_inner().ok().flatten() {
            Some(Ok(r)) => results.push(r),
            Some(Err(e)) => return Err(e),
            None => {
                return Err(StudyError::Config(
                    "a study job ended without a result (a worker stopped after another failed)"
                        .into(),
                ));
            }
        }
    }
    let mut archs = Vec::new();
    let mut timing = Vec::new();
    let mut val_cases = 0;
    let mut results = results.into_iter();
    for &arch in &config.archs {
        let mut base = BaseResult {
            test_accuracy: Vec::new(),
            train_accuracy: Vec::new(),
            epochs_run: Vec::new(),
            test: Stat::default(),
            train: Stat::default(),
        };
        let mut runs: Vec<Vec<Run>> = vec![Vec::new(); config.variants.len()];
        let mut seconds = vec![0.0; config.variants.len() + 1];
        let mut base_parameters = 0;
        for r in results.by_ref().take(config.seeds.len()) {
            base.test_accuracy.push(r.base_test);
            base.train_accuracy.push(r.base_train);
            base.epochs_run.push(r.base_epochs);
            base_parameters = r.base_parameters;
            val_cases = r.val_cases;
            for (total, t) in seconds.iter_mut().zip(&r.seconds) {
                *total += t;
            }
            for (vi, run) in r.runs.into_iter().enumerate() {
                runs[vi].push(run);
            }
        }
        base.test = Stat::of(&base.test_accuracy);
        base.train = Stat::of(&base.train_accuracy);
        let variants = paired_results(config, runs);
        let names = std::iter::once("base").chain(config.variants.iter().map(|v| v.name.as_str()));
        for (name, secs) in names.zip(&seconds) {
            timing.push(Timing {
                scenario: s.name.clone(),
                arch: arch.name().into(),
                variant: name.to_string(),
                seconds: *secs,
            });
        }
        archs.push(ArchResult {
            arch,
            base_parameters,
            base,
            variants,
        });
    }
    Ok((
        ScenarioResult {
            name: s.name.clone(),
            description: s.description.clone(),
            old_channels: s.old_channels.clone(),
            new_channels: s.train.channels,
            train_cases: s.train.cases,
            val_cases,
            test_cases: s.test.cases,
            classes,
            archs,
        },
        timing,
    ))
}

/// Summaries and the paired comparisons against `scratch+std` and the recommended road.
fn paired_results(config: &StudyConfig, runs: Vec<Vec<Run>>) -> Vec<VariantResult> {
    let find = |name: &str| config.variants.iter().position(|v| v.name == name);
    let references: Vec<(usize, &str)> = [SCRATCH, RECOMMENDED]
        .into_iter()
        .filter_map(|n| find(n).map(|i| (i, n)))
        .collect();
    let paired: Vec<Vec<Paired>> = (0..runs.len())
        .map(|vi| {
            let mut out = Vec::new();
            for &(ri, rname) in &references {
                if ri == vi {
                    continue;
                }
                for m in PAIRED_METRICS {
                    // A scratch model starts at chance by construction: its dip below the
                    // base says nothing about a widening, so it is not compared.
                    let scratch_pair =
                        rname == SCRATCH || config.variants[vi].start == Start::Scratch;
                    if m == "worst_dip" && scratch_pair {
                        continue;
                    }
                    let ours: Vec<f64> = runs[vi].iter().map(|r| metric(r, m)).collect();
                    let theirs: Vec<f64> = runs[ri].iter().map(|r| metric(r, m)).collect();
                    out.push(Paired::of(rname, m, &ours, &theirs));
                }
            }
            out
        })
        .collect();
    config
        .variants
        .iter()
        .zip(runs)
        .zip(paired)
        .map(|((v, runs), paired)| VariantResult {
            variant: v.clone(),
            summary: Summary::of(&runs),
            runs,
            paired,
        })
        .collect()
}

/// The first curve step whose test accuracy reaches `target` (a hair of float slack, since
/// accuracies are ratios of counts).
fn first_reach(curve: &[Point], target: f64) -> Option<usize> {
    curve
        .iter()
        .find(|p| p.test_accuracy >= target - 1e-9)
        .map(|p| p.step)
}

/// The seed's trained base: on the inference device (scoring, drift, the recommendation) and
/// on the training device (what the strategies widen), with its test accuracy.
struct Bases<'a> {
    valid: &'a Model,
    train: &'a Model,
    accuracy: f64,
}

struct SeedJob<'a> {
    s: &'a Scenario,
    arch: Arch,
    classes: usize,
    config: &'a StudyConfig,
    device: &'a Device,
    train_device: &'a Device,
    reporter: &'a Reporter,
}

impl SeedJob<'_> {
    fn label(&self, seed: u64, what: &str) -> String {
        format!("{} {} seed {seed}: {what}", self.s.name, self.arch.name())
    }

    /// The base and every variant on one seed.
    fn run(&self, seed: u64) -> Result<SeedResult, StudyError> {
        let s = self.s;
        let config = self.config;
        let (fit, val) = s.train.split_stratified(config.validation_fraction, seed)?;
        let all: Vec<usize> = (0..fit.cases).collect();
        let splits = Splits {
            old_fit: fit.select_channels(&s.old_channels)?,
            old_val: val.select_channels(&s.old_channels)?,
            old_test: s.test.select_channels(&s.old_channels)?,
            fit_sample: batch(&fit, &all, FORMAT, self.train_device),
            new_positions: (0..s.train.channels)
                .filter(|c| !s.old_channels.contains(c))
                .collect(),
            fit,
            val,
            test: s.test.clone(),
        };
        let mut seconds = vec![0.0; config.variants.len() + 1];
        let started = Instant::now();
        let (base_model, (base_test, base_train, base_epochs)) = self.base(&splits, seed)?;
        // Every widening starts from this copy on the training device (expand reads it only).
        let base_ad = base_model.copy_to_device(self.train_device)?;
        seconds[0] = started.elapsed().as_secs_f64();
        let bases = Bases {
            valid: &base_model,
            train: &base_ad,
            accuracy: base_test,
        };
        let mut runs = Vec::new();
        for (vi, v) in config.variants.iter().enumerate() {
            let started = Instant::now();
            runs.push(self.variant(&bases, &splits, v, vi, seed)?);
            seconds[vi + 1] = started.elapsed().as_secs_f64();
        }
        // Steps to the scratch model's accuracy need this seed's scratch run first.
        let scratch = config
            .variants
            .iter()
            .position(|v| v.name == SCRATCH)
            .map(|i| runs[i].accuracy_kept);
        for run in &mut runs {
            run.steps_to_scratch = scratch.and_then(|target| first_reach(&run.curve, target));
        }
        Ok(SeedResult {
            base_test,
            base_train,
            base_epochs,
            base_parameters: base_model.num_params(),
            val_cases: splits.val.cases,
            runs,
            seconds,
        })
    }

    /// Phase 1: trains the base on the old channels; returns it (inference device) with its
    /// test accuracy, training accuracy and epochs run.
    fn base(&self, sp: &Splits, seed: u64) -> Result<(Model, (f64, f64, usize)), StudyError> {
        self.reporter.run(self.label(seed, "base model"));
        let spec = self
            .arch
            .spec(self.s.old_channels.len(), self.s.train.length, self.classes);
        let model = Model::new(spec, seed, self.train_device)?;
        let config = self.config.base_fit(seed, sp.old_fit.cases);
        let mut seen = 0u64;
        let out = fit_observed(
            model,
            None,
            &sp.old_fit,
            &sp.old_val,
            &config,
            None,
            false,
            |_, _, _| {
                seen += 1;
                self.reporter.step(1);
                true
            },
        )?;
        self.reporter
            .step((config.epochs as u64).saturating_sub(seen));
        let test = score(&out.model, &sp.old_test, self.device)?.accuracy;
        let train = score(&out.model, &sp.old_fit, self.device)?.accuracy;
        Ok((out.model, (test, train, out.history.epochs.len())))
    }

    /// Phase 2: one variant from the base (or from scratch), fine-tuned and scored.
    fn variant(
        &self,
        bases: &Bases<'_>,
        sp: &Splits,
        v: &Variant,
        vi: usize,
        seed: u64,
    ) -> Result<Run, StudyError> {
        self.reporter.run(self.label(seed, &v.name));
        let run_seed = seed.wrapping_mul(1_000_003).wrapping_add(vi as u64);
        let c_new = self.s.train.channels;
        let (base, base_accuracy) = (bases.valid, bases.accuracy);
        let (sample, new_positions) = (&sp.fit_sample, &sp.new_positions);
        let (model, expanded, chosen) = match &v.start {
            Start::Scratch => {
                let spec = self.arch.spec(c_new, self.s.train.length, self.classes);
                (Model::new(spec, run_seed, self.train_device)?, None, None)
            }
            Start::Expand { strategy } => {
                let (m, e) = self.widen(bases.train, strategy.clone(), run_seed)?;
                (m, Some(e), None)
            }
            Start::Recommended => {
                let map = Placement::Map(self.s.old_channels.clone())
                    .resolve(self.s.old_channels.len(), c_new)?;
                let scales = channel_scales(&sp.fit.series, c_new, sp.fit.length, &map);
                let rec = recommend(base, &scales)?;
                let chosen = format!(
                    "{}{}",
                    rec.strategy.short_name(),
                    if rec.standardize { "+std" } else { "" }
                );
                let (m, mut e) = self.widen(bases.train, rec.strategy, run_seed)?;
                let m = if rec.standardize {
                    e.standardized = true;
                    standardize(&m, sample, new_positions)?
                } else {
                    m
                };
                (m, Some(e), Some(chosen))
            }
        };
        let standardized = v.standardize && !matches!(v.start, Start::Recommended);
        let model = if standardized {
            standardize(&model, sample, new_positions)?
        } else {
            model
        };
        let expanded = expanded.map(|mut e| {
            e.standardized |= standardized;
            e
        });

        // Step 0: the starting model against the base.
        let start_model = model.valid();
        let loss_step0 = score(&start_model, &sp.fit, self.device)?.loss;
        let test0 = score(&start_model, &sp.test, self.device)?;
        let val0 = score(&start_model, &sp.val, self.device)?;
        let bn_shift_step0 = bn_shift(&start_model, &sp.fit, 256, self.device)?;
        let test_all: Vec<usize> = (0..sp.test.cases).collect();
        let drift_step0 = drift(
            base,
            batch(&sp.old_test, &test_all, FORMAT, self.device),
            &start_model,
            batch(&sp.test, &test_all, FORMAT, self.device),
        )?
        .mean_abs;
        let mut curve = vec![Point {
            step: 0,
            train_loss: f64::NAN,
            val_loss: val0.loss,
            val_accuracy: val0.accuracy,
            test_loss: test0.loss,
            test_accuracy: test0.accuracy,
        }];
        let config = self.config.fit_config(v, run_seed, sp.fit.cases);
        let steps_per_epoch = self.config.steps_per_epoch(sp.fit.cases);
        let mut records: Vec<EpochRecord> = Vec::new();
        let mut failure: Option<StudyError> = None;
        let out = fit_observed(
            model,
            expanded.as_ref(),
            &sp.fit,
            &sp.val,
            &config,
            None,
            false,
            |record, current, _| {
                self.reporter.step(1);
                match score(current, &sp.test, self.device) {
                    Ok(test) => {
                        curve.push(Point {
                            step: record.epoch * steps_per_epoch,
                            train_loss: record.train_loss,
                            val_loss: record.val_loss,
                            val_accuracy: record.val_accuracy,
                            test_loss: test.loss,
                            test_accuracy: test.accuracy,
                        });
                        records.push(record.clone());
                        true
                    }
                    Err(e) => {
                        failure = Some(e.into());
                        false
                    }
                }
            },
        )?;
        if let Some(e) = failure {
            return Err(e);
        }
        self.reporter
            .step((config.epochs as u64).saturating_sub(records.len() as u64));
        let kept = score(&out.model, &sp.test, self.device)?;
        let kept_train = score(&out.model, &sp.fit, self.device)?;
        let worst_dip = curve
            .iter()
            .map(|p| base_accuracy - p.test_accuracy)
            .fold(0.0, f64::max);
        Ok(Run {
            seed,
            chosen,
            accuracy_before: test0.accuracy,
            accuracy_kept: kept.accuracy,
            train_accuracy_kept: kept_train.accuracy,
            accuracy_last: curve.last().map_or(test0.accuracy, |p| p.test_accuracy),
            loss_step0,
            drift_step0,
            bn_shift_step0,
            steps_to_base: first_reach(&curve, base_accuracy),
            steps_to_scratch: None,
            worst_dip,
            max_loss_jump: records.iter().map(|r| r.max_loss_jump).fold(0.0, f64::max),
            spikes: records.iter().map(|r| r.spikes).sum(),
            max_grad_norm: records.iter().map(|r| r.max_grad_norm).fold(0.0, f64::max),
            steps_per_epoch,
            epochs_run: records.len(),
            best_epoch: out.history.best_epoch,
            curve,
        })
    }

    /// Widens `base` (on the training device) to all channels, old ones where the scenario
    /// says.
    fn widen(
        &self,
        base: &Model,
        strategy: Strategy,
        seed: u64,
    ) -> Result<(Model, Expanded), StudyError> {
        let request = ExpandRequest::new(self.s.train.channels, strategy)
            .with_placement(Placement::Map(self.s.old_channels.clone()))
            .with_seed(seed);
        let e = expand(base, &request)?;
        let record = Expanded {
            map: e.map,
            strategy: e.strategy,
            adapted_layers: e.adapted_layers,
            standardized: false,
        };
        Ok((e.model, record))
    }
}

/// Mean BatchNorm mean-shift of `model` on the first `n` training cases (cause 3); 0 for a
/// model without BatchNorm.
fn bn_shift(model: &Model, data: &Dataset, n: usize, device: &Device) -> Result<f64, StudyError> {
    let cases: Vec<usize> = (0..n.min(data.cases)).collect();
    let shifts = batchnorm_shift(model, batch(data, &cases, FORMAT, device))?;
    Ok(shifts.iter().map(|s| s.mean_shift).sum::<f64>() / shifts.len().max(1) as f64)
}

/// The real-sensor scenario: BasicMotions (embedded), base on the accelerometer (channels 0–2),
/// widened to accelerometer + gyroscope.
pub fn real_sensors() -> Result<Scenario, StudyError> {
    let (train, test) = widen_data::basic_motions()?;
    Ok(Scenario {
        name: "real_sensors".into(),
        description:
            "BasicMotions (UEA archive): smart-watch accelerometer (channels 0-2) gains the \
                      gyroscope (channels 3-5, another scale); 4 activities, length 100."
                .into(),
        train,
        test,
        old_channels: vec![0, 1, 2],
    })
}

/// A scenario from any multivariate `.ts` pair of the UEA archive; the first `old_channels`
/// channels are the old ones.
pub fn from_ts_files(
    train: &std::path::Path,
    test: &std::path::Path,
    old_channels: usize,
) -> Result<Scenario, StudyError> {
    let policy = widen_data::LengthPolicy::default();
    let train_set = widen_data::read_ts(train, policy)?;
    let test_set = widen_data::read_ts(test, policy)?;
    let description = format!("{} / {}", train.display(), test.display());
    from_datasets(
        train_set,
        test_set,
        (0..old_channels).collect(),
        &description,
    )
}

/// A scenario from any labelled train/test pair (from `.ts` or `.npy` files, through
/// widen-data): the channels `old` are the old ones, the rest new. Test labels are matched to
/// the training labels by name.
pub fn from_datasets(
    train_set: Dataset,
    test_set: Dataset,
    old: Vec<usize>,
    description: &str,
) -> Result<Scenario, StudyError> {
    crate::loss::require_labels(&train_set, "the training data")?;
    crate::loss::require_labels(&test_set, "the test data")?;
    let mut sorted = old.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if old.is_empty()
        || sorted.len() != old.len()
        || sorted.last().is_some_and(|&c| c >= train_set.channels)
        || old.len() >= train_set.channels
    {
        return Err(StudyError::Config(format!(
            "--old-channels must name at least 1 and fewer than the data's {} channels, each once and below {} (the rest are the new ones the model is widened to), got {old:?}",
            train_set.channels, train_set.channels
        )));
    }
    if test_set.channels != train_set.channels || test_set.length != train_set.length {
        return Err(StudyError::Config(format!(
            "train and test disagree: {} × {} vs {} × {} (channels × length)",
            train_set.channels, train_set.length, test_set.channels, test_set.length
        )));
    }
    // Labels are matched by name: the two files may declare them in different orders.
    let test_set = test_set.relabel_to(&train_set.class_names, "the test data")?;
    Ok(Scenario {
        name: "real_sensors".into(),
        description: format!(
            "{description}: channels {old:?} of {} are old.",
            train_set.channels
        ),
        train: train_set,
        test: test_set,
        old_channels: old,
    })
}

/// The study's controlled scenario: 8 old channels whose class signal tops out near 80%, 24
/// new ones (8 informative) at ×10 scale and +5 offset that carry the missing bit.
pub fn controlled_config() -> widen_data::SyntheticConfig {
    widen_data::SyntheticConfig {
        cases_train: 400,
        cases_test: 300,
        classes: 4,
        length: 48,
        old_channels: 8,
        new_channels: 32,
        informative_new: 8,
        amplitude_jitter: 0.12,
        ..widen_data::SyntheticConfig::default()
    }
}

/// The controlled scenario from the seeded generator.
pub fn controlled(config: &widen_data::SyntheticConfig) -> Result<Scenario, StudyError> {
    let (train, test) = widen_data::generate(config)?;
    Ok(Scenario {
        name: "controlled".into(),
        description: format!(
            "Seeded synthetic data: {} old channels whose sinusoids tell the class group \
             surely and its parity only partly (amplitude jitter σ = {}), {} new channels \
             ({} informative: a bump whose sign is the parity) scaled ×{} and shifted by {}; \
             length {}.",
            config.old_channels,
            config.amplitude_jitter,
            config.new_channels - config.old_channels,
            config.informative_new,
            config.new_scale,
            config.new_offset,
            config.length
        ),
        train,
        test,
        old_channels: config.old_channel_indices(),
    })
}
