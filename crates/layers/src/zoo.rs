//! Reference architectures for time-series classification, as graph specs: FCN and ResNet
//! (Wang et al. 2017, as benchmarked by Fawaz et al. 2019, "Deep learning for time series
//! classification: a review"), InceptionTime (Ismail Fawaz et al. 2020), and the seed's Ex1/Ex3
//! stacks. Widths and depth are configurable; the defaults are the papers'. Parameters come from
//! the layers' default widen-init initializers (Keras' glorot_uniform / zeros) when built.

use crate::{
    Activation, BatchNormConfig, ConcatenateConfig, Conv1dConfig, DenseConfig, InputSpec,
    LayerConfig, MergeConfig, ModelSpec, PaddingMode, PoolConfig,
};

pub use crate::model::{keras_ex1 as ex1, keras_ex3 as ex3};

/// FCN: three Conv1D(same) → BatchNorm → ReLU blocks, global average pooling, softmax Dense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcnConfig {
    /// Filters of the three blocks (paper: 128, 256, 128).
    pub filters: [usize; 3],
    /// Kernel sizes of the three blocks (paper: 8, 5, 3).
    pub kernels: [usize; 3],
}

impl Default for FcnConfig {
    fn default() -> Self {
        Self {
            filters: [128, 256, 128],
            kernels: [8, 5, 3],
        }
    }
}

fn conv(filters: usize, kernel: usize) -> LayerConfig {
    LayerConfig::Conv1d(Conv1dConfig::new(filters, kernel).with_padding(PaddingMode::Same))
}

fn bn() -> LayerConfig {
    LayerConfig::BatchNorm1d(BatchNormConfig::keras())
}

fn relu() -> LayerConfig {
    LayerConfig::Activation(Activation::Relu)
}

fn head(spec: &mut ModelSpec, from: &str, classes: usize) {
    let gap = spec.add(&[from], LayerConfig::GlobalAvgPool1d);
    spec.add(
        &[&gap],
        LayerConfig::Dense(DenseConfig::new(classes).with_activation(Activation::Softmax)),
    );
}

/// FCN on `input` for `classes` classes.
pub fn fcn(input: InputSpec, classes: usize, config: &FcnConfig) -> ModelSpec {
    let mut spec = ModelSpec::new(input).with_input_name("input_layer");
    let mut x = spec.input_name.clone();
    for (&f, &k) in config.filters.iter().zip(&config.kernels) {
        x = spec.add(&[&x], conv(f, k));
        x = spec.add(&[&x], bn());
        x = spec.add(&[&x], relu());
    }
    head(&mut spec, &x, classes);
    spec
}

/// ResNet: residual blocks of Conv(k8) → BN → ReLU → Conv(k5) → BN → ReLU → Conv(k3) → BN,
/// the shortcut a 1×1 Conv1D → BN where the width changes (and in the first block, as in the
/// reference code), else BN of the block input; ReLU after the add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetConfig {
    /// Filters per block (paper: 64, 128, 128).
    pub filters: Vec<usize>,
    /// Kernel sizes inside a block (paper: 8, 5, 3).
    pub kernels: [usize; 3],
}

impl Default for ResNetConfig {
    fn default() -> Self {
        Self {
            filters: vec![64, 128, 128],
            kernels: [8, 5, 3],
        }
    }
}

/// ResNet on `input` for `classes` classes.
pub fn resnet(input: InputSpec, classes: usize, config: &ResNetConfig) -> ModelSpec {
    let mut spec = ModelSpec::new(input).with_input_name("input_layer");
    let mut x = spec.input_name.clone();
    let mut width = input.channels;
    for (b, &f) in config.filters.iter().enumerate() {
        let block_in = x.clone();
        let mut y = block_in.clone();
        for (i, &k) in config.kernels.iter().enumerate() {
            y = spec.add(&[&y], conv(f, k));
            y = spec.add(&[&y], bn());
            if i + 1 < config.kernels.len() {
                y = spec.add(&[&y], relu());
            }
        }
        let shortcut = if b == 0 || width != f {
            let s = spec.add(&[&block_in], conv(f, 1));
            spec.add(&[&s], bn())
        } else {
            spec.add(&[&block_in], bn())
        };
        let sum = spec.add(&[&shortcut, &y], LayerConfig::Add(MergeConfig {}));
        x = spec.add(&[&sum], relu());
        width = f;
    }
    head(&mut spec, &x, classes);
    spec
}

/// InceptionTime: `depth` Inception modules (bottleneck 1×1 conv when the module input has
/// more than one channel; three convs of decreasing kernel size on it; a max-pool(3) → 1×1 conv
/// branch on the module input; concatenated, BN, ReLU), a residual shortcut every third module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InceptionTimeConfig {
    /// Modules (paper: 6).
    pub depth: usize,
    /// Filters per branch (paper: 32).
    pub filters: usize,
    /// Bottleneck width (paper: 32).
    pub bottleneck: usize,
    /// The three branch kernel sizes (paper: 40, 20, 10).
    pub kernels: [usize; 3],
    /// Residual shortcuts every three modules (paper: yes).
    pub residual: bool,
}

impl Default for InceptionTimeConfig {
    fn default() -> Self {
        Self {
            depth: 6,
            filters: 32,
            bottleneck: 32,
            kernels: [40, 20, 10],
            residual: true,
        }
    }
}

fn conv_no_bias(filters: usize, kernel: usize) -> LayerConfig {
    LayerConfig::Conv1d(
        Conv1dConfig::new(filters, kernel)
            .with_padding(PaddingMode::Same)
            .with_bias(false),
    )
}

/// InceptionTime on `input` for `classes` classes.
pub fn inception_time(input: InputSpec, classes: usize, config: &InceptionTimeConfig) -> ModelSpec {
    let mut spec = ModelSpec::new(input).with_input_name("input_layer");
    let mut x = spec.input_name.clone();
    let mut width = input.channels;
    let mut residual_from = (x.clone(), width);
    for d in 0..config.depth {
        let module_in = x.clone();
        let bottleneck = if width > 1 && config.bottleneck > 0 {
            spec.add(&[&module_in], conv_no_bias(config.bottleneck, 1))
        } else {
            module_in.clone()
        };
        let mut branches: Vec<String> = config
            .kernels
            .iter()
            .map(|&k| spec.add(&[&bottleneck], conv_no_bias(config.filters, k)))
            .collect();
        let pool = spec.add(
            &[&module_in],
            LayerConfig::MaxPool1d(
                PoolConfig::new(3)
                    .with_strides(1)
                    .with_padding(PaddingMode::Same),
            ),
        );
        branches.push(spec.add(&[&pool], conv_no_bias(config.filters, 1)));
        let refs: Vec<&str> = branches.iter().map(String::as_str).collect();
        let cat = spec.add(
            &refs,
            LayerConfig::Concatenate(ConcatenateConfig { axis: -1 }),
        );
        let norm = spec.add(&[&cat], bn());
        x = spec.add(&[&norm], relu());
        width = 4 * config.filters;
        if config.residual && d % 3 == 2 {
            let (from, _) = &residual_from;
            let from = from.clone();
            let s = spec.add(&[&from], conv_no_bias(width, 1));
            let s = spec.add(&[&s], bn());
            let sum = spec.add(&[&s, &x], LayerConfig::Add(MergeConfig {}));
            x = spec.add(&[&sum], relu());
            residual_from = (x.clone(), width);
        }
    }
    head(&mut spec, &x, classes);
    spec
}
