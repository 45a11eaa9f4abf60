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
//!
//! Next to the times: the FLOPs each shape does, counted from its spec ([`Shape::flops`]:
//! Conv1D and Dense only, a train step 3× the forward), the GFLOP/s that makes, as a share of
//! this machine's measured FP32 peak ([`machine_peak`]), and the process's peak RSS.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use serde::Serialize;
use widen_init::{Initializer, KernelLayout};
use widen_layers::{
    BatchNormConfig, Conv1dConfig, FeatureShape, InputSpec, LayerConfig, LayerError, ModelSpec,
    PaddingMode, Sequential, Value,
};
use widen_ops::cpu::peak;

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

/// Median times of one shape, in milliseconds, and what they make of the machine. The JSON
/// line of `widen bench --json` is this struct per shape; `forward_ms` and `train_ms` come
/// first and keep their names.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Inference forward.
    pub forward_ms: f64,
    /// One training step.
    pub train_ms: f64,
    /// FLOPs of one forward ([`Shape::flops`]).
    pub forward_flops: f64,
    /// FLOPs of one train step (3× the forward).
    pub train_flops: f64,
    /// `forward_flops` per second, in GFLOP/s.
    pub forward_gflops: f64,
    /// `train_flops` per second, in GFLOP/s.
    pub train_gflops: f64,
    /// The machine's measured FP32 peak on all cores ([`machine_peak`]), GFLOP/s.
    pub peak_gflops: f64,
    /// The same on one thread.
    pub peak_1t_gflops: f64,
    /// The instruction set the peak was measured with.
    pub peak_isa: &'static str,
    /// `forward_gflops` as a percentage of `peak_gflops`.
    pub forward_peak_pct: f64,
    /// `train_gflops` as a percentage of `peak_gflops`.
    pub train_peak_pct: f64,
    /// Resident memory before this shape's models were built, MiB (`VmRSS`; `None` where
    /// `/proc/self/status` does not exist).
    pub base_rss_mib: Option<f64>,
    /// The process's peak resident memory after this shape ran, MiB (`VmHWM`). A high-water
    /// mark of the whole process, earlier shapes included: run one shape per process to
    /// attribute it (`cargo xtask bench` does).
    pub peak_rss_mib: Option<f64>,
    /// The fused inference heads the model has (`first→last` layer); empty when every layer
    /// runs alone.
    pub fused_heads: Vec<String>,
}

/// FLOPs of one forward pass, counted per layer from the spec.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Flops {
    /// Conv1D: 2·B·L_out·C_out·(C_in/groups)·K each (a multiply-add is 2).
    pub conv: f64,
    /// Dense: 2·B·(steps)·in·units each.
    pub dense: f64,
    /// The part of `conv + dense` in layers that read the model's input: their backward needs
    /// the weight gradient only (the input takes no gradient).
    pub on_input: f64,
}

impl Flops {
    /// One forward: everything counted.
    pub fn forward(&self) -> f64 {
        self.conv + self.dense
    }

    /// One train step: the forward, then per layer a weight gradient and an input gradient of
    /// the forward's size each (the usual 3×), less the input gradient of the layers reading
    /// the model's input, which no step computes (a one-conv model does 2× its forward).
    pub fn train(&self) -> f64 {
        3.0 * self.forward() - self.on_input
    }
}

impl Shape {
    /// FLOPs of one forward, walking the spec's layers with their resolved shapes. Counted:
    /// Conv1D and Dense (bias adds not counted). Not counted: BatchNorm, activations, pooling,
    /// merges — elementwise passes of a few FLOPs per activation value, ~1% of the FCN's convs;
    /// they cost memory traffic rather than arithmetic. Other layers with products (LSTM, GRU)
    /// are not counted either; no bench shape has them. NaN if the spec does not resolve.
    pub fn flops(&self) -> Flops {
        let spec = self.spec();
        let Ok(r) = spec.resolve() else {
            return Flops {
                conv: f64::NAN,
                dense: f64::NAN,
                on_input: f64::NAN,
            };
        };
        let b = self.input[0] as f64;
        let mut flops = Flops::default();
        for (i, layer) in spec.layers.iter().enumerate() {
            let input = r.input_shapes(&spec, i).first().copied();
            let before = flops.forward();
            match (&layer.config, input, r.shapes[i]) {
                (
                    LayerConfig::Conv1d(c),
                    Some(FeatureShape::Seq { channels, .. }),
                    FeatureShape::Seq { length, .. },
                ) => {
                    let l_out = length.unwrap_or(0) as f64;
                    let c_in = (channels / c.groups.max(1)) as f64;
                    flops.conv += 2.0 * b * l_out * c.filters as f64 * c_in * c.kernel_size as f64;
                }
                // Keras' Dense on a sequence applies at every step.
                (LayerConfig::Dense(d), Some(input), _) => {
                    let (steps, features) = match input {
                        FeatureShape::Flat { features } => (1, features),
                        FeatureShape::Seq { channels, length } => (length.unwrap_or(0), channels),
                    };
                    flops.dense += 2.0 * b * steps as f64 * features as f64 * d.units as f64;
                }
                _ => {}
            }
            if spec.inbound_names(i).contains(&spec.input_name.as_str()) {
                flops.on_input += flops.forward() - before;
            }
        }
        flops
    }

