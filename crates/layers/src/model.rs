//! The model: a graph of named layers (Keras functional semantics: each layer lists the layers
//! it reads), with shapes inferred at build time and forward passes that check their input and
//! return `Result` instead of panicking. A chain of layers is the special case where each layer
//! reads the one before it; [`Sequential`] is the same type under the name Keras users know.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::layer::{BuildContext, ParamInfo, ShapeContext};
use crate::{
    Activation, BatchNormConfig, Conv1dConfig, DataFormat, FeatureShape, Layer, LayerConfig,
    LayerError, Mode, Value, WeightInfo, param_seed,
};

/// The input's name when a spec does not give one (Keras calls it `input_layer`).
pub const DEFAULT_INPUT_NAME: &str = "input";

/// What the model accepts: channels (fixed), length (fixed or variable) and layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSpec {
    /// Input channels.
    pub channels: usize,
    /// Input length; `None` accepts any length long enough for the stack.
    #[serde(default)]
    pub length: Option<usize>,
    /// Layout of the 3-D input (Keras: channels-last).
    #[serde(default)]
    pub data_format: DataFormat,
}

impl InputSpec {
    /// `channels` inputs of any length, channels-last.
    pub fn new(channels: usize) -> Self {
        Self {
            channels,
            length: None,
            data_format: DataFormat::ChannelsLast,
        }
    }
    /// Fixes the length.
    pub fn with_length(mut self, length: usize) -> Self {
        self.length = Some(length);
        self
    }
    /// Sets the layout.
    pub fn with_data_format(mut self, data_format: DataFormat) -> Self {
        self.data_format = data_format;
        self
    }
}

/// A named layer configuration and the layers it reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// Unique name within the model.
    pub name: String,
    /// The names of the layers (or the input) this layer reads, in order. Empty means the
    /// layer before it (the input, for the first): how version-1 chains are stored.
    #[serde(default)]
    pub inbound: Vec<String>,
    /// What the layer is.
    #[serde(flatten)]
    pub config: LayerConfig,
}

impl LayerSpec {
    /// A layer reading `inbound`.
    pub fn new(name: &str, inbound: &[&str], config: LayerConfig) -> Self {
        Self {
            name: name.to_string(),
            inbound: inbound.iter().map(|s| s.to_string()).collect(),
            config,
        }
    }
}

/// The architecture of a [`Model`]: everything but the weights. Layers are listed in an order
/// where every layer comes after the layers it reads; the last layer is the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "SpecFile", into = "SpecFile")]
pub struct ModelSpec {
    /// The input.
    pub input: InputSpec,
    /// The input's name, which layers list in `inbound`.
    pub input_name: String,
    /// The layers, in topological order.
    pub layers: Vec<LayerSpec>,
}

/// `ModelSpec` as stored: the input's name sits inside `input`, as in Keras' `InputLayer`.
#[derive(Clone, Serialize, Deserialize)]
struct SpecFile {
    input: InputFile,
    layers: Vec<LayerSpec>,
}

#[derive(Clone, Serialize, Deserialize)]
struct InputFile {
    #[serde(default = "default_input_name")]
    name: String,
    #[serde(flatten)]
    spec: InputSpec,
}

fn default_input_name() -> String {
    DEFAULT_INPUT_NAME.to_string()
}

impl From<SpecFile> for ModelSpec {
    fn from(f: SpecFile) -> Self {
        Self {
            input: f.input.spec,
            input_name: f.input.name,
            layers: f.layers,
        }
    }
}

impl From<ModelSpec> for SpecFile {
    fn from(s: ModelSpec) -> Self {
        Self {
            input: InputFile {
                name: s.input_name,
                spec: s.input,
            },
            layers: s.layers,
        }
    }
}

/// A spec's graph, checked: for each layer the node indices it reads (node 0 is the input,
/// node `i + 1` layer `i`), and each layer's output shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Per layer, the nodes it reads.
    pub inbound: Vec<Vec<usize>>,
    /// Per layer, its output shape (batch excluded).
    pub shapes: Vec<FeatureShape>,
    /// Per node (input first), how many layer inputs read it.
    pub uses: Vec<usize>,
}

impl ModelSpec {
    /// An empty model on `input`.
    pub fn new(input: InputSpec) -> Self {
        Self {
            input,
            input_name: DEFAULT_INPUT_NAME.to_string(),
            layers: Vec::new(),
        }
    }

