//! Random stacks: valid ones never panic and match the inferred shapes; invalid ones and bad
//! inputs return errors.

use burn::tensor::Device;
use proptest::prelude::*;
use widen_layers::{
    Activation, BatchNormConfig, Conv1dConfig, DenseConfig, DropoutConfig, FeatureShape, InputSpec,
    LayerConfig, LayerError, ModelSpec, PaddingMode, PoolConfig, Sequential, keras_ex1,
};

use crate::common::{pseudo_random, tensor3};

pub(crate) fn padding() -> impl Strategy<Value = PaddingMode> {
    prop_oneof![
        Just(PaddingMode::Valid),
        Just(PaddingMode::Same),
        Just(PaddingMode::Causal)
    ]
}

pub(crate) fn seq_layer() -> impl Strategy<Value = LayerConfig> {
    prop_oneof![
        (
            1usize..6,
            1usize..5,
            1usize..3,
            1usize..3,
            padding(),
            1usize..3
        )
            .prop_map(|(f, k, s, d, p, g)| LayerConfig::Conv1d(
                Conv1dConfig::new(f * g, k)
                    .with_strides(s)
                    .with_dilation_rate(d)
                    .with_padding(p)
                    .with_groups(g)
                    .with_activation(Activation::Relu)
            )),
        Just(LayerConfig::BatchNorm1d(BatchNormConfig::keras())),
        (
            1usize..4,
            1usize..3,
            prop_oneof![Just(PaddingMode::Valid), Just(PaddingMode::Same)]
        )
            .prop_map(|(p, s, pad)| LayerConfig::MaxPool1d(
                PoolConfig::new(p).with_strides(s).with_padding(pad)
            )),
        (
            1usize..4,
            prop_oneof![Just(PaddingMode::Valid), Just(PaddingMode::Same)]
        )
            .prop_map(|(p, pad)| LayerConfig::AvgPool1d(PoolConfig::new(p).with_padding(pad))),
        Just(LayerConfig::Activation(Activation::Gelu)),
        Just(LayerConfig::Dropout(DropoutConfig { rate: 0.25 })),
    ]
}

