//! One function per subcommand: turn arguments into library calls and results into text.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use widen::BackendKind;
use widen::adapt::{ExpandRequest, ProjectionInit, Strategy, expand_checkpoint_with};
use widen::burn::tensor::{Device, Tensor, TensorData};
use widen::init::Initializer;
use widen::layers::{DataFormat, Sequential, Value};
use widen_cli::data::SyntheticConfig;
use widen_cli::npy;
use widen_cli::study::{self, Progress, StudyConfig};

use crate::StrategyArg;

/// Resolves `--backend` (or `WIDEN_BACKEND`, or the default).
pub fn backend(name: Option<&str>) -> Result<BackendKind, String> {
    match name {
        Some(name) => name.parse().map_err(|e| format!("{e}")),
        None => BackendKind::from_env().map_err(|e| format!("{e}")),
    }
}

/// `widen study` options.
#[derive(Debug, Args)]
pub struct StudyArgs {
    /// Output directory for study.md, study.json, timing.json and curves.svg/.png.
    #[arg(long, default_value = "widen-study")]
    pub out: PathBuf,
    /// Seeds (comma-separated); each gives its own validation split, base model and init.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    pub seeds: Vec<u64>,
    /// Architectures (comma-separated: ex1, fcn, resnet).
    #[arg(long, value_delimiter = ',', default_value = "ex1,fcn,resnet")]
    pub arch: Vec<String>,
    /// Optimiser steps of the base model and of scratch, at most (early stopping on
    /// validation); rounded up to whole epochs.
    #[arg(long, default_value_t = StudyConfig::default().base_steps)]
    pub base_steps: usize,
    /// Fine-tuning steps per widened variant (rounded up to whole epochs).
    #[arg(long, default_value_t = StudyConfig::default().steps)]
    pub steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = StudyConfig::default().batch_size)]
    pub batch_size: usize,
    /// Adam learning rate of the base model and of scratch.
    #[arg(long, default_value_t = StudyConfig::default().learning_rate)]
    pub lr: f64,
    /// Adam learning rate of fine-tuning.
    #[arg(long, default_value_t = StudyConfig::default().finetune_learning_rate)]
    pub finetune_lr: f64,
    /// Early-stopping patience (steps) of the base model and of scratch.
    #[arg(long, default_value_t = StudyConfig::default().base_patience)]
    pub patience: usize,
    /// Only these variants (comma-separated names, e.g. zero,zero+std,auto+staged).
    #[arg(long, value_delimiter = ',')]
    pub strategies: Vec<String>,
    /// Scenarios to run (real, controlled).
    #[arg(long, value_delimiter = ',', default_value = "real,controlled")]
    pub scenarios: Vec<String>,
    /// Real-sensor scenario from your data instead of the embedded BasicMotions: a UEA .ts
    /// file, or .npy series `[cases, length, channels]` with --train-labels.
    #[arg(long, requires_all = ["test", "old_channels"])]
    pub train: Option<PathBuf>,
    /// The matching test file (.ts, or .npy with --test-labels).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Labels (.npy) for .npy training series.
    #[arg(long)]
    pub train_labels: Option<PathBuf>,
    /// Labels (.npy) for .npy test series.
    #[arg(long)]
    pub test_labels: Option<PathBuf>,
    /// .npy series are `[cases, channels, length]`.
    #[arg(long)]
    pub channels_first: bool,
    /// What to do with .ts series of unequal length (error, pad, crop).
    #[arg(long, value_enum, default_value_t)]
    pub length_policy: crate::workflow::LengthPolicyArg,
    /// With --train/--test: the old channels, as a count of leading channels (`3`) or an index
    /// list (`0,2,4`).
    #[arg(long)]
    pub old_channels: Option<String>,
    /// Controlled scenario: old channels.
    #[arg(long, default_value_t = study::controlled_config().old_channels)]
    pub c_old: usize,
    /// Controlled scenario: all channels after widening.
    #[arg(long, default_value_t = study::controlled_config().new_channels)]
    pub c_new: usize,
    /// Controlled scenario: series length.
    #[arg(long, default_value_t = study::controlled_config().length)]
    pub length: usize,
    /// Controlled scenario: factor on the new channels.
    #[arg(long, default_value_t = study::controlled_config().new_scale)]
    pub scale: f32,
    /// Controlled scenario: offset of the new channels.
    #[arg(long, default_value_t = study::controlled_config().new_offset)]
    pub offset: f32,
    /// Controlled scenario: per-case amplitude jitter of the old channels' signal (sets how
    /// well the old channels alone can do).
    #[arg(long, default_value_t = study::controlled_config().amplitude_jitter)]
    pub jitter: f64,
    /// Controlled scenario: training cases (a fifth is held out for validation).
    #[arg(long, default_value_t = study::controlled_config().cases_train)]
    pub train_cases: usize,
    /// Controlled scenario: test cases.
    #[arg(long, default_value_t = study::controlled_config().cases_test)]
    pub test_cases: usize,
    /// (architecture, seed) jobs run side by side (0: one per core); the results do not
    /// depend on it.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Backend.
    #[arg(long)]
    pub backend: Option<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

