//! Keras parity on every backend: the models of crates/layers/tests/fixtures/keras_models.json
//! (format: tools/fixtures/README.md), their Keras weights loaded, outputs compared.

use std::collections::BTreeMap;

use burn::tensor::{Device, TensorData};
use serde::Deserialize;
use serde_json::Value as Json;
use widen::layers::{
    Activation, BatchNormConfig, Conv1dConfig, DenseConfig, DropoutConfig, InputSpec, LayerConfig,
    ModelSpec, PaddingMode, PoolConfig, Sequential,
};

use crate::common::{assert_close, backends, tensor3, values};

#[derive(Deserialize)]
struct Fixture {
    models: Vec<Model>,
}

#[derive(Deserialize)]
struct Weight {
    shape: Vec<usize>,
    values: Vec<f32>,
}

#[derive(Deserialize)]
struct KerasLayer {
    class: String,
    name: String,
    config: BTreeMap<String, Json>,
    weights: BTreeMap<String, Weight>,
}

#[derive(Deserialize)]
struct Model {
    name: String,
    layers: Vec<KerasLayer>,
    input_shape: Vec<usize>,
    input: Vec<f32>,
    output_shape: Vec<usize>,
    output_inference: Vec<f32>,
    bn_layer: Option<String>,
    bn_input_training: Option<Vec<f32>>,
    bn_input_training_shape: Option<Vec<usize>>,
    output_training: Option<Vec<f32>>,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!(
        "../../../layers/tests/fixtures/keras_models.json"
    ))
    .unwrap()
}

fn int(c: &BTreeMap<String, Json>, k: &str) -> usize {
    c[k].as_u64().unwrap() as usize
}
fn float(c: &BTreeMap<String, Json>, k: &str) -> f64 {
    c[k].as_f64().unwrap()
}
fn text<'a>(c: &'a BTreeMap<String, Json>, k: &str) -> &'a str {
    c[k].as_str().unwrap()
}
fn flag(c: &BTreeMap<String, Json>, k: &str) -> bool {
    c[k].as_bool().unwrap()
}
fn padding(s: &str) -> PaddingMode {
    match s {
        "valid" => PaddingMode::Valid,
        "same" => PaddingMode::Same,
        "causal" => PaddingMode::Causal,
        other => panic!("padding {other}"),
    }
}

fn layer_config(l: &KerasLayer) -> LayerConfig {
    let c = &l.config;
    match l.class.as_str() {
        "Conv1D" => LayerConfig::Conv1d(
            Conv1dConfig::new(int(c, "filters"), int(c, "kernel_size"))
                .with_strides(int(c, "strides"))
                .with_dilation_rate(int(c, "dilation_rate"))
                .with_groups(int(c, "groups"))
                .with_padding(padding(text(c, "padding")))
                .with_activation(Activation::from_keras(text(c, "activation")).unwrap())
                .with_bias(flag(c, "use_bias")),
        ),
        "BatchNormalization" => LayerConfig::BatchNorm1d(
            BatchNormConfig::keras()
                .with_momentum(float(c, "momentum"))
                .with_epsilon(float(c, "epsilon"))
                .with_center(flag(c, "center"))
                .with_scale(flag(c, "scale")),
        ),
        "GlobalMaxPooling1D" => LayerConfig::GlobalMaxPool1d,
        "GlobalAveragePooling1D" => LayerConfig::GlobalAvgPool1d,
        "MaxPooling1D" | "AveragePooling1D" => {
            let p = PoolConfig::new(int(c, "pool_size"))
                .with_strides(int(c, "strides"))
                .with_padding(padding(text(c, "padding")));
            if l.class == "MaxPooling1D" {
                LayerConfig::MaxPool1d(p)
            } else {
                LayerConfig::AvgPool1d(p)
            }
        }
        "Flatten" => LayerConfig::Flatten,
        "Dense" => LayerConfig::Dense(
            DenseConfig::new(int(c, "units"))
                .with_activation(Activation::from_keras(text(c, "activation")).unwrap())
                .with_bias(flag(c, "use_bias")),
        ),
        "Dropout" => LayerConfig::Dropout(DropoutConfig {
            rate: float(c, "rate"),
        }),
        other => panic!("fixture layer {other} not mapped"),
    }
}

