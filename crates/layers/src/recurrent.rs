//! Recurrent layers with Keras 3 semantics and weight layouts: `Lstm` (Keras `LSTM`) and `Gru`
//! (Keras `GRU`), run over the time steps of a sequence with Burn tensor ops (differentiable).

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use widen_init::{Initializer, KernelLayout};

use crate::layer::{BuildContext, ParamInfo, ShapeContext, unknown_param};
use crate::{Activation, FeatureShape, LayerError, Mode, Value};

fn yes() -> bool {
    true
}

fn tanh() -> Activation {
    Activation::Tanh
}

fn sigmoid() -> Activation {
    Activation::Sigmoid
}

fn orthogonal() -> Initializer {
    Initializer::Orthogonal { gain: 1.0 }
}

/// What an LSTM and a GRU configuration have in common, borrowed, with the layer's gate count
/// (the kernels are `gates · units` wide).
struct Shared<'a> {
    gates: usize,
    units: usize,
    activation: &'a Activation,
    recurrent_activation: &'a Activation,
    use_bias: bool,
    return_sequences: bool,
    kernel_initializer: &'a Initializer,
    recurrent_initializer: &'a Initializer,
    bias_initializer: &'a Initializer,
}

impl Shared<'_> {
    /// `gates · units`, saturating (exact once [`Self::validate`] passed).
    fn width(&self) -> usize {
        self.units.saturating_mul(self.gates)
    }

    /// Checks what LSTM and GRU configurations share: `gates · units` must fit, activations and
    /// initializers must be usable.
    fn validate(&self, name: &str) -> Result<(), LayerError> {
        let (units, gates) = (self.units, self.gates);
        if units == 0 {
            return Err(LayerError::config(name, "units must be > 0, got 0"));
        }
        if units.checked_mul(gates).is_none() {
            return Err(LayerError::config(
                name,
                format!("units = {units} is too large ({gates} gates × units overflows a size)"),
            ));
        }
        self.activation
            .validate()
            .map_err(|r| LayerError::config(name, format!("activation: {r}")))?;
        self.recurrent_activation
            .validate()
            .map_err(|r| LayerError::config(name, format!("recurrent_activation: {r}")))?;
        let initializers = [
            ("kernel_initializer", self.kernel_initializer),
            ("recurrent_initializer", self.recurrent_initializer),
            ("bias_initializer", self.bias_initializer),
        ];
        for (what, init) in initializers {
            init.validate()
                .map_err(|e| LayerError::config(name, format!("{what}: {e}")))?;
        }
        Ok(())
    }

    /// Validates, then draws `kernel` `[channels, gates·units]` and `recurrent_kernel`
    /// `[units, gates·units]` from the seed's parameter streams 0 and 1.
    fn kernels(
        &self,
        name: &str,
        channels: usize,
        seed: u64,
        device: &Device,
    ) -> Result<(Tensor<2>, Tensor<2>), LayerError> {
        self.validate(name)?;
        if channels == 0 {
            return Err(LayerError::config(name, "input channels must be > 0"));
        }
        let w = self.width();
        let kernel = draw(
            name,
            self.kernel_initializer,
            [channels, w],
            crate::param_seed(seed, 0),
            device,
        )?;
        let recurrent_kernel = draw(
            name,
            self.recurrent_initializer,
            [self.units, w],
            crate::param_seed(seed, 1),
            device,
        )?;
        Ok((kernel, recurrent_kernel))
    }

    /// A bias (or a piece of one) of `shape`, drawn with the bias initializer from the seed's
    /// parameter stream `stream`.
    fn bias<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        seed: u64,
        stream: u64,
        device: &Device,
    ) -> Result<Tensor<D>, LayerError> {
        let seed = crate::param_seed(seed, stream);
        draw(name, self.bias_initializer, shape, seed, device)
    }

    /// Where the input kernel reads the input's channels.
    fn input_kernel(&self) -> crate::InputKernel {
        crate::InputKernel {
            param: "kernel",
            outer: 1,
            inner: self.width(),
            keras_layout: true,
        }
    }

    /// The output shape of the layer on the context's sequence.
    fn output_shape(&self, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
        self.validate(cx.name)?;
        let (_, length) = cx.seq()?;
        Ok(if self.return_sequences {
            FeatureShape::Seq {
                channels: self.units,
                length,
            }
        } else {
            FeatureShape::Flat {
                features: self.units,
            }
        })
    }

    /// `kernel`, `recurrent_kernel` and, with a bias, `bias` of `bias_shape`.
    fn params(&self, cx: &ShapeContext, bias_shape: Vec<usize>) -> Vec<ParamInfo> {
        let w = self.width();
        let mut v = vec![
            ParamInfo::trained("kernel", vec![cx.features(), w]),
            ParamInfo::trained("recurrent_kernel", vec![self.units, w]),
        ];
        if self.use_bias {
            v.push(ParamInfo::trained("bias", bias_shape));
        }
        v
    }
}