    /// Renames the input.
    pub fn with_input_name(mut self, name: &str) -> Self {
        self.input_name = name.to_string();
        self
    }

    /// A name not yet taken, from Keras' stem rule (`conv1d`, `conv1d_1`, ...).
    pub fn fresh_name(&self, stem: &str) -> String {
        let taken =
            |name: &str| name == self.input_name || self.layers.iter().any(|l| l.name == name);
        let mut name = stem.to_string();
        let mut i = 1;
        while taken(&name) {
            name = format!("{stem}_{i}");
            i += 1;
        }
        name
    }

    /// The name of the last node (the last layer, or the input of an empty model).
    pub fn last_name(&self) -> &str {
        self.layers
            .last()
            .map_or(self.input_name.as_str(), |l| l.name.as_str())
    }

    /// Appends a layer reading the previous one, with Keras' default name.
    pub fn push(self, config: LayerConfig) -> Self {
        let name = self.fresh_name(config.default_stem());
        self.push_named(&name, config)
    }

    /// Appends a layer reading the previous one, with an explicit name.
    pub fn push_named(mut self, name: &str, config: LayerConfig) -> Self {
        let inbound = vec![self.last_name().to_string()];
        self.layers.push(LayerSpec {
            name: name.to_string(),
            inbound,
            config,
        });
        self
    }

    /// Appends a layer reading `inbound` with Keras' default name, and returns its name (for
    /// building graphs in code).
    pub fn add<S: AsRef<str>>(&mut self, inbound: &[S], config: LayerConfig) -> String {
        let name = self.fresh_name(config.default_stem());
        let inbound: Vec<&str> = inbound.iter().map(AsRef::as_ref).collect();
        self.layers.push(LayerSpec::new(&name, &inbound, config));
        name
    }

    /// The names layer `index` reads, with an empty `inbound` resolved to the layer before.
    pub fn inbound_names(&self, index: usize) -> Vec<&str> {
        match self.layers.get(index) {
            Some(l) if !l.inbound.is_empty() => l.inbound.iter().map(String::as_str).collect(),
            Some(_) if index == 0 => vec![self.input_name.as_str()],
            Some(_) => vec![self.layers[index - 1].name.as_str()],
            None => Vec::new(),
        }
    }

    /// The same spec with every `inbound` written out (what version 2 stores).
    pub fn explicit(mut self) -> Self {
        for i in 0..self.layers.len() {
            let names: Vec<String> = self
                .inbound_names(i)
                .into_iter()
                .map(String::from)
                .collect();
            self.layers[i].inbound = names;
        }
        self
    }

    /// Puts a layer between the input and everything that reads it (a projection, a
    /// standardisation): the new layer comes first and reads the input; the layers that read the
    /// input read it instead.
    pub fn insert_after_input(&mut self, name: &str, config: LayerConfig) {
        let mut spec = std::mem::replace(self, ModelSpec::new(self.input)).explicit();
        for layer in &mut spec.layers {
            for from in &mut layer.inbound {
                if *from == spec.input_name {
                    *from = name.to_string();
                }
            }
        }
        let input = spec.input_name.clone();
        spec.layers
            .insert(0, LayerSpec::new(name, &[input.as_str()], config));
        *self = spec;
    }

    /// Removes layer `name` that reads one node, rewiring its readers to that node. Returns
    /// whether it was there.
    pub fn bypass(&mut self, name: &str) -> bool {
        let mut spec = std::mem::replace(self, ModelSpec::new(self.input)).explicit();
        let Some(i) = spec.layers.iter().position(|l| l.name == name) else {
            *self = spec;
            return false;
        };
        if spec.layers[i].inbound.len() != 1 {
            *self = spec;
            return false;
        }
        let removed = spec.layers.remove(i);
        let from = removed.inbound[0].clone();
        for layer in &mut spec.layers {
            for f in &mut layer.inbound {
                if *f == removed.name {
                    *f = from.clone();
                }
            }
        }
        *self = spec;
        true
    }

    /// Whether every layer reads exactly the layer before it.
    pub fn is_chain(&self) -> bool {
        (0..self.layers.len()).all(|i| {
            let names = self.inbound_names(i);
            let previous = if i == 0 {
                self.input_name.as_str()
            } else {
                self.layers[i - 1].name.as_str()
            };
            names == [previous]
        })
    }

