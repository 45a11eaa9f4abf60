use burn::tensor::{Device, Tensor, TensorData};
use widen_layers::Value;

pub fn tensor3(values: &[f32], shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

pub fn values(v: Value) -> Vec<f32> {
    match v {
        Value::Seq(t) => t.into_data(),
        Value::Flat(t) => t.into_data(),
    }
    .convert::<f32>()
    .try_to_vec::<f32>()
    .unwrap()
}

pub fn data_values(d: TensorData) -> Vec<f32> {
    d.convert::<f32>().try_to_vec::<f32>().unwrap()
}

/// Deterministic values in [-1, 1) from widen-init's seeded host RNG.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = widen_init::HostRng::new(seed);
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()
}

/// Channels-last `[b, l, c_new]` data whose old channels (at `positions`) equal `old`
/// (`[b, l, c_old]`) and whose other channels hold `fill(index)`.
pub fn widen_data(
    old: &[f32],
    b: usize,
    l: usize,
    c_old: usize,
    c_new: usize,
    positions: &[usize],
    fill: impl Fn(usize) -> f32,
) -> Vec<f32> {
    let mut out: Vec<f32> = (0..b * l * c_new).map(&fill).collect();
    for bi in 0..b {
        for t in 0..l {
            for (i, &p) in positions.iter().enumerate() {
                out[(bi * l + t) * c_new + p] = old[(bi * l + t) * c_old + i];
            }
        }
    }
    out
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
