//! `widen import` / `widen export` on the torch.onnx.export fixtures
//! (`tests/fixtures/onnx`, see docs/ONNX.md): predictions equal onnxruntime's, widening with
//! `zero` and `projection` keeps them, export → import keeps them, hostile files are refused.

use std::path::{Path, PathBuf};

use widen_cli::npy;

use crate::{assert_fails, assert_ok, path_str, stderr, stdout, temp_dir, widen};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn manifest() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("MANIFEST.json")).unwrap()).unwrap()
}

/// Every fixture's name, and the manifest's tolerance.
fn fixtures() -> (Vec<String>, f32) {
    let m = manifest();
    let names = m["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    (names, m["tolerance"].as_f64().unwrap() as f32)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `widen predict --channels-first` of `model` on `input`; the output's values.
fn predict(model: &Path, input: &Path, out: &Path) -> npy::NpyArray {
    assert_ok(&widen(&[
        "predict",
        "--model",
        path_str(model),
        "--input",
        path_str(input),
        "--output",
        path_str(out),
        "--channels-first",
    ]));
    npy::read(out).unwrap()
}

fn import(onnx: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec!["import", path_str(onnx), "--out", path_str(out)];
    args.extend(extra);
    let o = widen(&args);
    assert_ok(&o);
    let text = stdout(&o);
    assert!(
        text.contains("ONNX node(s)") && text.contains("layer(s)") && text.contains("wrote"),
        "{text}"
    );
}

#[test]
fn every_fixture_imports_and_predicts_what_onnxruntime_does() {
    let (names, tol) = fixtures();
    assert!(names.len() >= 5, "{names:?}");
    let work = temp_dir("onnx-import");
    for name in &names {
        let dir = root().join(name);
        let model = work.join(name);
        let format: &[&str] = if name == "residual" {
            &["--format", "burnpack"]
        } else {
            &[]
        };
        import(&dir.join("model.onnx"), &model, format);
        let got = predict(
            &model,
            &dir.join("input.npy"),
            &work.join(format!("{name}.npy")),
        );
        let want = npy::read(&dir.join("expected.npy")).unwrap();
        assert_eq!(got.shape, want.shape, "{name}");
        let d = max_diff(&got.values, &want.values);
        assert!(d <= tol, "{name}: max |widen - onnxruntime| = {d}");
    }
}

#[test]
fn widening_an_imported_model_keeps_onnxruntimes_output() {
    let (names, tol) = fixtures();
    let work = temp_dir("onnx-expand");
    for name in &names {
        let dir = root().join(name);
        let model = work.join(name);
        import(&dir.join("model.onnx"), &model, &[]);
        let x = npy::read(&dir.join("input.npy")).unwrap();
        let [b, c, l] = [x.shape[0], x.shape[1], x.shape[2]];
        // Two new channels of another magnitude, appended on axis 1 (channels-first).
        let mut wide = Vec::with_capacity(b * (c + 2) * l);
        for i in 0..b {
            wide.extend_from_slice(&x.values[i * c * l..(i + 1) * c * l]);
            wide.extend((0..2 * l).map(|k| ((k * 7 + i * 3) % 11) as f32 * 3.0 - 12.0));
        }
        let wide_in = work.join(format!("{name}-wide.npy"));
        npy::write(&wide_in, &[b, c + 2, l], &wide).unwrap();
        let want = npy::read(&dir.join("expected.npy")).unwrap();
        for strategy in ["zero", "projection"] {
            let out = work.join(format!("{name}-{strategy}"));
            let to = (c + 2).to_string();
            let o = widen(&[
                "expand",
                "--model",
                path_str(&model),
                "--to",
                &to,
                "--strategy",
                strategy,
                "--out",
                path_str(&out),
            ]);
            assert_ok(&o);
            let got = predict(&out, &wide_in, &work.join(format!("{name}-{strategy}.npy")));
            let d = max_diff(&got.values, &want.values);
            assert!(d <= tol, "{name} widened with {strategy}: {d}");
        }
    }
}

#[test]
fn export_then_import_gives_the_same_predictions() {
    let (names, _) = fixtures();
    let work = temp_dir("onnx-export");
    for name in &names {
        let dir = root().join(name);
        let model = work.join(name);
        import(&dir.join("model.onnx"), &model, &[]);
        let onnx = work.join(format!("{name}.onnx"));
        let o = widen(&["export", path_str(&model), "--onnx", path_str(&onnx)]);
        assert_ok(&o);
        assert!(stdout(&o).contains("opset 17"), "{}", stdout(&o));
        let again = work.join(format!("{name}-again"));
        import(&onnx, &again, &[]);
        let input = dir.join("input.npy");
        let first = predict(&model, &input, &work.join(format!("{name}-1.npy")));
        let second = predict(&again, &input, &work.join(format!("{name}-2.npy")));
        assert_eq!(first.shape, second.shape, "{name}");
        let d = max_diff(&first.values, &second.values);
        assert!(
            d <= 1e-6,
            "{name}: export → import changed the output by {d}"
        );
    }
}

#[test]
fn hostile_files_are_refused_with_a_message() {
    let m = manifest();
    let work = temp_dir("onnx-hostile");
    for entry in m["hostile"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        let path = root().join(file);
        let out = work.join(file.replace('/', "_"));
        let o = widen(&["import", path_str(&path), "--out", path_str(&out)]);
        if file.ends_with("dynamic_length.onnx") {
            // Nothing in plain_cnn needs a fixed length (a global pool before the Flatten):
            // widen imports it with a variable length and runs it at any length.
            assert_ok(&o);
            assert!(stdout(&o).contains("[batch, 3, length]"), "{}", stdout(&o));
            for l in [32usize, 21] {
                let x: Vec<f32> = (0..2 * 3 * l).map(|i| (i % 7) as f32 * 0.3 - 1.0).collect();
                let input = work.join(format!("x{l}.npy"));
                npy::write(&input, &[2, 3, l], &x).unwrap();
                let y = predict(&out, &input, &work.join(format!("y{l}.npy")));
                assert_eq!(y.shape, vec![2, 4]);
            }
            continue;
        }
        let needle = match file {
            f if f.ends_with("unsupported_op.onnx") => "Einsum",
            f if f.ends_with("conv2d.onnx") => "4 dimensions",
            f if f.ends_with("deep_nesting.onnx") => "no input",
            _ => "not a readable ONNX model",
        };
        assert_fails(&o, &[file.rsplit('/').next().unwrap(), needle]);
        assert!(!out.exists(), "{file}: an output was left behind");
    }
}

#[test]
fn outputs_may_not_alias_inputs() {
    let work = temp_dir("onnx-alias");
    let onnx = root().join("plain_cnn/model.onnx");
    // The output directory may not be the ONNX file or contain it.
    let copy = work.join("model.onnx");
    std::fs::copy(&onnx, &copy).unwrap();
    let o = widen(&["import", path_str(&copy), "--out", path_str(&work)]);
    assert_fails(&o, &["contains"]);
    let model = work.join("m");
    import(&onnx, &model, &[]);
    let inside = model.join("m.onnx");
    let o = widen(&["export", path_str(&model), "--onnx", path_str(&inside)]);
    assert_fails(&o, &["inside"]);
    assert!(!inside.exists());
    let missing = work.join("nowhere/x.onnx");
    let o = widen(&["export", path_str(&model), "--onnx", path_str(&missing)]);
    assert!(!o.status.success() && !stderr(&o).contains("panicked"));
}

#[test]
fn the_memory_budget_is_checked_before_decoding() {
    let work = temp_dir("onnx-budget");
    let onnx = root().join("plain_cnn/model.onnx");
    let out = work.join("m");
    let o = widen(&[
        "--max-memory",
        "20K",
        "import",
        path_str(&onnx),
        "--out",
        path_str(&out),
    ]);
    assert_fails(
        &o,
        &["decoding an ONNX model", "memory budget", "--max-memory"],
    );
    assert!(!out.exists());
}
