//! The `widen` command. Parsing and printing only: the work lives in the library crates and in
//! this package's library (`widen_cli`).
//!
//! **Must not know:** how layers or strategies compute; it calls the `widen` facade.

mod alloc;
mod commands;
mod demo;
mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Widen trained Conv1D models to more input channels without erratic training.
#[derive(Debug, Parser)]
#[command(name = "widen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Memory budget for anything sized by the input (e.g. 8G, 512M); default: half of the
    /// machine's memory or of the process's memory limit, or WIDEN_MAX_MEMORY.
    #[arg(long, global = true, value_name = "SIZE")]
    max_memory: Option<String>,
}

/// Expansion strategies on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StrategyArg {
    /// New kernel slices at zero (function preserving).
    Zero,
    /// Repeat the trained slices and rescale (timm's adapt_input_conv).
    Repeat,
    /// Random new slices for the widened fan (He normal), old slices rescaled.
    Fan,
    /// A 1x1 projection from the new width to the old, identity-initialised.
    Projection,
    /// Chosen from --sample: `zero` (or `projection` where zero cannot apply), with
    /// --standardize when the new channels' scale differs (see `widen diagnose`).
    Auto,
}

impl StrategyArg {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Zero => "zero",
            Self::Repeat => "repeat",
            Self::Fan => "fan",
            Self::Projection => "projection",
            Self::Auto => "auto",
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the three seed examples: a Conv1D model on 8 channels, the same model fed 32
    /// channels (a typed error), and a model built for 32 channels.
    Demo {
        /// Backend: flex (default) or ndarray; also read from WIDEN_BACKEND.
        #[arg(long)]
        backend: Option<String>,
        /// Seed for weights and data.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Train a base model on the old channels, widen it with every strategy, fine-tune, and
    /// write a Markdown table, a JSON file and a loss-curve plot.
    Study(Box<commands::StudyArgs>),
    /// Print a saved model's layers, output shapes and parameter counts.
    Summary {
        /// Model directory (model.json + weights).
        #[arg(long)]
        model: PathBuf,
        /// Backend.
        #[arg(long)]
        backend: Option<String>,
    },
    /// Widen a saved model to more input channels and save it to a new directory.
    Expand(Box<commands::ExpandArgs>),
    /// Time the seed and large Conv1D shapes and the FCN and ResNet networks (forward, train
    /// step) on a backend.
    Bench {
        /// Backend.
        #[arg(long)]
        backend: Option<String>,
        /// Shapes to time (seed, large, fcn, resnet).
        #[arg(long, value_delimiter = ',', default_value = "seed,large")]
        shapes: Vec<String>,
        /// Timed repeats per measurement (default: 200 seed, 15 large).
        #[arg(long)]
        repeats: Option<usize>,
        /// Print exactly one JSON line last: {"seed": {...}, "large": {...}}.
        #[arg(long)]
        json: bool,
        /// Conv1d implementation on CPU backends: `widen` (the kernel, default) or `burn`
        /// (Burn's own `module::conv1d`, the baseline).
        #[arg(long, default_value = "widen")]
        conv: String,
    },
    /// Fine-tune a (widened) model on your data: staged recipe, early stopping, the best
    /// checkpoint kept, resumable (--resume); writes the model, history.json and curves.svg.
    Fit(Box<workflow::FitArgs>),
    /// Loss, accuracy, per-class recall and the confusion matrix of a model on labelled data.
    Evaluate(Box<workflow::EvaluateArgs>),
    /// Measure the three causes of erratic widening on your model and data, and recommend a
    /// strategy.
    Diagnose(Box<workflow::DiagnoseArgs>),
    /// Run a saved model on a .npy input and write the output as .npy.
    Predict {
        /// Model directory.
        #[arg(long)]
        model: PathBuf,
        /// Input `[batch, length, channels]` (Keras layout), float32 or float64 .npy.
        #[arg(long)]
        input: PathBuf,
        /// Output .npy (float32).
        #[arg(long)]
        output: PathBuf,
        /// The input is `[batch, channels, length]`.
        #[arg(long)]
        channels_first: bool,
        /// Backend.
        #[arg(long)]
        backend: Option<String>,
    },
    /// Import an ONNX model (a PyTorch Conv1d network from torch.onnx.export) as a widen model
    /// directory; it takes `[batch, channels, length]` input (`predict --channels-first`).
    Import {
        /// The .onnx file (never modified).
        onnx: PathBuf,
        /// Model directory to write (atomically).
        #[arg(long)]
        out: PathBuf,
        /// Weights file format.
        #[arg(long, value_enum, default_value = "safetensors")]
        format: FormatArg,
        /// Backend.
        #[arg(long)]
        backend: Option<String>,
    },
    /// Export a widen model directory as an ONNX file (opset 17).
    Export {
        /// Model directory (never modified).
        model: PathBuf,
        /// The .onnx file to write (atomically).
        #[arg(long)]
        onnx: PathBuf,
        /// Backend.
        #[arg(long)]
        backend: Option<String>,
    },
}

/// Weight file formats on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// weights.safetensors (readable from Python).
    Safetensors,
    /// weights.bpk (Burn's burnpack).
    Burnpack,
}

