//! `fit`: fine-tuning with a recipe, early stopping on validation, the best checkpoint kept, and
//! a state saved after every epoch from which a killed run resumes to the same final weights.

use std::fs;
use std::path::{Path, PathBuf};

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use widen_adapt::{ChannelMap, Expansion, GradientMask, Strategy, freeze_base, gradient_norms};
use widen_data::Dataset;
use widen_init::{HostRng, derive_seed_indexed};
use widen_layers::{Model, Value, WeightFormat};

use crate::loss::{check_fit, require_labels, scalar};
use crate::{TrainError, batch, labels_of, loss_of, output_kind, score, stable_param_ids};

/// How fine-tuning proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Recipe {
    /// Everything trains from the first step.
    Plain,
    /// The base stays frozen; only what the expansion added trains (new kernel slices, the
    /// projection).
    NewOnly,
    /// What docs/STUDY.md recommends: standardise the new channels (if `widen expand` did not),
    /// train only the new parts for a warm-up phase, then unfreeze everything at a lower
    /// learning rate, keeping the best validation checkpoint.
    Staged,
}

impl Recipe {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::NewOnly => "new-only",
            Self::Staged => "staged",
        }
    }
}

/// Settings of a fit. The defaults are what `widen fit` uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// The recipe (default staged).
    pub recipe: Recipe,
    /// Epochs at most (default 40).
    pub epochs: usize,
    /// Cases per step (default 16).
    pub batch_size: usize,
    /// Adam's learning rate (default 1e-3); the staged recipe's second phase uses
    /// `learning_rate × finetune_factor`.
    pub learning_rate: f64,
    /// Seed of the batch order and of dropout.
    pub seed: u64,
    /// Stop after this many epochs without a better validation score (default 10; `None`
    /// trains every epoch). The staged warm-up never stops early.
    pub patience: Option<usize>,
    /// Clip each step's gradient to this global L2 norm.
    pub clip_norm: Option<f32>,
    /// Staged: epochs of the new-only warm-up (default a quarter of `epochs`, at least 1).
    pub warmup_epochs: Option<usize>,
    /// Staged: learning-rate factor once everything trains (default 0.1).
    pub finetune_factor: f64,
    /// A step whose loss exceeds this multiple of the previous steps' mean counts as a spike.
    pub spike_factor: f64,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            recipe: Recipe::Staged,
            epochs: 40,
            batch_size: 16,
            learning_rate: 1e-3,
            seed: 0,
            patience: Some(10),
            clip_norm: None,
            warmup_epochs: None,
            finetune_factor: 0.1,
            spike_factor: 3.0,
        }
    }
}

impl FitConfig {
    fn validate(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.epochs == 0 || self.batch_size == 0 {
            return bad(format!(
                "epochs and batch size must be > 0, got {} and {}",
                self.epochs, self.batch_size
            ));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad(format!(
                "the learning rate must be finite and > 0, got {}",
                self.learning_rate
            ));
        }
        if !(self.finetune_factor.is_finite() && self.finetune_factor > 0.0) {
            return bad(format!(
                "the fine-tune factor must be finite and > 0, got {}",
                self.finetune_factor
            ));
        }
        if let Some(c) = self.clip_norm
            && !(c.is_finite() && c > 0.0)
        {
            return bad(format!("the clip norm must be finite and > 0, got {c}"));
        }
        if self.patience == Some(0) {
            return bad("patience must be > 0 (leave it out to train every epoch)".into());
        }
        Ok(())
    }

    fn warmup(&self) -> usize {
        self.warmup_epochs
            .unwrap_or(self.epochs / 4)
            .clamp(1, self.epochs)
    }

    /// The phase of `epoch` (1-based): only the new parts train, or everything.
    fn new_only(&self, epoch: usize) -> bool {
        match self.recipe {
            Recipe::Plain => false,
            Recipe::NewOnly => true,
            Recipe::Staged => epoch <= self.warmup(),
        }
    }

    fn lr(&self, epoch: usize) -> f64 {
        match self.recipe {
            Recipe::Staged if !self.new_only(epoch) => self.learning_rate * self.finetune_factor,
            _ => self.learning_rate,
        }
    }
}

/// What `widen expand` recorded about a widened model (its `model.json` `meta.expansion`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expanded {
    /// Old → new channels.
    pub map: ChannelMap,
    /// The strategy used.
    pub strategy: Strategy,
    /// The layers holding what the expansion added.
    pub adapted_layers: Vec<String>,
    /// Whether the new channels were standardised already.
    #[serde(default)]
    pub standardized: bool,
}

