//! `cargo xtask test-all`: everything CI checks, in the order that fails fastest.

use std::process::{Command, ExitCode};
use std::time::Instant;

/// Library crates, each tested alone: `cargo test -p X` unifies features over X alone, so this
/// proves a user can import that one crate. Keep the list in dependency order.
const LIBRARIES: &[&str] = &[
    "widen-guard",
    "widen-data",
    "widen-ops",
    "widen-init",
    "widen-layers",
    "widen-adapt",
    "widen-onnx",
    "widen-train",
    "widen",
];

struct Step {
    name: String,
    args: Vec<String>,
}

fn step(name: &str, args: &[&str]) -> Step {
    Step {
        name: name.to_string(),
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn run(args: &[String]) -> ExitCode {
    let keep_going = args.iter().any(|a| a == "--keep-going");
    let mut steps = vec![
        step("fmt", &["fmt", "--all", "--", "--check"]),
        step(
            "clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
    ];
    for lib in LIBRARIES {
        // Default features first: what a user who imports this one crate gets.
        steps.push(step(&format!("test -p {lib}"), &["test", "-p", lib]));
        if *lib == "widen-ops" {
            // Its CPU kernel registers per backend feature; test it registered on both too (the
            // features enable nothing the dev-dependencies do not already build).
            steps.push(step(
                "test -p widen-ops (CPU kernels)",
                &["test", "-p", lib, "--features", "flex,ndarray,autodiff"],
            ));
        }
    }
    // The backend suite again with wgpu compiled in: ndarray, flex and wgpu. Every crate's
    // dev-dependencies already enable burn's `wgpu`, so this reuses the build above. Without an
    // adapter the wgpu cases fail (CI installs lavapipe) unless WIDEN_SKIP_WGPU=1.
    steps.push(step(
        "test backends (ndarray, flex, wgpu)",
        &[
            "test",
            "-p",
            "widen",
            "--features",
            "wgpu",
            "--test",
            "backends",
        ],
    ));
    // The readers' fuzzer, bounded by a case count rather than by time, so every machine runs
    // the same cases from the same seed and a red result reproduces; exploring further is
    // `cargo xtask fuzz --seconds N` (time-bounded, any --seed).
    steps.push(step(
        "fuzz (bounded)",
        &[
            "test",
            "-p",
            "widen-fuzz",
            "--test",
            "fuzz",
            "--",
            "--execs",
            "3000",
        ],
    ));
    // The rest of the workspace (the CLI's end-to-end tests, xtask), built with the features
    // unified over the whole workspace. widen-fuzz ran above.
    let mut rest = vec!["test", "--workspace"];
    for lib in LIBRARIES {
        rest.extend(["--exclude", lib]);
    }
    rest.extend(["--exclude", "widen-fuzz"]);
    steps.push(step("test workspace (cli, xtask)", &rest));

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut results = Vec::new();
    for s in &steps {
        println!("\n==> cargo {}", s.args.join(" "));
        let start = Instant::now();
        let mut cmd = Command::new(&cargo);
        cmd.args(&s.args);
        crate::gpu_env(&mut cmd);
        let ok = cmd.status().map(|st| st.success()).unwrap_or(false);
        results.push((s.name.clone(), ok, start.elapsed().as_secs_f64()));
        if !ok && !keep_going {
            break;
        }
    }

    println!("\n==> test-all summary");
    let mut failed = 0;
    for (name, ok, secs) in &results {
        println!(
            "  {:<36} {:>6} {:>8.1}s",
            name,
            if *ok { "ok" } else { "FAILED" },
            secs
        );
        failed += usize::from(!ok);
    }
    let skipped = steps.len() - results.len();
    if skipped > 0 {
        println!("  ({skipped} step(s) not run after the first failure; --keep-going runs all)");
    }
    if failed == 0 && skipped == 0 {
        println!("test-all: all {} steps passed", steps.len());
        ExitCode::SUCCESS
    } else {
        println!("test-all: {failed} step(s) failed");
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tidy {
    //! Checks as tests (the rust-analyzer way): invariants `cargo test` enforces.

    use std::path::Path;

    /// The burn line of a crate's `[dev-dependencies]`.
    fn dev_burn_line(manifest: &str) -> Option<String> {
        let dev = manifest.split("[dev-dependencies]").nth(1)?;
        let dev = dev.split("\n[").next()?;
        dev.lines()
            .find(|l| l.trim_start().starts_with("burn ="))
            .map(|l| l.trim().to_string())
    }

    /// Every crate's dev-dependencies enable the same burn features (and portable-atomic, gemm
    /// and serde_json, whose features widen's crates and burn share), so
    /// `cargo test -p X` for each crate and the workspace run reuse one build of burn: a
    /// different set rebuilds all of burn (minutes on two cores).
    #[test]
    fn every_crate_tests_against_one_burn_build() {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates");
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(&crates).into_iter().flatten().flatten() {
            let manifest = entry.path().join("Cargo.toml");
            let Ok(text) = std::fs::read_to_string(&manifest) else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            // A crate that does not touch burn (widen-guard) builds no burn to share.
            if !text.contains("burn") {
                continue;
            }
            let line = dev_burn_line(&text);
            assert!(line.is_some(), "{name}: no burn dev-dependency");
            for dep in ["portable-atomic", "gemm", "serde_json"] {
                assert!(
                    text.contains(&format!("{dep}.workspace = true")),
                    "{name}: {dep} dev-dependency missing"
                );
            }
            lines.push((name, line));
        }
        assert!(lines.len() >= 6, "found {} crates", lines.len());
        let first = lines[0].1.clone();
        for (name, line) in &lines {
            assert_eq!(
                line, &first,
                "{name}'s burn dev-dependency differs from {}'s",
                lines[0].0
            );
        }
    }

    /// The `.rs` files under `dir`, recursively.
    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// `unsafe` is denied workspace-wide (every manifest takes the workspace lints) and lifted
    /// only in the files docs/ARCHITECTURE.md names: a lint `allow` for it anywhere else
    /// fails here until the invariant, and this list, say why.
    #[test]
    fn unsafe_code_only_where_the_architecture_allows_it() {
        const ALLOWED: [&str; 4] = [
            "crates/ops/src/cpu/gemm.rs",
            "crates/ops/src/cpu/peak.rs",
            "crates/cli/src/alloc.rs",
            "crates/fuzz/tests/fuzz.rs",
        ];
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut manifests = 0;
        for dir in ["crates", "xtask"] {
            let dir = root.join(dir);
            let mut members: Vec<_> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("Cargo.toml").is_file())
                .collect();
            if dir.join("Cargo.toml").is_file() {
                members.push(dir.clone());
            }
            for member in members {
                let text = std::fs::read_to_string(member.join("Cargo.toml")).unwrap_or_default();
                assert!(
                    text.contains("[lints]\nworkspace = true"),
                    "{}: does not take the workspace lints (unsafe_code = deny)",
                    member.display()
                );
                manifests += 1;
            }
        }
        assert!(manifests >= 10, "found {manifests} manifests");
        let mut files = Vec::new();
        rust_files(&root.join("crates"), &mut files);
        rust_files(&root.join("xtask"), &mut files);
        // Split so this file does not match itself.
        let needle = concat!("unsafe", "_code)");
        let mut found = Vec::new();
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            if text.contains(needle) {
                let rel = file.strip_prefix(&root).unwrap_or(file);
                found.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
        found.sort();
        let mut allowed: Vec<String> = ALLOWED.iter().map(|s| s.to_string()).collect();
        allowed.sort();
        assert_eq!(found, allowed, "files that lift the unsafe_code denial");
    }
}
