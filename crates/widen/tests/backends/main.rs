//! The backend suite (as Burn's burn-backend-tests): the same layer and adapter checks on every
//! backend compiled into this build, with identical host-drawn weights. One binary, because every
//! test binary links Burn.
//!
//! `cargo test -p widen --test backends` runs it on flex and ndarray;
//! `cargo test -p widen --features wgpu --test backends` adds wgpu, which must then find an
//! adapter (lavapipe in CI) or fail — unless `WIDEN_SKIP_WGPU=1`, for machines without Vulkan,
//! Metal or DX12. Tolerances are shared with `cargo xtask compare-backends` and explained in
//! docs/BACKENDS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod adapt;
mod common;
mod conv;
mod fused;
#[path = "../../examples/compare_backends/gradients.rs"]
mod gradients;
mod keras;
#[path = "../../../layers/tests/support/keras_fixture.rs"]
mod keras_fixture;
mod selection;
#[path = "../../examples/compare_backends/tolerance.rs"]
#[allow(dead_code)] // shared with the example, which uses the rest
mod tolerance;
mod training;
