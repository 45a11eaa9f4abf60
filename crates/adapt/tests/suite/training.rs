//! Freezing the base: only what the expansion added moves.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use widen_adapt::{ExpandRequest, ProjectionInit, Strategy, expand, freeze_base, gradient_norms};
use widen_layers::{Sequential, Value, keras_ex1};

use crate::common::{data_values, pseudo_random, tensor3};

fn step(
    model: Sequential,
    x: burn::tensor::Tensor<3>,
    mask: Option<&widen_adapt::GradientMask>,
) -> (Sequential, Vec<widen_adapt::GradientNorm>) {
    let mut optim = AdamConfig::new().init();
    let out = match model.forward_train(x).unwrap() {
        Value::Flat(t) => t,
        Value::Seq(_) => panic!("flat output expected"),
    };
    let loss = (out.clone() * out).mean();
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    if let Some(mask) = mask {
        mask.apply(&mut grads);
    }
    let norms = gradient_norms(&model, &grads).unwrap();
    (optim.step(1e-2, model, grads), norms)
}

#[test]
fn kernel_expansion_trains_only_new_slices() {
    let device = Device::flex().autodiff();
    let base = Sequential::new(keras_ex1(3, 12), 4, &device).unwrap();
    let wide = expand(&base, &ExpandRequest::new(5, Strategy::Zero)).unwrap();
    let (model, mask) = freeze_base(wide).unwrap();
    assert_eq!(mask.len(), 1, "the one widened kernel gets a gradient mask");
    let mask = mask.into_iter().next().unwrap();
    let before = data_values(model.weight("conv1d", "weight").unwrap());
    let bn_before = data_values(model.weight("batch_normalization", "gamma").unwrap());
    let x = tensor3(&pseudo_random(4 * 12 * 5, 2), [4, 12, 5], &device);
    let (model, norms) = step(model, x, Some(&mask));
    let after = data_values(model.weight("conv1d", "weight").unwrap());
    let (o, c, k) = (32, 5, 3);
    let mut moved = 0;
    for oi in 0..o {
        for j in 0..c {
            for t in 0..k {
                let i = (oi * c + j) * k + t;
                if j < 3 {
                    assert_eq!(after[i].to_bits(), before[i].to_bits(), "old slice moved");
                } else if after[i] != before[i] {
                    moved += 1;
                }
            }
        }
    }
    assert!(moved > 0, "new slices must train");
    assert_eq!(
        bn_before,
        data_values(model.weight("batch_normalization", "gamma").unwrap())
    );
    let bn_norm = norms
        .iter()
        .find(|n| n.layer == "batch_normalization")
        .unwrap();
    assert_eq!(bn_norm.norm, 0.0, "frozen BatchNorm gets no gradient");
}

#[test]
fn projection_trains_alone() {
    let device = Device::flex().autodiff();
    let base = Sequential::new(keras_ex1(3, 12), 4, &device).unwrap();
    let wide = expand(
        &base,
        &ExpandRequest::new(
            6,
            Strategy::Projection {
                init: ProjectionInit::Identity,
            },
        ),
    )
    .unwrap();
    assert_eq!(wide.adapted_layers.len(), 1);
    let name = wide.adapted_layers[0].clone();
    let (model, mask) = freeze_base(wide).unwrap();
    assert!(mask.is_empty());
    let conv_before = data_values(model.weight("conv1d", "weight").unwrap());
    let proj_before = data_values(model.weight(&name, "weight").unwrap());
    let x = tensor3(&pseudo_random(4 * 12 * 6, 2), [4, 12, 6], &device);
    let (model, norms) = step(model, x, None);
    assert_eq!(
        conv_before,
        data_values(model.weight("conv1d", "weight").unwrap()),
        "base frozen"
    );
    assert_ne!(
        proj_before,
        data_values(model.weight(&name, "weight").unwrap()),
        "projection trains"
    );
    assert!(norms.iter().find(|n| n.layer == name).unwrap().norm > 0.0);

    // Unfreezing lets the base train again.
    let model = widen_adapt::unfreeze_all(model);
    let x = tensor3(&pseudo_random(4 * 12 * 6, 3), [4, 12, 6], &device);
    let (model, norms) = step(model, x, None);
    assert!(norms.iter().find(|n| n.layer == "conv1d").unwrap().norm > 0.0);
    assert_ne!(
        conv_before,
        data_values(model.weight("conv1d", "weight").unwrap()),
        "base trains after unfreeze"
    );
}
