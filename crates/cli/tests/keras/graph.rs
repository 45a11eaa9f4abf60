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
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join("keras_graph")
        .join(name)
}

fn assert_close(name: &str, got: &npy::NpyArray, want: &npy::NpyArray, what: &str) {
    assert_eq!(got.shape, want.shape, "{name} ({what}): output shape");
    let diff = got
        .values
        .iter()
        .zip(&want.values)
        .map(|(a, b)| {
            if (a - b).is_nan() {
                f32::INFINITY
            } else {
                (a - b).abs()
            }
        })
        .fold(0.0f32, f32::max);
    assert!(
        diff <= TOLERANCE,
        "{name} ({what}): max |widen - keras| = {diff:e}"
    );
}

/// `x` with `extra` channels appended (channels-last), each from `fill(batch, step, new index)`.
fn with_channels(
    x: &npy::NpyArray,
    extra: usize,
    fill: impl Fn(usize, usize, usize) -> f32,
) -> npy::NpyArray {
    let [b, l, c] = [x.shape[0], x.shape[1], x.shape[2]];
    let mut values = Vec::with_capacity(b * l * (c + extra));
    for i in 0..b {
        for t in 0..l {
            for k in 0..c + extra {
                values.push(if k < c {
                    x.values[(i * l + t) * c + k]
                } else {
                    fill(i, t, k - c)
                });
            }
        }
    }
    npy::NpyArray {
        shape: vec![b, l, c + extra],
        values,
    }
}

fn expand_graph(name: &str, strategy: &str, to: usize) -> PathBuf {
    let out = temp_dir(&format!("graph-{name}-{strategy}")).join("model");
    let o = widen(&[
        "expand",
        "--model",
        s(&graph_fixture(name)),
        "--to",
        &to.to_string(),
        "--strategy",
        strategy,
        "--out",
        s(&out),
    ]);
    assert_ok(&o);
    out
}

fn check_graph(name: &str) {
    let dir = graph_fixture(name);
    let x = npy::read(&dir.join("input.npy")).unwrap();
    let want = npy::read(&dir.join("expected.npy")).unwrap();
    let got = predict(&dir, &dir.join("input.npy"), name);
    assert_close(name, &got, &want, "predict");

    let c = x.shape[2];
    let tmp = temp_dir(&format!("graph-{name}-inputs"));
    // Arbitrary new channels, large and varying: a leak cannot go unnoticed.
    let noisy = with_channels(&x, 3, |i, t, k| {
        100.0 * (((i * 31 + t * 7 + k * 13) % 17) as f32 / 8.0 - 1.0)
    });
    let noisy_path = tmp.join("noisy.npy");
    npy::write(&noisy_path, &noisy.shape, &noisy.values).unwrap();
    for strategy in ["zero", "projection"] {
        let wide = expand_graph(name, strategy, c + 3);
        let got = predict(&wide, &noisy_path, &format!("{name}-{strategy}"));
        assert_close(
            name,
            &got,
            &want,
            &format!("{strategy} to C+3, new channels ×100"),
        );
    }
    // `repeat`: new channel j repeats old channel j mod C.
    let repeated = with_channels(&x, 3, |i, t, k| x.values[(i * x.shape[1] + t) * c + k % c]);
    let repeated_path = tmp.join("repeated.npy");
    npy::write(&repeated_path, &repeated.shape, &repeated.values).unwrap();
    let wide = expand_graph(name, "repeat", c + 3);
    let got = predict(&wide, &repeated_path, &format!("{name}-repeat"));
    assert_close(name, &got, &want, "repeat to C+3 on repeated channels");
}

macro_rules! graph_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                check_graph($name);
            }
        )*

        #[test]
        fn every_graph_fixture_has_a_test() {
            let tested = [$($name),*];
            assert_eq!(tested.as_slice(), GRAPHS);
            let mut on_disk: Vec<String> = fs::read_dir(graph_fixture(""))
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_type().unwrap().is_dir())
                .map(|e| e.file_name().into_string().unwrap())
                .collect();
            on_disk.sort();
            assert_eq!(on_disk, GRAPHS, "the graph fixture directories changed");
        }
    };
}

graph_tests! {
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
