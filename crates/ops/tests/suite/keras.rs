//! Keras 3 (TF 2.21) reference outputs: tools/fixtures/gen_conv1d_fixtures.py made
//! fixtures/keras_conv1d.json; these tests never need Python.

use serde::Deserialize;
use widen_ops::{Conv1dSpec, Padding, conv1d_channels_last, keras_kernel_to_burn};

use crate::common::{devices, tensor1, tensor3, values};

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    padding: String,
    strides: usize,
    dilation_rate: usize,
    kernel_size: usize,
    groups: usize,
    batch: usize,
    length: usize,
    in_channels: usize,
    filters: usize,
    input: Vec<f32>,
    kernel: Vec<f32>,
    bias: Vec<f32>,
    output_shape: Option<Vec<usize>>,
    output: Option<Vec<f32>>,
    error: Option<String>,
}

fn fixture() -> Fixture {
    let text = include_str!("../fixtures/keras_conv1d.json");
    serde_json::from_str(text).unwrap()
}

#[test]
fn conv1d_matches_keras() {
    let fixture = fixture();
    assert!(
        fixture.cases.len() >= 48,
        "fixture has {} cases",
        fixture.cases.len()
    );
    let mut compared = 0;
    for case in &fixture.cases {
        let padding = match case.padding.as_str() {
            "valid" => Padding::Valid,
            "same" => Padding::Same,
            "causal" => Padding::Causal,
            other => panic!("unknown padding {other}"),
        };
        let spec = Conv1dSpec::new(padding)
            .with_stride(case.strides)
            .with_dilation(case.dilation_rate)
            .with_groups(case.groups);
        for (backend, device) in devices() {
            let x = tensor3(
                &case.input,
                [case.batch, case.length, case.in_channels],
                &device,
            );
            let kernel = tensor3(
                &case.kernel,
                [
                    case.kernel_size,
                    case.in_channels / case.groups,
                    case.filters,
                ],
                &device,
            );
            let bias = (!case.bias.is_empty()).then(|| tensor1(&case.bias, &device));
            let got = conv1d_channels_last(x, keras_kernel_to_burn(kernel), bias, &spec);
            match (&case.error, got) {
                (Some(_), Err(_)) => {}
                (Some(keras), Ok(_)) => {
                    panic!("{}: Keras refused ({keras}) but widen ran", case.name)
                }
                (None, Err(e)) => panic!("{} on {backend}: widen refused: {e}", case.name),
                (None, Ok(y)) => {
                    let want_shape = case.output_shape.clone().unwrap();
                    assert_eq!(y.dims().to_vec(), want_shape, "{} on {backend}", case.name);
                    let want = case.output.as_ref().unwrap();
                    for (i, (g, w)) in values(y).iter().zip(want).enumerate() {
                        assert!(
                            (g - w).abs() <= 1e-5,
                            "{} on {backend} at {i}: {g} vs Keras {w}",
                            case.name
                        );
                    }
                    compared += 1;
                }
            }
        }
    }
    assert!(compared >= 2 * 40, "only {compared} comparisons ran");
}
