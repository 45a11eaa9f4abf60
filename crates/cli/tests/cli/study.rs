//! `widen study`: files, contents, determinism, and bad inputs.

use serde_json::Value;

use crate::{assert_fails, assert_ok, path_str, temp_dir, widen};

fn small_study(out: &std::path::Path, threads: &str) -> Value {
    let o = widen(&[
        "study",
        "--quiet",
        "--out",
        path_str(out),
        "--seeds",
        "1,2,3",
        "--arch",
        "ex1,resnet",
        "--base-steps",
        "12",
        "--steps",
        "8",
        "--patience",
        "8",
        "--train-cases",
        "40",
        "--test-cases",
        "24",
        "--c-old",
        "3",
        "--c-new",
        "6",
        "--length",
        "16",
        "--threads",
        threads,
    ]);
    assert_ok(&o);
    for f in [
        "study.md",
        "study.json",
        "timing.json",
        "curves.svg",
        "curves.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    serde_json::from_str(&std::fs::read_to_string(out.join("study.json")).unwrap()).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A Stat's mean is the mean of the per-seed values, and its interval holds it.
fn check_stat(stat: &Value, values: &[f64], what: &str) {
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    assert!((num(&stat["mean"]) - mean).abs() < 1e-9, "{what}: {stat}");
    assert_eq!(stat["n"].as_u64().unwrap() as usize, values.len(), "{what}");
    let ci = stat["ci95"].as_array().expect("3 seeds give an interval");
    let (lo, hi) = (num(&ci[0]), num(&ci[1]));
    assert!(
        lo <= mean + 1e-12 && mean <= hi + 1e-12,
        "{what}: {lo} {mean} {hi}"
    );
    // Half-width = t(2) · s / sqrt(3), t(2) = 4.303 (two-sided 95%).
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    assert!(
        ((hi - lo) / 2.0 - 4.303 * sd / 3f64.sqrt()).abs() < 1e-9,
        "{what}: width"
    );
}

#[test]
fn study_measures_what_it_claims_and_reproduces() {
    let dir = temp_dir("study");
    let a = small_study(&dir.join("a"), "2");
    let scenarios = a["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["real_sensors", "controlled"]);
    for s in scenarios {
        let classes = s["classes"].as_u64().unwrap() as f64;
        let archs: Vec<&str> = s["archs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["arch"].as_str().unwrap())
            .collect();
        // The JSON names an architecture as --arch does.
        assert_eq!(archs, ["ex1", "resnet"]);
        for arch in s["archs"].as_array().unwrap() {
            let base: Vec<f64> = arch["base"]["test_accuracy"]
                .as_array()
                .unwrap()
                .iter()
                .map(num)
                .collect();
            check_stat(&arch["base"]["test"], &base, "base");
            let variants = arch["variants"].as_array().unwrap();
            let by_name = |n: &str| {
                variants
                    .iter()
                    .find(|v| v["variant"]["name"] == n)
                    .unwrap_or_else(|| panic!("no variant {n}"))
            };
            for v in variants {
                let name = v["variant"]["name"].as_str().unwrap();
                let runs = v["runs"].as_array().unwrap();
                assert_eq!(runs.len(), 3, "three seeds");
                let kept: Vec<f64> = runs.iter().map(|r| num(&r["accuracy_kept"])).collect();
                check_stat(&v["summary"]["accuracy_kept"], &kept, name);
                for r in runs {
                    let curve = r["curve"].as_array().unwrap();
                    let spe = r["steps_per_epoch"].as_u64().unwrap();
                    // Step 0 is the starting model; then one point per epoch trained.
                    assert_eq!(curve[0]["step"], 0, "{name}");
                    assert_eq!(
                        curve.len() as u64,
                        r["epochs_run"].as_u64().unwrap() + 1,
                        "{name}"
                    );
                    for (i, p) in curve.iter().enumerate() {
                        assert_eq!(p["step"].as_u64().unwrap(), i as u64 * spe, "{name}");
                    }
                    assert!(
                        (num(&curve[0]["test_accuracy"]) - num(&r["accuracy_before"])).abs()
                            < 1e-12
                    );
                    // The worst dip is the curve's deepest fall below this seed's base.
                    let seed_base = base[runs.iter().position(|x| x == r).unwrap()];
                    let dip = curve
                        .iter()
                        .map(|p| seed_base - num(&p["test_accuracy"]))
                        .fold(0.0, f64::max);
                    assert!((num(&r["worst_dip"]) - dip).abs() < 1e-12, "{name}");
                }
                // Paired differences: their mean is the difference of the two means.
                for p in v["paired"].as_array().unwrap() {
                    let other = by_name(p["against"].as_str().unwrap());
                    let m = p["metric"].as_str().unwrap();
                    let ours = num(&v["summary"][m]["mean"]);
                    let theirs = num(&other["summary"][m]["mean"]);
                    assert!(
                        (num(&p["difference"]["mean"]) - (ours - theirs)).abs() < 1e-9,
                        "{name} vs {p}"
                    );
                }
            }
            // Function-preserving starts are the base: no drift, its accuracy, 0 steps to it.
            for name in ["zero", "zero+std", "projection+std", "auto+staged"] {
                for (i, r) in by_name(name)["runs"].as_array().unwrap().iter().enumerate() {
                    assert!(
                        num(&r["drift_step0"]) < 1e-5,
                        "{name}: {}",
                        r["drift_step0"]
                    );
                    assert!(
                        (num(&r["accuracy_before"]) - base[i]).abs() < 1e-12,
                        "{name}"
                    );
                    assert_eq!(r["steps_to_base"], 0, "{name}");
                }
            }
            // A scratch model starts near chance (balanced test labels) and drifts.
            for r in by_name("scratch+std")["runs"].as_array().unwrap() {
                let acc = num(&r["accuracy_before"]);
                assert!(
                    (acc - 1.0 / classes).abs() <= 0.25,
                    "scratch starts at {acc}"
                );
                assert!(num(&r["drift_step0"]) > 1e-3);
            }
            // What `auto` chose is recorded: zero (every reader has a kernel) + std (the
            // controlled channels are ×10; BasicMotions' gyroscope has another scale).
            for r in by_name("auto+staged")["runs"].as_array().unwrap() {
                assert!(
                    r["chosen"].as_str().unwrap().starts_with("zero"),
                    "{}",
                    r["chosen"]
                );
            }
        }
    }
    // Same seeds → the same study.json byte for byte, whatever the number of workers (wall
    // times live in timing.json).
    small_study(&dir.join("b"), "1");
    let ja = std::fs::read(dir.join("a").join("study.json")).unwrap();
    let jb = std::fs::read(dir.join("b").join("study.json")).unwrap();
    assert!(ja == jb, "study.json differs between runs");
    let md = std::fs::read_to_string(dir.join("a").join("study.md")).unwrap();
    assert!(
        md.contains("| zero+std |") && md.contains("### controlled · resnet"),
        "{md}"
    );
    let svg = std::fs::read_to_string(dir.join("a").join("curves.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "svg");
    let png = std::fs::read(dir.join("a").join("curves.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    // IHDR: width and height are twice the SVG's (four panels of 330).
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    assert_eq!(width, 2640);
}

#[test]
fn study_refuses_bad_inputs() {
    let dir = temp_dir("study-bad");
    let out = dir.join("out");
    let o = path_str(&out);
    assert_fails(
        &widen(&["study", "--quiet", "--out", o, "--strategies", "zero,warp"]),
        &["unknown strategy `warp`"],
    );
    assert_fails(
        &widen(&["study", "--quiet", "--out", o, "--scenarios", "mars"]),
        &["unknown scenario `mars`"],
    );
    assert_fails(
        &widen(&["study", "--quiet", "--out", o, "--arch", "fcn,vgg"]),
        &["unknown architecture `vgg`", "ex1, fcn, resnet"],
    );
    let missing = dir.join("missing.ts");
    assert_fails(
        &widen(&[
            "study",
            "--quiet",
            "--out",
            o,
            "--train",
            path_str(&missing),
            "--test",
            path_str(&missing),
            "--old-channels",
            "2",
        ]),
        &["missing.ts"],
    );
    let bad = dir.join("bad.ts");
    std::fs::write(&bad, "@problemName x\n@univariate false\n@dimensions 2\n@equalLength true\n@seriesLength 3\n@classLabel true a b\n@data\n1,2,3:4,5,6:a\n1,2,x:4,5,6:b\n").unwrap();
    assert_fails(
        &widen(&[
            "study",
            "--quiet",
            "--out",
            o,
            "--train",
            path_str(&bad),
            "--test",
            path_str(&bad),
            "--old-channels",
            "1",
        ]),
        &["bad.ts:9"],
    );
    assert_fails(
        &widen(&[
            "study",
            "--quiet",
            "--out",
            o,
            "--c-old",
            "8",
            "--c-new",
            "4",
            "--scenarios",
            "controlled",
        ]),
        &[],
    );
}
