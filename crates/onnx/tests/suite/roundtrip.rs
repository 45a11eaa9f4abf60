//! export → import gives the same architecture (up to names and what ONNX does not carry:
//! initializers, BatchNorm's training momentum, dropout) and the same outputs, for the zoo
//! models in both layouts, fixed and dynamic lengths, and chains with every exportable layer.

use burn::tensor::TensorData;
use serde_json::Value as Json;
use widen_layers::zoo::{self, FcnConfig, InceptionTimeConfig, ResNetConfig};
use widen_layers::{
    Activation, BatchNormConfig, ConcatenateConfig, Conv1dConfig, CroppingConfig, DataFormat,
    DenseConfig, DropoutConfig, InputSpec, LayerConfig, MergeConfig, Model, ModelSpec,
    NormalizationConfig, PaddingMode, PoolConfig, ReluConfig, SpatialDropoutConfig,
    UpSamplingConfig, ZeroPaddingConfig,
};

use crate::common::{device, input_for, max_diff, pseudo_random, run};

/// Builds `spec` with non-zero biases and non-trivial BatchNorm and Normalization statistics.
fn build(spec: ModelSpec, seed: u64) -> Model {
    let mut model = Model::new(spec, seed, &device()).unwrap();
    let layers = model.spec().layers.clone();
    for (i, l) in layers.iter().enumerate() {
        let params: Vec<(String, Vec<usize>)> = model
            .weight_infos()
            .into_iter()
            .filter(|w| w.layer == l.name)
            .map(|w| (w.param, w.shape))
            .collect();
        for (param, shape) in params {
            let n: usize = shape.iter().product();
            let r = pseudo_random(n, seed * 1000 + i as u64 * 7 + param.len() as u64);
            let v: Vec<f32> = match (&l.config, param.as_str()) {
                (LayerConfig::BatchNorm1d(_), "moving_variance")
                | (LayerConfig::Normalization(_), "variance") => {
                    r.iter().map(|x| 0.5 + x * x * 2.0).collect()
                }
                (LayerConfig::BatchNorm1d(_) | LayerConfig::Normalization(_), _) | (_, "bias") => {
                    r.iter().map(|x| x * 0.5).collect()
                }
                _ => continue,
            };
            model
                .set_weight(&l.name, &param, TensorData::new(v, shape))
                .unwrap();
        }
    }
    model
}

/// The spec as a comparable value: layer names replaced by positions; dropout and linear
/// activations bypassed and activations folded into the conv or dense before them (what the
/// importer does); the fields ONNX does not carry dropped; `same` on a window that pads nothing
/// read as `valid`.
fn canonical(spec: &ModelSpec) -> Json {
    let mut spec = spec.clone().explicit();
    let skip: Vec<String> = spec
        .layers
        .iter()
        .filter(|l| {
            matches!(
                l.config,
                LayerConfig::Dropout(_)
                    | LayerConfig::SpatialDropout1d(_)
                    | LayerConfig::Activation(Activation::Linear)
            )
        })
        .map(|l| l.name.clone())
        .collect();
    for name in skip {
        assert!(spec.bypass(&name));
    }
    // A plain ReLU layer is ONNX's Relu, which imports as the activation.
    for l in &mut spec.layers {
        if l.config == LayerConfig::Relu(ReluConfig::new()) {
            l.config = LayerConfig::Activation(Activation::Relu);
        }
    }
    // Fold activations as the importer does.
    loop {
        let mut folded = false;
        for i in 0..spec.layers.len() {
            let LayerConfig::Activation(a) = spec.layers[i].config else {
                continue;
            };
            let from = spec.layers[i].inbound[0].clone();
            if spec.consumers(&from).len() != 1 {
                continue;
            }
            let Some(j) = spec.layers.iter().position(|l| l.name == from) else {
                continue;
            };
            let slot = match &mut spec.layers[j].config {
                LayerConfig::Conv1d(c) if c.activation == Activation::Linear => &mut c.activation,
                LayerConfig::Dense(d) if d.activation == Activation::Linear => &mut d.activation,
                _ => continue,
            };
            *slot = a;
            let name = spec.layers[i].name.clone();
            assert!(spec.bypass(&name));
            folded = true;
            break;
        }
        if !folded {
            break;
        }
    }
    let index = |name: &str, spec: &ModelSpec| -> Json {
        if name == spec.input_name {
            Json::from(-1)
        } else {
            Json::from(spec.layers.iter().position(|l| l.name == name).unwrap())
        }
    };
    let mut layers = Vec::new();
    for l in &spec.layers {
        let mut v = serde_json::to_value(l).unwrap();
        let o = v.as_object_mut().unwrap();
        o.insert(
            "inbound".into(),
            Json::Array(l.inbound.iter().map(|n| index(n, &spec)).collect()),
        );
        for key in [
            "name",
            "kernel_initializer",
            "bias_initializer",
            "data_format",
            "momentum",
            "momentum_on",
            "unbiased_moving_variance",
            "center",
            "scale",
            "mean",
            "variance",
            "axis",
        ] {
            o.remove(key);
        }
        if let LayerConfig::Conv1d(c) = &l.config
            && c.kernel_size == 1
        {
            o.insert("padding".into(), Json::from("valid"));
        }
        layers.push(v);
    }
    serde_json::json!({
        "channels": spec.input.channels,
        "length": spec.input.length,
        "format": serde_json::to_value(spec.input.data_format).unwrap(),
        "layers": layers,
    })
}

