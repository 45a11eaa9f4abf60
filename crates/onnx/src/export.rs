//! widen → ONNX: each layer becomes the ONNX nodes that compute the same function on the
//! channels-first tensors widen runs inside a model (a channels-last model gets one Transpose
//! after its input and one before a sequence output). Padding is written out exactly as
//! widen computes it (`widen_ops::conv_output`); where it depends on a length the model does not
//! fix, `auto_pad = SAME_UPPER`, which is TensorFlow's (Keras') `same`.

use std::collections::HashSet;

use widen_layers::{
    Activation, ConcatenateConfig, DataFormat, FeatureShape, LayerConfig, Model, MomentumOn,
    PaddingMode,
};
use widen_ops::{Padding, conv_output};

use crate::OnnxError;
use crate::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto, attr_type, data_type,
};
use crate::tensor::{f32_tensor, i64_tensor};

/// The opset `export` writes.
pub const EXPORT_OPSET: i64 = 17;
/// The IR version `export` writes (the one ONNX pairs with opset 17).
pub const EXPORT_IR_VERSION: i64 = 8;

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: attr_type::INT,
        ..AttributeProto::default()
    }
}

fn ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: ints.to_vec(),
        r#type: attr_type::INTS,
        ..AttributeProto::default()
    }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: attr_type::FLOAT,
        ..AttributeProto::default()
    }
}

fn string(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: s.as_bytes().to_vec(),
        r#type: attr_type::STRING,
        ..AttributeProto::default()
    }
}

fn dim_value(v: usize) -> Dimension {
    Dimension {
        dim_value: Some(v as i64),
        dim_param: None,
    }
}

fn dim_param(p: &str) -> Dimension {
    Dimension {
        dim_value: None,
        dim_param: Some(p.into()),
    }
}

fn value_info(name: &str, dims: Vec<Dimension>) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: data_type::FLOAT,
                shape: Some(TensorShapeProto { dim: dims }),
            }),
        }),
    }
}

/// Which recurrent cell an export writes.
#[derive(Debug, Clone, Copy)]
enum Cell {
    Lstm,
    Gru { reset_after: bool },
}

struct Exporter<'m> {
    model: &'m Model,
    format: DataFormat,
    nodes: Vec<NodeProto>,
    initializers: Vec<crate::proto::TensorProto>,
    names: HashSet<String>,
}

