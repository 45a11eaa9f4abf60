//! Layers that rearrange a sample's elements without changing them: `Reshape` and `Permute`.

use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::layer::{BuildContext, ChannelRole, LayerKind, ShapeContext};
use crate::{DataFormat, FeatureShape, LayerError, Mode, Value};

/// Configuration of a [`Reshape`] layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReshapeConfig {
    /// Keras' target shape, batch excluded, in the layout the user sees; at most one entry may
    /// be -1 (inferred). One entry `[features]` gives a flat output; two give a sequence,
    /// `[length, channels]` channels-last or `[channels, length]` channels-first.
    pub target_shape: Vec<i64>,
}

impl ReshapeConfig {
    /// A reshape to `target_shape`.
    pub fn new(target_shape: &[i64]) -> Self {
        Self {
            target_shape: target_shape.to_vec(),
        }
    }

    /// The output shape for inputs of `total` elements per sample.
    fn resolve(
        &self,
        name: &str,
        total: usize,
        format: DataFormat,
    ) -> Result<FeatureShape, LayerError> {
        let target = &self.target_shape;
        let error = |reason: String| LayerError::config(name, reason);
        if !(1..=2).contains(&target.len()) {
            return Err(error(format!(
                "Reshape supports a target shape of 1 dimension (flat) or 2 (a sequence), got \
                 {target:?}"
            )));
        }
        let mut dims = Vec::with_capacity(target.len());
        let mut known = 1usize;
        let mut inferred = None;
        for (i, &d) in target.iter().enumerate() {
            if d == -1 {
                if inferred.is_some() {
                    return Err(error(format!(
                        "target shape {target:?} has more than one -1"
                    )));
                }
                inferred = Some(i);
                dims.push(0);
            } else {
                let d = usize::try_from(d).ok().filter(|&d| d > 0).ok_or_else(|| {
                    error(format!(
                        "target shape {target:?}: every entry must be > 0 or -1, got {d}"
                    ))
                })?;
                known = known
                    .checked_mul(d)
                    .ok_or_else(|| error(format!("target shape {target:?} overflows a size")))?;
                dims.push(d);
            }
        }
        match inferred {
            Some(i) => {
                if !total.is_multiple_of(known) || total / known == 0 {
                    return Err(error(format!(
                        "cannot reshape {total} elements per sample to {target:?}: {total} is \
                         not a positive multiple of {known}"
                    )));
                }
                dims[i] = total / known;
            }
            None if known != total => {
                return Err(error(format!(
                    "cannot reshape {total} elements per sample to {target:?} ({known} elements)"
                )));
            }
            None => {}
        }
        match (dims.as_slice(), format) {
            (&[features], _) => Ok(FeatureShape::Flat { features }),
            (&[length, channels], DataFormat::ChannelsLast)
            | (&[channels, length], DataFormat::ChannelsFirst) => Ok(FeatureShape::Seq {
                channels,
                length: Some(length),
            }),
            _ => Err(error(format!("unsupported target shape {target:?}"))),
        }
    }
}

/// Elements per sample of the single input, which must have a fixed size.
fn sample_size(cx: &ShapeContext, class: &str) -> Result<usize, LayerError> {
    match cx.input() {
        FeatureShape::Flat { features } => Ok(features),
        FeatureShape::Seq {
            channels,
            length: Some(length),
        } => channels.checked_mul(length).ok_or_else(|| {
            cx.config_error(format!(
                "{channels} channels × {length} steps overflows a size"
            ))
        }),
        FeatureShape::Seq { length: None, .. } => Err(cx.config_error(format!(
            "{class} needs a fixed input length (this input's length is variable)"
        ))),
    }
}