impl Expanded {
    /// Reads the record from a checkpoint's `meta` object.
    pub fn from_meta(meta: &serde_json::Value) -> Option<Self> {
        serde_json::from_value(meta.get("expansion")?.clone()).ok()
    }
}

/// One epoch of a fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch (1-based).
    pub epoch: usize,
    /// `new-only` or `all`.
    pub phase: String,
    /// The learning rate used.
    pub learning_rate: f64,
    /// Mean training-batch loss.
    pub train_loss: f64,
    /// Validation loss after the epoch.
    pub val_loss: f64,
    /// Validation accuracy after the epoch.
    pub val_accuracy: f64,
    /// Largest global gradient norm of the epoch.
    pub max_grad_norm: f64,
    /// Steps whose loss jumped above `spike_factor ×` the mean of the steps before.
    pub spikes: usize,
    /// Largest rise of the batch loss from one step to the next within the epoch (so a resumed
    /// run records what an uninterrupted one does). Absent in states written before it existed.
    #[serde(default)]
    pub max_loss_jump: f64,
}

/// Everything a fit recorded; `history.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The recipe and settings.
    pub config: FitConfig,
    /// Validation loss of the starting model (after standardisation, if the recipe did it).
    pub start_val_loss: f64,
    /// Validation accuracy of the starting model.
    pub start_val_accuracy: f64,
    /// Per epoch.
    pub epochs: Vec<EpochRecord>,
    /// The epoch whose weights were kept (0: the starting model was never beaten).
    pub best_epoch: usize,
    /// Its validation accuracy.
    pub best_val_accuracy: f64,
    /// Its validation loss.
    pub best_val_loss: f64,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The deepest fall of validation accuracy below the starting model's during the run (0 if
    /// it never fell below).
    pub worst_dip: f64,
    /// Optimiser steps taken.
    pub steps: usize,
}

/// The kept model and the record of the run.
#[derive(Debug)]
pub struct FitOutcome {
    /// The best validation checkpoint (inference device).
    pub model: Model,
    /// The record.
    pub history: History,
}

/// Where a fit writing `out` keeps its resumable state: the hidden sibling
/// `.<name>.widen-fit`.
pub fn state_dir_for(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map_or_else(|| "model".to_string(), |n| n.to_string_lossy().into_owned());
    out.with_file_name(format!(".{name}.widen-fit"))
}

/// The progress file: the commit point of each saved epoch.
#[derive(Serialize, Deserialize)]
struct Progress {
    epoch: usize,
    history: History,
    wait: usize,
    step: usize,
}

const PROGRESS: &str = "progress.json";
/// Parameter ids start here (any constant works; the same in every process).
const ID_SALT: u64 = 0x5769_6465_6e00_0000;

