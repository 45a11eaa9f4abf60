//! demo, summary, expand, predict.

use burn::tensor::Device;
use widen::layers::{Sequential, WeightFormat, keras_ex1};
use widen_cli::npy;

use crate::{assert_fails, assert_ok, path_str, stdout, temp_dir, widen};

/// Deterministic values in [-1, 1) from widen-init's seeded host RNG.
fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = widen::init::HostRng::new(seed);
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()
}

/// Saves a Keras-layout Ex1 model (8 channels, length 50) and returns its directory.
fn saved_ex1(tag: &str) -> std::path::PathBuf {
    let dir = temp_dir(tag).join("model");
    let model = Sequential::new(keras_ex1(8, 50), 11, &Device::flex()).unwrap();
    model.save(&dir, WeightFormat::Safetensors).unwrap();
    dir
}

#[test]
fn demo_prints_the_three_seed_results() {
    let o = widen(&["demo"]);
    assert_ok(&o);
    let out = stdout(&o);
    assert_eq!(out.matches("output shape (10, 32)").count(), 2, "{out}");
    assert!(
        out.contains("layer `conv1d`: expected 8 input channels, got 32"),
        "{out}"
    );
    assert_ok(&widen(&["demo", "--backend", "ndarray"]));
    assert_fails(
        &widen(&["demo", "--backend", "tpu"]),
        &["unknown backend `tpu`"],
    );
}

#[test]
fn summary_lists_the_layers() {
    let dir = saved_ex1("summary");
    let o = widen(&["summary", "--model", path_str(&dir)]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("input 8 channels, length 50"), "{out}");
    assert!(
        out.contains("conv1d (Conv1D)") && out.contains("Total params: 928"),
        "{out}"
    );
    let missing = dir.with_file_name("nowhere");
    assert_fails(
        &widen(&["summary", "--model", path_str(&missing)]),
        &["nowhere"],
    );
}

