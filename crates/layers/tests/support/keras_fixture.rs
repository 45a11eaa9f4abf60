//! The Keras model fixtures (crates/layers/tests/fixtures/keras_models.json, made by
//! tools/fixtures/gen_model_fixtures.py; format in tools/fixtures/README.md) and how their layers
//! and weights map onto widen. Shared by widen-layers' suite and the facade's backend suite
//! (`#[path]`-included), so the mapping is written once.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use burn::tensor::{Device, TensorData};
use serde::Deserialize;
use serde_json::Value as Json;
use widen_layers::{
    Activation, BatchNormConfig, Conv1dConfig, DenseConfig, DropoutConfig, InputSpec, LayerConfig,
    ModelSpec, PaddingMode, PoolConfig, Sequential,
};

#[derive(Deserialize)]
pub struct Fixture {
    pub models: Vec<Model>,
}

#[derive(Deserialize)]
pub struct Weight {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

#[derive(Deserialize)]
pub struct KerasLayer {
    pub class: String,
    pub name: String,
    pub config: BTreeMap<String, Json>,
    pub weights: BTreeMap<String, Weight>,
}

#[derive(Deserialize)]
pub struct Model {
    pub name: String,
    pub layers: Vec<KerasLayer>,
    pub input_shape: Vec<usize>,
    pub input: Vec<f32>,
    pub output_shape: Vec<usize>,
    pub output_inference: Vec<f32>,
    pub bn_layer: Option<String>,
    pub bn_input_training: Option<Vec<f32>>,
    pub bn_input_training_shape: Option<Vec<usize>>,
    pub output_training: Option<Vec<f32>>,
    pub moving_mean_after: Option<Vec<f32>>,
    pub moving_variance_after: Option<Vec<f32>>,
}

pub fn fixture() -> Fixture {
    serde_json::from_str(include_str!("../fixtures/keras_models.json")).unwrap()
}

pub fn int(c: &BTreeMap<String, Json>, k: &str) -> usize {
    c[k].as_u64().unwrap() as usize
}
pub fn float(c: &BTreeMap<String, Json>, k: &str) -> f64 {
    c[k].as_f64().unwrap()
}
pub fn text<'a>(c: &'a BTreeMap<String, Json>, k: &str) -> &'a str {
    c[k].as_str().unwrap()
}
pub fn flag(c: &BTreeMap<String, Json>, k: &str) -> bool {
    c[k].as_bool().unwrap()
}
pub fn padding(s: &str) -> PaddingMode {
    match s {
        "valid" => PaddingMode::Valid,
        "same" => PaddingMode::Same,
        "causal" => PaddingMode::Causal,
        other => panic!("padding {other}"),
    }
}

pub fn layer_config(l: &KerasLayer) -> LayerConfig {
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
pub fn conv_kernel(w: &Weight) -> TensorData {
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

pub fn build(m: &Model, device: &Device) -> Sequential {
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

pub fn dims3(shape: &[usize]) -> [usize; 3] {
    [shape[0], shape[1], shape[2]]
}

/// Per channel, how much BatchNorm multiplies rounding in its input: `|gamma| / sqrt(var + eps)`
/// on Keras' BN input of the training call (at least 1). Conv rounding on both sides (~1e-6)
/// reaches the training-mode output scaled by this, so tolerances there are scaled by it.
pub fn bn_gain(m: &Model) -> Vec<f32> {
    let bn = m.bn_layer.as_deref().unwrap();
    let bn_in = m.bn_input_training.as_ref().unwrap();
    let c = *m.bn_input_training_shape.as_ref().unwrap().last().unwrap();
    let n = bn_in.len() / c;
    let gamma = &m.layers.iter().find(|l| l.name == bn).unwrap().weights["gamma"].values;
    (0..c)
        .map(|ch| {
            let xs = bn_in.iter().skip(ch).step_by(c).map(|&v| v as f64);
            let mean = xs.clone().sum::<f64>() / n as f64;
            let var = xs.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            ((gamma[ch] as f64).abs() / (var + 1e-3).sqrt()).max(1.0) as f32
        })
        .collect()
}