/// The constructor, builders, check and `init` an LSTM and a GRU configuration share: `$gates`
/// gates, `$extra` the boolean field only that one has (default true), `$activation_doc` what
/// its `activation` is for. The config supplies `initial_bias` (its bias layout).
macro_rules! recurrent_config {
    ($config:ident, $layer:ident, $gates:literal, $extra:ident, $activation_doc:literal) => {
        impl $config {
            /// `units` hidden units, Keras defaults.
            pub fn new(units: usize) -> Self {
                Self {
                    units,
                    activation: Activation::Tanh,
                    recurrent_activation: Activation::Sigmoid,
                    use_bias: true,
                    return_sequences: false,
                    $extra: true,
                    kernel_initializer: crate::default_kernel_init(),
                    recurrent_initializer: orthogonal(),
                    bias_initializer: crate::default_bias_init(),
                }
            }
            /// Returns every step's hidden state, or only the last.
            pub fn with_return_sequences(mut self, return_sequences: bool) -> Self {
                self.return_sequences = return_sequences;
                self
            }
            #[doc = $activation_doc]
            pub fn with_activation(mut self, activation: Activation) -> Self {
                self.activation = activation;
                self
            }
            /// Sets the gates' activation.
            pub fn with_recurrent_activation(mut self, activation: Activation) -> Self {
                self.recurrent_activation = activation;
                self
            }
            /// Turns the bias on or off.
            pub fn with_bias(mut self, use_bias: bool) -> Self {
                self.use_bias = use_bias;
                self
            }

            /// Checks units, activations and initializers.
            pub fn validate(&self, name: &str) -> Result<(), LayerError> {
                self.shared().validate(name)
            }

            /// Builds the layer for `channels` input features per step.
            pub fn init(
                &self,
                name: &str,
                channels: usize,
                seed: u64,
                device: &Device,
            ) -> Result<$layer, LayerError> {
                let (kernel, recurrent_kernel) =
                    self.shared().kernels(name, channels, seed, device)?;
                let bias = self.initial_bias(name, seed, device)?;
                Ok($layer {
                    kernel: Param::from_tensor(kernel),
                    recurrent_kernel: Param::from_tensor(recurrent_kernel),
                    bias: bias.map(Param::from_tensor),
                    config: self.clone(),
                    name: name.to_string(),
                })
            }

            /// The fields both configurations have, with the gate count.
            fn shared(&self) -> Shared<'_> {
                Shared {
                    gates: $gates,
                    units: self.units,
                    activation: &self.activation,
                    recurrent_activation: &self.recurrent_activation,
                    use_bias: self.use_bias,
                    return_sequences: self.return_sequences,
                    kernel_initializer: &self.kernel_initializer,
                    recurrent_initializer: &self.recurrent_initializer,
                    bias_initializer: &self.bias_initializer,
                }
            }
        }
    };
}

