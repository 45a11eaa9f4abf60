//! Initializers on real Burn devices, and properties over random shapes and seeds.
//!
//! One test binary on purpose: every binary links Burn, and linking is slow.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use burn::tensor::module::conv1d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use widen_init::{
    Distribution, FanMode, Fans, InitError, Initializer, KernelLayout, derive_seed,
    derive_seed_indexed,
};

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_into_vec::<f32>().unwrap()
}

#[allow(deprecated)] // NdArray is deprecated in Burn 0.22 but still a second, independent backend.
fn ndarray() -> Device {
    Device::ndarray()
}

/// Random input `[batch, channels, length]` from the crate's own normal initializer.
fn random_input(shape: [usize; 3], seed: u64, device: &Device) -> Tensor<3> {
    Initializer::Normal {
        mean: 0.0,
        std: 1.0,
    }
    .tensor(shape, KernelLayout::Torch, seed, device)
    .unwrap()
}

#[test]
fn conv_with_a_dirac_kernel_is_the_identity() {
    let device = Device::flex();
    // (channels, groups, k); k odd so padding k/2 keeps the length.
    for (channels, groups, k) in [(4, 1, 3), (6, 2, 5), (8, 4, 1), (6, 3, 7), (5, 5, 3)] {
        let x = random_input([2, channels, 11], channels as u64, &device);
        let w = Initializer::Identity { groups }
            .tensor(
                [channels, channels / groups, k],
                KernelLayout::Torch,
                0,
                &device,
            )
            .unwrap();
        let y = conv1d(
            x.clone(),
            w,
            None,
            ConvOptions::new([1], [k / 2], [1], groups),
        );
        assert_eq!(y.dims(), x.dims());
        assert_eq!(
            values(y),
            values(x),
            "channels {channels} groups {groups} k {k}"
        );
    }
}

#[test]
fn dirac_conv_copies_the_first_channels_when_widths_differ() {
    let device = Device::flex();
    let (length, k) = (9, 3);
    let options = || ConvOptions::new([1], [k / 2], [1], 1);
    let x = random_input([1, 4, length], 3, &device);
    let host = values(x.clone());

    // Wider: outputs 0..4 copy the input, 4..6 are zero.
    let widen = Initializer::identity()
        .tensor([6, 4, k], KernelLayout::Torch, 0, &device)
        .unwrap();
    let y = values(conv1d(x.clone(), widen, None, options()));
    assert_eq!(&y[..4 * length], &host[..]);
    assert!(y[4 * length..].iter().all(|&v| v == 0.0));

    // Narrower: outputs copy the first 3 inputs.
    let narrow = Initializer::identity()
        .tensor([3, 4, k], KernelLayout::Torch, 0, &device)
        .unwrap();
    let y = values(conv1d(x, narrow, None, options()));
    assert_eq!(&y[..], &host[..3 * length]);
}

#[test]
fn keras_layout_dirac_is_the_identity_once_moved_to_torch_axes() {
    let device = Device::flex();
    let (channels, groups, k) = (6, 2, 5);
    let in_per_group = channels / groups;
    let keras = Initializer::Identity { groups }
        .sample(&[k, in_per_group, channels], KernelLayout::Keras, 0)
        .unwrap();
    // [k, in, out] -> [out, in, k].
    let mut torch = vec![0.0f32; keras.len()];
    for t in 0..k {
        for i in 0..in_per_group {
            for o in 0..channels {
                torch[(o * in_per_group + i) * k + t] =
                    keras[(t * in_per_group + i) * channels + o];
            }
        }
    }
    let w = Tensor::<3>::from_data(TensorData::new(torch, [channels, in_per_group, k]), &device);
    let x = random_input([3, channels, 8], 1, &device);
    let y = conv1d(
        x.clone(),
        w,
        None,
        ConvOptions::new([1], [k / 2], [1], groups),
    );
    assert_eq!(values(y), values(x));
}

