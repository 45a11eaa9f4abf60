//! LSTM, GRU, ReLU, PReLU and LayerNormalization against independent scalar oracles: the Keras
//! equations written out element by element in f64, fed the same random weights through
//! `Model::set_weight`. Also parameter layouts, configs as JSON, gradients and typed errors.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use widen_layers::{
    Activation, DataFormat, FeatureShape, GruConfig, InputSpec, Layer, LayerConfig, LayerError,
    LayerNormConfig, LayerSpec, LstmConfig, ModelSpec, PReluConfig, ReluConfig, Sequential, Value,
};

use crate::common::{assert_close, devices, pseudo_random, tensor3, values};

// ---------------------------------------------------------------- helpers

fn spec(input: InputSpec, layers: Vec<LayerConfig>) -> ModelSpec {
    layers
        .into_iter()
        .fold(ModelSpec::new(input), |s, l| s.push(l))
}

fn build(input: InputSpec, layers: Vec<LayerConfig>, device: &Device) -> Sequential {
    Sequential::new(spec(input, layers), 7, device).unwrap()
}

/// A model of the one `layer` on `channels × length` inputs.
fn build_one(channels: usize, length: usize, layer: LayerConfig, device: &Device) -> Sequential {
    build(
        InputSpec::new(channels).with_length(length),
        vec![layer],
        device,
    )
}

/// Random values in [-scale, scale), set as `layer.param`.
fn randomize(
    model: &mut Sequential,
    layer: &str,
    param: &str,
    shape: &[usize],
    seed: u64,
) -> Vec<f32> {
    let n = shape.iter().product();
    let v: Vec<f32> = pseudo_random(n, seed).iter().map(|x| x * 0.6).collect();
    model
        .set_weight(layer, param, TensorData::new(v.clone(), shape.to_vec()))
        .unwrap();
    v
}

/// Random `kernel` `[c, gates·u]` and `recurrent_kernel` `[u, gates·u]` of recurrent `layer`,
/// from seeds `seed` and `seed + 1`.
fn randomize_kernels(
    model: &mut Sequential,
    layer: &str,
    [c, u, gates]: [usize; 3],
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let k = randomize(model, layer, "kernel", &[c, gates * u], seed);
    let r = randomize(model, layer, "recurrent_kernel", &[u, gates * u], seed + 1);
    (k, r)
}

