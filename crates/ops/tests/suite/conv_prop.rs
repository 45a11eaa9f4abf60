//! conv1d against the f64 reference over random geometry, both layouts, both CPU backends.

use proptest::prelude::*;
use widen_ops::{
    Conv1dSpec, OpsError, Padding, conv_output, conv1d, conv1d_channels_last, reference,
};

use crate::common::{devices, pseudo_random, tensor1, tensor3, values};

#[derive(Debug, Clone)]
struct Case {
    batch: usize,
    groups: usize,
    in_per_group: usize,
    out_per_group: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    length: usize,
    padding: Padding,
    bias: bool,
    channels_last: bool,
    seed: u64,
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        Just(Padding::Causal),
        (0usize..4, 0usize..4).prop_map(|(left, right)| Padding::Explicit { left, right }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        (1usize..4, 1usize..4, 1usize..5, 1usize..4),
        (1usize..6, 1usize..4, 1usize..4, 1usize..24),
        (padding(), any::<bool>(), any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |(
                (batch, groups, in_per_group, out_per_group),
                (kernel, stride, dilation, length),
                (padding, bias, channels_last, seed),
            )| Case {
                batch,
                groups,
                in_per_group,
                out_per_group,
                kernel,
                stride,
                dilation,
                length,
                padding,
                bias,
                channels_last,
                seed,
            },
        )
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let c = case.groups * case.in_per_group;
    let o = case.groups * case.out_per_group;
    let (b, l, k) = (case.batch, case.length, case.kernel);
    let x = pseudo_random(b * c * l, case.seed);
    let w = pseudo_random(o * case.in_per_group * k, case.seed ^ 1);
    let bias = pseudo_random(o, case.seed ^ 2);
    let spec = Conv1dSpec::new(case.padding)
        .with_stride(case.stride)
        .with_dilation(case.dilation)
        .with_groups(case.groups);

    let expected = reference::conv1d(
        &reference::Array {
            values: x.iter().map(|&v| v as f64).collect(),
            shape: vec![b, c, l],
        },
        &reference::Array {
            values: w.iter().map(|&v| v as f64).collect(),
            shape: vec![o, case.in_per_group, k],
        },
        case.bias
            .then(|| bias.iter().map(|&v| v as f64).collect::<Vec<_>>())
            .as_deref(),
        case.stride,
        case.dilation,
        case.groups,
        case.padding,
    );
    let geometry = conv_output(l, k, case.stride, case.dilation, case.padding);

    for (name, device) in devices() {
        let weight = tensor3(&w, [o, case.in_per_group, k], &device);
        let bias_t = case.bias.then(|| tensor1(&bias, &device));
        let got = if case.channels_last {
            // Feed the same numbers in Keras' layout and transpose the output back.
            let x_cl: Vec<f32> = (0..b * l * c)
                .map(|i| {
                    let (bi, rest) = (i / (l * c), i % (l * c));
                    let (t, ci) = (rest / c, rest % c);
                    x[(bi * c + ci) * l + t]
                })
                .collect();
            conv1d_channels_last(tensor3(&x_cl, [b, l, c], &device), weight, bias_t, &spec)
                .map(|y| y.swap_dims(1, 2))
        } else {
            conv1d(tensor3(&x, [b, c, l], &device), weight, bias_t, &spec)
        };
        match (&expected, got) {
            (Ok(want), Ok(y)) => {
                let g = geometry.clone().unwrap();
                prop_assert_eq!(y.dims(), [b, o, g.length_out], "{}", name);
                prop_assert_eq!(&want.shape, &vec![b, o, g.length_out]);
                let y = values(y);
                for (i, (&got, &want)) in y.iter().zip(&want.values).enumerate() {
                    let tol = 1e-4 * want.abs().max(1.0);
                    prop_assert!(
                        (got as f64 - want).abs() <= tol,
                        "{} at {}: got {} want {} in {:?}",
                        name,
                        i,
                        got,
                        want,
                        case
                    );
                }
            }
            (Err(want), Err(got)) => prop_assert_eq!(want, &got),
            (want, got) => prop_assert!(
                false,
                "{}: reference {:?} vs widen {:?}",
                name,
                want,
                got.map(|t| t.dims())
            ),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// conv1d equals the f64 reference within 1e-4 relative, or both refuse the same geometry.
    #[test]
    fn conv1d_matches_reference(case in case()) {
        run(&case)?;
    }

    /// Output length equals Keras' formula: valid ⌊(L−d(k−1)−1)/s⌋+1, same/causal ⌈L/s⌉.
    #[test]
    fn output_length_is_keras(l in 1usize..200, k in 1usize..12, s in 1usize..5, d in 1usize..5) {
        let eff = d * (k - 1) + 1;
        for p in [Padding::Valid, Padding::Same, Padding::Causal] {
            let got = conv_output(l, k, s, d, p);
            if s > 1 && d > 1 {
                let is_stride_dilation = matches!(got, Err(OpsError::StrideWithDilation { .. }));
                prop_assert!(is_stride_dilation);
                continue;
            }
            let want = match p {
                Padding::Valid if l >= eff => Some((l - eff) / s + 1),
                Padding::Valid => None,
                _ => Some(l.div_ceil(s)),
            };
            prop_assert_eq!(got.ok().map(|g| g.length_out), want);
        }
    }

    /// Mismatched channels, bias, groups and zero sizes are errors, never panics.
    #[test]
    fn invalid_inputs_are_errors(c in 1usize..6, extra in 1usize..3, groups in 2usize..4, o in 1usize..6) {
        let device = burn::tensor::Device::flex();
        let x = tensor3(&pseudo_random(2 * (c + extra) * 8, 7), [2, c + extra, 8], &device);
        let w = tensor3(&pseudo_random(o * c * 3, 8), [o, c, 3], &device);
        let err = conv1d(x, w.clone(), None, &Conv1dSpec::default()).unwrap_err();
        prop_assert_eq!(err, OpsError::ChannelMismatch { op: "conv1d", expected: c, got: c + extra });

        let x = tensor3(&pseudo_random(2 * c * 8, 7), [2, c, 8], &device);
        let bias = tensor1(&pseudo_random(o + extra, 9), &device);
        let is_shape = matches!(conv1d(x.clone(), w.clone(), Some(bias), &Conv1dSpec::default()), Err(OpsError::ShapeMismatch { .. }));
        prop_assert!(is_shape);

        // groups that do not divide the filters
        let xg = tensor3(&pseudo_random(2 * c * groups * 8, 7), [2, c * groups, 8], &device);
        let wg = tensor3(&pseudo_random((groups * o + 1) * c * 3, 8), [groups * o + 1, c, 3], &device);
        let is_groups = matches!(conv1d(xg, wg, None, &Conv1dSpec::default().with_groups(groups)), Err(OpsError::GroupsDoNotDivide { .. }));
        prop_assert!(is_groups);

        let is_zero = matches!(conv1d(x, w, None, &Conv1dSpec::default().with_stride(0)), Err(OpsError::ZeroSize { .. }));
        prop_assert!(is_zero);
    }
}