impl Exporter<'_> {
    /// A value (or initializer) name not yet used, from `base`.
    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.names.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.names.insert(name.clone());
        name
    }

    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: format!("{output}/{op}"),
            op_type: op.to_string(),
            attribute,
            domain: String::new(),
        });
    }

    fn constant(&mut self, base: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh(base);
        self.initializers.push(f32_tensor(&name, dims, values));
        name
    }

    fn constant_ints(&mut self, base: &str, values: &[i64]) -> String {
        let name = self.fresh(base);
        self.initializers
            .push(i64_tensor(&name, &[values.len()], values));
        name
    }

    fn weight(&self, layer: &str, param: &str) -> Result<(Vec<f32>, Vec<usize>), OnnxError> {
        let data = self
            .model
            .weight(layer, param)
            .map_err(|e| self.refuse_named(layer, &format!("reading `{param}`: {e}")))?;
        let shape = data.shape().as_slice().to_vec();
        let values = data
            .try_to_vec_as::<f32>()
            .map_err(|e| self.refuse_named(layer, &format!("reading `{param}`: {e:?}")))?;
        Ok((values, shape))
    }

    fn refuse_named(&self, layer: &str, reason: &str) -> OnnxError {
        let class = self
            .model
            .layer(layer)
            .map_or("layer", |l| l.keras_class())
            .to_string();
        OnnxError::Export {
            layer: layer.to_string(),
            class,
            reason: reason.to_string(),
        }
    }

    /// `(left, right)` pads of a window op on `length`, or `None` when they depend on a length
    /// the model does not fix (then `auto_pad = SAME_UPPER`, Keras' `same`).
    fn pads(
        &self,
        layer: &str,
        length: Option<usize>,
        k: usize,
        s: usize,
        d: usize,
        padding: PaddingMode,
    ) -> Result<Option<(usize, usize)>, OnnxError> {
        let reach = d.saturating_mul(k.saturating_sub(1));
        Ok(match (length, padding) {
            (Some(l), p) => {
                let g = conv_output(l, k, s, d, Padding::from(p))
                    .map_err(|e| self.refuse_named(layer, &e.to_string()))?;
                Some((g.left, g.right))
            }
            (None, PaddingMode::Valid) => Some((0, 0)),
            (None, PaddingMode::Causal) => Some((reach, 0)),
            (None, PaddingMode::Same) if s == 1 => Some((reach / 2, reach - reach / 2)),
            (None, PaddingMode::Same) => None,
        })
    }

    fn pad_attrs(pads: Option<(usize, usize)>) -> AttributeProto {
        match pads {
            Some((l, r)) => ints("pads", &[l as i64, r as i64]),
            None => string("auto_pad", "SAME_UPPER"),
        }
    }

    /// The activation `a` (not linear) of `x` into `out`; `seq` says whether `x` is a sequence.
    fn activation(&mut self, x: &str, a: Activation, seq: bool, out: &str) {
        match a {
            Activation::Linear => self.node("Identity", &[x], out, vec![]),
            Activation::Relu => self.node("Relu", &[x], out, vec![]),
            Activation::Sigmoid => self.node("Sigmoid", &[x], out, vec![]),
            Activation::Tanh => self.node("Tanh", &[x], out, vec![]),
            Activation::LeakyRelu { alpha } => {
                self.node("LeakyRelu", &[x], out, vec![float("alpha", alpha as f32)]);
            }
            Activation::Elu { alpha } => {
                self.node("Elu", &[x], out, vec![float("alpha", alpha as f32)]);
            }
            Activation::Gelu => {
                // Opset 17 has no Gelu: torch's erf form, which the importer reads back.
                let sqrt2 =
                    self.constant(&format!("{out}/sqrt2"), &[], &[std::f32::consts::SQRT_2]);
                let one = self.constant(&format!("{out}/one"), &[], &[1.0]);
                let half = self.constant(&format!("{out}/half"), &[], &[0.5]);
                let scaled = self.fresh(&format!("{out}/scaled"));
                self.node("Div", &[x, &sqrt2], &scaled, vec![]);
                let erf = self.fresh(&format!("{out}/erf"));
                self.node("Erf", &[&scaled], &erf, vec![]);
                let plus = self.fresh(&format!("{out}/erf_plus_one"));
                self.node("Add", &[&erf, &one], &plus, vec![]);
                let times = self.fresh(&format!("{out}/x_times"));
                self.node("Mul", &[x, &plus], &times, vec![]);
                self.node("Mul", &[&times, &half], out, vec![]);
            }
            Activation::Swish => {
                let s = self.fresh(&format!("{out}/sigmoid"));
                self.node("Sigmoid", &[x], &s, vec![]);
                self.node("Mul", &[x, &s], out, vec![]);
            }
            Activation::Softmax | Activation::LogSoftmax => {
                // widen normalises the layout's last axis: channels (channels-last) or the
                // length (channels-first), dim 1 or 2 of the [N, C, L] tensor.
                let axis = match (seq, self.format) {
                    (false, _) | (true, DataFormat::ChannelsLast) => 1,
                    (true, DataFormat::ChannelsFirst) => 2,
                };
                let op = if a == Activation::Softmax {
                    "Softmax"
                } else {
                    "LogSoftmax"
                };
                self.node(op, &[x], out, vec![int("axis", axis)]);
            }
        }
    }

    /// Emits layer `i` reading `xs`; returns the ONNX value holding its output.
    fn layer(
        &mut self,
        i: usize,
        xs: &[String],
        inputs: &[FeatureShape],
    ) -> Result<String, OnnxError> {
        let spec = &self.model.spec().layers[i];
        let name = spec.name.as_str();
        let x = xs.first().map_or("", String::as_str);
        let in_len = match inputs.first() {
            Some(FeatureShape::Seq { length, .. }) => *length,
            _ => None,
        };
        let in_seq = matches!(inputs.first(), Some(FeatureShape::Seq { .. }));
        let refuse = |reason: &str| OnnxError::Export {
            layer: name.to_string(),
            class: spec.config.keras_class().to_string(),
            reason: reason.to_string(),
        };
        let out = match &spec.config {
            LayerConfig::Conv1d(c) => {
                let (w, dims) = self.weight(name, "weight")?;
                let weight = self.constant(&format!("{name}.weight"), &dims, &w);
                let mut inputs = vec![x.to_string(), weight];
                if c.use_bias {
                    let (b, dims) = self.weight(name, "bias")?;
                    inputs.push(self.constant(&format!("{name}.bias"), &dims, &b));
                }
                let (k, s, d) = (c.kernel_size, c.strides, c.dilation_rate);
                let pads = self.pads(name, in_len, k, s, d, c.padding)?;
                let out = if c.activation == Activation::Linear {
                    self.fresh(name)
                } else {
                    self.fresh(&format!("{name}/conv"))
                };
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                self.node(
                    "Conv",
                    &refs,
                    &out,
                    vec![
                        ints("dilations", &[d as i64]),
                        int("group", c.groups as i64),
                        ints("kernel_shape", &[k as i64]),
                        Self::pad_attrs(pads),
                        ints("strides", &[s as i64]),
                    ],
                );
                self.finish_activation(&out, c.activation, true, name)
            }
            LayerConfig::BatchNorm1d(c) => {
                let (mean, dims) = self.weight(name, "moving_mean")?;
                let (var, _) = self.weight(name, "moving_variance")?;
                let channels = mean.len();
                let gamma = if c.scale {
                    self.weight(name, "gamma")?.0
                } else {
                    vec![1.0; channels]
                };
                let beta = if c.center {
                    self.weight(name, "beta")?.0
                } else {
                    vec![0.0; channels]
                };
                let scale = self.constant(&format!("{name}.gamma"), &dims, &gamma);
                let b = self.constant(&format!("{name}.beta"), &dims, &beta);
                let m = self.constant(&format!("{name}.moving_mean"), &dims, &mean);
                let v = self.constant(&format!("{name}.moving_variance"), &dims, &var);
                let momentum = match c.momentum_on {
                    MomentumOn::Moving => c.momentum,
                    MomentumOn::Batch => 1.0 - c.momentum,
                };
                let out = self.fresh(name);
                self.node(
                    "BatchNormalization",
                    &[x, &scale, &b, &m, &v],
                    &out,
                    vec![
                        float("epsilon", c.epsilon as f32),
                        float("momentum", momentum as f32),
                    ],
                );
                out
            }
            LayerConfig::MaxPool1d(p) | LayerConfig::AvgPool1d(p) => {
                let max = matches!(spec.config, LayerConfig::MaxPool1d(_));
                let (k, s) = (p.pool_size, p.stride());
                let pads = self.pads(name, in_len, k, s, 1, p.padding)?;
                let mut attrs = vec![
                    int("ceil_mode", 0),
                    ints("kernel_shape", &[k as i64]),
                    Self::pad_attrs(pads),
                    ints("strides", &[s as i64]),
                ];
                if !max {
                    attrs.push(int("count_include_pad", 0));
                }
                let out = self.fresh(name);
                self.node(
                    if max { "MaxPool" } else { "AveragePool" },
                    &[x],
                    &out,
                    attrs,
                );
                out
            }
            LayerConfig::GlobalMaxPool1d | LayerConfig::GlobalAvgPool1d => {
                let op = if matches!(spec.config, LayerConfig::GlobalMaxPool1d) {
                    "GlobalMaxPool"
                } else {
                    "GlobalAveragePool"
                };
                let pooled = self.fresh(&format!("{name}/pooled"));
                self.node(op, &[x], &pooled, vec![]);
                let out = self.fresh(name);
                self.node("Flatten", &[&pooled], &out, vec![int("axis", 1)]);
                out
            }
            LayerConfig::Dense(c) => {
                let (w, dims) = self.weight(name, "weight")?;
                let weight = self.constant(&format!("{name}.weight"), &dims, &w);
                let mut inputs = vec![x.to_string(), weight];
                if c.use_bias {
                    let (b, dims) = self.weight(name, "bias")?;
                    inputs.push(self.constant(&format!("{name}.bias"), &dims, &b));
                }
                let out = if c.activation == Activation::Linear {
                    self.fresh(name)
                } else {
                    self.fresh(&format!("{name}/gemm"))
                };
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                self.node(
                    "Gemm",
                    &refs,
                    &out,
                    vec![float("alpha", 1.0), float("beta", 1.0), int("transB", 0)],
                );
                self.finish_activation(&out, c.activation, false, name)
            }
            LayerConfig::Dropout(_) | LayerConfig::SpatialDropout1d(_) => x.to_string(),
            LayerConfig::Activation(Activation::Linear) => x.to_string(),
            LayerConfig::Activation(a) => {
                let out = self.fresh(name);
                self.activation(x, *a, in_seq, &out);
                out
            }
            LayerConfig::Normalization(_) => {
                let (mean, _) = self.weight(name, "mean")?;
                let (var, _) = self.weight(name, "variance")?;
                let c = mean.len();
                // widen divides by max(sqrt(variance), 1e-7), in f32 as here.
                let std: Vec<f32> = var.iter().map(|v| v.sqrt().max(1e-7)).collect();
                let m = self.constant(&format!("{name}.mean"), &[1, c, 1], &mean);
                let sd = self.constant(&format!("{name}.std"), &[1, c, 1], &std);
                let centered = self.fresh(&format!("{name}/centered"));
                self.node("Sub", &[x, &m], &centered, vec![]);
                let out = self.fresh(name);
                self.node("Div", &[&centered, &sd], &out, vec![]);
                out
            }
            LayerConfig::Add(_)
            | LayerConfig::Maximum(_)
            | LayerConfig::Minimum(_)
            | LayerConfig::Average(_) => {
                let op = match (&spec.config, xs.len()) {
                    (LayerConfig::Add(_), 2) => "Add",
                    (LayerConfig::Add(_), _) => "Sum",
                    (LayerConfig::Maximum(_), _) => "Max",
                    (LayerConfig::Minimum(_), _) => "Min",
                    _ => "Mean",
                };
                let refs: Vec<&str> = xs.iter().map(String::as_str).collect();
                let out = self.fresh(name);
                self.node(op, &refs, &out, vec![]);
                out
            }
            LayerConfig::Subtract(_) | LayerConfig::Multiply(_) => {
                let op = if matches!(spec.config, LayerConfig::Subtract(_)) {
                    "Sub"
                } else {
                    "Mul"
                };
                // Binary ops: a chain over three or more inputs.
                let mut acc = x.to_string();
                for (j, next) in xs.iter().enumerate().skip(1) {
                    let out = if j + 1 == xs.len() {
                        self.fresh(name)
                    } else {
                        self.fresh(&format!("{name}/partial{j}"))
                    };
                    self.node(op, &[&acc, next], &out, vec![]);
                    acc = out;
                }
                acc
            }
            LayerConfig::Concatenate(c) => {
                let axis = concat_dim(c, inputs.first(), self.format)
                    .ok_or_else(|| refuse(&format!("axis {} is not a feature axis", c.axis)))?;
                let refs: Vec<&str> = xs.iter().map(String::as_str).collect();
                let out = self.fresh(name);
                self.node("Concat", &refs, &out, vec![int("axis", axis)]);
                out
            }
            LayerConfig::ZeroPadding1d(p) => {
                let [b, e] = p.padding;
                let pads =
                    self.constant_ints(&format!("{name}.pads"), &[0, 0, b as i64, 0, 0, e as i64]);
                let out = self.fresh(name);
                self.node("Pad", &[x, &pads], &out, vec![string("mode", "constant")]);
                out
            }
            LayerConfig::Cropping1d(c) => {
                let [b, e] = c.cropping;
                let end = match (in_len, e) {
                    (Some(l), e) => l.saturating_sub(e) as i64,
                    (None, 0) => i64::MAX,
                    (None, e) => -(e as i64),
                };
                let starts = self.constant_ints(&format!("{name}.starts"), &[b as i64]);
                let ends = self.constant_ints(&format!("{name}.ends"), &[end]);
                let axes = self.constant_ints(&format!("{name}.axes"), &[2]);
                let out = self.fresh(name);
                self.node("Slice", &[x, &starts, &ends, &axes], &out, vec![]);
                out
            }
            LayerConfig::UpSampling1d(u) => {
                let scales =
                    self.constant(&format!("{name}.scales"), &[3], &[1.0, 1.0, u.size as f32]);
                let out = self.fresh(name);
                self.node(
                    "Resize",
                    &[x, "", &scales],
                    &out,
                    vec![
                        string("coordinate_transformation_mode", "asymmetric"),
                        string("mode", "nearest"),
                        string("nearest_mode", "floor"),
                    ],
                );
                out
            }
            LayerConfig::Flatten => {
                let from = if self.format == DataFormat::ChannelsLast {
                    // Keras flattens [length, channels] step-major.
                    let t = self.fresh(&format!("{name}/steps_first"));
                    self.node("Transpose", &[x], &t, vec![ints("perm", &[0, 2, 1])]);
                    t
                } else {
                    x.to_string()
                };
                let out = self.fresh(name);
                self.node("Flatten", &[&from], &out, vec![int("axis", 1)]);
                out
            }
            LayerConfig::Relu(r) => {
                let out = self.fresh(name);
                match (r.threshold, r.negative_slope, r.max_value) {
                    (0.0, 0.0, None) => self.node("Relu", &[x], &out, vec![]),
                    (0.0, 0.0, Some(m)) => {
                        let lo = self.constant(&format!("{name}.min"), &[], &[0.0]);
                        let hi = self.constant(&format!("{name}.max"), &[], &[m as f32]);
                        self.node("Clip", &[x, &lo, &hi], &out, vec![]);
                    }
                    (0.0, s, None) => {
                        self.node("LeakyRelu", &[x], &out, vec![float("alpha", s as f32)]);
                    }
                    _ => {
                        return Err(refuse(
                            "a ReLU with a threshold, or with both a negative slope and a \
                             maximum, has no single ONNX op here",
                        ));
                    }
                }
                out
            }
            LayerConfig::Lstm(c) => self.recurrent(
                name,
                x,
                Cell::Lstm,
                (c.units, c.use_bias, c.return_sequences),
                (c.activation, c.recurrent_activation),
            )?,
            LayerConfig::Gru(c) => self.recurrent(
                name,
                x,
                Cell::Gru {
                    reset_after: c.reset_after,
                },
                (c.units, c.use_bias, c.return_sequences),
                (c.activation, c.recurrent_activation),
            )?,
            LayerConfig::PRelu(_)
            | LayerConfig::LayerNorm(_)
            | LayerConfig::Reshape(_)
            | LayerConfig::Permute(_) => {
                return Err(refuse(&format!(
                    "{} layers are not exported to ONNX yet (supported: see docs/ONNX.md)",
                    spec.config.keras_class()
                )));
            }
        };
        Ok(out)
    }

    /// An LSTM or GRU on the channels-first `x`: ONNX's op reads `[L, N, C]` with its gates in
    /// its own order (LSTM i, o, f, c; GRU z, r, h as Keras) and the input and recurrent
    /// biases apart.
    fn recurrent(
        &mut self,
        name: &str,
        x: &str,
        cell: Cell,
        (units, use_bias, sequences): (usize, bool, bool),
        (activation, recurrent): (Activation, Activation),
    ) -> Result<String, OnnxError> {
        if (activation, recurrent) != (Activation::Tanh, Activation::Sigmoid) {
            return Err(self.refuse_named(
                name,
                "ONNX's recurrent ops are exported with their default activations only (tanh \
                 with sigmoid gates)",
            ));
        }
        let (gates, order, op): (usize, &[usize], &str) = match cell {
            Cell::Lstm => (4, &[0, 2, 3, 1], "LSTM"),
            Cell::Gru { .. } => (3, &[0, 1, 2], "GRU"),
        };
        let h = units;
        let gh = gates * h;
        // Keras [cols, gates·H] → ONNX [1, gates·H, cols].
        let onnx = |m: &[f32], cols: usize| -> Vec<f32> {
            let mut out = vec![0.0f32; gh * cols];
            for (kg, &og) in order.iter().enumerate() {
                for j in 0..h {
                    for k in 0..cols {
                        out[(og * h + j) * cols + k] = m[k * gh + kg * h + j];
                    }
                }
            }
            out
        };
        let reorder = |v: &[f32]| -> Vec<f32> {
            let mut out = vec![0.0f32; gh];
            for (kg, &og) in order.iter().enumerate() {
                out[og * h..(og + 1) * h].copy_from_slice(&v[kg * h..(kg + 1) * h]);
            }
            out
        };
        let (kernel, dims) = self.weight(name, "kernel")?;
        let c = dims.first().copied().unwrap_or(0);
        let (rec, _) = self.weight(name, "recurrent_kernel")?;
        let w = self.constant(&format!("{name}.W"), &[1, gh, c], &onnx(&kernel, c));
        let r = self.constant(&format!("{name}.R"), &[1, gh, h], &onnx(&rec, h));
        let mut inputs = Vec::with_capacity(4);
        let time_major = self.fresh(&format!("{name}/time_major"));
        self.node(
            "Transpose",
            &[x],
            &time_major,
            vec![ints("perm", &[2, 0, 1])],
        );
        inputs.extend([time_major, w, r]);
        if use_bias {
            let (b, _) = self.weight(name, "bias")?;
            // LSTM and GRU without reset_after: one bias (the input one, recurrent zero); GRU
            // with reset_after: the input row, then the recurrent row.
            let both = match cell {
                Cell::Gru { reset_after: true } if b.len() == 2 * gh => {
                    [reorder(&b[..gh]), reorder(&b[gh..])].concat()
                }
                _ => [reorder(&b), vec![0.0; gh]].concat(),
            };
            inputs.push(self.constant(&format!("{name}.B"), &[1, 2 * gh], &both));
        }
        let mut attrs = vec![int("hidden_size", h as i64)];
        if let Cell::Gru { reset_after } = cell {
            attrs.push(int("linear_before_reset", i64::from(reset_after)));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let raw = self.fresh(&format!("{name}/{}", if sequences { "Y" } else { "Y_h" }));
        let outputs = if sequences {
            vec![raw.clone()]
        } else {
            vec![String::new(), raw.clone()]
        };
        self.nodes.push(NodeProto {
            input: refs.iter().map(|s| s.to_string()).collect(),
            output: outputs,
            name: format!("{name}/{op}"),
            op_type: op.to_string(),
            attribute: attrs,
            domain: String::new(),
        });
        let axes = self.constant_ints(&format!("{name}.squeeze_axes"), &[i64::from(sequences)]);
        if sequences {
            // [L, 1, N, H] → [L, N, H] → [N, H, L], widen's channels-first.
            let squeezed = self.fresh(&format!("{name}/steps"));
            self.node("Squeeze", &[&raw, &axes], &squeezed, vec![]);
            let out = self.fresh(name);
            self.node(
                "Transpose",
                &[&squeezed],
                &out,
                vec![ints("perm", &[1, 2, 0])],
            );
            Ok(out)
        } else {
            // [1, N, H] → [N, H].
            let out = self.fresh(name);
            self.node("Squeeze", &[&raw, &axes], &out, vec![]);
            Ok(out)
        }
    }

    /// The node after a conv or Gemm written to `pre`: its activation into `name`, or `pre`
    /// itself when linear.
    fn finish_activation(&mut self, pre: &str, a: Activation, seq: bool, name: &str) -> String {
        if a == Activation::Linear {
            return pre.to_string();
        }
        let out = self.fresh(name);
        self.activation(pre, a, seq, &out);
        out
    }
}

