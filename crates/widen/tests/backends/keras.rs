//! Keras parity on every backend: the models of crates/layers/tests/fixtures/keras_models.json
//! (format: tools/fixtures/README.md), their Keras weights loaded, outputs compared.

use crate::common::{assert_close, backends, tensor3, values};
use crate::keras_fixture::{build, dims3, fixture};

/// Keras' inference outputs within 1e-5 (the bound the CPU suite holds them to) on every
/// backend.
#[test]
fn inference_matches_keras() {
    let fixture = fixture();
    assert_eq!(fixture.models.len(), 5);
    for (backend, device) in backends() {
        for m in &fixture.models {
            let model = build(m, &device);
            let x = tensor3(&m.input, dims3(&m.input_shape), &device);
            let y = model.forward(x).unwrap();
            assert_eq!(y.dims(), m.output_shape, "{} on {backend}", m.name);
            let what = format!("{} inference on {backend}", m.name);
            assert_close(&values(y), &m.output_inference, 1e-5, &what);
        }
    }
}

/// Training mode (batch statistics). BatchNorm divides by the batch std, so rounding in the
/// convolutions before it is multiplied by |gamma| / std per channel; the tolerance is 1e-5
/// times that gain, computed from Keras' own BN input.
#[test]
fn training_forward_matches_keras() {
    let fixture = fixture();
    let mut checked = 0;
    for (backend, device) in backends() {
        for m in fixture.models.iter().filter(|m| m.bn_layer.is_some()) {
            let bn = m.bn_layer.as_deref().unwrap();
            let bn_in = m.bn_input_training.as_ref().unwrap();
            let c = *m.bn_input_training_shape.as_ref().unwrap().last().unwrap();
            let n = bn_in.len() / c;
            let gamma = &m.layers.iter().find(|l| l.name == bn).unwrap().weights["gamma"].values;
            let gain: Vec<f32> = (0..c)
                .map(|ch| {
                    let xs = bn_in.iter().skip(ch).step_by(c).map(|&v| v as f64);
                    let mean = xs.clone().sum::<f64>() / n as f64;
                    let var = xs.map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
                    ((gamma[ch] as f64).abs() / (var + 1e-3).sqrt()).max(1.0) as f32
                })
                .collect();
            let model = build(m, &device);
            let x = tensor3(&m.input, dims3(&m.input_shape), &device);
            let got = values(model.forward_train(x).unwrap());
            let want = m.output_training.as_ref().unwrap();
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(want).enumerate() {
                let tol = 1e-5 * gain[i % c];
                assert!(
                    (g - w).abs() <= tol,
                    "{} training on {backend} at {i}: {g} vs Keras {w} (tol {tol})",
                    m.name
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "the BatchNorm models were checked");
}