    /// The layers reading node `name` (the input's name or a layer's), in order.
    pub fn consumers(&self, name: &str) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| self.inbound_names(i).contains(&name))
            .collect()
    }

    /// Checks the graph (unique names, inbound names that exist and come earlier, every output
    /// used) and infers every layer's output shape, or says which layer cannot work and why.
    pub fn resolve(&self) -> Result<Resolved, LayerError> {
        let input = self.input;
        if input.channels == 0 || input.length == Some(0) {
            return Err(LayerError::config(
                "input",
                format!(
                    "channels and length must be > 0, got {} and {:?}",
                    input.channels, input.length
                ),
            ));
        }
        let mut index = std::collections::HashMap::with_capacity(self.layers.len() + 1);
        index.insert(self.input_name.as_str(), 0usize);
        let mut shapes: Vec<FeatureShape> = Vec::with_capacity(self.layers.len());
        let mut inbound = Vec::with_capacity(self.layers.len());
        let mut uses = vec![0usize; self.layers.len() + 1];
        let input_shape = FeatureShape::Seq {
            channels: input.channels,
            length: input.length,
        };
        for (i, spec) in self.layers.iter().enumerate() {
            let name = spec.name.as_str();
            let mut nodes = Vec::new();
            for from in self.inbound_names(i) {
                match index.get(from) {
                    Some(&n) => nodes.push(n),
                    None if from == name => {
                        return Err(LayerError::config(name, "a layer cannot read itself"));
                    }
                    None => {
                        let later = self.layers[i..].iter().any(|l| l.name == from);
                        return Err(LayerError::config(
                            name,
                            if later {
                                format!(
                                    "reads `{}`, which comes later: layers must be listed after \
                                     the layers they read (no cycles)",
                                    crate::printable(from)
                                )
                            } else {
                                format!(
                                    "reads `{}`, which is neither the input `{}` nor a layer",
                                    crate::printable(from),
                                    crate::printable(&self.input_name)
                                )
                            },
                        ));
                    }
                }
            }
            if index.insert(name, i + 1).is_some() {
                return Err(LayerError::config(
                    name,
                    if name == self.input_name {
                        "a layer has the input's name"
                    } else {
                        "duplicate layer name"
                    },
                ));
            }
            let in_shapes: Vec<FeatureShape> = nodes
                .iter()
                .map(|&n| if n == 0 { input_shape } else { shapes[n - 1] })
                .collect();
            let cx = ShapeContext {
                name,
                inputs: &in_shapes,
                data_format: input.data_format,
            };
            shapes.push(spec.config.output_shape(&cx)?);
            for &n in &nodes {
                uses[n] += 1;
            }
            inbound.push(nodes);
        }
        // One output: every other node must feed something, or it would silently do nothing.
        let last = self.layers.len();
        if let Some(node) = (0..last).find(|&n| uses[n] == 0) {
            let name = if node == 0 {
                self.input_name.as_str()
            } else {
                self.layers[node - 1].name.as_str()
            };
            return Err(LayerError::config(
                name,
                "its output is never used (a model has one output: the last layer)",
            ));
        }
        Ok(Resolved {
            inbound,
            shapes,
            uses,
        })
    }

    /// Infers every layer's output shape (see [`ModelSpec::resolve`]).
    pub fn infer_shapes(&self) -> Result<Vec<FeatureShape>, LayerError> {
        self.resolve().map(|r| r.shapes)
    }

    /// Every stored tensor, in layer order, worked out from the configs alone: a file can be
    /// checked before any device memory is spent.
    pub fn tensors(&self) -> Result<Vec<WeightInfo>, LayerError> {
        Ok(self
            .layer_params()?
            .into_iter()
            .flat_map(|(layer, params)| {
                params.into_iter().map(move |p| WeightInfo {
                    layer: layer.clone(),
                    param: p.name.to_string(),
                    shape: p.shape,
                })
            })
            .collect())
    }

    /// Each layer's name and stored tensors.
    pub fn layer_params(&self) -> Result<Vec<(String, Vec<ParamInfo>)>, LayerError> {
        let r = self.resolve()?;
        Ok(self
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let inputs = r.input_shapes(self, i);
                let cx = ShapeContext {
                    name: &l.name,
                    inputs: &inputs,
                    data_format: self.input.data_format,
                };
                (l.name.clone(), l.config.params(&cx))
            })
            .collect())
    }
}

impl Resolved {
    /// The shapes layer `i` reads.
    pub fn input_shapes(&self, spec: &ModelSpec, i: usize) -> Vec<FeatureShape> {
        self.inbound[i]
            .iter()
            .map(|&n| {
                if n == 0 {
                    FeatureShape::Seq {
                        channels: spec.input.channels,
                        length: spec.input.length,
                    }
                } else {
                    self.shapes[n - 1]
                }
            })
            .collect()
    }
}