#[test]
fn one_seed_gives_bit_identical_values_on_every_backend() {
    let flex = Device::flex();
    let ndarray = ndarray();
    let shape = [16, 8, 3];
    for init in [
        Initializer::glorot_uniform(),
        Initializer::he_normal(),
        Initializer::variance_scaling(0.7, FanMode::FanOut, Distribution::Normal),
        Initializer::TorchConvDefault,
        Initializer::Orthogonal { gain: 1.3 },
        Initializer::TruncatedNormal {
            mean: 0.1,
            std: 0.2,
        },
    ] {
        let seed = derive_seed(2024, "block.conv.weight");
        let on_flex = values(
            init.tensor(shape, KernelLayout::Torch, seed, &flex)
                .unwrap(),
        );
        let on_ndarray = values(
            init.tensor(shape, KernelLayout::Torch, seed, &ndarray)
                .unwrap(),
        );
        let host = init.sample(&shape, KernelLayout::Torch, seed).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&on_flex), bits(&on_ndarray), "{init:?}");
        assert_eq!(bits(&on_flex), bits(&host), "{init:?}");

        let other = values(
            init.tensor(shape, KernelLayout::Torch, seed ^ 1, &ndarray)
                .unwrap(),
        );
        assert_ne!(on_flex, other, "{init:?}");
    }
}

#[test]
fn params_hold_the_sampled_values_and_track_gradients_on_autodiff_devices() {
    let device = Device::flex().autodiff();
    let shape = [8, 4, 3];
    let fans = Fans::from_shape(&shape, KernelLayout::Torch).unwrap();
    let seed = derive_seed_indexed(5, 0);

    let weight = Initializer::he_uniform()
        .param(shape, KernelLayout::Torch, seed, &device)
        .unwrap();
    assert_eq!(weight.val().dims(), shape);
    assert!(weight.val().is_require_grad());
    assert_eq!(
        values(weight.val()),
        Initializer::he_uniform()
            .sample(&shape, KernelLayout::Torch, seed)
            .unwrap()
    );

    let bias = Initializer::TorchConvDefault
        .param_with_fans(
            [8],
            KernelLayout::Torch,
            fans,
            derive_seed_indexed(5, 1),
            &device,
        )
        .unwrap();
    let bound = (1.0 / (fans.fan_in as f64).sqrt()) as f32;
    assert!(values(bias.val()).iter().all(|v| v.abs() <= bound));
}

#[test]
fn conv_bias_with_glorot_returns_values_or_a_typed_error() {
    let device = Device::flex();
    let weight_fans = Fans::from_shape(&[32, 16, 3], KernelLayout::Torch).unwrap();
    let glorot = Initializer::glorot_uniform();
    let bias = glorot
        .tensor_with_fans([32], KernelLayout::Torch, weight_fans, 1, &device)
        .unwrap();
    assert_eq!(bias.dims(), [32]);
    // Burn's own Initializer panics here; we answer with an error.
    let missing = Fans::new(weight_fans.fan_in, 0);
    assert!(matches!(
        glorot.tensor_with_fans([32], KernelLayout::Torch, missing, 1, &device),
        Err(InitError::ZeroFan { .. })
    ));
}

#[test]
fn device_entry_points_refuse_bad_shapes_without_panicking() {
    let device = Device::flex();
    assert!(matches!(
        Initializer::Zeros.tensor::<0>([], KernelLayout::Keras, 0, &device),
        Err(InitError::EmptyShape)
    ));
    assert!(matches!(
        Initializer::glorot_uniform().param([3, 0, 2], KernelLayout::Keras, 0, &device),
        Err(InitError::ZeroDim { axis: 1, .. })
    ));
}

/// Every initializer with valid parameters, drawn from small ranges.
fn valid_initializer() -> impl Strategy<Value = Initializer> {
    let mode = prop_oneof![
        Just(FanMode::FanIn),
        Just(FanMode::FanOut),
        Just(FanMode::FanAvg)
    ];
    let distribution = prop_oneof![
        Just(Distribution::Uniform),
        Just(Distribution::Normal),
        Just(Distribution::TruncatedNormal)
    ];
    prop_oneof![
        (1e-3..10.0f64, mode, distribution)
            .prop_map(|(scale, mode, d)| Initializer::variance_scaling(scale, mode, d)),
        Just(Initializer::glorot_uniform()),
        Just(Initializer::he_normal()),
        Just(Initializer::lecun_uniform()),
        Just(Initializer::TorchConvDefault),
        (-3.0..3.0f64, 1e-3..3.0f64).prop_map(|(low, width)| Initializer::Uniform {
            low,
            high: low + width
        }),
        (-1.0..1.0f64, 0.0..2.0f64).prop_map(|(mean, std)| Initializer::Normal { mean, std }),
        (-1.0..1.0f64, 0.0..2.0f64)
            .prop_map(|(mean, std)| Initializer::TruncatedNormal { mean, std }),
        (-2.0..2.0f64).prop_map(Initializer::Constant),
        Just(Initializer::Zeros),
        Just(Initializer::Ones),
        (-2.0..2.0f64).prop_map(|gain| Initializer::Orthogonal { gain }),
        (1usize..4).prop_map(|groups| Initializer::Identity { groups }),
    ]
}

