//! The fused training-mode batch norm (widen's CPU kernel) against the same maths composed
//! from Burn's tensor ops and differentiated by Burn's autodiff: outputs, batch statistics and
//! the gradients of x, gamma and beta.
#![cfg(all(feature = "flex", feature = "ndarray", feature = "autodiff"))]

use burn::tensor::Tensor;
use proptest::prelude::*;
use widen_ops::cpu;

use crate::common::{devices, pseudo_random, tensor1, tensor3, values};

/// Keras' `BatchNormalization(training=True)` written in Burn's tensor ops.
fn composed(
    x: Tensor<3>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    eps: f64,
) -> (Tensor<3>, Tensor<1>, Tensor<1>) {
    let c = x.dims()[1];
    let mean = x.clone().mean_dim(2).mean_dim(0);
    let centered = x.clone() - mean.clone();
    let var = (centered.clone() * centered).mean_dim(2).mean_dim(0);
    let inv = var.clone().add_scalar(eps).sqrt().recip() * gamma.reshape([1, c, 1]);
    let shift = beta.reshape([1, c, 1]) - mean.clone() * inv.clone();
    (x * inv + shift, mean.reshape([c]), var.reshape([c]))
}

fn close(what: &str, got: &[f32], want: &[f32], tol: f32) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        prop_assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{} at {}: {} vs {}",
            what,
            i,
            g,
            w
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    #[test]
    fn fused_batch_norm_matches_composed_ops(
        b in 1usize..5, c in 1usize..6, l in 1usize..40, seed in any::<u64>(),
        offset in -3.0f32..3.0, spread in 0.1f32..4.0,
    ) {
        let x: Vec<f32> = pseudo_random(b * c * l, seed).iter().map(|v| v * spread + offset).collect();
        let gamma = pseudo_random(c, seed ^ 1);
        let beta = pseudo_random(c, seed ^ 2);
        let up = pseudo_random(b * c * l, seed ^ 3);
        let eps = 1e-3;
        for (name, device) in devices() {
            let device = device.autodiff();
            let run = |fused: bool| {
                let xt = tensor3(&x, [b, c, l], &device).require_grad();
                let gt = tensor1(&gamma, &device).require_grad();
                let bt = tensor1(&beta, &device).require_grad();
                let before = cpu::stats().kernel_runs;
                let (y, mean, var) = if fused {
                    cpu::batch_norm_train(&xt, Some(&gt), Some(&bt), eps, None).expect("kernel serves flex/ndarray")
                } else {
                    composed(xt.clone(), gt.clone(), bt.clone(), eps)
                };
                let grads = (y.clone() * tensor3(&up, [b, c, l], &device)).sum().backward();
                let ran = cpu::stats().kernel_runs > before;
                (
                    [values(y), values(mean), values(var), values(xt.grad(&grads).unwrap()),
                     values(gt.grad(&grads).unwrap()), values(bt.grad(&grads).unwrap())],
                    ran,
                )
            };
            let (fused, ran) = run(true);
            prop_assert!(ran, "{}: the kernel did not run", name);
            let (reference, _) = run(false);
            for (what, (f, r)) in ["y", "mean", "var", "dx", "dgamma", "dbeta"].iter().zip(fused.iter().zip(&reference)) {
                // dx is a difference of near-equal terms when l·b is small: looser.
                let tol = if *what == "dx" { 2e-3 } else { 1e-4 };
                close(&format!("{name} {what}"), f, r, tol)?;
            }
        }
    }
}

/// With a moving update the op returns `old·keep + batch·take` (variance corrected first),
/// computed as Burn's `mul_scalar`/`add` compute it: bit for bit.
#[test]
fn fused_batch_norm_updates_moving_statistics() {
    for (name, device) in devices() {
        let (b, c, l) = (3, 4, 20);
        let x = tensor3(&pseudo_random(b * c * l, 21), [b, c, l], &device);
        let old_mean = tensor1(&pseudo_random(c, 22), &device);
        let old_var = tensor1(
            &pseudo_random(c, 23)
                .iter()
                .map(|v| v.abs())
                .collect::<Vec<_>>(),
            &device,
        );
        let (keep, take, correction) = (0.99, 0.01, 60.0 / 59.0);
        let moving = cpu::MovingUpdate {
            mean: &old_mean,
            variance: &old_var,
            keep,
            take,
            variance_correction: correction,
        };
        let (_, batch_mean, batch_var) = cpu::batch_norm_train(&x, None, None, 1e-3, None).unwrap();
        let (_, new_mean, new_var) =
            cpu::batch_norm_train(&x, None, None, 1e-3, Some(moving)).unwrap();
        let want_mean = old_mean.clone().mul_scalar(keep) + batch_mean.mul_scalar(take);
        let want_var =
            old_var.clone().mul_scalar(keep) + batch_var.mul_scalar(correction).mul_scalar(take);
        assert_eq!(values(new_mean), values(want_mean), "{name} mean");
        assert_eq!(values(new_var), values(want_var), "{name} var");
    }
}

/// Without gamma and beta (`scale=False, center=False`) the output is the standardised input.
#[test]
fn fused_batch_norm_without_affine_standardises() {
    for (_, device) in devices() {
        let x = tensor3(&pseudo_random(2 * 3 * 50, 5), [2, 3, 50], &device);
        let (y, _, _) = cpu::batch_norm_train(&x, None, None, 0.0, None).unwrap();
        let mean = values(y.clone().mean_dim(2).mean_dim(0));
        let var = values((y.clone() * y).mean_dim(2).mean_dim(0));
        for (m, v) in mean.iter().zip(&var) {
            assert!(m.abs() < 1e-5 && (v - 1.0).abs() < 1e-4, "mean {m} var {v}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// The kernel's global max and its gradient equal Burn's `max_dim` and its autodiff
    /// (values are distinct, so the argmax is unique).
    #[test]
    fn global_max_matches_burn(b in 1usize..5, c in 1usize..6, l in 1usize..40, seed in any::<u64>()) {
        let x = pseudo_random(b * c * l, seed);
        let up = pseudo_random(b * c, seed ^ 1);
        for (name, device) in devices() {
            let device = device.autodiff();
            let run = |fused: bool| {
                let xt = tensor3(&x, [b, c, l], &device).require_grad();
                let y = if fused {
                    cpu::global_max_pool(&xt).expect("kernel serves flex/ndarray")
                } else {
                    xt.clone().max_dim(2).reshape([b, c])
                };
                let grads = (y.clone() * Tensor::<2>::from_data(burn::tensor::TensorData::new(up.clone(), [b, c]), &device)).sum().backward();
                [values(y), values(xt.grad(&grads).unwrap())]
            };
            let (fused, reference) = (run(true), run(false));
            close(&format!("{name} max"), &fused[0], &reference[0], 0.0)?;
            close(&format!("{name} dx"), &fused[1], &reference[1], 0.0)?;
        }
    }
}
