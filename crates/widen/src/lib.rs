//! `widen`: the facade. Re-exports the widen crates and owns the backend features (`flex`, the
//! default CPU backend; `ndarray`; `wgpu`, off by default), so an application depends on this one
//! crate and picks a backend at run time with [`BackendKind`].
//!
//! **Must not know:** command-line parsing or output formats (that is `widen-cli`). It adds no
//! maths of its own: re-exports and backend selection only.

mod backend;

pub use backend::{BackendError, BackendKind, describe_device};
pub use burn;
pub use widen_adapt as adapt;
pub use widen_data as data;
pub use widen_guard as guard;
pub use widen_init as init;
pub use widen_layers as layers;
pub use widen_onnx as onnx;
pub use widen_ops as ops;
pub use widen_train as train;
