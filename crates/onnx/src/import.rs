//! ONNX → widen: the graph is walked in topological order and every value is tracked as what
//! it is in widen's terms ([`Val`]): a sequence some widen node computes, its transposed view,
//! a flat vector, a pooled `[N, C, 1]` that only a flatten may read, a constant. Each node maps
//! onto widen layers where the result is exactly the same function, folds into one (a bias, an
//! activation, a padding), or is refused with the node, its op and the attribute that has no
//! equivalent. Nothing here runs a tensor op: the output is a spec and host tensors.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::rc::Rc;

use burn::tensor::TensorData;
use widen_layers::{
    Activation, BatchNormConfig, ConcatenateConfig, Conv1dConfig, CroppingConfig, DataFormat,
    DenseConfig, FeatureShape, GruConfig, InputSpec, LayerConfig, LayerSpec, LstmConfig,
    MergeConfig, ModelSpec, NormalizationConfig, PaddingMode, PoolConfig, ReluConfig, ShapeContext,
    UpSamplingConfig, ZeroPaddingConfig,
};
use widen_ops::{Padding, conv_output};

use crate::OnnxError;
use crate::proto::{AttributeProto, GraphProto, ModelProto, NodeProto, attr_type, data_type};
use crate::tensor::{self, Const, Values};

/// The default-domain opsets this importer reads (the ops it maps keep their meaning across
/// them; where an attribute became an input — axes, pads, scales — both forms are read).
pub const OPSETS: std::ops::RangeInclusive<i64> = 9..=25;

/// What [`crate::import_detailed`] returns: the architecture, its tensors and what was read.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The widen architecture (channels-first unless the graph transposes a `[N, L, C]` input
    /// first; the input length fixed when the ONNX input's is).
    pub spec: ModelSpec,
    /// `(layer, param, values)` for every stored tensor of the spec, in widen's layouts.
    pub weights: crate::Weights,
    /// How many nodes of each `op_type` the graph had.
    pub ops: BTreeMap<String, usize>,
    /// The default-domain opset.
    pub opset: i64,
    /// The exporter named in the file (`pytorch 2.5`, ...), possibly empty.
    pub producer: String,
}

impl Imported {
    /// Nodes in the graph.
    pub fn node_count(&self) -> usize {
        self.ops.values().sum()
    }
}

/// A sequence some widen node computes: `[N, C, L]` inside widen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seq {
    pub node: String,
    pub channels: usize,
    pub length: Option<usize>,
}

/// An ONNX value, in widen's terms.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    /// `[N, C, L]`.
    Seq(Seq),
    /// `[N, L, C]`: a transposed view of a widen sequence.
    SeqT(Seq),
    /// `[N, F]`.
    Flat { node: String, features: usize },
    /// `[N, C, 1]` (rank 3) or `[N, C, 1, 1]` (rank 4) from a global pool: widen holds it flat.
    Pooled {
        node: String,
        channels: usize,
        rank: usize,
    },
    /// `[N, C, 1, L]` (`unit` 2) or `[N, C, L, 1]` (`unit` 3): a sequence with a unit axis.
    Seq4 { seq: Seq, unit: usize },
    /// `[N, C·L]` flattened in the order widen's Flatten does not use in this model's layout
    /// (channel-major where widen flattens step-major, or the reverse): only a Dense, its
    /// rows permuted, reads it.
    FlatOther {
        node: String,
        channels: usize,
        length: usize,
        onnx_step_major: bool,
    },
    /// `[L, N, C]`: a time-major view of a widen sequence (what ONNX's LSTM and GRU read).
    SeqTime(Seq),
    /// `[L, 1, N, H]`: a recurrent op's every-step output (one direction).
    RnnSteps(Seq),
    /// `[1, N, F]`: a recurrent op's last state (one direction); widen holds it flat.
    Lead1 { node: String, features: usize },
    /// An integer tensor computed from shapes (`Shape → Gather → Concat`): only an `Expand`
    /// or `ConstantOfShape` of zeros may read it.
    Symbolic,
    /// A tensor of zeros whose shape comes from the graph (a recurrent op's initial state).
    Zeros,
    /// A constant.
    Const(Rc<Const>),
}

impl Val {
    fn describe(&self) -> String {
        let len = |l: Option<usize>| l.map_or("L".to_string(), |l| l.to_string());
        match self {
            Self::Seq(s) => format!("a sequence [N, {}, {}]", s.channels, len(s.length)),
            Self::SeqT(s) => format!(
                "a transposed sequence [N, {}, {}]",
                len(s.length),
                s.channels
            ),
            Self::Flat { features, .. } => format!("a flat tensor [N, {features}]"),
            Self::Pooled { channels, rank, .. } => {
                format!("a pooled tensor [N, {channels}{}]", ", 1".repeat(rank - 2))
            }
            Self::Seq4 { seq, unit: 2 } => {
                format!("a 4-D tensor [N, {}, 1, {}]", seq.channels, len(seq.length))
            }
            Self::Seq4 { seq, .. } => {
                format!("a 4-D tensor [N, {}, {}, 1]", seq.channels, len(seq.length))
            }
            Self::SeqTime(s) => format!(
                "a time-major sequence [{}, N, {}]",
                len(s.length),
                s.channels
            ),
            Self::RnnSteps(s) => format!(
                "a recurrent output [{}, 1, N, {}]",
                len(s.length),
                s.channels
            ),
            Self::Lead1 { features, .. } => format!("a last state [1, N, {features}]"),
            Self::FlatOther {
                channels, length, ..
            } => format!(
                "a flat tensor [N, {}] in an element order widen's Flatten does not use here \
                 (only a Dense may read it)",
                channels * length
            ),
            Self::Symbolic => "an integer tensor computed from shapes".into(),
            Self::Zeros => "a tensor of zeros shaped in the graph".into(),
            Self::Const(c) => format!("a constant of dims {:?}", c.dims),
        }
    }

    /// The widen node computing it (`None` for a constant).
    fn node(&self) -> Option<&str> {
        match self {
            Self::Seq(s)
            | Self::SeqT(s)
            | Self::SeqTime(s)
            | Self::RnnSteps(s)
            | Self::Seq4 { seq: s, .. } => Some(&s.node),
            Self::Flat { node, .. }
            | Self::Pooled { node, .. }
            | Self::Lead1 { node, .. }
            | Self::FlatOther { node, .. } => Some(node),
            Self::Symbolic | Self::Zeros | Self::Const(_) => None,
        }
    }

    /// The same kind of value, computed by widen node `node` (an element-wise layer's output).
    fn with_node(&self, node: &str) -> Self {
        let mut v = self.clone();
        match &mut v {
            Self::Seq(s)
            | Self::SeqT(s)
            | Self::SeqTime(s)
            | Self::RnnSteps(s)
            | Self::Seq4 { seq: s, .. } => s.node = node.to_string(),
            Self::Flat { node: n, .. }
            | Self::Pooled { node: n, .. }
            | Self::Lead1 { node: n, .. }
            | Self::FlatOther { node: n, .. } => *n = node.to_string(),
            Self::Symbolic | Self::Zeros | Self::Const(_) => {}
        }
        v
    }

    /// The rank of the ONNX tensor.
    fn rank(&self) -> usize {
        match self {
            Self::Seq(_) | Self::SeqT(_) | Self::SeqTime(_) | Self::Lead1 { .. } => 3,
            Self::Flat { .. } | Self::FlatOther { .. } => 2,
            Self::Pooled { rank, .. } => *rank,
            Self::Seq4 { .. } | Self::RnnSteps(_) => 4,
            Self::Symbolic | Self::Zeros => 0,
            Self::Const(c) => c.dims.len(),
        }
    }
}

/// A group of nodes recognised as one activation (torch's erf GELU before opset 20, SiLU as
/// `x · sigmoid(x)`): applied at the group's last node, the others skipped.
#[derive(Debug, Clone)]
struct Fused {
    input: String,
    activation: Activation,
}

/// Where a node sits, for errors: its name (or position and first output) and its op.
#[derive(Debug, Clone)]
pub(crate) struct At {
    pub label: String,
    pub op: String,
}

impl At {
    pub(crate) fn unsupported(&self, attribute: &str, reason: impl Into<String>) -> OnnxError {
        OnnxError::Unsupported {
            node: self.label.clone(),
            op: self.op.clone(),
            attribute: attribute.to_string(),
            reason: reason.into(),
        }
    }
}

fn node_label(index: usize, node: &NodeProto) -> String {
    if node.name.is_empty() {
        format!(
            "#{index} → {}",
            node.output.first().map_or("(no output)", String::as_str)
        )
    } else {
        node.name.clone()
    }
}

/// Reads a float attribute into the `f64` with the shortest decimal form that rounds to it
/// (ONNX stores `1e-3` as the `f32` nearest; widen's configs say `0.001`, which computes the same).
pub(crate) fn tidy(v: f32) -> f64 {
    format!("{v}").parse().unwrap_or(f64::from(v))
}

