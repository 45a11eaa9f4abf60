//! Integration tests for widen-layers: one binary (each test binary links Burn).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod checkpoint;
mod common;
mod graph_layers;
mod keras;
#[path = "../support/keras_fixture.rs"]
mod keras_fixture;
mod recurrent;
mod stacks;
mod training;
