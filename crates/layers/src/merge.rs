//! Merge layers (several inputs, one output): the element-wise `Add`, `Subtract`, `Multiply`,
//! `Average`, `Maximum`, `Minimum`, and `Concatenate`.

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::layer::{Arity, BuildContext, LayerKind, ShapeContext};
use crate::{DataFormat, FeatureShape, LayerError, Mode, Value};

/// Configuration of an element-wise merge. It has no options: `{"type": "add"}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MergeConfig {}

/// The element-wise operation of a merge layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Subtract,
    Multiply,
    Average,
    Maximum,
    Minimum,
}

/// The error for a layer given a number of inputs its arity does not allow.
fn arity_error(name: &str, class: &str, arity: Arity, n: usize) -> LayerError {
    LayerError::config(name, format!("{class} takes {}, got {n}", arity.describe()))
}

/// The shape of an element-wise merge: every input must have the first one's shape.
fn same_shape(cx: &ShapeContext, class: &str, arity: Arity) -> Result<FeatureShape, LayerError> {
    if !arity.allows(cx.inputs.len()) {
        return Err(arity_error(cx.name, class, arity, cx.inputs.len()));
    }
    let first = cx.input();
    for (i, &shape) in cx.inputs.iter().enumerate().skip(1) {
        match (first, shape) {
            (
                FeatureShape::Seq {
                    channels: c0,
                    length: l0,
                },
                FeatureShape::Seq { channels, length },
            ) => {
                if channels != c0 {
                    return Err(LayerError::ChannelMismatch {
                        layer: cx.name.to_string(),
                        expected: c0,
                        got: channels,
                    });
                }
                if length != l0 {
                    return Err(cx.config_error(format!(
                        "{class} needs inputs of one shape: input {i} is {}, input 0 is {} \
                         (a fixed and a variable length do not match either)",
                        shape.keras_text(cx.data_format),
                        first.keras_text(cx.data_format)
                    )));
                }
            }
            (FeatureShape::Flat { features: f0 }, FeatureShape::Flat { features })
                if f0 == features => {}
            _ => {
                return Err(cx.config_error(format!(
                    "{class} needs inputs of one shape: input {i} is {}, input 0 is {}",
                    shape.keras_text(cx.data_format),
                    first.keras_text(cx.data_format)
                )));
            }
        }
    }
    Ok(first)
}

/// Inputs of one kind: all sequences or all flat.
enum Inputs {
    Seq(Vec<Tensor<3>>),
    Flat(Vec<Tensor<2>>),
}

/// Sorts the inputs into one kind, or says which input is of the other kind.
fn split(name: &str, inputs: Vec<Value>) -> Result<Inputs, LayerError> {
    let first_dims = inputs.first().map(Value::dims).unwrap_or_default();
    let mismatch = |got: Vec<usize>| LayerError::InputShape {
        layer: name.to_string(),
        expected: format!("a tensor of rank {} like input 0", first_dims.len()),
        got,
    };
    match inputs.first() {
        Some(Value::Flat(_)) => inputs
            .into_iter()
            .map(|v| match v {
                Value::Flat(t) => Ok(t),
                other => Err(mismatch(other.dims())),
            })
            .collect::<Result<_, _>>()
            .map(Inputs::Flat),
        _ => inputs
            .into_iter()
            .map(|v| match v {
                Value::Seq(t) => Ok(t),
                other => Err(mismatch(other.dims())),
            })
            .collect::<Result<_, _>>()
            .map(Inputs::Seq),
    }
}

/// Checks that every tensor has the first one's dimensions.
fn check_same_dims<const D: usize>(name: &str, xs: &[Tensor<D>]) -> Result<(), LayerError> {
    let Some(first) = xs.first().map(Tensor::dims) else {
        return Ok(());
    };
    for x in &xs[1..] {
        let dims = x.dims();
        if dims != first {
            return Err(LayerError::InputShape {
                layer: name.to_string(),
                expected: format!("{first:?} (the shape of input 0)"),
                got: dims.to_vec(),
            });
        }
    }
    Ok(())
}

/// Applies `op` across `xs` (at least one tensor, all of one shape).
fn combine<const D: usize>(op: Op, xs: Vec<Tensor<D>>) -> Option<Tensor<D>> {
    let n = xs.len();
    let mut it = xs.into_iter();
    let first = it.next()?;
    Some(match op {
        Op::Add => it.fold(first, |a, b| a + b),
        Op::Subtract => it.fold(first, |a, b| a - b),
        Op::Multiply => it.fold(first, |a, b| a * b),
        Op::Average => it.fold(first, |a, b| a + b).div_scalar(n as f64),
        Op::Maximum => it.fold(first, Tensor::max_pair),
        Op::Minimum => it.fold(first, Tensor::min_pair),
    })
}

