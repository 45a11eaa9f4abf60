//! The library side of the `widen` command: data loading (the UEA/UCR `.ts` reader, the embedded
//! BasicMotions data, the seeded synthetic scenario) and the study. It must not parse arguments:
//! the binary (`src/main.rs`) turns the command line into calls here, so the same code is
//! testable without a process.

pub mod bench;
pub mod data;
pub mod npy;
pub mod study;
