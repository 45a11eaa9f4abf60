//! Keras functional graphs (FCN, ResNet, InceptionTime, CNN-LSTM/GRU, every merge layer, nested
//! sub-models, a Keras 2.x file), exported by `tools/keras_export.py` (fixtures made by
//! `tools/fixtures/gen_keras_graphs.py`): `widen predict` gives Keras' output, and widening by
//! three channels keeps it — `zero` and `projection` on arbitrary new channels at scale ×100,
//! `repeat` on new channels that repeat old ones.

use super::*;

/// Every fixture directory under `tests/fixtures/keras_graph`.
const GRAPHS: &[&str] = &[
    "chain_v2",
    "cnn_gru",
    "cnn_gru_v1",
    "cnn_lstm",
    "fcn",
    "inception_large",
    "inception_small",
    "keras2_native",
    "layers_misc",
    "merges",
    "nested",
    "resnet",
];

fn graph_fixture(name: &str) -> PathBuf {
    fixture_in("keras_graph", name)
}

fn expand_graph(name: &str, strategy: &str, to: usize) -> PathBuf {
    let out = temp_dir(&format!("graph-{name}-{strategy}")).join("model");
    assert_ok(&expand(
        &graph_fixture(name),
        &to.to_string(),
        strategy,
        &out,
    ));
    out
}

fn check_graph(name: &str) {
    let dir = graph_fixture(name);
    let x = npy::read(&dir.join("input.npy")).unwrap();
    let want = npy::read(&dir.join("expected.npy")).unwrap();
    let got = predict(&dir, &dir.join("input.npy"), name);
    assert_matches(name, &got, &want, "predict");

    let [l, c] = [x.shape[1], x.shape[2]];
    let tmp = temp_dir(&format!("graph-{name}-inputs"));
    // Arbitrary new channels (k ≥ C), large and varying: a leak cannot go unnoticed.
    let noisy = append_channels(&x, 2, 3, |[i, t, k]| {
        100.0 * (((i * 31 + t * 7 + (k - c) * 13) % 17) as f32 / 8.0 - 1.0)
    });
    let noisy_path = tmp.join("noisy.npy");
    npy::write(&noisy_path, &noisy.shape, &noisy.values).unwrap();
    for strategy in ["zero", "projection"] {
        let wide = expand_graph(name, strategy, c + 3);
        let got = predict(&wide, &noisy_path, &format!("{name}-{strategy}"));
        let what = format!("{strategy} to C+3, new channels ×100");
        assert_matches(name, &got, &want, &what);
    }
    // `repeat`: new channel C + j repeats old channel j mod C.
    let repeated = append_channels(&x, 2, 3, |[i, t, k]| x.values[(i * l + t) * c + k % c]);
    let repeated_path = tmp.join("repeated.npy");
    npy::write(&repeated_path, &repeated.shape, &repeated.values).unwrap();
    let wide = expand_graph(name, "repeat", c + 3);
    let got = predict(&wide, &repeated_path, &format!("{name}-repeat"));
    assert_matches(name, &got, &want, "repeat to C+3 on repeated channels");
}

fixture_tests! {
    check_graph, graph_fixture(""), GRAPHS, every_graph_fixture_has_a_test;
    graph_chain_v2 => "chain_v2",
    graph_cnn_gru => "cnn_gru",
    graph_cnn_gru_v1 => "cnn_gru_v1",
    graph_cnn_lstm => "cnn_lstm",
    graph_fcn => "fcn",
    graph_inception_large => "inception_large",
    graph_inception_small => "inception_small",
    graph_keras2_native => "keras2_native",
    graph_layers_misc => "layers_misc",
    graph_merges => "merges",
    graph_nested => "nested",
    graph_resnet => "resnet",
}

#[test]
fn summary_of_a_graph_prints_keras_connected_to() {
    let o = widen(&["summary", "--model", s(&graph_fixture("resnet"))]);
    assert_ok(&o);
    let out = stdout(&o);
    assert!(out.contains("Connected to"), "{out}");
    assert!(out.contains("(Add)"), "{out}");
    // The add reads two layers: Keras prints both, `name[0][0]`.
    let add = out.lines().find(|l| l.contains("(Add)")).unwrap();
    assert_eq!(add.matches("[0][0]").count(), 2, "{add}");
}

/// `tools/fixtures/check_to_keras.py` rebuilt every Keras fixture with `tools/to_keras.py`
/// and ran it in Keras; its committed results must cover every fixture directory and pass.
#[test]
fn to_keras_rebuilds_every_fixture_within_tolerance() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let results: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("to_keras_results.json")).unwrap()).unwrap();
    assert_eq!(results["all_pass"], true);
    let tolerance = results["tolerance"].as_f64().unwrap();
    assert!(tolerance <= 1e-5);
    let checked: Vec<String> = results["fixtures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let err = f["max_abs_error"].as_f64().unwrap();
            assert!(err <= tolerance && f["pass"] == true, "{f}");
            f["fixture"].as_str().unwrap().to_string()
        })
        .collect();
    for set in ["keras", "keras_graph"] {
        for entry in fs::read_dir(root.join(set)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                let name = entry.file_name().into_string().unwrap();
                let key = format!("{set}/{name}");
                assert!(checked.contains(&key), "{key} has no to_keras check");
            }
        }
    }
}

/// `tools/fixtures/check_roundtrip.py` took Keras fixtures through expand → fit → to_keras.py
/// (Keras) and → `widen export --onnx` (onnxruntime); its committed results must all pass, on
/// outputs that are far from constant.
#[test]
fn the_way_back_to_keras_and_onnx_keeps_widens_outputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let results: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("roundtrip_results.json")).unwrap()).unwrap();
    assert_eq!(results["all_pass"], true);
    let fixtures = results["fixtures"].as_array().unwrap();
    assert!(fixtures.len() >= 5);
    for f in fixtures {
        for key in ["keras_max_abs_error", "onnx_max_abs_error"] {
            assert!(f[key].as_f64().unwrap() <= 1e-5, "{f}");
        }
        assert!(f["output_std"].as_f64().unwrap() > 1e-3, "{f}");
        let name = f["fixture"].as_str().unwrap();
        assert!(root.join(name).is_dir(), "{name}");
    }
}