/// The forward pass of an element-wise merge, with the inputs' count and dimensions checked.
fn merge(
    name: &str,
    class: &str,
    op: Op,
    arity: Arity,
    inputs: Vec<Value>,
) -> Result<Value, LayerError> {
    if !arity.allows(inputs.len()) {
        return Err(arity_error(name, class, arity, inputs.len()));
    }
    let none = || LayerError::config(name, "no input");
    Ok(match split(name, inputs)? {
        Inputs::Seq(xs) => {
            check_same_dims(name, &xs)?;
            Value::Seq(combine(op, xs).ok_or_else(none)?)
        }
        Inputs::Flat(xs) => {
            check_same_dims(name, &xs)?;
            Value::Flat(combine(op, xs).ok_or_else(none)?)
        }
    })
}

/// Stamps out one module type and its [`LayerKind`] impl per element-wise merge.
macro_rules! elementwise {
    ($( $(#[$doc:meta])* $ty:ident => $op:ident, $class:literal, $stem:literal, $arity:expr; )*) => {
        $(
            $(#[$doc])*
            #[derive(Module, Debug)]
            pub struct $ty {
                /// The layer's name.
                #[module(skip)]
                pub name: String,
            }

            impl LayerKind for $ty {
                type Config = MergeConfig;
                const KERAS_CLASS: &'static str = $class;
                const STEM: &'static str = $stem;

                fn arity(_: &MergeConfig) -> Arity {
                    $arity
                }
                fn output_shape(
                    _: &MergeConfig,
                    cx: &ShapeContext,
                ) -> Result<FeatureShape, LayerError> {
                    same_shape(cx, $class, $arity)
                }
                fn build(_: &MergeConfig, cx: &BuildContext) -> Result<Self, LayerError> {
                    Ok(Self {
                        name: cx.shape.name.to_string(),
                    })
                }
                fn name(&self) -> &str {
                    &self.name
                }
                fn forward(&self, inputs: Vec<Value>, _mode: Mode) -> Result<Value, LayerError> {
                    merge(&self.name, $class, Op::$op, $arity, inputs)
                }
            }
        )*
    };
}

elementwise! {
    /// Keras `Add`: the element-wise sum of two or more inputs of one shape.
    Add => Add, "Add", "add", Arity::AtLeast(2);
    /// Keras `Subtract`: the first of exactly two inputs minus the second.
    Subtract => Subtract, "Subtract", "subtract", Arity::Exactly(2);
    /// Keras `Multiply`: the element-wise product of two or more inputs of one shape.
    Multiply => Multiply, "Multiply", "multiply", Arity::AtLeast(2);
    /// Keras `Average`: the element-wise mean of two or more inputs of one shape.
    Average => Average, "Average", "average", Arity::AtLeast(2);
    /// Keras `Maximum`: the element-wise maximum of two or more inputs of one shape.
    Maximum => Maximum, "Maximum", "maximum", Arity::AtLeast(2);
    /// Keras `Minimum`: the element-wise minimum of two or more inputs of one shape.
    Minimum => Minimum, "Minimum", "minimum", Arity::AtLeast(2);
}

/// Configuration of a [`Concatenate`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConcatenateConfig {
    /// Keras' axis on the tensor the user sees, batch included (default -1, the last): for a
    /// channels-last sequence `[batch, length, channels]` -1 and 2 are the channels and 1 the
    /// length; for a channels-first one `[batch, channels, length]` 1 is the channels and -1
    /// and 2 the length; for flat inputs -1 or 1.
    pub axis: i64,
}

impl Default for ConcatenateConfig {
    fn default() -> Self {
        Self { axis: -1 }
    }
}

impl ConcatenateConfig {
    /// Concatenation along Keras axis `axis`.
    pub fn new(axis: i64) -> Self {
        Self { axis }
    }

    /// The internal (channels-first) dimension `axis` names for inputs shaped like `shape`:
    /// 1 for channels or flat features, 2 for the length.
    fn internal_dim(
        &self,
        name: &str,
        shape: FeatureShape,
        format: DataFormat,
    ) -> Result<usize, LayerError> {
        let rank: i64 = match shape {
            FeatureShape::Seq { .. } => 3,
            FeatureShape::Flat { .. } => 2,
        };
        let axis = if self.axis < 0 {
            self.axis.checked_add(rank)
        } else {
            Some(self.axis)
        };
        let Some(axis) = axis.filter(|a| (1..rank).contains(a)) else {
            return Err(LayerError::config(
                name,
                format!(
                    "Concatenate axis {} is not a feature axis of inputs of rank {rank} \
                     (batch included; allowed: 1..{} or -{}..-1; the batch axis 0 cannot be \
                     concatenated)",
                    self.axis,
                    rank - 1,
                    rank - 1
                ),
            ));
        };
        Ok(match (shape, format, axis) {
            (FeatureShape::Flat { .. }, ..) => 1,
            (_, DataFormat::ChannelsLast, 1) | (_, DataFormat::ChannelsFirst, 2) => 2,
            _ => 1,
        })
    }
}

/// Keras `Concatenate`: joins its inputs along one axis; every other axis must agree.
#[derive(Module, Debug)]
pub struct Concatenate {
    /// The channels-first dimension joined: 1 (channels or flat features) or 2 (length).
    #[module(skip)]
    pub dim: usize,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

/// The output shape of a concatenation along internal dimension `dim`.
fn concat_shape(cx: &ShapeContext, dim: usize) -> Result<FeatureShape, LayerError> {
    let first = cx.input();
    let mismatch = |i: usize, shape: FeatureShape, what: &str| {
        cx.config_error(format!(
            "Concatenate needs inputs that agree on every axis but the joined one: input {i} is \
             {}, input 0 is {} ({what})",
            shape.keras_text(cx.data_format),
            first.keras_text(cx.data_format)
        ))
    };
    let overflow = || cx.config_error("the concatenated size overflows a size");
    match first {
        FeatureShape::Flat { .. } => {
            let mut features = 0usize;
            for (i, &shape) in cx.inputs.iter().enumerate() {
                let FeatureShape::Flat { features: f } = shape else {
                    return Err(mismatch(i, shape, "a sequence and a flat input"));
                };
                features = features.checked_add(f).ok_or_else(overflow)?;
            }
            Ok(FeatureShape::Flat { features })
        }
        FeatureShape::Seq {
            channels: c0,
            length: l0,
        } => {
            let mut channels = 0usize;
            let mut length = 0usize;
            let mut variable = 0usize;
            for (i, &shape) in cx.inputs.iter().enumerate() {
                let FeatureShape::Seq {
                    channels: c,
                    length: l,
                } = shape
                else {
                    return Err(mismatch(i, shape, "a flat input and a sequence"));
                };
                if dim == 1 {
                    if l != l0 {
                        return Err(mismatch(i, shape, "lengths differ"));
                    }
                    channels = channels.checked_add(c).ok_or_else(overflow)?;
                } else {
                    if c != c0 {
                        return Err(LayerError::ChannelMismatch {
                            layer: cx.name.to_string(),
                            expected: c0,
                            got: c,
                        });
                    }
                    match l {
                        Some(l) => length = length.checked_add(l).ok_or_else(overflow)?,
                        None => variable += 1,
                    }
                }
            }
            if dim == 1 {
                return Ok(FeatureShape::Seq {
                    channels,
                    length: l0,
                });
            }
            match variable {
                0 => Ok(FeatureShape::Seq {
                    channels: c0,
                    length: Some(length),
                }),
                n if n == cx.inputs.len() => Ok(FeatureShape::Seq {
                    channels: c0,
                    length: None,
                }),
                _ => Err(cx.config_error(
                    "Concatenate along the length needs all input lengths fixed or all variable, \
                     not a mix",
                )),
            }
        }
    }
}

/// Checks that every tensor agrees with the first except along `dim`.
fn check_concat_dims<const D: usize>(
    name: &str,
    xs: &[Tensor<D>],
    dim: usize,
) -> Result<(), LayerError> {
    let Some(first) = xs.first().map(Tensor::dims) else {
        return Ok(());
    };
    for x in &xs[1..] {
        let dims = x.dims();
        if (0..D).any(|d| d != dim && dims[d] != first[d]) {
            let expected: Vec<String> = (0..D)
                .map(|d| {
                    if d == dim {
                        "*".to_string()
                    } else {
                        first[d].to_string()
                    }
                })
                .collect();
            return Err(LayerError::InputShape {
                layer: name.to_string(),
                expected: format!(
                    "[{}] (input 0's shape off the joined axis)",
                    expected.join(", ")
                ),
                got: dims.to_vec(),
            });
        }
    }
    Ok(())
}

impl LayerKind for Concatenate {
    type Config = ConcatenateConfig;
    const KERAS_CLASS: &'static str = "Concatenate";
    const STEM: &'static str = "concatenate";

    fn arity(_: &ConcatenateConfig) -> Arity {
        Arity::AtLeast(2)
    }
    fn output_shape(c: &ConcatenateConfig, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
        let arity = Arity::AtLeast(2);
        if !arity.allows(cx.inputs.len()) {
            return Err(arity_error(
                cx.name,
                Self::KERAS_CLASS,
                arity,
                cx.inputs.len(),
            ));
        }
        let dim = c.internal_dim(cx.name, cx.input(), cx.data_format)?;
        concat_shape(cx, dim)
    }
    fn build(c: &ConcatenateConfig, cx: &BuildContext) -> Result<Self, LayerError> {
        let shape = cx.shape;
        Ok(Self {
            dim: c.internal_dim(shape.name, shape.input(), shape.data_format)?,
            name: shape.name.to_string(),
        })
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: Vec<Value>, _mode: Mode) -> Result<Value, LayerError> {
        let arity = Arity::AtLeast(2);
        if !arity.allows(inputs.len()) {
            return Err(arity_error(
                &self.name,
                Self::KERAS_CLASS,
                arity,
                inputs.len(),
            ));
        }
        Ok(match split(&self.name, inputs)? {
            Inputs::Seq(xs) => {
                check_concat_dims(&self.name, &xs, self.dim)?;
                Value::Seq(Tensor::cat(xs, self.dim))
            }
            Inputs::Flat(xs) => {
                if self.dim != 1 {
                    return Err(LayerError::config(
                        &self.name,
                        "built to join sequences along their length, got flat inputs",
                    ));
                }
                check_concat_dims(&self.name, &xs, 1)?;
                Value::Flat(Tensor::cat(xs, 1))
            }
        })
    }
}