/// Keras `Reshape`: the sample's elements, in row-major order of the layout the user sees,
/// laid out anew in the target shape.
#[derive(Module, Debug)]
pub struct Reshape {
    /// The output shape (batch excluded).
    #[module(skip)]
    pub output: FeatureShape,
    /// The model's data format (the user-visible layout whose element order is kept).
    #[module(skip)]
    pub data_format: DataFormat,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl LayerKind for Reshape {
    type Config = ReshapeConfig;
    const KERAS_CLASS: &'static str = "Reshape";
    const STEM: &'static str = "reshape";

    fn output_shape(c: &ReshapeConfig, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
        let total = sample_size(cx, Self::KERAS_CLASS)?;
        c.resolve(cx.name, total, cx.data_format)
    }
    fn build(c: &ReshapeConfig, cx: &BuildContext) -> Result<Self, LayerError> {
        Ok(Self {
            output: Self::output_shape(c, &cx.shape)?,
            data_format: cx.shape.data_format,
            name: cx.shape.name.to_string(),
        })
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: Vec<Value>, _mode: Mode) -> Result<Value, LayerError> {
        let format = self.data_format;
        // The sample as one row, in the user layout's row-major order.
        let (dims, rows) = match crate::layer::single(&self.name, inputs)? {
            Value::Flat(x) => (x.dims().to_vec(), x),
            Value::Seq(x) => {
                let [b, c, l] = x.dims();
                let user = match format {
                    DataFormat::ChannelsLast => x.swap_dims(1, 2),
                    DataFormat::ChannelsFirst => x,
                };
                (vec![b, c, l], user.reshape([b, c.saturating_mul(l)]))
            }
        };
        let [batch, total] = rows.dims();
        let want = match self.output {
            FeatureShape::Flat { features } => features,
            FeatureShape::Seq { channels, length } => channels.saturating_mul(length.unwrap_or(0)),
        };
        if total != want {
            return Err(LayerError::InputShape {
                layer: self.name.clone(),
                expected: format!("{want} elements per sample"),
                got: dims,
            });
        }
        Ok(match self.output {
            FeatureShape::Flat { .. } => Value::Flat(rows),
            FeatureShape::Seq { channels, length } => {
                let length = length.unwrap_or(0);
                Value::Seq(match format {
                    DataFormat::ChannelsLast => {
                        rows.reshape([batch, length, channels]).swap_dims(1, 2)
                    }
                    DataFormat::ChannelsFirst => rows.reshape([batch, channels, length]),
                })
            }
        })
    }
}

/// Configuration of a [`Permute`] layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermuteConfig {
    /// Keras' permutation, 1-based, batch excluded: for a sequence `[2, 1]` swaps its two axes
    /// and `[1, 2]` keeps them; for a flat input only `[1]`.
    pub dims: Vec<usize>,
}

impl PermuteConfig {
    /// A permutation of the axes `dims` (1-based).
    pub fn new(dims: &[usize]) -> Self {
        Self {
            dims: dims.to_vec(),
        }
    }

    /// Whether the permutation swaps a sequence's two axes, or why it is not supported.
    fn swaps(&self, cx: &ShapeContext) -> Result<bool, LayerError> {
        match (cx.input(), self.dims.as_slice()) {
            (FeatureShape::Seq { .. }, [1, 2]) | (FeatureShape::Flat { .. }, [1]) => Ok(false),
            (FeatureShape::Seq { .. }, [2, 1]) => Ok(true),
            (shape, dims) => Err(cx.config_error(format!(
                "Permute dims {dims:?} is not a permutation of the axes of {} (1-based, batch \
                 excluded: a sequence takes [2, 1] or [1, 2], a flat input [1])",
                shape.keras_text(cx.data_format)
            ))),
        }
    }
}

/// Keras `Permute` on a sequence: `[2, 1]` swaps length and channels (the old length becomes
/// the channels, so it must be fixed); `[1, 2]` is the identity.
#[derive(Module, Debug)]
pub struct Permute {
    /// Whether the two axes are swapped.
    #[module(skip)]
    pub swap: bool,
    /// The input length the layer was built for (a swap needs it fixed).
    #[module(skip)]
    pub length: Option<usize>,
    /// The layer's name.
    #[module(skip)]
    pub name: String,
}

impl LayerKind for Permute {
    type Config = PermuteConfig;
    const KERAS_CLASS: &'static str = "Permute";
    const STEM: &'static str = "permute";

    fn channel_role(c: &PermuteConfig) -> ChannelRole {
        // Only the identity keeps channels where they were.
        match c.dims.as_slice() {
            [1, 2] | [1] => ChannelRole::Local,
            _ => ChannelRole::Mixes,
        }
    }
    fn output_shape(c: &PermuteConfig, cx: &ShapeContext) -> Result<FeatureShape, LayerError> {
        if !c.swaps(cx)? {
            return Ok(cx.input());
        }
        match cx.seq()? {
            (channels, Some(length)) => Ok(FeatureShape::Seq {
                channels: length,
                length: Some(channels),
            }),
            (_, None) => Err(cx.config_error(
                "Permute [2, 1] makes the length the channels, so it needs a fixed input length",
            )),
        }
    }
    fn build(c: &PermuteConfig, cx: &BuildContext) -> Result<Self, LayerError> {
        Self::output_shape(c, &cx.shape)?;
        let length = match cx.shape.input() {
            FeatureShape::Seq { length, .. } => length,
            FeatureShape::Flat { .. } => None,
        };
        Ok(Self {
            swap: c.swaps(&cx.shape)?,
            length,
            name: cx.shape.name.to_string(),
        })
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn forward(&self, inputs: Vec<Value>, _mode: Mode) -> Result<Value, LayerError> {
        if !self.swap {
            return crate::layer::single(&self.name, inputs);
        }
        let x: Tensor<3> = crate::layer::single_seq(&self.name, inputs)?;
        let [b, c, l] = x.dims();
        if self.length.is_some_and(|want| want != l) {
            return Err(LayerError::InputShape {
                layer: self.name.clone(),
                expected: format!("[batch, {c}, {}]", self.length.unwrap_or(l)),
                got: vec![b, c, l],
            });
        }
        Ok(Value::Seq(x.swap_dims(1, 2)))
    }
}
