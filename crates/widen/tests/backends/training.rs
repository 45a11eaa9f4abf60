//! One training step on every backend: gradients reach every trainable tensor, finite, and agree
//! with ndarray's; an optimiser step keeps every parameter finite.

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use widen::BackendKind;
use widen::adapt::{ExpandRequest, ProjectionInit, Strategy, expand};
use widen::layers::{
    Activation, BatchNormConfig, Conv1dConfig, DenseConfig, InputSpec, LayerConfig, ModelSpec,
    Sequential, keras_ex1,
};

use crate::common::{autodiff_backends, data_values, pseudo_random, tensor3};
use crate::gradients::gradients;
use crate::tolerance::{Diff, GRADIENT_REL, INFERENCE_REL, Quantity, TRAINING_REL, gamma};

/// Conv → BatchNorm → 1×1 conv → pool → Dense → BatchNorm (flat) → Dense, smooth activations so
/// no gradient is zero by a dead ReLU.
fn deep() -> ModelSpec {
    ModelSpec::new(InputSpec::new(3).with_length(12))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(6, 3).with_activation(Activation::Tanh),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(5, 1).with_activation(Activation::Tanh),
        ))
        .push(LayerConfig::GlobalAvgPool1d)
        .push(LayerConfig::Dense(
            DenseConfig::new(4).with_activation(Activation::Tanh),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
        .push(LayerConfig::Dense(DenseConfig::new(2)))
}

/// The models every backend trains: the deep stack, Ex1, and Ex1 widened to 32 channels by zero
/// slices and by an identity projection.
fn models(device: &Device) -> Vec<(&'static str, Sequential, [usize; 3])> {
    let ex1 = || Sequential::new(keras_ex1(8, 50), 3, device).unwrap();
    let widened = |strategy| {
        expand(&ex1(), &ExpandRequest::new(32, strategy))
            .unwrap()
            .model
    };
    // The last Dense gets a bias: with a zero bias after a batch-normalised layer, the batch
    // sum of its outputs is exactly zero, and so is the flat BatchNorm's beta gradient (only
    // rounding noise would be compared).
    let mut deep = Sequential::new(deep(), 4, device).unwrap();
    deep.set_weight("dense_1", "bias", TensorData::new(vec![0.3f32, -0.2], [2]))
        .unwrap();
    vec![
        ("deep", deep, [8, 12, 3]),
        ("ex1", ex1(), [10, 50, 8]),
        ("ex1+zero", widened(Strategy::Zero), [10, 50, 32]),
        (
            "ex1+projection",
            widened(Strategy::Projection {
                init: ProjectionInit::Identity,
            }),
            [10, 50, 32],
        ),
    ]
}

/// Mean of squares of a training forward, backpropagated.
fn backward(model: &Sequential, x: Tensor<3>) -> Gradients {
    let y = model.forward_train(x).unwrap().into_flat().unwrap();
    (y.clone() * y).mean().backward()
}

fn input(shape: [usize; 3], device: &Device) -> Tensor<3> {
    tensor3(&pseudo_random(shape.iter().product(), 21), shape, device)
}

#[test]
fn a_training_step_gives_finite_gradients_and_parameters() {
    for (backend, device) in autodiff_backends() {
        for (name, model, shape) in models(&device) {
            let grads = backward(&model, input(shape, &device));
            let all = gradients(&model, &grads).unwrap();
            assert!(!all.is_empty(), "{name} has trainable tensors");
            for (param, g) in &all {
                let g = g
                    .as_ref()
                    .unwrap_or_else(|| panic!("{name} on {backend}: {param} got no gradient"));
                assert!(
                    g.iter().all(|v| v.is_finite()),
                    "{name} on {backend}: {param} has a non-finite gradient"
                );
                // Ex1's GlobalMaxPool routes gradients to one position per channel; a whole
                // all-zero gradient would mean the graph was cut.
                assert!(
                    g.iter().any(|&v| v != 0.0),
                    "{name} on {backend}: {param} has an all-zero gradient"
                );
            }
            let grads = GradientsParams::from_grads(grads, &model);
            let mut optim = AdamConfig::new().init();
            let model = optim.step(1e-2, model, grads);
            for info in model.weight_infos() {
                let v = data_values(model.weight(&info.layer, &info.param).unwrap());
                assert!(
                    v.iter().all(|x| x.is_finite()),
                    "{name} on {backend}: {} not finite after a step",
                    info.key()
                );
            }
            assert!(model.num_params() > 0);
        }
    }
}

/// Every backend's gradients agree with ndarray's within the documented gradient tolerance
/// (the same bound `cargo xtask compare-backends` enforces).
#[test]
fn gradients_agree_with_ndarray() {
    let backends = autodiff_backends();
    let Some((_, reference_device)) = backends.iter().find(|(k, _)| *k == BackendKind::Ndarray)
    else {
        return; // ndarray not compiled in: nothing to compare against
    };
    let reference: Vec<_> = models(reference_device)
        .into_iter()
        .map(|(name, model, shape)| {
            let grads = backward(&model, input(shape, reference_device));
            (name, gradients(&model, &grads).unwrap())
        })
        .collect();
    for (backend, device) in backends.iter().filter(|(k, _)| *k != BackendKind::Ndarray) {
        for ((name, model, shape), (_, want)) in models(device).into_iter().zip(&reference) {
            let grads = backward(&model, input(shape, device));
            let got = gradients(&model, &grads).unwrap();
            assert_eq!(got.len(), want.len());
            for ((param, g), (_, w)) in got.iter().zip(want) {
                let diff = Diff::between(g.as_deref().unwrap(), w.as_deref().unwrap());
                assert!(
                    diff.within(Quantity::Gradient),
                    "{name}.{param} on {backend}: {diff:?} vs ndarray (tolerance {:e})",
                    Quantity::Gradient.tolerance()
                );
            }
        }
    }
}

/// The documented tolerances cover the float32 error bounds they claim to (docs/BACKENDS.md),
/// checked at compile time.
const _: () = {
    assert!(INFERENCE_REL >= gamma(32 * 3 + 1), "Ex3's conv sums");
    assert!(TRAINING_REL >= INFERENCE_REL);
    assert!(GRADIENT_REL >= gamma(10 * 48), "Ex1's weight-gradient sums");
};
