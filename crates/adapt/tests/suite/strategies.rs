//! The strategies' defining properties over random models, data and new-channel values.

use burn::tensor::Device;
use proptest::prelude::*;
use widen_adapt::{
    ExpandRequest, Placement, ProjectionInit, Strategy, ZeroPadInput, expand, standardize,
};
use widen_init::{Fans, Initializer, KernelLayout};
use widen_layers::{
    Activation, BatchNormConfig, Conv1dConfig, DataFormat, DenseConfig, InputSpec, LayerConfig,
    ModelSpec, PaddingMode, Sequential,
};

use crate::common::{data_values, max_abs_diff, pseudo_random, tensor3, values, widen_data};

/// A trained-looking model: random conv stack with non-trivial BatchNorm statistics.
fn model(
    c_old: usize,
    length: usize,
    filters: usize,
    k: usize,
    padding: PaddingMode,
    head: bool,
    seed: u64,
) -> Sequential {
    let device = Device::flex();
    let mut spec = ModelSpec::new(InputSpec::new(c_old).with_length(length))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(filters, k)
                .with_padding(padding)
                .with_activation(Activation::Relu),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(4, 1).with_activation(Activation::Tanh),
        ));
    spec = if head {
        spec.push(LayerConfig::GlobalAvgPool1d)
            .push(LayerConfig::Dense(DenseConfig::new(3)))
    } else {
        spec.push(LayerConfig::GlobalMaxPool1d)
    };
    let mut m = Sequential::new(spec, seed, &device).unwrap();
    // Biases and moving statistics away from their initial values, as after training.
    for (layer, n) in [("conv1d", filters), ("conv1d_1", 4)] {
        let bias: Vec<f32> = pseudo_random(n, seed ^ 7).iter().map(|v| v * 0.3).collect();
        m.set_weight(layer, "bias", burn::tensor::TensorData::new(bias, [n]))
            .unwrap();
    }
    let mean: Vec<f32> = pseudo_random(filters, seed ^ 5)
        .iter()
        .map(|v| v * 0.5)
        .collect();
    let var: Vec<f32> = pseudo_random(filters, seed ^ 6)
        .iter()
        .map(|v| 1.0 + 0.5 * v)
        .collect();
    m.set_weight(
        "batch_normalization",
        "moving_mean",
        burn::tensor::TensorData::new(mean, [filters]),
    )
    .unwrap();
    m.set_weight(
        "batch_normalization",
        "moving_variance",
        burn::tensor::TensorData::new(var, [filters]),
    )
    .unwrap();
    m
}

fn padding() -> impl proptest::strategy::Strategy<Value = PaddingMode> {
    prop_oneof![
        Just(PaddingMode::Valid),
        Just(PaddingMode::Same),
        Just(PaddingMode::Causal)
    ]
}

