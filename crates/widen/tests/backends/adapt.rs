//! Expansion on every backend: the function-preserving strategies preserve the function, on the
//! device the model lives on.

use burn::tensor::{Device, TensorData};
use widen::adapt::{ExpandRequest, ProjectionInit, Strategy, expand};
use widen::layers::{Sequential, keras_ex1};

use crate::common::{backends, max_abs, max_abs_diff, pseudo_random, tensor3, values};

const C_OLD: usize = 8;
const C_NEW: usize = 32;
const LENGTH: usize = 50;
const BATCH: usize = 10;

/// The seed's Ex1 with biases and moving statistics away from their initial values, as after
/// training (the same host values on every backend).
fn base(device: &Device) -> Sequential {
    let mut m = Sequential::new(keras_ex1(C_OLD, LENGTH), 7, device).unwrap();
    let f = 32;
    let bias: Vec<f32> = pseudo_random(f, 11).iter().map(|v| v * 0.3).collect();
    let mean: Vec<f32> = pseudo_random(f, 12).iter().map(|v| v * 0.5).collect();
    let var: Vec<f32> = pseudo_random(f, 13).iter().map(|v| 1.0 + 0.5 * v).collect();
    for (layer, param, v) in [
        ("conv1d", "bias", bias),
        ("batch_normalization", "moving_mean", mean),
        ("batch_normalization", "moving_variance", var),
    ] {
        m.set_weight(layer, param, TensorData::new(v, [f])).unwrap();
    }
    m
}

/// `[BATCH, LENGTH, C_NEW]` whose first `C_OLD` channels are `old` and the rest `fill(i)`.
fn widen(old: &[f32], fill: impl Fn(usize, usize) -> f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(BATCH * LENGTH * C_NEW);
    for (row, chunk) in old.chunks(C_OLD).enumerate() {
        out.extend_from_slice(chunk);
        out.extend((C_OLD..C_NEW).map(|j| fill(row, j)));
    }
    out
}

/// Zero slices and an identity projection: the widened model's output equals the base model's
/// for any values in the new channels (here ±100), on every backend. Adding exact zeros changes
/// no rounding on the CPU; a GPU may tile the longer channel sum differently, so the bound is
/// 1e-5 of the output's magnitude rather than bit equality.
#[test]
fn zero_and_identity_projection_preserve_the_function() {
    let x_old = pseudo_random(BATCH * LENGTH * C_OLD, 21);
    let noise = pseudo_random(BATCH * LENGTH * C_NEW, 22);
    let x_new = widen(&x_old, |row, j| 100.0 * noise[row * C_NEW + j]);
    for (backend, device) in backends() {
        let base = base(&device);
        let want = values(
            base.forward(tensor3(&x_old, [BATCH, LENGTH, C_OLD], &device))
                .unwrap(),
        );
        for strategy in [
            Strategy::Zero,
            Strategy::Projection {
                init: ProjectionInit::Identity,
            },
        ] {
            let wide = expand(&base, &ExpandRequest::new(C_NEW, strategy.clone())).unwrap();
            let got = values(
                wide.model
                    .forward(tensor3(&x_new, [BATCH, LENGTH, C_NEW], &device))
                    .unwrap(),
            );
            let drift = max_abs_diff(&got, &want);
            let tol = 1e-5 * max_abs(&want).max(1.0);
            assert!(
                drift <= tol,
                "{strategy:?} on {backend}: drift {drift:e} > {tol:e}"
            );
        }
    }
}

/// Repeat-and-rescale is exact when the new channels repeat the old ones (up to the rounding
/// of the division and the longer sum).
#[test]
fn repeat_rescale_preserves_repeated_inputs() {
    let x_old = pseudo_random(BATCH * LENGTH * C_OLD, 31);
    let x_new = widen(&x_old, |row, j| x_old[row * C_OLD + j % C_OLD]);
    for (backend, device) in backends() {
        let base = base(&device);
        let want = values(
            base.forward(tensor3(&x_old, [BATCH, LENGTH, C_OLD], &device))
                .unwrap(),
        );
        let wide = expand(&base, &ExpandRequest::new(C_NEW, Strategy::RepeatRescale)).unwrap();
        let got = values(
            wide.model
                .forward(tensor3(&x_new, [BATCH, LENGTH, C_NEW], &device))
                .unwrap(),
        );
        let drift = max_abs_diff(&got, &want);
        let tol = 1e-5 * max_abs(&want).max(1.0);
        assert!(
            drift <= tol,
            "repeat on {backend}: drift {drift:e} > {tol:e}"
        );
    }
}

/// Host-drawn parameters: expanding on any backend gives bit-identical weights.
#[test]
fn expansion_is_identical_on_every_backend() {
    let mut reference: Option<Vec<Vec<u32>>> = None;
    for (backend, device) in backends() {
        let wide = expand(
            &base(&device),
            &ExpandRequest::new(
                C_NEW,
                Strategy::FanScaled {
                    initializer: widen::init::Initializer::he_normal(),
                    rescale_old: true,
                },
            )
            .with_seed(5),
        )
        .unwrap();
        let bits: Vec<Vec<u32>> = wide
            .model
            .weight_infos()
            .iter()
            .map(|w| {
                crate::common::data_values(wide.model.weight(&w.layer, &w.param).unwrap())
                    .into_iter()
                    .map(f32::to_bits)
                    .collect()
            })
            .collect();
        match &reference {
            None => reference = Some(bits),
            Some(r) => assert!(
                r == &bits,
                "weights on {backend} differ from the first backend"
            ),
        }
    }
}
