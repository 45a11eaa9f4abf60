//! fit, evaluate, diagnose and `expand --strategy auto`: the user's road after an export, on a
//! small model and data whose classes a widened model can learn; good and bad inputs.

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::Device;
use widen::layers::{
    Activation, Conv1dConfig, DenseConfig, InputSpec, LayerConfig, ModelSpec, PaddingMode,
    Sequential, WeightFormat,
};
use widen_cli::npy;

use crate::{assert_fails, assert_ok, path_str, stdout, temp_dir, widen};

const LEN: usize = 12;

/// `[cases, LEN, channels]` channels-last series: class = sign of channel 0; channels ≥ 2 are
/// new, carry the class too, at scale ×20 and offset 5.
fn series(cases: usize, channels: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut rng = widen::init::HostRng::new(seed);
    let mut x = Vec::with_capacity(cases * LEN * channels);
    let mut y = Vec::with_capacity(cases);
    for n in 0..cases {
        let sign = if n % 2 == 0 { -1.0 } else { 1.0 };
        for _ in 0..LEN {
            for c in 0..channels {
                let noise = rng.uniform() as f32 - 0.5;
                let v = 0.4 * sign + noise;
                x.push(if c >= 2 { 20.0 * v + 5.0 } else { v });
            }
        }
        y.push((n % 2) as i64 + 3);
    }
    (x, y)
}

/// Writes labels as int64 `.npy`.
fn write_labels(path: &Path, labels: &[i64]) {
    let header = format!(
        "{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}",
        labels.len()
    );
    let data: Vec<u8> = labels.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, npy::encode_raw(1, &header, &data)).unwrap();
}

struct Case {
    dir: PathBuf,
    base: PathBuf,
    x: PathBuf,
    y: PathBuf,
    x_val: PathBuf,
    y_val: PathBuf,
}

/// A base model on 2 channels and 4-channel training/validation data.
fn setup(tag: &str) -> Case {
    let dir = temp_dir(tag);
    let spec = ModelSpec::new(InputSpec::new(2).with_length(LEN))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(6, 3)
                .with_padding(PaddingMode::Same)
                .with_activation(Activation::Relu),
        ))
        .push(LayerConfig::GlobalAvgPool1d)
        .push(LayerConfig::Dense(
            DenseConfig::new(2).with_activation(Activation::Softmax),
        ));
    let base = dir.join("base");
    Sequential::new(spec, 3, &Device::flex())
        .unwrap()
        .save(&base, WeightFormat::Safetensors)
        .unwrap();
    let (x, y) = series(48, 4, 1);
    let (xv, yv) = series(24, 4, 2);
    let c = Case {
        base,
        x: dir.join("x.npy"),
        y: dir.join("y.npy"),
        x_val: dir.join("xv.npy"),
        y_val: dir.join("yv.npy"),
        dir,
    };
    npy::write(&c.x, &[48, LEN, 4], &x).unwrap();
    write_labels(&c.y, &y);
    npy::write(&c.x_val, &[24, LEN, 4], &xv).unwrap();
    write_labels(&c.y_val, &yv);
    c
}

fn expand_auto(c: &Case) -> PathBuf {
    let out = c.dir.join("wide");
    let o = widen(&expand_args(
        path_str(&c.base),
        "4",
        "auto",
        &["--sample", path_str(&c.x), "--out", path_str(&out)],
    ));
    assert_ok(&o);
    let text = stdout(&o);
    assert!(
        text.contains("auto: strategy zero with --standardize"),
        "{text}"
    );
    out
}

fn fit_args<'a>(c: &'a Case, model: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "fit",
        "--model",
        path_str(model),
        "--train",
        path_str(&c.x),
        "--labels",
        path_str(&c.y),
        "--val",
        path_str(&c.x_val),
        "--val-labels",
        path_str(&c.y_val),
        "--out",
        path_str(out),
        "--epochs",
        "6",
        "--batch-size",
        "8",
        "--lr",
        "0.01",
        "--seed",
        "4",
    ]
}

/// Every stored tensor's bits (files differ in metadata order; the values must not).
fn weights(dir: &Path) -> Vec<u32> {
    let m = Sequential::load(dir, &Device::flex()).unwrap();
    m.weight_infos()
        .iter()
        .flat_map(|w| {
            m.weight(&w.layer, &w.param)
                .unwrap()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap()
        })
        .map(f32::to_bits)
        .collect()
}