/// A one-to-one map of `c_old` channels into `c_new` positions, from a seed.
fn positions(c_old: usize, c_new: usize, shuffle: bool, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..c_new).collect();
    if shuffle {
        let keys = pseudo_random(c_new, seed);
        order.sort_by(|&i, &j| keys[i].total_cmp(&keys[j]));
    }
    order.truncate(c_old);
    order
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// `Zero` and `Projection(Identity)` preserve the function: for ANY values in the new
    /// channels (×100 included) the widened model's output equals the base model's.
    #[test]
    fn zero_and_identity_projection_preserve_the_function(
        c_old in 1usize..6, extra in 1usize..10, length in 5usize..16, batch in 1usize..4,
        filters in 1usize..6, k in 1usize..4, padding in padding(), head in any::<bool>(),
        shuffle in any::<bool>(), scale in prop_oneof![Just(1.0f32), Just(100.0f32)], seed in any::<u64>(),
    ) {
        let device = Device::flex();
        let base = model(c_old, length, filters, k, padding, head, seed);
        let c_new = c_old + extra;
        let pos = positions(c_old, c_new, shuffle, seed);
        let x_old = pseudo_random(batch * length * c_old, seed ^ 1);
        let noise = pseudo_random(batch * length * c_new, seed ^ 2);
        let x_new = widen_data(&x_old, batch, length, c_old, c_new, &pos, |i| noise[i] * scale + scale);
        let want = values(base.forward(tensor3(&x_old, [batch, length, c_old], &device)).unwrap());
        for strategy in [Strategy::Zero, Strategy::Projection { init: ProjectionInit::Identity }] {
            let request = ExpandRequest::new(c_new, strategy.clone()).with_placement(Placement::Map(pos.clone()));
            let wide = expand(&base, &request).unwrap();
            prop_assert_eq!(wide.model.input().channels, c_new);
            let got = values(wide.model.forward(tensor3(&x_new, [batch, length, c_new], &device)).unwrap());
            let drift = max_abs_diff(&got, &want);
            prop_assert!(drift <= 1e-6, "{:?}: drift {}", strategy, drift);
        }
    }

    /// `RepeatRescale` is exact when the new input repeats the old channels the way the
    /// strategy assigns them (new channel t takes old channel t mod C_old), for any C_new.
    #[test]
    fn repeat_rescale_is_exact_on_repeated_inputs(
        c_old in 1usize..5, extra in 1usize..9, length in 5usize..12, batch in 1usize..3,
        filters in 1usize..5, k in 1usize..4, seed in any::<u64>(),
    ) {
        let device = Device::flex();
        let base = model(c_old, length, filters, k, PaddingMode::Same, true, seed);
        let c_new = c_old + extra;
        let x_old = pseudo_random(batch * length * c_old, seed ^ 1);
        // appended: new channel j carries old channel j mod C_old
        let x_new: Vec<f32> = (0..batch * length * c_new)
            .map(|i| {
                let (row, j) = (i / c_new, i % c_new);
                x_old[row * c_old + j % c_old]
            })
            .collect();
        let want = values(base.forward(tensor3(&x_old, [batch, length, c_old], &device)).unwrap());
        let wide = expand(&base, &ExpandRequest::new(c_new, Strategy::RepeatRescale)).unwrap();
        let got = values(wide.model.forward(tensor3(&x_new, [batch, length, c_new], &device)).unwrap());
        let err = max_abs_diff(&got, &want);
        prop_assert!(err <= 1e-5, "repeat-rescale error {}", err);
    }

    /// `ZeroPadInput` + `Zero` expansion is the base model on the old data.
    #[test]
    fn zero_pad_input_feeds_a_zero_expanded_model(c_old in 1usize..5, extra in 1usize..6, seed in any::<u64>()) {
        let device = Device::flex();
        let base = model(c_old, 10, 3, 3, PaddingMode::Valid, false, seed);
        let c_new = c_old + extra;
        let wide = expand(&base, &ExpandRequest::new(c_new, Strategy::Zero)).unwrap();
        let x_old = tensor3(&pseudo_random(2 * 10 * c_old, seed), [2, 10, c_old], &device);
        let pad = ZeroPadInput { map: wide.map.clone(), data_format: DataFormat::ChannelsLast };
        let x_new = pad.apply(x_old.clone()).unwrap();
        prop_assert_eq!(x_new.dims(), [2, 10, c_new]);
        let got = values(wide.model.forward(x_new).unwrap());
        let want = values(base.forward(x_old).unwrap());
        prop_assert!(max_abs_diff(&got, &want) <= 1e-6);
    }
}