/// Sets the process-wide memory budget from `--max-memory`, else `WIDEN_MAX_MEMORY`, else the
/// machine.
fn set_budget(flag: Option<&str>) -> Result<(), String> {
    use widen::guard::{MemoryBudget, parse_size};
    let budget = match flag {
        Some(text) => MemoryBudget::new(
            parse_size(text).map_err(|e| format!("--max-memory: {e}"))?,
            format!("--max-memory {text}"),
        ),
        None => MemoryBudget::from_env().map_err(|e| format!("WIDEN_MAX_MEMORY: {e}"))?,
    };
    widen::guard::set_budget(budget);
    Ok(())
}

/// An error message safe for a terminal: control characters from file contents (layer names,
/// labels) are escaped, line breaks kept.
fn printable_message(message: &str) -> String {
    message
        .split('\n')
        .map(widen::layers::printable)
        .collect::<Vec<_>>()
        .join("\n")
}

fn run(cli: Cli) -> Result<(), String> {
    set_budget(cli.max_memory.as_deref())?;
    match cli.command {
        Command::Demo { backend, seed } => {
            let kind = commands::backend(backend.as_deref())?;
            let device = kind.device().map_err(|e| e.to_string())?;
            print!("{}", demo::run(&device, kind, seed)?);
            Ok(())
        }
        Command::Study(args) => commands::study(*args),
        Command::Summary { model, backend } => commands::summary(&model, backend.as_deref()),
        Command::Expand(args) => commands::expand(*args),
        Command::Fit(args) => workflow::fit(*args),
        Command::Evaluate(args) => workflow::evaluate(*args),
        Command::Diagnose(args) => workflow::diagnose(*args),
        Command::Bench {
            backend,
            shapes,
            repeats,
            json,
            conv,
        } => commands::bench(backend.as_deref(), &shapes, repeats, json, &conv),
        Command::Predict {
            model,
            input,
            output,
            channels_first,
            backend,
        } => commands::predict(&model, &input, &output, channels_first, backend.as_deref()),
        Command::Import {
            onnx,
            out,
            format,
            backend,
        } => {
            let device = commands::backend(backend.as_deref())?
                .device()
                .map_err(|e| e.to_string())?;
            let format = match format {
                FormatArg::Safetensors => widen::layers::WeightFormat::Safetensors,
                FormatArg::Burnpack => widen::layers::WeightFormat::Burnpack,
            };
            let report = widen_cli::interop::import_onnx(&onnx, &out, format, &device)
                .map_err(|e| e.to_string())?;
            println!(
                "imported {}: {}; wrote {}",
                onnx.display(),
                report.summary(),
                out.display()
            );
            Ok(())
        }
        Command::Export {
            model,
            onnx,
            backend,
        } => {
            let device = commands::backend(backend.as_deref())?
                .device()
                .map_err(|e| e.to_string())?;
            let report = widen_cli::interop::export_onnx(&model, &onnx, &device)
                .map_err(|e| e.to_string())?;
            println!(
                "exported {} ({} layers, input {}) → {} ({} bytes, opset {})",
                model.display(),
                report.layers,
                widen_cli::interop::input_text(&report.input),
                onnx.display(),
                report.bytes,
                widen::onnx::EXPORT_OPSET
            );
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    alloc::keep_freed_memory();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {}", printable_message(&message));
            ExitCode::FAILURE
        }
    }
}
