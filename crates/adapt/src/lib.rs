//! Expansion adapters: make a trained model accept more input channels, and measure why plain
//! widening trains erratically.
//!
//! **Owns (filled by the adapters issue):** zero-pad input, kernel expansion (`Zero`,
//! `RepeatRescale`, `FanScaled`), `Projection1x1`, `Standardize`, freezing, diagnostics reports,
//! and atomic checkpoint expansion.
//!
//! **Must not know:** the study, the CLI, or which backend runs. It depends on `widen-layers`
//! (and through it on ops and init) only.
