//! Integration tests for widen-ops: one binary (each test binary links Burn, and links are slow).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod channels;
mod common;
mod conv_grad_prop;
mod conv_prop;
mod fused_prop;
mod keras;
mod norm_prop;
