//! `widen study`: why does a Conv1D model go erratic when its input widens, and what helps?
//!
//! Phase 1 trains the base model (the seed's Ex1 stack with a Dense head) on the old channels.
//! Phase 2 widens it to all channels with every strategy (and with/without `Standardize`, base
//! frozen or not where that matters), fine-tunes each, and records per run: accuracy before and
//! after, loss at step 0, function drift, the loss curve, its largest step-to-step jump and
//! spike count, the largest gradient norm, the BatchNorm statistic shift and the wall time.
//! Everything is seeded; the same seed gives the same numbers on the same backend.

mod report;
mod svg;
pub mod train;

use std::time::Instant;

use burn::tensor::Device;
use serde::Serialize;
use thiserror::Error;
use widen_adapt::{
    AdaptError, ExpandRequest, Expansion, Placement, ProjectionInit, Strategy, drift, expand,
    freeze_base, standardize,
};
use widen_init::Initializer;
use widen_layers::{
    Activation, BatchNormConfig, Conv1dConfig, DataFormat, DenseConfig, InputSpec, LayerConfig,
    LayerError, ModelSpec, Sequential,
};

pub use report::{StudyFiles, write_outputs};
use train::{Curve, TrainSettings};
use widen_data::{DataError, Dataset};

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
    /// Training produced a non-finite loss: the learning rate is too large for this model or
    /// the data holds extreme values.
    #[error(
        "training diverged: the loss became {loss} at step {step} (learning rate {learning_rate:e}); lower the learning rate or standardise the inputs"
    )]
    Diverged {
        /// 1-based optimiser step.
        step: usize,
        /// The loss seen.
        loss: f64,
        /// The learning rate in force.
        learning_rate: f64,
    },
    /// Output could not be written.
    #[error("writing {path}: {reason}")]
    Io { path: String, reason: String },
}

/// One dataset pair and which channels are old.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name (`real_sensors`, `controlled`).
    pub name: String,
    /// What it is, for the report.
    pub description: String,
    /// Training split, all channels.
    pub train: Dataset,
    /// Test split, all channels.
    pub test: Dataset,
    /// Indices of the channels the base model is trained on.
    pub old_channels: Vec<usize>,
}

/// How a phase-2 model starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Start {
    /// A new model on all channels, Keras default init (the baseline).
    Scratch,
    /// The trained base, widened.
    Expand {
        /// The strategy.
        strategy: Strategy,
    },
}

/// One phase-2 variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Variant {
    /// Name used in tables and the plot.
    pub name: String,
    /// Where it starts.
    pub start: Start,
    /// Standardise the new channels from the training data first.
    pub standardize: bool,
    /// Train only what the expansion added.
    pub frozen_base: bool,
}

fn variant(name: &str, start: Start, standardize: bool, frozen_base: bool) -> Variant {
    Variant {
        name: name.to_string(),
        start,
        standardize,
        frozen_base,
    }
}

/// The default variants: each strategy with and without `Standardize`, and base-frozen runs
/// where freezing changes what trains.
pub fn default_variants() -> Vec<Variant> {
    let random = Strategy::FanScaled {
        initializer: Initializer::glorot_uniform(),
        rescale_old: false,
    };
    let fan = Strategy::FanScaled {
        initializer: Initializer::he_normal(),
        rescale_old: true,
    };
    let proj = Strategy::Projection {
        init: ProjectionInit::Identity,
    };
    let e = |s: &Strategy| Start::Expand {
        strategy: s.clone(),
    };
    let mut out = Vec::new();
    for std in [false, true] {
        let sfx = if std { "+std" } else { "" };
        out.push(variant(
            &format!("scratch{sfx}"),
            Start::Scratch,
            std,
            false,
        ));
        out.push(variant(&format!("random{sfx}"), e(&random), std, false));
        out.push(variant(
            &format!("zero{sfx}"),
            e(&Strategy::Zero),
            std,
            false,
        ));
        out.push(variant(
            &format!("repeat{sfx}"),
            e(&Strategy::RepeatRescale),
            std,
            false,
        ));
        out.push(variant(&format!("fan{sfx}"), e(&fan), std, false));
        out.push(variant(&format!("projection{sfx}"), e(&proj), std, false));
    }
    out.push(variant("zero+std+frozen", e(&Strategy::Zero), true, true));
    out.push(variant("projection+std+frozen", e(&proj), true, true));
    out
}

