//! `cargo xtask fuzz [--seconds N] [--target NAME] [--seed S] ...`: the structured-mutation
//! fuzzer over widen's readers (crate `widen-fuzz`). It is a test target with its own `main`,
//! so it reuses the test build of burn; every argument is passed through to it.

use std::process::{Command, ExitCode};

pub fn run(args: &[String]) -> ExitCode {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(&cargo)
        .args(["test", "-p", "widen-fuzz", "--test", "fuzz", "--"])
        .args(args)
        .status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xtask fuzz: cannot run {cargo}: {e}");
            ExitCode::FAILURE
        }
    }
}
