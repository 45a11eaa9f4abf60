//! The library side of the `widen` command. Data, training, the study and the bench live in the
//! library crates (`widen-data`, `widen-train`); this package only parses arguments and prints
//! (`src/main.rs`), and re-exports those modules under the paths its tests and tools use.

/// `widen import` / `widen export`: ONNX files in and out of model directories.
pub mod interop;

/// The study and the bench live in `widen-train`; kept here under their old paths.
pub use widen::train::{bench, study};

/// The data layer lives in `widen-data`; kept here under its old paths for the CLI's users.
pub use widen::data;
pub use widen::data::npy;