/// Study settings.
#[derive(Debug, Clone, Serialize)]
pub struct StudyConfig {
    /// Seeds; each gives its own base model, init and batch order.
    pub seeds: Vec<u64>,
    /// Phase-1 steps.
    pub base_steps: usize,
    /// Phase-2 steps per variant.
    pub finetune_steps: usize,
    /// Cases per batch.
    pub batch_size: usize,
    /// Adam learning rate (both phases).
    pub learning_rate: f64,
    /// Phase-2 Adam learning rate (fine-tuning usually wants a smaller one).
    pub finetune_learning_rate: f64,
    /// A step is a spike when its loss exceeds the running average of the previous losses
    /// (exponential, α = 0.1) by this factor and by at least 0.1 nats: a sudden rise, not
    /// batch-to-batch noise around a small loss.
    pub spike_factor: f64,
    /// The variants.
    pub variants: Vec<Variant>,
}

impl Default for StudyConfig {
    fn default() -> Self {
        Self {
            seeds: vec![1, 2, 3],
            base_steps: 400,
            finetune_steps: 150,
            batch_size: 32,
            learning_rate: 1e-2,
            finetune_learning_rate: 3e-3,
            spike_factor: 1.5,
            variants: default_variants(),
        }
    }
}

/// The base model for `channels` inputs: Ex1 (Conv1D(32, 3, relu) → BatchNorm → GlobalMaxPool)
/// with a Dense head of `classes` logits.
pub fn base_spec(channels: usize, length: usize, classes: usize) -> ModelSpec {
    ModelSpec::new(
        InputSpec::new(channels)
            .with_length(length)
            .with_data_format(DataFormat::ChannelsFirst),
    )
    .push(LayerConfig::Conv1d(
        Conv1dConfig::new(32, 3).with_activation(Activation::Relu),
    ))
    .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
    .push(LayerConfig::GlobalMaxPool1d)
    .push(LayerConfig::Dense(DenseConfig::new(classes)))
}

/// One fine-tuning run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Seed.
    pub seed: u64,
    /// Test accuracy before fine-tuning.
    pub accuracy_before: f64,
    /// Test accuracy after.
    pub accuracy_after: f64,
    /// Training-set loss before the first update (inference mode).
    pub loss_step0: f64,
    /// Training-set loss after the last update.
    pub loss_final: f64,
    /// Mean |Δ logits| against the base model on the same test cases (base sees old channels).
    pub drift_step0: f64,
    /// Largest rise of the batch loss from one step to the next.
    pub max_loss_jump: f64,
    /// Steps whose loss exceeds the best so far by `spike_factor`.
    pub spikes: usize,
    /// Largest global gradient norm.
    pub max_grad_norm: f64,
    /// Mean BatchNorm mean-shift on training data before fine-tuning.
    pub bn_shift_step0: f64,
    /// Batch loss per step.
    pub loss_curve: Vec<f64>,
}

/// Mean and standard deviation over seeds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one seed).
    pub std: f64,
}

impl Stat {
    pub(crate) fn of(values: &[f64]) -> Self {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Self {
            mean,
            std: var.sqrt(),
        }
    }
}

/// Per-variant summary over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// See [`Run`].
    pub accuracy_before: Stat,
    /// See [`Run`].
    pub accuracy_after: Stat,
    /// See [`Run`].
    pub loss_step0: Stat,
    /// See [`Run`].
    pub loss_final: Stat,
    /// See [`Run`].
    pub drift_step0: Stat,
    /// See [`Run`].
    pub max_loss_jump: Stat,
    /// See [`Run`].
    pub spikes: Stat,
    /// See [`Run`].
    pub max_grad_norm: Stat,
    /// See [`Run`].
    pub bn_shift_step0: Stat,
}

impl Summary {
    fn of(runs: &[Run]) -> Self {
        let s = |f: fn(&Run) -> f64| Stat::of(&runs.iter().map(f).collect::<Vec<_>>());
        Self {
            accuracy_before: s(|r| r.accuracy_before),
            accuracy_after: s(|r| r.accuracy_after),
            loss_step0: s(|r| r.loss_step0),
            loss_final: s(|r| r.loss_final),
            drift_step0: s(|r| r.drift_step0),
            max_loss_jump: s(|r| r.max_loss_jump),
            spikes: s(|r| r.spikes as f64),
            max_grad_norm: s(|r| r.max_grad_norm),
            bn_shift_step0: s(|r| r.bn_shift_step0),
        }
    }
}

/// A variant's runs and summary.
#[derive(Debug, Clone, Serialize)]
pub struct VariantResult {
    /// The variant.
    pub variant: Variant,
    /// Its runs, one per seed.
    pub runs: Vec<Run>,
    /// Mean ± std over seeds.
    pub summary: Summary,
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
    /// Cases.
    pub train_cases: usize,
    /// Cases.
    pub test_cases: usize,
    /// Base model test accuracy per seed (old channels only).
    pub base_accuracy: Vec<f64>,
    /// Per variant.
    pub variants: Vec<VariantResult>,
}