fn state_err(path: &Path, reason: impl std::fmt::Display) -> TrainError {
    TrainError::State {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn epoch_dir(state: &Path, epoch: usize) -> PathBuf {
    state.join(format!("epoch-{epoch}"))
}

/// Saves epoch `epoch`'s model, best model and optimiser, then commits them by writing the
/// progress file, then removes older epochs: a kill at any point leaves one complete epoch.
fn save_state(
    state: &Path,
    model: &Model,
    best: &Model,
    optim: &burn::optim::ModuleOptimizer,
    progress: &Progress,
) -> Result<(), TrainError> {
    fs::create_dir_all(state).map_err(|e| state_err(state, e))?;
    let dir = epoch_dir(state, progress.epoch);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| state_err(&dir, e))?;
    model
        .valid()
        .save(&dir.join("model"), WeightFormat::Safetensors)?;
    best.save(&dir.join("best"), WeightFormat::Safetensors)?;
    let bytes = optim
        .to_record()
        .into_bytes()
        .map_err(|e| state_err(&dir, format!("optimiser state: {e:?}")))?;
    widen_guard::write_file_atomically(&dir.join("optim.bpk"), &bytes)
        .map_err(|e| state_err(&dir, e))?;
    let json = serde_json::to_vec_pretty(progress).map_err(|e| state_err(state, e))?;
    widen_guard::write_file_atomically(&state.join(PROGRESS), &json)
        .map_err(|e| state_err(state, e))?;
    if let Ok(entries) = fs::read_dir(state) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("epoch-") && name != format!("epoch-{}", progress.epoch) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    Ok(())
}

struct Resumed {
    model: Model,
    best: Model,
    optim: burn::optim::ModuleOptimizer,
    progress: Progress,
}

fn load_state(
    state: &Path,
    optim: burn::optim::ModuleOptimizer,
    device: &Device,
    config: &FitConfig,
) -> Result<Option<Resumed>, TrainError> {
    let path = state.join(PROGRESS);
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = widen_guard::read_bounded(&path, "the fit progress file", 8)
        .map_err(|e| state_err(&path, e))?;
    let progress: Progress = serde_json::from_slice(&bytes).map_err(|e| state_err(&path, e))?;
    if &progress.history.config != config {
        return Err(state_err(
            state,
            "the saved run used other settings; resume with the same options, or remove the \
             state directory to start over",
        ));
    }
    let dir = epoch_dir(state, progress.epoch);
    let inner = device.clone().inner();
    let model = Model::load(&dir.join("model"), device)?;
    let best = Model::load(&dir.join("best"), &inner)?;
    let record = widen_guard::read_bounded(&dir.join("optim.bpk"), "the optimiser state", 2)
        .map_err(|e| state_err(&dir, e))?;
    let record =
        burn::optim::OptimizerRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(record))
            .map_err(|e| state_err(&dir, format!("optimiser state: {e:?}")))?;
    Ok(Some(Resumed {
        model,
        best,
        optim: optim.load_record(record),
        progress,
    }))
}

/// Fine-tunes `model` (on an autodiff device) on `train`, scoring `val` after every epoch, and
/// returns the best validation checkpoint. With `state`, the run saves a resumable state there
/// after each epoch; with `resume` it continues from the last saved epoch (the final weights
/// equal an uninterrupted run's). `on_epoch` sees each epoch's record and the epoch count, and
/// returns `false` to stop there (the state is saved first, so the run can be resumed).
#[allow(clippy::too_many_arguments)]
pub fn fit(
    model: Model,
    expanded: Option<&Expanded>,
    train: &Dataset,
    val: &Dataset,
    config: &FitConfig,
    state: Option<&Path>,
    resume: bool,
    mut on_epoch: impl FnMut(&EpochRecord, usize) -> bool,
) -> Result<FitOutcome, TrainError> {
    fit_observed(
        model,
        expanded,
        train,
        val,
        config,
        state,
        resume,
        |record, _, epochs| on_epoch(record, epochs),
    )
}