/// `in_channels`, `forward_seq` and the `LayerKind` of a recurrent layer. The layer supplies
/// `run_cells` (its gate equations, on a checked input), `bias_data` and `set_bias` (how its bias
/// is exchanged); its config `init` and `bias_shape`.
macro_rules! recurrent_kind {
    ($ty:ident, $config:ident, $class:literal, $stem:literal) => {
        impl $ty {
            /// Input channels the layer was built for.
            pub fn in_channels(&self) -> usize {
                self.kernel.dims()[0]
            }

            /// Runs the layer on `[batch, channels, length]` (channels-first):
            /// `[batch, units, length]` with `return_sequences`, else `[batch, units]`.
            pub fn forward_seq(&self, x: Tensor<3>) -> Result<Value, LayerError> {
                check_input(&self.name, x.dims(), self.in_channels())?;
                self.run_cells(x)
            }
        }

        impl crate::LayerKind for $ty {
            type Config = $config;
            const KERAS_CLASS: &'static str = $class;
            const STEM: &'static str = $stem;

            fn input_kernel(c: &$config, _: &ShapeContext) -> Option<crate::InputKernel> {
                Some(c.shared().input_kernel())
            }

            fn output_shape(c: &$config, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
                c.shared().output_shape(cx)
            }

            fn params(c: &$config, cx: &ShapeContext) -> Vec<ParamInfo> {
                c.shared().params(cx, c.bias_shape())
            }

            fn build(c: &$config, cx: &BuildContext) -> Result<Self, LayerError> {
                let (channels, _) = cx.shape.seq()?;
                c.init(cx.shape.name, channels, cx.seed, cx.device)
            }

            fn name(&self) -> &str {
                &self.name
            }

            fn forward(&self, inputs: Vec<Value>, _mode: Mode) -> Result<Value, LayerError> {
                let x = crate::layer::single_seq(&self.name, inputs)?;
                self.forward_seq(x)
            }

            fn weight(&self, param: &str) -> Result<TensorData, LayerError> {
                match (param, &self.bias) {
                    ("kernel", _) => Ok(self.kernel.val().into_data()),
                    ("recurrent_kernel", _) => Ok(self.recurrent_kernel.val().into_data()),
                    ("bias", Some(b)) => Ok(Self::bias_data(&self.config, b)),
                    _ => Err(unknown_param(&self.name, param)),
                }
            }

            fn set_weight(&mut self, param: &str, data: TensorData) -> Result<(), LayerError> {
                let name = self.name.as_str();
                match (param, &mut self.bias) {
                    ("kernel", _) => crate::weights::set_param(&mut self.kernel, name, param, data),
                    ("recurrent_kernel", _) => {
                        crate::weights::set_param(&mut self.recurrent_kernel, name, param, data)
                    }
                    ("bias", Some(b)) => Self::set_bias(&self.config, b, name, data),
                    _ => Err(unknown_param(name, param)),
                }
            }
        }
    };
}

/// Draws a tensor of `shape` with `init`, fans from the shape itself in Keras layout (as Keras
/// computes them for every weight, biases included).
fn draw<const D: usize>(
    name: &str,
    init: &Initializer,
    shape: [usize; D],
    seed: u64,
    device: &Device,
) -> Result<Tensor<D>, LayerError> {
    init.tensor(shape, KernelLayout::Keras, seed, device)
        .map_err(LayerError::init(name))
}

/// Checks a recurrent layer's input `[batch, channels, length]` against its kernel.
fn check_input(name: &str, dims: [usize; 3], channels: usize) -> Result<(), LayerError> {
    let [b, c, l] = dims;
    if c != channels {
        return Err(LayerError::ChannelMismatch {
            layer: name.to_string(),
            expected: channels,
            got: c,
        });
    }
    if b == 0 || l == 0 {
        return Err(LayerError::InputShape {
            layer: name.to_string(),
            expected: format!("[batch > 0, {channels}, length > 0]"),
            got: dims.to_vec(),
        });
    }
    Ok(())
}

