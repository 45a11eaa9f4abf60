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

/// Deterministic values in [-1, 1) from widen-init's seeded host RNG.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = widen_init::HostRng::new(seed);
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()
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

/// A scratch directory under the system temp dir, removed on drop.
pub struct TestDir(pub std::path::PathBuf);

impl TestDir {
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("widen-layers-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }

    /// Names in the directory, sorted (hidden ones included).
    pub fn entries(&self) -> Vec<String> {
        list(&self.0)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Names in `dir`, sorted.
pub fn list(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Every float of a tensor as raw bits, for bit-identity checks.
pub fn bits(data: TensorData) -> Vec<u32> {
    values(data).into_iter().map(f32::to_bits).collect()
}
