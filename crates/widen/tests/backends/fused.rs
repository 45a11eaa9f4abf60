//! Sequential's fused inference head (Conv1D → [BatchNorm] → global pool as one CPU op) equals
//! the same layers run one by one, on every backend (wgpu runs the layers; the CPU backends
//! the fused kernel, which the counters must show).

use burn::tensor::TensorData;
use widen::layers::{
    Activation, BatchNormConfig, Conv1dConfig, InputSpec, LayerConfig, Mode, ModelSpec,
    PaddingMode, Sequential, Value,
};

use crate::common::{assert_close, backends, pseudo_random, tensor3, values};

fn models() -> Vec<(&'static str, ModelSpec)> {
    let input = InputSpec::new(6).with_length(40);
    let bn = || LayerConfig::BatchNorm1d(BatchNormConfig::keras());
    vec![
        (
            "conv-bn-max",
            ModelSpec::new(input)
                .push(LayerConfig::Conv1d(Conv1dConfig::new(12, 3)))
                .push(bn())
                .push(LayerConfig::GlobalMaxPool1d),
        ),
        (
            "conv(relu, same, stride 2)-bn-avg",
            ModelSpec::new(input)
                .push(LayerConfig::Conv1d(
                    Conv1dConfig::new(10, 4)
                        .with_padding(PaddingMode::Same)
                        .with_strides(2)
                        .with_activation(Activation::Relu),
                ))
                .push(bn())
                .push(LayerConfig::GlobalAvgPool1d),
        ),
        (
            "conv(dilation 2)-max",
            ModelSpec::new(input)
                .push(LayerConfig::Conv1d(
                    Conv1dConfig::new(8, 3).with_dilation_rate(2),
                ))
                .push(LayerConfig::GlobalMaxPool1d),
        ),
    ]
}

#[test]
fn fused_head_equals_layer_by_layer() {
    for (kind, device) in backends() {
        for (name, spec) in models() {
            let mut model = Sequential::new(spec, 3, &device).unwrap();
            if name.contains("bn") {
                // Non-trivial moving statistics and a negative gamma (the max then comes from
                // the conv's minimum).
                let gamma: Vec<f32> = pseudo_random(16, 1).iter().map(|v| v * 2.0).collect();
                let f = model.weight("conv1d", "bias").unwrap().shape()[0];
                let set = |m: &mut Sequential, p: &str, v: Vec<f32>| {
                    m.set_weight("batch_normalization", p, TensorData::new(v, [f]))
                        .unwrap()
                };
                set(&mut model, "gamma", gamma[..f].to_vec());
                set(&mut model, "beta", pseudo_random(f, 2));
                set(&mut model, "moving_mean", pseudo_random(f, 3));
                let var = pseudo_random(f, 4).iter().map(|v| v.abs() + 0.1).collect();
                set(&mut model, "moving_variance", var);
            }
            let x = tensor3(&pseudo_random(4 * 40 * 6, 9), [4, 40, 6], &device);
            let before = widen::ops::cpu::stats().kernel_runs;
            let fused = values(model.forward(x.clone()).unwrap());
            let ran = widen::ops::cpu::stats().kernel_runs > before;
            let trace = model.forward_trace(x, Mode::Inference).unwrap();
            let Some((_, Value::Flat(last))) = trace.last().cloned() else {
                panic!("{name}: the model ends flat");
            };
            let unfused = values(Value::Flat(last));
            // Max: exact in exact arithmetic and in floats (every step is monotone); the mean
            // sums in another order.
            let tol = if name.contains("avg") { 1e-5 } else { 1e-6 };
            assert_close(&fused, &unfused, tol, &format!("{kind} {name}"));
            if widen::ops::cpu::accelerated(&device) {
                assert!(ran, "{kind} {name}: the fused kernel did not run");
            }
        }
    }
}
