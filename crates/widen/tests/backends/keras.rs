//! Keras parity on every backend: the models of crates/layers/tests/fixtures/keras_models.json
//! (format: tools/fixtures/README.md), their Keras weights loaded, outputs compared.

use crate::common::{assert_close, backends, tensor3, values};
use crate::keras_fixture::{bn_gain, build, dims3, fixture};

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
            let gain = bn_gain(m);
            let c = gain.len();
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