/// `FanScaled`: new slices follow the initializer for the widened fan; old slices are the
/// trained ones times sqrt(C_old / C_new).
#[test]
fn fan_scaled_slices_follow_the_initializer() {
    let (c_old, c_new, filters, k) = (4, 64, 48, 5);
    let base = model(c_old, 20, filters, k, PaddingMode::Same, false, 3);
    let old_w = data_values(base.weight("conv1d", "weight").unwrap());
    let strategy = Strategy::FanScaled {
        initializer: Initializer::glorot_uniform(),
        rescale_old: true,
    };
    let wide = expand(&base, &ExpandRequest::new(c_new, strategy).with_seed(9)).unwrap();
    let w = data_values(wide.model.weight("conv1d", "weight").unwrap());
    let fans = Fans::from_shape(&[filters, c_new, k], KernelLayout::Torch).unwrap();
    // Keras glorot_uniform: limit = sqrt(6 / (fan_in + fan_out)), variance = limit² / 3.
    let limit = (6.0 / (fans.fan_in + fans.fan_out) as f64).sqrt();
    let scale = (c_old as f32 / c_new as f32).sqrt();
    let mut new_vals = Vec::new();
    for o in 0..filters {
        for j in 0..c_new {
            for t in 0..k {
                let v = w[(o * c_new + j) * k + t];
                if j < c_old {
                    let old = old_w[(o * c_old + j) * k + t];
                    assert!(
                        (v - old * scale).abs() <= 1e-7 * old.abs().max(1.0),
                        "old slice rescaled"
                    );
                } else {
                    new_vals.push(v as f64);
                }
            }
        }
    }
    let n = new_vals.len() as f64;
    assert!(
        new_vals.iter().all(|v| v.abs() <= limit),
        "new slices inside ±{limit}"
    );
    let mean = new_vals.iter().sum::<f64>() / n;
    let var = new_vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let want_var = limit * limit / 3.0;
    // Uniform: the sample mean has std sqrt(var/n); the sample variance has std
    // sqrt((μ4 − σ⁴)/n) with μ4 = limit⁴/5 for U(±limit).
    let mean_tol = 5.0 * (want_var / n).sqrt();
    let var_tol = 5.0 * ((limit.powi(4) / 5.0 - want_var * want_var) / n).sqrt();
    assert!(mean.abs() <= mean_tol, "mean {mean} (tol {mean_tol})");
    assert!(
        (var - want_var).abs() <= var_tol,
        "variance {var}, want {want_var} ± {var_tol}"
    );

    // Without rescaling the old slices are untouched.
    let keep = Strategy::FanScaled {
        initializer: Initializer::he_normal(),
        rescale_old: false,
    };
    let wide = expand(&base, &ExpandRequest::new(c_new, keep)).unwrap();
    let w = data_values(wide.model.weight("conv1d", "weight").unwrap());
    for o in 0..filters {
        for j in 0..c_old {
            for t in 0..k {
                assert_eq!(
                    w[(o * c_new + j) * k + t].to_bits(),
                    old_w[(o * c_old + j) * k + t].to_bits()
                );
            }
        }
    }
}

/// Standardize brings new channels of another magnitude to mean 0 / std 1 and passes the old
/// channels through bit-exact.
#[test]
fn standardize_calibrates_new_channels_only() {
    let device = Device::flex();
    let (b, l, c_old, c_new) = (6, 40, 3, 8);
    let base = model(c_old, l, 4, 3, PaddingMode::Same, false, 1);
    let wide = expand(&base, &ExpandRequest::new(c_new, Strategy::Zero)).unwrap();
    let x_old = pseudo_random(b * l * c_old, 4);
    let noise = pseudo_random(b * l * c_new, 5);
    let x = widen_data(&x_old, b, l, c_old, c_new, &[0, 1, 2], |i| {
        noise[i] * 10.0 + 5.0
    });
    let xt = tensor3(&x, [b, l, c_new], &device);
    let new: Vec<usize> = (c_old..c_new).collect();
    let model = standardize(&wide.model, &xt, &new).unwrap();
    let trace = model
        .forward_trace(xt.clone(), widen_layers::Mode::Inference)
        .unwrap();
    let normed = values(trace[1].1.clone()); // channels-first [b, c, l]
    for c in 0..c_new {
        let vals: Vec<f64> = (0..b)
            .flat_map(|bi| (0..l).map(move |t| (bi, t)))
            .map(|(bi, t)| normed[(bi * c_new + c) * l + t] as f64)
            .collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let std = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64).sqrt();
        if c < c_old {
            for bi in 0..b {
                for t in 0..l {
                    assert_eq!(
                        normed[(bi * c_new + c) * l + t].to_bits(),
                        x[(bi * l + t) * c_new + c].to_bits()
                    );
                }
            }
        } else {
            assert!(
                mean.abs() < 1e-5 && (std - 1.0).abs() < 1e-4,
                "channel {c}: mean {mean}, std {std}"
            );
        }
    }
    // Still function preserving with Zero slices.
    let want = values(
        base.forward(tensor3(&x_old, [b, l, c_old], &device))
            .unwrap(),
    );
    let got = values(model.forward(xt).unwrap());
    assert!(max_abs_diff(&got, &want) <= 1e-6);
}