/// export → import → build; the specs agree and the outputs within `tol` on two batches.
fn round_trip(spec: ModelSpec, seed: u64) {
    let model = build(spec, seed);
    let bytes = widen_onnx::export(&model).unwrap_or_else(|e| panic!("export: {e}"));
    let (spec2, weights) = widen_onnx::import(&bytes)
        .unwrap_or_else(|e| panic!("import of the export: {e}\n{}", model.summary()));
    let (want, got) = (canonical(model.spec()), canonical(&spec2));
    if want != got {
        let (want, got) = (want.to_string(), got.to_string());
        let at = want
            .bytes()
            .zip(got.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        let from = at.saturating_sub(300);
        panic!(
            "specs differ\nexported:  …{}\nimported: …{}\n{}",
            &want[from..(at + 200).min(want.len())],
            &got[from..(at + 200).min(got.len())],
            model.summary()
        );
    }
    let back = widen_onnx::build(spec2, weights, &device()).unwrap();
    // `WIDEN_ONNX_DUMP=DIR`: keep each export with an input and widen's output, for
    // tools/fixtures/check_onnx_exports.py to run through onnx.checker and onnxruntime.
    if let Ok(dir) = std::env::var("WIDEN_ONNX_DUMP") {
        let (x, dims) = input_for(&model, 2, 29, 99);
        let (y_dims, y) = run(&model, &x, dims);
        crate::common::dump(
            std::path::Path::new(&dir),
            &bytes,
            (&dims, &x),
            (&y_dims, &y),
        );
    }
    for (batch, length, s) in [(3, 40, 1), (1, 33, 2)] {
        let (x, dims) = input_for(&model, batch, length, seed + s);
        let (d1, y1) = run(&model, &x, dims);
        let (d2, y2) = run(&back, &x, dims);
        assert_eq!(d1, d2);
        let diff = max_diff(&y1, &y2);
        assert!(
            diff <= 1e-6,
            "outputs differ by {diff}\n{}",
            model.summary()
        );
    }
}

/// Both layouts of `channels` channels, `length` steps long and then of a dynamic length.
fn fixed_and_dynamic(channels: usize, length: usize) -> impl Iterator<Item = InputSpec> {
    layouts(InputSpec::new(channels).with_length(length))
        .into_iter()
        .chain(layouts(InputSpec::new(channels)))
}

fn layouts(input: InputSpec) -> [InputSpec; 2] {
    [
        input.with_data_format(DataFormat::ChannelsLast),
        input.with_data_format(DataFormat::ChannelsFirst),
    ]
}

#[test]
fn fcn_round_trips() {
    let config = FcnConfig {
        filters: [8, 6, 4],
        kernels: [8, 5, 3],
    };
    for input in fixed_and_dynamic(3, 24) {
        round_trip(zoo::fcn(input, 4, &config), 1);
    }
}

#[test]
fn resnet_round_trips() {
    let config = ResNetConfig {
        filters: vec![6, 8],
        kernels: [8, 5, 3],
    };
    for input in fixed_and_dynamic(2, 20) {
        round_trip(zoo::resnet(input, 3, &config), 2);
    }
}

#[test]
fn inception_time_round_trips() {
    let config = InceptionTimeConfig {
        depth: 3,
        filters: 3,
        bottleneck: 4,
        kernels: [9, 5, 3],
        residual: true,
    };
    for input in fixed_and_dynamic(4, 24) {
        let mut spec = zoo::inception_time(input, 3, &config);
        // The zoo joins branches on Keras' last axis, the channels of a channels-last model.
        if input.data_format == DataFormat::ChannelsFirst {
            for l in &mut spec.layers {
                if let LayerConfig::Concatenate(c) = &mut l.config {
                    c.axis = 1;
                }
            }
        }
        round_trip(spec, 3);
    }
}

#[test]
fn seed_examples_round_trip() {
    round_trip(zoo::ex1(8, 50), 4);
    round_trip(zoo::ex3(8, 50), 5);
}

fn conv(f: usize, k: usize) -> Conv1dConfig {
    Conv1dConfig::new(f, k)
}

/// Every sequence layer and activation, in a chain, on a fixed length (the Flatten needs it).
fn sequence_chain(input: InputSpec) -> ModelSpec {
    ModelSpec::new(input)
        .push(LayerConfig::Conv1d(
            conv(6, 5)
                .with_strides(2)
                .with_padding(PaddingMode::Same)
                .with_activation(Activation::Relu),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
        .push(LayerConfig::Conv1d(
            conv(6, 3)
                .with_dilation_rate(2)
                .with_groups(2)
                .with_padding(PaddingMode::Causal)
                .with_bias(false),
        ))
        .push(LayerConfig::Activation(Activation::Gelu))
        .push(LayerConfig::MaxPool1d(
            PoolConfig::new(3)
                .with_strides(2)
                .with_padding(PaddingMode::Same),
        ))
        .push(LayerConfig::ZeroPadding1d(ZeroPaddingConfig {
            padding: [2, 1],
        }))
        .push(LayerConfig::AvgPool1d(PoolConfig::new(2)))
        .push(LayerConfig::Cropping1d(CroppingConfig { cropping: [1, 0] }))
        .push(LayerConfig::UpSampling1d(UpSamplingConfig { size: 3 }))
        .push(LayerConfig::Activation(Activation::Elu { alpha: 0.7 }))
        .push(LayerConfig::Normalization(NormalizationConfig::identity()))
        .push(LayerConfig::Conv1d(
            conv(4, 1).with_activation(Activation::Swish),
        ))
        .push(LayerConfig::SpatialDropout1d(SpatialDropoutConfig {
            rate: 0.3,
        }))
        .push(LayerConfig::AvgPool1d(
            PoolConfig::new(3)
                .with_strides(1)
                .with_padding(PaddingMode::Same),
        ))
        .push(LayerConfig::Activation(Activation::LeakyRelu {
            alpha: 0.3,
        }))
        .push(LayerConfig::Activation(Activation::Softmax))
        .push(LayerConfig::Flatten)
        .push(LayerConfig::Dropout(DropoutConfig { rate: 0.5 }))
        .push(LayerConfig::Dense(
            DenseConfig::new(5).with_activation(Activation::Tanh),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::pytorch()))
        .push(LayerConfig::Relu(ReluConfig::new().with_max_value(0.8)))
        .push(LayerConfig::Dense(DenseConfig::new(4).with_bias(false)))
        .push(LayerConfig::Activation(Activation::Sigmoid))
        .push(LayerConfig::Dense(
            DenseConfig::new(3).with_activation(Activation::LogSoftmax),
        ))
}

#[test]
fn a_chain_of_every_layer_round_trips() {
    for input in layouts(InputSpec::new(3).with_length(32)) {
        round_trip(sequence_chain(input), 6);
    }
}

/// A sequence output (no head): the channels-last export transposes it back.
#[test]
fn sequence_outputs_round_trip() {
    for input in fixed_and_dynamic(3, 16) {
        let spec = ModelSpec::new(input)
            .push(LayerConfig::Conv1d(
                conv(5, 3).with_padding(PaddingMode::Same),
            ))
            .push(LayerConfig::Activation(Activation::Tanh))
            .push(LayerConfig::Activation(Activation::Softmax))
            .push(LayerConfig::Cropping1d(CroppingConfig { cropping: [1, 2] }))
            .push(LayerConfig::Relu(ReluConfig::new()));
        round_trip(spec, 7);
    }
}

/// Every merge, a concatenation on channels and on length, and a flat concatenation.
fn merge_graph(input: InputSpec) -> ModelSpec {
    let mut s = ModelSpec::new(input);
    let x = s.input_name.clone();
    let a = s.add(
        &[&x],
        LayerConfig::Conv1d(conv(4, 3).with_padding(PaddingMode::Same)),
    );
    let b = s.add(&[&x], LayerConfig::Conv1d(conv(4, 1)));
    let c = s.add(
        &[&x],
        LayerConfig::Conv1d(conv(4, 5).with_padding(PaddingMode::Same)),
    );
    let add = s.add(&[&a, &b, &c], LayerConfig::Add(MergeConfig {}));
    let sub = s.add(&[&a, &b], LayerConfig::Subtract(MergeConfig {}));
    let mul = s.add(&[&add, &sub, &c], LayerConfig::Multiply(MergeConfig {}));
    let avg = s.add(&[&mul, &a], LayerConfig::Average(MergeConfig {}));
    let max = s.add(&[&avg, &b, &c], LayerConfig::Maximum(MergeConfig {}));
    let min = s.add(&[&max, &sub], LayerConfig::Minimum(MergeConfig {}));
    let channels_axis = match input.data_format {
        DataFormat::ChannelsLast => -1,
        DataFormat::ChannelsFirst => 1,
    };
    let length_axis = match input.data_format {
        DataFormat::ChannelsLast => 1,
        DataFormat::ChannelsFirst => 2,
    };
    let cat = s.add(
        &[&min, &add],
        LayerConfig::Concatenate(ConcatenateConfig::new(channels_axis)),
    );
    let cat_len = s.add(
        &[&cat, &cat],
        LayerConfig::Concatenate(ConcatenateConfig::new(length_axis)),
    );
    let g1 = s.add(&[&cat_len], LayerConfig::GlobalMaxPool1d);
    let g2 = s.add(&[&cat_len], LayerConfig::GlobalAvgPool1d);
    let flat = s.add(
        &[&g1, &g2],
        LayerConfig::Concatenate(ConcatenateConfig::new(-1)),
    );
    s.add(
        &[&flat],
        LayerConfig::Dense(DenseConfig::new(3).with_activation(Activation::Softmax)),
    );
    s
}

#[test]
fn merges_and_concatenations_round_trip() {
    for input in fixed_and_dynamic(3, 12) {
        round_trip(merge_graph(input), 8);
    }
}

/// Conv → LSTM (every step) → GRU (both reset conventions) → last state → Dense; a GRU
/// returning its last state after a conv; on fixed and dynamic lengths.
#[test]
fn recurrent_layers_round_trip() {
    for input in fixed_and_dynamic(3, 10) {
        for reset_after in [true, false] {
            let spec = ModelSpec::new(input)
                .push(LayerConfig::Conv1d(
                    conv(4, 3).with_activation(Activation::Relu),
                ))
                .push(LayerConfig::Lstm(
                    widen_layers::LstmConfig::new(5).with_return_sequences(true),
                ))
                .push(LayerConfig::Gru(
                    widen_layers::GruConfig::new(3)
                        .with_return_sequences(true)
                        .with_reset_after(reset_after),
                ))
                .push(LayerConfig::Lstm(
                    widen_layers::LstmConfig::new(4).with_bias(false),
                ))
                .push(LayerConfig::Dense(DenseConfig::new(2)));
            round_trip(spec, 9);
        }
        let spec = ModelSpec::new(input)
            .push(LayerConfig::Conv1d(conv(4, 3)))
            .push(LayerConfig::Gru(widen_layers::GruConfig::new(6)))
            .push(LayerConfig::Dense(
                DenseConfig::new(3).with_activation(Activation::Softmax),
            ));
        round_trip(spec, 10);
    }
}

#[test]
fn layers_without_an_onnx_form_are_refused_by_name() {
    let spec = ModelSpec::new(InputSpec::new(3).with_length(10))
        .push_named("conv", LayerConfig::Conv1d(conv(4, 3)))
        .push_named(
            "norm",
            LayerConfig::LayerNorm(widen_layers::LayerNormConfig::new()),
        )
        .push(LayerConfig::GlobalAvgPool1d);
    let model = Model::new(spec, 0, &device()).unwrap();
    let e = widen_onnx::export(&model).unwrap_err().to_string();
    assert!(
        e.contains("layer `norm`") && e.contains("LayerNormalization"),
        "{e}"
    );
}