/// Wall time, kept apart from the numbers that must reproduce.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Scenario.
    pub scenario: String,
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
    /// Wall times (not reproducible, so not mixed with the rest).
    pub timing: Vec<Timing>,
}

fn curve_metrics(curve: &Curve, spike_factor: f64) -> (f64, usize, f64) {
    let jump = curve
        .loss
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(0.0, f64::max);
    let mut spikes = 0;
    let mut ema: Option<f64> = None;
    for &l in &curve.loss {
        if let Some(avg) = ema {
            if l > avg * spike_factor && l - avg > 0.1 {
                spikes += 1;
            }
            ema = Some(0.9 * avg + 0.1 * l);
        } else {
            ema = Some(l);
        }
    }
    let g = curve.grad_norm.iter().copied().fold(0.0, f64::max);
    (jump, spikes, g)
}

/// Progress callbacks (the CLI shows bars; tests pass no-ops).
pub trait Progress {
    /// Called with the total number of optimiser steps the study will take.
    fn start(&mut self, total_steps: u64);
    /// Called with a short message when a run starts.
    fn run(&mut self, message: &str);
    /// Called after every optimiser step.
    fn step(&mut self);
}

/// No progress output.
#[derive(Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: u64) {}
    fn run(&mut self, _: &str) {}
    fn step(&mut self) {}
}

