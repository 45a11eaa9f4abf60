//! Keras interop, end to end through the `widen` binary: models trained in Keras 3 and exported
//! with `tools/keras_export.py` (fixtures made by `tools/fixtures/gen_keras_models.py`) must give
//! Keras' numbers under `widen predict`, widen like any other model under `widen expand`, and fail
//! cleanly on bad input. The fixtures are committed; these tests never need Python.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use widen_cli::npy;

/// Largest absolute difference allowed between widen and Keras (both float32).
const TOLERANCE: f32 = 1e-5;

/// Every fixture directory under `tests/fixtures/keras`, each with a `predict_*` test below.
const FIXTURES: &[&str] = &[
    "act_elu",
    "act_gelu",
    "act_leaky_relu",
    "act_linear",
    "act_relu",
    "act_sigmoid",
    "act_silu",
    "act_softmax",
    "act_swish",
    "act_tanh",
    "activation_layers",
    "bn_options",
    "channels_first",
    "channels_first_flatten",
    "channels_first_gap",
    "channels_first_global",
    "conv_causal_d2",
    "conv_causal_s1",
    "conv_causal_s2",
    "conv_groups_nobias",
    "conv_same_d2",
    "conv_same_s1",
    "conv_same_s2",
    "conv_valid_d2",
    "conv_valid_s1",
    "conv_valid_s2",
    "dense_activations",
    "ex1",
    "flatten_dense",
    "functional_chain",
    "pools",
    "pools_valid",
    "variable_length",
];

/// Fixture `name` of the set `set` (a directory under `tests/fixtures`).
fn fixture_in(set: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(set)
        .join(name)
}

fn fixture(name: &str) -> PathBuf {
    fixture_in("keras", name)
}

/// The names of the directories in `root`, sorted.
fn fixture_dirs(root: &Path) -> Vec<String> {
    let mut on_disk: Vec<String> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    on_disk
}

/// Runs `widen` with `args`, on the default backend.
fn widen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_widen"))
        .args(args)
        .env_remove("WIDEN_BACKEND")
        .output()
        .expect("the widen binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output) {
    assert!(
        o.status.success(),
        "widen failed:\n{}\n{}",
        stderr(o),
        stdout(o)
    );
}

/// A clean failure: non-zero exit, a message holding every needle, no panic.
fn assert_fails(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected a failure, got success: {}",
        stdout(o)
    );
    assert!(!err.contains("panicked"), "widen panicked: {err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks `{needle}`: {err}");
    }
}

/// A fresh empty directory under cargo's per-target temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "keras-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// Whether the exported model takes Keras' channels_first input `[batch, channels, length]`.
fn is_channels_first(model: &Path) -> bool {
    fs::read_to_string(model.join("model.json"))
        .unwrap()
        .contains("\"data_format\": \"channels_first\"")
}

/// Runs `widen predict` on `input` (in Keras' layout for `model`) and returns the output.
fn predict(model: &Path, input: &Path, tag: &str) -> npy::NpyArray {
    let out = temp_dir(tag).join("y.npy");
    let mut args = vec![
        "predict",
        "--model",
        s(model),
        "--input",
        s(input),
        "--output",
        s(&out),
    ];
    if is_channels_first(model) {
        args.push("--channels-first");
    }
    let o = widen(&args);
    assert_ok(&o);
    npy::read(&out).unwrap()
}

/// Runs `widen expand` of `model` to `to` input channels with `strategy`, writing `out`.
fn expand(model: &Path, to: &str, strategy: &str, out: &Path) -> Output {
    widen(&[
        "expand",
        "--model",
        s(model),
        "--to",
        to,
        "--strategy",
        strategy,
        "--out",
        s(out),
    ])
}

/// Asserts `got` matches Keras' `expected.npy` of fixture `name` within [`TOLERANCE`].
fn assert_matches_keras(name: &str, got: &npy::NpyArray, what: &str) {
    let expected = npy::read(&fixture(name).join("expected.npy")).unwrap();
    assert_matches(name, got, &expected, what);
}