/// Attribute access for one node, type-checked.
pub(crate) struct Attrs<'a> {
    node: &'a NodeProto,
    at: &'a At,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(node: &'a NodeProto, at: &'a At) -> Self {
        Self { node, at }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    /// Refuses attributes not in `known` (an attribute widen does not understand may change
    /// the function).
    pub(crate) fn only(&self, known: &[&str]) -> Result<(), OnnxError> {
        match self
            .node
            .attribute
            .iter()
            .find(|a| !known.contains(&a.name.as_str()))
        {
            Some(a) => Err(self.at.unsupported(
                &a.name,
                format!(
                    "attribute `{}` is not one widen maps (it reads {})",
                    widen_layers::printable(&a.name),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )),
            None => Ok(()),
        }
    }

    fn typed(&self, name: &str, want: i32) -> Result<Option<&'a AttributeProto>, OnnxError> {
        match self.get(name) {
            Some(a) if a.r#type == want || a.r#type == 0 => Ok(Some(a)),
            Some(a) => Err(self.at.unsupported(
                name,
                format!("has attribute type {}, expected {want}", a.r#type),
            )),
            None => Ok(None),
        }
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>, OnnxError> {
        Ok(self.typed(name, attr_type::INT)?.map(|a| a.i))
    }

    pub(crate) fn ints(&self, name: &str) -> Result<Option<&'a [i64]>, OnnxError> {
        Ok(self
            .typed(name, attr_type::INTS)?
            .map(|a| a.ints.as_slice()))
    }

    pub(crate) fn float(&self, name: &str) -> Result<Option<f32>, OnnxError> {
        Ok(self.typed(name, attr_type::FLOAT)?.map(|a| a.f))
    }

    pub(crate) fn floats(&self, name: &str) -> Result<Option<&'a [f32]>, OnnxError> {
        Ok(self
            .typed(name, attr_type::FLOATS)?
            .map(|a| a.floats.as_slice()))
    }

    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, OnnxError> {
        Ok(self
            .typed(name, attr_type::STRING)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    /// A one-entry list attribute (a 1-D window's `kernel_shape`, `strides`, ...).
    fn one(&self, name: &str, default: usize) -> Result<usize, OnnxError> {
        match self.ints(name)? {
            None => Ok(default),
            Some(&[v]) if v > 0 => usize::try_from(v).map_err(|_| self.at.unsupported(name, "")),
            Some(v) => Err(self.at.unsupported(
                name,
                format!(
                    "is {v:?}; widen maps 1-D windows only (one positive entry){}",
                    if v.len() == 2 {
                        ": this is a 2-D op"
                    } else {
                        ""
                    }
                ),
            )),
        }
    }
}

/// Decodes, checks and maps a model.
pub(crate) fn import(bytes: &[u8]) -> Result<Imported, OnnxError> {
    let bound = crate::scan::decoded_bound(bytes);
    widen_guard::budget().check(
        &format!("decoding an ONNX model of {} bytes", bytes.len()),
        bound,
    )?;
    let model = <ModelProto as prost::Message>::decode(bytes)?;
    let opset = model
        .opset_import
        .iter()
        .filter(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .max()
        .ok_or_else(|| OnnxError::Model {
            reason: "it imports no default-domain (ai.onnx) opset".into(),
        })?;
    if !OPSETS.contains(&opset) {
        return Err(OnnxError::Model {
            reason: format!(
                "opset {opset} is not read (widen reads opsets {} to {})",
                OPSETS.start(),
                OPSETS.end()
            ),
        });
    }
    let Some(graph) = model.graph.as_ref() else {
        return Err(OnnxError::Model {
            reason: "the file has no graph".into(),
        });
    };
    let producer = format!("{} {}", model.producer_name, model.producer_version)
        .trim()
        .to_string();
    let mut ops = BTreeMap::new();
    for n in &graph.node {
        *ops.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    let (spec, weights) = Importer::run(graph, opset)?;
    Ok(Imported {
        spec,
        weights,
        ops,
        opset,
        producer,
    })
}

/// Keeps `[A-Za-z0-9_.-]`, replaces the rest by `_`, at most 64 characters.
fn sanitize(name: &str) -> String {
    name.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A layer name from a node name: torch's `/layer1/0/conv1/Conv` gives `layer1.0.conv1`; a
/// name that is only the op (`/Relu_1`) or none gives `fallback` (Keras' stem).
fn stem_from(node: &NodeProto, fallback: &str) -> String {
    let mut parts: Vec<&str> = node.name.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(last) = parts.last()
        && last.starts_with(node.op_type.as_str())
        && last[node.op_type.len()..]
            .trim_start_matches('_')
            .chars()
            .all(|c| c.is_ascii_digit())
    {
        parts.pop();
    }
    let stem = sanitize(&parts.join("."));
    let stem = stem.trim_matches('.');
    if stem.is_empty() {
        fallback.to_string()
    } else {
        stem.to_string()
    }
}

/// Orders the nodes so each comes after the producers of its inputs (Kahn's algorithm over
/// value names), or says which node reads a name nothing defines, or which nodes form a cycle.
fn sort_nodes(graph: &GraphProto, defined: &HashSet<&str>) -> Result<Vec<usize>, OnnxError> {
    let mut producer: HashMap<&str, usize> = HashMap::with_capacity(graph.node.len() * 2);
    for (i, n) in graph.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if defined.contains(o.as_str()) || producer.insert(o, i).is_some() {
                return Err(OnnxError::Graph {
                    reason: format!(
                        "value `{}` is defined twice (node {} writes it again)",
                        widen_layers::printable(o),
                        widen_layers::printable(&node_label(i, n))
                    ),
                });
            }
        }
    }
    let mut waiting = vec![0usize; graph.node.len()];
    let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, n) in graph.node.iter().enumerate() {
        for input in n.input.iter().filter(|s| !s.is_empty()) {
            if defined.contains(input.as_str()) {
                continue;
            }
            match producer.get(input.as_str()) {
                Some(&p) => {
                    waiting[i] += 1;
                    readers.entry(p).or_default().push(i);
                }
                None => {
                    return Err(OnnxError::Graph {
                        reason: format!(
                            "node {} reads `{}`, which no node, initializer or graph input \
                             defines",
                            widen_layers::printable(&node_label(i, n)),
                            widen_layers::printable(input)
                        ),
                    });
                }
            }
        }
    }
    // The lowest-numbered ready node first: a graph already in order keeps its order.
    let mut ready: BinaryHeap<Reverse<usize>> = (0..graph.node.len())
        .filter(|&i| waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(graph.node.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        if let Some(rs) = readers.get(&i) {
            for &r in rs {
                waiting[r] -= 1;
                if waiting[r] == 0 {
                    ready.push(Reverse(r));
                }
            }
        }
    }
    if order.len() < graph.node.len() {
        let stuck: Vec<String> = (0..graph.node.len())
            .filter(|&i| waiting[i] > 0)
            .take(5)
            .map(|i| widen_layers::printable(&node_label(i, &graph.node[i])))
            .collect();
        return Err(OnnxError::Graph {
            reason: format!(
                "the graph has a cycle: {} (and {} more) wait on each other",
                stuck.join(", "),
                graph.node.len() - order.len() - stuck.len().min(graph.node.len() - order.len())
            ),
        });
    }
    Ok(order)
}

/// The one graph input that is not an initializer, its `[batch, a, b]` dims.
struct GraphInput {
    name: String,
    batch: Option<usize>,
    dims: [Option<usize>; 2],
}

/// The first eight of `names`, quoted and printable, joined by commas.
fn first_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names
        .take(8)
        .map(|n| format!("`{}`", widen_layers::printable(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses string attribute `key` (`default` when absent) unless it is `default`.
fn only_string(
    attrs: &Attrs,
    at: &At,
    (key, default): (&str, &str),
    why: &str,
) -> Result<(), OnnxError> {
    match attrs.string(key)? {
        Some(v) if v != default => {
            Err(at.unsupported(key, format!("is `{}`; {why}", widen_layers::printable(&v))))
        }
        _ => Ok(()),
    }
}

fn graph_input(graph: &GraphProto, initializers: &HashSet<&str>) -> Result<GraphInput, OnnxError> {
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let model = |reason: String| OnnxError::Model { reason };
    let input = match inputs.as_slice() {
        [one] => *one,
        [] => return Err(model("the graph has no input".into())),
        many => {
            return Err(model(format!(
                "the graph has {} inputs ({}); a widen model takes one [batch, channels, length] \
                 input",
                many.len(),
                first_names(many.iter().map(|i| &i.name))
            )));
        }
    };
    let name = widen_layers::printable(&input.name);
    let Some(tensor) = input.r#type.as_ref().and_then(|t| t.tensor_type.as_ref()) else {
        return Err(model(format!("input `{name}` is not a tensor")));
    };
    if !matches!(
        tensor.elem_type,
        data_type::FLOAT | data_type::DOUBLE | data_type::FLOAT16 | data_type::BFLOAT16
    ) {
        return Err(model(format!(
            "input `{name}` has element type {}; widen models take floats",
            data_type::name(tensor.elem_type)
        )));
    }
    let Some(shape) = tensor.shape.as_ref() else {
        return Err(model(format!(
            "input `{name}` has no shape; widen needs [batch, channels, length] with a fixed \
             channel count"
        )));
    };
    let dims: Vec<Option<usize>> = shape
        .dim
        .iter()
        .map(|d| {
            d.dim_value
                .and_then(|v| usize::try_from(v).ok())
                .filter(|&v| v > 0)
        })
        .collect();
    let text: Vec<String> = shape
        .dim
        .iter()
        .map(|d| match (d.dim_value, &d.dim_param) {
            (Some(v), _) => v.to_string(),
            (None, Some(p)) => format!("'{}'", widen_layers::printable(p)),
            (None, None) => "?".into(),
        })
        .collect();
    if dims.len() != 3 {
        return Err(model(format!(
            "input `{name}` has {} dimensions [{}]; widen imports 1-D models with a \
             [batch, channels, length] input",
            dims.len(),
            text.join(", ")
        )));
    }
    if shape
        .dim
        .iter()
        .any(|d| d.dim_value.is_some_and(|v| v <= 0))
    {
        return Err(model(format!(
            "input `{name}` has dims [{}]: a fixed size must be > 0",
            text.join(", ")
        )));
    }
    Ok(GraphInput {
        name: input.name.clone(),
        batch: dims[0],
        dims: [dims[1], dims[2]],
    })
}

/// A window op's padding, as the node asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pads {
    /// `(left, right)` zeros.
    Explicit(usize, usize),
    /// `SAME_UPPER` on a dynamic length with a stride > 1: TensorFlow's (Keras') `same`, which
    /// depends on the length at run time.
    Same,
}

/// The widen padding mode equal to `pads` for this window, if one is.
fn mode_for(
    pads: Pads,
    length: Option<usize>,
    k: usize,
    s: usize,
    d: usize,
) -> Option<PaddingMode> {
    let (l, r) = match pads {
        Pads::Same => return Some(PaddingMode::Same),
        Pads::Explicit(0, 0) => return Some(PaddingMode::Valid),
        Pads::Explicit(l, r) => (l, r),
    };
    let reach = d.saturating_mul(k.saturating_sub(1));
    let same = match length {
        Some(len) => conv_output(len, k, s, d, Padding::Same)
            .ok()
            .map(|g| (g.left, g.right)),
        // Keras' `same` at stride 1 pads d·(k − 1) whatever the length.
        None if s == 1 => Some((reach / 2, reach - reach / 2)),
        None => None,
    };
    if same == Some((l, r)) {
        Some(PaddingMode::Same)
    } else if (l, r) == (reach, 0) {
        Some(PaddingMode::Causal)
    } else {
        None
    }
}

/// Rows of a `[K, M]` matrix in widen's feature order: row `w` is ONNX row `rows[w]`.
fn permute_rows(weight: Vec<f32>, rows: Option<&[usize]>, m: usize) -> Vec<f32> {
    let Some(rows) = rows else {
        return weight;
    };
    let mut out = Vec::with_capacity(weight.len());
    for &r in rows {
        out.extend_from_slice(&weight[r * m..(r + 1) * m]);
    }
    out
}

/// A constant broadcast per channel of a `[N, C, L]` (`transposed`: `[N, L, C]`) tensor: a
/// scalar, `[C, 1]`, `[1, C, 1]` (`[C]`, `[1, C]`, `[1, 1, C]` when transposed).
fn per_channel(c: &Const, channels: usize, transposed: bool) -> Option<Vec<f32>> {
    let v = c.floats()?;
    let dims: Vec<usize> = c.dims.iter().copied().skip_while(|&d| d == 1).collect();
    let ok = if v.len() == 1 {
        true
    } else if transposed {
        dims == [channels]
    } else {
        dims == [channels, 1]
    };
    if !ok || c.dims.len() > 3 {
        return None;
    }
    Some(if v.len() == 1 {
        vec![v[0]; channels]
    } else {
        v.to_vec()
    })
}

/// Normalises ONNX axes (negative counts from the end) for a tensor of `rank`, sorted.
fn axes_of(axes: &[i64], rank: usize, at: &At, what: &str) -> Result<Vec<usize>, OnnxError> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let r = rank as i64;
        let n = if a < 0 { a + r } else { a };
        if !(0..r).contains(&n) {
            return Err(at.unsupported(what, format!("axis {a} is outside a rank-{rank} tensor")));
        }
        out.push(n as usize);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

struct Importer<'g> {
    graph: &'g GraphProto,
    opset: i64,
    format: DataFormat,
    batch: Option<usize>,
    spec: ModelSpec,
    weights: crate::Weights,
    weight_index: HashMap<(String, String), usize>,
    taken: HashSet<String>,
    shapes: HashMap<String, FeatureShape>,
    initializers: HashMap<&'g str, &'g crate::proto::TensorProto>,
    values: HashMap<String, Val>,
    /// Readers of each ONNX value (node inputs, the graph output).
    uses: HashMap<&'g str, usize>,
    /// Widen node → its layer's index in `spec.layers`.
    layer_of: HashMap<String, usize>,
    /// A MatMul's output (ONNX name) whose Dense has no bias yet.
    open_bias: HashMap<String, usize>,
    /// A Sub's output (ONNX name) whose Normalization has no variance yet.
    open_norm: HashMap<String, usize>,
    /// Widen node → the ONNX value it was first made for.
    made_for: HashMap<String, String>,
}

impl<'g> Importer<'g> {
    fn run(graph: &'g GraphProto, opset: i64) -> Result<(ModelSpec, crate::Weights), OnnxError> {
        let mut initializers = HashMap::with_capacity(graph.initializer.len());
        for t in &graph.initializer {
            if initializers.insert(t.name.as_str(), t).is_some() {
                return Err(OnnxError::Graph {
                    reason: format!(
                        "initializer `{}` is defined twice",
                        widen_layers::printable(&t.name)
                    ),
                });
            }
        }
        let init_names: HashSet<&str> = initializers.keys().copied().collect();
        let input = graph_input(graph, &init_names)?;
        let output = match graph.output.as_slice() {
            [one] => one.name.clone(),
            [] => {
                return Err(OnnxError::Model {
                    reason: "the graph has no output".into(),
                });
            }
            many => {
                return Err(OnnxError::Model {
                    reason: format!(
                        "the graph has {} outputs ({}); a widen model has one",
                        many.len(),
                        first_names(many.iter().map(|o| &o.name))
                    ),
                });
            }
        };
        for (i, n) in graph.node.iter().enumerate() {
            if !(n.domain.is_empty() || n.domain == "ai.onnx") {
                let at = At {
                    label: node_label(i, n),
                    op: n.op_type.clone(),
                };
                return Err(at.unsupported(
                    "domain",
                    format!(
                        "an op of domain `{}`: widen maps default-domain (ai.onnx) operators only",
                        widen_layers::printable(&n.domain)
                    ),
                ));
            }
        }
        let mut defined = init_names.clone();
        defined.insert(input.name.as_str());
        let order = sort_nodes(graph, &defined)?;
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for n in &graph.node {
            for i in n.input.iter().filter(|s| !s.is_empty()) {
                *uses.entry(i.as_str()).or_insert(0) += 1;
            }
        }
        *uses.entry(output.as_str()).or_insert(0) += 1;

        // Channels-last when every reader of the input transposes it to [N, C, L] first (what
        // `widen export` writes for a channels-last model, `x.permute(0, 2, 1)` in torch).
        let transposes_input = |n: &&NodeProto| {
            n.op_type == "Transpose"
                && n.attribute
                    .iter()
                    .any(|a| a.name == "perm" && a.ints == [0, 2, 1])
        };
        let readers: Vec<&NodeProto> = graph
            .node
            .iter()
            .filter(|n| n.input.contains(&input.name))
            .collect();
        let format = if !readers.is_empty() && readers.iter().all(transposes_input) {
            DataFormat::ChannelsLast
        } else {
            DataFormat::ChannelsFirst
        };
        let (channels, length, axis) = match format {
            DataFormat::ChannelsFirst => (input.dims[0], input.dims[1], 1),
            DataFormat::ChannelsLast => (input.dims[1], input.dims[0], 2),
        };
        let Some(channels) = channels else {
            return Err(OnnxError::Model {
                reason: format!(
                    "input `{}`: the channel axis (dim {axis}) is not fixed; a widen model has \
                     a fixed channel count (export with dynamic axes on batch and length only)",
                    widen_layers::printable(&input.name)
                ),
            });
        };
        let mut input_name = sanitize(&input.name);
        if input_name.is_empty() {
            input_name = widen_layers::DEFAULT_INPUT_NAME.to_string();
        }
        let spec = ModelSpec::new(InputSpec {
            channels,
            length,
            data_format: format,
        })
        .with_input_name(&input_name);
        let mut me = Importer {
            graph,
            opset,
            format,
            batch: input.batch,
            spec,
            weights: Vec::new(),
            weight_index: HashMap::new(),
            taken: HashSet::from([input_name.clone()]),
            shapes: HashMap::new(),
            initializers,
            values: HashMap::new(),
            uses,
            layer_of: HashMap::new(),
            open_bias: HashMap::new(),
            open_norm: HashMap::new(),
            made_for: HashMap::new(),
        };
        let seq = Seq {
            node: input_name,
            channels,
            length,
        };
        me.values.insert(
            input.name.clone(),
            match format {
                DataFormat::ChannelsFirst => Val::Seq(seq),
                DataFormat::ChannelsLast => Val::SeqT(seq),
            },
        );
        let (fused, absorbed) = me.find_patterns();
        for &i in &order {
            let node = &graph.node[i];
            let at = At {
                label: node_label(i, node),
                op: node.op_type.clone(),
            };
            if let Some(f) = fused.get(&i) {
                let x = me.val(&f.input, &at)?;
                let out = me.activation(node, &at, x, f.activation)?;
                me.set(node, 0, out);
            } else if !absorbed.contains(&i) {
                me.node(node, &at)?;
            }
        }
        me.finish(&output)
    }

    // ------------------------------------------------------------------------------ values

    /// The value called `name` (an initializer is read the first time it is asked for).
    fn val(&mut self, name: &str, at: &At) -> Result<Val, OnnxError> {
        if let Some(v) = self.values.get(name) {
            return Ok(v.clone());
        }
        if let Some(t) = self.initializers.get(name) {
            let c = Val::Const(Rc::new(tensor::read(t, name)?));
            self.values.insert(name.to_string(), c.clone());
            return Ok(c);
        }
        Err(at.unsupported(
            "input",
            format!(
                "reads `{}`, which widen did not compute (an output it does not produce)",
                widen_layers::printable(name)
            ),
        ))
    }

    /// Input `i` of `node`, or `None` when it is absent or empty.
    fn input(&mut self, node: &NodeProto, i: usize, at: &At) -> Result<Option<Val>, OnnxError> {
        match node.input.get(i).filter(|s| !s.is_empty()) {
            Some(name) => self.val(name, at).map(Some),
            None => Ok(None),
        }
    }

    fn required(&mut self, node: &NodeProto, i: usize, at: &At) -> Result<Val, OnnxError> {
        self.input(node, i, at)?.ok_or_else(|| Self::missing(at, i))
    }

    fn missing(at: &At, i: usize) -> OnnxError {
        at.unsupported(&format!("input {i}"), "is missing")
    }

    fn konst(
        &mut self,
        node: &NodeProto,
        i: usize,
        at: &At,
    ) -> Result<Option<Rc<Const>>, OnnxError> {
        match self.input(node, i, at)? {
            None => Ok(None),
            Some(Val::Const(c)) => Ok(Some(c)),
            Some(other) => Err(at.unsupported(
                &format!("input {i}"),
                format!(
                    "is {} computed in the graph; widen needs a constant here",
                    other.describe()
                ),
            )),
        }
    }

    fn required_const(
        &mut self,
        node: &NodeProto,
        i: usize,
        at: &At,
    ) -> Result<Rc<Const>, OnnxError> {
        self.konst(node, i, at)?.ok_or_else(|| Self::missing(at, i))
    }

    /// An integer list from input `i` (axes, pads, shapes), or `None` when absent.
    fn int_input(
        &mut self,
        node: &NodeProto,
        i: usize,
        at: &At,
    ) -> Result<Option<Vec<i64>>, OnnxError> {
        self.konst(node, i, at)?
            .map(|c| {
                c.ints().map(<[i64]>::to_vec).ok_or_else(|| {
                    at.unsupported(&format!("input {i}"), "holds floats where integers belong")
                })
            })
            .transpose()
    }

    /// `axes` from the attribute (before `since`) or input 1 (from `since` on).
    fn axes(
        &mut self,
        node: &NodeProto,
        attrs: &Attrs,
        at: &At,
        since: i64,
    ) -> Result<Option<Vec<i64>>, OnnxError> {
        match attrs.ints("axes")? {
            Some(a) => Ok(Some(a.to_vec())),
            None if self.opset >= since => self.int_input(node, 1, at),
            None => Ok(None),
        }
    }

    fn set(&mut self, node: &NodeProto, i: usize, v: Val) {
        if let Some(name) = node.output.get(i).filter(|s| !s.is_empty()) {
            self.values.insert(name.clone(), v);
        }
    }

    fn uses_of(&self, name: &str) -> usize {
        self.uses.get(name).copied().unwrap_or(0)
    }

    /// Outputs after the first must not be read (a MaxPool's indices, a Dropout's mask).
    fn only_first_output(&self, node: &NodeProto, at: &At) -> Result<(), OnnxError> {
        match node
            .output
            .iter()
            .skip(1)
            .position(|o| !o.is_empty() && self.uses_of(o) > 0)
        {
            Some(k) => Err(at.unsupported(
                &format!("output {}", k + 1),
                "is read by another node; widen computes the first output only",
            )),
            None => Ok(()),
        }
    }

    /// `what` is `v`, which this op does not take: `why` says what it does take.
    fn is_not(v: &Val, at: &At, what: &str, why: &str) -> OnnxError {
        at.unsupported(what, format!("is {}; {why}", v.describe()))
    }

    fn seq_of(v: Val, at: &At, what: &str) -> Result<Seq, OnnxError> {
        match v {
            Val::Seq(s) => Ok(s),
            other => Err(Self::is_not(
                &other,
                at,
                what,
                "this op maps to widen on a [batch, channels, length] sequence only",
            )),
        }
    }

    fn no_const(v: &Val, at: &At, what: &str) -> Result<(), OnnxError> {
        match v {
            Val::Const(c) => Err(at.unsupported(
                what,
                format!(
                    "is a constant of dims {:?}; widen computes this op on the model's tensors \
                     only (a constant subgraph is not folded)",
                    c.dims
                ),
            )),
            _ => Ok(()),
        }
    }

    // ------------------------------------------------------------------------------ layers

    fn fresh(&mut self, stem: &str) -> String {
        let mut name = stem.to_string();
        let mut i = 1;
        while self.taken.contains(&name) {
            name = format!("{stem}_{i}");
            i += 1;
        }
        self.taken.insert(name.clone());
        name
    }

    fn shape_of(&self, node: &str) -> FeatureShape {
        if node == self.spec.input_name {
            return FeatureShape::Seq {
                channels: self.spec.input.channels,
                length: self.spec.input.length,
            };
        }
        self.shapes
            .get(node)
            .copied()
            .unwrap_or(FeatureShape::Flat { features: 0 })
    }

    /// Appends a layer named from `stem` reading `inbound`; returns its name and output shape
    /// (widen's own shape rule, so a config widen refuses is an error naming the node).
    fn push_as(
        &mut self,
        stem: &str,
        at: &At,
        inbound: &[&str],
        config: LayerConfig,
    ) -> Result<(String, FeatureShape), OnnxError> {
        let name = self.fresh(stem);
        let shapes: Vec<FeatureShape> = inbound.iter().map(|n| self.shape_of(n)).collect();
        let cx = ShapeContext {
            name: &name,
            inputs: &shapes,
            data_format: self.format,
        };
        let shape = config
            .output_shape(&cx)
            .map_err(|source| OnnxError::Layer {
                node: at.label.clone(),
                op: at.op.clone(),
                source: Box::new(source),
            })?;
        self.layer_of.insert(name.clone(), self.spec.layers.len());
        self.spec
            .layers
            .push(LayerSpec::new(&name, inbound, config));
        self.shapes.insert(name.clone(), shape);
        Ok((name, shape))
    }

    /// A `{stem}_pad` ZeroPadding1D of `padding` reading `from`; returns its name.
    fn push_zero_pad(
        &mut self,
        stem: &str,
        at: &At,
        from: &str,
        padding: [usize; 2],
    ) -> Result<String, OnnxError> {
        let config = LayerConfig::ZeroPadding1d(ZeroPaddingConfig { padding });
        Ok(self.push_as(&format!("{stem}_pad"), at, &[from], config)?.0)
    }

    /// A Normalization of `seq` with per-channel `mean` and `variance`; returns its name.
    fn push_norm(
        &mut self,
        node: &NodeProto,
        at: &At,
        seq: &Seq,
        mean: Vec<f32>,
        variance: Vec<f32>,
    ) -> Result<String, OnnxError> {
        let config = LayerConfig::Normalization(NormalizationConfig::identity());
        let (name, _) = self.push(node, at, &[&seq.node], config)?;
        self.weight(&name, "mean", mean, &[seq.channels]);
        self.weight(&name, "variance", variance, &[seq.channels]);
        Ok(name)
    }

    /// [`Self::push_as`] with the node's own stem.
    fn push(
        &mut self,
        node: &NodeProto,
        at: &At,
        inbound: &[&str],
        config: LayerConfig,
    ) -> Result<(String, FeatureShape), OnnxError> {
        let stem = stem_from(node, config.default_stem());
        self.push_as(&stem, at, inbound, config)
    }

    fn weight(&mut self, layer: &str, param: &str, values: Vec<f32>, dims: &[usize]) {
        let key = (layer.to_string(), param.to_string());
        let data = TensorData::new(values, dims.to_vec());
        match self.weight_index.get(&key) {
            Some(&i) => self.weights[i].2 = data,
            None => {
                self.weight_index.insert(key, self.weights.len());
                self.weights
                    .push((layer.to_string(), param.to_string(), data));
            }
        }
    }

    fn value(shape: FeatureShape, node: String) -> Val {
        match shape {
            FeatureShape::Seq { channels, length } => Val::Seq(Seq {
                node,
                channels,
                length,
            }),
            FeatureShape::Flat { features } => Val::Flat { node, features },
        }
    }

    // ---------------------------------------------------------------------------- patterns

    /// A scalar constant by value name: an initializer or a `Constant` node's output.
    fn scalar_named(&self, name: &str, producer: &HashMap<&str, usize>) -> Option<f64> {
        if let Some(t) = self.initializers.get(name) {
            return tensor::read(t, name).ok()?.scalar();
        }
        let n = &self.graph.node[*producer.get(name)?];
        if n.op_type != "Constant" {
            return None;
        }
        let a = n.attribute.first()?;
        match a.name.as_str() {
            "value" => tensor::read(a.t.as_ref()?, name).ok()?.scalar(),
            "value_float" => Some(f64::from(a.f)),
            "value_int" => Some(a.i as f64),
            _ => None,
        }
    }

    /// Finds torch's erf GELU (`x / √2 → Erf → + 1 → · x → · 0.5`, in any of the orders
    /// exporters write) and SiLU (`x · Sigmoid(x)`): the group's last node → the activation;
    /// the other nodes of the group, to skip.
    fn find_patterns(&self) -> (HashMap<usize, Fused>, HashSet<usize>) {
        let g = self.graph;
        let mut producer: HashMap<&str, usize> = HashMap::new();
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o, i);
            }
            for x in n.input.iter().filter(|s| !s.is_empty()) {
                readers.entry(x).or_default().push(i);
            }
        }
        let sole = |name: &str| -> Option<usize> {
            match readers.get(name).map(Vec::as_slice) {
                Some(&[r]) if self.uses_of(name) == 1 => Some(r),
                _ => None,
            }
        };
        let out0 = |i: usize| g.node[i].output.first().map_or("", String::as_str);
        let is = |v: Option<f64>, want: f64| v.is_some_and(|v| (v - want).abs() < 1e-6);
        // For a binary node, the other input than `name`.
        let other = |i: usize, name: &str| -> Option<&str> {
            match g.node[i].input.as_slice() {
                [a, b] if a == name => Some(b.as_str()),
                [a, b] if b == name => Some(a.as_str()),
                _ => None,
            }
        };
        let mut fused = HashMap::new();
        let mut absorbed = HashSet::new();
        for (e, n) in g.node.iter().enumerate() {
            if n.op_type == "Erf" && n.input.len() == 1 {
                let found = (|| {
                    let d = n.input[0].as_str();
                    let p = *producer.get(d)?;
                    let pn = &g.node[p];
                    let [a, b] = pn.input.as_slice() else {
                        return None;
                    };
                    let (x, c) = match pn.op_type.as_str() {
                        "Div" => (a.as_str(), b.as_str()),
                        "Mul" if is(self.scalar_named(b, &producer), 0.5f64.sqrt()) => {
                            (a.as_str(), b.as_str())
                        }
                        "Mul" => (b.as_str(), a.as_str()),
                        _ => return None,
                    };
                    let scale = self.scalar_named(c, &producer);
                    let ok = match pn.op_type.as_str() {
                        "Div" => is(scale, 2f64.sqrt()),
                        _ => is(scale, 0.5f64.sqrt()),
                    };
                    if !ok || sole(d)? != e {
                        return None;
                    }
                    let add = sole(out0(e))?;
                    if g.node[add].op_type != "Add"
                        || !is(self.scalar_named(other(add, out0(e))?, &producer), 1.0)
                    {
                        return None;
                    }
                    let m = sole(out0(add))?;
                    if g.node[m].op_type != "Mul" {
                        return None;
                    }
                    let y = other(m, out0(add))?;
                    let half = |v: &str| is(self.scalar_named(v, &producer), 0.5);
                    if y == x {
                        // (x · (1 + erf)) · 0.5
                        let m2 = sole(out0(m))?;
                        let h = other(m2, out0(m))?;
                        (g.node[m2].op_type == "Mul" && half(h))
                            .then(|| (x.to_string(), vec![p, e, add, m], m2))
                    } else if half(y) {
                        // ((1 + erf) · 0.5) · x
                        let m2 = sole(out0(m))?;
                        (g.node[m2].op_type == "Mul" && other(m2, out0(m))? == x)
                            .then(|| (x.to_string(), vec![p, e, add, m], m2))
                    } else {
                        // (x · 0.5) · (1 + erf)
                        let h = *producer.get(y)?;
                        let hn = &g.node[h];
                        (hn.op_type == "Mul" && sole(y)? == m && other(h, x).is_some_and(half))
                            .then(|| (x.to_string(), vec![p, e, add, h], m))
                    }
                })();
                if let Some((x, group, last)) = found
                    && !group.iter().chain([&last]).any(|i| absorbed.contains(i))
                {
                    absorbed.extend(group);
                    fused.insert(
                        last,
                        Fused {
                            input: x,
                            activation: Activation::Gelu,
                        },
                    );
                }
            } else if n.op_type == "Sigmoid" && n.input.len() == 1 {
                let x = n.input[0].as_str();
                if let Some(m) = sole(out0(e))
                    && g.node[m].op_type == "Mul"
                    && other(m, out0(e)) == Some(x)
                    && !absorbed.contains(&e)
                    && !fused.contains_key(&e)
                {
                    absorbed.insert(e);
                    fused.insert(
                        m,
                        Fused {
                            input: x.to_string(),
                            activation: Activation::Swish,
                        },
                    );
                }
            }
        }
        (fused, absorbed)
    }

    // ---------------------------------------------------------------------------- dispatch

    fn node(&mut self, node: &NodeProto, at: &At) -> Result<(), OnnxError> {
        let attrs = Attrs::new(node, at);
        let op = node.op_type.as_str();
        if let Some(out) = self.shape_arithmetic(node, at, &attrs)? {
            self.set(node, 0, out);
            return Ok(());
        }
        let out = match op {
            "Conv" => self.conv(node, at, &attrs)?,
            "BatchNormalization" => self.batch_norm(node, at, &attrs)?,
            "Relu" | "Sigmoid" | "Tanh" => {
                attrs.only(&[])?;
                let x = self.required(node, 0, at)?;
                let a = match op {
                    "Relu" => Activation::Relu,
                    "Sigmoid" => Activation::Sigmoid,
                    _ => Activation::Tanh,
                };
                self.activation(node, at, x, a)?
            }
            "LeakyRelu" | "Elu" => {
                attrs.only(&["alpha"])?;
                let default = if op == "Elu" { 1.0 } else { 0.01 };
                let alpha = attrs.float("alpha")?.map_or(default, tidy);
                let x = self.required(node, 0, at)?;
                let a = if op == "Elu" {
                    Activation::Elu { alpha }
                } else {
                    Activation::LeakyRelu { alpha }
                };
                self.activation(node, at, x, a)?
            }
            "Gelu" => {
                attrs.only(&["approximate"])?;
                let approx = attrs.string("approximate")?.unwrap_or_default();
                if !(approx.is_empty() || approx == "none") {
                    return Err(at.unsupported(
                        "approximate",
                        format!(
                            "is `{}`; widen's GELU is the exact (erf) one",
                            widen_layers::printable(&approx)
                        ),
                    ));
                }
                let x = self.required(node, 0, at)?;
                self.activation(node, at, x, Activation::Gelu)?
            }
            "Softmax" | "LogSoftmax" => self.softmax(node, at, &attrs)?,
            "Clip" => self.clip(node, at, &attrs)?,
            "MaxPool" => self.pool(node, at, &attrs, true)?,
            "AveragePool" => self.pool(node, at, &attrs, false)?,
            "GlobalAveragePool" | "GlobalMaxPool" => {
                attrs.only(&[])?;
                let x = self.required(node, 0, at)?;
                self.global_pool(node, at, x, op == "GlobalMaxPool", true)?
            }
            "ReduceMean" | "ReduceMax" => self.reduce(node, at, &attrs)?,
            "Flatten" => self.flatten(node, at, &attrs)?,
            "Reshape" => self.reshape(node, at, &attrs)?,
            "Squeeze" => self.squeeze(node, at, &attrs)?,
            "Unsqueeze" => self.unsqueeze(node, at, &attrs)?,
            "Transpose" => self.transpose(node, at, &attrs)?,
            "Gemm" => self.gemm(node, at, &attrs)?,
            "MatMul" => self.matmul(node, at, &attrs)?,
            "Add" | "Sub" | "Mul" | "Div" | "Max" | "Min" | "Sum" | "Mean" => {
                self.elementwise(node, at, &attrs)?
            }
            "Concat" => self.concat(node, at, &attrs)?,
            "Dropout" => {
                attrs.only(&["ratio", "seed", "is_test"])?;
                if let Some(training) = self.konst(node, 2, at)?
                    && training.scalar().is_some_and(|t| t != 0.0)
                {
                    return Err(at.unsupported(
                        "input 2",
                        "training_mode is true; widen imports inference graphs",
                    ));
                }
                self.only_first_output(node, at)?;
                self.required(node, 0, at)?
            }
            "Identity" => {
                attrs.only(&[])?;
                self.required(node, 0, at)?
            }
            "Constant" => self.constant(node, at)?,
            "Pad" => self.pad(node, at, &attrs)?,
            "Slice" => self.slice(node, at, &attrs)?,
            "Resize" | "Upsample" => self.resize(node, at, &attrs)?,
            "LSTM" | "GRU" => self.recurrent(node, at, &attrs, op == "LSTM")?,
            "Gather" => self.gather(node, at, &attrs)?,
            _ => {
                return Err(at.unsupported(
                    "op_type",
                    format!(
                        "widen has no layer for `{}` (see docs/ONNX.md for the ops it maps)",
                        widen_layers::printable(op)
                    ),
                ));
            }
        };
        if let (Some(made), Some(output)) = (out.node(), node.output.first())
            && !self.made_for.contains_key(made)
        {
            self.made_for.insert(made.to_string(), output.clone());
        }
        self.set(node, 0, out);
        Ok(())
    }

    // ------------------------------------------------------------------------ conv and BN

    /// The padding a window op asks for (`auto_pad`, `pads`), worked out for the input length.
    fn window_pads(
        &self,
        attrs: &Attrs,
        at: &At,
        length: Option<usize>,
        k: usize,
        s: usize,
        d: usize,
    ) -> Result<Pads, OnnxError> {
        let auto = attrs.string("auto_pad")?.unwrap_or_default();
        let explicit = || -> Result<Pads, OnnxError> {
            match attrs.ints("pads")? {
                None => Ok(Pads::Explicit(0, 0)),
                Some(&[l, r]) if l >= 0 && r >= 0 => Ok(Pads::Explicit(l as usize, r as usize)),
                Some(p) => Err(at.unsupported(
                    "pads",
                    format!("is {p:?}; widen maps 1-D windows with non-negative [begin, end] pads"),
                )),
            }
        };
        match auto.as_str() {
            "" | "NOTSET" => explicit(),
            "VALID" => Ok(Pads::Explicit(0, 0)),
            "SAME_UPPER" | "SAME_LOWER" => {
                let upper = auto == "SAME_UPPER";
                let reach = d.saturating_mul(k.saturating_sub(1));
                let total = match length {
                    Some(len) => {
                        let out = len.div_ceil(s);
                        ((out.saturating_sub(1)).saturating_mul(s))
                            .saturating_add(reach + 1)
                            .saturating_sub(len)
                    }
                    None if s == 1 => reach,
                    None if upper => return Ok(Pads::Same),
                    None => {
                        return Err(at.unsupported(
                            "auto_pad",
                            "SAME_LOWER with a stride > 1 on a dynamic length: the padding \
                             depends on the length and widen's `same` puts the odd element on \
                             the right (SAME_UPPER)",
                        ));
                    }
                };
                let small = total / 2;
                Ok(if upper {
                    Pads::Explicit(small, total - small)
                } else {
                    Pads::Explicit(total - small, small)
                })
            }
            other => Err(at.unsupported(
                "auto_pad",
                format!("is `{}`", widen_layers::printable(other)),
            )),
        }
    }

    fn conv(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ])?;
        let x = Self::seq_of(self.required(node, 0, at)?, at, "input 0")?;
        let w = self.required_const(node, 1, at)?;
        let (f, cg, k) = match w.dims.as_slice() {
            &[f, cg, k] if f > 0 && cg > 0 && k > 0 => (f, cg, k),
            d => {
                return Err(at.unsupported(
                    "input 1",
                    format!(
                        "weight dims {d:?}: widen maps 1-D convolutions (weight [filters, \
                         channels / group, kernel]){}",
                        if d.len() == 4 {
                            "; this is a 2-D convolution"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        };
        if attrs.one("kernel_shape", k)? != k {
            return Err(at.unsupported(
                "kernel_shape",
                format!("disagrees with the weight's kernel size {k}"),
            ));
        }
        let s = attrs.one("strides", 1)?;
        let d = attrs.one("dilations", 1)?;
        let g = attrs.int("group")?.unwrap_or(1);
        let g = usize::try_from(g)
            .ok()
            .filter(|&g| g > 0)
            .ok_or_else(|| at.unsupported("group", format!("is {g}; it must be ≥ 1")))?;
        if cg.checked_mul(g) != Some(x.channels) || f % g != 0 {
            return Err(at.unsupported(
                "group",
                format!(
                    "weight [{f}, {cg}, {k}] with group {g} reads {} channels in groups of \
                     {cg}; the input has {}",
                    cg.saturating_mul(g),
                    x.channels
                ),
            ));
        }
        let weight = Self::floats(&w, "input 1", at)?;
        let bias = match self.konst(node, 2, at)? {
            None => None,
            Some(b) if b.len() == f && b.dims.len() == 1 => Some(Self::floats(&b, "input 2", at)?),
            Some(b) => {
                return Err(
                    at.unsupported("input 2", format!("bias dims {:?}, expected [{f}]", b.dims))
                );
            }
        };
        let pads = self.window_pads(attrs, at, x.length, k, s, d)?;
        let stem = stem_from(node, "conv1d");
        let mut from = x.node.clone();
        let padding = match mode_for(pads, x.length, k, s, d) {
            Some(mode) => mode,
            None => {
                let Pads::Explicit(l, r) = pads else {
                    return Err(at.unsupported("pads", "no widen padding matches"));
                };
                from = self.push_zero_pad(&stem, at, &from, [l, r])?;
                PaddingMode::Valid
            }
        };
        let config = Conv1dConfig::pytorch(f, k)
            .with_strides(s)
            .with_dilation_rate(d)
            .with_groups(g)
            .with_padding(padding)
            .with_bias(bias.is_some())
            .with_data_format(self.format);
        let (name, shape) = self.push_as(&stem, at, &[&from], LayerConfig::Conv1d(config))?;
        self.weight(&name, "weight", weight, &[f, cg, k]);
        if let Some(b) = bias {
            self.weight(&name, "bias", b, &[f]);
        }
        Ok(Self::value(shape, name))
    }

    fn floats(c: &Const, what: &str, at: &At) -> Result<Vec<f32>, OnnxError> {
        c.floats()
            .map(<[f32]>::to_vec)
            .ok_or_else(|| at.unsupported(what, "holds integers where floats belong"))
    }

    fn batch_norm(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&[
            "epsilon",
            "momentum",
            "spatial",
            "training_mode",
            "is_test",
            "consumed_inputs",
        ])?;
        if attrs.int("training_mode")?.unwrap_or(0) != 0 {
            return Err(at.unsupported(
                "training_mode",
                "is 1: a training-mode BatchNormalization (export the module in eval() mode)",
            ));
        }
        if attrs.int("spatial")?.unwrap_or(1) != 1 {
            return Err(at.unsupported("spatial", "is 0: statistics per element, not per channel"));
        }
        self.only_first_output(node, at)?;
        let x = self.required(node, 0, at)?;
        let (node_name, channels) = match &x {
            Val::Seq(s) => (s.node.clone(), s.channels),
            Val::Flat { node, features } => (node.clone(), *features),
            other => {
                return Err(Self::is_not(
                    other,
                    at,
                    "input 0",
                    "widen normalises [N, C, L] or [N, C]",
                ));
            }
        };
        let mut stats = Vec::with_capacity(4);
        for (i, what) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
            let c = self.required_const(node, i, at)?;
            if c.dims != [channels] {
                return Err(at.unsupported(
                    &format!("input {i}"),
                    format!("{what} has dims {:?}, expected [{channels}]", c.dims),
                ));
            }
            stats.push(Self::floats(&c, &format!("input {i}"), at)?);
        }
        let epsilon = attrs.float("epsilon")?.map_or(1e-5, tidy);
        // ONNX's momentum weighs the running value (Keras' convention); PyTorch's the batch.
        let momentum = attrs.float("momentum")?.map_or(0.9, tidy);
        let torch_momentum = ((1.0 - momentum) * 1e9).round() / 1e9;
        let config = BatchNormConfig::pytorch()
            .with_epsilon(epsilon)
            .with_momentum(torch_momentum);
        let (name, _) = self.push(node, at, &[&node_name], LayerConfig::BatchNorm1d(config))?;
        let mut it = stats.into_iter();
        for param in ["gamma", "beta", "moving_mean", "moving_variance"] {
            let v = it.next().unwrap_or_default();
            self.weight(&name, param, v, &[channels]);
        }
        Ok(x.with_node(&name))
    }

    // ------------------------------------------------------------------------ activations

    /// An element-wise activation layer on `x` (any value but a constant; the kind is kept).
    fn activation(
        &mut self,
        node: &NodeProto,
        at: &At,
        x: Val,
        a: Activation,
    ) -> Result<Val, OnnxError> {
        Self::no_const(&x, at, "input 0")?;
        let from = x.node().unwrap_or_default().to_string();
        let (name, _) = self.push(node, at, &[&from], LayerConfig::Activation(a))?;
        Ok(x.with_node(&name))
    }

    fn softmax(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["axis"])?;
        let x = self.required(node, 0, at)?;
        Self::no_const(&x, at, "input 0")?;
        let rank = x.rank() as i64;
        let default = if self.opset >= 13 { -1 } else { 1 };
        let axis = attrs.int("axis")?.unwrap_or(default);
        let ax = if axis < 0 { axis + rank } else { axis };
        // Before opset 13 the input is flattened from `axis` on: one axis only if it is last.
        let coerced = self.opset < 13 && ax != rank - 1;
        // widen's softmax normalises the model layout's last axis: channels (channels-last),
        // the length (channels-first); internal dim 1 or 2 of [N, C, L].
        let widen_dim = match self.format {
            DataFormat::ChannelsLast => 1,
            DataFormat::ChannelsFirst => 2,
        };
        let ok = !coerced
            && match &x {
                Val::Flat { .. } => ax == 1,
                Val::Pooled { rank: 3, .. } => ax == 1,
                Val::Seq(_) => ax == widen_dim,
                Val::SeqT(_) => (3 - ax) == widen_dim,
                _ => false,
            };
        if !ok {
            let what = match self.format {
                DataFormat::ChannelsLast => "channels",
                DataFormat::ChannelsFirst => "the length",
            };
            return Err(at.unsupported(
                "axis",
                format!(
                    "normalises axis {axis} of {}{}; widen's softmax normalises flat features, \
                     and on sequences of this model's layout {what} only",
                    x.describe(),
                    if coerced {
                        " (flattened from that axis on, as before opset 13)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let a = if node.op_type == "Softmax" {
            Activation::Softmax
        } else {
            Activation::LogSoftmax
        };
        self.activation(node, at, x, a)
    }

    /// `Clip(0, m)` (torch's ReLU6 and friends) → ReLU with a maximum.
    fn clip(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["min", "max"])?;
        let x = self.required(node, 0, at)?;
        Self::no_const(&x, at, "input 0")?;
        let (min, max) = if self.opset >= 11 {
            let bound = |me: &mut Self, i: usize| -> Result<Option<f64>, OnnxError> {
                match me.konst(node, i, at)? {
                    None => Ok(None),
                    Some(c) => c
                        .scalar()
                        .map(Some)
                        .ok_or_else(|| at.unsupported(&format!("input {i}"), "is not a scalar")),
                }
            };
            (bound(self, 1)?, bound(self, 2)?)
        } else {
            (attrs.float("min")?.map(tidy), attrs.float("max")?.map(tidy))
        };
        if min != Some(0.0) || max.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
            return Err(at.unsupported(
                "min",
                format!(
                    "clips to [{}, {}]; widen maps Clip(0, max) (a ReLU with a maximum) only",
                    min.map_or("-inf".into(), |v| v.to_string()),
                    max.map_or("inf".into(), |v| v.to_string())
                ),
            ));
        }
        let from = x.node().unwrap_or_default().to_string();
        let config = match max {
            None => LayerConfig::Activation(Activation::Relu),
            Some(m) => LayerConfig::Relu(ReluConfig::new().with_max_value(tidy(m as f32))),
        };
        let (name, _) = self.push(node, at, &[&from], config)?;
        Ok(x.with_node(&name))
    }

    // --------------------------------------------------------------------------- pooling

    fn pool(
        &mut self,
        node: &NodeProto,
        at: &At,
        attrs: &Attrs,
        max: bool,
    ) -> Result<Val, OnnxError> {
        if max {
            attrs.only(&[
                "auto_pad",
                "ceil_mode",
                "dilations",
                "kernel_shape",
                "pads",
                "strides",
                "storage_order",
            ])?;
        } else {
            attrs.only(&[
                "auto_pad",
                "ceil_mode",
                "count_include_pad",
                "dilations",
                "kernel_shape",
                "pads",
                "strides",
            ])?;
        }
        self.only_first_output(node, at)?;
        let x = Self::seq_of(self.required(node, 0, at)?, at, "input 0")?;
        let k = attrs.one("kernel_shape", 0)?;
        if k == 0 {
            return Err(at.unsupported("kernel_shape", "is missing"));
        }
        let s = attrs.one("strides", 1)?;
        if attrs.one("dilations", 1)? != 1 {
            return Err(at.unsupported("dilations", "widen's pooling windows are not dilated"));
        }
        let pads = self.window_pads(attrs, at, x.length, k, s, 1)?;
        let include_pad = !max && attrs.int("count_include_pad")?.unwrap_or(0) != 0;
        if attrs.int("ceil_mode")?.unwrap_or(0) != 0 {
            let exact = match (x.length, pads) {
                (Some(len), Pads::Explicit(l, r)) => len
                    .saturating_add(l + r)
                    .checked_sub(k)
                    .is_some_and(|span| span % s == 0),
                _ => false,
            };
            if !exact {
                return Err(at.unsupported(
                    "ceil_mode",
                    "is 1 and rounds the output length up here (a partial last window); \
                     widen's windows round down",
                ));
            }
        }
        // One window over the whole (fixed) length: the global pool, which keeps working when
        // the model is widened.
        if x.length == Some(k) && pads == Pads::Explicit(0, 0) {
            return self.global_pool(node, at, Val::Seq(x), max, true);
        }
        let stem = stem_from(
            node,
            if max {
                "max_pooling1d"
            } else {
                "average_pooling1d"
            },
        );
        let mut from = x.node.clone();
        let mode = match (mode_for(pads, x.length, k, s, 1), pads) {
            (Some(PaddingMode::Valid), _) => PaddingMode::Valid,
            (Some(PaddingMode::Same), _) if !include_pad => PaddingMode::Same,
            (_, Pads::Explicit(l, r)) if include_pad => {
                // Averages that count the padding are averages over zeros widen pads with.
                from = self.push_zero_pad(&stem, at, &from, [l, r])?;
                PaddingMode::Valid
            }
            _ => {
                return Err(at.unsupported(
                    "pads",
                    format!(
                        "{pads:?} on a window of {k}, stride {s}: widen's {} pads like Keras \
                         `same` only{}",
                        if max {
                            "max pooling"
                        } else {
                            "average pooling"
                        },
                        if max {
                            ""
                        } else {
                            " (or with zeros when count_include_pad = 1)"
                        }
                    ),
                ));
            }
        };
        let mut config = PoolConfig::new(k).with_padding(mode);
        if s != k {
            config = config.with_strides(s);
        }
        let layer = if max {
            LayerConfig::MaxPool1d(config)
        } else {
            LayerConfig::AvgPool1d(config)
        };
        let (name, shape) = self.push_as(&stem, at, &[&from], layer)?;
        Ok(Self::value(shape, name))
    }

    /// A global pool on a sequence (or a 4-D sequence with a unit axis); `keep` keeps the
    /// reduced axes (`[N, C, 1]`), as GlobalAveragePool does.
    fn global_pool(
        &mut self,
        node: &NodeProto,
        at: &At,
        x: Val,
        max: bool,
        keep: bool,
    ) -> Result<Val, OnnxError> {
        let (seq, rank) = match x {
            Val::Seq(s) | Val::SeqT(s) => (s, 3),
            Val::Seq4 { seq, .. } => (seq, 4),
            other => {
                return Err(Self::is_not(&other, at, "input 0", "widen pools sequences"));
            }
        };
        let config = if max {
            LayerConfig::GlobalMaxPool1d
        } else {
            LayerConfig::GlobalAvgPool1d
        };
        let (name, _) = self.push(node, at, &[&seq.node], config)?;
        Ok(if keep {
            Val::Pooled {
                node: name,
                channels: seq.channels,
                rank,
            }
        } else {
            Val::Flat {
                node: name,
                features: seq.channels,
            }
        })
    }

    fn reduce(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["axes", "keepdims", "noop_with_empty_axes"])?;
        let x = self.required(node, 0, at)?;
        let axes = self.axes(node, attrs, at, 18)?.unwrap_or_default();
        let axes = axes_of(&axes, x.rank(), at, "axes")?;
        let keep = attrs.int("keepdims")?.unwrap_or(1) != 0;
        let max = node.op_type == "ReduceMax";
        let over_length = match &x {
            Val::Seq(_) => axes == [2],
            Val::SeqT(_) => axes == [1] && !keep,
            Val::Seq4 { .. } => axes == [2, 3],
            _ => false,
        };
        if !over_length {
            return Err(at.unsupported(
                "axes",
                format!(
                    "reduces axes {axes:?} of {}; widen maps a reduction over the length (a \
                     global pool) only",
                    x.describe()
                ),
            ));
        }
        self.global_pool(node, at, x, max, keep)
    }

    // ---------------------------------------------------------------------- shape ops

    /// `[N, C, L]` (or its transposed view) flattened from axis 1, as widen's Flatten does in
    /// this model's layout, or why not.
    fn flatten_seq(
        &mut self,
        node: &NodeProto,
        at: &At,
        seq: Seq,
        transposed: bool,
    ) -> Result<Val, OnnxError> {
        let Some(length) = seq.length else {
            return Err(at.unsupported(
                "input 0",
                "flattens a sequence of dynamic length: widen's Flatten (and the Dense after \
                 it) needs a fixed length; export the model with a static length axis",
            ));
        };
        // widen flattens [C, L] channel-major in a channels-first model, step-major in a
        // channels-last one; with one channel or one step both orders agree.
        let step_major = self.format == DataFormat::ChannelsLast;
        let (name, shape) = self.push(node, at, &[&seq.node], LayerConfig::Flatten)?;
        if transposed != step_major && seq.channels > 1 && length > 1 {
            // The other element order: a Dense reading it takes its rows permuted.
            return Ok(Val::FlatOther {
                node: name,
                channels: seq.channels,
                length,
                onnx_step_major: transposed,
            });
        }
        Ok(Self::value(shape, name))
    }

    fn flatten(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["axis"])?;
        let x = self.required(node, 0, at)?;
        let axis = attrs.int("axis")?.unwrap_or(1);
        let rank = x.rank() as i64;
        if (if axis < 0 { axis + rank } else { axis }) != 1 {
            return Err(at.unsupported(
                "axis",
                format!("is {axis}; widen flattens everything but the batch (axis 1)"),
            ));
        }
        self.flat_view(node, at, x)
    }

    /// Everything but the batch in one axis.
    fn flat_view(&mut self, node: &NodeProto, at: &At, x: Val) -> Result<Val, OnnxError> {
        match x {
            Val::Flat { .. } => Ok(x),
            Val::Pooled { node, channels, .. } => Ok(Val::Flat {
                node,
                features: channels,
            }),
            Val::Seq(s) | Val::Seq4 { seq: s, .. } => self.flatten_seq(node, at, s, false),
            Val::SeqT(s) => self.flatten_seq(node, at, s, true),
            other => Err(Self::is_not(
                &other,
                at,
                "input 0",
                "widen flattens sequences and pooled tensors",
            )),
        }
    }

    fn reshape(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["allowzero"])?;
        let x = self.required(node, 0, at)?;
        Self::no_const(&x, at, "input 0")?;
        let target = self
            .int_input(node, 1, at)?
            .ok_or_else(|| at.unsupported("input 1", "the target shape is missing"))?;
        let allowzero = attrs.int("allowzero")?.unwrap_or(0) != 0;
        let batch_kept = |t: i64, others_known: bool| match t {
            0 => !allowzero,
            -1 => others_known,
            v => self.batch.is_some_and(|b| b as i64 == v),
        };
        let refuse = |x: &Val| {
            at.unsupported(
                "input 1",
                format!(
                    "reshapes {} to {target:?}; widen maps a reshape that flattens everything \
                     but the batch, or undoes a kept unit axis, only",
                    x.describe()
                ),
            )
        };
        // The sizes of the input's non-batch axes, where known.
        let sizes: Vec<Option<usize>> = match &x {
            Val::Seq(s) => vec![Some(s.channels), s.length],
            Val::SeqT(s) => vec![s.length, Some(s.channels)],
            Val::Flat { features, .. } => vec![Some(*features)],
            Val::Pooled { channels, rank, .. } => {
                let mut v = vec![Some(*channels)];
                v.resize(rank - 1, Some(1));
                v
            }
            Val::Seq4 { seq, unit: 2 } => vec![Some(seq.channels), Some(1), seq.length],
            Val::Seq4 { seq, .. } => vec![Some(seq.channels), seq.length, Some(1)],
            _ => return Err(refuse(&x)),
        };
        let total: Option<usize> = sizes
            .iter()
            .try_fold(1usize, |acc, s| s.and_then(|s| acc.checked_mul(s)));
        match *target.as_slice() {
            // [N, everything].
            [b, f] => {
                let flat_ok = match f {
                    -1 => b != -1,
                    0 => false,
                    f => total.is_some_and(|t| t as i64 == f),
                };
                if !flat_ok || !batch_kept(b, f != -1) {
                    return Err(refuse(&x));
                }
                self.flat_view(node, at, x)
            }
            // [N, C, L] from [N, C, L] or [N, C, 1, L] / [N, C, L, 1].
            [b, c, l] => {
                let (seq, transposed) = match &x {
                    Val::Seq(s) | Val::Seq4 { seq: s, .. } => (s.clone(), false),
                    Val::SeqT(s) => (s.clone(), true),
                    _ => return Err(refuse(&x)),
                };
                let (d1, d2) = if transposed {
                    (seq.length, Some(seq.channels))
                } else {
                    (Some(seq.channels), seq.length)
                };
                let copies = matches!(x, Val::Seq(_) | Val::SeqT(_)) && !allowzero;
                let dim_ok = |t: i64, d: Option<usize>, copy: bool| {
                    (t == 0 && copy) || (t > 0 && d == Some(t as usize))
                };
                let minus = [b, c, l].iter().filter(|&&t| t == -1).count();
                let ok = minus <= 1
                    && (dim_ok(c, d1, copies) || c == -1)
                    && (dim_ok(l, d2, copies) || l == -1)
                    && batch_kept(b, c != -1 && l != -1);
                if !ok {
                    return Err(refuse(&x));
                }
                Ok(if transposed {
                    Val::SeqT(seq)
                } else {
                    Val::Seq(seq)
                })
            }
            _ => Err(refuse(&x)),
        }
    }

    fn squeeze(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["axes"])?;
        let x = self.required(node, 0, at)?;
        Self::no_const(&x, at, "input 0")?;
        let axes = self.axes(node, attrs, at, 13)?;
        let axes = match &axes {
            Some(a) => Some(axes_of(a, x.rank(), at, "axes")?),
            None => None,
        };
        // No axes: every unit axis, which must then be only the ones a pool left.
        let batch_one = self.batch == Some(1);
        let out = match (&x, axes.as_deref()) {
            (Val::Pooled { node, channels, .. }, None) if *channels > 1 && !batch_one => {
                Some(Val::Flat {
                    node: node.clone(),
                    features: *channels,
                })
            }
            (
                Val::Pooled {
                    node,
                    channels,
                    rank: 3,
                },
                Some([2]),
            )
            | (
                Val::Pooled {
                    node,
                    channels,
                    rank: 4,
                },
                Some([2, 3]),
            ) => Some(Val::Flat {
                node: node.clone(),
                features: *channels,
            }),
            (
                Val::Pooled {
                    node,
                    channels,
                    rank: 4,
                },
                Some([2] | [3]),
            ) => Some(Val::Pooled {
                node: node.clone(),
                channels: *channels,
                rank: 3,
            }),
            (Val::Seq4 { seq, unit }, Some(a)) if a == [*unit] => Some(Val::Seq(seq.clone())),
            (Val::Seq4 { seq, .. }, None)
                if seq.channels > 1 && seq.length != Some(1) && !batch_one =>
            {
                Some(Val::Seq(seq.clone()))
            }
            (Val::RnnSteps(s), Some([1])) => Some(Val::SeqTime(s.clone())),
            (Val::Lead1 { node, features }, Some([0])) => Some(Val::Flat {
                node: node.clone(),
                features: *features,
            }),
            (Val::Seq(s), Some([2])) if s.length == Some(1) => {
                return self.flatten_seq(node, at, s.clone(), false);
            }
            _ => None,
        };
        out.ok_or_else(|| {
            at.unsupported(
                "axes",
                format!(
                    "squeezes {:?} of {}; widen maps a squeeze that undoes a pool's or an \
                     unsqueeze's unit axis only",
                    axes.unwrap_or_default(),
                    x.describe()
                ),
            )
        })
    }

    fn unsqueeze(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["axes"])?;
        let x = self.required(node, 0, at)?;
        Self::no_const(&x, at, "input 0")?;
        let raw = self
            .axes(node, attrs, at, 13)?
            .ok_or_else(|| at.unsupported("axes", "are missing"))?;
        let axes = axes_of(&raw, x.rank() + raw.len(), at, "axes")?;
        let out = match (&x, axes.as_slice()) {
            (Val::Seq(s), [u @ (2 | 3)]) => Some(Val::Seq4 {
                seq: s.clone(),
                unit: *u,
            }),
            (Val::Flat { node, features }, [2]) => Some(Val::Pooled {
                node: node.clone(),
                channels: *features,
                rank: 3,
            }),
            (
                Val::Pooled {
                    node,
                    channels,
                    rank: 3,
                },
                [2 | 3],
            ) => Some(Val::Pooled {
                node: node.clone(),
                channels: *channels,
                rank: 4,
            }),
            _ => None,
        };
        out.ok_or_else(|| {
            at.unsupported(
                "axes",
                format!(
                    "unsqueezes {raw:?} of {}; widen maps a unit axis after the channels only",
                    x.describe()
                ),
            )
        })
    }

    fn transpose(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["perm"])?;
        let x = self.required(node, 0, at)?;
        let perm = attrs.ints("perm")?.unwrap_or_default();
        match (x, perm) {
            (Val::Seq(s), [0, 2, 1]) | (Val::SeqTime(s), [1, 0, 2]) => Ok(Val::SeqT(s)),
            (Val::SeqT(s), [0, 2, 1]) | (Val::SeqTime(s), [1, 2, 0]) => Ok(Val::Seq(s)),
            (Val::Seq(s), [2, 0, 1]) | (Val::SeqT(s), [1, 0, 2]) => Ok(Val::SeqTime(s)),
            (x, perm) => Err(at.unsupported(
                "perm",
                format!(
                    "transposes {} by {perm:?}; widen keeps one layout inside a model and maps \
                     only the swap of channels and length ([0, 2, 1]) where the model's layout \
                     says which is which",
                    x.describe()
                ),
            )),
        }
    }

    // ------------------------------------------------------------------------------ dense

    /// The flat input of a Dense: its node, its width and, when widen's Flatten orders the
    /// elements otherwise than the graph, the ONNX feature each widen feature is.
    fn flat_of(x: Val, at: &At) -> Result<(String, usize, Option<Vec<usize>>), OnnxError> {
        match x {
            Val::Flat { node, features } => Ok((node, features, None)),
            Val::FlatOther {
                node,
                channels,
                length,
                onnx_step_major,
            } => {
                let (c, l) = (channels, length);
                // widen index → ONNX index, over (channel, step).
                let perm = (0..c * l)
                    .map(|w| {
                        let (ch, st) = if onnx_step_major {
                            (w / l, w % l)
                        } else {
                            (w % c, w / c)
                        };
                        if onnx_step_major {
                            st * c + ch
                        } else {
                            ch * l + st
                        }
                    })
                    .collect();
                Ok((node, c * l, Some(perm)))
            }
            other => Err(Self::is_not(
                &other,
                at,
                "input 0",
                "widen's Dense reads [batch, features] (flatten or pool first)",
            )),
        }
    }

    fn gemm(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["alpha", "beta", "transA", "transB"])?;
        if attrs.int("transA")?.unwrap_or(0) != 0 {
            return Err(at.unsupported("transA", "is 1: the input is transposed"));
        }
        let trans_b = attrs.int("transB")?.unwrap_or(0) != 0;
        let alpha = attrs.float("alpha")?.unwrap_or(1.0);
        let beta = attrs.float("beta")?.unwrap_or(1.0);
        let (from, features, rows) = Self::flat_of(self.required(node, 0, at)?, at)?;
        let b = self.required_const(node, 1, at)?;
        let (k, m) = match (b.dims.as_slice(), trans_b) {
            (&[m, k], true) | (&[k, m], false) => (k, m),
            (d, _) => {
                return Err(at.unsupported(
                    "input 1",
                    format!("weight dims {d:?}: a Gemm weight is 2-D"),
                ));
            }
        };
        if k != features || m == 0 {
            return Err(at.unsupported(
                "input 1",
                format!(
                    "weight dims {:?} (transB {}) read {k} features; the input has {features}",
                    b.dims,
                    u8::from(trans_b)
                ),
            ));
        }
        let values = Self::floats(&b, "input 1", at)?;
        let mut weight = if trans_b {
            // [M, K] → [K, M].
            let mut t = vec![0.0f32; values.len()];
            for o in 0..m {
                for i in 0..k {
                    t[i * m + o] = values[o * k + i];
                }
            }
            t
        } else {
            values
        };
        if alpha != 1.0 {
            weight.iter_mut().for_each(|w| *w *= alpha);
        }
        let bias = match self.konst(node, 2, at)? {
            None => None,
            Some(c) => {
                let v = Self::floats(&c, "input 2", at)?;
                let v = match (v.len(), c.dims.as_slice()) {
                    (1, _) => vec![v[0]; m],
                    (n, [_] | [1, _]) if n == m => v,
                    _ => {
                        return Err(at.unsupported(
                            "input 2",
                            format!(
                                "bias dims {:?}; widen adds one bias per unit ([{m}])",
                                c.dims
                            ),
                        ));
                    }
                };
                Some(v.into_iter().map(|b| b * beta).collect::<Vec<f32>>())
            }
        };
        let weight = permute_rows(weight, rows.as_deref(), m);
        let config = DenseConfig::new(m).with_bias(bias.is_some());
        let (name, shape) = self.push(node, at, &[&from], LayerConfig::Dense(config))?;
        self.weight(&name, "weight", weight, &[k, m]);
        if let Some(b) = bias {
            self.weight(&name, "bias", b, &[m]);
        }
        Ok(Self::value(shape, name))
    }

    fn matmul(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&[])?;
        let (from, features, rows) = Self::flat_of(self.required(node, 0, at)?, at)?;
        let b = self.required_const(node, 1, at)?;
        let (k, m) = match b.dims.as_slice() {
            &[k, m] if k == features && m > 0 => (k, m),
            d => {
                return Err(at.unsupported(
                    "input 1",
                    format!("weight dims {d:?}; widen maps x [N, {features}] · W [{features}, M]"),
                ));
            }
        };
        let weight = permute_rows(Self::floats(&b, "input 1", at)?, rows.as_deref(), m);
        let config = DenseConfig::new(m).with_bias(false);
        let (name, shape) = self.push(node, at, &[&from], LayerConfig::Dense(config))?;
        self.weight(&name, "weight", weight, &[k, m]);
        if let Some(out) = node.output.first() {
            self.open_bias
                .insert(out.clone(), self.spec.layers.len() - 1);
        }
        Ok(Self::value(shape, name))
    }

    // ------------------------------------------------------------------------ elementwise

    fn elementwise(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&[])?;
        let op = node.op_type.as_str();
        let mut vals = Vec::with_capacity(node.input.len());
        for i in 0..node.input.len() {
            vals.push(self.required(node, i, at)?);
        }
        let consts = vals.iter().filter(|v| matches!(v, Val::Const(_))).count();
        match (vals.len(), consts) {
            (0, _) => Err(at.unsupported("input 0", "is missing")),
            (1, 0) if matches!(op, "Sum" | "Max" | "Min" | "Mean") => Ok(vals.remove(0)),
            (n, 0) if n >= 2 => self.merge(node, at, vals),
            (2, 1) => self.fold_constant(node, at, vals),
            _ => Err(at.unsupported(
                "input 0",
                "every operand is constant: widen does not fold constant subgraphs",
            )),
        }
    }

    /// Two or more computed tensors of one shape → a widen merge layer.
    fn merge(&mut self, node: &NodeProto, at: &At, vals: Vec<Val>) -> Result<Val, OnnxError> {
        let op = node.op_type.as_str();
        let config = match op {
            "Add" | "Sum" => LayerConfig::Add(MergeConfig {}),
            "Sub" => LayerConfig::Subtract(MergeConfig {}),
            "Mul" => LayerConfig::Multiply(MergeConfig {}),
            "Max" => LayerConfig::Maximum(MergeConfig {}),
            "Min" => LayerConfig::Minimum(MergeConfig {}),
            "Mean" => LayerConfig::Average(MergeConfig {}),
            _ => {
                return Err(at.unsupported(
                    "op_type",
                    "Div of two computed tensors: widen has no divide layer",
                ));
            }
        };
        let kind = |v: &Val| std::mem::discriminant(v);
        if let Some(i) = vals.iter().position(|v| kind(v) != kind(&vals[0])) {
            return Err(at.unsupported(
                &format!("input {i}"),
                format!(
                    "is {} while input 0 is {}: widen merges tensors of one shape (no \
                     broadcasting)",
                    vals[i].describe(),
                    vals[0].describe()
                ),
            ));
        }
        // torch writes `a + b + c` as a chain of binary nodes: an associative merge reading
        // one of its own kind that nothing else reads takes that one's inputs instead (the
        // inner layer, now unread, is pruned at the end).
        let associative = matches!(op, "Add" | "Sum" | "Mul" | "Max" | "Min");
        let mut inbound: Vec<String> = Vec::with_capacity(vals.len());
        for (v, input) in vals.iter().zip(&node.input) {
            let from = v.node().unwrap_or_default().to_string();
            let inner = self
                .layer_of
                .get(&from)
                .map(|&i| &self.spec.layers[i])
                .filter(|l| {
                    associative
                        && std::mem::discriminant(&l.config) == std::mem::discriminant(&config)
                        && self.made_for.get(&from) == Some(input)
                        && self.uses_of(input) == 1
                });
            match inner {
                Some(l) => inbound.extend(l.inbound.iter().cloned()),
                None => inbound.push(from),
            }
        }
        let inbound: Vec<&str> = inbound.iter().map(String::as_str).collect();
        let (name, _) = self.push(node, at, &inbound, config)?;
        Ok(vals[0].with_node(&name))
    }

    /// A computed tensor and a constant: a MatMul's bias, or a per-channel shift or scale
    /// (Normalization).
    fn fold_constant(
        &mut self,
        node: &NodeProto,
        at: &At,
        vals: Vec<Val>,
    ) -> Result<Val, OnnxError> {
        let op = node.op_type.as_str();
        let const_first = matches!(vals[0], Val::Const(_));
        let (x, c) = match (&vals[0], &vals[1]) {
            (Val::Const(c), x) | (x, Val::Const(c)) => (x.clone(), c.clone()),
            _ => return Err(at.unsupported("input 0", "")),
        };
        let x_name = node.input[usize::from(const_first)].as_str();
        let refuse = |why: &str| {
            at.unsupported(
                &format!("input {}", usize::from(!const_first)),
                format!(
                    "{op} of {} and a constant of dims {:?}: {why}",
                    x.describe(),
                    c.dims
                ),
            )
        };
        // MatMul + Add(bias).
        if op == "Add"
            && let Val::Flat { features, .. } = &x
            && let Some(&layer) = self.open_bias.get(x_name)
            && self.uses_of(x_name) == 1
        {
            let v = Self::floats(&c, "bias", at)?;
            let ok = v.len() == *features && matches!(c.dims.as_slice(), [_] | [1, _]);
            if !ok {
                return Err(refuse(&format!("a bias must have dims [{features}]")));
            }
            if let LayerConfig::Dense(d) = &mut self.spec.layers[layer].config {
                d.use_bias = true;
            }
            let name = self.spec.layers[layer].name.clone();
            self.weight(&name, "bias", v, &[*features]);
            self.open_bias.remove(x_name);
            return Ok(x);
        }
        let (seq, transposed) = match &x {
            Val::Seq(s) => (s.clone(), false),
            Val::SeqT(s) => (s.clone(), true),
            _ => {
                return Err(refuse(
                    "widen folds a constant only as a MatMul's bias or as a per-channel \
                     shift/scale of a sequence (Normalization)",
                ));
            }
        };
        let Some(per) = per_channel(&c, seq.channels, transposed) else {
            return Err(refuse(&format!(
                "widen folds per-channel constants (a scalar or [1, {}, 1]) only",
                seq.channels
            )));
        };
        let channels = seq.channels;
        let out_name = node.output.first().cloned().unwrap_or_default();
        match (op, const_first) {
            // x − c and x + c: a Normalization's mean (−c for an add: x − (−c) is x + c).
            ("Sub", false) | ("Add", _) => {
                let mean: Vec<f32> = if op == "Add" {
                    per.iter().map(|v| -v).collect()
                } else {
                    per
                };
                let name = self.push_norm(node, at, &seq, mean, vec![1.0; channels])?;
                self.open_norm.insert(out_name, self.spec.layers.len() - 1);
                Ok(x.with_node(&name))
            }
            // x / d with d > 0: a Normalization's standard deviation (variance d², whose f32
            // square root is d again).
            ("Div", false) => {
                if let Some(bad) = per.iter().find(|&&d| !(d.is_finite() && d >= 1e-7)) {
                    return Err(refuse(&format!(
                        "a divisor of {bad}: widen divides by standard deviations ≥ 1e-7"
                    )));
                }
                let variance: Vec<f32> = per.iter().map(|d| d * d).collect();
                if let Some(&layer) = self.open_norm.get(x_name)
                    && self.uses_of(x_name) == 1
                {
                    let name = self.spec.layers[layer].name.clone();
                    self.weight(&name, "variance", variance, &[channels]);
                    self.open_norm.remove(x_name);
                    return Ok(x);
                }
                let name = self.push_norm(node, at, &seq, vec![0.0; channels], variance)?;
                Ok(x.with_node(&name))
            }
            _ => Err(refuse(
                "widen folds x − c, x + c and x / c (per channel, as a Normalization) only",
            )),
        }
    }

    fn concat(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["axis"])?;
        let mut vals = Vec::with_capacity(node.input.len());
        for i in 0..node.input.len() {
            let v = self.required(node, i, at)?;
            Self::no_const(&v, at, &format!("input {i}"))?;
            vals.push(v);
        }
        if vals.len() == 1 {
            return Ok(vals.remove(0));
        }
        let Some(axis) = attrs.int("axis")? else {
            return Err(at.unsupported("axis", "is missing"));
        };
        let rank = vals.first().map_or(0, Val::rank) as i64;
        let ax = if axis < 0 { axis + rank } else { axis };
        // The internal dim joined (1 channels / features, 2 length), from the ONNX axis.
        let internal = match (&vals[0], ax) {
            (Val::Flat { .. }, 1) | (Val::Seq(_), 1) | (Val::SeqT(_), 2) => Some(1),
            (Val::Seq(_), 2) | (Val::SeqT(_), 1) => Some(2),
            _ => None,
        };
        let kind = |v: &Val| std::mem::discriminant(v);
        let Some(internal) = internal.filter(|_| vals.iter().all(|v| kind(v) == kind(&vals[0])))
        else {
            return Err(at.unsupported(
                "axis",
                format!(
                    "joins {} on axis {axis}; widen concatenates sequences on channels or \
                     length, or flat tensors on features, all of one kind",
                    vals.iter()
                        .map(Val::describe)
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            ));
        };
        // Keras' axis for this layout.
        let keras_axis = match (&vals[0], self.format, internal) {
            (Val::Flat { .. }, ..) => -1,
            (_, DataFormat::ChannelsFirst, d) => d as i64,
            (_, DataFormat::ChannelsLast, 1) => -1,
            (_, DataFormat::ChannelsLast, _) => 1,
        };
        let inbound: Vec<String> = vals
            .iter()
            .map(|v| v.node().unwrap_or_default().to_string())
            .collect();
        let inbound: Vec<&str> = inbound.iter().map(String::as_str).collect();
        let (name, shape) = self.push(
            node,
            at,
            &inbound,
            LayerConfig::Concatenate(ConcatenateConfig::new(keras_axis)),
        )?;
        Ok(match (shape, &vals[0]) {
            (FeatureShape::Seq { channels, length }, Val::SeqT(_)) => Val::SeqT(Seq {
                node: name,
                channels,
                length,
            }),
            (shape, _) => Self::value(shape, name),
        })
    }

    fn constant(&mut self, node: &NodeProto, at: &At) -> Result<Val, OnnxError> {
        let out = node.output.first().map_or("", String::as_str);
        let [a] = node.attribute.as_slice() else {
            return Err(at.unsupported("value", "a Constant holds exactly one attribute"));
        };
        let c = match a.name.as_str() {
            "value" => match a.t.as_ref() {
                Some(t) => tensor::read(t, out)?,
                None => return Err(at.unsupported("value", "holds no tensor")),
            },
            "value_float" => Const {
                dims: vec![],
                values: Values::F32(vec![a.f]),
            },
            "value_floats" => Const {
                dims: vec![a.floats.len()],
                values: Values::F32(a.floats.clone()),
            },
            "value_int" => Const {
                dims: vec![],
                values: Values::I64(vec![a.i]),
            },
            "value_ints" => Const {
                dims: vec![a.ints.len()],
                values: Values::I64(a.ints.clone()),
            },
            other => {
                return Err(at.unsupported(other, "widen reads numeric constants only"));
            }
        };
        Ok(Val::Const(Rc::new(c)))
    }

    // --------------------------------------------------------------------- length ops

    /// A sequence (or its transposed view) and the ONNX axis of its length.
    fn length_axis(x: &Val) -> Option<(Seq, usize)> {
        match x {
            Val::Seq(s) => Some((s.clone(), 2)),
            Val::SeqT(s) => Some((s.clone(), 1)),
            _ => None,
        }
    }

    /// A sequence and the ONNX axis of its length, or an error saying what the op does.
    fn length_axis_of(x: &Val, at: &At, does: &str) -> Result<(Seq, usize), OnnxError> {
        Self::length_axis(x).ok_or_else(|| Self::is_not(x, at, "input 0", does))
    }

    /// Pushes a length op on `seq` (the sequence `x` is or views); a transposed view stays one.
    fn push_keeping_view(
        &mut self,
        node: &NodeProto,
        at: &At,
        seq: &Seq,
        x: Val,
        config: LayerConfig,
    ) -> Result<Val, OnnxError> {
        let (name, shape) = self.push(node, at, &[&seq.node], config)?;
        Ok(match (x, shape) {
            (Val::SeqT(_), FeatureShape::Seq { channels, length }) => Val::SeqT(Seq {
                node: name,
                channels,
                length,
            }),
            (_, shape) => Self::value(shape, name),
        })
    }

    fn pad(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["mode", "pads", "value"])?;
        let x = self.required(node, 0, at)?;
        let (seq, axis) = Self::length_axis_of(&x, at, "widen pads sequences")?;
        only_string(
            attrs,
            at,
            ("mode", "constant"),
            "widen pads with zeros (mode `constant`) only",
        )?;
        let (pads, value, axes) = if self.opset >= 11 {
            let pads = self
                .int_input(node, 1, at)?
                .ok_or_else(|| at.unsupported("input 1", "the pads are missing"))?;
            let value = match self.konst(node, 2, at)? {
                None => 0.0,
                Some(c) => c.scalar().unwrap_or(f64::NAN),
            };
            (pads, value, self.int_input(node, 3, at)?)
        } else {
            (
                attrs.ints("pads")?.unwrap_or_default().to_vec(),
                attrs.float("value")?.map_or(0.0, f64::from),
                None,
            )
        };
        if value != 0.0 {
            return Err(
                at.unsupported("value", format!("pads with {value}; widen pads with zeros"))
            );
        }
        let axes: Vec<usize> = match axes {
            Some(a) => axes_of(&a, 3, at, "input 3")?,
            None => vec![0, 1, 2],
        };
        if pads.len() != 2 * axes.len() {
            return Err(at.unsupported(
                "pads",
                format!("has {} entries for {} axes", pads.len(), axes.len()),
            ));
        }
        let n = axes.len();
        let mut lr = (0i64, 0i64);
        for (j, &a) in axes.iter().enumerate() {
            let (b, e) = (pads[j], pads[j + n]);
            if a == axis {
                lr = (b, e);
            } else if (b, e) != (0, 0) {
                return Err(at.unsupported(
                    "pads",
                    format!("{pads:?} pads axis {a}; widen pads the length axis ({axis}) only"),
                ));
            }
        }
        let config = match lr {
            (0, 0) => return Ok(x),
            (b, e) if b >= 0 && e >= 0 => LayerConfig::ZeroPadding1d(ZeroPaddingConfig {
                padding: [b as usize, e as usize],
            }),
            (b, e) if b <= 0 && e <= 0 => LayerConfig::Cropping1d(CroppingConfig {
                cropping: [b.unsigned_abs() as usize, e.unsigned_abs() as usize],
            }),
            _ => {
                return Err(
                    at.unsupported("pads", format!("{pads:?} pads one end and crops the other"))
                );
            }
        };
        self.push_keeping_view(node, at, &seq, x, config)
    }

    fn slice(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["starts", "ends", "axes"])?;
        let x = self.required(node, 0, at)?;
        let (seq, axis) =
            Self::length_axis_of(&x, at, "widen slices sequences along their length")?;
        let (starts, ends, axes, steps) = if self.opset >= 10 {
            let need = |v: Option<Vec<i64>>, what: &str| {
                v.ok_or_else(|| at.unsupported(what, "is missing"))
            };
            (
                need(self.int_input(node, 1, at)?, "input 1")?,
                need(self.int_input(node, 2, at)?, "input 2")?,
                self.int_input(node, 3, at)?,
                self.int_input(node, 4, at)?,
            )
        } else {
            (
                attrs.ints("starts")?.unwrap_or_default().to_vec(),
                attrs.ints("ends")?.unwrap_or_default().to_vec(),
                attrs.ints("axes")?.map(<[i64]>::to_vec),
                None,
            )
        };
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let norm = axes_of(&axes, 3, at, "axes")?;
        let steps_ok = steps.as_deref().is_none_or(|s| s.iter().all(|&s| s == 1));
        if norm != [axis] || starts.len() != 1 || ends.len() != 1 || !steps_ok {
            return Err(at.unsupported(
                "axes",
                format!(
                    "slices axes {axes:?} (starts {starts:?}, ends {ends:?}, steps {steps:?}); \
                     widen crops the length axis ({axis}) with step 1 only"
                ),
            ));
        }
        let (s, e) = (starts[0], ends[0]);
        let len = seq.length.map(|l| l as i64);
        let left = match (s, len) {
            (s, _) if s >= 0 => Some(s),
            (s, Some(l)) => Some((l + s).max(0)),
            _ => None,
        };
        let right = match (e, len) {
            (e, Some(l)) if e >= l => Some(0),
            (e, _) if e >= i64::MAX / 2 => Some(0),
            (e, _) if e < 0 => Some(-e),
            (e, Some(l)) => Some(l - e),
            _ => None,
        };
        let (Some(left), Some(right)) = (left, right) else {
            return Err(at.unsupported(
                "input 1",
                format!(
                    "slices [{s}, {e}) of a dynamic length: widen crops a fixed number of \
                     steps at each end"
                ),
            ));
        };
        if (left, right) == (0, 0) {
            return Ok(x);
        }
        let config = LayerConfig::Cropping1d(CroppingConfig {
            cropping: [left as usize, right as usize],
        });
        self.push_keeping_view(node, at, &seq, x, config)
    }

    fn resize(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        let upsample = node.op_type == "Upsample";
        if upsample {
            attrs.only(&["mode", "scales"])?;
        } else {
            attrs.only(&[
                "mode",
                "coordinate_transformation_mode",
                "nearest_mode",
                "cubic_coeff_a",
                "exclude_outside",
                "extrapolation_value",
                "antialias",
                "axes",
                "keep_aspect_ratio_policy",
            ])?;
        }
        let x = Self::seq_of(self.required(node, 0, at)?, at, "input 0")?;
        only_string(
            attrs,
            at,
            ("mode", "nearest"),
            "widen's UpSampling1D repeats steps (mode `nearest`)",
        )?;
        if !upsample {
            let ctm = attrs
                .string("coordinate_transformation_mode")?
                .unwrap_or_else(|| "half_pixel".into());
            let nearest = attrs
                .string("nearest_mode")?
                .unwrap_or_else(|| "round_prefer_floor".into());
            // With an integer scale s, output i must read input floor(i / s).
            let exact = match ctm.as_str() {
                "asymmetric" => nearest == "floor",
                "half_pixel" | "pytorch_half_pixel" => {
                    matches!(nearest.as_str(), "round_prefer_floor" | "round_prefer_ceil")
                }
                _ => false,
            };
            if !exact {
                return Err(at.unsupported(
                    "coordinate_transformation_mode",
                    format!(
                        "`{}` with nearest_mode `{}` does not repeat each step; widen maps \
                         asymmetric + floor (torch's nn.Upsample) or half_pixel + round",
                        widen_layers::printable(&ctm),
                        widen_layers::printable(&nearest)
                    ),
                ));
            }
        }
        let axes = if upsample {
            None
        } else {
            attrs.ints("axes")?.map(<[i64]>::to_vec)
        };
        let scales: Option<Vec<f32>> = if upsample {
            match attrs.floats("scales")? {
                Some(s) => Some(s.to_vec()),
                None => match self.konst(node, 1, at)? {
                    Some(c) => Some(Self::floats(&c, "input 1", at)?),
                    None => None,
                },
            }
        } else {
            let i = if self.opset >= 11 { 2 } else { 1 };
            match self.konst(node, i, at)? {
                Some(c) if c.len() > 0 => Some(Self::floats(&c, &format!("input {i}"), at)?),
                _ => None,
            }
        };
        let axes: Vec<usize> = match &axes {
            Some(a) => axes_of(a, 3, at, "axes")?,
            None => vec![0, 1, 2],
        };
        let length_at = axes.iter().position(|&a| a == 2);
        let size = match (scales, length_at) {
            (Some(s), Some(j)) if s.len() == axes.len() => {
                let others_one = s.iter().enumerate().all(|(i, &v)| i == j || v == 1.0);
                let f = s[j];
                (others_one && f >= 1.0 && f.fract() == 0.0 && f < 1e6).then_some(f as usize)
            }
            (None, Some(j)) if !upsample && self.opset >= 11 => {
                let sizes = self.int_input(node, 3, at)?.unwrap_or_default();
                match (sizes.get(j), x.length) {
                    (Some(&out), Some(l)) if sizes.len() == axes.len() && out > 0 => {
                        let out = out as usize;
                        out.is_multiple_of(l).then_some(out / l)
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let Some(size) = size else {
            return Err(at.unsupported(
                "scales",
                "widen's UpSampling1D repeats each step an integer number of times: scales \
                 [1, 1, s] (or sizes [N, C, s·L] on a fixed length)",
            ));
        };
        if size == 1 {
            return Ok(Val::Seq(x));
        }
        let (name, shape) = self.push(
            node,
            at,
            &[&x.node],
            LayerConfig::UpSampling1d(UpSamplingConfig { size }),
        )?;
        Ok(Self::value(shape, name))
    }

    // ------------------------------------------------------------------------- recurrent

    /// Shape arithmetic (`Shape`, and integer ops on its result) becomes [`Val::Symbolic`];
    /// `Expand` / `ConstantOfShape` of zeros over it becomes [`Val::Zeros`]: how torch builds a
    /// recurrent op's zero initial state for the batch at hand. `None`: not shape arithmetic.
    fn shape_arithmetic(
        &mut self,
        node: &NodeProto,
        at: &At,
        attrs: &Attrs,
    ) -> Result<Option<Val>, OnnxError> {
        let op = node.op_type.as_str();
        if crate::fold::OPS.contains(&op) {
            let mut consts = Vec::with_capacity(node.input.len());
            let mut all = true;
            for i in 0..node.input.len() {
                match self.input(node, i, at)? {
                    None => consts.push(None),
                    Some(Val::Const(c)) => consts.push(Some(c)),
                    Some(_) => all = false,
                }
            }
            if all && !consts.is_empty() {
                let refs: Vec<Option<&Const>> = consts.iter().map(|c| c.as_deref()).collect();
                if let Some(c) = crate::fold::fold(node, at, attrs, &refs, self.opset)? {
                    return Ok(Some(Val::Const(Rc::new(c))));
                }
            }
        }
        let int_like = |v: &Val| match v {
            Val::Symbolic => true,
            Val::Const(c) => c.ints().is_some(),
            _ => false,
        };
        match op {
            "Shape" => {
                attrs.only(&["start", "end"])?;
                let x = self.required(node, 0, at)?;
                Self::no_const(&x, at, "input 0")?;
                Ok(Some(Val::Symbolic))
            }
            "Gather" | "Unsqueeze" | "Squeeze" | "Concat" | "Cast" | "Slice" | "Reshape"
            | "Add" | "Sub" | "Mul" | "Div" => {
                let mut vals = Vec::with_capacity(node.input.len());
                for i in 0..node.input.len() {
                    if let Some(v) = self.input(node, i, at)? {
                        vals.push(v);
                    }
                }
                let symbolic = vals.iter().any(|v| matches!(v, Val::Symbolic));
                Ok((symbolic && vals.iter().all(int_like)).then_some(Val::Symbolic))
            }
            "Expand" | "ConstantOfShape" => {
                let zeros = if op == "Expand" {
                    attrs.only(&[])?;
                    match self.required(node, 0, at)? {
                        Val::Zeros => true,
                        Val::Const(c) => c.floats().is_some_and(|v| v.iter().all(|&x| x == 0.0)),
                        _ => false,
                    }
                } else {
                    attrs.only(&["value"])?;
                    match node.attribute.first().and_then(|a| a.t.as_ref()) {
                        None => true,
                        Some(t) => tensor::read(t, "value")?.scalar().is_some_and(|v| v == 0.0),
                    }
                };
                let shape = self.required(node, usize::from(op == "Expand"), at)?;
                if zeros && int_like(&shape) {
                    Ok(Some(Val::Zeros))
                } else {
                    Err(at.unsupported(
                        "input 0",
                        "widen maps an Expand / ConstantOfShape of zeros only (a recurrent \
                         op's initial state)",
                    ))
                }
            }
            _ => Ok(None),
        }
    }

    /// `Gather` of one step along the length: Cropping1D to that step (then Flatten when the
    /// index is a scalar, which drops the axis). torch writes `out[:, -1, :]` this way.
    fn gather(&mut self, node: &NodeProto, at: &At, attrs: &Attrs) -> Result<Val, OnnxError> {
        attrs.only(&["axis"])?;
        let x = self.required(node, 0, at)?;
        if let Val::Lead1 {
            node: from,
            features,
        } = &x
        {
            // `h_n[-1]` / `h_n[0]`: the one direction's last state.
            let indices = self.required_const(node, 1, at)?;
            let one = matches!(indices.ints(), Some(&[0 | -1]));
            if one && attrs.int("axis")?.unwrap_or(0) == 0 {
                return Ok(if indices.dims.is_empty() {
                    Val::Flat {
                        node: from.clone(),
                        features: *features,
                    }
                } else {
                    x.clone()
                });
            }
        }
        let (seq, length_axis) = match &x {
            Val::Seq(s) => (s.clone(), 2),
            Val::SeqT(s) => (s.clone(), 1),
            Val::SeqTime(s) => (s.clone(), 0),
            other => {
                return Err(Self::is_not(
                    other,
                    at,
                    "input 0",
                    "widen maps a Gather of one step of a sequence only",
                ));
            }
        };
        let axis = axes_of(&[attrs.int("axis")?.unwrap_or(0)], 3, at, "axis")?;
        let indices = self.required_const(node, 1, at)?;
        let index = match (indices.ints(), indices.dims.as_slice()) {
            (Some(&[k]), [] | [1]) => k,
            _ => {
                return Err(at.unsupported(
                    "input 1",
                    format!("gathers {:?}; widen maps one index", indices.dims),
                ));
            }
        };
        let Some(length) = seq.length.filter(|_| axis == [length_axis]) else {
            return Err(at.unsupported(
                "axis",
                format!(
                    "gathers axis {axis:?} of {}; widen takes one step of a sequence of fixed \
                     length only",
                    x.describe()
                ),
            ));
        };
        let k = if index < 0 {
            index + length as i64
        } else {
            index
        };
        if !(0..length as i64).contains(&k) {
            return Err(at.unsupported(
                "input 1",
                format!("index {index} is outside a length of {length}"),
            ));
        }
        let k = k as usize;
        let stem = stem_from(node, "cropping1d");
        let mut step = seq.clone();
        if length > 1 {
            let (name, _) = self.push_as(
                &format!("{stem}_step"),
                at,
                &[&seq.node],
                LayerConfig::Cropping1d(CroppingConfig {
                    cropping: [k, length - 1 - k],
                }),
            )?;
            step = Seq {
                node: name,
                channels: seq.channels,
                length: Some(1),
            };
        }
        if indices.dims.is_empty() {
            return self.flatten_seq(node, at, step, false);
        }
        Ok(match x {
            Val::Seq(_) => Val::Seq(step),
            Val::SeqT(_) => Val::SeqT(step),
            _ => Val::SeqTime(step),
        })
    }

    /// ONNX `LSTM` / `GRU` (forward, default activations, zero initial state) → widen's LSTM /
    /// GRU, the weights moved to Keras' layout and gate order.
    fn recurrent(
        &mut self,
        node: &NodeProto,
        at: &At,
        attrs: &Attrs,
        lstm: bool,
    ) -> Result<Val, OnnxError> {
        attrs.only(&[
            "activation_alpha",
            "activation_beta",
            "activations",
            "clip",
            "direction",
            "hidden_size",
            "input_forget",
            "layout",
            "linear_before_reset",
        ])?;
        for (name, why) in [
            ("clip", "a cell clip"),
            ("activation_alpha", "activation parameters"),
            ("activation_beta", "activation parameters"),
        ] {
            if node.attribute.iter().any(|a| a.name == name) {
                return Err(at.unsupported(name, format!("{why}: widen's cells have none")));
            }
        }
        only_string(
            attrs,
            at,
            ("direction", "forward"),
            "widen's recurrent layers run forward",
        )?;
        if attrs.int("layout")?.unwrap_or(0) != 0 {
            return Err(at.unsupported("layout", "is 1 (batch-major); widen maps layout 0"));
        }
        if attrs.int("input_forget")?.unwrap_or(0) != 0 {
            return Err(at.unsupported("input_forget", "coupled input and forget gates"));
        }
        let defaults: &[&str] = if lstm {
            &["Sigmoid", "Tanh", "Tanh"]
        } else {
            &["Sigmoid", "Tanh"]
        };
        if let Some(a) = node.attribute.iter().find(|a| a.name == "activations") {
            let given: Vec<String> = a
                .strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect();
            if given != defaults {
                return Err(at.unsupported(
                    "activations",
                    format!("are {given:?}; widen's cells use {defaults:?}"),
                ));
            }
        }
        let h = attrs
            .int("hidden_size")?
            .and_then(|h| usize::try_from(h).ok())
            .filter(|&h| h > 0)
            .ok_or_else(|| at.unsupported("hidden_size", "is missing or not positive"))?;
        let gates = if lstm { 4 } else { 3 };
        let lbr = !lstm && attrs.int("linear_before_reset")?.unwrap_or(0) != 0;
        let x = match self.required(node, 0, at)? {
            Val::SeqTime(s) => s,
            other => {
                return Err(at.unsupported(
                    "input 0",
                    format!(
                        "is {}; an ONNX recurrent op reads [length, batch, channels] (a \
                         Transpose of widen's sequence)",
                        other.describe()
                    ),
                ));
            }
        };
        let c = x.channels;
        let gh = gates * h;
        let matrix = |me: &mut Self, i: usize, cols: usize| -> Result<Vec<f32>, OnnxError> {
            let m = me.required_const(node, i, at)?;
            if m.dims != [1, gh, cols] {
                return Err(at.unsupported(
                    &format!("input {i}"),
                    format!("has dims {:?}, expected [1, {gh}, {cols}]", m.dims),
                ));
            }
            Self::floats(&m, &format!("input {i}"), at)
        };
        let w = matrix(self, 1, c)?;
        let r = matrix(self, 2, h)?;
        let b = match self.konst(node, 3, at)? {
            None => None,
            Some(b) if b.dims == [1, 2 * gh] => Some(Self::floats(&b, "input 3", at)?),
            Some(b) => {
                return Err(at.unsupported(
                    "input 3",
                    format!("has dims {:?}, expected [1, {}]", b.dims, 2 * gh),
                ));
            }
        };
        let last_input = if lstm { 7 } else { 5 };
        for i in 4..=last_input {
            let what = match i {
                4 => "sequence_lens",
                5 => "initial_h",
                6 => "initial_c",
                _ => "P (peepholes)",
            };
            match self.input(node, i, at)? {
                None | Some(Val::Zeros) => {}
                Some(Val::Const(z))
                    if (5..=6).contains(&i)
                        && z.floats().is_some_and(|v| v.iter().all(|&x| x == 0.0)) => {}
                Some(other) => {
                    return Err(at.unsupported(
                        &format!("input {i}"),
                        format!(
                            "{what} is {}; widen's recurrent layers start from zeros and run \
                             every step",
                            other.describe()
                        ),
                    ));
                }
            }
        }
        let used = |i: usize| {
            node.output
                .get(i)
                .filter(|o| !o.is_empty())
                .is_some_and(|o| self.uses_of(o) > 0)
        };
        if used(2) {
            return Err(at.unsupported("output 2", "the last cell state: widen returns h only"));
        }
        if used(0) && used(1) {
            return Err(at.unsupported(
                "output 1",
                "both every step (Y) and the last state (Y_h) are read; a widen recurrent \
                 layer returns one of them",
            ));
        }
        let sequences = used(0);
        // Keras' gate g is ONNX's gate `order[g]` (LSTM: Keras i, f, c, o; ONNX i, o, f, c).
        let order: &[usize] = if lstm { &[0, 2, 3, 1] } else { &[0, 1, 2] };
        let keras = |m: &[f32], cols: usize| -> Vec<f32> {
            let mut out = vec![0.0f32; cols * gh];
            for (kg, &og) in order.iter().enumerate() {
                for j in 0..h {
                    for k in 0..cols {
                        out[k * gh + kg * h + j] = m[(og * h + j) * cols + k];
                    }
                }
            }
            out
        };
        let kernel = keras(&w, c);
        let recurrent = keras(&r, h);
        let reorder = |v: &[f32]| -> Vec<f32> {
            let mut out = vec![0.0f32; gh];
            for (kg, &og) in order.iter().enumerate() {
                out[kg * h..(kg + 1) * h].copy_from_slice(&v[og * h..(og + 1) * h]);
            }
            out
        };
        let bias: Option<(Vec<f32>, Vec<usize>)> = b.map(|b| {
            let (wb, rb) = (reorder(&b[..gh]), reorder(&b[gh..]));
            if lbr {
                ([wb, rb].concat(), vec![2, gh])
            } else {
                (wb.iter().zip(&rb).map(|(a, b)| a + b).collect(), vec![gh])
            }
        });
        let config = if lstm {
            LayerConfig::Lstm(
                LstmConfig::new(h)
                    .with_return_sequences(sequences)
                    .with_bias(bias.is_some()),
            )
        } else {
            LayerConfig::Gru(
                GruConfig::new(h)
                    .with_return_sequences(sequences)
                    .with_bias(bias.is_some())
                    .with_reset_after(lbr),
            )
        };
        let (name, _) = self.push(node, at, &[&x.node], config)?;
        self.weight(&name, "kernel", kernel, &[c, gh]);
        self.weight(&name, "recurrent_kernel", recurrent, &[h, gh]);
        if let Some((v, dims)) = bias {
            self.weight(&name, "bias", v, &dims);
        }
        self.set(
            node,
            1,
            Val::Lead1 {
                node: name.clone(),
                features: h,
            },
        );
        Ok(Val::RnnSteps(Seq {
            node: name,
            channels: h,
            length: x.length,
        }))
    }

    // ------------------------------------------------------------------------------ finish

    fn finish(mut self, output: &str) -> Result<(ModelSpec, crate::Weights), OnnxError> {
        let model = |reason: String| OnnxError::Model { reason };
        let out = self.values.get(output).cloned().ok_or_else(|| {
            model(format!(
                "the graph output `{}` is not computed by any node",
                widen_layers::printable(output)
            ))
        })?;
        let last = match (&out, self.format) {
            (Val::Seq(s), DataFormat::ChannelsFirst) | (Val::SeqT(s), DataFormat::ChannelsLast) => {
                s.node.clone()
            }
            (Val::Flat { node, .. }, _) => node.clone(),
            (other, _) => {
                return Err(model(format!(
                    "the output `{}` is {}; a widen model returns [batch, features] or a \
                     sequence in its input's layout{}",
                    widen_layers::printable(output),
                    other.describe(),
                    if matches!(other, Val::Pooled { .. }) {
                        " (flatten the pooled output)"
                    } else {
                        ""
                    }
                )));
            }
        };
        if last == self.spec.input_name {
            return Err(model(
                "the graph computes nothing (its output is its input)".into(),
            ));
        }
        // Only what the output depends on (ONNX allows dead branches; a widen graph does not).
        let mut keep = vec![false; self.spec.layers.len()];
        let mut stack = vec![last];
        while let Some(n) = stack.pop() {
            if let Some(&i) = self.layer_of.get(&n)
                && !keep[i]
            {
                keep[i] = true;
                stack.extend(self.spec.layers[i].inbound.iter().cloned());
            }
        }
        let layers = std::mem::take(&mut self.spec.layers);
        let mut kept: Vec<LayerSpec> = layers
            .into_iter()
            .zip(&keep)
            .filter_map(|(l, &k)| k.then_some(l))
            .collect();
        last_steps(&mut kept, &self.spec);
        fuse_activations(&mut kept);
        let names: HashSet<&str> = kept.iter().map(|l| l.name.as_str()).collect();
        let weights: Vec<_> = self
            .weights
            .into_iter()
            .filter(|(l, _, _)| names.contains(l.as_str()))
            .collect();
        self.spec.layers = kept;
        self.spec.resolve().map_err(OnnxError::build)?;
        Ok((self.spec, weights))
    }
}

/// `LSTM/GRU(every step) → Cropping1D(to the last step) → Flatten`, each read only by the
/// next, is the layer returning its last state: torch's `out[:, -1, :]`.
fn last_steps(layers: &mut Vec<LayerSpec>, spec: &ModelSpec) {
    let mut probe = spec.clone();
    probe.layers = layers.clone();
    let Ok(resolved) = probe.resolve() else {
        return;
    };
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, l) in layers.iter().enumerate() {
        for from in &l.inbound {
            readers.entry(from.as_str()).or_default().push(i);
        }
    }
    let sole = |name: &str| match readers.get(name).map(Vec::as_slice) {
        Some(&[r]) => Some(r),
        _ => None,
    };
    let mut drop = HashSet::new();
    let mut rename: HashMap<String, String> = HashMap::new();
    let mut flip = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let steps = match &l.config {
            LayerConfig::Lstm(c) => c.return_sequences,
            LayerConfig::Gru(c) => c.return_sequences,
            _ => false,
        };
        let Some(FeatureShape::Seq {
            length: Some(len), ..
        }) = resolved.shapes.get(i).copied()
        else {
            continue;
        };
        if !steps || len < 2 {
            continue;
        }
        let Some(crop) = sole(&l.name) else { continue };
        let LayerConfig::Cropping1d(c) = &layers[crop].config else {
            continue;
        };
        if c.cropping != [len - 1, 0] {
            continue;
        }
        let Some(flat) = sole(&layers[crop].name) else {
            continue;
        };
        if layers[flat].config != LayerConfig::Flatten {
            continue;
        }
        flip.push(i);
        drop.insert(crop);
        drop.insert(flat);
        rename.insert(layers[flat].name.clone(), l.name.clone());
    }
    for i in flip {
        match &mut layers[i].config {
            LayerConfig::Lstm(c) => c.return_sequences = false,
            LayerConfig::Gru(c) => c.return_sequences = false,
            _ => {}
        }
    }
    let mut i = 0;
    layers.retain(|_| {
        i += 1;
        !drop.contains(&(i - 1))
    });
    for l in layers.iter_mut() {
        for from in &mut l.inbound {
            if let Some(r) = rename.get(from) {
                *from = r.clone();
            }
        }
    }
}

/// Folds an activation layer into the Conv1D or Dense before it when nothing else reads that
/// layer and its own activation is linear (the same function: widen applies a layer's
/// activation after its bias, and the softmax axis follows the model's layout either way).
fn fuse_activations(layers: &mut Vec<LayerSpec>) {
    let mut uses: HashMap<String, usize> = HashMap::new();
    for l in layers.iter() {
        for i in &l.inbound {
            *uses.entry(i.clone()).or_insert(0) += 1;
        }
    }
    let mut rename: HashMap<String, String> = HashMap::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<LayerSpec> = Vec::with_capacity(layers.len());
    for mut l in layers.drain(..) {
        for i in &mut l.inbound {
            if let Some(r) = rename.get(i) {
                *i = r.clone();
            }
        }
        if let (LayerConfig::Activation(a), [from]) = (&l.config, l.inbound.as_slice())
            && uses.get(from) == Some(&1)
            && let Some(&j) = index.get(from)
        {
            let slot = match &mut out[j].config {
                LayerConfig::Conv1d(c) if c.activation == Activation::Linear => {
                    Some(&mut c.activation)
                }
                LayerConfig::Dense(d) if d.activation == Activation::Linear => {
                    Some(&mut d.activation)
                }
                _ => None,
            };
            if let Some(slot) = slot {
                *slot = *a;
                let from = from.clone();
                let n = uses.get(&l.name).copied().unwrap_or(0);
                uses.insert(from.clone(), n);
                rename.insert(l.name.clone(), from);
                continue;
            }
        }
        index.insert(l.name.clone(), out.len());
        out.push(l);
    }
    *layers = out;
}
