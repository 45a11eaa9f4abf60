use burn::tensor::{Device, Tensor, TensorData};

/// The CPU backends every test runs on.
pub fn devices() -> Vec<(&'static str, Device)> {
    #[allow(deprecated)] // ndarray stays tested while users still pick it
    let ndarray = Device::ndarray();
    vec![("flex", Device::flex()), ("ndarray", ndarray)]
}

pub fn tensor3(values: &[f32], shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

pub fn values(data: TensorData) -> Vec<f32> {
    data.convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Deterministic pseudo-random values in [-1, 1) (splitmix64).
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

pub fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what} at {i}: got {g}, want {w} (tol {tol})"
        );
    }
}
