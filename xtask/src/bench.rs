//! `cargo xtask bench [--vs-tf] [widen bench args...]`: builds the release CLI, runs
//! `widen bench --json` once per shape, each in its own process, and with `--vs-tf` runs
//! `bench/tf_reference.py` the same way, one shape per process, in the same session; then prints
//! both side by side: the times with their ratios against the issue's targets, the GFLOP/s of
//! each side as a share of the machine's FP32 peak (widen's FMA loop), and each side's peak RSS.
//! One process per shape so that a peak RSS, a process-wide high-water mark, belongs to one
//! shape on both sides. Without a Python that has tensorflow it says the baseline was not run.

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

/// The issue's memory target: a shape's peak RSS no higher than TF's (ratio TF / widen ≥ 1).
const RSS_TARGET: [&str; 2] = ["fcn", "resnet"];

/// One shape on one side: the JSON object, or why there is none.
type Side = Result<String, String>;

/// Runs `cmd` and returns the JSON line it printed last; its stdout is echoed when `echo`.
fn json_of(mut cmd: Command, echo: bool) -> Side {
    match cmd.output() {
        Ok(o) if o.status.success() => {
            if echo {
                print!("{}", String::from_utf8_lossy(&o.stdout));
            }
            Ok(last_line(&o.stdout))
        }
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// `x` formatted with `digits` decimals, or a dash.
fn cell(x: Option<f64>, digits: usize) -> String {
    x.map_or("–".to_string(), |v| format!("{v:.digits$}"))
}

pub fn run(args: &[String]) -> ExitCode {
    let vs_tf = args.iter().any(|a| a == "--vs-tf");
    // `--shapes` is taken out: each shape runs alone; the rest goes to every widen run.
    let mut shapes = "seed,large".to_string();
    let mut passthrough: Vec<&String> = Vec::new();
    let mut it = args.iter().filter(|a| *a != "--vs-tf");
    while let Some(a) = it.next() {
        if a == "--shapes" {
            if let Some(v) = it.next() {
                shapes = v.clone();
            }
        } else if let Some(v) = a.strip_prefix("--shapes=") {
            shapes = v.to_string();
        } else {
            passthrough.push(a);
        }
    }
    let shapes: Vec<&str> = shapes.split(',').filter(|s| !s.is_empty()).collect();
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
    let mut widen = Vec::new();
    for shape in &shapes {
        let mut cmd = Command::new(&exe);
        cmd.args(["bench", "--json", "--shapes", shape])
            .args(&passthrough);
        match json_of(cmd, true) {
            Ok(json) => widen.push(json),
            Err(e) => {
                eprintln!("xtask bench: {} bench --shapes {shape}: {e}", exe.display());
                return ExitCode::FAILURE;
            }
        }
    }
    // The best of the per-process peak measurements: load on the machine only lowers it.
    let peak = |key: &str| {
        widen
            .iter()
            .zip(&shapes)
            .filter_map(|(j, s)| number(j, s, key))
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
    };
    let (peak_all, peak_one) = (peak("peak_gflops"), peak("peak_1t_gflops"));
    println!(
        "\nFP32 peak (widen's FMA loop): {} GFLOP/s on all cores, {} on 1 thread",
        cell(peak_all, 1),
        cell(peak_one, 1)
    );
    if shapes.len() > 1 {
        println!("{{{}}}", {
            // One combined line, in the shapes' order, for scripts that read the last line.
            let objects: Vec<String> = widen
                .iter()
                .map(|j| {
                    let j = j.trim();
                    let j = j.strip_prefix('{').unwrap_or(j);
                    j.strip_suffix('}').unwrap_or(j).to_string()
                })
                .collect();
            objects.join(", ")
        });
    }
    if !vs_tf {
        return ExitCode::SUCCESS;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let mut tf = Vec::new();
    for shape in &shapes {
        let mut cmd = Command::new(&python);
        cmd.arg("bench/tf_reference.py").arg(shape);
        match json_of(cmd, false) {
            Ok(json) => tf.push(json),
            Err(e) => {
                println!(
                    "\nTF baseline not run: bench/tf_reference.py {shape} failed ({e}) — `pip install tensorflow-cpu==2.21.0` to run it"
                );
                return ExitCode::SUCCESS;
            }
        }
    }
    let get = |side: &[String], shape: &str, key: &str| {
        let i = shapes.iter().position(|s| *s == shape)?;
        number(&side[i], shape, key)
    };

    println!("\n| shape | measure | TF 2.21 ms | widen ms | TF / widen | target | met |");
    println!("|---|---|---|---|---|---|---|");
    let mut all = true;
    for (shape, key, target) in TARGETS {
        if !shapes.contains(&shape) {
            continue;
        }
        let (Some(t), Some(w)) = (get(&tf, shape, key), get(&widen, shape, key)) else {
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
        "\n| shape | measure | GFLOP (counted) | TF GFLOP/s | TF % peak | widen GFLOP/s | widen % peak |"
    );
    println!("|---|---|---|---|---|---|---|");
    let pct = |g: Option<f64>| g.zip(peak_all).map(|(g, p)| 100.0 * g / p);
    for shape in &shapes {
        for (measure, flops, gflops) in [
            ("forward", "forward_flops", "forward_gflops"),
            ("train", "train_flops", "train_gflops"),
        ] {
            let (t, w) = (get(&tf, shape, gflops), get(&widen, shape, gflops));
            let count = get(&widen, shape, flops).map(|f| f / 1e9);
            // Both sides count from their own model; a mismatch means the models differ.
            let tf_count = get(&tf, shape, flops).map(|f| f / 1e9);
            let count = match (count, tf_count) {
                (Some(a), Some(b)) if (a - b).abs() > 1e-9 * a.abs() => {
                    format!("{a:.3} (TF counts {b:.3})")
                }
                _ => cell(count, 3),
            };
            println!(
                "| {shape} | {measure} | {count} | {} | {} | {} | {} |",
                cell(t, 1),
                cell(pct(t), 0),
                cell(w, 1),
                cell(pct(w), 0)
            );
        }
    }

    println!(
        "\n| shape | TF base RSS MiB | TF peak RSS MiB | widen base RSS MiB | widen peak RSS MiB | TF / widen peak | target | met |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for shape in &shapes {
        let (tb, tp) = (
            get(&tf, shape, "base_rss_mib"),
            get(&tf, shape, "peak_rss_mib"),
        );
        let (wb, wp) = (
            get(&widen, shape, "base_rss_mib"),
            get(&widen, shape, "peak_rss_mib"),
        );
        let ratio = tp.zip(wp).map(|(t, w)| t / w);
        let (target, met) = if RSS_TARGET.contains(shape) {
            let met = ratio.is_some_and(|r| r >= 1.0);
            all &= met;
            ("≥ 1", if met { "yes" } else { "no" })
        } else {
            ("–", "–")
        };
        println!(
            "| {shape} | {} | {} | {} | {} | {} | {target} | {met} |",
            cell(tb, 0),
            cell(tp, 0),
            cell(wb, 0),
            cell(wp, 0),
            cell(ratio, 2)
        );
    }
    println!(
        "\nRSS: each shape in its own process on both sides; peak = the process's high-water mark \
         (forward and train step, runtime and libraries included), base = resident before the \
         shape's model was built."
    );
    println!(
        "\n{}",
        if all {
            "all targets met"
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