/// [`fit`] whose callback also sees the model after each epoch (inference device, the weights
/// of that epoch, not the best so far): the study scores it on held-out data to draw curves.
#[allow(clippy::too_many_arguments)]
pub fn fit_observed(
    model: Model,
    expanded: Option<&Expanded>,
    train: &Dataset,
    val: &Dataset,
    config: &FitConfig,
    state: Option<&Path>,
    resume: bool,
    mut on_epoch: impl FnMut(&EpochRecord, &Model, usize) -> bool,
) -> Result<FitOutcome, TrainError> {
    config.validate()?;
    require_labels(train, "the training data")?;
    require_labels(val, "the validation data")?;
    check_fit(&model, train, "the training data")?;
    check_fit(&model, val, "the validation data")?;
    if train.class_names != val.class_names {
        return Err(TrainError::Mismatch(format!(
            "the training and validation data name their classes differently ({:?} vs {:?}); \
             map them by name first",
            train.class_names, val.class_names
        )));
    }
    if config.recipe != Recipe::Plain && expanded.is_none() {
        return Err(TrainError::Config(format!(
            "recipe `{}` trains what `widen expand` added, but this model's model.json has no \
             expansion record; use --recipe plain",
            config.recipe.name()
        )));
    }
    let device = model
        .devices()
        .into_iter()
        .next()
        .ok_or_else(|| TrainError::Config("the model has no parameters".into()))?;
    if !device.is_autodiff() {
        return Err(TrainError::Config(
            "fit needs the model on an autodiff device".into(),
        ));
    }
    let b = config.batch_size.min(train.cases).max(1);
    model.check_memory(b, train.length, true)?;
    let format = model.input().data_format;
    let kind = output_kind(&model);
    let inner = device.clone().inner();

    let mut adam = AdamConfig::new();
    if let Some(c) = config.clip_norm {
        adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(c)));
    }
    let fresh_optim = adam.init();
    let resumed = match (resume, state) {
        (true, Some(dir)) => load_state(dir, fresh_optim.clone(), &device, config)?,
        _ => None,
    };
    let (mut model, mut best, mut optim, mut progress) = match resumed {
        Some(r) => (r.model, r.best, r.optim, r.progress),
        None => {
            // The staged recipe brings new channels to the trained scale first.
            let model = match (config.recipe, expanded) {
                (Recipe::Staged, Some(e)) if !e.standardized => {
                    let all: Vec<usize> = (0..train.cases).collect();
                    let sample = batch(train, &all, format, &device);
                    widen_adapt::standardize(&model, &sample, &e.map.new_positions())?
                }
                _ => model,
            };
            let start = score(&model.valid(), val, &inner)?;
            let history = History {
                config: config.clone(),
                start_val_loss: start.loss,
                start_val_accuracy: start.accuracy,
                epochs: Vec::new(),
                best_epoch: 0,
                best_val_accuracy: start.accuracy,
                best_val_loss: start.loss,
                stopped_early: false,
                worst_dip: 0.0,
                steps: 0,
            };
            let best = model.valid();
            (
                model,
                best,
                fresh_optim,
                Progress {
                    epoch: 0,
                    history,
                    wait: 0,
                    step: 0,
                },
            )
        }
    };
    // The standardisation layer (if added) widens nothing: the expansion's record still holds.
    let expanded = expanded.cloned();
    let mut losses: Vec<f64> = Vec::new();
    for epoch in progress.epoch + 1..=config.epochs {
        let new_only = config.new_only(epoch);
        let lr = config.lr(epoch);
        // Freezing is not stored in checkpoints: each epoch applies its phase's.
        let (m, masks): (Model, Vec<GradientMask>) = match (&expanded, new_only) {
            (Some(e), true) => freeze_base(Expansion {
                model: stable_param_ids(model.unfreeze(), ID_SALT),
                map: e.map.clone(),
                adapted_layers: e.adapted_layers.clone(),
                strategy: e.strategy.clone(),
            })?,
            _ => (stable_param_ids(model.unfreeze(), ID_SALT), Vec::new()),
        };
        model = m;
        // A fresh seeded permutation per epoch: a resumed run draws the same order.
        let mut rng = HostRng::new(derive_seed_indexed(config.seed, epoch as u64));
        let mut order: Vec<usize> = (0..train.cases).collect();
        for i in (1..order.len()).rev() {
            let j = (rng.uniform() * (i + 1) as f64) as usize;
            order.swap(i, j.min(i));
        }
        let (mut sum, mut count, mut max_norm, mut spikes) = (0.0, 0usize, 0.0f64, 0usize);
        let (mut max_jump, mut previous) = (0.0f64, None::<f64>);
        for cases in order.chunks(b) {
            progress.step += 1;
            // Dropout draws from the device's generator: seed it per step for resumption.
            device.seed(derive_seed_indexed(
                config.seed ^ 0xd0,
                progress.step as u64,
            ));
            let labels = labels_of(train, cases);
            let out = match model.forward_train(batch(train, cases, format, &device))? {
                Value::Flat(t) => t,
                Value::Seq(_) => {
                    return Err(TrainError::Mismatch(
                        "the model must end in one score per class".into(),
                    ));
                }
            };
            let loss: Tensor<1> = loss_of(out, &labels, kind);
            let value = scalar(loss.clone())?;
            if !value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    step: progress.step,
                    loss: value,
                    learning_rate: lr,
                });
            }
            if losses.len() >= 5 {
                let recent = &losses[losses.len() - 5..];
                let mean = recent.iter().sum::<f64>() / recent.len() as f64;
                if value > config.spike_factor * mean {
                    spikes += 1;
                }
            }
            if let Some(p) = previous {
                max_jump = max_jump.max(value - p);
            }
            previous = Some(value);
            losses.push(value);
            sum += value;
            count += 1;
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            for mask in &masks {
                mask.apply(&mut grads);
            }
            let norm = gradient_norms(&model, &grads)?
                .iter()
                .map(|n| n.norm * n.norm)
                .sum::<f64>()
                .sqrt();
            if !norm.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    step: progress.step,
                    loss: norm,
                    learning_rate: lr,
                });
            }
            max_norm = max_norm.max(norm);
            model = optim.step(lr, model, grads);
        }
        let current = model.valid();
        let score = crate::score(&current, val, &inner)?;
        let record = EpochRecord {
            epoch,
            phase: if new_only { "new-only" } else { "all" }.to_string(),
            learning_rate: lr,
            train_loss: sum / count.max(1) as f64,
            val_loss: score.loss,
            val_accuracy: score.accuracy,
            max_grad_norm: max_norm,
            spikes,
            max_loss_jump: max_jump,
        };
        let h = &mut progress.history;
        h.worst_dip = h.worst_dip.max(h.start_val_accuracy - score.accuracy);
        let better = score.accuracy > h.best_val_accuracy + 1e-12
            || (score.accuracy >= h.best_val_accuracy - 1e-12
                && score.loss < h.best_val_loss - 1e-12);
        if better {
            h.best_epoch = epoch;
            h.best_val_accuracy = score.accuracy;
            h.best_val_loss = score.loss;
            best = current.clone();
            progress.wait = 0;
        } else {
            progress.wait += 1;
        }
        h.epochs.push(record.clone());
        h.steps = progress.step;
        progress.epoch = epoch;
        // The staged warm-up runs to its end: the model is expected to improve once it all trains.
        let warming_up = config.recipe == Recipe::Staged && new_only;
        let stop = !warming_up && config.patience.is_some_and(|p| progress.wait >= p);
        if stop {
            progress.history.stopped_early = true;
        }
        if let Some(dir) = state {
            save_state(dir, &model, &best, &optim, &progress)?;
        }
        if !on_epoch(&record, &current, config.epochs) || stop {
            break;
        }
    }
    Ok(FitOutcome {
        model: best,
        history: progress.history,
    })
}