/// Asserts `got` matches Keras' output `expected` (of model `name`) within [`TOLERANCE`].
fn assert_matches(name: &str, got: &npy::NpyArray, expected: &npy::NpyArray, what: &str) {
    assert_eq!(
        got.shape, expected.shape,
        "{name} ({what}): output shape differs from Keras'"
    );
    let (worst, diff) = got
        .values
        .iter()
        .zip(&expected.values)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0f32), |best, (i, d)| {
            // NaN never compares greater: make it the worst.
            if d.is_nan() || d > best.1 {
                (i, if d.is_nan() { f32::INFINITY } else { d })
            } else {
                best
            }
        });
    assert!(
        diff <= TOLERANCE,
        "{name} ({what}): max |widen - keras| = {diff:e} at flat index {worst} \
         (widen {}, keras {})",
        got.values[worst],
        expected.values[worst]
    );
}

/// `widen predict` on the fixture's `input.npy` gives Keras' `model(x, training=False)`.
fn check_predict(name: &str) {
    let dir = fixture(name);
    let got = predict(&dir, &dir.join("input.npy"), name);
    assert_matches_keras(name, &got, "predict");
}

/// One test per fixture of `$list` (the directories of `$root`), each running `$check` on it,
/// and `$every`: the list, the tests and the directories agree.
macro_rules! fixture_tests {
    (
        $check:ident, $root:expr, $list:ident, $every:ident;
        $($test:ident => $name:literal),* $(,)?
    ) => {
        $(
            #[test]
            fn $test() {
                $check($name);
            }
        )*

        #[test]
        fn $every() {
            let tested = [$($name),*];
            assert_eq!(
                tested.as_slice(),
                $list,
                "update {} and its tests together",
                stringify!($list)
            );
            assert_eq!(fixture_dirs(&$root), $list, "the fixture directories changed");
        }
    };
}

mod graph;

fixture_tests! {
    check_predict, fixture(""), FIXTURES, every_fixture_has_a_predict_test;
    predict_act_elu => "act_elu",
    predict_act_gelu => "act_gelu",
    predict_act_leaky_relu => "act_leaky_relu",
    predict_act_linear => "act_linear",
    predict_act_relu => "act_relu",
    predict_act_sigmoid => "act_sigmoid",
    predict_act_silu => "act_silu",
    predict_act_softmax => "act_softmax",
    predict_act_swish => "act_swish",
    predict_act_tanh => "act_tanh",
    predict_activation_layers => "activation_layers",
    predict_bn_options => "bn_options",
    predict_channels_first => "channels_first",
    predict_channels_first_flatten => "channels_first_flatten",
    predict_channels_first_gap => "channels_first_gap",
    predict_channels_first_global => "channels_first_global",
    predict_conv_causal_d2 => "conv_causal_d2",
    predict_conv_causal_s1 => "conv_causal_s1",
    predict_conv_causal_s2 => "conv_causal_s2",
    predict_conv_groups_nobias => "conv_groups_nobias",
    predict_conv_same_d2 => "conv_same_d2",
    predict_conv_same_s1 => "conv_same_s1",
    predict_conv_same_s2 => "conv_same_s2",
    predict_conv_valid_d2 => "conv_valid_d2",
    predict_conv_valid_s1 => "conv_valid_s1",
    predict_conv_valid_s2 => "conv_valid_s2",
    predict_dense_activations => "dense_activations",
    predict_ex1 => "ex1",
    predict_flatten_dense => "flatten_dense",
    predict_functional_chain => "functional_chain",
    predict_pools => "pools",
    predict_pools_valid => "pools_valid",
    predict_variable_length => "variable_length",
}

/// Widens the exported Ex1 from 8 to 32 input channels with `strategy`; returns the new model.
fn expand_ex1(strategy: &str) -> PathBuf {
    let out = temp_dir(&format!("expand-{strategy}")).join("ex1_32");
    assert_ok(&expand(&fixture("ex1"), "32", strategy, &out));
    out
}

