//! `cargo xtask compare-backends`: the same seeded models on ndarray, flex and wgpu, compared
//! layer by layer and gradient by gradient, and timed.
//!
//! The work is in the `compare_backends` example of the `widen` crate (this crate stays
//! std-only); here it is built with `--features wgpu` and run. Arguments after the command go to
//! the example (`--runs N`, `--warmup N`). The exit status is the example's: non-zero where a
//! difference exceeds its tolerance (docs/BACKENDS.md) or a backend cannot start.

use std::process::{Command, ExitCode};

pub fn run(args: &[String]) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "run",
        "--quiet",
        "-p",
        "widen",
        "--features",
        "wgpu",
        "--example",
        "compare_backends",
        "--",
    ])
    .args(args);
    crate::gpu_env(&mut cmd);
    println!("==> cargo run -p widen --features wgpu --example compare_backends");
    match cmd.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("compare-backends: failed ({status})");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("compare-backends: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}
