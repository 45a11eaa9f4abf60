//! Keras parity: models built in TF 2.21 / Keras 3 by tools/fixtures/gen_model_fixtures.py, their
//! weights moved into widen, outputs compared. Tests never need Python.

use std::collections::BTreeMap;

use burn::tensor::{Device, TensorData};
use serde::Deserialize;
use serde_json::Value as Json;
use widen_layers::{
    Activation, BatchNormConfig, Conv1dConfig, DenseConfig, DropoutConfig, InputSpec, LayerConfig,
    Mode, ModelSpec, PaddingMode, PoolConfig, Sequential, Value,
};

use crate::common::{assert_close, devices, tensor3, values};

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
    moving_mean_after: Option<Vec<f32>>,
    moving_variance_after: Option<Vec<f32>>,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("../fixtures/keras_models.json")).unwrap()
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
                .with_bias(c["use_bias"].as_bool().unwrap()),
        ),
        "BatchNormalization" => LayerConfig::BatchNorm1d(
            BatchNormConfig::keras()
                .with_momentum(float(c, "momentum"))
                .with_epsilon(float(c, "epsilon"))
                .with_center(c["center"].as_bool().unwrap())
                .with_scale(c["scale"].as_bool().unwrap()),
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
                .with_bias(c["use_bias"].as_bool().unwrap()),
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
                ("Dense", "kernel") => {
                    ("weight", TensorData::new(w.values.clone(), w.shape.clone()))
                }
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

fn output_values(v: Value) -> (Vec<usize>, Vec<f32>) {
    let dims = v.dims();
    let data = match v {
        Value::Seq(t) => t.into_data(),
        Value::Flat(t) => t.into_data(),
    };
    (dims, values(data))
}

#[test]
fn inference_matches_keras() {
    let fixture = fixture();
    assert_eq!(fixture.models.len(), 5);
    for m in &fixture.models {
        for (backend, device) in devices() {
            let model = build(m, &device);
            let x = tensor3(&m.input, dims3(&m.input_shape), &device);
            let (dims, got) = output_values(model.forward(x).unwrap());
            assert_eq!(dims, m.output_shape, "{} on {backend}", m.name);
            assert_close(
                &got,
                &m.output_inference,
                1e-5,
                &format!("{} on {backend}", m.name),
            );
        }
    }
}

/// BatchNorm in training mode, fed Keras' own BN input (so conv rounding does not enter):
/// output after the pooling head and the moving-statistics update within 1e-5 of Keras.
#[test]
fn batch_norm_training_matches_keras() {
    let fixture = fixture();
    let mut checked = 0;
    for m in fixture.models.iter().filter(|m| m.bn_layer.is_some()) {
        let bn = m.bn_layer.as_deref().unwrap();
        for (backend, device) in devices() {
            let model = build(m, &device);
            let start = model.layer_index(bn).unwrap();
            // Keras' BN input is channels-last [batch, length, channels].
            let bn_in = tensor3(
                m.bn_input_training.as_ref().unwrap(),
                dims3(m.bn_input_training_shape.as_ref().unwrap()),
                &device,
            );
            let mut value = Value::Seq(bn_in.swap_dims(1, 2));
            for layer in &model.layers[start..] {
                value = layer.forward(value, Mode::Training).unwrap();
            }
            let (_, got) = output_values(value);
            let what = format!("{} BN training on {backend}", m.name);
            assert_close(&got, m.output_training.as_ref().unwrap(), 1e-5, &what);
            let mean = values(model.weight(bn, "moving_mean").unwrap());
            let var = values(model.weight(bn, "moving_variance").unwrap());
            assert_close(
                &mean,
                m.moving_mean_after.as_ref().unwrap(),
                1e-5,
                &format!("{what}: moving mean"),
            );
            assert_close(
                &var,
                m.moving_variance_after.as_ref().unwrap(),
                1e-5,
                &format!("{what}: moving variance"),
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * 2);
}

/// The whole model in training mode. BatchNorm divides by the batch std, so float rounding
/// in the convolutions before it (~1e-6, on both sides) is multiplied by gamma/std per channel:
/// up to 14x in ex3, where widen is 2.5e-6 and Keras 7.5e-6 from the float64 result. The
/// tolerance is 1e-5 times that gain, computed from the batch statistics.
#[test]
fn training_forward_matches_keras() {
    let fixture = fixture();
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
        for (backend, device) in devices() {
            let model = build(m, &device);
            let x = tensor3(&m.input, dims3(&m.input_shape), &device);
            let (_, got) = output_values(model.forward_train(x).unwrap());
            let want = m.output_training.as_ref().unwrap();
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let tol = 1e-5 * gain[i % c];
                assert!(
                    (g - w).abs() <= tol,
                    "{} on {backend} at {i}: {g} vs Keras {w} (tol {tol})",
                    m.name
                );
            }
        }
    }
}

#[test]
fn frozen_batch_norm_runs_in_inference_mode() {
    // Keras: a layer with trainable = False runs in inference mode even when training=True.
    let fixture = fixture();
    let m = &fixture.models[0];
    let device = Device::flex();
    let model = build(m, &device)
        .freeze_layer("batch_normalization")
        .unwrap();
    let x = tensor3(&m.input, dims3(&m.input_shape), &device);
    let before = values(model.weight("batch_normalization", "moving_mean").unwrap());
    let (_, got) = output_values(model.forward_train(x).unwrap());
    assert_close(
        &got,
        &m.output_inference,
        1e-5,
        "frozen BN in training mode",
    );
    let after = values(model.weight("batch_normalization", "moving_mean").unwrap());
    assert_eq!(
        before, after,
        "a frozen layer's moving statistics must not move"
    );
}
