//! `widen fit`, `widen evaluate`, `widen diagnose`: the user's road after `expand`. Parsing,
//! loading through widen-data, calling widen-train / widen-adapt, printing; no logic of its own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{Device, Tensor};
use clap::{Args, ValueEnum};
use widen::data::{Dataset, LengthPolicy, SeriesLayout};
use widen::layers::{DataFormat, Model, WeightFormat, read_meta};
use widen::train::{Expanded, FitConfig, Recipe};

use crate::commands::backend;

/// `--length-policy` for `.ts` data whose series differ in length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LengthPolicyArg {
    /// Refuse unequal lengths.
    #[default]
    Error,
    /// Zero-pad at the end to the longest series.
    Pad,
    /// Crop to the shortest series.
    Crop,
}

/// `--recipe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecipeArg {
    /// Standardise new channels, train the new part, then everything at a lower rate.
    Staged,
    /// Train only what the expansion added.
    NewOnly,
    /// Train everything.
    Plain,
}

/// Where data comes from: a `.ts` file, or `.npy` series with `.npy` labels.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Series `[cases, length, channels]` (.npy; `--channels-first` for `[cases, channels,
    /// length]`), or a UEA/UCR .ts file with its labels.
    #[arg(long)]
    pub data: PathBuf,
    /// Labels for .npy data: a 1-D .npy of integers or strings.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// .npy series are `[cases, channels, length]`.
    #[arg(long)]
    pub channels_first: bool,
    /// What to do with .ts series of unequal length.
    #[arg(long, value_enum, default_value_t)]
    pub length_policy: LengthPolicyArg,
}

fn policy(p: LengthPolicyArg) -> LengthPolicy {
    match p {
        LengthPolicyArg::Error => LengthPolicy::Error,
        LengthPolicyArg::Pad => LengthPolicy::PadTo(None),
        LengthPolicyArg::Crop => LengthPolicy::Crop,
    }
}

/// Reads `path` (.ts, or .npy with optional labels).
pub fn read_data(
    path: &Path,
    labels: Option<&Path>,
    channels_first: bool,
    length: LengthPolicyArg,
) -> Result<Dataset, String> {
    let is_ts = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("ts"));
    if is_ts {
        if labels.is_some() {
            return Err(format!(
                "{}: a .ts file carries its own labels; leave out --labels",
                path.display()
            ));
        }
        return widen::data::read_ts(path, policy(length)).map_err(|e| e.to_string());
    }
    let layout = if channels_first {
        SeriesLayout::ChannelsFirst
    } else {
        SeriesLayout::ChannelsLast
    };
    widen::data::read_npy_dataset(path, labels, layout).map_err(|e| e.to_string())
}

/// The class names a model was fitted with (`meta.classes`), if a `widen fit` recorded them.
fn model_classes(meta: Option<&serde_json::Value>) -> Option<Vec<String>> {
    serde_json::from_value(meta?.get("classes")?.clone()).ok()
}

/// Labels mapped by name onto `classes` (the model's output order), so a file that declares
/// its classes in another order, or lacks some, still scores right.
fn align(data: Dataset, classes: Option<&[String]>, origin: &str) -> Result<Dataset, String> {
    match classes {
        Some(names) if data.class_names != names => {
            data.relabel_to(names, origin).map_err(|e| e.to_string())
        }
        _ => Ok(data),
    }
}

