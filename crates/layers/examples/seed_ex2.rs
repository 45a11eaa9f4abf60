//! Seed Example 2: the Example 1 model (built for 8 channels) fed `[10, 50, 32]`: the 8 real
//! channels plus 24 zero channels.
//!
//! Keras raises a `ValueError` here and Burn would panic; widen returns a typed error naming
//! the layer and both channel counts. That error is the expected result, so the example prints
//! it and exits 0; anything else is a failure.

use burn::tensor::{Device, Tensor};
use widen_init::{Initializer, KernelLayout};
use widen_layers::{LayerError, Sequential, keras_ex1};
use widen_ops::{pad_channels_appended, to_channels_first, to_channels_last};

const SEED: u64 = 42;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::flex();
    let model = Sequential::new(keras_ex1(8, 50), SEED, &device)?;
    let x8: Tensor<3> = Initializer::Normal {
        mean: 0.0,
        std: 1.0,
    }
    .tensor([10, 50, 8], KernelLayout::Keras, SEED + 1, &device)?;
    // Channel ops work channels-first ([batch, channels, length]); the model takes Keras'
    // channels-last layout.
    let x32 = to_channels_last(pad_channels_appended(to_channels_first(x8), 32)?);
    println!("Ex2: Ex1 model (8 channels) fed {:?}", x32.dims());

    match model.forward(x32) {
        Err(e @ LayerError::ChannelMismatch { .. }) => {
            println!("expected error: {e}");
            Ok(())
        }
        Err(e) => Err(format!("unexpected error: {e}").into()),
        Ok(y) => Err(format!("the model accepted 32 channels and gave {:?}", y.dims()).into()),
    }
}