/// `x · kernel (+ bias)` for every step at once: `[batch, channels, length]` channels-first →
/// `[batch, length, width]`.
fn project_inputs(x: Tensor<3>, kernel: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<3> {
    let [b, c, l] = x.dims();
    let width = kernel.dims()[1];
    let mut xs = x
        .swap_dims(1, 2)
        .reshape([b * l, c])
        .matmul(kernel)
        .reshape([b, l, width]);
    if let Some(bias) = bias {
        xs = xs + bias.reshape([1, 1, width]);
    }
    xs
}

/// The step-`t` slice `[batch, width]` of `[batch, length, width]`.
fn step(xs: &Tensor<3>, t: usize) -> Tensor<2> {
    let [b, _, width] = xs.dims();
    xs.clone().narrow(1, t, 1).reshape([b, width])
}

/// Columns `gate · units .. (gate + 1) · units` of `[batch, gates · units]`.
fn gate(z: &Tensor<2>, gate: usize, units: usize) -> Tensor<2> {
    z.clone().narrow(1, gate * units, units)
}

/// Runs `cell` over the steps of the projected inputs `xs` `[batch, length, width]`: it takes
/// the step's slice and the state so far (`None` at the first step) and gives the next state,
/// whose hidden output `hidden` reads. The layer's result: every step's hidden output as
/// `[batch, units, length]` (channels-first) with `return_sequences`, else the last.
fn run_steps<S>(
    name: &str,
    xs: &Tensor<3>,
    return_sequences: bool,
    mut cell: impl FnMut(Tensor<2>, Option<S>) -> S,
    hidden: impl Fn(&S) -> Tensor<2>,
) -> Result<Value, LayerError> {
    let l = xs.dims()[1];
    let mut state: Option<S> = None;
    let mut outputs = Vec::with_capacity(if return_sequences { l } else { 0 });
    for t in 0..l {
        let next = cell(step(xs, t), state.take());
        if return_sequences {
            outputs.push(hidden(&next));
        }
        state = Some(next);
    }
    if return_sequences {
        let steps: Vec<Tensor<3>> = outputs
            .into_iter()
            .map(|h| {
                let [b, u] = h.dims();
                h.reshape([b, u, 1])
            })
            .collect();
        if steps.is_empty() {
            return Err(LayerError::config(name, "no time steps to return"));
        }
        Ok(Value::Seq(Tensor::cat(steps, 2)))
    } else {
        state
            .as_ref()
            .map(hidden)
            .map(Value::Flat)
            .ok_or_else(|| LayerError::config(name, "no time steps to return"))
    }
}

/// Configuration of an [`Lstm`] layer, Keras names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LstmConfig {
    /// Hidden units (the output width).
    pub units: usize,
    /// Activation of the cell candidate and of the output (default tanh).
    #[serde(default = "tanh")]
    pub activation: Activation,
    /// Activation of the input, forget and output gates (default sigmoid).
    #[serde(default = "sigmoid")]
    pub recurrent_activation: Activation,
    /// Bias (default true).
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Return the hidden state of every step (`[batch, length, units]`) instead of the last
    /// (`[batch, units]`); default false.
    #[serde(default)]
    pub return_sequences: bool,
    /// Start the forget gate's bias at 1 (default true, as Keras).
    #[serde(default = "yes")]
    pub unit_forget_bias: bool,
    /// Initializer of `kernel` (default glorot_uniform).
    #[serde(default = "crate::default_kernel_init")]
    pub kernel_initializer: Initializer,
    /// Initializer of `recurrent_kernel` (default orthogonal).
    #[serde(default = "orthogonal")]
    pub recurrent_initializer: Initializer,
    /// Initializer of `bias` (default zeros).
    #[serde(default = "crate::default_bias_init")]
    pub bias_initializer: Initializer,
}

recurrent_config!(
    LstmConfig,
    Lstm,
    4,
    unit_forget_bias,
    "Sets the cell/output activation."
);

impl LstmConfig {
    /// Turns the unit forget-gate bias on or off.
    pub fn with_unit_forget_bias(mut self, unit_forget_bias: bool) -> Self {
        self.unit_forget_bias = unit_forget_bias;
        self
    }

    /// The stored bias shape: `[4·units]`.
    fn bias_shape(&self) -> Vec<usize> {
        vec![self.units.saturating_mul(4)]
    }

    /// The initial bias `[4·units]`, if any: Keras' unit forget bias or one draw.
    fn initial_bias(
        &self,
        name: &str,
        seed: u64,
        device: &Device,
    ) -> Result<Option<Tensor<1>>, LayerError> {
        let shared = self.shared();
        let u = self.units;
        Ok(if !self.use_bias {
            None
        } else if self.unit_forget_bias {
            // Keras: bias_initializer((U,)), ones((U,)), bias_initializer((2U,)).
            let input = shared.bias(name, [u], seed, 2, device)?;
            let rest = shared.bias(name, [2 * u], seed, 3, device)?;
            Some(Tensor::cat(vec![input, Tensor::ones([u], device), rest], 0))
        } else {
            Some(shared.bias(name, [4 * u], seed, 2, device)?)
        })
    }
}