/// A model: layers wired as a graph, with build-time shape inference and checked forward
/// passes. The layers, the spec and the wiring are private so they cannot drift apart.
#[derive(Module, Debug)]
pub struct Model {
    layers: Vec<Layer>,
    #[module(skip)]
    spec: ModelSpec,
    #[module(skip)]
    graph: Resolved,
}

/// Hands out node `node`'s value to one reader: the last reader takes it, the others clone it
/// (Burn tensors share their buffer), so a value is freed as soon as nothing needs it.
fn take(
    left: &mut [usize],
    values: &mut [Option<Value>],
    node: usize,
    reader: &str,
) -> Result<Value, LayerError> {
    left[node] = left[node].saturating_sub(1);
    let v = if left[node] == 0 {
        values[node].take()
    } else {
        values[node].clone()
    };
    v.ok_or_else(|| LayerError::config(reader, "an input was used up (a wiring bug)"))
}

/// The name Keras users know for a chain; every model is a graph, a chain included.
pub type Sequential = Model;

impl Model {
    /// Builds the model; layer `i`'s parameters come from `param_seed(seed, 1000 + i)` on the
    /// host, so a seed gives the same weights on every backend.
    pub fn new(spec: ModelSpec, seed: u64, device: &Device) -> Result<Self, LayerError> {
        let spec = spec.explicit();
        let graph = spec.resolve()?;
        // Parameters are drawn on the host and uploaded (two copies at once), and every layer
        // costs its module's bookkeeping besides: check the total before building anything.
        let params = spec
            .tensors()?
            .iter()
            .map(|w| {
                w.shape
                    .iter()
                    .fold(1u128, |a, &d| a.saturating_mul(d as u128))
            })
            .fold(0u128, u128::saturating_add);
        let bytes = params
            .saturating_mul(8)
            .saturating_add((spec.layers.len() as u128).saturating_mul(1024));
        widen_guard::budget().check(
            &format!(
                "building a model of {} layers and {params} parameters",
                spec.layers.len()
            ),
            bytes,
        )?;
        let mut layers = Vec::with_capacity(spec.layers.len());
        for (i, layer) in spec.layers.iter().enumerate() {
            let inputs = graph.input_shapes(&spec, i);
            let cx = BuildContext {
                shape: ShapeContext {
                    name: &layer.name,
                    inputs: &inputs,
                    data_format: spec.input.data_format,
                },
                seed: param_seed(seed, 1000 + i as u64),
                device,
            };
            layers.push(layer.config.build(&cx)?);
        }
        Ok(Self {
            layers,
            spec,
            graph,
        })
    }

    /// The same model (spec and every stored tensor) on `device`: how a model scored on an
    /// inference device goes back to an autodiff one for training. Built fresh, then each
    /// tensor copied through the host, as a checkpoint load does; nothing is frozen. (Burn's
    /// `Module::fork` of an inference model to the autodiff device left it unusable for
    /// `fit`, which found no autodiff device on it.)
    pub fn copy_to_device(&self, device: &Device) -> Result<Self, LayerError> {
        let mut out = Self::new(self.spec.clone(), 0, device)?;
        for w in self.weight_infos() {
            out.set_weight(&w.layer, &w.param, self.weight(&w.layer, &w.param)?)?;
        }
        Ok(out)
    }

    /// The layers, in the spec's order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The architecture (every `inbound` written out).
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Each layer's output shape, in layer order.
    pub fn shapes(&self) -> &[FeatureShape] {
        &self.graph.shapes
    }

    /// The nodes layer `i` reads (0 is the input, `j + 1` layer `j`).
    pub fn inbound(&self, i: usize) -> &[usize] {
        self.graph.inbound.get(i).map_or(&[], Vec::as_slice)
    }

    /// The input spec.
    pub fn input(&self) -> InputSpec {
        self.spec.input
    }

    /// The output shape (batch excluded).
    pub fn output_shape(&self) -> FeatureShape {
        self.graph
            .shapes
            .last()
            .copied()
            .unwrap_or(FeatureShape::Seq {
                channels: self.spec.input.channels,
                length: self.spec.input.length,
            })
    }