/// A function-preserving widening of the Keras model, fed the 8 old channels plus 24 new ones
/// of large arbitrary values, gives Keras' output for the old channels alone.
fn check_expansion_preserves_keras(strategy: &str) {
    let widened = expand_ex1(strategy);
    let got = predict(
        &widened,
        &fixture("ex1").join("input_wide.npy"),
        &format!("wide-{strategy}"),
    );
    assert_matches_keras("ex1", &got, &format!("expanded 8 → 32 with {strategy}"));
}

#[test]
fn expand_zero_keeps_keras_output() {
    check_expansion_preserves_keras("zero");
}

#[test]
fn expand_projection_keeps_keras_output() {
    check_expansion_preserves_keras("projection");
}

#[test]
fn expand_repeat_and_fan_run_on_an_exported_model() {
    for strategy in ["repeat", "fan"] {
        let widened = expand_ex1(strategy);
        let got = predict(
            &widened,
            &fixture("ex1").join("input_wide.npy"),
            &format!("wide-{strategy}"),
        );
        assert_eq!(got.shape, [10, 32], "{strategy}");
        assert!(got.values.iter().all(|v| v.is_finite()), "{strategy}");
    }
}

/// `x` (3-D) with `extra` new channels appended on `axis` (1 or 2), each new value
/// `fill([i, j, k])` of its index in the result.
fn append_channels(
    x: &npy::NpyArray,
    axis: usize,
    extra: usize,
    fill: impl Fn([usize; 3]) -> f32,
) -> npy::NpyArray {
    let [a, b, c] = [x.shape[0], x.shape[1], x.shape[2]];
    let mut shape = vec![a, b, c];
    shape[axis] += extra;
    let mut values = Vec::with_capacity(shape.iter().product());
    for i in 0..a {
        for j in 0..shape[1] {
            for k in 0..shape[2] {
                let old = if axis == 1 { j < b } else { k < c };
                values.push(if old {
                    x.values[(i * b + j) * c + k]
                } else {
                    fill([i, j, k])
                });
            }
        }
    }
    npy::NpyArray { shape, values }
}

/// Widens fixture `name` by `extra` channels with `strategy` and checks that the old channels
/// plus arbitrary new ones still give Keras' output.
fn check_widened_fixture(name: &str, extra: usize, strategy: &str) {
    let dir = fixture(name);
    let channels_first = is_channels_first(&dir);
    let x = npy::read(&dir.join("input.npy")).unwrap();
    let axis = if channels_first { 1 } else { 2 };
    let to = (x.shape[axis] + extra).to_string();
    let tmp = temp_dir(&format!("widen-{name}-{strategy}"));
    // Large and varying, so a leak of the new channels cannot go unnoticed.
    let wide = append_channels(&x, axis, extra, |[i, j, k]| {
        -60.0 + (i + 3 * j + 7 * k) as f32
    });
    let input = tmp.join("wide.npy");
    npy::write(&input, &wide.shape, &wide.values).unwrap();
    let out = tmp.join("model");
    assert_ok(&expand(&dir, &to, strategy, &out));
    let got = predict(&out, &input, &format!("wide-{name}"));
    assert_matches_keras(name, &got, &format!("expanded by {extra} with {strategy}"));
}

#[test]
fn expand_keeps_keras_output_for_channels_first_and_grouped_models() {
    check_widened_fixture("channels_first_gap", 4, "zero");
    check_widened_fixture("channels_first", 3, "projection");
    check_widened_fixture("conv_groups_nobias", 3, "projection");
    check_widened_fixture("functional_chain", 5, "zero");
}

#[test]
fn zero_on_a_grouped_model_is_refused() {
    let out = temp_dir("grouped").join("wide");
    let o = expand(&fixture("conv_groups_nobias"), "9", "zero", &out);
    assert_fails(&o, &["conv1d", "groups"]);
}

#[test]
fn summary_keeps_the_keras_layer_names() {
    let o = widen(&["summary", "--model", s(&fixture("functional_chain"))]);
    assert_ok(&o);
    let out = stdout(&o);
    for row in [
        "feature_conv (Conv1D)",
        "drop (Dropout)",
        "pool (MaxPooling1D)",
        "gmp (GlobalMaxPooling1D)",
        "head (Dense)",
    ] {
        assert!(out.contains(row), "summary lacks `{row}`:\n{out}");
    }
}

