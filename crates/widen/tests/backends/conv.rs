//! `widen_ops::conv1d` against the f64 reference on every backend, over a grid of geometries.
//! The bound is the classical one for a float dot product of n terms summed in any order,
//! `|got − exact| ≤ γ_n · Σ|x·w|` with `γ_n ≈ n · u` (u = 2⁻²⁴): it holds for every summation
//! order a kernel may pick (tiles, shared-memory reductions, FMA), so GPU kernels need no looser
//! tolerance than the CPU; ×2 is headroom.

use widen::ops::{Conv1dSpec, Padding, conv1d, reference};

use crate::common::{backends, data_values, pseudo_random, tensor1, tensor3};
use crate::tolerance::gamma;

struct Case {
    groups: usize,
    in_per_group: usize,
    out_per_group: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for padding in [
        Padding::Valid,
        Padding::Same,
        Padding::Causal,
        Padding::Explicit { left: 2, right: 1 },
    ] {
        for (stride, dilation) in [(1, 1), (2, 1), (1, 2)] {
            for (groups, in_per_group, out_per_group, kernel) in [(1, 8, 16, 3), (2, 3, 2, 4)] {
                out.push(Case {
                    groups,
                    in_per_group,
                    out_per_group,
                    kernel,
                    stride,
                    dilation,
                    padding,
                });
            }
        }
    }
    // The seed examples' shapes: Ex1's first conv and Ex3's 1×1 conv.
    out.push(Case {
        groups: 1,
        in_per_group: 32,
        out_per_group: 16,
        kernel: 3,
        stride: 1,
        dilation: 1,
        padding: Padding::Valid,
    });
    out.push(Case {
        groups: 1,
        in_per_group: 16,
        out_per_group: 32,
        kernel: 1,
        stride: 1,
        dilation: 1,
        padding: Padding::Valid,
    });
    out
}

fn array(values: &[f32], shape: Vec<usize>) -> reference::Array {
    reference::Array {
        values: values.iter().map(|&v| v as f64).collect(),
        shape,
    }
}

fn abs(a: &reference::Array) -> reference::Array {
    reference::Array {
        values: a.values.iter().map(|v| v.abs()).collect(),
        shape: a.shape.clone(),
    }
}

#[test]
fn conv1d_matches_the_f64_reference() {
    let (batch, length) = (3, 23);
    for (backend, device) in backends() {
        for (n, case) in cases().iter().enumerate() {
            let c = case.groups * case.in_per_group;
            let o = case.groups * case.out_per_group;
            let k = case.kernel;
            let seed = 100 + n as u64;
            let x = pseudo_random(batch * c * length, seed);
            let w = pseudo_random(o * case.in_per_group * k, seed ^ 1);
            let b = pseudo_random(o, seed ^ 2);
            let spec = Conv1dSpec::new(case.padding)
                .with_stride(case.stride)
                .with_dilation(case.dilation)
                .with_groups(case.groups);
            let (xa, wa) = (
                array(&x, vec![batch, c, length]),
                array(&w, vec![o, case.in_per_group, k]),
            );
            let b64: Vec<f64> = b.iter().map(|&v| v as f64).collect();
            let exact = reference::conv1d(
                &xa,
                &wa,
                Some(&b64),
                case.stride,
                case.dilation,
                case.groups,
                case.padding,
            )
            .unwrap();
            let b_abs: Vec<f64> = b64.iter().map(|v| v.abs()).collect();
            let magnitude = reference::conv1d(
                &abs(&xa),
                &abs(&wa),
                Some(&b_abs),
                case.stride,
                case.dilation,
                case.groups,
                case.padding,
            )
            .unwrap();
            let y = conv1d(
                tensor3(&x, [batch, c, length], &device),
                tensor3(&w, [o, case.in_per_group, k], &device),
                Some(tensor1(&b, &device)),
                &spec,
            )
            .unwrap();
            assert_eq!(y.dims().to_vec(), exact.shape, "case {n} on {backend}");
            let got = data_values(y.into_data());
            // n products and the bias; ×2 headroom.
            let gamma = 2.0 * gamma(case.in_per_group * k + 1);
            for (i, ((g, e), m)) in got
                .iter()
                .zip(&exact.values)
                .zip(&magnitude.values)
                .enumerate()
            {
                let tol = gamma * m + f64::from(f32::MIN_POSITIVE);
                assert!(
                    (*g as f64 - e).abs() <= tol,
                    "conv case {n} on {backend} at {i}: {g} vs exact {e} (tol {tol:e})"
                );
            }
        }
    }
}
