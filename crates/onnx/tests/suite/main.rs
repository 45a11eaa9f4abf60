//! Integration tests for widen-onnx: one binary (each test binary links Burn).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod fixtures;
mod hostile;
mod roundtrip;