#[test]
fn predict_refuses_the_wrong_channel_count() {
    let ex1 = fixture("ex1");
    let out = temp_dir("wrong-channels").join("y.npy");
    let o = widen(&[
        "predict",
        "--model",
        s(&ex1),
        "--input",
        s(&ex1.join("input_wide.npy")),
        "--output",
        s(&out),
    ]);
    assert_fails(&o, &["conv1d", "expected 8 input channels, got 32"]);
    assert!(!out.exists(), "an output was written for a refused input");

    // A channels_first model fed its input without --channels-first sees 12 "channels".
    let cf = fixture("channels_first");
    let o = widen(&[
        "predict",
        "--model",
        s(&cf),
        "--input",
        s(&cf.join("input.npy")),
        "--output",
        s(&out),
    ]);
    assert_fails(&o, &["expected 4 input channels, got 12"]);
}

#[test]
fn predict_refuses_nan_input() {
    let dir = temp_dir("nan");
    let x = npy::read(&fixture("ex1").join("input.npy")).unwrap();
    let mut values = x.values.clone();
    values[17] = f32::NAN;
    let input = dir.join("nan.npy");
    npy::write(&input, &x.shape, &values).unwrap();
    let o = widen(&[
        "predict",
        "--model",
        s(&fixture("ex1")),
        "--input",
        s(&input),
        "--output",
        s(&dir.join("y.npy")),
    ]);
    assert_fails(&o, &["NaN", "nan.npy"]);
}

/// A copy of the exported Ex1 whose weights file went through `damage`.
fn damaged_ex1(tag: &str, damage: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let dir = temp_dir(tag).join("model");
    fs::create_dir_all(&dir).unwrap();
    let src = fixture("ex1");
    fs::copy(src.join("model.json"), dir.join("model.json")).unwrap();
    let mut bytes = fs::read(src.join("weights.safetensors")).unwrap();
    damage(&mut bytes);
    fs::write(dir.join("weights.safetensors"), bytes).unwrap();
    dir
}

#[test]
fn truncated_weights_are_refused() {
    let dir = damaged_ex1("truncated", |b| b.truncate(b.len() / 2));
    let input = fixture("ex1").join("input.npy");
    let out = dir.with_file_name("y.npy");
    let o = widen(&[
        "predict",
        "--model",
        s(&dir),
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    assert_fails(&o, &["weights.safetensors", "corrupt"]);
    let o = expand(&dir, "32", "zero", &dir.with_file_name("wide"));
    assert_fails(&o, &["weights.safetensors"]);
}

#[test]
fn corrupted_weights_fail_the_exporters_checksums() {
    // The exporter records a CRC-32 per tensor; flip one byte of the last tensor's data.
    let dir = damaged_ex1("bitflip", |b| {
        let last = b.len() - 1;
        b[last] ^= 0x40;
    });
    let o = widen(&[
        "predict",
        "--model",
        s(&dir),
        "--input",
        s(&fixture("ex1").join("input.npy")),
        "--output",
        s(&dir.with_file_name("y.npy")),
    ]);
    assert_fails(&o, &["CRC-32"]);
}

#[test]
fn a_missing_model_dir_is_refused() {
    let nowhere = temp_dir("missing").join("nowhere");
    let o = widen(&[
        "predict",
        "--model",
        s(&nowhere),
        "--input",
        s(&fixture("ex1").join("input.npy")),
        "--output",
        s(&nowhere.with_file_name("y.npy")),
    ]);
    assert_fails(&o, &["nowhere", "not found"]);
    let o = expand(&nowhere, "32", "zero", &nowhere.with_file_name("wide"));
    assert_fails(&o, &["nowhere", "not found"]);
}

#[test]
fn an_unknown_strategy_is_refused() {
    let out = temp_dir("strategy").join("wide");
    let o = expand(&fixture("ex1"), "32", "bogus", &out);
    assert_fails(&o, &["bogus", "--strategy"]);
    assert!(!out.exists(), "a model was written for an unknown strategy");
}