/// The `[N, C, L]` (or `[N, F]`) dim a Keras concatenation axis names in `format`.
fn concat_dim(
    c: &ConcatenateConfig,
    shape: Option<&FeatureShape>,
    format: DataFormat,
) -> Option<i64> {
    let rank = match shape? {
        FeatureShape::Seq { .. } => 3,
        FeatureShape::Flat { .. } => 2,
    };
    let axis = if c.axis < 0 { c.axis + rank } else { c.axis };
    if !(1..rank).contains(&axis) {
        return None;
    }
    Some(match (rank, format, axis) {
        (2, ..) => 1,
        (_, DataFormat::ChannelsLast, 1) | (_, DataFormat::ChannelsFirst, 2) => 2,
        _ => 1,
    })
}

pub(crate) fn export(model: &Model) -> Result<Vec<u8>, OnnxError> {
    let spec = model.spec();
    let input = model.input();
    let Some(last) = spec.layers.last() else {
        return Err(OnnxError::Export {
            layer: spec.input_name.clone(),
            class: "InputLayer".into(),
            reason: "the model has no layers".into(),
        });
    };
    let mut ex = Exporter {
        model,
        format: input.data_format,
        nodes: Vec::with_capacity(spec.layers.len() * 2),
        initializers: Vec::new(),
        names: HashSet::from([spec.input_name.clone()]),
    };
    // Reserve every layer name first: intermediates never take one.
    ex.names.extend(spec.layers.iter().map(|l| l.name.clone()));
    let length = |l: Option<usize>| l.map_or_else(|| dim_param("length"), dim_value);
    let input_dims = match input.data_format {
        DataFormat::ChannelsFirst => vec![
            dim_param("batch"),
            dim_value(input.channels),
            length(input.length),
        ],
        DataFormat::ChannelsLast => vec![
            dim_param("batch"),
            length(input.length),
            dim_value(input.channels),
        ],
    };
    let mut values: Vec<String> = Vec::with_capacity(spec.layers.len() + 1);
    let entry = if input.data_format == DataFormat::ChannelsLast {
        let t = ex.fresh(&format!("{}/channels_first", spec.input_name));
        ex.node(
            "Transpose",
            &[&spec.input_name],
            &t,
            vec![ints("perm", &[0, 2, 1])],
        );
        t
    } else {
        spec.input_name.clone()
    };
    values.push(entry);
    let input_shape = FeatureShape::Seq {
        channels: input.channels,
        length: input.length,
    };
    let shapes = model.shapes();
    for (i, layer) in spec.layers.iter().enumerate() {
        let nodes = model.inbound(i);
        let xs: Vec<String> = nodes.iter().map(|&n| values[n].clone()).collect();
        let ins: Vec<FeatureShape> = nodes
            .iter()
            .map(|&n| if n == 0 { input_shape } else { shapes[n - 1] })
            .collect();
        // Names were reserved: release this layer's so its own output takes it.
        ex.names.remove(&layer.name);
        let out = ex.layer(i, &xs, &ins)?;
        ex.names.insert(layer.name.clone());
        values.push(out);
    }
    let mut output = values.last().cloned().unwrap_or_default();
    let out_shape = model.output_shape();
    let out_dims = match out_shape {
        FeatureShape::Flat { features } => vec![dim_param("batch"), dim_value(features)],
        FeatureShape::Seq { channels, length } => {
            let l = length.map_or(Dimension::default(), dim_value);
            match input.data_format {
                DataFormat::ChannelsFirst => vec![dim_param("batch"), dim_value(channels), l],
                DataFormat::ChannelsLast => {
                    let t = ex.fresh(&format!("{}/channels_last", last.name));
                    ex.node("Transpose", &[&output], &t, vec![ints("perm", &[0, 2, 1])]);
                    output = t;
                    vec![dim_param("batch"), l, dim_value(channels)]
                }
            }
        }
    };
    if output == spec.input_name {
        return Err(OnnxError::Export {
            layer: last.name.clone(),
            class: last.config.keras_class().into(),
            reason: "the model's output is its input (every layer is skipped in ONNX)".into(),
        });
    }
    let graph = GraphProto {
        node: ex.nodes,
        name: "widen".into(),
        initializer: ex.initializers,
        input: vec![value_info(&spec.input_name, input_dims)],
        output: vec![value_info(&output, out_dims)],
        value_info: Vec::new(),
    };
    let proto = ModelProto {
        ir_version: EXPORT_IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: EXPORT_OPSET,
        }],
        producer_name: "widen".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
    };
    Ok(prost::Message::encode_to_vec(&proto))
}