    /// The index of the layer called `name`.
    pub fn layer_index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name() == name)
    }

    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name() == name)
    }

    /// The layers reading the model input directly, in order.
    pub fn input_consumers(&self) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| self.graph.inbound[i].contains(&0))
            .collect()
    }

    /// Replaces every layer by `f(layer)`, which must keep its name and type (freezing,
    /// gradient masks): the wiring and the spec stay as they are.
    pub fn try_map_layers<E: From<LayerError>>(
        self,
        mut f: impl FnMut(Layer) -> Result<Layer, E>,
    ) -> Result<Self, E> {
        let Self {
            layers,
            spec,
            graph,
        } = self;
        let mut out = Vec::with_capacity(layers.len());
        for layer in layers {
            let (name, class) = (layer.name().to_string(), layer.keras_class());
            let new = f(layer)?;
            if new.name() != name || new.keras_class() != class {
                return Err(E::from(LayerError::config(
                    &name,
                    format!(
                        "a layer map replaced it by `{}` ({}): maps must keep names and types",
                        crate::printable(new.name()),
                        new.keras_class()
                    ),
                )));
            }
            out.push(new);
        }
        Ok(Self {
            layers: out,
            spec,
            graph,
        })
    }

    fn first_layer_name(&self) -> String {
        self.input_consumers().first().map_or_else(
            || "input".to_string(),
            |&i| self.layers[i].name().to_string(),
        )
    }

    /// Checks `x` against the input spec and returns it channels-first.
    fn enter(&self, x: Tensor<3>) -> Result<Tensor<3>, LayerError> {
        let input = self.spec.input;
        let dims = x.dims();
        let (channels, length) = match input.data_format {
            DataFormat::ChannelsLast => (dims[2], dims[1]),
            DataFormat::ChannelsFirst => (dims[1], dims[2]),
        };
        if channels != input.channels {
            return Err(LayerError::ChannelMismatch {
                layer: self.first_layer_name(),
                expected: input.channels,
                got: channels,
            });
        }
        let length_ok = input.length.is_none_or(|l| l == length);
        if dims[0] == 0 || length == 0 || !length_ok {
            let len = input
                .length
                .map_or("length > 0".to_string(), |l| l.to_string());
            let expected = match input.data_format {
                DataFormat::ChannelsLast => format!("[batch > 0, {len}, {}]", input.channels),
                DataFormat::ChannelsFirst => format!("[batch > 0, {}, {len}]", input.channels),
            };
            return Err(LayerError::InputShape {
                layer: self.first_layer_name(),
                expected,
                got: dims.to_vec(),
            });
        }
        Ok(match input.data_format {
            DataFormat::ChannelsLast => x.swap_dims(1, 2),
            DataFormat::ChannelsFirst => x,
        })
    }

    fn leave(&self, y: Value) -> Value {
        match (y, self.spec.input.data_format) {
            (Value::Seq(t), DataFormat::ChannelsLast) => Value::Seq(t.swap_dims(1, 2)),
            (y, _) => y,
        }
    }

    /// Runs the graph. `fuse` allows fused CPU heads; `keep` is told every node's value (node
    /// 0 the input) and returns `true` to stop there. Returns the last node's value computed.
    fn run(
        &self,
        x: Tensor<3>,
        mode: Mode,
        fuse: bool,
        mut keep: impl FnMut(usize, &Value) -> bool,
    ) -> Result<Value, LayerError> {
        let n = self.layers.len();
        let mut values: Vec<Option<Value>> = vec![None; n + 1];
        let mut left = self.graph.uses.clone();
        let x = Value::Seq(self.enter(x)?);
        if keep(0, &x) {
            return Ok(x);
        }
        values[0] = Some(x);
        let mut i = 0;
        let mut last = 0;
        while i < n {
            let name = self.layers[i].name();
            if fuse
                && let Some(end) = self.fusable_head(i, mode)
                && let Some(Value::Seq(x)) = values[self.graph.inbound[i][0]].as_ref()
                && let Some(y) = self.fused_head(i, end, x)
            {
                take(&mut left, &mut values, self.graph.inbound[i][0], name)?;
                values[end + 1] = Some(Value::Flat(y));
                last = end + 1;
                i = end + 1;
                continue;
            }
            let mut inputs = Vec::with_capacity(self.graph.inbound[i].len());
            for &node in &self.graph.inbound[i] {
                inputs.push(take(&mut left, &mut values, node, name)?);
            }
            let y = self.layers[i].forward_all(inputs, mode)?;
            if keep(i + 1, &y) {
                return Ok(y);
            }
            values[i + 1] = Some(y);
            last = i + 1;
            i += 1;
        }
        values[last]
            .take()
            .ok_or_else(|| LayerError::config("output", "the output was used up (a wiring bug)"))
    }

    /// The fused CPU heads a forward in `mode` may take, each as its first and last layer's
    /// names (they run only on an accelerated CPU device; elsewhere, and for layers not listed,
    /// layers run one by one): for `widen bench` to say which path a model takes.
    pub fn fused_heads(&self, mode: Mode) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.layers.len() {
            match self.fusable_head(i, mode) {
                Some(end) => {
                    out.push((
                        self.layers[i].name().to_string(),
                        self.layers[end].name().to_string(),
                    ));
                    i = end + 1;
                }
                None => i += 1,
            }
        }
        out
    }

    /// Where Conv1D → [BatchNorm in inference] → GlobalMax/AvgPool starts at layer `i` as a
    /// private chain (each reads only the one before, which nothing else reads), the index of
    /// the pool layer.
    fn fusable_head(&self, i: usize, mode: Mode) -> Option<usize> {
        let Some(Layer::Conv1d(conv)) = self.layers.get(i) else {
            return None;
        };
        if self.graph.inbound[i].len() != 1
            || !matches!(
                conv.config.activation,
                Activation::Linear | Activation::Relu
            )
        {
            return None;
        }
        let private =
            |j: usize| self.graph.inbound.get(j) == Some(&vec![j]) && self.graph.uses[j] == 1;
        let mut next = i + 1;
        if let Some(Layer::BatchNorm1d(bn)) = self.layers.get(next)
            && (mode == Mode::Inference || !bn.is_trainable())
            && private(next)
        {
            next += 1;
        }
        match self.layers.get(next) {
            Some(Layer::GlobalMaxPool1d(_) | Layer::GlobalAvgPool1d(_)) if private(next) => {
                Some(next)
            }
            _ => None,
        }
    }

    /// Runs layers `i..=end` (a head [`Model::fusable_head`] found) as one fused CPU op
    /// (widen-ops' `conv1d_global_pool`): the `[B, F, L]` activation is never materialised.
    /// `None` where the device does not allow it (the layers then run one by one, with the
    /// same result).
    fn fused_head(&self, i: usize, end: usize, x: &Tensor<3>) -> Option<Tensor<2>> {
        let Some(Layer::Conv1d(conv)) = self.layers.get(i) else {
            return None;
        };
        let activation = match conv.config.activation {
            Activation::Relu => widen_ops::cpu::Monotone::Relu,
            _ => widen_ops::cpu::Monotone::Linear,
        };
        let f = conv.weight.dims()[0];
        let device = x.device();
        let (scale, shift) = match self.layers.get(i + 1) {
            Some(Layer::BatchNorm1d(bn)) if end == i + 2 => bn.inference_affine(),
            _ => (Tensor::ones([f], &device), Tensor::zeros([f], &device)),
        };
        let pool = match self.layers.get(end) {
            Some(Layer::GlobalMaxPool1d(_)) => widen_ops::cpu::GlobalPool::Max,
            _ => widen_ops::cpu::GlobalPool::Avg,
        };
        let bias = conv.bias.as_ref().map(|b| b.val());
        widen_ops::cpu::conv1d_global_pool(
            x,
            &conv.weight.val(),
            bias.as_ref(),
            &conv.config.spec(),
            activation,
            &scale,
            &shift,
            pool,
        )
    }

    /// Runs the model in `mode`. 3-D outputs come back in the input's data format.
    pub fn forward_mode(&self, x: Tensor<3>, mode: Mode) -> Result<Value, LayerError> {
        let y = self.run(x, mode, true, |_, _| false)?;
        Ok(self.leave(y))
    }

    /// Inference forward (Keras `model(x, training=False)`).
    pub fn forward(&self, x: Tensor<3>) -> Result<Value, LayerError> {
        self.forward_mode(x, Mode::Inference)
    }

    /// Training forward (Keras `model(x, training=True)`): batch statistics, dropout; frozen
    /// layers still infer.
    pub fn forward_train(&self, x: Tensor<3>) -> Result<Value, LayerError> {
        self.forward_mode(x, Mode::Training)
    }

    /// Runs the layers needed for `name` and returns that layer's output (channels-first for
    /// sequences). Used by diagnostics.
    pub fn forward_until(&self, x: Tensor<3>, name: &str, mode: Mode) -> Result<Value, LayerError> {
        let Some(target) = self.layer_index(name) else {
            return Err(LayerError::config(
                name,
                "no layer with this name in the model",
            ));
        };
        self.run(x, mode, false, |node, _| node == target + 1)
    }

    /// Runs the model and returns the model input (channels-first, named `"input"`) followed
    /// by every layer's output in layer order (sequences channels-first), for diagnostics.
    pub fn forward_trace(
        &self,
        x: Tensor<3>,
        mode: Mode,
    ) -> Result<Vec<(String, Value)>, LayerError> {
        let mut trace = Vec::with_capacity(self.layers.len() + 1);
        self.run(x, mode, false, |node, v| {
            let name = match node {
                0 => "input".to_string(),
                n => self.layers[n - 1].name().to_string(),
            };
            trace.push((name, v.clone()));
            false
        })?;
        Ok(trace)
    }

    /// Freezes one layer (no gradients; BatchNorm and Dropout run in inference mode).
    pub fn freeze_layer(mut self, name: &str) -> Result<Self, LayerError> {
        let i = self
            .layer_index(name)
            .ok_or_else(|| LayerError::config(name, "no layer with this name in the model"))?;
        let layer = self.layers.remove(i).freeze();
        self.layers.insert(i, layer);
        Ok(self)
    }

    /// Unfreezes one layer.
    pub fn unfreeze_layer(mut self, name: &str) -> Result<Self, LayerError> {
        let i = self
            .layer_index(name)
            .ok_or_else(|| LayerError::config(name, "no layer with this name in the model"))?;
        let layer = self.layers.remove(i).unfreeze();
        self.layers.insert(i, layer);
        Ok(self)
    }

    /// Checks, against the memory budget (`widen_guard`), what a forward pass over `batch`
    /// sequences of `length` steps needs: in inference the most activations alive at once (a
    /// branch keeps its input alive until its last reader ran), in training every activation
    /// and its gradient, which autodiff keeps until the backward pass. A length the model
    /// refuses is left to [`Model::forward`].
    pub fn check_memory(
        &self,
        batch: usize,
        length: usize,
        training: bool,
    ) -> Result<(), LayerError> {
        let mut spec = self.spec.clone();
        if spec.input.length.is_some_and(|l| l != length) {
            return Ok(());
        }
        spec.input.length = Some(length);
        let Ok(r) = spec.resolve() else {
            return Ok(());
        };
        let size = |s: &FeatureShape| -> u128 {
            match *s {
                FeatureShape::Seq { channels, length } => {
                    (channels as u128).saturating_mul(length.unwrap_or(1) as u128)
                }
                FeatureShape::Flat { features } => features as u128,
            }
        };
        let input = (spec.input.channels as u128).saturating_mul(length as u128);
        let per_item = if training {
            r.shapes
                .iter()
                .map(size)
                .fold(input, u128::saturating_add)
                .saturating_mul(2)
        } else {
            let mut left = r.uses.clone();
            let mut alive = input;
            let mut peak = input;
            for (i, shape) in r.shapes.iter().enumerate() {
                let out = size(shape);
                peak = peak.max(alive.saturating_add(out));
                alive = alive.saturating_add(out);
                for &n in &r.inbound[i] {
                    left[n] = left[n].saturating_sub(1);
                    if left[n] == 0 {
                        let freed = if n == 0 {
                            input
                        } else {
                            size(&r.shapes[n - 1])
                        };
                        alive = alive.saturating_sub(freed);
                    }
                }
            }
            peak.saturating_mul(2)
        };
        widen_guard::budget().check(
            &format!(
                "{} the model on {batch} sequences of length {length}",
                if training { "training" } else { "running" }
            ),
            per_item.saturating_mul(batch as u128).saturating_mul(4),
        )?;
        Ok(())
    }

    /// Every stored tensor, in layer order.
    pub fn weight_infos(&self) -> Vec<WeightInfo> {
        self.spec.tensors().unwrap_or_default()
    }

    /// Reads `"<layer>.<param>"`.
    pub fn weight(&self, layer: &str, param: &str) -> Result<TensorData, LayerError> {
        self.layer(layer)
            .ok_or_else(|| LayerError::config(layer, "no layer with this name in the model"))?
            .weight(param)
    }

    /// Replaces `"<layer>.<param>"`; the shape must match and every value be finite.
    pub fn set_weight(
        &mut self,
        layer: &str,
        param: &str,
        data: TensorData,
    ) -> Result<(), LayerError> {
        self.layers
            .iter_mut()
            .find(|l| l.name() == layer)
            .ok_or_else(|| LayerError::config(layer, "no layer with this name in the model"))?
            .set_weight(param, data)
    }

    /// Keras-style `model.summary()`: layer (type), output shape, parameter count and, for a
    /// graph, Keras' "Connected to" column (`name[0][0]` per input); then the totals.
    pub fn summary(&self) -> String {
        let format = self.spec.input.data_format;
        let graph = !self.spec.is_chain();
        let params = self.spec.layer_params().unwrap_or_default();
        let count = |ps: &[ParamInfo], trainable: bool| -> usize {
            ps.iter()
                .filter(|p| p.trainable == trainable)
                .map(|p| p.shape.iter().product::<usize>())
                .sum()
        };
        let mut rows: Vec<[String; 4]> = Vec::with_capacity(self.layers.len() + 1);
        if graph {
            rows.push([
                format!("{} (InputLayer)", crate::printable(&self.spec.input_name)),
                FeatureShape::Seq {
                    channels: self.spec.input.channels,
                    length: self.spec.input.length,
                }
                .keras_text(format),
                "0".into(),
                "-".into(),
            ]);
        }
        let (mut trainable, mut frozen) = (0usize, 0usize);
        for (i, spec) in self.spec.layers.iter().enumerate() {
            let ps = params.get(i).map_or(&[][..], |p| p.1.as_slice());
            let (t, n) = (count(ps, true), count(ps, false));
            trainable += t;
            frozen += n;
            let connected = self
                .spec
                .inbound_names(i)
                .iter()
                .map(|n| format!("{}[0][0]", crate::printable(n)))
                .collect::<Vec<_>>()
                .join(", ");
            rows.push([
                format!(
                    "{} ({})",
                    crate::printable(&spec.name),
                    spec.config.keras_class()
                ),
                self.graph.shapes[i].keras_text(format),
                (t + n).to_string(),
                connected,
            ]);
        }
        let columns = if graph { 4 } else { 3 };
        let heads = ["Layer (type)", "Output Shape", "Param #", "Connected to"];
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                rows.iter()
                    .map(|r| r[c].chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(heads[c].len())
                    .max(if c == 2 { 10 } else { 12 })
            })
            .collect();
        let line = |cells: [&str; 4]| -> String {
            let mut s = String::new();
            for c in 0..columns {
                if c > 0 {
                    s += "  ";
                }
                if c == 2 {
                    s += &format!("{:>w$}", cells[c], w = widths[c]);
                } else {
                    s += &format!("{:<w$}", cells[c], w = widths[c]);
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let rule = "-".repeat(widths.iter().sum::<usize>() + 2 * (columns - 1));
        let mut out = format!(
            "Model: \"{}\"\n{rule}\n",
            if graph { "functional" } else { "sequential" }
        );
        out += &line(heads);
        out += &format!("{rule}\n");
        for r in &rows {
            out += &line([&r[0], &r[1], &r[2], &r[3]]);
        }
        out += &format!(
            "{rule}\nTotal params: {}\nTrainable params: {}\nNon-trainable params: {}\n",
            trainable + frozen,
            trainable,
            frozen
        );
        out
    }
}

/// `name` safe to print on a terminal: control characters (ANSI escapes among them) and the
/// invisible direction overrides are shown as `\u{..}` escapes instead of acting on the screen.
pub fn printable(name: &str) -> String {
    let hidden = |c: char| {
        c.is_control()
            || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !name.chars().any(hidden) {
        return name.to_string();
    }
    name.chars()
        .map(|c| {
            if hidden(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A convenience for stacks built in code: `ModelSpec::new(input).push(...)`.
pub fn keras_ex1(channels: usize, length: usize) -> ModelSpec {
    ModelSpec::new(InputSpec::new(channels).with_length(length))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(32, 3).with_activation(Activation::Relu),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
        .push(LayerConfig::GlobalMaxPool1d)
}

/// The seed's Example 3 stack: Conv1D(16, 3, relu) → Conv1D(32, 1, relu) → BatchNorm → GMP.
pub fn keras_ex3(channels: usize, length: usize) -> ModelSpec {
    ModelSpec::new(InputSpec::new(channels).with_length(length))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(16, 3).with_activation(Activation::Relu),
        ))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(32, 1).with_activation(Activation::Relu),
        ))
        .push(LayerConfig::BatchNorm1d(BatchNormConfig::keras()))
        .push(LayerConfig::GlobalMaxPool1d)
}
