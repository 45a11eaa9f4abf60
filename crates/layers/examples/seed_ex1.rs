//! Seed Example 1: Conv1D(32, 3, relu) → BatchNorm → GlobalMaxPool on `[10, 50, 8]`.
//!
//! `cargo run -p widen-layers --example seed_ex1` prints the output shape `(10, 32)` and the
//! Keras-style summary.

use burn::tensor::{Device, Tensor};
use widen_init::{Initializer, KernelLayout};
use widen_layers::{Sequential, keras_ex1};

const SEED: u64 = 42;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::flex();
    let model = Sequential::new(keras_ex1(8, 50), SEED, &device)?;
    // Standard-normal data, drawn on the host from a seed (identical on every backend).
    let x: Tensor<3> = Initializer::Normal {
        mean: 0.0,
        std: 1.0,
    }
    .tensor([10, 50, 8], KernelLayout::Keras, SEED + 1, &device)?;

    let y = model.forward(x)?;
    let dims: Vec<String> = y.dims().iter().map(usize::to_string).collect();
    println!("Ex1: input (10, 50, 8) -> output ({})", dims.join(", "));
    print!("{}", model.summary());
    Ok(())
}