/// Runs the study on `device` (plain; training uses its autodiff twin).
pub fn run(
    scenarios: &[Scenario],
    config: &StudyConfig,
    device: &Device,
    backend: &str,
    progress: &mut dyn Progress,
) -> Result<StudyResult, StudyError> {
    if config.seeds.is_empty() || config.variants.is_empty() {
        return Err(StudyError::Config(
            "need at least one seed and one variant".into(),
        ));
    }
    let lr_ok = |lr: f64| lr > 0.0 && lr.is_finite();
    if config.batch_size == 0
        || !lr_ok(config.learning_rate)
        || !lr_ok(config.finetune_learning_rate)
    {
        return Err(StudyError::Config(format!(
            "batch size must be > 0 and learning rates finite and > 0 (got {}, {}, {})",
            config.batch_size, config.learning_rate, config.finetune_learning_rate
        )));
    }
    let per_seed = config
        .variants
        .len()
        .saturating_mul(config.finetune_steps)
        .saturating_add(config.base_steps);
    let total_steps = scenarios
        .len()
        .saturating_mul(config.seeds.len())
        .saturating_mul(per_seed);
    // Every step keeps a loss and a gradient norm (f64 each) in the curves the report plots.
    widen_guard::budget()
        .check_elements("the study's training curves", &[total_steps, 2], 8)
        .map_err(|e| StudyError::Config(e.to_string()))?;
    progress.start(total_steps as u64);
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

fn run_scenario(
    s: &Scenario,
    config: &StudyConfig,
    device: &Device,
    train_device: &Device,
    progress: &mut dyn Progress,
) -> Result<(ScenarioResult, Vec<Timing>), StudyError> {
    for (set, split) in [(&s.train, "training"), (&s.test, "test")] {
        train::require_labels(set, &format!("{} ({split} split)", s.name))?;
    }
    let c_new = s.train.channels;
    let classes = s.train.class_names.len().max(
        s.train
            .labels
            .iter()
            .chain(&s.test.labels)
            .max()
            .map_or(0, |m| m + 1),
    );
    let old_train = s.train.select_channels(&s.old_channels)?;
    let old_test = s.test.select_channels(&s.old_channels)?;
    let mut is_old = vec![false; c_new];
    for &c in &s.old_channels {
        if let Some(slot) = is_old.get_mut(c) {
            *slot = true;
        }
    }
    let new_positions: Vec<usize> = (0..c_new).filter(|&c| !is_old[c]).collect();
    let mut base_accuracy = Vec::new();
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); config.variants.len()];
    let mut seconds = vec![0.0; config.variants.len() + 1];
    for &seed in &config.seeds {
        // Phase 1: the base model on the old channels.
        progress.run(&format!("{} seed {seed}: base model", s.name));
        let start = Instant::now();
        let base = Sequential::new(
            base_spec(s.old_channels.len(), s.train.length, classes),
            seed,
            train_device,
        )?;
        let settings = TrainSettings {
            steps: config.base_steps,
            batch_size: config.batch_size,
            learning_rate: config.learning_rate,
            seed,
        };
        let (base, _) = train::train(base, &old_train, settings, &[], train_device, || {
            progress.step()
        })?;
        let (_, acc) = train::evaluate(&base, &old_test, device)?;
        base_accuracy.push(acc);
        seconds[0] += start.elapsed().as_secs_f64();
        let base_valid = burn::module::Module::valid(&base);

        // Phase 2: each variant.
        for (vi, v) in config.variants.iter().enumerate() {
            progress.run(&format!("{} seed {seed}: {}", s.name, v.name));
            let start = Instant::now();
            let run_seed = seed.wrapping_mul(1_000_003).wrapping_add(vi as u64);
            let (model, expansion_meta) = match &v.start {
                Start::Scratch => (
                    Sequential::new(
                        base_spec(c_new, s.train.length, classes),
                        run_seed,
                        train_device,
                    )?,
                    None,
                ),
                Start::Expand { strategy } => {
                    let request = ExpandRequest::new(c_new, strategy.clone())
                        .with_placement(Placement::Map(s.old_channels.clone()))
                        .with_seed(run_seed);
                    let e = expand(&base, &request)?;
                    (e.model, Some((e.map, e.adapted_layers, e.strategy)))
                }
            };
            let model = if v.standardize {
                let all: Vec<usize> = (0..s.train.cases).collect();
                let sample = train::batch(&s.train, &all, train_device);
                standardize(&model, &sample, &new_positions)?
            } else {
                model
            };
            let (model, mask) = match (v.frozen_base, expansion_meta) {
                (true, Some((map, adapted_layers, strategy))) => freeze_base(Expansion {
                    model,
                    map,
                    adapted_layers,
                    strategy,
                })?,
                _ => (model, Vec::new()),
            };
            let (loss_step0, _) = train::evaluate(&model, &s.train, device)?;
            let (_, accuracy_before) = train::evaluate(&model, &s.test, device)?;
            let bn_shift_step0 = train::bn_shift(&model, &s.train, 256, device)?;
            let all_test: Vec<usize> = (0..s.test.cases).collect();
            let d = drift(
                &base_valid,
                train::batch(&old_test, &all_test, device),
                &burn::module::Module::valid(&model),
                train::batch(&s.test, &all_test, device),
            )?;
            let settings = TrainSettings {
                steps: config.finetune_steps,
                batch_size: config.batch_size,
                learning_rate: config.finetune_learning_rate,
                seed: run_seed,
            };
            let (model, curve) =
                train::train(model, &s.train, settings, &mask, train_device, || {
                    progress.step()
                })?;
            let (loss_final, _) = train::evaluate(&model, &s.train, device)?;
            let (_, accuracy_after) = train::evaluate(&model, &s.test, device)?;
            let (max_loss_jump, spikes, max_grad_norm) = curve_metrics(&curve, config.spike_factor);
            runs[vi].push(Run {
                seed,
                accuracy_before,
                accuracy_after,
                loss_step0,
                loss_final,
                drift_step0: d.mean_abs,
                max_loss_jump,
                spikes,
                max_grad_norm,
                bn_shift_step0,
                loss_curve: curve.loss,
            });
            seconds[vi + 1] += start.elapsed().as_secs_f64();
        }
    }
    let variants = config
        .variants
        .iter()
        .zip(runs)
        .map(|(v, runs)| VariantResult {
            variant: v.clone(),
            summary: Summary::of(&runs),
            runs,
        })
        .collect();
    let mut timing = vec![Timing {
        scenario: s.name.clone(),
        variant: "base".into(),
        seconds: seconds[0],
    }];
    for (v, secs) in config.variants.iter().zip(&seconds[1..]) {
        timing.push(Timing {
            scenario: s.name.clone(),
            variant: v.name.clone(),
            seconds: *secs,
        });
    }
    Ok((
        ScenarioResult {
            name: s.name.clone(),
            description: s.description.clone(),
            old_channels: s.old_channels.clone(),
            new_channels: c_new,
            train_cases: s.train.cases,
            test_cases: s.test.cases,
            base_accuracy,
            variants,
        },
        timing,
    ))
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
    train::require_labels(&train_set, "the training data")?;
    train::require_labels(&test_set, "the test data")?;
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

/// The controlled scenario from the seeded generator.
pub fn controlled(config: &widen_data::SyntheticConfig) -> Result<Scenario, StudyError> {
    let (train, test) = widen_data::generate(config)?;
    Ok(Scenario {
        name: "controlled".into(),
        description: format!(
            "Seeded synthetic data: {} old channels with partial class signal, {} new channels \
             ({} informative) scaled ×{} and shifted by {}; length {}.",
            config.old_channels,
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