#[test]
fn auto_expand_then_fit_then_evaluate() {
    let c = setup("road");
    let wide = expand_auto(&c);
    let out = c.dir.join("fitted");
    let o = widen(&fit_args(&c, &wide, &out));
    assert_ok(&o);
    let text = stdout(&o);
    assert!(text.contains("recipe staged"), "{text}");
    assert!(text.contains("epoch   1/6 [new-only"), "{text}");
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("history.json")).unwrap()).unwrap();
    let best = history["best_val_accuracy"].as_f64().unwrap();
    let start = history["start_val_accuracy"].as_f64().unwrap();
    assert!(
        best >= start,
        "the kept model is never worse than the start"
    );
    assert!(
        std::fs::read_to_string(out.join("curves.svg"))
            .unwrap()
            .starts_with("<svg")
    );
    // The fitted model is an ordinary model directory.
    assert_ok(&widen(&["summary", "--model", path_str(&out)]));
    let json = c.dir.join("eval.json");
    let o = widen(&[
        "evaluate",
        "--model",
        path_str(&out),
        "--data",
        path_str(&c.x_val),
        "--labels",
        path_str(&c.y_val),
        "--json",
        path_str(&json),
    ]);
    assert_ok(&o);
    let e: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!((e["accuracy"].as_f64().unwrap() - best).abs() < 1e-9);
    assert_eq!(e["classes"], serde_json::json!(["3", "4"]));
    assert!(stdout(&o).contains("confusion matrix"));
}

#[test]
fn a_killed_fit_resumes_to_the_uninterrupted_weights() {
    let c = setup("kill");
    let wide = expand_auto(&c);
    // Long enough (40 epochs, no early stop) for the kill to land mid-run.
    let long = |out: &Path| -> Vec<String> {
        let mut a: Vec<String> = fit_args(&c, &wide, out)
            .iter()
            .map(|s| s.to_string())
            .collect();
        a[14] = "40".into();
        a.extend(["--patience".into(), "0".into()]);
        a
    };
    let run = |args: &[String]| widen(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let whole = c.dir.join("whole");
    assert_ok(&run(&long(&whole)));

    let out = c.dir.join("killed");
    let state = widen::train::state_dir_for(&out);
    let mut child = Command::new(env!("CARGO_BIN_EXE_widen"))
        .args(long(&out))
        .env_remove("WIDEN_BACKEND")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // SIGKILL once an epoch has been committed (or let it finish on a fast machine).
    let progress = state.join("progress.json");
    let started = std::time::Instant::now();
    while !progress.exists() && started.elapsed().as_secs() < 120 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    if out.join("history.json").exists() {
        // It finished before the kill: nothing to resume; the weights must still match.
        assert_eq!(weights(&out), weights(&whole));
        return;
    }
    let mut args = long(&out);
    args.push("--resume".into());
    let o = run(&args);
    assert_ok(&o);
    assert_eq!(weights(&out), weights(&whole), "resumed weights differ");
    assert!(
        !state.exists(),
        "the run state is removed once the fit is done"
    );
}

#[test]
fn diagnose_measures_and_recommends() {
    let c = setup("diag");
    let wide = c.dir.join("wide0");
    assert_ok(&widen(&expand_args(
        path_str(&c.base),
        "4",
        "zero",
        &["--out", path_str(&wide)],
    )));
    let json = c.dir.join("diag.json");
    let o = widen(&[
        "diagnose",
        "--model",
        path_str(&wide),
        "--data",
        path_str(&c.x),
        "--labels",
        path_str(&c.y),
        "--base",
        path_str(&c.base),
        "--json",
        path_str(&json),
    ]);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(text.contains("--strategy zero --standardize"), "{text}");
    let d: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let scales = d["scales"].as_array().unwrap();
    assert_eq!(scales.len(), 4);
    assert_eq!(scales[2]["new"], true);
    assert!(scales[2]["std"].as_f64().unwrap() > 5.0 * scales[0]["std"].as_f64().unwrap());
    // `zero` leaves the new channels without weight: their contribution is 0.
    assert_eq!(d["contributions"][3]["contribution"].as_f64().unwrap(), 0.0);
    assert!(
        d["gradient_norms"]
            .as_array()
            .is_some_and(|g| !g.is_empty())
    );
}

#[test]
fn bad_inputs_fail_cleanly() {
    let c = setup("bad");
    let wide = expand_auto(&c);
    let out = c.dir.join("o");
    // The wrong channel count.
    let (x2, y2) = series(10, 2, 5);
    let narrow = c.dir.join("narrow.npy");
    npy::write(&narrow, &[10, LEN, 2], &x2).unwrap();
    let narrow_y = c.dir.join("narrow_y.npy");
    write_labels(&narrow_y, &y2);
    let mut args = fit_args(&c, &wide, &out);
    args[4] = path_str(&narrow);
    args[6] = path_str(&narrow_y);
    assert_fails(&widen(&args), &["2 channels", "takes 4"]);
    // Labels that do not match the cases.
    let short = c.dir.join("short_y.npy");
    write_labels(&short, &[3, 4]);
    let mut args = fit_args(&c, &wide, &out);
    args[6] = path_str(&short);
    assert_fails(&widen(&args), &["labels"]);
    // Validation labels that the training data does not have.
    let other = c.dir.join("other_y.npy");
    write_labels(&other, &[7; 24]);
    let mut args = fit_args(&c, &wide, &out);
    args[10] = path_str(&other);
    assert_fails(&widen(&args), &["7"]);
    // NaN in the data.
    let (mut xn, _) = series(48, 4, 1);
    xn[5] = f32::NAN;
    let nan = c.dir.join("nan.npy");
    npy::write(&nan, &[48, LEN, 4], &xn).unwrap();
    let mut args = fit_args(&c, &wide, &out);
    args[4] = path_str(&nan);
    assert_fails(&widen(&args), &["not finite"]);
    // A diverging learning rate.
    let mut args = fit_args(&c, &wide, &out);
    args[18] = "1e38";
    assert_fails(&widen(&args), &["diverged", "--lr"]);
    // Unlabelled data.
    let mut args = fit_args(&c, &wide, &out);
    args.drain(5..7);
    assert_fails(&widen(&args), &["label"]);
    // --resume without a run, and an existing output.
    let mut args = fit_args(&c, &wide, &out);
    args.push("--resume");
    assert_fails(&widen(&args), &["no saved run"]);
    assert_fails(&widen(&fit_args(&c, &wide, &wide)), &["input"]);
    // new-only on a model no `widen expand` made.
    let mut args = fit_args(&c, &c.base, &out);
    args[4] = path_str(&narrow);
    args[6] = path_str(&narrow_y);
    args.extend(["--recipe", "new-only", "--val-fraction", "0.3"]);
    args.drain(7..11);
    assert_fails(&widen(&args), &["--recipe plain"]);
    // auto without a sample.
    assert_fails(
        &widen(&expand_args(
            path_str(&c.base),
            "4",
            "auto",
            &["--out", path_str(&c.dir.join("a"))],
        )),
        &["--sample"],
    );
    // .ts-only options on .npy, and an evaluate on mismatched labels file.
    assert_fails(
        &widen(&[
            "evaluate",
            "--model",
            path_str(&wide),
            "--data",
            path_str(&c.x_val),
        ]),
        &["label"],
    );
}

/// `widen expand --model M --to N --strategy S` followed by `rest`.
fn expand_args<'a>(
    model: &'a str,
    to: &'a str,
    strategy: &'a str,
    rest: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "expand",
        "--model",
        model,
        "--to",
        to,
        "--strategy",
        strategy,
    ];
    args.extend_from_slice(rest);
    args
}