#[test]
fn expand_then_predict_preserves_the_function() {
    let dir = saved_ex1("expand");
    let root = dir.parent().unwrap().to_path_buf();
    let (b, l) = (4, 50);
    let x_old = pseudo_random(b * l * 8, 1);
    let noise = pseudo_random(b * l * 32, 2);
    // 8 real channels first, 24 new channels of another magnitude.
    let x_new: Vec<f32> = (0..b * l * 32)
        .map(|i| {
            let (row, c) = (i / 32, i % 32);
            if c < 8 {
                x_old[row * 8 + c]
            } else {
                noise[i] * 100.0 + 50.0
            }
        })
        .collect();
    let old_in = root.join("old.npy");
    let new_in = root.join("new.npy");
    npy::write(&old_in, &[b, l, 8], &x_old).unwrap();
    npy::write(&new_in, &[b, l, 32], &x_new).unwrap();
    let base_out = root.join("base_out.npy");
    assert_ok(&widen(&[
        "predict",
        "--model",
        path_str(&dir),
        "--input",
        path_str(&old_in),
        "--output",
        path_str(&base_out),
    ]));
    let base = npy::read(&base_out).unwrap();
    assert_eq!(base.shape, vec![b, 32]);

    for strategy in ["zero", "projection"] {
        let out_dir = root.join(format!("wide-{strategy}"));
        let o = widen(&[
            "expand",
            "--model",
            path_str(&dir),
            "--to",
            "32",
            "--strategy",
            strategy,
            "--out",
            path_str(&out_dir),
        ]);
        assert_ok(&o);
        assert!(stdout(&o).contains("8 → 32"), "{}", stdout(&o));
        let wide_out = root.join(format!("wide-{strategy}.npy"));
        assert_ok(&widen(&[
            "predict",
            "--model",
            path_str(&out_dir),
            "--input",
            path_str(&new_in),
            "--output",
            path_str(&wide_out),
        ]));
        let wide = npy::read(&wide_out).unwrap();
        let drift = wide
            .values
            .iter()
            .zip(&base.values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(drift <= 1e-5, "{strategy}: drift {drift}");
    }

    // Standardise with a sample; repeat and fan also run.
    let std_dir = root.join("wide-std");
    assert_ok(&widen(&[
        "expand",
        "--model",
        path_str(&dir),
        "--to",
        "32",
        "--strategy",
        "repeat",
        "--standardize",
        "--sample",
        path_str(&new_in),
        "--out",
        path_str(&std_dir),
    ]));
    assert!(
        stdout(&widen(&["summary", "--model", path_str(&std_dir)])).contains("widen_standardize")
    );
    assert_ok(&widen(&[
        "expand",
        "--model",
        path_str(&dir),
        "--to",
        "12",
        "--strategy",
        "fan",
        "--out",
        path_str(&root.join("wide-fan")),
    ]));

    // The input checkpoint is untouched: same bytes as a fresh save of the same model.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
}

#[test]
fn expand_refuses_bad_requests() {
    let dir = saved_ex1("expand-bad");
    let out = dir.with_file_name("out");
    let d = path_str(&dir);
    let o = path_str(&out);
    assert_fails(
        &widen(&[
            "expand",
            "--model",
            d,
            "--to",
            "4",
            "--strategy",
            "zero",
            "--out",
            o,
        ]),
        &["8", "4", "fewer"],
    );
    let unknown = widen(&[
        "expand",
        "--model",
        d,
        "--to",
        "16",
        "--strategy",
        "magic",
        "--out",
        o,
    ]);
    assert_fails(&unknown, &["magic"]);
    assert_fails(
        &widen(&[
            "expand",
            "--model",
            d,
            "--to",
            "16",
            "--strategy",
            "zero",
            "--out",
            d,
        ]),
        &["refusing to write", "it is the input", "never modifies"],
    );
    let missing = dir.with_file_name("missing");
    assert_fails(
        &widen(&[
            "expand",
            "--model",
            path_str(&missing),
            "--to",
            "16",
            "--strategy",
            "zero",
            "--out",
            o,
        ]),
        &["missing"],
    );
    assert_fails(
        &widen(&[
            "expand",
            "--model",
            d,
            "--to",
            "16",
            "--strategy",
            "zero",
            "--standardize",
            "--out",
            o,
        ]),
        &["--sample"],
    );
    assert!(!out.exists(), "a refused expansion writes nothing");
}

#[test]
fn predict_refuses_bad_inputs() {
    let dir = saved_ex1("predict-bad");
    let root = dir.parent().unwrap().to_path_buf();
    let d = path_str(&dir);
    let out = root.join("y.npy");
    let o = path_str(&out);

    let wrong = root.join("wrong.npy");
    npy::write(&wrong, &[2, 50, 32], &vec![0.5; 2 * 50 * 32]).unwrap();
    assert_fails(
        &widen(&[
            "predict",
            "--model",
            d,
            "--input",
            path_str(&wrong),
            "--output",
            o,
        ]),
        &["layer `conv1d`: expected 8 input channels, got 32"],
    );

    let mut values = vec![0.5f32; 2 * 50 * 8];
    values[17] = f32::NAN;
    let nan = root.join("nan.npy");
    npy::write(&nan, &[2, 50, 8], &values).unwrap();
    assert_fails(
        &widen(&[
            "predict",
            "--model",
            d,
            "--input",
            path_str(&nan),
            "--output",
            o,
        ]),
        &["NaN", "17"],
    );

    let flat = root.join("flat.npy");
    npy::write(&flat, &[2, 400], &vec![0.0; 800]).unwrap();
    assert_fails(
        &widen(&[
            "predict",
            "--model",
            d,
            "--input",
            path_str(&flat),
            "--output",
            o,
        ]),
        &["3-D"],
    );

    let garbage = root.join("garbage.npy");
    std::fs::write(&garbage, b"not numpy").unwrap();
    assert_fails(
        &widen(&[
            "predict",
            "--model",
            d,
            "--input",
            path_str(&garbage),
            "--output",
            o,
        ]),
        &["garbage.npy"],
    );

    // Truncated weights.
    let weights = dir.join("weights.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let good = root.join("good.npy");
    npy::write(&good, &[2, 50, 8], &vec![0.5; 800]).unwrap();
    assert_fails(
        &widen(&[
            "predict",
            "--model",
            d,
            "--input",
            path_str(&good),
            "--output",
            o,
        ]),
        &["weights.safetensors"],
    );
    assert!(!out.exists());

    // Channels-first input is accepted with the flag.
    let model2 = saved_ex1("predict-cf");
    let cf = root.join("cf.npy");
    npy::write(&cf, &[2, 8, 50], &vec![0.25; 800]).unwrap();
    assert_ok(&widen(&[
        "predict",
        "--model",
        path_str(&model2),
        "--input",
        path_str(&cf),
        "--output",
        o,
        "--channels-first",
    ]));
    assert_eq!(npy::read(&out).unwrap().shape, vec![2, 32]);
}

/// The bench prints one JSON line last with positive times (no timing is asserted).
#[test]
fn bench_prints_one_json_line_last() {
    let o = widen(&["bench", "--shapes", "seed,fcn", "--repeats", "1", "--json"]);
    assert_ok(&o);
    let out = stdout(&o);
    let last = out.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    for shape in ["seed", "fcn"] {
        for key in ["forward_ms", "train_ms"] {
            assert!(v[shape][key].as_f64().unwrap() > 0.0, "{last}");
        }
    }
    // The chain takes the fused head; the FCN graph says it runs layer by layer.
    assert_eq!(
        v["seed"]["fused_heads"].as_array().unwrap().len(),
        1,
        "{last}"
    );
    assert!(out.contains("fcn: fused inference head none"), "{out}");
    assert_fails(
        &widen(&["bench", "--shapes", "huge"]),
        &["unknown shape `huge`"],
    );
}

/// Names of widen's temporaries left in `dir`.
fn temporaries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".widen-tmp-") || n.contains(".widen-old-"))
        .collect()
}