/// Output values and dims of a forward pass on channels-last (or the model's layout) `x`.
fn run(
    model: &Sequential,
    x: &[f32],
    shape: [usize; 3],
    device: &Device,
) -> (Vec<usize>, Vec<f32>) {
    let y = model.forward(tensor3(x, shape, device)).unwrap();
    let dims = y.dims();
    let data = match y {
        Value::Seq(t) => t.into_data(),
        Value::Flat(t) => t.into_data(),
    };
    (dims, values(data))
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `Σ_k a[k] · m[k, col]` for a row-major matrix `m` with `cols` columns.
fn dot_col(a: &[f64], m: &[f64], cols: usize, col: usize) -> f64 {
    a.iter()
        .enumerate()
        .map(|(k, &v)| v * m[k * cols + col])
        .sum()
}

/// A recurrent oracle's time loop: for each sample of `x` `[B, L, C]`, the hidden state `h`
/// (`u` zeros) and `init()` (any other state) go through `step(x_t, h, state)` step by step.
/// Returns `[B, L, U]` (all steps) and `[B, U]` (last state).
fn scan_oracle<S>(
    x: &[f32],
    [b, l, c]: [usize; 3],
    u: usize,
    init: impl Fn() -> S,
    mut step: impl FnMut(&[f64], &mut Vec<f64>, &mut S),
) -> (Vec<f64>, Vec<f64>) {
    let mut seq = Vec::new();
    let mut last = Vec::new();
    for bi in 0..b {
        let (mut h, mut state) = (vec![0.0; u], init());
        for t in 0..l {
            let xt: Vec<f64> = (0..c).map(|ci| x[(bi * l + t) * c + ci] as f64).collect();
            step(&xt, &mut h, &mut state);
            seq.extend_from_slice(&h);
        }
        last.extend_from_slice(&h);
    }
    (seq, last)
}

/// Keras LSTM, scalar by scalar. `x` is `[B, L, C]`; returns `[B, L, U]` (all steps) and
/// `[B, U]` (last state).
fn lstm_oracle(
    x: &[f32],
    dims: [usize; 3],
    u: usize,
    kernel: &[f32],
    recurrent: &[f32],
    bias: Option<&[f32]>,
) -> (Vec<f64>, Vec<f64>) {
    let (k, r) = (f64s(kernel), f64s(recurrent));
    let bias = bias.map(f64s).unwrap_or_else(|| vec![0.0; 4 * u]);
    let init = || vec![0.0; u];
    scan_oracle(x, dims, u, init, |xt, h, cell: &mut Vec<f64>| {
        let z: Vec<f64> = (0..4 * u)
            .map(|j| dot_col(xt, &k, 4 * u, j) + dot_col(h, &r, 4 * u, j) + bias[j])
            .collect();
        for j in 0..u {
            let i = sigmoid(z[j]);
            let f = sigmoid(z[u + j]);
            let g = z[2 * u + j].tanh();
            let o = sigmoid(z[3 * u + j]);
            cell[j] = f * cell[j] + i * g;
            h[j] = o * cell[j].tanh();
        }
    })
}

/// Keras GRU, scalar by scalar, either reset convention. `bias` is Keras' `[2, 3U]` (reset
/// after) or `[3U]` (reset before), flattened.
fn gru_oracle(
    x: &[f32],
    dims: [usize; 3],
    u: usize,
    kernel: &[f32],
    recurrent: &[f32],
    bias: Option<&[f32]>,
    reset_after: bool,
) -> (Vec<f64>, Vec<f64>) {
    let (k, r) = (f64s(kernel), f64s(recurrent));
    let w = 3 * u;
    let (b_in, b_rec) = match (bias, reset_after) {
        (Some(bias), true) => (f64s(&bias[..w]), f64s(&bias[w..])),
        (Some(bias), false) => (f64s(bias), vec![0.0; w]),
        (None, _) => (vec![0.0; w], vec![0.0; w]),
    };
    scan_oracle(
        x,
        dims,
        u,
        || (),
        |xt, h, _| {
            let xw: Vec<f64> = (0..w).map(|j| dot_col(xt, &k, w, j) + b_in[j]).collect();
            let hu: Vec<f64> = (0..w).map(|j| dot_col(h, &r, w, j) + b_rec[j]).collect();
            let z: Vec<f64> = (0..u).map(|j| sigmoid(xw[j] + hu[j])).collect();
            let rg: Vec<f64> = (0..u).map(|j| sigmoid(xw[u + j] + hu[u + j])).collect();
            let hh: Vec<f64> = if reset_after {
                (0..u)
                    .map(|j| (xw[2 * u + j] + rg[j] * hu[2 * u + j]).tanh())
                    .collect()
            } else {
                let rh: Vec<f64> = (0..u).map(|j| rg[j] * h[j]).collect();
                (0..u)
                    .map(|j| (xw[2 * u + j] + dot_col(&rh, &r, w, 2 * u + j)).tanh())
                    .collect()
            };
            for j in 0..u {
                h[j] = z[j] * h[j] + (1.0 - z[j]) * hh[j];
            }
        },
    )
}

fn as_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// A forward's `(dims, values)` against the oracle's `(seq, last)`: all `[b, l, u]` steps with
/// `return_sequences`, else the last `[b, u]`.
fn assert_matches_oracle(
    (dims, got): (Vec<usize>, Vec<f32>),
    (seq, last): (Vec<f64>, Vec<f64>),
    [b, l, u]: [usize; 3],
    return_sequences: bool,
    what: &str,
) {
    if return_sequences {
        assert_eq!(dims, vec![b, l, u], "{what}");
        assert_close(&got, &as_f32(&seq), 2e-5, what);
    } else {
        assert_eq!(dims, vec![b, u], "{what}");
        assert_close(&got, &as_f32(&last), 2e-5, what);
    }
}

// ---------------------------------------------------------------- LSTM

/// Runs an LSTM with random weights on every CPU backend, both output modes, and compares
/// with the oracle.
fn check_lstm(c: usize, l: usize, u: usize, use_bias: bool) {
    let b = 2;
    let x = pseudo_random(b * l * c, 11);
    for (backend, device) in devices() {
        for return_sequences in [false, true] {
            let cfg = LstmConfig::new(u)
                .with_return_sequences(return_sequences)
                .with_bias(use_bias);
            let mut m = build_one(c, l, LayerConfig::Lstm(cfg), &device);
            let (k, r) = randomize_kernels(&mut m, "lstm", [c, u, 4], 1);
            let bias = use_bias.then(|| randomize(&mut m, "lstm", "bias", &[4 * u], 3));
            let want = lstm_oracle(&x, [b, l, c], u, &k, &r, bias.as_deref());
            let what = format!("lstm on {backend}, return_sequences={return_sequences}");
            let got = run(&m, &x, [b, l, c], &device);
            assert_matches_oracle(got, want, [b, l, u], return_sequences, &what);
        }
    }
}

#[test]
fn lstm_matches_the_scalar_oracle() {
    check_lstm(3, 6, 4, true);
}

#[test]
fn lstm_without_bias_matches_the_scalar_oracle() {
    check_lstm(2, 5, 3, false);
}

#[test]
fn lstm_takes_any_length_on_a_variable_length_input() {
    let device = Device::flex();
    let (c, u) = (3, 2);
    let mut m = build(
        InputSpec::new(c),
        vec![LayerConfig::Lstm(
            LstmConfig::new(u).with_return_sequences(true),
        )],
        &device,
    );
    assert_eq!(
        m.output_shape(),
        FeatureShape::Seq {
            channels: u,
            length: None
        }
    );
    let (k, r) = randomize_kernels(&mut m, "lstm", [c, u, 4], 4);
    let bias = randomize(&mut m, "lstm", "bias", &[4 * u], 6);
    for l in [1, 4, 9] {
        let x = pseudo_random(l * c, l as u64);
        let (seq, _) = lstm_oracle(&x, [1, l, c], u, &k, &r, Some(&bias));
        let (dims, got) = run(&m, &x, [1, l, c], &device);
        assert_eq!(dims, vec![1, l, u]);
        assert_close(&got, &as_f32(&seq), 2e-5, &format!("length {l}"));
    }
}

/// Keras' initial values: forget-gate bias 1 (the rest of the bias 0) with
/// `unit_forget_bias`, all 0 without; an orthogonal recurrent kernel (orthonormal rows).
#[test]
fn lstm_initial_weights_follow_keras() {
    let device = Device::flex();
    let u = 3;
    let m = build(
        InputSpec::new(2).with_length(4),
        vec![
            LayerConfig::Lstm(LstmConfig::new(u).with_return_sequences(true)),
            LayerConfig::Lstm(LstmConfig::new(u).with_unit_forget_bias(false)),
        ],
        &device,
    );
    let bias = values(m.weight("lstm", "bias").unwrap());
    let want: Vec<f32> = (0..4 * u)
        .map(|j| if (u..2 * u).contains(&j) { 1.0 } else { 0.0 })
        .collect();
    assert_eq!(bias, want);
    assert!(
        values(m.weight("lstm_1", "bias").unwrap())
            .iter()
            .all(|&v| v == 0.0)
    );
    let r = f64s(&values(m.weight("lstm", "recurrent_kernel").unwrap()));
    for i in 0..u {
        for j in 0..u {
            let d: f64 = (0..4 * u)
                .map(|k| r[i * 4 * u + k] * r[j * 4 * u + k])
                .sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((d - want).abs() < 1e-5, "R Rᵀ[{i}][{j}] = {d}");
        }
    }
    let k = values(m.weight("lstm", "kernel").unwrap());
    let limit = (6.0f32 / (2.0 + 12.0)).sqrt(); // glorot_uniform on [2, 12]
    assert!(k.iter().all(|v| v.abs() <= limit) && k.iter().any(|&v| v != 0.0));
}

// ---------------------------------------------------------------- GRU

fn check_gru(reset_after: bool, use_bias: bool) {
    let (b, l, c, u) = (2, 5, 3, 4);
    let x = pseudo_random(b * l * c, 12);
    let bias_shape = if reset_after {
        vec![2, 3 * u]
    } else {
        vec![3 * u]
    };
    for (backend, device) in devices() {
        for return_sequences in [false, true] {
            let cfg = GruConfig::new(u)
                .with_reset_after(reset_after)
                .with_return_sequences(return_sequences)
                .with_bias(use_bias);
            let mut m = build_one(c, l, LayerConfig::Gru(cfg), &device);
            let (k, r) = randomize_kernels(&mut m, "gru", [c, u, 3], 1);
            let bias = use_bias.then(|| randomize(&mut m, "gru", "bias", &bias_shape, 3));
            if let Some(bias) = &bias {
                // Read back in Keras' layout.
                assert_eq!(&values(m.weight("gru", "bias").unwrap()), bias);
            }
            let want = gru_oracle(&x, [b, l, c], u, &k, &r, bias.as_deref(), reset_after);
            let what = format!(
                "gru on {backend}, reset_after={reset_after}, return_sequences={return_sequences}"
            );
            let got = run(&m, &x, [b, l, c], &device);
            assert_matches_oracle(got, want, [b, l, u], return_sequences, &what);
        }
    }
}

#[test]
fn gru_reset_after_matches_the_scalar_oracle() {
    check_gru(true, true);
}

#[test]
fn gru_reset_before_matches_the_scalar_oracle() {
    check_gru(false, true);
}

#[test]
fn gru_without_bias_matches_the_scalar_oracle() {
    check_gru(true, false);
    check_gru(false, false);
}

/// The two conventions differ once a recurrent bias or state is involved: the same kernels
/// give different outputs (so neither test above could pass by computing the other).
#[test]
fn gru_conventions_differ() {
    let device = Device::flex();
    let (l, c, u) = (4, 2, 3);
    let x = pseudo_random(l * c, 13);
    let mut outs = Vec::new();
    for reset_after in [true, false] {
        let cfg = GruConfig::new(u).with_reset_after(reset_after);
        let mut m = build_one(c, l, LayerConfig::Gru(cfg), &device);
        randomize_kernels(&mut m, "gru", [c, u, 3], 1);
        outs.push(run(&m, &x, [1, l, c], &device).1);
    }
    let diff: f32 = outs[0]
        .iter()
        .zip(&outs[1])
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(diff > 1e-4, "reset_after true and false agree: {diff}");
}

// ---------------------------------------------------------------- shapes, configs, JSON

#[test]
fn stored_tensors_have_keras_shapes() {
    let s = spec(
        InputSpec::new(5).with_length(7),
        vec![
            LayerConfig::Lstm(LstmConfig::new(4).with_return_sequences(true)),
            LayerConfig::Gru(GruConfig::new(3).with_return_sequences(true)),
            LayerConfig::Gru(
                GruConfig::new(2)
                    .with_reset_after(false)
                    .with_return_sequences(true),
            ),
            LayerConfig::Lstm(
                LstmConfig::new(6)
                    .with_bias(false)
                    .with_return_sequences(true),
            ),
            LayerConfig::LayerNorm(LayerNormConfig::new()),
            LayerConfig::Relu(ReluConfig::new().with_max_value(6.0)),
            LayerConfig::PRelu(PReluConfig::new()),
            LayerConfig::PRelu(PReluConfig::new().with_shared_axes(vec![1])),
            LayerConfig::Lstm(LstmConfig::new(2)),
            LayerConfig::PRelu(PReluConfig::new()),
        ],
    );
    let got: Vec<(String, Vec<usize>)> = s
        .tensors()
        .unwrap()
        .into_iter()
        .map(|w| (w.key(), w.shape))
        .collect();
    let want: Vec<(String, Vec<usize>)> = [
        ("lstm.kernel", vec![5, 16]),
        ("lstm.recurrent_kernel", vec![4, 16]),
        ("lstm.bias", vec![16]),
        ("gru.kernel", vec![4, 9]),
        ("gru.recurrent_kernel", vec![3, 9]),
        ("gru.bias", vec![2, 9]),
        ("gru_1.kernel", vec![3, 6]),
        ("gru_1.recurrent_kernel", vec![2, 6]),
        ("gru_1.bias", vec![6]),
        ("lstm_1.kernel", vec![2, 24]),
        ("lstm_1.recurrent_kernel", vec![6, 24]),
        ("layer_normalization.gamma", vec![6]),
        ("layer_normalization.beta", vec![6]),
        ("p_re_lu.alpha", vec![7, 6]),
        ("p_re_lu_1.alpha", vec![1, 6]),
        ("lstm_2.kernel", vec![6, 8]),
        ("lstm_2.recurrent_kernel", vec![2, 8]),
        ("lstm_2.bias", vec![8]),
        ("p_re_lu_2.alpha", vec![2]),
    ]
    .into_iter()
    .map(|(k, s)| (k.to_string(), s))
    .collect();
    assert_eq!(got, want);
    // The built model stores exactly these, under the Keras class names and stems.
    let m = Sequential::new(s, 1, &Device::flex()).unwrap();
    for w in m.weight_infos() {
        let data = m.weight(&w.layer, &w.param).unwrap();
        assert_eq!(data.shape().as_slice(), w.shape.as_slice(), "{}", w.key());
    }
    let classes: Vec<&str> = m.layers().iter().map(Layer::keras_class).collect();
    assert_eq!(
        classes,
        [
            "LSTM",
            "GRU",
            "GRU",
            "LSTM",
            "LayerNormalization",
            "ReLU",
            "PReLU",
            "PReLU",
            "LSTM",
            "PReLU"
        ]
    );
    assert!(m.summary().contains("re_lu (ReLU)"));
}

#[test]
fn configs_parse_from_keras_style_json_with_defaults() {
    let lstm: LayerSpec = serde_json::from_str(r#"{"name":"l","type":"lstm","units":8}"#).unwrap();
    assert_eq!(lstm.config, LayerConfig::Lstm(LstmConfig::new(8)));
    let gru: LayerSpec = serde_json::from_str(
        r#"{"name":"g","type":"gru","units":3,"reset_after":false,"return_sequences":true,
            "activation":{"name":"relu"},"recurrent_activation":{"name":"sigmoid"}}"#,
    )
    .unwrap();
    assert_eq!(
        gru.config,
        LayerConfig::Gru(
            GruConfig::new(3)
                .with_reset_after(false)
                .with_return_sequences(true)
                .with_activation(Activation::Relu)
        )
    );
    let relu: LayerSpec =
        serde_json::from_str(r#"{"name":"r","type":"relu","max_value":6,"negative_slope":0.1}"#)
            .unwrap();
    assert_eq!(
        relu.config,
        LayerConfig::Relu(
            ReluConfig::new()
                .with_max_value(6.0)
                .with_negative_slope(0.1)
        )
    );
    let prelu: LayerSpec =
        serde_json::from_str(r#"{"name":"p","type":"prelu","shared_axes":[1]}"#).unwrap();
    assert_eq!(
        prelu.config,
        LayerConfig::PRelu(PReluConfig::new().with_shared_axes(vec![1]))
    );
    let ln: LayerSpec =
        serde_json::from_str(r#"{"name":"n","type":"layer_normalization"}"#).unwrap();
    assert_eq!(ln.config, LayerConfig::LayerNorm(LayerNormConfig::new()));
    // Activations are stored as `{"name": ...}` objects, and everything round-trips.
    let text = serde_json::to_string(&lstm).unwrap();
    assert!(text.contains(r#""activation":{"name":"tanh"}"#), "{text}");
    assert!(
        text.contains(r#""recurrent_activation":{"name":"sigmoid"}"#),
        "{text}"
    );
    for spec in [lstm, gru, relu, prelu, ln] {
        let back: LayerSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
    }
}

// ---------------------------------------------------------------- ReLU

/// Keras' `activations.relu`, written out: `max_value` at or above it, `x` above the
/// threshold, `negative_slope · (x − threshold)` at or below it.
fn relu_oracle(x: f64, c: &ReluConfig) -> f64 {
    let y = if x > c.threshold {
        c.max_value.map_or(x, |m| x.min(m))
    } else {
        c.negative_slope * (x - c.threshold)
    };
    y + 0.0 // no -0.0
}

#[test]
fn relu_variants_match_keras_formula() {
    let configs = [
        ReluConfig::new(),
        ReluConfig::new().with_max_value(6.0),
        ReluConfig::new().with_negative_slope(0.5),
        ReluConfig::new().with_threshold(0.5),
        ReluConfig::new()
            .with_max_value(1.5)
            .with_negative_slope(0.25)
            .with_threshold(0.5),
        ReluConfig::new().with_max_value(0.0),
    ];
    // Values at and around the threshold and the cap, as a [1, 12, 1] sequence.
    let x: Vec<f32> = vec![
        -10.0, -2.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 6.0, 10.0,
    ];
    let device = Device::flex();
    for c in configs {
        let m = build(
            InputSpec::new(1).with_length(x.len()),
            vec![LayerConfig::Relu(c)],
            &device,
        );
        let (_, got) = run(&m, &x, [1, x.len(), 1], &device);
        let want: Vec<f32> = x
            .iter()
            .map(|&v| relu_oracle(v as f64, &c) as f32)
            .collect();
        assert_close(&got, &want, 1e-6, &format!("{c:?}"));
    }
    // Keras' docstring example.
    let c = ReluConfig::new()
        .with_max_value(10.0)
        .with_negative_slope(0.5);
    let m = build(
        InputSpec::new(5).with_length(1),
        vec![LayerConfig::Relu(c)],
        &device,
    );
    let (_, got) = run(&m, &[-10.0, -5.0, 0.0, 5.0, 10.0], [1, 1, 5], &device);
    assert_eq!(got, vec![-5.0, -2.5, 0.0, 5.0, 10.0]);
}

#[test]
fn relu_refuses_bad_numbers() {
    for (c, word) in [
        (ReluConfig::new().with_max_value(-1.0), "max_value"),
        (
            ReluConfig::new().with_negative_slope(-0.1),
            "negative_slope",
        ),
        (ReluConfig::new().with_threshold(f64::NAN), "threshold"),
        (ReluConfig::new().with_max_value(f64::INFINITY), "max_value"),
    ] {
        let s = spec(InputSpec::new(2).with_length(3), vec![LayerConfig::Relu(c)]);
        match Sequential::new(s, 1, &Device::flex()) {
            Err(LayerError::Config { layer, reason }) => {
                assert_eq!(layer, "re_lu");
                assert!(reason.contains(word), "{reason}");
            }
            other => panic!(
                "{c:?}: expected a config error, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

// ---------------------------------------------------------------- PReLU

/// PReLU on a `[B, L, C]` (channels-last) input: alpha indexed by (step, channel) with shared
/// axes collapsed to 0.
fn prelu_oracle(x: &[f32], [b, l, c]: [usize; 3], alpha: &[f32], al: usize, ac: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for bi in 0..b {
        for t in 0..l {
            for ci in 0..c {
                let v = x[(bi * l + t) * c + ci] as f64;
                let a = alpha[(t % al) * ac + ci % ac] as f64;
                out.push(if v >= 0.0 { v } else { a * v } as f32);
            }
        }
    }
    out
}

#[test]
fn prelu_matches_the_oracle_shared_and_unshared() {
    let (b, l, c) = (2, 4, 3);
    let x = pseudo_random(b * l * c, 21);
    let device = Device::flex();
    for (shared, al, ac) in [
        (None, l, c),
        (Some(vec![1]), 1, c),
        (Some(vec![2]), l, 1),
        (Some(vec![1, 2]), 1, 1),
    ] {
        let mut cfg = PReluConfig::new();
        cfg.shared_axes = shared.clone();
        let mut m = build(
            InputSpec::new(c).with_length(l),
            vec![LayerConfig::PRelu(cfg)],
            &device,
        );
        // Zeros at first (Keras' default): a ReLU.
        let (_, relu) = run(&m, &x, [b, l, c], &device);
        assert_close(
            &relu,
            &prelu_oracle(&x, [b, l, c], &vec![0.0; al * ac], al, ac),
            0.0,
            "init",
        );
        let alpha = randomize(&mut m, "p_re_lu", "alpha", &[al, ac], 22);
        assert_eq!(values(m.weight("p_re_lu", "alpha").unwrap()), alpha);
        let (_, got) = run(&m, &x, [b, l, c], &device);
        let want = prelu_oracle(&x, [b, l, c], &alpha, al, ac);
        assert_close(&got, &want, 1e-6, &format!("shared_axes {shared:?}"));
    }
}

/// Channels-first models: alpha is `[channels, length]` and axis 2 is the length.
#[test]
fn prelu_follows_a_channels_first_layout() {
    let (b, c, l) = (2, 3, 4);
    let device = Device::flex();
    let input = InputSpec::new(c)
        .with_length(l)
        .with_data_format(DataFormat::ChannelsFirst);
    let cfg = PReluConfig::new().with_shared_axes(vec![2]);
    let mut m = build(input, vec![LayerConfig::PRelu(cfg)], &device);
    assert_eq!(m.weight_infos()[0].shape, vec![c, 1]);
    let alpha = randomize(&mut m, "p_re_lu", "alpha", &[c, 1], 23);
    let x = pseudo_random(b * c * l, 24); // [B, C, L]
    let (_, got) = run(&m, &x, [b, c, l], &device);
    let want: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| if v >= 0.0 { v } else { alpha[(i / l) % c] * v })
        .collect();
    assert_close(&got, &want, 1e-6, "channels-first");
}

#[test]
fn prelu_on_flat_features() {
    let device = Device::flex();
    let (l, c) = (3, 4);
    let mut m = build(
        InputSpec::new(c).with_length(l),
        vec![LayerConfig::Flatten, LayerConfig::PRelu(PReluConfig::new())],
        &device,
    );
    let alpha = randomize(&mut m, "p_re_lu", "alpha", &[l * c], 25);
    let x = pseudo_random(2 * l * c, 26);
    let (dims, got) = run(&m, &x, [2, l, c], &device);
    assert_eq!(dims, vec![2, l * c]);
    let want: Vec<f32> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| if v >= 0.0 { v } else { alpha[i % (l * c)] * v })
        .collect();
    assert_close(&got, &want, 1e-6, "flat");
}

#[test]
fn prelu_needs_a_fixed_length_unless_it_is_shared() {
    let device = Device::flex();
    let s = spec(
        InputSpec::new(3),
        vec![LayerConfig::PRelu(PReluConfig::new())],
    );
    match Sequential::new(s, 1, &device) {
        Err(LayerError::Config { layer, reason }) => {
            assert_eq!(layer, "p_re_lu");
            assert!(reason.contains("fixed input length"), "{reason}");
        }
        other => panic!("expected a config error, got {:?}", other.map(|_| ())),
    }
    let shared = PReluConfig::new().with_shared_axes(vec![1]);
    let m = build(InputSpec::new(3), vec![LayerConfig::PRelu(shared)], &device);
    assert_eq!(m.weight_infos()[0].shape, vec![1, 3]);
    for l in [2, 5] {
        assert_eq!(
            run(&m, &pseudo_random(3 * l, 1), [1, l, 3], &device).0,
            vec![1, l, 3]
        );
    }
    for bad in [vec![0], vec![3]] {
        let s = spec(
            InputSpec::new(3).with_length(4),
            vec![LayerConfig::PRelu(
                PReluConfig::new().with_shared_axes(bad.clone()),
            )],
        );
        assert!(
            matches!(s.tensors(), Err(LayerError::Config { ref reason, .. }) if reason.contains("shared_axes")),
            "shared_axes {bad:?}"
        );
    }
}

// ---------------------------------------------------------------- LayerNormalization

/// Normalises each row of `rows × c` values: `(x − mean) / sqrt(var + eps) · gamma + beta`.
fn layer_norm_oracle(x: &[f64], c: usize, eps: f64, gamma: &[f64], beta: &[f64]) -> Vec<f32> {
    x.chunks(c)
        .flat_map(|row| {
            let mean = row.iter().sum::<f64>() / c as f64;
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / c as f64;
            row.iter()
                .enumerate()
                .map(move |(j, v)| ((v - mean) / (var + eps).sqrt() * gamma[j] + beta[j]) as f32)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn layer_norm_matches_the_oracle_per_step() {
    let (b, l, c) = (2, 5, 4);
    let device = Device::flex();
    let x: Vec<f32> = pseudo_random(b * l * c, 31)
        .iter()
        .map(|v| v * 3.0 + 1.0)
        .collect();
    for (axis, eps) in [(-1, 1e-3), (2, 0.5)] {
        let cfg = LayerNormConfig::new().with_axis(axis).with_epsilon(eps);
        let mut m = build(
            InputSpec::new(c).with_length(l),
            vec![LayerConfig::LayerNorm(cfg)],
            &device,
        );
        let gamma = randomize(&mut m, "layer_normalization", "gamma", &[c], 32);
        let beta = randomize(&mut m, "layer_normalization", "beta", &[c], 33);
        let (_, got) = run(&m, &x, [b, l, c], &device);
        let want = layer_norm_oracle(&f64s(&x), c, eps, &f64s(&gamma), &f64s(&beta));
        assert_close(&got, &want, 2e-5, &format!("axis {axis}"));
    }
    // Without center and scale: mean 0, population variance var / (var + eps) per step.
    let cfg = LayerNormConfig::new().with_center(false).with_scale(false);
    let m = build(
        InputSpec::new(c).with_length(l),
        vec![LayerConfig::LayerNorm(cfg)],
        &device,
    );
    assert!(m.weight_infos().is_empty());
    let (_, got) = run(&m, &x, [b, l, c], &device);
    let want = layer_norm_oracle(&f64s(&x), c, 1e-3, &[1.0; 4], &[0.0; 4]);
    assert_close(&got, &want, 2e-5, "no center, no scale");
}

#[test]
fn layer_norm_on_channels_first_and_flat_inputs() {
    let device = Device::flex();
    let (b, c, l) = (2, 3, 4);
    // Channels-first: axis 1 (or -2) is the channel axis; input [B, C, L].
    let input = InputSpec::new(c)
        .with_length(l)
        .with_data_format(DataFormat::ChannelsFirst);
    let x = pseudo_random(b * c * l, 34);
    for axis in [1, -2] {
        let cfg = LayerNormConfig::new().with_axis(axis);
        let mut m = build(input, vec![LayerConfig::LayerNorm(cfg)], &device);
        let gamma = randomize(&mut m, "layer_normalization", "gamma", &[c], 35);
        let beta = randomize(&mut m, "layer_normalization", "beta", &[c], 36);
        let (_, got) = run(&m, &x, [b, c, l], &device);
        // Oracle on the transposed [B, L, C] rows, transposed back.
        let mut rows = Vec::new();
        for bi in 0..b {
            for t in 0..l {
                for ci in 0..c {
                    rows.push(x[(bi * c + ci) * l + t] as f64);
                }
            }
        }
        let norm = layer_norm_oracle(&rows, c, 1e-3, &f64s(&gamma), &f64s(&beta));
        let mut want = vec![0.0; x.len()];
        for bi in 0..b {
            for t in 0..l {
                for ci in 0..c {
                    want[(bi * c + ci) * l + t] = norm[(bi * l + t) * c + ci];
                }
            }
        }
        assert_close(&got, &want, 2e-5, &format!("channels-first axis {axis}"));
    }
    // Flat: over the features.
    let mut m = build(
        InputSpec::new(c).with_length(l),
        vec![
            LayerConfig::Flatten,
            LayerConfig::LayerNorm(LayerNormConfig::new()),
        ],
        &device,
    );
    let gamma = randomize(&mut m, "layer_normalization", "gamma", &[c * l], 37);
    let (_, got) = run(&m, &x, [b, l, c], &device);
    let want = layer_norm_oracle(&f64s(&x), c * l, 1e-3, &f64s(&gamma), &vec![0.0; c * l]);
    assert_close(&got, &want, 2e-5, "flat");
}

#[test]
fn layer_norm_refuses_other_axes_and_rms_scaling() {
    let last = InputSpec::new(3).with_length(4);
    let first = last.with_data_format(DataFormat::ChannelsFirst);
    let mut rms = LayerNormConfig::new();
    rms.rms_scaling = true;
    for (input, cfg, word) in [
        (last, LayerNormConfig::new().with_axis(1), "axis=1"),
        (last, LayerNormConfig::new().with_axis(0), "axis=0"),
        (last, LayerNormConfig::new().with_axis(3), "axis=3"),
        (first, LayerNormConfig::new(), "axis=-1"),
        (last, rms, "rms_scaling"),
        (last, LayerNormConfig::new().with_epsilon(0.0), "epsilon"),
    ] {
        let s = spec(input, vec![LayerConfig::LayerNorm(cfg)]);
        match s.infer_shapes() {
            Err(LayerError::Config { layer, reason }) => {
                assert_eq!(layer, "layer_normalization");
                assert!(reason.contains(word), "{word}: {reason}");
            }
            other => panic!("{word}: expected a config error, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- gradients

/// The gradient of `layer.param` (the tensor `t`), checked finite and not all zero.
fn grad_of<const D: usize>(
    t: Tensor<D>,
    grads: &burn::tensor::Gradients,
    layer: &str,
    param: &str,
) -> Vec<f32> {
    let what = format!("{layer}.{param}");
    let g = values(
        t.grad(grads)
            .unwrap_or_else(|| panic!("{what}: no gradient"))
            .into_data(),
    );
    assert!(
        g.iter().all(|v| v.is_finite()),
        "{what}: non-finite gradient"
    );
    assert!(g.iter().any(|&v| v != 0.0), "{what}: all-zero gradient");
    g
}

/// [`grad_of`] the three tensors of a recurrent layer (which must have a bias).
fn recurrent_grads<const D: usize>(
    grads: &burn::tensor::Gradients,
    layer: &str,
    kernel: &Param<Tensor<2>>,
    recurrent_kernel: &Param<Tensor<2>>,
    bias: &Option<Param<Tensor<D>>>,
) {
    grad_of(kernel.val(), grads, layer, "kernel");
    grad_of(recurrent_kernel.val(), grads, layer, "recurrent_kernel");
    grad_of(bias.as_ref().unwrap().val(), grads, layer, "bias");
}

/// A training-mode forward on an autodiff device backpropagates into every recurrent weight
/// (and into PReLU's alpha and LayerNorm's gamma behind them).
#[test]
fn gradients_reach_recurrent_weights() {
    let device = Device::flex().autodiff();
    let (b, l, c) = (3, 6, 2);
    let m = build(
        InputSpec::new(c).with_length(l),
        vec![
            LayerConfig::Gru(GruConfig::new(4).with_return_sequences(true)),
            LayerConfig::Gru(
                GruConfig::new(3)
                    .with_reset_after(false)
                    .with_return_sequences(true),
            ),
            LayerConfig::LayerNorm(LayerNormConfig::new()),
            LayerConfig::PRelu(PReluConfig::new().with_shared_axes(vec![1])),
            LayerConfig::Lstm(LstmConfig::new(2)),
        ],
        &device,
    );
    let x = tensor3(&pseudo_random(b * l * c, 41), [b, l, c], &device);
    let y = m.forward_train(x).unwrap().into_flat().unwrap();
    let grads = (y.clone() * y).mean().backward();
    let mut checked = 0;
    for layer in m.layers() {
        let name = layer.name().to_string();
        match layer {
            Layer::Lstm(l) => {
                recurrent_grads(&grads, &name, &l.kernel, &l.recurrent_kernel, &l.bias)
            }
            Layer::Gru(g) => {
                recurrent_grads(&grads, &name, &g.kernel, &g.recurrent_kernel, &g.bias)
            }
            Layer::PRelu(p) => {
                // alpha starts at 0, so only its gradient (not the input's) is non-zero here.
                grad_of(p.alpha.val(), &grads, &name, "alpha");
            }
            Layer::LayerNorm(n) => {
                grad_of(n.gamma.as_ref().unwrap().val(), &grads, &name, "gamma");
                grad_of(n.beta.as_ref().unwrap().val(), &grads, &name, "beta");
            }
            _ => continue,
        }
        checked += 1;
    }
    assert_eq!(checked, 5);
}

/// One LSTM kernel entry's gradient agrees with a central finite difference of the scalar
/// oracle (the autodiff path computes the derivative of the Keras equations).
#[test]
fn lstm_gradient_matches_finite_difference_of_the_oracle() {
    let device = Device::flex().autodiff();
    let (l, c, u) = (4, 2, 3);
    let mut m = build_one(c, l, LayerConfig::Lstm(LstmConfig::new(u)), &device);
    let (k, r) = randomize_kernels(&mut m, "lstm", [c, u, 4], 51);
    let bias = randomize(&mut m, "lstm", "bias", &[4 * u], 53);
    let x = pseudo_random(l * c, 54);
    let y = m
        .forward_train(tensor3(&x, [1, l, c], &device))
        .unwrap()
        .into_flat()
        .unwrap();
    let grads = y.sum().backward();
    let Layer::Lstm(layer) = &m.layers()[0] else {
        panic!("not an LSTM")
    };
    let gk = values(layer.kernel.val().grad(&grads).unwrap().into_data());
    let gr = values(
        layer
            .recurrent_kernel
            .val()
            .grad(&grads)
            .unwrap()
            .into_data(),
    );
    let loss = |k: &[f32], r: &[f32]| -> f64 {
        lstm_oracle(&x, [1, l, c], u, k, r, Some(&bias))
            .1
            .iter()
            .sum()
    };
    let h = 1e-3f32;
    let entries: [(&str, &[f32], [usize; 3]); 2] = [
        ("kernel", &gk, [0, 5, 4 * u + 7]),
        ("recurrent_kernel", &gr, [1, 4 * u + 2, 2 * 4 * u + 11]),
    ];
    for (param, grad, indices) in entries {
        for idx in indices {
            // The loss with entry `idx` of `param` moved by `delta`.
            let moved = |delta: f32| {
                let (mut k, mut r) = (k.clone(), r.clone());
                let w = if param == "kernel" { &mut k } else { &mut r };
                w[idx] += delta;
                loss(&k, &r)
            };
            let fd = (moved(h) - moved(-h)) / (2.0 * h as f64);
            assert!(
                (grad[idx] as f64 - fd).abs() < 1e-3,
                "{param}[{idx}]: {} vs {fd}",
                grad[idx]
            );
        }
    }
}

// ---------------------------------------------------------------- errors

#[test]
fn recurrent_layers_refuse_bad_configs_and_inputs() {
    let device = Device::flex();
    let input = InputSpec::new(3).with_length(5);
    let config_error = |layers: Vec<LayerConfig>, name: &str, word: &str| match Sequential::new(
        spec(input, layers),
        1,
        &device,
    ) {
        Err(LayerError::Config { layer, reason }) => {
            assert_eq!(layer, name);
            assert!(reason.contains(word), "{name}: {reason}");
        }
        other => panic!(
            "{name}: expected a config error, got {:?}",
            other.map(|_| ())
        ),
    };
    let leaky_nan = Activation::LeakyRelu { alpha: f64::NAN };
    let elu_inf = Activation::Elu {
        alpha: f64::INFINITY,
    };
    for (layer, name, word) in [
        (LayerConfig::Lstm(LstmConfig::new(0)), "lstm", "units"),
        (LayerConfig::Gru(GruConfig::new(0)), "gru", "units"),
        (
            LayerConfig::Lstm(LstmConfig::new(2).with_activation(leaky_nan)),
            "lstm",
            "activation",
        ),
        (
            LayerConfig::Gru(GruConfig::new(2).with_recurrent_activation(elu_inf)),
            "gru",
            "recurrent_activation",
        ),
    ] {
        config_error(vec![layer], name, word);
    }
    // A flat input is the wrong kind for a recurrent layer.
    for layer in [
        LayerConfig::Lstm(LstmConfig::new(2)),
        LayerConfig::Gru(GruConfig::new(2)),
    ] {
        let s = spec(input, vec![LayerConfig::GlobalAvgPool1d, layer]);
        assert!(
            matches!(s.infer_shapes(), Err(LayerError::InputShape { .. })),
            "{:?}",
            s.infer_shapes()
        );
    }
    // Running a built layer on the wrong value: a flat tensor, or the wrong channel count.
    let m = build(input, vec![LayerConfig::Lstm(LstmConfig::new(2))], &device);
    let flat = Value::Flat(burn::tensor::Tensor::zeros([2, 3], &device));
    assert!(matches!(
        m.layers()[0].forward(flat, widen_layers::Mode::Inference),
        Err(LayerError::InputShape { ref layer, .. }) if layer == "lstm"
    ));
    let wrong = Value::Seq(burn::tensor::Tensor::zeros([2, 4, 5], &device));
    assert!(matches!(
        m.layers()[0].forward(wrong, widen_layers::Mode::Inference),
        Err(LayerError::ChannelMismatch {
            expected: 3,
            got: 4,
            ..
        })
    ));
    // Setting a tensor of the wrong shape, or one the layer does not have.
    let mut m = m;
    assert!(matches!(
        m.set_weight(
            "lstm",
            "kernel",
            TensorData::new(vec![0.0f32; 6], vec![3, 2])
        ),
        Err(LayerError::WeightShape { .. })
    ));
    assert!(matches!(
        m.set_weight("lstm", "alpha", TensorData::new(vec![0.0f32; 1], vec![1])),
        Err(LayerError::Config { .. })
    ));
}
