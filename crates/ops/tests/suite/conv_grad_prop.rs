//! conv1d's gradients (widen's CPU kernel on flex and ndarray autodiff) against the f64
//! reference backward, which is itself checked against the reference forward.

use burn::tensor::Tensor;
use proptest::prelude::*;
use widen_ops::cpu::{self, kernel};
use widen_ops::{Conv1dSpec, Padding, conv_output, conv1d, reference};

use crate::common::{devices, pseudo_random, tensor1, tensor3, values};

fn array(v: &[f32], shape: &[usize]) -> reference::Array {
    reference::Array {
        values: v.iter().map(|&x| x as f64).collect(),
        shape: shape.to_vec(),
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

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
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    let padding = prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        Just(Padding::Causal),
        (0usize..4, 0usize..4).prop_map(|(left, right)| Padding::Explicit { left, right }),
    ];
    (
        (1usize..5, 1usize..3, 1usize..6, 1usize..5),
        (1usize..6, 1usize..4, 1usize..3, 1usize..30),
        (padding, any::<u64>()),
    )
        .prop_map(
            |((batch, groups, ci, co), (kernel, stride, dilation, length), (padding, seed))| {
                Case {
                    batch,
                    groups,
                    in_per_group: ci,
                    out_per_group: co,
                    kernel,
                    stride,
                    // Keras refuses stride > 1 with dilation > 1.
                    dilation: if stride > 1 { 1 } else { dilation },
                    length,
                    padding,
                    seed,
                }
            },
        )
}

fn close(
    name: &str,
    what: &str,
    got: &[f32],
    want: &[f64],
    case: &Case,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{} {}", name, what);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-4 * w.abs().max(1.0);
        prop_assert!(
            (g as f64 - w).abs() <= tol,
            "{} {} at {}: got {} want {} in {:?}",
            name,
            what,
            i,
            g,
            w,
            case
        );
    }
    Ok(())
}