/// Any parameters at all, NaN and infinities included.
fn any_initializer() -> impl Strategy<Value = Initializer> {
    let number = prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(0.0),
        -1e3..1e3f64
    ];
    (number.clone(), number, any::<u8>(), 0usize..6).prop_map(|(a, b, pick, groups)| {
        match pick % 8 {
            0 => Initializer::variance_scaling(a, FanMode::FanAvg, Distribution::TruncatedNormal),
            1 => Initializer::Uniform { low: a, high: b },
            2 => Initializer::Normal { mean: a, std: b },
            3 => Initializer::TruncatedNormal { mean: a, std: b },
            4 => Initializer::Constant(a),
            5 => Initializer::Orthogonal { gain: a },
            6 => Initializer::Identity { groups },
            _ => Initializer::TorchConvDefault,
        }
    })
}

fn layout() -> impl Strategy<Value = KernelLayout> {
    prop_oneof![Just(KernelLayout::Keras), Just(KernelLayout::Torch)]
}

/// The bound every uniform draw must respect, computed from the fans independently.
fn uniform_bound(init: &Initializer, fans: Fans) -> Option<(f64, f64)> {
    let (fan_in, fan_out) = (fans.fan_in as f64, fans.fan_out as f64);
    match *init {
        Initializer::Uniform { low, high } => Some((low, high)),
        Initializer::TorchConvDefault => Some((-1.0 / fan_in.sqrt(), 1.0 / fan_in.sqrt())),
        Initializer::VarianceScaling(vs) if vs.distribution == Distribution::Uniform => {
            let n = match vs.mode {
                FanMode::FanIn => fan_in,
                FanMode::FanOut => fan_out,
                FanMode::FanAvg => (fan_in + fan_out) / 2.0,
            };
            let limit = (3.0 * vs.scale / n).sqrt();
            Some((-limit, limit))
        }
        _ => None,
    }
}

proptest! {
    // `WithSource` because the default persistence looks for a lib.rs next to this file.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn valid_initializers_fill_any_shape_with_finite_values(
        init in valid_initializer(),
        shape in prop::collection::vec(1usize..8, 1..=4),
        layout in layout(),
        seed in any::<u64>(),
    ) {
        let result = init.sample(&shape, layout, seed);
        let structured_rank_1 = shape.len() < 2
            && matches!(init, Initializer::Orthogonal { .. } | Initializer::Identity { .. });
        let out_axis = match layout {
            KernelLayout::Torch => 0,
            KernelLayout::Keras => shape.len() - 1,
        };
        let bad_groups = matches!(init, Initializer::Identity { groups } if shape[out_axis] % groups != 0);
        if structured_rank_1 {
            prop_assert!(matches!(result, Err(InitError::UnsupportedRank { .. })), "{result:?}");
        } else if bad_groups {
            prop_assert!(matches!(result, Err(InitError::InvalidGroups { .. })), "{result:?}");
        } else {
            let values = result.unwrap();
            prop_assert_eq!(values.len(), shape.iter().product::<usize>());
            prop_assert!(values.iter().all(|v| v.is_finite()));
            let fans = Fans::from_shape(&shape, layout).unwrap();
            if let Some((low, high)) = uniform_bound(&init, fans) {
                let (low, high) = (low as f32, high as f32);
                prop_assert!(values.iter().all(|&v| low <= v && v <= high));
            }
        }
    }

    #[test]
    fn any_input_gives_finite_values_or_an_error_never_a_panic(
        init in any_initializer(),
        shape in prop::collection::vec(0usize..6, 0..=4),
        layout in layout(),
        fan_in in 0usize..50,
        fan_out in 0usize..50,
        seed in any::<u64>(),
    ) {
        if let Ok(values) = init.sample(&shape, layout, seed) {
            prop_assert_eq!(values.len(), shape.iter().product::<usize>());
            prop_assert!(values.iter().all(|v| v.is_finite()));
        }
        let fans = Fans::new(fan_in, fan_out);
        if let Ok(values) = init.sample_with_fans(&shape, layout, fans, seed) {
            prop_assert_eq!(values.len(), shape.iter().product::<usize>());
            prop_assert!(values.iter().all(|v| v.is_finite()));
        }
    }
}