    /// Conv FLOPs of one forward ([`Flops::conv`]); a train step counts 3×.
    pub fn conv_flops(&self) -> f64 {
        self.flops().conv
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

/// This machine's FP32 peak, measured once per process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachinePeak {
    /// One thread.
    pub one_thread: peak::Peak,
    /// Every core the process may use, one thread each.
    pub all_cores: peak::Peak,
    /// The core clock estimated from the FMA's latency ([`peak::fma_clock_ghz`]).
    pub clock_ghz: Option<f64>,
}

/// The FMA-loop peak ([`peak::machine_peak`], tries of 100 ms), measured on the first call
/// and kept: about a second, before the first shape runs.
pub fn machine_peak() -> MachinePeak {
    static PEAK: OnceLock<MachinePeak> = OnceLock::new();
    *PEAK.get_or_init(|| {
        let try_for = Duration::from_millis(100);
        let (one_thread, all_cores) = peak::machine_peak(try_for);
        MachinePeak {
            one_thread,
            all_cores,
            clock_ghz: peak::fma_clock_ghz(try_for),
        }
    })
}

/// One line on the peak, for the bench's header.
pub fn peak_line(p: &MachinePeak) -> String {
    let clock = p.clock_ghz.map_or(String::new(), |c| {
        format!("; clock ≈ {c:.2} GHz from the FMA latency")
    });
    format!(
        "FP32 peak (FMA loop, {}): {:.1} GFLOP/s on 1 thread, {:.1} on {}{clock}",
        p.all_cores.isa.name(),
        p.one_thread.gflops,
        p.all_cores.gflops,
        p.all_cores.threads
    )
}

/// The header of the bench's table, two lines.
pub const TABLE_HEADER: &str = "| shape | input | forward ms | train ms | forward GFLOP/s (% peak) \
     | train GFLOP/s (% peak) | peak RSS MiB |\n|---|---|---|---|---|---|---|";

/// One row of the bench's table.
pub fn table_row(shape: &Shape, t: &Timing) -> String {
    let rss = t
        .peak_rss_mib
        .map_or("–".to_string(), |m| format!("{m:.0}"));
    format!(
        "| {} | {:?} | {:.3} | {:.3} | {:.1} ({:.0}%) | {:.1} ({:.0}%) | {rss} |",
        shape.name,
        shape.input,
        t.forward_ms,
        t.train_ms,
        t.forward_gflops,
        t.forward_peak_pct,
        t.train_gflops,
        t.train_peak_pct
    )
}

/// A `kB` field of `/proc/self/status` in MiB (`VmRSS`, `VmHWM`); `None` off Linux.
pub fn proc_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line[field.len()..]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
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

