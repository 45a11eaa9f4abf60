//! Helpers the suite shares: the device, seeded inputs, a forward that returns host values, the
//! fixtures' paths and a float32 `.npy` reader (the crate reads no `.npy` itself).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use widen_layers::{DataFormat, Model, Value};

pub fn device() -> Device {
    Device::flex()
}

/// Deterministic values in [-1, 1) from widen-init's seeded host RNG.
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = widen_init::HostRng::new(seed);
    (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect()
}

/// Runs `model` in inference on `values` shaped `dims` (the model's own layout) and returns
/// the output's dims and values.
pub fn run(model: &Model, values: &[f32], dims: [usize; 3]) -> (Vec<usize>, Vec<f32>) {
    let x = Tensor::<3>::from_data(TensorData::new(values.to_vec(), dims), &device());
    let y = model.forward(x).unwrap();
    let (dims, data) = match y {
        Value::Flat(t) => (t.dims().to_vec(), t.into_data()),
        Value::Seq(t) => (t.dims().to_vec(), t.into_data()),
    };
    (dims, data.convert::<f32>().try_to_vec::<f32>().unwrap())
}

/// A random input of `batch` cases for `model` (its own layout; `length` where it has none).
pub fn input_for(model: &Model, batch: usize, length: usize, seed: u64) -> (Vec<f32>, [usize; 3]) {
    let input = model.input();
    let l = input.length.unwrap_or(length);
    let dims = match input.data_format {
        DataFormat::ChannelsFirst => [batch, input.channels, l],
        DataFormat::ChannelsLast => [batch, l, input.channels],
    };
    (pseudo_random(dims.iter().product(), seed), dims)
}

pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// `crates/cli/tests/fixtures/onnx`.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/fixtures/onnx")
}

/// A float32 little-endian C-order `.npy` (what the fixture generator writes).
pub fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}", path.display());
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
    };
    let header = std::str::from_utf8(&bytes[start..start + len]).unwrap();
    assert!(
        header.contains("'<f4'") && header.contains("False"),
        "{header}"
    );
    let shape = header.split("'shape': (").nth(1).unwrap();
    let shape = &shape[..shape.find(')').unwrap()];
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let values = bytes[start + len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (dims, values)
}

/// A float32 `.npy` file (version 1.0).
pub fn npy_bytes(dims: &[usize], values: &[f32]) -> Vec<u8> {
    let shape: String = dims.iter().map(|d| format!("{d}, ")).collect();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    while (header.len() + 11) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// Writes `<dir>/<test>-<n>/{model.onnx, input.npy, expected.npy}`.
pub fn dump(dir: &Path, onnx: &[u8], input: (&[usize], &[f32]), output: (&[usize], &[f32])) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let test = std::thread::current()
        .name()
        .unwrap_or("test")
        .replace("::", "_");
    let d = dir.join(format!("{test}-{}", N.fetch_add(1, Ordering::SeqCst)));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("model.onnx"), onnx).unwrap();
    std::fs::write(d.join("input.npy"), npy_bytes(input.0, input.1)).unwrap();
    std::fs::write(d.join("expected.npy"), npy_bytes(output.0, output.1)).unwrap();
}
