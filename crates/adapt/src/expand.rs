//! The expansion strategies: make a trained model accept `C_new` input channels.

use burn::tensor::{Device, TensorData};
use serde::{Deserialize, Serialize};
use widen_init::{Fans, Initializer, KernelLayout};
use widen_layers::{Conv1dConfig, LayerConfig, ModelSpec, NormalizationConfig, Sequential};

use crate::consumers::{KernelView, input_region};
use crate::{AdaptError, ChannelMap, Placement, host};

/// Name given to the 1×1 projection that [`Strategy::Projection`] puts in front of the model.
pub const PROJECTION_LAYER: &str = "widen_projection";

/// Name stem of the 1×1 adapters put in front of readers that cannot take more channels.
pub const ADAPTER_LAYER: &str = "widen_adapter";

/// How the 1×1 projection starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "init", rename_all = "snake_case")]
pub enum ProjectionInit {
    /// Identity on the old channels, zero on the new: function preserving.
    Identity,
    /// All zeros (the model first sees nothing; gradients reach only the projection).
    Zero,
    /// Any widen-init initializer (fans of a `[C_old, C_new, 1]` kernel).
    Initializer {
        /// The initializer.
        initializer: Initializer,
    },
}

/// An expansion strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Strategy {
    /// New kernel slices at zero: the output is the base model's for any values in the new
    /// channels (Net2Net's function-preserving rule, applied to the input side).
    Zero,
    /// `new[:, j] = old[:, src(j)] / count(src(j))`, where new channels take old ones in turn
    /// (`src(j) = j mod C_old` when appended). With `C_new` a multiple of `C_old` the factor is
    /// `C_old / C_new`, timm's `adapt_input_conv`; dividing by the count makes it exact for any
    /// `C_new` when the new input repeats the old channels.
    RepeatRescale,
    /// New slices drawn by `initializer` for the widened fan (`fan_in = C_new · k`); with
    /// `rescale_old`, old slices are multiplied by `sqrt(C_old / C_new)` so the pre-activation
    /// variance stays what it was when every channel has the same variance.
    FanScaled {
        /// Draws the new slices.
        initializer: Initializer,
        /// Rescale the trained slices.
        rescale_old: bool,
    },
    /// A 1×1 Conv1d from `C_new` to `C_old` in front of the unchanged model (the seed's Ex3
    /// structure applied to a trained model).
    Projection {
        /// How the projection starts.
        init: ProjectionInit,
    },
}

impl Strategy {
    /// A short stable name (`zero`, `repeat`, `fan`, `projection`).
    pub fn short_name(&self) -> &'static str {
        match self {
            Self::Zero => "zero",
            Self::RepeatRescale => "repeat",
            Self::FanScaled { .. } => "fan",
            Self::Projection { .. } => "projection",
        }
    }
}

/// What to expand and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpandRequest {
    /// Input channels after expansion.
    pub new_channels: usize,
    /// Where the old channels go.
    #[serde(default)]
    pub placement: Placement,
    /// The strategy.
    pub strategy: Strategy,
    /// The Conv1d to widen; default: the one that reads the model input.
    #[serde(default)]
    pub layer: Option<String>,
    /// Seed for random slices or projections (drawn on the host: same on every backend).
    #[serde(default)]
    pub seed: u64,
}

