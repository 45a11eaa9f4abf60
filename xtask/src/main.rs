//! Project automation (the cargo-xtask pattern): `cargo xtask <command>`.
//!
//! One module per command; no dependencies beyond std, so it builds in seconds.

mod bench;
mod compare_backends;
mod fuzz;
mod test_all;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test-all           fmt check, clippy -D warnings, each library crate's tests alone, the
                     backend suite on ndarray, flex and wgpu, then the rest
  compare-backends   the seeded models on every backend against ndarray: per-layer and
                     per-gradient differences, timings (Markdown); [--runs N] [--warmup N]
  bench              release `widen bench` on the seed and large shapes; --vs-tf also runs
                     bench/tf_reference.py and prints the ratios against the targets
  fuzz               the readers' fuzzer (widen-fuzz): [--seconds N] [--target NAME] [--seed S]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test-all") => test_all::run(&args[1..]),
        Some("compare-backends") => compare_backends::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Environment for commands that open a wgpu device. Mesa's drivers print "XDG_RUNTIME_DIR is
/// invalid or not set" once per device when it is unset, as on CI machines and in containers:
/// give them a private runtime directory under the system temp dir instead.
pub(crate) fn gpu_env(cmd: &mut Command) {
    let valid = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .is_some_and(|p| p.is_dir());
    if valid {
        return;
    }
    let dir = std::env::temp_dir().join("widen-xdg-runtime");
    if std::fs::create_dir_all(&dir).is_err() {
        return; // only cosmetic: the drivers work without it
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    cmd.env("XDG_RUNTIME_DIR", dir);
}