/// `widen fit` options.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// Model directory (from `widen expand`, an export, or an earlier fit); never modified.
    #[arg(long)]
    pub model: PathBuf,
    /// Training series (.npy or .ts).
    #[arg(long)]
    pub train: PathBuf,
    /// Training labels (.npy) for .npy series.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Validation series; default: a stratified --val-fraction of the training data.
    #[arg(long)]
    pub val: Option<PathBuf>,
    /// Validation labels (.npy).
    #[arg(long)]
    pub val_labels: Option<PathBuf>,
    /// Fraction of the training data held out for validation when --val is not given.
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Output model directory (also gets history.json and curves.svg).
    #[arg(long)]
    pub out: PathBuf,
    /// Recipe; default: staged for a model from `widen expand`, else plain.
    #[arg(long, value_enum)]
    pub recipe: Option<RecipeArg>,
    /// Epochs at most.
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    /// Cases per step.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Seed (batch order, dropout, the validation split).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop after this many epochs without a better validation score (0: never).
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Clip each step's gradient to this L2 norm.
    #[arg(long)]
    pub clip_norm: Option<f32>,
    /// Continue a killed run from its last saved epoch.
    #[arg(long)]
    pub resume: bool,
    /// Print only the final line.
    #[arg(long)]
    pub quiet: bool,
    /// .npy series are `[cases, channels, length]`.
    #[arg(long)]
    pub channels_first: bool,
    /// What to do with .ts series of unequal length.
    #[arg(long, value_enum, default_value_t)]
    pub length_policy: LengthPolicyArg,
    /// Backend.
    #[arg(long)]
    pub backend: Option<String>,
}

/// `widen fit`.
pub fn fit(args: FitArgs) -> Result<(), String> {
    let kind = backend(args.backend.as_deref())?;
    let device = kind.device().map_err(|e| e.to_string())?;
    let train_device = device.clone().autodiff();
    let mut inputs = vec![args.model.as_path(), args.train.as_path()];
    inputs.extend(args.labels.as_deref());
    inputs.extend(args.val.as_deref());
    inputs.extend(args.val_labels.as_deref());
    widen::guard::check_output(&args.out, &inputs).map_err(|e| e.to_string())?;
    let state = widen::train::state_dir_for(&args.out);
    if args.resume && !state.is_dir() {
        return Err(format!(
            "--resume: no saved run for {} (expected {})",
            args.out.display(),
            state.display()
        ));
    }
    if !args.resume && (args.out.exists() || state.exists()) {
        return Err(format!(
            "{} (or its run state {}) exists; choose a new --out, or pass --resume to continue \
             that run",
            args.out.display(),
            state.display()
        ));
    }
    let model = Model::load(&args.model, &train_device).map_err(|e| e.to_string())?;
    let meta = read_meta(&args.model).map_err(|e| e.to_string())?;
    let expanded = meta.as_ref().and_then(Expanded::from_meta);
    let classes = model_classes(meta.as_ref());
    let train = read_data(
        &args.train,
        args.labels.as_deref(),
        args.channels_first,
        args.length_policy,
    )?;
    let train = align(train, classes.as_deref(), &args.train.display().to_string())?;
    let (train, val) = match &args.val {
        Some(path) => {
            let val = read_data(
                path,
                args.val_labels.as_deref(),
                args.channels_first,
                args.length_policy,
            )?;
            let val = align(val, Some(&train.class_names), &path.display().to_string())?;
            (train, val)
        }
        None => train
            .split_stratified(args.val_fraction, args.seed)
            .map_err(|e| e.to_string())?,
    };
    let recipe = match (args.recipe, &expanded) {
        (Some(RecipeArg::Staged), _) | (None, Some(_)) => Recipe::Staged,
        (Some(RecipeArg::NewOnly), _) => Recipe::NewOnly,
        (Some(RecipeArg::Plain), _) | (None, None) => Recipe::Plain,
    };
    let config = FitConfig {
        recipe,
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        seed: args.seed,
        patience: (args.patience > 0).then_some(args.patience),
        clip_norm: args.clip_norm,
        ..FitConfig::default()
    };
    if !args.quiet {
        println!(
            "fit: {} training and {} validation cases, {} classes, recipe {}, up to {} epochs",
            train.cases,
            val.cases,
            train.num_classes(),
            recipe.name(),
            config.epochs
        );
    }
    let started = Instant::now();
    let quiet = args.quiet;
    let outcome = widen::train::fit(
        model,
        expanded.as_ref(),
        &train,
        &val,
        &config,
        Some(&state),
        args.resume,
        |r, total| {
            if quiet {
                return true;
            }
            let elapsed = started.elapsed().as_secs_f64();
            let eta = elapsed / r.epoch.max(1) as f64 * total.saturating_sub(r.epoch) as f64;
            println!(
                "epoch {:>3}/{total} [{:<8}] loss {:.4}  val_loss {:.4}  val_acc {:.4}  \
                 grad≤{:.2}  spikes {}  ETA ≤{:.0}s",
                r.epoch,
                r.phase,
                r.train_loss,
                r.val_loss,
                r.val_accuracy,
                r.max_grad_norm,
                r.spikes,
                eta
            );
            true
        },
    )
    .map_err(|e| e.to_string())?;
    let h = &outcome.history;
    let mut meta = meta.unwrap_or_else(|| serde_json::json!({}));
    if let Some(obj) = meta.as_object_mut() {
        obj.insert("classes".into(), serde_json::json!(train.class_names));
        obj.insert(
            "fit".into(),
            serde_json::json!({"recipe": recipe.name(), "best_epoch": h.best_epoch,
                "best_val_accuracy": h.best_val_accuracy}),
        );
    }
    let format = if args
        .model
        .join(WeightFormat::Burnpack.file_name())
        .is_file()
    {
        WeightFormat::Burnpack
    } else {
        WeightFormat::Safetensors
    };
    outcome
        .model
        .save_with_meta(&args.out, format, Some(&meta))
        .map_err(|e| e.to_string())?;
    let json = serde_json::to_vec_pretty(h).map_err(|e| e.to_string())?;
    widen::guard::write_file_atomically(&args.out.join("history.json"), &json)
        .map_err(|e| e.to_string())?;
    widen::guard::write_file_atomically(&args.out.join("curves.svg"), h.svg().as_bytes())
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&state);
    println!(
        "fitted in {:.1}s: best epoch {} (val_acc {:.4}, val_loss {:.4}; start {:.4}, worst dip \
         below it {:.4}{}); wrote {}",
        started.elapsed().as_secs_f64(),
        h.best_epoch,
        h.best_val_accuracy,
        h.best_val_loss,
        h.start_val_accuracy,
        h.worst_dip,
        if h.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        args.out.display()
    );
    Ok(())
}