/// Keras `LSTM`. Gates in Keras' order i, f, c, o along the `4·units` axis; `h0 = c0 = 0`.
#[derive(Module, Debug)]
pub struct Lstm {
    /// `[channels, 4·units]` (Keras layout).
    pub kernel: Param<Tensor<2>>,
    /// `[units, 4·units]`.
    pub recurrent_kernel: Param<Tensor<2>>,
    /// `[4·units]`, if `config.use_bias`.
    pub bias: Option<Param<Tensor<1>>>,
    /// The configuration.
    #[module(skip)]
    pub config: LstmConfig,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl Lstm {
    /// [`Self::forward_seq`] on a checked input.
    fn run_cells(&self, x: Tensor<3>) -> Result<Value, LayerError> {
        let u = self.config.units;
        let (act, rec) = (self.config.activation, self.config.recurrent_activation);
        let xs = project_inputs(x, self.kernel.val(), self.bias.as_ref().map(Param::val));
        let rk = self.recurrent_kernel.val();
        // The state is (h, c).
        let cell = |xt: Tensor<2>, state: Option<(Tensor<2>, Tensor<2>)>| {
            let z = match &state {
                Some((h, _)) => xt + h.clone().matmul(rk.clone()),
                None => xt,
            };
            let i = rec.apply(gate(&z, 0, u), 1);
            let f = rec.apply(gate(&z, 1, u), 1);
            let candidate = i * act.apply(gate(&z, 2, u), 1);
            let o = rec.apply(gate(&z, 3, u), 1);
            let c = match state {
                Some((_, c)) => f * c + candidate,
                None => candidate,
            };
            let h = o * act.apply(c.clone(), 1);
            (h, c)
        };
        run_steps(
            &self.name,
            &xs,
            self.config.return_sequences,
            cell,
            |(h, _)| h.clone(),
        )
    }

    /// Keras' layout of the bias: as stored.
    fn bias_data(_: &LstmConfig, b: &Param<Tensor<1>>) -> TensorData {
        b.val().into_data()
    }

    /// Replaces the bias, given in Keras' layout.
    fn set_bias(
        _: &LstmConfig,
        b: &mut Param<Tensor<1>>,
        name: &str,
        data: TensorData,
    ) -> Result<(), LayerError> {
        crate::weights::set_param(b, name, "bias", data)
    }
}

recurrent_kind!(Lstm, LstmConfig, "LSTM", "lstm");

/// Configuration of a [`Gru`] layer, Keras names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GruConfig {
    /// Hidden units (the output width).
    pub units: usize,
    /// Activation of the candidate state (default tanh).
    #[serde(default = "tanh")]
    pub activation: Activation,
    /// Activation of the update and reset gates (default sigmoid).
    #[serde(default = "sigmoid")]
    pub recurrent_activation: Activation,
    /// Bias (default true).
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Return the hidden state of every step instead of the last; default false.
    #[serde(default)]
    pub return_sequences: bool,
    /// Apply the reset gate after the recurrent matrix product, with separate input and
    /// recurrent biases (default true: Keras' and cuDNN's convention).
    #[serde(default = "yes")]
    pub reset_after: bool,
    /// Initializer of `kernel` (default glorot_uniform).
    #[serde(default = "crate::default_kernel_init")]
    pub kernel_initializer: Initializer,
    /// Initializer of `recurrent_kernel` (default orthogonal).
    #[serde(default = "orthogonal")]
    pub recurrent_initializer: Initializer,
    /// Initializer of `bias` (default zeros).
    #[serde(default = "crate::default_bias_init")]
    pub bias_initializer: Initializer,
}

recurrent_config!(
    GruConfig,
    Gru,
    3,
    reset_after,
    "Sets the candidate activation."
);

impl GruConfig {
    /// Sets the reset-gate convention.
    pub fn with_reset_after(mut self, reset_after: bool) -> Self {
        self.reset_after = reset_after;
        self
    }

    /// The stored bias shape: `[2, 3·units]` with `reset_after`, else `[3·units]`.
    pub fn bias_shape(&self) -> Vec<usize> {
        let w = self.units.saturating_mul(3);
        if self.reset_after {
            vec![2, w]
        } else {
            vec![w]
        }
    }

    /// The initial bias, if any: `[2, 3·units]` with `reset_after`, else `[1, 3·units]` (one
    /// draw of Keras' `[3·units]`).
    fn initial_bias(
        &self,
        name: &str,
        seed: u64,
        device: &Device,
    ) -> Result<Option<Tensor<2>>, LayerError> {
        let shared = self.shared();
        let w = 3 * self.units;
        Ok(match (self.use_bias, self.reset_after) {
            (false, _) => None,
            (true, true) => Some(shared.bias(name, [2, w], seed, 2, device)?),
            (true, false) => Some(shared.bias(name, [w], seed, 2, device)?.reshape([1, w])),
        })
    }
}