/// Keras `[k, in, out]` → widen `[out, in, k]`, on the host.
fn conv_kernel(w: &Weight) -> TensorData {
    let [k, i, o] = [w.shape[0], w.shape[1], w.shape[2]];
    let mut out = vec![0.0f32; k * i * o];
    for a in 0..k {
        for b in 0..i {
            for c in 0..o {
                out[(c * i + b) * k + a] = w.values[(a * i + b) * o + c];
            }
        }
    }
    TensorData::new(out, [o, i, k])
}

fn build(m: &Model, device: &Device) -> Sequential {
    let input = InputSpec::new(m.input_shape[2]).with_length(m.input_shape[1]);
    let mut spec = ModelSpec::new(input);
    for l in &m.layers {
        spec = spec.push_named(&l.name, layer_config(l));
    }
    let mut model = Sequential::new(spec, 0, device).unwrap();
    for l in &m.layers {
        for (name, w) in &l.weights {
            let (param, data) = match (l.class.as_str(), name.as_str()) {
                ("Conv1D", "kernel") => ("weight", conv_kernel(w)),
                (_, "kernel") => ("weight", TensorData::new(w.values.clone(), w.shape.clone())),
                (_, other) => (other, TensorData::new(w.values.clone(), w.shape.clone())),
            };
            model.set_weight(&l.name, param, data).unwrap();
        }
    }
    model
}

fn dims3(shape: &[usize]) -> [usize; 3] {
    [shape[0], shape[1], shape[2]]
}

/// Keras' inference outputs within 1e-5 (the bound the CPU suite holds them to) on every
/// backend.
#[test]
fn inference_matches_keras() {
    let fixture = fixture();
    assert_eq!(fixture.models.len(), 5);
    for (backend, device) in backends() {
        for m in &fixture.models {
            let model = build(m, &device);
            let x = tensor3(&m.input, dims3(&m.input_shape), &device);
            let y = model.forward(x).unwrap();
            assert_eq!(y.dims(), m.output_shape, "{} on {backend}", m.name);
            let what = format!("{} inference on {backend}", m.name);
            assert_close(&values(y), &m.output_inference, 1e-5, &what);
        }
    }
}

/// Training mode (batch statistics). BatchNorm divides by the batch std, so rounding in the
/// convolutions before it is multiplied by |gamma| / std per channel; the tolerance is 1e-5
/// times that gain, computed from Keras' own BN input.
#[test]
fn training_forward_matches_keras() {
    let fixture = fixture();
    let mut checked = 0;
    for (backend, device) in backends() {
        for m in fixture.models.iter().filter(|m| m.bn_layer.is_some()) {
            let bn = m.bn_layer.as_deref().unwrap();
            let bn_in = m.bn_input_training.as_ref().unwrap();
            let c = *m.bn_input_training_shape.as_ref().unwrap().last().unwrap();
            let n = bn_in.len() / c;
            let gamma = &m.layers.iter().find(|l| l.name == bn).unwrap().weights["gamma"].values;
            let gain: Vec<f32> = (0..c)
                .map(|ch| {
                    let xs = bn_in.iter().skip(ch).step_by(c).map(|&v| v as f64);
                    let mean = xs.clone().sum::<f64>() / n as f64;
                    let var = xs.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
                    ((gamma[ch] as f64).abs() / (var + 1e-3).sqrt()).max(1.0) as f32
                })
                .collect();
            let model = build(m, &device);
            let x = tensor3(&m.input, dims3(&m.input_shape), &device);
            let got = values(model.forward_train(x).unwrap());
            let want = m.output_training.as_ref().unwrap();
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let tol = 1e-5 * gain[i % c];
                assert!(
                    (g - w).abs() <= tol,
                    "{} training on {backend} at {i}: {g} vs Keras {w} (tol {tol})",
                    m.name
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "the BatchNorm models were checked");
}
