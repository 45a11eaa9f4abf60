//! `widen study`: files, contents, determinism, and bad inputs.

use serde_json::Value;

use crate::{assert_fails, assert_ok, path_str, temp_dir, widen};

fn small_study(out: &std::path::Path) -> Value {
    let o = widen(&[
        "study",
        "--quiet",
        "--out",
        path_str(out),
        "--base-steps",
        "4",
        "--steps",
        "3",
        "--train-cases",
        "24",
        "--test-cases",
        "12",
        "--c-old",
        "4",
        "--c-new",
        "10",
        "--length",
        "20",
    ]);
    assert_ok(&o);
    for f in ["study.md", "study.json", "loss_curves.svg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    serde_json::from_str(&std::fs::read_to_string(out.join("study.json")).unwrap()).unwrap()
}

#[test]
fn study_writes_both_scenarios_and_reproduces() {
    let dir = temp_dir("study");
    let a = small_study(&dir.join("a"));
    let scenarios = a["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["real_sensors", "controlled"]);
    for s in scenarios {
        let variants = s["variants"].as_array().unwrap();
        assert!(variants.len() >= 8, "{} variants", variants.len());
        for v in variants {
            let runs = v["runs"].as_array().unwrap();
            assert_eq!(runs.len(), 3, "three seeds");
            for r in runs {
                assert_eq!(r["loss_curve"].as_array().unwrap().len(), 3);
                assert!(r["accuracy_after"].as_f64().unwrap() >= 0.0);
            }
        }
    }
    // Same seed → identical numbers (wall times are kept apart under "timing").
    let mut b = small_study(&dir.join("b"));
    let mut a = a;
    a.as_object_mut().unwrap().remove("timing");
    b.as_object_mut().unwrap().remove("timing");
    assert_eq!(a, b);
    let md = std::fs::read_to_string(dir.join("a").join("study.md")).unwrap();
    assert!(
        md.contains("| zero+std |") && md.contains("## controlled"),
        "{md}"
    );
    let svg = std::fs::read_to_string(dir.join("a").join("loss_curves.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "svg");
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