/// Runs killed at random points leave either no output or a whole one at the final path, and
/// the next run writing into the same directory removes the temporaries they left (here also
/// planted ones of a process that cannot exist, as a kill at the worst moment leaves them).
#[test]
fn killed_runs_leave_whole_outputs_and_their_leftovers_are_removed() {
    let model = saved_ex1("killed");
    let root = model.parent().unwrap().to_path_buf();
    let x = root.join("x.npy");
    npy::write(&x, &[64, 50, 8], &pseudo_random(64 * 50 * 8, 3)).unwrap();
    std::fs::write(root.join(".y.npy.widen-tmp-4294967295-0"), b"half a file").unwrap();
    let stale_dir = root.join(".wide.widen-tmp-4294967295-1");
    std::fs::create_dir(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("weights.safetensors"), vec![0u8; 4096]).unwrap();

    // The two writing commands, each with its output flag and path.
    let predict = |out: &std::path::Path| -> Vec<String> {
        let (m, x, o) = (path_str(&model), path_str(&x), path_str(out));
        ["predict", "--model", m, "--input", x, "--output", o]
            .map(String::from)
            .to_vec()
    };
    let expand = |strategy: &str, out: &std::path::Path| -> Vec<String> {
        let (m, o) = (path_str(&model), path_str(out));
        [
            "expand",
            "--model",
            m,
            "--to",
            "16",
            "--strategy",
            strategy,
            "--out",
            o,
        ]
        .map(String::from)
        .to_vec()
    };
    let (y, wide) = (root.join("y.npy"), root.join("wide"));
    for delay_ms in [0u64, 2, 5, 10, 20, 40] {
        for args in [predict(&y), expand("fan", &wide)] {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_widen"))
                .args(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            let _ = child.kill(); // SIGKILL on Unix: no destructor runs.
            let _ = child.wait();
        }
        if y.exists() {
            assert_eq!(npy::read(&y).unwrap().shape, vec![64, 32]);
        }
        if wide.exists() {
            let m = Sequential::load(&wide, &Device::flex()).unwrap();
            assert_eq!(m.input().channels, 16);
        }
    }
    // Finished runs into the same directory clean up every dead process's temporaries.
    for args in [predict(&y), expand("zero", &root.join("wide2"))] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_ok(&widen(&args));
    }
    assert_eq!(temporaries(&root), Vec::<String>::new());
    assert_eq!(npy::read(&y).unwrap().shape, vec![64, 32]);
}