impl History {
    /// Validation accuracy and training loss per epoch as an SVG (two panels; the starting
    /// model's accuracy dashed), what `widen fit` writes as `curves.svg`.
    pub fn svg(&self) -> String {
        let (w, h, pad) = (640.0, 220.0, 40.0);
        let n = self.epochs.len().max(1) as f64;
        let x = |e: usize| pad + (w - 2.0 * pad) * e as f64 / n;
        let panel = |title: &str, values: Vec<(usize, f64)>, lo: f64, hi: f64, top: f64| {
            let span = (hi - lo).max(1e-9);
            let y = |v: f64| top + h - pad - (h - 2.0 * pad) * (v - lo) / span;
            let points: Vec<String> = values
                .iter()
                .map(|&(e, v)| format!("{:.1},{:.1}", x(e), y(v)))
                .collect();
            format!(
                "<text x=\"{pad}\" y=\"{:.1}\" font-size=\"13\">{title} ({lo:.3} – {hi:.3})</text>\n\
                 <rect x=\"{pad}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#999\"/>\n\
                 <polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>\n",
                top + pad - 8.0,
                top + pad,
                w - 2.0 * pad,
                h - 2.0 * pad,
                points.join(" ")
            )
        };
        let acc: Vec<(usize, f64)> = std::iter::once((0, self.start_val_accuracy))
            .chain(self.epochs.iter().map(|r| (r.epoch, r.val_accuracy)))
            .collect();
        let loss: Vec<(usize, f64)> = self
            .epochs
            .iter()
            .map(|r| (r.epoch, r.train_loss))
            .collect();
        let (alo, ahi) = acc
            .iter()
            .fold((1.0f64, 0.0f64), |(a, b), &(_, v)| (a.min(v), b.max(v)));
        let (llo, lhi) = loss
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(a, b), &(_, v)| {
                (a.min(v), b.max(v))
            });
        let start_y = {
            let span = (ahi - alo).max(1e-9);
            h - pad - (h - 2.0 * pad) * (self.start_val_accuracy - alo) / span
        };
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" font-family=\"sans-serif\">\n\
             {}<line x1=\"{pad}\" x2=\"{:.1}\" y1=\"{start_y:.1}\" y2=\"{start_y:.1}\" stroke=\"#d62728\" stroke-dasharray=\"4 3\"/>\n{}</svg>\n",
            2.0 * h,
            panel(
                "validation accuracy (dashed: the starting model)",
                acc,
                alo,
                ahi,
                0.0
            ),
            w - pad,
            panel(
                "training loss",
                loss,
                if llo.is_finite() { llo } else { 0.0 },
                lhi,
                h
            ),
        )
    }
}
