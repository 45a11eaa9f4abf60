//! ONNX import and export for widen models: a PyTorch user's `torch.onnx.export` of a Conv1d
//! network becomes a widen model (then widened like any other), and any widen model whose
//! layers have ONNX equivalents becomes an `.onnx` file onnxruntime runs.
//!
//! **Owns:** the protobuf subset of `onnx.proto3` widen reads and writes ([`proto`]), the
//! pre-decode memory bound, tensor decoding (FLOAT, DOUBLE, FLOAT16, BFLOAT16 weights; INT32,
//! INT64, BOOL constants), folding of small integer constant subgraphs, the op ↔ layer
//! mapping in both directions ([`import`], [`export`]; LSTM and GRU included; the tables are
//! in `docs/ONNX.md`) and its typed errors ([`OnnxError`]).
//!
//! **Must not know:** how layers compute, backends, checkpoints' file layout or the CLI. An
//! import yields a [`ModelSpec`] and host tensors in widen's layouts; [`import_model`] builds
//! them through `Model`'s public API, and saving is `widen-layers`' business.
//!
//! ```
//! use burn::tensor::Device;
//! use widen_layers::{Model, keras_ex1};
//!
//! let device = Device::flex();
//! let model = Model::new(keras_ex1(8, 50), 0, &device)?;
//! let bytes = widen_onnx::export(&model)?;
//! let (spec, weights) = widen_onnx::import(&bytes)?;
//! assert_eq!(spec.input.channels, 8);
//! assert_eq!(weights.len(), 6); // conv weight and bias, BN's four statistics
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Why a hand-declared prost subset
//!
//! The file format is protobuf, so the parser is `prost` (derive only: no build script, no
//! `protoc`, no generated code checked in) over the dozen messages widen needs, declared with
//! onnx.proto3's field numbers. prost skips every undeclared field without keeping it, so
//! sub-graphs, doc strings and metadata cost nothing, and its decoder refuses truncated
//! input, lengths past the end and nesting deeper than 100 with an error, never a panic.
//! Before decoding, a walk of the wire format bounds what decoding will allocate (an empty
//! 2-byte message becomes a struct of ~150 bytes) and checks it against `widen_guard::budget()`.
//!
//! Not burn's `onnx-ir`, read at its last commit inside tracel-ai/burn (`759c99626^`, January
//! 2026; it has since moved to the tracel-ai/burn-onnx repository):
//! - it is the front half of burn-import's code generator: it lowers a graph to its own IR of
//!   generic nodes for generating Rust source, where widen wants its own layers (Keras
//!   semantics, channel roles for widening) from a small, exact subset of ops;
//! - it pulls `protobuf` with a `protobuf-codegen` build script (neither in the offline
//!   cache), `regex`, `strum`, `memmap2`, its own derive crate, and `burn-tensor` pinned to
//!   `=0.21.0`, a second Burn beside the workspace's 0.22.1;
//! - it aborts on malformed input instead of returning errors: its `proto_conversion.rs`
//!   panics on negative initializer dims and undecodable scalars, unwraps a shape dimension
//!   with neither a value nor a parameter and an attribute's type and tensor; about 180 such
//!   panicking calls sit outside its test modules. widen's invariant is that no caller input
//!   reaches a panic.

mod error;
mod export;
mod fold;
mod import;
pub mod proto;
mod scan;
mod tensor;

use burn::tensor::{Device, TensorData};
use widen_layers::{Model, ModelSpec};

pub use error::OnnxError;
pub use export::{EXPORT_IR_VERSION, EXPORT_OPSET};
pub use import::{Imported, OPSETS};

/// Every stored tensor of a spec: `(layer, param, values)`, in widen's layouts.
pub type Weights = Vec<(String, String, TensorData)>;

/// Reads an ONNX model: its architecture as a widen spec and every tensor as `(layer, param,
/// values)` in widen's layouts (Conv1D `[F, C / g, K]` as in ONNX, Dense `[in, out]`).
pub fn import(bytes: &[u8]) -> Result<(ModelSpec, Weights), OnnxError> {
    import::import(bytes).map(|i| (i.spec, i.weights))
}

/// [`import`], with what the graph held (op counts, opset, producer) for a summary.
pub fn import_detailed(bytes: &[u8]) -> Result<Imported, OnnxError> {
    import::import(bytes)
}

/// Reads an ONNX model and builds it as a widen [`Model`] on `device`.
pub fn import_model(bytes: &[u8], device: &Device) -> Result<Model, OnnxError> {
    let imported = import::import(bytes)?;
    build(imported.spec, imported.weights, device)
}

/// Builds `spec` on `device` and sets `weights` (what [`import`] returns).
pub fn build(spec: ModelSpec, weights: Weights, device: &Device) -> Result<Model, OnnxError> {
    let mut model = Model::new(spec, 0, device).map_err(OnnxError::build)?;
    for (layer, param, data) in weights {
        model
            .set_weight(&layer, &param, data)
            .map_err(OnnxError::build)?;
    }
    Ok(model)
}

/// Writes `model` as an ONNX file (opset [`EXPORT_OPSET`]): the input `[batch, channels,
/// length]` or, for a channels-last model, `[batch, length, channels]` (a leading Transpose),
/// the batch axis dynamic (`"batch"`), the length too when the model's is not fixed.
pub fn export(model: &Model) -> Result<Vec<u8>, OnnxError> {
    export::export(model)
}
