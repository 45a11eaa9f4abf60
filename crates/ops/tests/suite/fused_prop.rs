//! The fused inference head (conv → activation → per-channel affine → global pool in one CPU op)
//! against the same pipeline in separate ops, over random geometry, signs and pools.
#![cfg(all(feature = "flex", feature = "ndarray"))]

use burn::tensor::{Tensor, activation};
use proptest::prelude::*;
use widen_ops::cpu::{self, GlobalPool, Monotone};
use widen_ops::{Conv1dSpec, Padding, conv1d};

use crate::common::{devices, pseudo_random, tensor1, tensor3, values};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn fused_head_matches_separate_ops(
        (b, groups, ci, co, k, l) in (1usize..4, 1usize..3, 1usize..5, 1usize..5, 1usize..5, 6usize..30),
        (stride, dilation, same, relu, max, seed) in (1usize..3, 1usize..3, any::<bool>(), any::<bool>(), any::<bool>(), any::<u64>()),
    ) {
        let dilation = if stride > 1 { 1 } else { dilation };
        let (c, f) = (groups * ci, groups * co);
        let spec = Conv1dSpec::new(if same { Padding::Same } else { Padding::Valid })
            .with_stride(stride)
            .with_dilation(dilation)
            .with_groups(groups);
        let x = pseudo_random(b * c * l, seed);
        let w = pseudo_random(f * ci * k, seed ^ 1);
        let bias = pseudo_random(f, seed ^ 2);
        // Scales of both signs: a negative one takes the max from the conv's minimum.
        let scale = pseudo_random(f, seed ^ 3);
        let shift = pseudo_random(f, seed ^ 4);
        let (act, pool) = (
            if relu { Monotone::Relu } else { Monotone::Linear },
            if max { GlobalPool::Max } else { GlobalPool::Avg },
        );
        for (name, device) in devices() {
            let xt = tensor3(&x, [b, c, l], &device);
            let wt = tensor3(&w, [f, ci, k], &device);
            let bt = tensor1(&bias, &device);
            let (st, ht) = (tensor1(&scale, &device), tensor1(&shift, &device));
            let Ok(y) = conv1d(xt.clone(), wt.clone(), Some(bt.clone()), &spec) else {
                continue; // the window does not fit; conv_prop checks the error
            };
            let y = if relu { activation::relu(y) } else { y };
            let z = y * st.clone().reshape([1, f, 1]) + ht.clone().reshape([1, f, 1]);
            let pooled: Tensor<2> = match pool {
                GlobalPool::Max => z.max_dim(2),
                GlobalPool::Avg => z.mean_dim(2),
            }
            .reshape([b, f]);
            let fused = cpu::conv1d_global_pool(&xt, &wt, Some(&bt), &spec, act, &st, &ht, pool)
                .expect("the kernel serves flex and ndarray");
            let (got, want) = (values(fused), values(pooled));
            // Max: the same sums and monotone steps, so equal up to the last bit or two.
            let tol = if max { 1e-6 } else { 1e-5 };
            for (i, (g, v)) in got.iter().zip(&want).enumerate() {
                prop_assert!((g - v).abs() <= tol * v.abs().max(1.0), "{} at {}: {} vs {}", name, i, g, v);
            }
        }
    }
}