/// Runs `predict` and returns the output values.
fn predict(model: &Path, input: &Path, out: &Path) -> Vec<f32> {
    assert_ok(&widen(&[
        "predict",
        "--model",
        path_str(model),
        "--input",
        path_str(input),
        "--output",
        path_str(out),
    ]));
    npy::read(out).unwrap().values
}

#[test]
fn old_channels_can_sit_anywhere_and_a_retired_sensor_can_be_dropped() {
    let c = setup("placement");
    let (x4, _) = series(6, 4, 9);
    // The base's two channels: positions 0 and 1 of the data.
    let x2: Vec<f32> = x4.chunks(4).flat_map(|row| [row[0], row[1]]).collect();
    let base_in = c.dir.join("x2.npy");
    npy::write(&base_in, &[6, LEN, 2], &x2).unwrap();
    let want = predict(&c.base, &base_in, &c.dir.join("y_base.npy"));
    // Old channels at positions 1 and 3 of a 4-channel input.
    let wide = c.dir.join("wide_map");
    assert_ok(&widen(&expand_args(
        path_str(&c.base),
        "4",
        "zero",
        &["--old-at", "1,3", "--out", path_str(&wide)],
    )));
    let moved: Vec<f32> = x4
        .chunks(4)
        .flat_map(|row| [99.0, row[0], -42.0, row[1]])
        .collect();
    let moved_in = c.dir.join("x_moved.npy");
    npy::write(&moved_in, &[6, LEN, 4], &moved).unwrap();
    let got = predict(&wide, &moved_in, &c.dir.join("y_moved.npy"));
    let diff = want
        .iter()
        .zip(&got)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff <= 1e-5, "old channels moved to 1, 3: max |Δ| = {diff}");
    // Narrowing to channel 1 alone.
    let narrow = c.dir.join("narrow");
    assert_ok(&widen(&expand_args(
        path_str(&c.base),
        "1",
        "zero",
        &["--keep", "1", "--out", path_str(&narrow)],
    )));
    let s = stdout(&widen(&["summary", "--model", path_str(&narrow)]));
    assert!(s.contains(&format!("(None, {LEN}, 6)")), "{s}");
    // With a sample of the old data, the dropped channel's mean moves into the conv bias.
    let compensated = c.dir.join("narrow_c");
    assert_ok(&widen(&expand_args(
        path_str(&c.base),
        "1",
        "zero",
        &[
            "--keep",
            "1",
            "--compensate-sample",
            path_str(&base_in),
            "--out",
            path_str(&compensated),
        ],
    )));
    let x1: Vec<f32> = x2.chunks(2).map(|r| r[1]).collect();
    let one = c.dir.join("x1.npy");
    npy::write(&one, &[6, LEN, 1], &x1).unwrap();
    let a = predict(&narrow, &one, &c.dir.join("y_n.npy"));
    let b = predict(&compensated, &one, &c.dir.join("y_c.npy"));
    assert_ne!(a, b, "compensation changes the biases");
    // A map that is not one-to-one is refused.
    assert_fails(
        &widen(&expand_args(
            path_str(&c.base),
            "4",
            "zero",
            &["--old-at", "1,1", "--out", path_str(&c.dir.join("bad"))],
        )),
        &["1"],
    );
}

