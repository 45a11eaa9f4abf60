//! `cargo xtask bench [--vs-tf] [widen bench args...]`: builds the release CLI, runs
//! `widen bench --json`, and with `--vs-tf` runs `bench/tf_reference.py` in the same session and
//! prints both side by side with the ratios against the issue's targets. Without a Python that
//! has tensorflow it says the baseline was not run.

use std::process::{Command, ExitCode};

/// (shape, measure, target ratio TF time / widen time).
const TARGETS: [(&str, &str, f64); 8] = [
    ("large", "forward_ms", 1.0),
    ("large", "train_ms", 0.9),
    ("seed", "forward_ms", 10.0),
    ("seed", "train_ms", 5.0),
    ("fcn", "forward_ms", 1.5),
    ("fcn", "train_ms", 1.5),
    ("resnet", "forward_ms", 1.5),
    ("resnet", "train_ms", 1.5),
];

/// Finds `"key": <number>` inside the object for `shape` in a one-line JSON.
fn number(json: &str, shape: &str, key: &str) -> Option<f64> {
    let start = json.find(&format!("\"{shape}\""))?;
    let rest = &json[start..];
    let end = rest.find('}')?;
    let obj = &rest[..end];
    let k = obj.find(&format!("\"{key}\""))? + key.len() + 2;
    let value = obj[k..].trim_start().strip_prefix(':')?.trim_start();
    let len = value
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+')))
        .unwrap_or(value.len());
    value[..len].parse().ok()
}

fn last_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or_default()
        .to_string()
}

pub fn run(args: &[String]) -> ExitCode {
    let vs_tf = args.iter().any(|a| a == "--vs-tf");
    let passthrough: Vec<&String> = args.iter().filter(|a| *a != "--vs-tf").collect();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let built = Command::new(&cargo)
        .args(["build", "--release", "-p", "widen-cli"])
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!("xtask bench: building the release CLI failed");
        return ExitCode::FAILURE;
    }
    let exe = std::path::Path::new("target").join("release").join("widen");
    let out = match Command::new(&exe)
        .arg("bench")
        .arg("--json")
        .args(&passthrough)
        .output()
    {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            eprintln!("{}", String::from_utf8_lossy(&o.stderr));
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("xtask bench: running {}: {e}", exe.display());
            return ExitCode::FAILURE;
        }
    };
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let widen_json = last_line(&out.stdout);
    if !vs_tf {
        return ExitCode::SUCCESS;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    // The same shapes on both sides.
    let shapes = passthrough
        .iter()
        .position(|a| a.as_str() == "--shapes")
        .and_then(|i| passthrough.get(i + 1))
        .map_or_else(|| "seed,large".to_string(), |s| s.to_string());
    let tf = Command::new(&python)
        .arg("bench/tf_reference.py")
        .arg(&shapes)
        .output();
    let tf_json = match tf {
        Ok(o) if o.status.success() => {
            eprint!("{}", String::from_utf8_lossy(&o.stderr));
            last_line(&o.stdout)
        }
        Ok(o) => {
            println!(
                "\nTF baseline not run: bench/tf_reference.py failed ({}) — `pip install tensorflow-cpu==2.21.0` to run it",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            println!("\nTF baseline not run: cannot start {python}: {e}");
            return ExitCode::SUCCESS;
        }
    };
    println!("\n| shape | measure | TF 2.21 ms | widen ms | TF / widen | target | met |");
    println!("|---|---|---|---|---|---|---|");
    let mut all = true;
    for (shape, key, target) in TARGETS {
        if !shapes.split(',').any(|s| s == shape) {
            continue;
        }
        let (Some(t), Some(w)) = (
            number(&tf_json, shape, key),
            number(&widen_json, shape, key),
        ) else {
            println!("| {shape} | {key} | – | – | – | ≥ {target} | not measured |");
            all = false;
            continue;
        };
        let ratio = t / w;
        let met = ratio >= target;
        all &= met;
        println!(
            "| {shape} | {key} | {t:.3} | {w:.3} | {ratio:.2} | ≥ {target} | {} |",
            if met { "yes" } else { "no" }
        );
    }
    println!(
        "\n{}",
        if all {
            "all four targets met"
        } else {
            "targets not all met"
        }
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_numbers_from_the_bench_line() {
        let line = r#"{"seed": {"forward_ms":0.05,"train_ms":0.26}, "large": {"forward_ms":1.9e2,"train_ms":582.6}}"#;
        assert_eq!(number(line, "seed", "train_ms"), Some(0.26));
        assert_eq!(number(line, "large", "forward_ms"), Some(190.0));
        assert_eq!(number(line, "large", "nope"), None);
        assert_eq!(last_line(b"table\n{\"a\": 1}\n"), "{\"a\": 1}");
    }
}