impl ExpandRequest {
    /// Appended new channels, default layer, seed 0.
    pub fn new(new_channels: usize, strategy: Strategy) -> Self {
        Self {
            new_channels,
            placement: Placement::Append,
            strategy,
            layer: None,
            seed: 0,
        }
    }
    /// Sets the placement.
    pub fn with_placement(mut self, placement: Placement) -> Self {
        self.placement = placement;
        self
    }
    /// Names the Conv1d to widen.
    pub fn with_layer(mut self, layer: &str) -> Self {
        self.layer = Some(layer.to_string());
        self
    }
    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// The widened model and what was done to it.
#[derive(Debug)]
pub struct Expansion {
    /// The model, accepting `map.new` channels.
    pub model: Sequential,
    /// Old → new channel mapping.
    pub map: ChannelMap,
    /// The layers that now hold adapted parameters: every widened consumer of the input (convs,
    /// Dense after Flatten, recurrent input kernels) and the per-channel layers on the way
    /// (BatchNorm, Normalization), or the projection alone.
    pub adapted_layers: Vec<String>,
    /// The strategy used.
    pub strategy: Strategy,
}

fn device_of(model: &Sequential) -> Result<Device, AdaptError> {
    use burn::module::Module;
    model.devices().into_iter().next().ok_or_else(|| {
        AdaptError::Data("the model has no parameters to find its device from".into())
    })
}

/// Builds `spec` and copies every tensor of `from` whose layer still exists with the same
/// shape, except the `(layer, param)` pairs in `skip` (the caller sets those).
fn rebuild(
    from: &Sequential,
    spec: ModelSpec,
    skip: &[(String, String)],
    seed: u64,
    device: &Device,
) -> Result<Sequential, AdaptError> {
    let mut model = Sequential::new(spec, seed, device)?;
    let targets = model.weight_infos();
    for info in from.weight_infos() {
        if skip
            .iter()
            .any(|(l, p)| *l == info.layer && *p == info.param)
        {
            continue;
        }
        if targets
            .iter()
            .any(|t| t.layer == info.layer && t.param == info.param && t.shape == info.shape)
        {
            model.set_weight(
                &info.layer,
                &info.param,
                from.weight(&info.layer, &info.param)?,
            )?;
        }
    }
    Ok(model)
}

/// Widens `model` to `request.new_channels` inputs. The input model is not changed.
pub fn expand(model: &Sequential, request: &ExpandRequest) -> Result<Expansion, AdaptError> {
    let old = model.input().channels;
    let new = request.new_channels;
    if new == old && request.placement == Placement::Append {
        return Err(AdaptError::SameWidth { channels: old });
    }
    // The map (one entry per new channel) and the widened weights (old kernel, new kernel, the
    // drawn slices; or the projection) are sized by the caller: check before allocating them.
    let per_channel = model
        .weight_infos()
        .iter()
        .map(|w| w.shape.iter().fold(1usize, |a, &d| a.saturating_mul(d)) / old.max(1))
        .max()
        .unwrap_or(0)
        .max(old);
    widen_guard::budget().check(
        &format!("widening {old} → {new} input channels"),
        (new as u128).saturating_mul(16 + 12 * per_channel as u128),
    )?;
    let map = request.placement.resolve(old, new)?;
    let device = device_of(model)?;
    if let Some(name) = &request.layer
        && model.layer(name).is_none()
    {
        return Err(AdaptError::NoSuchLayer {
            name: name.clone(),
            available: model
                .layers()
                .iter()
                .map(|l| l.name())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    match &request.strategy {
        Strategy::Projection { init } => expand_projection(model, map, init, request, &device),
        strategy => expand_kernel(model, map, strategy, request, &device),
    }
}

/// Widens one kernel viewed as `[outer, C_old, inner]` to `[outer, C_new, inner]`.
fn widen_kernel(
    old_w: &[f32],
    view: &KernelView,
    map: &ChannelMap,
    strategy: &Strategy,
    seed: u64,
) -> Result<Vec<f32>, AdaptError> {
    let (o, k) = (view.outer, view.inner);
    let (c_old, c_new) = (map.old, map.new);
    let at = |oi: usize, ci: usize, ki: usize| old_w[(oi * c_old + ci) * k + ki];
    let idx = |oi: usize, j: usize, ki: usize| (oi * c_new + j) * k + ki;
    let mut new_w = vec![0.0f32; o * c_new * k];
    match strategy {
        Strategy::Zero => {
            for (j, s) in map.source.iter().enumerate() {
                if let Some(i) = *s {
                    for oi in 0..o {
                        for ki in 0..k {
                            new_w[idx(oi, j, ki)] = at(oi, i, ki);
                        }
                    }
                }
            }
        }
        Strategy::RepeatRescale => {
            let src = source_with_repeats(map);
            let mut count = vec![0usize; c_old];
            for &i in &src {
                count[i] += 1;
            }
            for (j, &i) in src.iter().enumerate() {
                let scale = 1.0 / count[i] as f32;
                for oi in 0..o {
                    for ki in 0..k {
                        new_w[idx(oi, j, ki)] = at(oi, i, ki) * scale;
                    }
                }
            }
        }
        Strategy::FanScaled {
            initializer,
            rescale_old,
        } => {
            let shape = view.shape(c_new);
            let fans = Fans::from_shape(&shape, view.layout)?;
            let drawn = initializer.sample_with_fans(&shape, view.layout, fans, seed)?;
            let scale = if *rescale_old {
                (c_old as f32 / c_new as f32).sqrt()
            } else {
                1.0
            };
            for (j, s) in map.source.iter().enumerate() {
                for oi in 0..o {
                    for ki in 0..k {
                        let n = idx(oi, j, ki);
                        new_w[n] = match *s {
                            Some(i) => at(oi, i, ki) * scale,
                            None => drawn[n],
                        };
                    }
                }
            }
        }
        Strategy::Projection { .. } => {
            return Err(AdaptError::Data(
                "projection is not a kernel strategy".into(),
            ));
        }
    }
    Ok(new_w)
}

fn expand_kernel(
    model: &Sequential,
    map: ChannelMap,
    strategy: &Strategy,
    request: &ExpandRequest,
    device: &Device,
) -> Result<Expansion, AdaptError> {
    if let Some(name) = &request.layer
        && let Some(layer) = model.layer(name)
        && !matches!(layer.keras_class(), "Conv1D" | "Dense" | "LSTM" | "GRU")
    {
        return Err(AdaptError::NotConv1d {
            name: name.clone(),
            kind: layer.keras_class().to_string(),
        });
    }
    let region = input_region(model, false)?;
    if let Some(name) = &request.layer
        && !region.consumers.iter().any(|c| &c.name == name)
    {
        let index = model.layer_index(name).unwrap_or(0);
        return Err(AdaptError::NotInputConv {
            name: name.clone(),
            index,
        });
    }
    let c_new = map.new;
    let mut spec = model.spec().clone();
    spec.input.channels = c_new;
    let mut skip: Vec<(String, String)> = Vec::new();
    let mut updates: Vec<(String, &'static str, Vec<f32>, Vec<usize>)> = Vec::new();
    let mut adapted = Vec::new();
    // Per-channel layers on the way: old statistics move with their channels; new channels
    // pass through (identity statistics) until `standardize` calibrates them, or copy their
    // source channel under `repeat`, which keeps repeated channels exact.
    let src = source_with_repeats(&map);
    for &i in &region.per_channel {
        let name = spec.layers[i].name.clone();
        for info in model.weight_infos().into_iter().filter(|w| w.layer == name) {
            let old = host::values(model.weight(&name, &info.param)?)?;
            let neutral = match info.param.as_str() {
                "variance" | "moving_variance" | "gamma" => 1.0,
                _ => 0.0,
            };
            let values: Vec<f32> = (0..c_new)
                .map(|j| match (map.source[j], strategy) {
                    (Some(s), _) => old[s],
                    (None, Strategy::RepeatRescale) => old[src[j]],
                    (None, _) => neutral,
                })
                .collect();
            let param: &'static str = match info.param.as_str() {
                "gamma" => "gamma",
                "beta" => "beta",
                "moving_mean" => "moving_mean",
                "moving_variance" => "moving_variance",
                "mean" => "mean",
                "variance" => "variance",
                other => {
                    return Err(AdaptError::CannotWiden {
                        name: name.clone(),
                        kind: spec.layers[i].config.keras_class().to_string(),
                        reason: format!("per-channel tensor `{other}` is not one widen knows"),
                    });
                }
            };
            skip.push((name.clone(), info.param.clone()));
            updates.push((name.clone(), param, values, vec![c_new]));
        }
        if let LayerConfig::Normalization(cfg) = &mut spec.layers[i].config {
            let (mean, var) = (
                updates.iter().find(|u| u.0 == name && u.1 == "mean"),
                updates.iter().find(|u| u.0 == name && u.1 == "variance"),
            );
            if let (Some(m), Some(v)) = (mean, var) {
                *cfg = NormalizationConfig {
                    mean: m.2.clone(),
                    variance: v.2.clone(),
                };
            }
        }
        adapted.push(name);
    }
    // Readers that cannot take more channels get a 1×1 adapter on their edge: the identity on
    // the old channels, widened like any kernel (zero: new channels ignored; repeat: shared).
    for (node, readers) in &region.adapters {
        let from = if *node == 0 {
            spec.input_name.clone()
        } else {
            spec.layers[node - 1].name.clone()
        };
        let name = spec.fresh_name(ADAPTER_LAYER);
        let config = Conv1dConfig::new(map.old, 1)
            .with_bias(false)
            .with_data_format(spec.input.data_format);
        for &r in readers {
            let reader = &model.spec().layers[r].name;
            if let Some(layer) = spec.layers.iter_mut().find(|l| &l.name == reader) {
                for f in &mut layer.inbound {
                    if *f == from {
                        *f = name.clone();
                    }
                }
            }
        }
        let at = spec
            .layers
            .iter()
            .position(|l| l.name == from)
            .map_or(0, |p| p + 1);
        spec.layers.insert(
            at,
            widen_layers::LayerSpec::new(&name, &[from.as_str()], LayerConfig::Conv1d(config)),
        );
        let view = KernelView {
            layer: at,
            name: name.clone(),
            param: "weight",
            outer: map.old,
            inner: 1,
            layout: KernelLayout::Torch,
            cols: None,
        };
        let mut identity = vec![0.0f32; map.old * map.old];
        for i in 0..map.old {
            identity[i * map.old + i] = 1.0;
        }
        let new_w = widen_kernel(&identity, &view, &map, strategy, request.seed)?;
        updates.push((name.clone(), "weight", new_w, view.shape(c_new)));
        adapted.push(name);
    }
    for view in &region.consumers {
        let old_w = host::values(model.weight(&view.name, view.param)?)?;
        let new_w = widen_kernel(&old_w, view, &map, strategy, request.seed)?;
        skip.push((view.name.clone(), view.param.to_string()));
        updates.push((view.name.clone(), view.param, new_w, view.shape(c_new)));
        adapted.push(view.name.clone());
    }
    let mut widened = rebuild(model, spec, &skip, request.seed, device)?;
    for (layer, param, values, shape) in updates {
        widened.set_weight(&layer, param, TensorData::new(values, shape))?;
    }
    Ok(Expansion {
        model: widened,
        map,
        adapted_layers: adapted,
        strategy: strategy.clone(),
    })
}

/// For each new position, the old channel it carries; new channels take old ones in turn
/// (`t`-th new channel → old `t mod C_old`), which is `j mod C_old` for appended channels.
fn source_with_repeats(map: &ChannelMap) -> Vec<usize> {
    let mut t = 0;
    map.source
        .iter()
        .map(|s| match s {
            Some(i) => *i,
            None => {
                let i = t % map.old;
                t += 1;
                i
            }
        })
        .collect()
}

fn expand_projection(
    model: &Sequential,
    map: ChannelMap,
    init: &ProjectionInit,
    request: &ExpandRequest,
    device: &Device,
) -> Result<Expansion, AdaptError> {
    let (c_old, c_new) = (map.old, map.new);
    let mut spec = model.spec().clone();
    let name = spec.fresh_name(PROJECTION_LAYER);
    spec.input.channels = c_new;
    let config = Conv1dConfig::new(c_old, 1).with_data_format(spec.input.data_format);
    // In front of every layer that reads the input: the rest of the graph sees C_old channels.
    spec.insert_after_input(&name, LayerConfig::Conv1d(config));
    let mut widened = rebuild(model, spec, &[], request.seed, device)?;
    let shape = [c_old, c_new, 1];
    let weight = match init {
        ProjectionInit::Identity => {
            let mut w = vec![0.0f32; c_old * c_new];
            for (j, s) in map.source.iter().enumerate() {
                if let Some(i) = *s {
                    w[i * c_new + j] = 1.0;
                }
            }
            w
        }
        ProjectionInit::Zero => vec![0.0; c_old * c_new],
        ProjectionInit::Initializer { initializer } => {
            initializer.sample(&shape, KernelLayout::Torch, request.seed)?
        }
    };
    widened.set_weight(&name, "weight", TensorData::new(weight, shape))?;
    widened.set_weight(&name, "bias", TensorData::new(vec![0.0f32; c_old], [c_old]))?;
    Ok(Expansion {
        model: widened,
        map,
        adapted_layers: vec![name],
        strategy: Strategy::Projection { init: init.clone() },
    })
}

/// After a narrowing (`Placement::Keep`), moves what the dropped channels fed, on average, into
/// the biases of the layers that read them: `bias += Σ_dropped Σ_taps W · mean`, the means taken
/// from `sample` (the base model's input layout, all old channels) at each reader's input.
/// Exact for a reader whose dropped inputs were constant at their mean; for a Dense after
/// Flatten (per-step features) nothing is compensated. Returns the layers changed.
pub fn compensate_dropped(
    base: &Sequential,
    narrowed: &mut Expansion,
    sample: burn::tensor::Tensor<3>,
) -> Result<Vec<String>, AdaptError> {
    let kept: Vec<usize> = narrowed.map.source.iter().flatten().copied().collect();
    let dropped: Vec<usize> = (0..narrowed.map.old)
        .filter(|c| !kept.contains(c))
        .collect();
    if dropped.is_empty() {
        return Ok(Vec::new());
    }
    let trace = base.forward_trace(sample, widen_layers::Mode::Inference)?;
    let region = input_region(base, true)?;
    let mut changed = Vec::new();
    for view in &region.consumers {
        let node = base.inbound(view.layer).first().copied().unwrap_or(0);
        let values = host::values(match &trace[node].1 {
            widen_layers::Value::Seq(t) => t.clone().into_data(),
            widen_layers::Value::Flat(t) => t.clone().into_data(),
        })?;
        let dims = trace[node].1.dims();
        // Per-channel means of the reader's input (channels-first sequences or flat features).
        let c = narrowed.map.old;
        let mean: Vec<f64> = match dims.as_slice() {
            [b, ch, l] if *ch == c => (0..c)
                .map(|ci| {
                    let mut s = 0.0;
                    for bi in 0..*b {
                        for t in 0..*l {
                            s += values[(bi * ch + ci) * l + t] as f64;
                        }
                    }
                    s / (b * l).max(1) as f64
                })
                .collect(),
            [b, f] if *f == c => (0..c)
                .map(|ci| (0..*b).map(|bi| values[bi * f + ci] as f64).sum::<f64>() / *b as f64)
                .collect(),
            _ => continue,
        };
        let Ok(bias) = base.weight(&view.name, "bias") else {
            continue;
        };
        let mut bias = host::values(bias)?;
        let w = host::values(base.weight(&view.name, view.param)?)?;
        let (o, k) = (view.outer, view.inner);
        for &ci in &dropped {
            for oi in 0..o {
                for ki in 0..k {
                    let wv = w[(oi * c + ci) * k + ki] as f64 * mean[ci];
                    let at = match view.cols {
                        None => oi,
                        Some(cols) => ki % cols.max(1),
                    };
                    if let Some(b) = bias.get_mut(at) {
                        *b += wv as f32;
                    }
                }
            }
        }
        let n = bias.len();
        narrowed
            .model
            .set_weight(&view.name, "bias", TensorData::new(bias, [n]))?;
        changed.push(view.name.clone());
    }
    Ok(changed)
}