#[test]
fn ts_data_with_unequal_lengths_follows_the_policy() {
    let c = setup("ts");
    // Three cases of 4 channels, lengths 12, 12 and 10; labels a/b.
    let mut ts = String::from(
        "@problemName t\n@timeStamps false\n@univariate false\n@dimensions 4\n@equalLength false\n@classLabel true a b\n@data\n",
    );
    for (n, len) in [12usize, 12, 10, 12, 12, 10].iter().enumerate() {
        let dims: Vec<String> = (0..4)
            .map(|ch| {
                (0..*len)
                    .map(|t| format!("{}", ((n + ch + t) % 5) as f32 * 0.1))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        ts += &format!(
            "{}:{}\n",
            dims.join(":"),
            if n % 2 == 0 { "a" } else { "b" }
        );
    }
    let path = c.dir.join("train.ts");
    std::fs::write(&path, ts).unwrap();
    let wide = c.dir.join("wide");
    assert_ok(&widen(&expand_args(
        path_str(&c.base),
        "4",
        "zero",
        &["--out", path_str(&wide)],
    )));
    let fit = |policy: &str, out: &str| {
        widen(&[
            "fit",
            "--model",
            path_str(&wide),
            "--train",
            path_str(&path),
            "--val-fraction",
            "0.34",
            "--epochs",
            "1",
            "--length-policy",
            policy,
            "--out",
            path_str(&c.dir.join(out)),
        ])
    };
    assert_fails(&fit("error", "e"), &["length"]);
    // Padding to 12 fits the model (fixed length 12); cropping to 10 does not.
    assert_ok(&fit("pad", "p"));
    assert_fails(&fit("crop", "c"), &["length 10", "length 12"]);
}

#[test]
fn the_study_reads_npy_data_with_old_channels_as_a_list() {
    let c = setup("study-npy");
    let out = c.dir.join("study");
    let run = |old: &str| {
        widen(&[
            "study",
            "--quiet",
            "--scenarios",
            "real",
            "--train",
            path_str(&c.x),
            "--train-labels",
            path_str(&c.y),
            "--test",
            path_str(&c.x_val),
            "--test-labels",
            path_str(&c.y_val),
            "--old-channels",
            old,
            "--base-steps",
            "3",
            "--steps",
            "2",
            "--seeds",
            "1",
            "--strategies",
            "zero,projection+std",
            "--arch",
            "ex1",
            "--out",
            path_str(&out),
        ])
    };
    assert_ok(&run("0,1"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("study.json")).unwrap()).unwrap();
    assert_eq!(
        json["scenarios"][0]["old_channels"],
        serde_json::json!([0, 1])
    );
    assert_eq!(json["scenarios"][0]["new_channels"], 4);
    assert_fails(&run("0,0"), &["each once"]);
    assert_fails(&run("4"), &["fewer than"]);
    assert_fails(&run("x"), &["--old-channels"]);
}