fn run(case: &Case) -> Result<(), TestCaseError> {
    let (b, k, l) = (case.batch, case.kernel, case.length);
    let c = case.groups * case.in_per_group;
    let o = case.groups * case.out_per_group;
    let spec = Conv1dSpec::new(case.padding)
        .with_stride(case.stride)
        .with_dilation(case.dilation)
        .with_groups(case.groups);
    let x = pseudo_random(b * c * l, case.seed);
    let w = pseudo_random(o * case.in_per_group * k, case.seed ^ 1);
    let bias = pseudo_random(o, case.seed ^ 2);
    let (xa, wa) = (array(&x, &[b, c, l]), array(&w, &[o, case.in_per_group, k]));
    let Ok(y) = reference::conv1d(
        &xa,
        &wa,
        None,
        case.stride,
        case.dilation,
        case.groups,
        case.padding,
    ) else {
        return Ok(()); // geometry the forward refuses; conv_prop checks the errors match
    };
    let dy = pseudo_random(y.values.len(), case.seed ^ 3);
    let dya = array(&dy, &y.shape);
    let (dx, dw, db) = reference::conv1d_backward(
        &xa,
        &wa,
        &dya,
        case.stride,
        case.dilation,
        case.groups,
        case.padding,
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;

    // The kernel on host slices, with no Burn in between.
    let geo = conv_output(l, k, case.stride, case.dilation, case.padding).unwrap();
    let g = kernel::Geometry {
        batch: b,
        channels: c,
        length: l,
        filters: o,
        kernel: k,
        stride: case.stride,
        dilation: case.dilation,
        groups: case.groups,
        pad_left: geo.left,
        pad_right: geo.right,
    };
    let input = kernel::Input::contiguous(&x, [b, c, l]);
    let want_y: Vec<f64> = y
        .values
        .iter()
        .enumerate()
        .map(|(i, v)| v + bias[(i / y.shape[2]) % o] as f64)
        .collect();
    close(
        "kernel",
        "y",
        &kernel::forward(&input, &w, Some(&bias), &g).unwrap(),
        &want_y,
        case,
    )?;
    close(
        "kernel",
        "dx",
        &kernel::backward_input(&dy, &w, &g).unwrap(),
        &dx.values,
        case,
    )?;
    let (kernel_dw, kernel_db) = kernel::backward_weight(&input, &dy, &g).unwrap();
    close("kernel", "dw", &kernel_dw, &dw.values, case)?;
    close("kernel", "db (with dw)", &kernel_db, &db, case)?;
    close(
        "kernel",
        "db (alone)",
        &kernel::backward_bias(&dy, &g).unwrap(),
        &db,
        case,
    )?;

    let before = cpu::stats();
    for (name, device) in devices() {
        let device = device.autodiff();
        let xt = tensor3(&x, [b, c, l], &device).require_grad();
        let wt = tensor3(&w, [o, case.in_per_group, k], &device).require_grad();
        let bt = tensor1(&bias, &device).require_grad();
        let out = conv1d(xt.clone(), wt.clone(), Some(bt.clone()), &spec)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let up: Tensor<3> = tensor3(&dy, [b, o, y.shape[2]], &device);
        let grads = (out * up).sum().backward();
        close(
            name,
            "dx",
            &values(xt.grad(&grads).unwrap()),
            &dx.values,
            case,
        )?;
        close(
            name,
            "dw",
            &values(wt.grad(&grads).unwrap()),
            &dw.values,
            case,
        )?;
        close(name, "db", &values(bt.grad(&grads).unwrap()), &db, case)?;
    }
    // With the backends' features on, those passes ran in widen's kernel (forward and backward
    // on two backends), never in Burn's fallback.
    #[cfg(all(feature = "flex", feature = "ndarray", feature = "autodiff"))]
    {
        let after = cpu::stats();
        prop_assert!(
            after.kernel_runs >= before.kernel_runs + 4,
            "{:?} -> {:?}",
            before,
            after
        );
        prop_assert_eq!(after.fallbacks, 0);
    }
    let _ = before;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Input, weight and bias gradients equal the f64 reference within 1e-4 relative.
    #[test]
    fn conv1d_gradients_match_reference(case in case()) {
        run(&case)?;
    }

    /// The reference backward is the adjoint of the reference forward: for a bias-free conv,
    /// Σ y·dy = Σ x·dx = Σ w·dw, and Σ db = Σ dy.
    #[test]
    fn reference_backward_is_the_adjoint(case in case()) {
        let (b, k, l) = (case.batch, case.kernel, case.length);
        let c = case.groups * case.in_per_group;
        let o = case.groups * case.out_per_group;
        let xa = array(&pseudo_random(b * c * l, case.seed), &[b, c, l]);
        let wa = array(&pseudo_random(o * case.in_per_group * k, case.seed ^ 1), &[o, case.in_per_group, k]);
        let Ok(y) = reference::conv1d(&xa, &wa, None, case.stride, case.dilation, case.groups, case.padding) else {
            return Ok(());
        };
        let dya = array(&pseudo_random(y.values.len(), case.seed ^ 3), &y.shape);
        let (dx, dw, db) = reference::conv1d_backward(&xa, &wa, &dya, case.stride, case.dilation, case.groups, case.padding).unwrap();
        let forward = dot(&y.values, &dya.values);
        let scale = forward.abs().max(1.0);
        prop_assert!((dot(&xa.values, &dx.values) - forward).abs() <= 1e-9 * scale);
        prop_assert!((dot(&wa.values, &dw.values) - forward).abs() <= 1e-9 * scale);
        let total: f64 = dya.values.iter().sum();
        prop_assert!((db.iter().sum::<f64>() - total).abs() <= 1e-9 * total.abs().max(1.0));
    }
}

/// A shape big enough that batch items split over threads and GEMMs block (the bench's large
/// shape, cut down), forward and gradients against the reference.
#[test]
fn mid_size_conv_matches_reference() {
    let case = Case {
        batch: 3,
        groups: 1,
        in_per_group: 24,
        out_per_group: 40,
        kernel: 9,
        stride: 1,
        dilation: 1,
        length: 300,
        padding: Padding::Same,
        seed: 11,
    };
    run(&case).unwrap();
    run(&Case {
        batch: 1,
        stride: 2,
        ..case.clone()
    })
    .unwrap();
    run(&Case {
        groups: 4,
        in_per_group: 6,
        out_per_group: 10,
        dilation: 3,
        ..case
    })
    .unwrap();
}

/// The shape on which Burn 0.22.1's own ndarray backward of a grouped conv panics (`could not
/// broadcast array from shape [1, 1, 2] to [1, 1, 1]`): widen's conv1d must give the reference
/// gradients on every backend and feature set, with or without its CPU kernels.
#[test]
fn grouped_strided_shape_that_breaks_burn_matches_reference() {
    let case = Case {
        batch: 1,
        groups: 2,
        in_per_group: 1,
        out_per_group: 1,
        kernel: 1,
        stride: 2,
        dilation: 1,
        length: 8,
        padding: Padding::Valid,
        seed: 3,
    };
    run(&case).unwrap();
    run(&Case {
        groups: 3,
        kernel: 2,
        length: 9,
        ..case
    })
    .unwrap();
}
