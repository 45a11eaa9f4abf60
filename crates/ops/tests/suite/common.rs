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

pub fn tensor1(values: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Deterministic values in [-1, 1) from widen-init's seeded host RNG, so failures reproduce.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = widen_init::HostRng::new(seed);
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()
}
