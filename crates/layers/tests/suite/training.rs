//! Training on an autodiff device: gradients reach every trainable tensor and agree with finite
//! differences; freezing a layer stops its gradients; a frozen model's BatchNorm infers.

use burn::module::Module;
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use widen_layers::{
    Activation, BatchNormConfig, Conv1dConfig, DenseConfig, InputSpec, Layer, LayerConfig,
    ModelSpec, Sequential, Value, WeightFormat, keras_ex1,
};

use crate::common::{TestDir, bits, pseudo_random, tensor3, values};

fn autodiff() -> Device {
    Device::flex().autodiff()
}

/// Conv → BatchNorm → 1×1 conv → pool → Dense → BatchNorm (flat) → Dense. Smooth
/// activations, so no gradient is zero by a dead ReLU.
fn spec() -> ModelSpec {
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

fn flat(value: Value) -> Tensor<2> {
    value.into_flat().unwrap()
}

/// Mean of squares of a training forward, backpropagated.
fn backward(model: &Sequential, x: &Tensor<3>) -> Gradients {
    let y = flat(model.forward_train(x.clone()).unwrap());
    (y.clone() * y).mean().backward()
}

/// Every trainable tensor with its gradient, if it got one.
fn gradients(model: &Sequential, grads: &Gradients) -> Vec<(String, Option<Vec<f32>>)> {
    let grad = |t: Tensor<1>| t.grad(grads).map(|g| values(g.into_data()));
    let mut out = Vec::new();
    for layer in model.layers() {
        let name = layer.name().to_string();
        let mut push = |param: &str, g: Option<Vec<f32>>| out.push((format!("{name}.{param}"), g));
        match layer {
            Layer::Conv1d(l) => {
                push(
                    "weight",
                    l.weight.val().grad(grads).map(|g| values(g.into_data())),
                );
                push("bias", l.bias.as_ref().and_then(|b| grad(b.val())));
            }
            Layer::Dense(l) => {
                push(
                    "weight",
                    l.weight.val().grad(grads).map(|g| values(g.into_data())),
                );
                push("bias", l.bias.as_ref().and_then(|b| grad(b.val())));
            }
            Layer::BatchNorm1d(l) => {
                push("gamma", l.gamma.as_ref().and_then(|g| grad(g.val())));
                push("beta", l.beta.as_ref().and_then(|b| grad(b.val())));
            }
            _ => {}
        }
    }
    out
}

fn assert_live(name: &str, grad: &Option<Vec<f32>>) {
    let g = grad
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no gradient"));
    assert!(
        g.iter().all(|v| v.is_finite()),
        "{name}: non-finite gradient"
    );
    assert!(g.iter().any(|&v| v != 0.0), "{name}: all-zero gradient");
}

fn x(device: &Device) -> Tensor<3> {
    tensor3(&pseudo_random(8 * 12 * 3, 21), [8, 12, 3], device)
}

#[test]
fn gradients_reach_every_trainable_tensor() {
    let device = autodiff();
    let model = Sequential::new(spec(), 4, &device).unwrap();
    let grads = gradients(&model, &backward(&model, &x(&device)));
    let names: Vec<&str> = grads.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1d.weight",
            "conv1d.bias",
            "batch_normalization.gamma",
            "batch_normalization.beta",
            "conv1d_1.weight",
            "conv1d_1.bias",
            "dense.weight",
            "dense.bias",
            "batch_normalization_1.gamma",
            "batch_normalization_1.beta",
            "dense_1.weight",
            "dense_1.bias",
        ]
    );
    for (name, g) in &grads {
        assert_live(name, g);
    }
}

#[test]
fn a_frozen_layer_gets_no_gradient_until_unfrozen() {
    let device = autodiff();
    let x = x(&device);
    let model = Sequential::new(spec(), 4, &device)
        .unwrap()
        .freeze_layer("conv1d")
        .unwrap();
    let Layer::Conv1d(conv) = &model.layers()[0] else {
        panic!("layer 0 is the conv");
    };
    assert!(!conv.weight.val().is_require_grad());
    for (name, g) in gradients(&model, &backward(&model, &x)) {
        if name.starts_with("conv1d.") {
            assert!(g.is_none(), "{name}: frozen but got a gradient");
        } else {
            assert_live(&name, &g);
        }
    }

    let model = model.unfreeze_layer("conv1d").unwrap();
    for (name, g) in gradients(&model, &backward(&model, &x)) {
        assert_live(&name, &g);
    }
}

