//! `widen bench`: times the two reference shapes on the chosen backend. Timings are medians of
//! repeated runs after warm-up, with the device synced before each timer stops.
//!
//! - **seed**: input `[10, 50, 8]` (Keras layout), Conv1D(32, 3, valid) → BatchNorm →
//!   GlobalMaxPool.
//! - **large**: input `[64, 1024, 64]`, Conv1D(128, 9, same) → BatchNorm → GlobalMaxPool.
//!
//! "train" is one optimiser step: a training-mode forward, a sum loss, backward, an Adam update.

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use serde::Serialize;
use widen_init::{Initializer, KernelLayout};
use widen_layers::{
    BatchNormConfig, Conv1dConfig, InputSpec, LayerConfig, LayerError, ModelSpec, PaddingMode,
    Sequential, Value,
};

/// One benchmark shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Name in the output.
    pub name: &'static str,
    /// Batch, length, channels (Keras layout).
    pub input: [usize; 3],
    /// Filters.
    pub filters: usize,
    /// Kernel size.
    pub kernel: usize,
    /// Padding.
    pub padding: PaddingMode,
    /// Timed repeats (after warm-up).
    pub repeats: usize,
}

/// The seed shape.
pub const SEED: Shape = Shape {
    name: "seed",
    input: [10, 50, 8],
    filters: 32,
    kernel: 3,
    padding: PaddingMode::Valid,
    repeats: 200,
};

/// The large shape.
pub const LARGE: Shape = Shape {
    name: "large",
    input: [64, 1024, 64],
    filters: 128,
    kernel: 9,
    padding: PaddingMode::Same,
    repeats: 15,
};

/// Median times of one shape, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Inference forward.
    pub forward_ms: f64,
    /// One training step.
    pub train_ms: f64,
    /// The fused inference heads the model has (`first→last` layer); empty when every layer
    /// runs alone.
    pub fused_heads: Vec<String>,
}

impl Shape {
    /// Conv FLOPs of one forward (2·B·C_out·L_out·C_in·K); a train step counts 3×.
    pub fn conv_flops(&self) -> f64 {
        let [b, l, c] = self.input;
        let l_out = match self.padding {
            PaddingMode::Valid => l - self.kernel + 1,
            _ => l,
        };
        2.0 * (b * self.filters * l_out * c * self.kernel) as f64
    }

    fn spec(&self) -> ModelSpec {
        let [_, l, c] = self.input;
        ModelSpec::new(InputSpec::new(c).with_length(l))
            .push(LayerConfig::Conv1d(
                Conv1dConfig::new(self.filters, self.kernel).with_padding(self.padding),
            ))
            .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
            .push(LayerConfig::GlobalMaxPool1d)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn sync(device: &Device) -> Result<(), String> {
    device
        .sync()
        .map_err(|e| format!("device sync failed: {e:?}"))
}

fn flat(v: Value) -> Result<Tensor<2>, String> {
    v.into_flat()
        .ok_or_else(|| "the bench model must end flat".to_string())
}

/// Times `shape` on `device` (its autodiff twin for training); `repeats` overrides the
/// shape's default.
pub fn run(shape: &Shape, device: &Device, repeats: Option<usize>) -> Result<Timing, String> {
    let repeats = repeats.unwrap_or(shape.repeats).max(1);
    // One timing per repeat is kept for the median.
    widen_guard::budget()
        .check_elements("the bench's timings", &[repeats, 2], 8)
        .map_err(|e| e.to_string())?;
    let warmup = 2;
    let err = |e: LayerError| e.to_string();
    let x_values = Initializer::Normal {
        mean: 0.0,
        std: 1.0,
    }
    .sample(&shape.input, KernelLayout::Keras, 1)
    .map_err(|e| e.to_string())?;
    let make_x = |d: &Device| {
        Tensor::<3>::from_data(
            burn::tensor::TensorData::new(x_values.clone(), shape.input),
            d,
        )
    };

    let model = Sequential::new(shape.spec(), 0, device).map_err(err)?;
    let fused_heads = model
        .fused_heads(widen_layers::Mode::Inference)
        .into_iter()
        .map(|(a, b)| format!("{a}→{b}"))
        .collect();
    let x = make_x(device);
    let mut forward = Vec::with_capacity(repeats);
    for i in 0..warmup + repeats {
        let start = Instant::now();
        let y = flat(model.forward(x.clone()).map_err(err)?)?;
        drop(y);
        sync(device)?;
        if i >= warmup {
            forward.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }

    let train_device = device.clone().autodiff();
    let mut model = Sequential::new(shape.spec(), 0, &train_device).map_err(err)?;
    let x = make_x(&train_device);
    let mut optim = AdamConfig::new().init();
    let mut train = Vec::with_capacity(repeats);
    for i in 0..warmup + repeats {
        let start = Instant::now();
        let loss = flat(model.forward_train(x.clone()).map_err(err)?)?.sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
        sync(&train_device)?;
        if i >= warmup {
            train.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(Timing {
        forward_ms: median(forward),
        train_ms: median(train),
        fused_heads,
    })
}
