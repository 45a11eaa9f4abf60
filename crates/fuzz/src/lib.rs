//! Structured-mutation fuzzing of every file reader widen has: `.npy` arrays, UEA `.ts` text,
//! checkpoints (`model.json`, `weights.safetensors`, `weights.bpk`) and ONNX models.
//!
//! **Owns:** the mutators ([`mutate`]: byte-level havoc plus token-aware edits — boundary
//! numbers, duplicated keys and lines, deleted delimiters, BOMs, control characters, boundary
//! values in binary length fields), the target table ([`targets::TARGETS`]: one entry per
//! reader, each a name, a grammar, a seeds function and a run function), and the driver
//! ([`driver`]: seeded case generation, the oracles, isolation of each target in a child
//! process, findings on disk and the summary).
//!
//! **Must not know:** how the readers work inside. A target calls a reader's public entry
//! point and classifies the result; fixing what it finds belongs to the reader's crate. The
//! allocator that counts bytes lives in the test binary (`tests/fuzz.rs`), not here, so that
//! linking this library never replaces anyone's global allocator.
//!
//! # Why hand-written
//! - Not `cargo-fuzz`: libFuzzer needs a nightly toolchain (`-Zsanitizer`), and this project
//!   builds on stable only; a stable driver also runs inside `cargo xtask test-all`.
//! - Not `arbitrary`: the inputs are files with a grammar (a header dictionary, a line format,
//!   JSON, length-prefixed containers). Mutating valid seeds keeps most of that structure and
//!   reaches the checks deep inside a reader, where decoding random bytes into structures would
//!   mostly be refused at the first magic number.
//!
//! Without coverage instrumentation, the corpus grows by a behavioural proxy: a mutant whose
//! outcome (acceptance, or the reader's error message with numbers blanked) is new joins it.

pub mod driver;
pub mod mutate;
pub mod targets;

pub use driver::{Options, main_with};
pub use targets::{Context, Outcome, Seed, TARGETS, Target};