fn moving_bits(model: &Sequential) -> Vec<Vec<u32>> {
    ["moving_mean", "moving_variance"]
        .iter()
        .map(|p| bits(model.weight("batch_normalization", p).unwrap()))
        .collect()
}

#[test]
fn a_frozen_model_runs_batchnorm_in_inference_mode() {
    let device = autodiff();
    let model = Sequential::new(keras_ex1(8, 20), 3, &device).unwrap();
    let x = tensor3(&pseudo_random(6 * 20 * 8, 2), [6, 20, 8], &device);
    let out = |v: Value| bits(flat(v).into_data());

    // Unfrozen, training mode uses batch statistics and moves the moving ones.
    let before = moving_bits(&model);
    let trained = out(model.forward_train(x.clone()).unwrap());
    assert_ne!(trained, out(model.forward(x.clone()).unwrap()));
    assert_ne!(moving_bits(&model), before);

    let frozen = model.freeze();
    let Layer::BatchNorm1d(bn) = &frozen.layers()[1] else {
        panic!("layer 1 is the BatchNorm");
    };
    assert!(!bn.is_trainable());
    let before = moving_bits(&frozen);
    assert_eq!(
        out(frozen.forward_train(x.clone()).unwrap()),
        out(frozen.forward(x).unwrap())
    );
    assert_eq!(moving_bits(&frozen), before);
}

#[test]
fn conv_gradient_matches_finite_differences() {
    let device = autodiff();
    let spec = ModelSpec::new(InputSpec::new(2).with_length(6))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(3, 2).with_activation(Activation::Tanh),
        ))
        .push(LayerConfig::GlobalAvgPool1d);
    let model = Sequential::new(spec, 8, &device).unwrap();
    let x = tensor3(&pseudo_random(4 * 6 * 2, 13), [4, 6, 2], &device);

    let y = flat(model.forward_train(x.clone()).unwrap());
    let grads = (y.clone() * y).sum().backward();
    let Layer::Conv1d(conv) = &model.layers()[0] else {
        panic!("layer 0 is the conv");
    };
    let analytic = values(conv.weight.val().grad(&grads).unwrap().into_data());

    // Loss summed in f64 on the host, so the difference quotient sees the model's f32
    // rounding only.
    let loss = |weight: Vec<f32>| -> f64 {
        let mut m = model.clone();
        m.set_weight("conv1d", "weight", TensorData::new(weight, [3, 2, 2]))
            .unwrap();
        values(flat(m.forward(x.clone()).unwrap()).into_data())
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum()
    };
    let base = values(model.weight("conv1d", "weight").unwrap());
    let h = 1e-2f32;
    let mut checked = 0;
    for (i, &a) in analytic.iter().enumerate() {
        let mut plus = base.clone();
        plus[i] += h;
        let mut minus = base.clone();
        minus[i] -= h;
        let numeric = (loss(plus) - loss(minus)) / (2.0 * f64::from(h));
        let a = f64::from(a);
        let scale = a.abs().max(numeric.abs());
        if scale >= 1e-2 {
            checked += 1;
            let rel = (a - numeric).abs() / scale;
            assert!(
                rel < 1e-2,
                "element {i}: autodiff {a}, finite difference {numeric}"
            );
        } else {
            assert!(
                (a - numeric).abs() < 1e-4,
                "element {i}: autodiff {a}, finite difference {numeric}"
            );
        }
    }
    // Most elements must have a gradient large enough for the relative check to mean something.
    assert!(
        checked >= analytic.len() / 2,
        "only {checked} elements checked"
    );
}

#[test]
fn a_loaded_checkpoint_trains() {
    let plain = Device::flex();
    let model = Sequential::new(keras_ex1(8, 20), 5, &plain).unwrap();
    let dir = TestDir::new("train-load");
    let ckpt = dir.join("ckpt");
    model.save(&ckpt, WeightFormat::Safetensors).unwrap();

    let device = autodiff();
    let loaded = Sequential::load(&ckpt, &device).unwrap();
    let x = tensor3(&pseudo_random(6 * 20 * 8, 3), [6, 20, 8], &device);
    let y = flat(loaded.forward_train(x).unwrap());
    let grads = (y.clone() * y).mean().backward();
    for (name, g) in gradients(&loaded, &grads) {
        assert_live(&name, &g);
    }
}