/// Keras `GRU`. Gates in Keras' order z (update), r (reset), h (candidate) along the
/// `3·units` axis; `h0 = 0`.
#[derive(Module, Debug)]
pub struct Gru {
    /// `[channels, 3·units]` (Keras layout).
    pub kernel: Param<Tensor<2>>,
    /// `[units, 3·units]`.
    pub recurrent_kernel: Param<Tensor<2>>,
    /// If `config.use_bias`: `[2, 3·units]` with `reset_after` (row 0 input bias, row 1
    /// recurrent bias, as Keras stores it), else `[1, 3·units]` here, stored and exchanged as
    /// Keras' `[3·units]` (see [`GruConfig::bias_shape`]).
    pub bias: Option<Param<Tensor<2>>>,
    /// The configuration.
    #[module(skip)]
    pub config: GruConfig,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl Gru {
    /// [`Self::forward_seq`] on a checked input.
    fn run_cells(&self, x: Tensor<3>) -> Result<Value, LayerError> {
        let u = self.config.units;
        let (act, rec) = (self.config.activation, self.config.recurrent_activation);
        let bias = self.bias.as_ref().map(Param::val);
        // Input bias on every step's projection; with reset_after a recurrent bias `[1, 3U]`.
        let (input_bias, recurrent_bias) = match bias {
            Some(b) => {
                let rows = b.dims()[0];
                let input = b.clone().narrow(0, 0, 1).reshape([3 * u]);
                let recurrent = (rows == 2).then(|| b.narrow(0, 1, 1));
                (Some(input), recurrent)
            }
            None => (None, None),
        };
        let xs = project_inputs(x, self.kernel.val(), input_bias);
        let rk = self.recurrent_kernel.val();
        let (rk_zr, rk_h) = (
            rk.clone().narrow(1, 0, 2 * u),
            rk.clone().narrow(1, 2 * u, u),
        );
        // The state is h.
        let cell = |xt: Tensor<2>, h: Option<Tensor<2>>| {
            let (x_z, x_r, x_h) = (gate(&xt, 0, u), gate(&xt, 1, u), gate(&xt, 2, u));
            let (z, candidate) = if self.config.reset_after {
                // inner = h·U + b_rec; z, r from x + inner; hh = act(x_h + r ⊙ inner_h).
                let inner = match (&h, &recurrent_bias) {
                    (Some(h), Some(b)) => Some(h.clone().matmul(rk.clone()) + b.clone()),
                    (Some(h), None) => Some(h.clone().matmul(rk.clone())),
                    (None, Some(b)) => Some(b.clone()),
                    (None, None) => None,
                };
                match inner {
                    Some(inner) => {
                        let z = rec.apply(x_z + gate(&inner, 0, u), 1);
                        let r = rec.apply(x_r + gate(&inner, 1, u), 1);
                        (z, act.apply(x_h + r * gate(&inner, 2, u), 1))
                    }
                    None => (rec.apply(x_z, 1), act.apply(x_h, 1)),
                }
            } else {
                // z, r from x + h·U_zr; hh = act(x_h + (r ⊙ h)·U_h).
                match &h {
                    Some(h) => {
                        let inner = h.clone().matmul(rk_zr.clone());
                        let z = rec.apply(x_z + gate(&inner, 0, u), 1);
                        let r = rec.apply(x_r + gate(&inner, 1, u), 1);
                        (z, act.apply(x_h + (r * h.clone()).matmul(rk_h.clone()), 1))
                    }
                    None => (rec.apply(x_z, 1), act.apply(x_h, 1)),
                }
            };
            let keep_new = z.clone().neg().add_scalar(1.0) * candidate;
            match h {
                Some(h) => z * h + keep_new,
                None => keep_new,
            }
        };
        run_steps(
            &self.name,
            &xs,
            self.config.return_sequences,
            cell,
            Tensor::clone,
        )
    }

    /// Keras' layout of the bias: as stored with `reset_after`, else `[3·units]`.
    fn bias_data(c: &GruConfig, b: &Param<Tensor<2>>) -> TensorData {
        if c.reset_after {
            b.val().into_data()
        } else {
            let w = b.dims()[1];
            b.val().reshape([w]).into_data()
        }
    }

    /// Replaces the bias, given in Keras' layout.
    fn set_bias(
        c: &GruConfig,
        b: &mut Param<Tensor<2>>,
        name: &str,
        data: TensorData,
    ) -> Result<(), LayerError> {
        if c.reset_after {
            return crate::weights::set_param(b, name, "bias", data);
        }
        let value = b.val();
        let w = value.dims()[1];
        let t = crate::weights::upload(name, "bias", data, [w], &value.device())?;
        *b = Param::from_tensor(t.reshape([1, w]));
        Ok(())
    }
}

recurrent_kind!(Gru, GruConfig, "GRU", "gru");