pub(crate) fn head() -> impl Strategy<Value = Vec<LayerConfig>> {
    prop_oneof![
        Just(vec![]),
        Just(vec![LayerConfig::GlobalMaxPool1d]),
        (1usize..5).prop_map(|u| vec![
            LayerConfig::GlobalAvgPool1d,
            LayerConfig::Dense(DenseConfig::new(u).with_activation(Activation::Softmax))
        ]),
        (1usize..5).prop_map(|u| vec![
            LayerConfig::Flatten,
            LayerConfig::Dense(DenseConfig::new(u))
        ]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever the stack, building either fails with an error or gives a model whose outputs
    /// have exactly the inferred shape; nothing panics, in inference or training mode.
    #[test]
    fn random_stacks_never_panic(
        channels in 1usize..6,
        length in 1usize..24,
        batch in 1usize..4,
        body in proptest::collection::vec(seq_layer(), 0..4),
        head in head(),
        seed in any::<u64>(),
    ) {
        let device = Device::flex();
        let mut spec = ModelSpec::new(InputSpec::new(channels).with_length(length));
        for layer in body.into_iter().chain(head) {
            spec = spec.push(layer);
        }
        let Ok(model) = Sequential::new(spec.clone(), seed, &device) else {
            // Refused at build time; shape inference must agree.
            prop_assert!(spec.infer_shapes().is_err());
            return Ok(());
        };
        let x = tensor3(&pseudo_random(batch * length * channels, seed), [batch, length, channels], &device);
        for y in [model.forward(x.clone()), model.forward_train(x)] {
            let y = y.unwrap();
            let want = match model.output_shape() {
                FeatureShape::Seq { channels, length } => vec![batch, length.unwrap(), channels],
                FeatureShape::Flat { features } => vec![batch, features],
            };
            prop_assert_eq!(y.dims(), want);
        }
    }

    /// Wrong channel counts and lengths are errors that name the first layer.
    #[test]
    fn wrong_inputs_are_errors(channels in 1usize..12, length in 3usize..30, extra in 1usize..8) {
        let device = Device::flex();
        let model = Sequential::new(keras_ex1(channels, length), 1, &device).unwrap();
        let x = tensor3(&pseudo_random(2 * length * (channels + extra), 3), [2, length, channels + extra], &device);
        match model.forward(x) {
            Err(LayerError::ChannelMismatch { layer, expected, got }) => {
                prop_assert_eq!(layer, "conv1d");
                prop_assert_eq!(expected, channels);
                prop_assert_eq!(got, channels + extra);
            }
            other => prop_assert!(false, "expected a channel mismatch, got {:?}", other.map(|v| v.dims())),
        }
        let x = tensor3(&pseudo_random(2 * (length + 1) * channels, 3), [2, length + 1, channels], &device);
        let is_shape = matches!(model.forward(x), Err(LayerError::InputShape { .. }));
        prop_assert!(is_shape);
    }
}

#[test]
fn impossible_stacks_are_refused_at_build_time() {
    let device = Device::flex();
    let input = InputSpec::new(8).with_length(5);
    let cases: Vec<(&str, ModelSpec)> = vec![
        (
            "kernel longer than input",
            ModelSpec::new(input).push(LayerConfig::Conv1d(Conv1dConfig::new(4, 7))),
        ),
        (
            "groups do not divide channels",
            ModelSpec::new(input).push(LayerConfig::Conv1d(Conv1dConfig::new(6, 3).with_groups(3))),
        ),
        (
            "stride with dilation",
            ModelSpec::new(input).push(LayerConfig::Conv1d(
                Conv1dConfig::new(4, 2)
                    .with_strides(2)
                    .with_dilation_rate(2),
            )),
        ),
        (
            "zero filters",
            ModelSpec::new(input).push(LayerConfig::Conv1d(Conv1dConfig::new(0, 3))),
        ),
        (
            "dense on a sequence",
            ModelSpec::new(input).push(LayerConfig::Dense(DenseConfig::new(3))),
        ),
        (
            "pool after flatten",
            ModelSpec::new(input)
                .push(LayerConfig::Flatten)
                .push(LayerConfig::GlobalMaxPool1d),
        ),
        (
            "bad dropout",
            ModelSpec::new(input).push(LayerConfig::Dropout(DropoutConfig { rate: 1.0 })),
        ),
        (
            "bad momentum",
            ModelSpec::new(input).push(LayerConfig::BatchNorm1d(
                BatchNormConfig::keras().with_momentum(f64::NAN),
            )),
        ),
        (
            "flatten on variable length",
            ModelSpec::new(InputSpec::new(8)).push(LayerConfig::Flatten),
        ),
        (
            // The fuzzer's model_json finding: channels × length overflowed usize (a panic in
            // debug builds, a wrapped size in release).
            "flatten whose size overflows",
            ModelSpec::new(InputSpec::new(1 << 40).with_length(1 << 40)).push(LayerConfig::Flatten),
        ),
        (
            "causal pooling",
            ModelSpec::new(input).push(LayerConfig::MaxPool1d(
                PoolConfig::new(2).with_padding(PaddingMode::Causal),
            )),
        ),
        ("zero channels", ModelSpec::new(InputSpec::new(0))),
        (
            "duplicate names",
            ModelSpec::new(input)
                .push_named("a", LayerConfig::Flatten)
                .push_named("a", LayerConfig::Dense(DenseConfig::new(2))),
        ),
    ];
    for (what, spec) in cases {
        assert!(
            spec.infer_shapes().is_err(),
            "{what}: inference accepted it"
        );
        assert!(
            Sequential::new(spec, 0, &device).is_err(),
            "{what}: build accepted it"
        );
    }
}

#[test]
fn summary_lists_layers_and_counts_parameters() {
    let device = Device::flex();
    let model = Sequential::new(keras_ex1(8, 50), 0, &device).unwrap();
    let s = model.summary();
    // Keras: conv 3·8·32 + 32 = 800; BN 2·32 trainable + 2·32 non-trainable.
    assert!(
        s.contains("conv1d (Conv1D)") && s.contains("(None, 48, 32)"),
        "{s}"
    );
    assert!(s.contains("Total params: 928"), "{s}");
    assert!(s.contains("Trainable params: 864"), "{s}");
    assert!(s.contains("Non-trainable params: 64"), "{s}");
}

/// Keras applies softmax over the last axis of its layout: channels for channels-last models,
/// length for channels-first ones. Checked against a softmax computed by hand.
#[test]
fn softmax_on_sequences_uses_keras_last_axis() {
    use widen_layers::{DataFormat, Value};
    let device = Device::flex();
    let (b, c, l) = (2, 3, 5);
    for format in [DataFormat::ChannelsLast, DataFormat::ChannelsFirst] {
        for layer in [
            LayerConfig::Conv1d(Conv1dConfig::new(c, 1).with_activation(Activation::Softmax)),
            LayerConfig::Activation(Activation::Softmax),
        ] {
            let spec = ModelSpec::new(InputSpec::new(c).with_length(l).with_data_format(format))
                .push(layer);
            let mut model = Sequential::new(spec, 0, &device).unwrap();
            if model.weight_infos().iter().any(|w| w.param == "weight") {
                // identity 1x1 kernel, zero bias: the conv output is its input
                let mut eye = vec![0.0f32; c * c];
                for i in 0..c {
                    eye[i * c + i] = 1.0;
                }
                model
                    .set_weight(
                        "conv1d",
                        "weight",
                        burn::tensor::TensorData::new(eye, [c, c, 1]),
                    )
                    .unwrap();
            }
            let shape = match format {
                DataFormat::ChannelsLast => [b, l, c],
                DataFormat::ChannelsFirst => [b, c, l],
            };
            let x = pseudo_random(b * c * l, 5);
            let Value::Seq(y) = model.forward(tensor3(&x, shape, &device)).unwrap() else {
                panic!()
            };
            let y = crate::common::values(y.into_data());
            // softmax over the last axis of `shape`, by hand
            let last = shape[2];
            for row in 0..(b * shape[1]) {
                let xs = &x[row * last..(row + 1) * last];
                let m = xs.iter().copied().fold(f32::MIN, f32::max);
                let z: f32 = xs.iter().map(|v| (v - m).exp()).sum();
                for j in 0..last {
                    let want = (xs[j] - m).exp() / z;
                    assert!((y[row * last + j] - want).abs() < 1e-6, "{format:?}");
                }
            }
        }
    }
}

/// The PyTorch preset: `running = 0.9 · running + 0.1 · batch`, with the unbiased batch
/// variance, and eps 1e-5 in normalisation — worked by hand on one channel.
#[test]
fn pytorch_batch_norm_preset_updates_like_torch() {
    use widen_layers::{DataFormat, Mode, Value};
    let device = Device::flex();
    let spec = ModelSpec::new(
        InputSpec::new(1)
            .with_length(4)
            .with_data_format(DataFormat::ChannelsFirst),
    )
    .push(LayerConfig::BatchNorm1d(BatchNormConfig::pytorch()));
    let model = Sequential::new(spec, 0, &device).unwrap();
    // one channel, values 1, 2, 3, 6: mean 3, biased var 3.5, unbiased var 14/3
    let x = tensor3(&[1.0, 2.0, 3.0, 6.0], [1, 1, 4], &device);
    let Value::Seq(y) = model.forward_mode(x, Mode::Training).unwrap() else {
        panic!()
    };
    let y = crate::common::values(y.into_data());
    for (got, v) in y.iter().zip([1.0f64, 2.0, 3.0, 6.0]) {
        let want = (v - 3.0) / (3.5f64 + 1e-5).sqrt();
        assert!((*got as f64 - want).abs() < 1e-5, "{got} vs {want}");
    }
    let mean = crate::common::values(model.weight("batch_normalization", "moving_mean").unwrap());
    let var = crate::common::values(
        model
            .weight("batch_normalization", "moving_variance")
            .unwrap(),
    );
    assert!((mean[0] as f64 - 0.1 * 3.0).abs() < 1e-6, "{mean:?}");
    assert!(
        (var[0] as f64 - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-6,
        "{var:?}"
    );
}