    let machine = machine_peak();
    let base_rss_mib = proc_status_mib("VmRSS");
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
    let (forward_ms, train_ms) = (median(forward), median(train));
    let flops = shape.flops();
    let gflops = |f: f64, ms: f64| f / (ms * 1e-3) / 1e9;
    let (forward_gflops, train_gflops) = (
        gflops(flops.forward(), forward_ms),
        gflops(flops.train(), train_ms),
    );
    let peak_gflops = machine.all_cores.gflops;
    Ok(Timing {
        forward_ms,
        train_ms,
        forward_flops: flops.forward(),
        train_flops: flops.train(),
        forward_gflops,
        train_gflops,
        peak_gflops,
        peak_1t_gflops: machine.one_thread.gflops,
        peak_isa: machine.all_cores.isa.name(),
        forward_peak_pct: 100.0 * forward_gflops / peak_gflops,
        train_peak_pct: 100.0 * train_gflops / peak_gflops,
        base_rss_mib,
        peak_rss_mib: proc_status_mib("VmHWM"),
        fused_heads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The FCN's count walked from the spec equals the hand computation on `[16, 512, 9]`
    /// (`same` padding keeps L = 512): three convs and the dense head.
    #[test]
    fn fcn_flops_match_the_hand_count() {
        let conv = [
            2 * 16 * 512 * 128 * 9 * 8,
            2 * 16 * 512 * 256 * 128 * 5,
            2 * 16 * 512 * 128 * 256 * 3,
        ];
        let dense = 2 * 16 * 128 * 6;
        let f = FCN.flops();
        assert_eq!(f.conv, conv.iter().sum::<u64>() as f64);
        assert_eq!(f.dense, dense as f64);
        assert_eq!(f.forward(), 4_445_986_816.0);
        // Every layer's backward is 2× its forward, except the first conv's (no input gradient).
        assert_eq!(f.train(), 3.0 * 4_445_986_816.0 - conv[0] as f64);
        assert_eq!(FCN.conv_flops(), f.conv);
    }

    /// ResNet: per block k8, k5, k3 convs and a 1×1 shortcut conv where the width changes
    /// (blocks 1 and 2; block 3 keeps 128 and shortcuts through BN only).
    #[test]
    fn resnet_flops_match_the_hand_count() {
        let per = |c_out: u64, c_in: u64, k: u64| 2 * 16 * 512 * c_out * c_in * k;
        let conv = per(64, 9, 8)
            + per(64, 64, 5)
            + per(64, 64, 3)
            + per(64, 9, 1)
            + per(128, 64, 8)
            + per(128, 128, 5)
            + per(128, 128, 3)
            + per(128, 64, 1)
            + per(128, 128, 8)
            + per(128, 128, 5)
            + per(128, 128, 3);
        let f = RESNET.flops();
        assert_eq!(f.conv, conv as f64);
        assert_eq!(f.dense, (2 * 16 * 128 * 6) as f64);
    }

    /// The single-conv shapes: `valid` shortens the output (50 - 3 + 1), `same` does not.
    #[test]
    fn conv_head_flops_follow_the_padding() {
        assert_eq!(SEED.flops().forward(), (2 * 10 * 48 * 32 * 8 * 3) as f64);
        // One conv on the input: forward + weight gradient only.
        assert_eq!(SEED.flops().train(), 2.0 * SEED.flops().forward());
        assert_eq!(
            LARGE.flops().forward(),
            (2u64 * 64 * 1024 * 128 * 64 * 9) as f64
        );
    }

    /// A row has the header's columns, RSS or not.
    #[test]
    fn table_rows_match_the_header() {
        let columns = |l: &str| l.matches('|').count();
        let header = TABLE_HEADER.lines().collect::<Vec<_>>();
        assert_eq!(header.len(), 2);
        assert_eq!(columns(header[0]), columns(header[1]));
        let mut t = Timing {
            forward_ms: 10.0,
            train_ms: 30.0,
            forward_flops: 1e9,
            train_flops: 3e9,
            forward_gflops: 100.0,
            train_gflops: 100.0,
            peak_gflops: 200.0,
            peak_1t_gflops: 100.0,
            peak_isa: "avx2+fma",
            forward_peak_pct: 50.0,
            train_peak_pct: 50.0,
            base_rss_mib: None,
            peak_rss_mib: Some(88.9),
            fused_heads: Vec::new(),
        };
        let row = table_row(&FCN, &t);
        assert_eq!(columns(&row), columns(header[0]), "{row}");
        assert!(
            row.contains("100.0 (50%)") && row.contains("| 89 |"),
            "{row}"
        );
        t.peak_rss_mib = None;
        assert_eq!(columns(&table_row(&FCN, &t)), columns(header[0]));
    }

    /// `/proc/self/status` reads as MiB, the peak at least the current (Linux only).
    #[test]
    fn reads_resident_memory() {
        if let (Some(rss), Some(hwm)) = (proc_status_mib("VmRSS"), proc_status_mib("VmHWM")) {
            assert!(rss > 0.0 && hwm >= rss, "{rss} {hwm}");
        }
        assert_eq!(proc_status_mib("NoSuchField"), None);
    }
}
