//! Diagnostics against hand-computed values on small cases.

use burn::tensor::{Device, TensorData};
use widen_adapt::{activation_stats, batchnorm_shift, channel_contributions, drift};
use widen_layers::{
    BatchNormConfig, Conv1dConfig, DataFormat, InputSpec, LayerConfig, ModelSpec, Sequential,
};

use crate::common::tensor3;

/// conv: 2 filters, 2 input channels, k = 1; channels-first input.
fn tiny() -> Sequential {
    let device = Device::flex();
    let mut m = Sequential::new(
        ModelSpec::new(
            InputSpec::new(2)
                .with_length(2)
                .with_data_format(DataFormat::ChannelsFirst),
        )
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(2, 1).with_bias(false),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras())),
        0,
        &device,
    )
    .unwrap();
    // w[o, c, 0]: channel 0 slice (3, 4) → norm 5; channel 1 slice (0, 1) → norm 1.
    m.set_weight(
        "conv1d",
        "weight",
        TensorData::new(vec![3.0f32, 0.0, 4.0, 1.0], [2, 2, 1]),
    )
    .unwrap();
    m.set_weight(
        "batch_normalization",
        "moving_mean",
        TensorData::new(vec![1.0f32, 0.0], [2]),
    )
    .unwrap();
    m.set_weight(
        "batch_normalization",
        "moving_variance",
        TensorData::new(vec![4.0f32, 1.0], [2]),
    )
    .unwrap();
    m
}

#[test]
fn hand_computed_diagnostics() {
    let device = Device::flex();
    let m = tiny();
    // x[b=0] = channel 0: (1, 1), channel 1: (2, -2)  → RMS 1 and 2.
    let x = tensor3(&[1.0, 1.0, 2.0, -2.0], [1, 2, 2], &device);
    let c = channel_contributions(&m, x.clone()).unwrap();
    assert!((c[0].kernel_norm - 5.0).abs() < 1e-6 && (c[1].kernel_norm - 1.0).abs() < 1e-6);
    assert!((c[0].input_rms - 1.0).abs() < 1e-6 && (c[1].input_rms - 2.0).abs() < 1e-6);
    assert!((c[0].contribution - 5.0).abs() < 1e-6 && (c[1].contribution - 2.0).abs() < 1e-6);
    assert!((c[0].share - 5.0 / 7.0).abs() < 1e-9);

    // conv output: filter 0 = 3·x0 + 0·x1 = (3, 3); filter 1 = 4·x0 + 1·x1 = (6, 2).
    let a = activation_stats(&m, x.clone()).unwrap();
    assert_eq!(a[0].layer, "conv1d");
    assert!((a[0].mean - 3.5).abs() < 1e-6, "{:?}", a[0]);
    // values 3, 3, 6, 2: variance = (0.25 + 0.25 + 6.25 + 2.25) / 4 = 2.25
    assert!((a[0].std - 1.5).abs() < 1e-6, "{:?}", a[0]);

    // BN input batch stats: filter 0 mean 3 var 0; filter 1 mean 4 var 4.
    // shift = |3 − 1| / sqrt(4 + 1e-3), |4 − 0| / sqrt(1 + 1e-3).
    let s = &batchnorm_shift(&m, x.clone()).unwrap()[0];
    let s0 = 2.0 / (4.001f64).sqrt();
    let s1 = 4.0 / (1.001f64).sqrt();
    assert!((s.mean_shift - (s0 + s1) / 2.0).abs() < 1e-5, "{s:?}");
    assert!((s.max_mean_shift - s1).abs() < 1e-5);
    let r0 = ((0.0 + 1e-3) / (4.0 + 1e-3f64)).ln().abs();
    let r1 = ((4.0 + 1e-3) / (1.0 + 1e-3f64)).ln().abs();
    assert!(
        (s.log_variance_ratio - (r0 + r1) / 2.0).abs() < 1e-4,
        "{s:?}"
    );

    // Drift of a model against itself is zero; against a changed weight, known.
    let d = drift(&m, x.clone(), &m, x.clone()).unwrap();
    assert_eq!((d.max_abs, d.mean_abs), (0.0, 0.0));
}