impl DataArgs {
    /// Reads the data these options name.
    fn read(&self) -> Result<Dataset, String> {
        read_data(
            &self.data,
            self.labels.as_deref(),
            self.channels_first,
            self.length_policy,
        )
    }
}

/// What `evaluate` and `diagnose` start from: the JSON output checked against every input
/// first (so a bad path fails before any work), then the model, its `meta` and the data.
fn open(
    model: &Path,
    data: &DataArgs,
    json: Option<&Path>,
    other_input: Option<&Path>,
    device: &Device,
) -> Result<(Model, Option<serde_json::Value>, Dataset), String> {
    if let Some(out) = json {
        let mut inputs = vec![model, data.data.as_path()];
        inputs.extend(data.labels.as_deref());
        inputs.extend(other_input);
        widen::guard::check_output(out, &inputs).map_err(|e| e.to_string())?;
    }
    let loaded = Model::load(model, device).map_err(|e| e.to_string())?;
    let meta = read_meta(model).map_err(|e| e.to_string())?;
    Ok((loaded, meta, data.read()?))
}

/// `widen evaluate` options.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The data.
    #[command(flatten)]
    pub data: DataArgs,
    /// Also write the result as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Backend.
    #[arg(long)]
    pub backend: Option<String>,
}

/// `widen evaluate`.
pub fn evaluate(args: EvaluateArgs) -> Result<(), String> {
    let kind = backend(args.backend.as_deref())?;
    let device = kind.device().map_err(|e| e.to_string())?;
    let (model, meta, data) = open(&args.model, &args.data, args.json.as_deref(), None, &device)?;
    let data = align(
        data,
        model_classes(meta.as_ref()).as_deref(),
        &args.data.data.display().to_string(),
    )?;
    let e = widen::train::evaluate(&model, &data, &device).map_err(|e| e.to_string())?;
    println!(
        "{} cases: loss {:.4}, accuracy {:.4}",
        data.cases, e.loss, e.accuracy
    );
    let w = e
        .classes
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("| {:<w$} | cases | recall |", "class");
    println!("|{}|-------|--------|", "-".repeat(w + 2));
    for (i, r) in e.recall().iter().enumerate() {
        let n: usize = e.confusion[i].iter().sum();
        let name = widen::layers::printable(&e.classes[i]);
        match r {
            Some(r) => println!("| {name:<w$} | {n:>5} | {r:>6.3} |"),
            None => println!("| {name:<w$} | {n:>5} |      – |"),
        }
    }
    println!("confusion matrix (rows: true class, columns: predicted):");
    for row in &e.confusion {
        println!(
            "  {}",
            row.iter()
                .map(|c| format!("{c:>5}"))
                .collect::<Vec<_>>()
                .join("")
        );
    }
    if let Some(out) = &args.json {
        let json = serde_json::to_vec_pretty(&e).map_err(|e| e.to_string())?;
        widen::guard::write_file_atomically(out, &json).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `widen diagnose` options.
#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// The widened (or any) model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The data, in the model's channels.
    #[command(flatten)]
    pub data: DataArgs,
    /// The base model before widening: adds the function drift.
    #[arg(long)]
    pub base: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Cases used (the first N).
    #[arg(long, default_value_t = 256)]
    pub cases: usize,
    /// Backend.
    #[arg(long)]
    pub backend: Option<String>,
}

fn tensor(data: &Dataset, cases: usize, format: DataFormat, device: &Device) -> Tensor<3> {
    let all: Vec<usize> = (0..cases.min(data.cases)).collect();
    widen::train::batch(data, &all, format, device)
}

/// `widen diagnose`: the three causes on the user's model and data, and what to do.
pub fn diagnose(args: DiagnoseArgs) -> Result<(), String> {
    use widen::adapt::{Placement, batchnorm_shift, channel_contributions, channel_scales, drift};
    let kind = backend(args.backend.as_deref())?;
    let device = kind.device().map_err(|e| e.to_string())?;
    let (model, meta, data) = open(
        &args.model,
        &args.data,
        args.json.as_deref(),
        args.base.as_deref(),
        &device,
    )?;
    let expanded = meta.as_ref().and_then(Expanded::from_meta);
    if data.channels != model.input().channels {
        return Err(format!(
            "{} has {} channels; the model takes {}",
            args.data.data.display(),
            data.channels,
            model.input().channels
        ));
    }
    let cases = args.cases.clamp(1, data.cases.max(1));
    let sub = data
        .subset(&(0..cases.min(data.cases)).collect::<Vec<_>>())
        .map_err(|e| e.to_string())?;
    let format = model.input().data_format;
    let x = tensor(&sub, cases, format, &device);
    // Which channels are new: the expansion's record, else none.
    let map = match &expanded {
        Some(e) => e.map.clone(),
        None => Placement::Append
            .resolve(data.channels, data.channels)
            .map_err(|e| e.to_string())?,
    };
    let scales = channel_scales(&sub.series, sub.channels, sub.length, &map);
    let contributions = channel_contributions(&model, x.clone()).map_err(|e| e.to_string())?;
    let shifts = batchnorm_shift(&model, x.clone()).map_err(|e| e.to_string())?;
    let drift = match (&args.base, &expanded) {
        (Some(base_dir), Some(e)) => {
            let base = Model::load(base_dir, &device).map_err(|e| e.to_string())?;
            let old = sub
                .select_channels(&e.map.old_positions())
                .map_err(|e| e.to_string())?;
            let x_old = tensor(&old, cases, base.input().data_format, &device);
            Some(drift(&base, x_old, &model, x.clone()).map_err(|e| e.to_string())?)
        }
        (Some(_), None) => {
            return Err(
                "--base needs a model from `widen expand` (its model.json records which channels are old)"
                    .into(),
            );
        }
        _ => None,
    };
    let grads = if sub.labels.len() == sub.cases && sub.cases > 0 {
        let ad = device.clone().autodiff();
        let m = Model::load(&args.model, &ad).map_err(|e| e.to_string())?;
        let kind = widen::train::output_kind(&m);
        let out = match m.forward_train(tensor(&sub, cases, format, &ad)) {
            Ok(widen::layers::Value::Flat(t)) => t,
            Ok(_) => return Err("the model must end in one score per class".into()),
            Err(e) => return Err(e.to_string()),
        };
        let loss = widen::train::loss_of(out, &sub.labels, kind);
        let g = burn::optim::GradientsParams::from_grads(loss.backward(), &m);
        Some(widen::adapt::gradient_norms(&m, &g).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let rec = widen::adapt::recommend(&model, &scales);
    println!("# widen diagnose: {}", args.model.display());
    println!("\n## 1. New channels at another scale");
    println!("| channel | new | mean | std |\n|---|---|---|---|");
    for s in &scales {
        println!(
            "| {} | {} | {:.4} | {:.4} |",
            s.channel,
            if s.new { "yes" } else { "" },
            s.mean,
            s.std
        );
    }
    println!("\n## 2. What each input channel feeds the first layers");
    println!("| channel | kernel norm | input rms | share |\n|---|---|---|---|");
    for c in &contributions {
        println!(
            "| {} | {:.4} | {:.4} | {:.3} |",
            c.channel, c.kernel_norm, c.input_rms, c.share
        );
    }
    println!("\n## 3. BatchNorm statistics on this data against the stored ones");
    if shifts.is_empty() {
        println!("(no BatchNormalization layer)");
    } else {
        println!("| layer | mean shift | max shift | log variance ratio |\n|---|---|---|---|");
        for s in &shifts {
            println!(
                "| {} | {:.4} | {:.4} | {:.4} |",
                widen::layers::printable(&s.layer),
                s.mean_shift,
                s.max_mean_shift,
                s.log_variance_ratio
            );
        }
    }
    if let Some(g) = &grads {
        println!("\n## Gradient norms on one batch\n| tensor | norm |\n|---|---|");
        for n in g {
            println!(
                "| {}.{} | {:.4} |",
                widen::layers::printable(&n.layer),
                n.param,
                n.norm
            );
        }
    }
    if let Some(d) = &drift {
        println!("\n## Drift against the base model\n{d:?}");
    }
    match &rec {
        Ok(r) => {
            println!(
                "\n## Recommendation\n`widen expand --strategy {}{}` then `widen fit --recipe {}`",
                r.strategy.short_name(),
                if r.standardize { " --standardize" } else { "" },
                r.recipe
            );
            for reason in &r.reasons {
                println!("- {reason}");
            }
        }
        Err(e) => println!("\n## Recommendation\nnone: {e}"),
    }
    if let Some(out) = &args.json {
        let json = serde_json::json!({
            "scales": scales, "contributions": contributions, "batchnorm_shift": shifts,
            "gradient_norms": grads, "drift": drift.as_ref().map(|d| format!("{d:?}")),
            "recommendation": rec.ok(),
        });
        let bytes = serde_json::to_vec_pretty(&json).map_err(|e| e.to_string())?;
        widen::guard::write_file_atomically(out, &bytes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `widen expand --strategy auto`: the recommendation from `--sample`.
pub fn auto_strategy(
    model: &Path,
    sample: &Path,
    channels_first: bool,
    to: usize,
) -> Result<(widen::adapt::Strategy, bool), String> {
    use widen::adapt::{Placement, channel_scales, recommend};
    let device = burn::tensor::Device::flex();
    let base = Model::load(model, &device).map_err(|e| e.to_string())?;
    let data = read_data(sample, None, channels_first, LengthPolicyArg::Error)?;
    if data.channels != to {
        return Err(format!(
            "--sample {} has {} channels; --to is {to}",
            sample.display(),
            data.channels
        ));
    }
    let map = Placement::Append
        .resolve(base.input().channels, to)
        .map_err(|e| e.to_string())?;
    let scales = channel_scales(&data.series, data.channels, data.length, &map);
    let rec = recommend(&base, &scales).map_err(|e| e.to_string())?;
    println!(
        "auto: strategy {}{}",
        rec.strategy.short_name(),
        if rec.standardize {
            " with --standardize"
        } else {
            ""
        }
    );
    for r in &rec.reasons {
        println!("  - {r}");
    }
    Ok((rec.strategy, rec.standardize))
}
