//! `widen bench`: times the two reference shapes on the chosen backend. Timings are medians of
//! repeated runs after warm-up, with the device synced before each timer stops.
//!
//! - **seed**: input `[10, 50, 8]` (Keras layout), Conv1D(32, 3, valid) → BatchNorm →
//!   GlobalMaxPool.
//! - **large**: input `[64, 1024, 64]`, Conv1D(128, 9, same) → BatchNorm → GlobalMaxPool.
//! - **fcn**, **resnet**: input `[16, 512, 9]`, the zoo's FCN and ResNet (paper widths), 6
//!   classes; their train step uses softmax cross-entropy.
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

/// What a shape times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Conv1D → BatchNorm → GlobalMaxPool, sum loss (the seed and large shapes).
    ConvHead,
    /// FCN (Wang et al. 2017) from `widen_layers::zoo`, 6 classes, softmax cross-entropy.
    Fcn,
    /// ResNet (Wang et al. 2017) from `widen_layers::zoo`, 6 classes, softmax cross-entropy.
    ResNet,
}

/// One benchmark shape.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Name in the output.
    pub name: &'static str,
    /// The network.
    pub network: Network,
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
    network: Network::ConvHead,
    input: [10, 50, 8],
    filters: 32,
    kernel: 3,
    padding: PaddingMode::Valid,
    repeats: 200,
};

/// The large shape.
pub const LARGE: Shape = Shape {
    name: "large",
    network: Network::ConvHead,
    input: [64, 1024, 64],
    filters: 128,
    kernel: 9,
    padding: PaddingMode::Same,
    repeats: 15,
};

/// FCN on `[16, 512, 9]` (batch, length, channels), 6 classes: the network users train.
pub const FCN: Shape = Shape {
    name: "fcn",
    network: Network::Fcn,
    input: [16, 512, 9],
    filters: 0,
    kernel: 0,
    padding: PaddingMode::Same,
    repeats: 10,
};

/// ResNet (64, 128, 128 filters) on `[16, 512, 9]`, 6 classes.
pub const RESNET: Shape = Shape {
    name: "resnet",
    network: Network::ResNet,
    input: [16, 512, 9],
    filters: 0,
    kernel: 0,
    padding: PaddingMode::Same,
    repeats: 5,
};

/// Every shape, by name.
pub const SHAPES: [Shape; 4] = [SEED, LARGE, FCN, RESNET];

/// Classes of the network shapes.
const CLASSES: usize = 6;

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
    /// Conv FLOPs of one forward (Σ over convs of 2·B·C_out·L_out·(C_in/groups)·K); a train
    /// step counts 3×.
    pub fn conv_flops(&self) -> f64 {
        let spec = self.spec();
        let Ok(r) = spec.resolve() else {
            return f64::NAN;
        };
        let b = self.input[0] as f64;
        spec.layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match &l.config {
                LayerConfig::Conv1d(c) => {
                    let c_in = match r.input_shapes(&spec, i).first() {
                        Some(widen_layers::FeatureShape::Seq { channels, .. }) => *channels,
                        _ => 0,
                    };
                    let l_out = match r.shapes[i] {
                        widen_layers::FeatureShape::Seq { length, .. } => length.unwrap_or(0),
                        _ => 0,
                    };
                    Some(
                        2.0 * b
                            * (c.filters * l_out * (c_in / c.groups.max(1)) * c.kernel_size) as f64,
                    )
                }
                _ => None,
            })
            .sum()
    }

    /// The architecture timed.
    pub fn spec(&self) -> ModelSpec {
        let [_, l, c] = self.input;
        let input = InputSpec::new(c).with_length(l);
        match self.network {
            Network::ConvHead => ModelSpec::new(input)
                .push(LayerConfig::Conv1d(
                    Conv1dConfig::new(self.filters, self.kernel).with_padding(self.padding),
                ))
                .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
                .push(LayerConfig::GlobalMaxPool1d),
            Network::Fcn => widen_layers::zoo::fcn(input, CLASSES, &Default::default()),
            Network::ResNet => widen_layers::zoo::resnet(input, CLASSES, &Default::default()),
        }
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
    // The networks train on softmax cross-entropy against fixed labels, as Keras' would.
    let labels: Vec<usize> = (0..shape.input[0]).map(|i| i % CLASSES).collect();
    let kind = crate::output_kind(&model);
    for i in 0..warmup + repeats {
        let start = Instant::now();
        let out = flat(model.forward_train(x.clone()).map_err(err)?)?;
        let loss = match shape.network {
            Network::ConvHead => out.sum(),
            Network::Fcn | Network::ResNet => crate::loss_of(out, &labels, kind),
        };
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