struct Bars {
    bar: Option<ProgressBar>,
}

impl Progress for Bars {
    fn start(&mut self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }
    fn run(&mut self, message: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(message.to_string());
        }
    }
    fn step(&mut self, epochs: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(epochs);
        }
    }
}

/// `widen study`.
pub fn study(args: StudyArgs) -> Result<(), String> {
    let inputs: Vec<&Path> = args
        .train
        .iter()
        .chain(&args.test)
        .chain(&args.train_labels)
        .chain(&args.test_labels)
        .map(PathBuf::as_path)
        .collect();
    // Checked before training, so a bad --out does not fail after minutes of work.
    if args.out.exists() && !args.out.is_dir() {
        return Err(format!(
            "--out {}: exists and is not a directory; the study writes {} into a directory",
            args.out.display(),
            study::OUTPUT_FILES.join(", ")
        ));
    }
    for name in study::OUTPUT_FILES {
        widen::guard::check_output(&args.out.join(name), &inputs).map_err(|e| e.to_string())?;
    }
    let kind = backend(args.backend.as_deref())?;
    let device = kind.device().map_err(|e| e.to_string())?;
    let archs = args
        .arch
        .iter()
        .map(|a| study::Arch::parse(a).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, String>>()?;
    let mut config = StudyConfig {
        seeds: args.seeds.clone(),
        archs,
        base_steps: args.base_steps,
        steps: args.steps,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        finetune_learning_rate: args.finetune_lr,
        base_patience: args.patience,
        threads: args.threads,
        ..StudyConfig::default()
    };
    if !args.strategies.is_empty() {
        let known: Vec<String> = config.variants.iter().map(|v| v.name.clone()).collect();
        if let Some(bad) = args.strategies.iter().find(|s| !known.contains(s)) {
            return Err(format!(
                "unknown strategy `{bad}`; known: {}",
                known.join(", ")
            ));
        }
        config
            .variants
            .retain(|v| args.strategies.contains(&v.name));
    }
    let mut scenarios = Vec::new();
    for name in &args.scenarios {
        match name.as_str() {
            "real" => scenarios.push(
                match (&args.train, &args.test, &args.old_channels) {
                    (Some(train), Some(test), Some(old)) => {
                        let read = |p: &Path, l: Option<&Path>| {
                            crate::workflow::read_data(
                                p,
                                l,
                                args.channels_first,
                                args.length_policy,
                            )
                        };
                        let train_set = read(train, args.train_labels.as_deref())?;
                        let test_set = read(test, args.test_labels.as_deref())?;
                        let old = old_channel_list(old)?;
                        let description = format!("{} / {}", train.display(), test.display());
                        study::from_datasets(train_set, test_set, old, &description)
                    }
                    _ => study::real_sensors(),
                }
                .map_err(|e| e.to_string())?,
            ),
            "controlled" => {
                let defaults = study::controlled_config();
                let synthetic = SyntheticConfig {
                    old_channels: args.c_old,
                    new_channels: args.c_new,
                    length: args.length,
                    new_scale: args.scale,
                    new_offset: args.offset,
                    amplitude_jitter: args.jitter,
                    cases_train: args.train_cases,
                    cases_test: args.test_cases,
                    informative_new: defaults
                        .informative_new
                        .min(args.c_new.saturating_sub(args.c_old)),
                    ..defaults
                };
                scenarios.push(study::controlled(&synthetic).map_err(|e| e.to_string())?);
            }
            other => {
                return Err(format!(
                    "unknown scenario `{other}` (expected real, controlled)"
                ));
            }
        }
    }
    let bar = (!args.quiet).then(|| {
        let bar = ProgressBar::new(0);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:30} {pos}/{len} epochs {elapsed_precise} {msg}")
        {
            bar.set_style(style);
        }
        bar
    });
    let mut bars = Bars { bar };
    let started = std::time::Instant::now();
    let result = study::run(&scenarios, &config, &device, kind.name(), &mut bars)
        .map_err(|e| e.to_string())?;
    if let Some(bar) = &bars.bar {
        bar.finish_and_clear();
    }
    let files = study::write_outputs(&result, &args.out).map_err(|e| e.to_string())?;
    let mut written = vec![
        files.markdown.display().to_string(),
        files.json.display().to_string(),
        files.timing.display().to_string(),
        files.figure.display().to_string(),
    ];
    written.extend(files.png.iter().map(|p| p.display().to_string()));
    println!(
        "wrote {} ({:.1} s)",
        written.join(", "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--old-channels`: a count of leading channels or a comma-separated index list.
fn old_channel_list(text: &str) -> Result<Vec<usize>, String> {
    let parse = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("--old-channels: `{t}` is not a channel count or index"))
    };
    if text.contains(',') {
        text.split(',').map(parse).collect()
    } else {
        Ok((0..parse(text)?).collect())
    }
}

/// `widen expand` options.
#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// Model directory to widen (never modified).
    #[arg(long)]
    pub model: PathBuf,
    /// New input channel count.
    #[arg(long)]
    pub to: usize,
    /// Strategy.
    #[arg(long, value_enum)]
    pub strategy: StrategyArg,
    /// Standardise the new channels with statistics from --sample.
    #[arg(long, requires = "sample")]
    pub standardize: bool,
    /// Data sample (.npy, `[batch, length, channels]` with the new channel count) for
    /// --standardize.
    #[arg(long)]
    pub sample: Option<PathBuf>,
    /// The sample is `[batch, channels, length]`.
    #[arg(long)]
    pub channels_first: bool,
    /// Output directory (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Seed for random slices.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where the old channels sit among the new ones (old channel i at position
    /// old_at[i], comma-separated); default: first, new channels appended.
    #[arg(long, value_delimiter = ',', conflicts_with = "keep")]
    pub old_at: Option<Vec<usize>>,
    /// Narrowing (a sensor retired): the old channels to keep, in their new order
    /// (comma-separated); their kernel slices stay, the others are dropped. --to must equal the
    /// count.
    #[arg(long, value_delimiter = ',')]
    pub keep: Option<Vec<usize>>,
    /// With --keep: data in the base model's channels (.npy); the dropped channels' mean
    /// contribution goes into the biases of the layers that read them.
    #[arg(long, requires = "keep")]
    pub compensate_sample: Option<PathBuf>,
    /// Backend.
    #[arg(long)]
    pub backend: Option<String>,
}

fn load(dir: &Path, backend_name: Option<&str>) -> Result<(Sequential, Device), String> {
    let kind = backend(backend_name)?;
    let device = kind.device().map_err(|e| e.to_string())?;
    let model = Sequential::load(dir, &device).map_err(|e| e.to_string())?;
    Ok((model, device))
}

/// Reads a 3-D `.npy` as a tensor in `model_format`, converting from the file's layout. When
/// the array's channel axis disagrees with `channels` but the other axis fits, the message says
/// which layout flag the file probably needs; `consumer` names what reads the channels.
fn read_input(
    path: &Path,
    channels_first: bool,
    model_format: DataFormat,
    channels: usize,
    consumer: &str,
    device: &Device,
) -> Result<Tensor<3>, String> {
    let array = npy::read(path).map_err(|e| e.to_string())?;
    let layout = if channels_first {
        "[batch, channels, length]"
    } else {
        "[batch, length, channels]"
    };
    let [a, b, c] = match array.shape.as_slice() {
        &[a, b, c] => [a, b, c],
        other => {
            return Err(format!(
                "{}: expected a 3-D array {layout}, got shape {other:?}",
                path.display()
            ));
        }
    };
    let (found, other) = if channels_first { (b, c) } else { (c, b) };
    if found != channels {
        let hint = if other == channels {
            if channels_first {
                "; it looks like [batch, length, channels]: drop --channels-first"
            } else {
                "; it looks like [batch, channels, length]: pass --channels-first"
            }
        } else {
            ""
        };
        return Err(format!(
            "{}: shape {:?} read as {layout}: {consumer}: expected {channels} input channels, got {found}{hint}",
            path.display(),
            array.shape
        ));
    }
    if a == 0 || other == 0 {
        return Err(format!(
            "{}: shape {:?} is empty; expected at least one case of at least one step",
            path.display(),
            array.shape
        ));
    }
    if let Some(i) = array.values.iter().position(|v| !v.is_finite()) {
        let count = array.values.iter().filter(|v| !v.is_finite()).count();
        return Err(format!(
            "{}: {count} NaN/Inf value(s) in the input, first at flat index {i}; widen needs finite inputs",
            path.display()
        ));
    }
    let x = Tensor::<3>::from_data(TensorData::new(array.values, [a, b, c]), device);
    let file_format = if channels_first {
        DataFormat::ChannelsFirst
    } else {
        DataFormat::ChannelsLast
    };
    Ok(if file_format == model_format {
        x
    } else {
        x.swap_dims(1, 2)
    })
}

/// `widen summary`.
pub fn summary(model: &Path, backend_name: Option<&str>) -> Result<(), String> {
    let (m, _) = load(model, backend_name)?;
    let input = m.input();
    let len = input.length.map_or("any".to_string(), |l| l.to_string());
    println!(
        "{}: input {} channels, length {len}, {}",
        model.display(),
        input.channels,
        match input.data_format {
            DataFormat::ChannelsLast => "channels-last [batch, length, channels]",
            DataFormat::ChannelsFirst => "channels-first [batch, channels, length]",
        }
    );
    print!("{}", m.summary());
    Ok(())
}

/// `widen expand`.
pub fn expand(mut args: ExpandArgs) -> Result<(), String> {
    let kind = backend(args.backend.as_deref())?;
    let device = kind.device().map_err(|e| e.to_string())?;
    let strategy = match args.strategy {
        StrategyArg::Zero => Strategy::Zero,
        StrategyArg::Repeat => Strategy::RepeatRescale,
        StrategyArg::Fan => Strategy::FanScaled {
            initializer: Initializer::he_normal(),
            rescale_old: true,
        },
        StrategyArg::Projection => Strategy::Projection {
            init: ProjectionInit::Identity,
        },
        StrategyArg::Auto => {
            let Some(sample) = &args.sample else {
                return Err(
                    "--strategy auto needs --sample (data with the new channel count)".into(),
                );
            };
            let (strategy, standardize) =
                crate::workflow::auto_strategy(&args.model, sample, args.channels_first, args.to)?;
            args.standardize |= standardize;
            strategy
        }
    };
    let mut inputs = vec![args.model.as_path()];
    inputs.extend(args.sample.as_deref());
    inputs.extend(args.compensate_sample.as_deref());
    widen::guard::check_output(&args.out, &inputs).map_err(|e| e.to_string())?;
    let placement = match (&args.old_at, &args.keep) {
        (Some(map), _) => widen::adapt::Placement::Map(map.clone()),
        (None, Some(keep)) => widen::adapt::Placement::Keep(keep.clone()),
        (None, None) => widen::adapt::Placement::Append,
    };
    let request = ExpandRequest::new(args.to, strategy)
        .with_seed(args.seed)
        .with_placement(placement);
    let sample = match (&args.sample, args.standardize) {
        (Some(path), true) => {
            // The sample is in the widened model's layout: the base model's format.
            let base = Sequential::load(&args.model, &device).map_err(|e| e.to_string())?;
            Some(read_input(
                path,
                args.channels_first,
                base.input().data_format,
                args.to,
                "the widened model",
                &device,
            )?)
        }
        _ => None,
    };
    let compensate = match &args.compensate_sample {
        Some(path) => {
            let base = Sequential::load(&args.model, &device).map_err(|e| e.to_string())?;
            Some(read_input(
                path,
                args.channels_first,
                base.input().data_format,
                base.input().channels,
                "the base model",
                &device,
            )?)
        }
        None => None,
    };
    let done = expand_checkpoint_with(
        &args.model,
        &args.out,
        &request,
        sample,
        compensate,
        &device,
    )
    .map_err(|e| e.to_string())?;
    println!(
        "widened {} → {} input channels ({}, adapted {} `{}`{}); wrote {}",
        done.old_channels,
        done.new_channels,
        args.strategy.name(),
        if done.adapted_layers.len() == 1 {
            "layer"
        } else {
            "layers"
        },
        done.adapted_layers.join("`, `"),
        if done.standardized {
            ", new channels standardised"
        } else {
            ""
        },
        args.out.display()
    );
    Ok(())
}

/// `widen predict`.
pub fn predict(
    model: &Path,
    input: &Path,
    output: &Path,
    channels_first: bool,
    backend_name: Option<&str>,
) -> Result<(), String> {
    // Refused before any work: the output must not be the input, the model or inside it.
    widen::guard::check_output(output, &[input, model]).map_err(|e| e.to_string())?;
    widen::guard::check_file_output(output).map_err(|e| e.to_string())?;
    let (m, device) = load(model, backend_name)?;
    let x = read_input(
        input,
        channels_first,
        m.input().data_format,
        m.input().channels,
        &m.spec()
            .layers
            .first()
            .map_or("the model".to_string(), |l| {
                format!("layer `{}`", widen::layers::printable(&l.name))
            }),
        &device,
    )?;
    let [batch, _, _] = x.dims();
    let length = x.dims()[match m.input().data_format {
        DataFormat::ChannelsFirst => 2,
        DataFormat::ChannelsLast => 1,
    }];
    m.check_memory(batch, length, false)
        .map_err(|e| e.to_string())?;
    let y = m.forward(x).map_err(|e| e.to_string())?;
    let (shape, data) = match y {
        Value::Flat(t) => (t.dims().to_vec(), t.into_data()),
        Value::Seq(t) => {
            // Sequences come back in the model's format; write them in the input file's layout.
            let same = (m.input().data_format == DataFormat::ChannelsFirst) == channels_first;
            let t = if same { t } else { t.swap_dims(1, 2) };
            (t.dims().to_vec(), t.into_data())
        }
    };
    let values = data
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| format!("reading the output: {e:?}"))?;
    // Finite weights can still overflow (values near f32::MAX): say so instead of writing NaN.
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        let count = values.iter().filter(|v| !v.is_finite()).count();
        return Err(format!(
            "the model produced {count} non-finite output value(s) of {} (first at flat index {i}, {}); its weights or inputs overflow float32 — nothing was written to {}",
            values.len(),
            values[i],
            output.display()
        ));
    }
    npy::write(output, &shape, &values).map_err(|e| e.to_string())?;
    println!("wrote {} with shape {shape:?}", output.display());
    Ok(())
}

/// `widen bench`.
pub fn bench(
    backend_name: Option<&str>,
    shapes: &[String],
    repeats: Option<usize>,
    json: bool,
    conv: &str,
) -> Result<(), String> {
    use widen_cli::bench;
    let kind = backend(backend_name)?;
    let device = kind.device().map_err(|e| e.to_string())?;
    match conv {
        "widen" => widen::ops::cpu::set_enabled(true),
        "burn" => widen::ops::cpu::set_enabled(false),
        other => return Err(format!("unknown conv `{other}` (expected widen, burn)")),
    }
    let accelerated = widen::ops::cpu::accelerated(&device);
    let mut results: Vec<String> = Vec::new();
    let mut fused: Vec<(&str, Vec<String>)> = Vec::new();
    println!(
        "widen bench (backend {kind}, conv1d: {}); median ms after warm-up",
        if accelerated { "widen kernel" } else { "burn" }
    );
    println!("{}", bench::peak_line(&bench::machine_peak()));
    println!("{}", bench::TABLE_HEADER);
    for name in shapes {
        let Some(shape) = bench::SHAPES
            .iter()
            .find(|s| s.name == name.as_str())
            .copied()
        else {
            return Err(format!(
                "unknown shape `{name}` (expected seed, large, fcn, resnet)"
            ));
        };
        let t = bench::run(&shape, &device, repeats)?;
        println!("{}", bench::table_row(&shape, &t));
        let value = serde_json::to_string(&t).map_err(|e| e.to_string())?;
        results.push(format!("\"{}\": {value}", shape.name));
        fused.push((shape.name, t.fused_heads));
    }
    for (name, heads) in &fused {
        println!(
            "{name}: fused inference head {}",
            if heads.is_empty() || !accelerated {
                "none (every layer runs alone)".to_string()
            } else {
                heads.join(", ")
            }
        );
    }
    let stats = widen::ops::cpu::stats();
    println!(
        "widen CPU kernel passes: {} run, {} handed back to Burn",
        stats.kernel_runs, stats.fallbacks
    );
    if json {
        // One line, shapes in the order asked (a serde_json map would sort them).
        println!("{{{}}}", results.join(", "));
    }
    Ok(())
}
