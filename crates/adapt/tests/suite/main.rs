//! Integration tests for widen-adapt: one binary (each test binary links Burn).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod diagnostics;
mod errors;
mod graphs;
mod strategies;
mod training;
