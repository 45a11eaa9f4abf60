//! `OnnxError`: every way an import or an export can fail, each naming what it concerns.

use thiserror::Error;
use widen_guard::BudgetError;
use widen_layers::LayerError;

/// Why an ONNX model could not be imported, or a widen model exported. Messages name the node
/// (or layer), its op and the attribute or value at fault.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The bytes are not a protobuf `ModelProto`: truncated, random, a declared length past
    /// the end, a string that is not UTF-8.
    #[error("not a readable ONNX model: {reason}")]
    Decode {
        /// prost's reason.
        reason: String,
    },
    /// What decoding or a tensor would take is over the memory budget.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// The model as a whole is not one widen imports: no graph, an unknown opset, several
    /// inputs or outputs, an input that is not `[batch, channels, length]`.
    #[error("ONNX model: {reason}")]
    Model {
        /// What is wrong.
        reason: String,
    },
    /// The graph's wiring: a name no node, initializer or input defines, a cycle, a value
    /// defined twice.
    #[error("ONNX graph: {reason}")]
    Graph {
        /// What is wrong.
        reason: String,
    },
    /// A node widen has no exact equivalent for: its op, or one of its attributes or inputs.
    #[error("node `{node}` ({op}): {attribute}: {reason}")]
    Unsupported {
        /// The node's name (or its position and first output, when unnamed).
        node: String,
        /// Its `op_type`.
        op: String,
        /// The attribute or input at fault (`op_type` when the op itself is the problem).
        attribute: String,
        /// Why, and what widen does support.
        reason: String,
    },
    /// A tensor (an initializer, a `Constant`, an attribute) cannot be read: its dims, data
    /// type, length, or data stored outside the file.
    #[error("tensor `{name}`: {reason}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The widen layer a node maps to refused its configuration or its tensors.
    #[error("node `{node}` ({op}): {source}")]
    Layer {
        /// The node's name.
        node: String,
        /// Its `op_type`.
        op: String,
        /// widen's reason.
        #[source]
        source: Box<LayerError>,
    },
    /// The imported graph as a whole does not build as a widen model.
    #[error("the imported model does not build: {0}")]
    Build(#[source] Box<LayerError>),
    /// A widen layer (or a combination) that has no ONNX form here.
    #[error("export: layer `{layer}` ({class}): {reason}")]
    Export {
        /// The layer's name.
        layer: String,
        /// Its Keras class.
        class: String,
        /// Why, and what to do.
        reason: String,
    },
}

impl From<prost::DecodeError> for OnnxError {
    fn from(e: prost::DecodeError) -> Self {
        Self::Decode {
            reason: e.to_string(),
        }
    }
}

impl OnnxError {
    /// The model built from an import was refused by widen.
    pub(crate) fn build(e: LayerError) -> Self {
        Self::Build(Box::new(e))
    }
}
