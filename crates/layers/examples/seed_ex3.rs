//! Seed Example 3: Conv1D(16, 3, relu) → Conv1D(32, 1, relu) → BatchNorm → GlobalMaxPool
//! built for 32 channels, on `[10, 50, 32]` → `(10, 32)`.

use burn::tensor::{Device, Tensor};
use widen_init::{Initializer, KernelLayout};
use widen_layers::{Sequential, keras_ex3};

const SEED: u64 = 42;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::flex();
    let model = Sequential::new(keras_ex3(32, 50), SEED, &device)?;
    let x: Tensor<3> = Initializer::Normal {
        mean: 0.0,
        std: 1.0,
    }
    .tensor([10, 50, 32], KernelLayout::Keras, SEED + 1, &device)?;

    let y = model.forward(x)?;
    let dims: Vec<String> = y.dims().iter().map(usize::to_string).collect();
    println!("Ex3: input (10, 50, 32) -> output ({})", dims.join(", "));
    print!("{}", model.summary());
    Ok(())
}
