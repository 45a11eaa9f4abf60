//! The `widen` command. Parsing and printing only: the work lives in the library crates.
//!
//! **Must not know:** how layers or strategies compute; it calls the `widen` facade.

mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use widen::BackendKind;

/// Widen trained Conv1D models to more input channels without erratic training.
#[derive(Debug, Parser)]
#[command(name = "widen", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn backend(name: Option<&str>) -> Result<BackendKind, String> {
    match name {
        Some(name) => name.parse().map_err(|e| format!("{e}")),
        None => BackendKind::from_env().map_err(|e| format!("{e}")),
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Demo { backend: b, seed } => {
            let kind = backend(b.as_deref())?;
            let device = kind.device().map_err(|e| e.to_string())?;
            print!("{}", demo::run(&device, kind, seed)?);
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
