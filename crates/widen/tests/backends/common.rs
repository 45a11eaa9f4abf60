use burn::tensor::{Device, Tensor, TensorData};
use widen::BackendKind;
use widen::layers::Value;

/// Set to `1` to skip the wgpu cases on a machine without a Vulkan, Metal or DX12 adapter.
pub const SKIP_WGPU: &str = "WIDEN_SKIP_WGPU";

fn skip_wgpu() -> bool {
    std::env::var(SKIP_WGPU).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Every backend compiled in, with its device (`autodiff` on top for training). A compiled-in
/// backend that cannot start fails the test loudly; wgpu is skipped only when asked to.
fn devices(autodiff: bool) -> Vec<(BackendKind, Device)> {
    let mut out = Vec::new();
    for kind in BackendKind::compiled() {
        if kind == BackendKind::Wgpu && skip_wgpu() {
            eprintln!("note: {SKIP_WGPU} is set: the wgpu cases are skipped");
            continue;
        }
        let device = if autodiff {
            kind.autodiff_device()
        } else {
            kind.device()
        };
        match device {
            Ok(device) => out.push((kind, device)),
            Err(e) => panic!(
                "{e}\n(set {SKIP_WGPU}=1 to skip wgpu on a machine without a GPU driver; CI \
                 installs lavapipe: mesa-vulkan-drivers)"
            ),
        }
    }
    assert!(!out.is_empty(), "no backend compiled in");
    out
}

/// Inference devices of every compiled backend.
pub fn backends() -> Vec<(BackendKind, Device)> {
    devices(false)
}

/// Autodiff devices of every compiled backend.
pub fn autodiff_backends() -> Vec<(BackendKind, Device)> {
    devices(true)
}

pub fn tensor3(values: &[f32], shape: [usize; 3], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

pub fn tensor1(values: &[f32], device: &Device) -> Tensor<1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

pub fn data_values(data: TensorData) -> Vec<f32> {
    data.convert::<f32>().try_to_vec::<f32>().unwrap()
}

pub fn values(v: Value) -> Vec<f32> {
    match v {
        Value::Seq(t) => data_values(t.into_data()),
        Value::Flat(t) => data_values(t.into_data()),
    }
}

/// Deterministic values in [-1, 1) from widen-init's seeded host RNG.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = widen::init::HostRng::new(seed);
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()
}

pub fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
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
