//! The torch.onnx.export fixtures: every one imports and reproduces onnxruntime's output. The
//! CLI's (`crates/cli/tests/fixtures/onnx`, shared with its end-to-end tests) and this crate's
//! own (`tests/fixtures`, tools/fixtures/gen_onnx_torch_paths.py: recurrent ops, torch's
//! F.pad subgraph, ReLU6, SiLU, Upsample, the Gelu op, a channels-last input).

use widen_onnx::{import_detailed, import_model};

use crate::common::{device, fixtures, max_diff, read_npy, run};

fn check(name: &str) {
    check_in(&fixtures().join(name), name);
}

fn own(name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    check_in(&dir.join(name), name);
}

fn check_in(dir: &std::path::Path, name: &str) {
    let bytes = std::fs::read(dir.join("model.onnx")).unwrap();
    let imported = import_detailed(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    let model = import_model(&bytes, &device()).unwrap();
    let (dims, x) = read_npy(&dir.join("input.npy"));
    let (want_dims, want) = read_npy(&dir.join("expected.npy"));
    let (got_dims, got) = run(&model, &x, [dims[0], dims[1], dims[2]]);
    assert_eq!(got_dims, want_dims, "{name}");
    let diff = max_diff(&got, &want);
    assert!(
        diff <= 1e-5,
        "{name}: max |widen - onnxruntime| = {diff}\n{}",
        model.summary()
    );
    eprintln!(
        "{name}: {} nodes → {} layers, max diff {diff:.2e}",
        imported.node_count(),
        imported.spec.layers.len()
    );
}

#[test]
fn plain_cnn() {
    check("plain_cnn");
}

#[test]
fn residual() {
    check("residual");
}

#[test]
fn branch_concat() {
    check("branch_concat");
}

#[test]
fn conv_options() {
    check("conv_options");
}

#[test]
fn matmul_add() {
    check("matmul_add");
}

#[test]
fn lstm() {
    check("lstm");
}

#[test]
fn recurrent_with_dynamic_batch() {
    own("recurrent");
}

#[test]
fn torch_ops() {
    own("torch_ops");
}

#[test]
fn gelu_op() {
    own("gelu_op");
}

#[test]
fn channels_last_input_with_a_channel_major_flatten() {
    own("channels_last");
}
