//! `widen demo`: the seed's three examples on real layers.

use std::fmt::Write;

use widen::BackendKind;
use widen::burn::tensor::{Device, Tensor};
use widen::init::{Initializer, KernelLayout};
use widen::layers::{LayerError, Sequential, Value, keras_ex1, keras_ex3};

const BATCH: usize = 10;
const LENGTH: usize = 50;

/// Standard-normal input `[batch, length, channels]` (Keras layout), seeded on the host.
fn input(channels: usize, seed: u64, device: &Device) -> Result<Tensor<3>, String> {
    Initializer::Normal {
        mean: 0.0,
        std: 1.0,
    }
    .tensor([BATCH, LENGTH, channels], KernelLayout::Keras, seed, device)
    .map_err(|e| e.to_string())
}

fn shape(value: &Value) -> String {
    let dims: Vec<String> = value.dims().iter().map(usize::to_string).collect();
    format!("({})", dims.join(", "))
}

fn model(spec: widen::layers::ModelSpec, seed: u64, device: &Device) -> Result<Sequential, String> {
    Sequential::new(spec, seed, device).map_err(|e| e.to_string())
}

/// Runs the three examples and returns what `widen demo` prints. Ex2's error is an expected
/// result, not a failure of the demo.
pub fn run(device: &Device, backend: BackendKind, seed: u64) -> Result<String, String> {
    let mut out = String::new();
    let w = |e: std::fmt::Error| e.to_string();
    writeln!(out, "widen demo (backend: {backend}, seed: {seed})\n").map_err(w)?;

    // Ex1: the model trained on 8 sensors.
    let ex1 = model(keras_ex1(8, LENGTH), seed, device)?;
    let x8 = input(8, seed ^ 0x8, device)?;
    let y1 = ex1.forward(x8.clone()).map_err(|e| e.to_string())?;
    writeln!(
        out,
        "Ex1: Conv1D(32, 3, relu) -> BatchNorm -> GlobalMaxPool on [10, 50, 8]"
    )
    .map_err(w)?;
    writeln!(out, "     output shape {}", shape(&y1)).map_err(w)?;
    write!(out, "{}", indent(&ex1.summary())).map_err(w)?;

    // Ex2: the same model fed 8 real channels + 24 zero channels.
    let x32 = widen::ops::to_channels_last(
        widen::ops::pad_channels_appended(widen::ops::to_channels_first(x8), 32)
            .map_err(|e| e.to_string())?,
    );
    writeln!(
        out,
        "\nEx2: the Ex1 model fed [10, 50, 32] (8 real channels + 24 zeros)"
    )
    .map_err(w)?;
    match ex1.forward(x32) {
        Err(e @ LayerError::ChannelMismatch { .. }) => {
            writeln!(out, "     error (as Keras raises a ValueError here): {e}").map_err(w)?;
        }
        Err(e) => return Err(format!("Ex2 gave an unexpected error: {e}")),
        Ok(y) => {
            return Err(format!(
                "Ex2 should refuse 32 channels but gave {}",
                shape(&y)
            ));
        }
    }

    // Ex3: a model built for 32 channels, with a 1x1 conv after the first.
    let ex3 = model(keras_ex3(32, LENGTH), seed, device)?;
    let y3 = ex3
        .forward(input(32, seed ^ 0x20, device)?)
        .map_err(|e| e.to_string())?;
    writeln!(
        out,
        "\nEx3: Conv1D(16, 3, relu) -> Conv1D(32, 1, relu) -> BatchNorm -> GlobalMaxPool on [10, 50, 32]"
    )
    .map_err(w)?;
    writeln!(out, "     output shape {}", shape(&y3)).map_err(w)?;
    write!(out, "{}", indent(&ex3.summary())).map_err(w)?;
    Ok(out)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("     {l}\n")).collect()
}
