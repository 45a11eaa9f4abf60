//! The expansion strategies: make a trained model accept `C_new` input channels.

use burn::tensor::{Device, TensorData};
use serde::{Deserialize, Serialize};
use widen_init::{Fans, Initializer, KernelLayout};
use widen_layers::{
    Conv1dConfig, Layer, LayerConfig, LayerSpec, ModelSpec, NormalizationConfig, Sequential,
};

use crate::{AdaptError, ChannelMap, Placement, host};

/// Name given to the 1×1 projection that [`Strategy::Projection`] puts in front of the model.
pub const PROJECTION_LAYER: &str = "widen_projection";

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
    /// The layer that now holds the adapted parameters: the widened Conv1d, or the projection.
    pub adapted_layer: String,
    /// The strategy used.
    pub strategy: Strategy,
}

fn kind_of(config: &LayerConfig) -> String {
    config.keras_class().to_string()
}

/// Finds the Conv1d that reads the model input: index 0, or 1 behind a leading Normalization.
fn input_conv(model: &Sequential, requested: Option<&str>) -> Result<usize, AdaptError> {
    let layers = &model.spec.layers;
    let first_conv = match layers.first().map(|l| &l.config) {
        Some(LayerConfig::Conv1d(_)) => Some(0),
        Some(LayerConfig::Normalization(_))
            if matches!(
                layers.get(1).map(|l| &l.config),
                Some(LayerConfig::Conv1d(_))
            ) =>
        {
            Some(1)
        }
        _ => None,
    };
    match requested {
        Some(name) => {
            let Some(index) = layers.iter().position(|l| l.name == name) else {
                return Err(AdaptError::NoSuchLayer {
                    name: name.to_string(),
                    available: layers
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            };
            if !matches!(layers[index].config, LayerConfig::Conv1d(_)) {
                return Err(AdaptError::NotConv1d {
                    name: name.to_string(),
                    kind: kind_of(&layers[index].config),
                });
            }
            if Some(index) != first_conv {
                return Err(AdaptError::NotInputConv {
                    name: name.to_string(),
                    index,
                });
            }
            Ok(index)
        }
        None => first_conv.ok_or_else(|| match layers.first() {
            Some(l) => AdaptError::NotConv1d {
                name: l.name.clone(),
                kind: kind_of(&l.config),
            },
            None => AdaptError::NoSuchLayer {
                name: "(first layer)".into(),
                available: "none: the model is empty".into(),
            },
        }),
    }
}

fn device_of(model: &Sequential) -> Result<Device, AdaptError> {
    model
        .layers
        .iter()
        .find_map(|l| match l {
            Layer::Conv1d(c) => Some(c.weight.val().device()),
            Layer::Dense(d) => Some(d.weight.val().device()),
            _ => None,
        })
        .ok_or_else(|| {
            AdaptError::Data("the model has no parameters to find its device from".into())
        })
}

/// Builds `spec` and copies every tensor of `from` whose layer still exists with the same
/// shape, except the `(layer, param)` pairs in `skip` (the caller sets those).
fn rebuild(
    from: &Sequential,
    spec: ModelSpec,
    skip: &[(&str, &str)],
    seed: u64,
    device: &Device,
) -> Result<Sequential, AdaptError> {
    let mut model = Sequential::new(spec, seed, device)?;
    let targets = model.weight_infos();
    for info in from.weight_infos() {
        if skip.contains(&(info.layer.as_str(), info.param.as_str())) {
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
        .spec
        .layers
        .iter()
        .map(|l| match &l.config {
            LayerConfig::Conv1d(c) => c.filters.saturating_mul(c.kernel_size),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
        .max(old);
    widen_guard::budget().check(
        &format!("widening {old} → {new} input channels"),
        (new as u128).saturating_mul(16 + 12 * per_channel as u128),
    )?;
    let map = request.placement.resolve(old, new)?;
    let device = device_of(model)?;
    match &request.strategy {
        Strategy::Projection { init } => expand_projection(model, map, init, request, &device),
        strategy => expand_kernel(model, map, strategy, request, &device),
    }
}

fn expand_kernel(
    model: &Sequential,
    map: ChannelMap,
    strategy: &Strategy,
    request: &ExpandRequest,
    device: &Device,
) -> Result<Expansion, AdaptError> {
    let index = input_conv(model, request.layer.as_deref())?;
    let conv_spec = &model.spec.layers[index];
    let LayerConfig::Conv1d(conv) = &conv_spec.config else {
        return Err(AdaptError::NotConv1d {
            name: conv_spec.name.clone(),
            kind: kind_of(&conv_spec.config),
        });
    };
    if conv.groups > 1 {
        return Err(AdaptError::Groups {
            name: conv_spec.name.clone(),
            groups: conv.groups,
            reason: "each input channel belongs to one group, so a new channel would have to join \
                     a group and change which filters see it; widen a grouped model with the \
                     Projection strategy instead"
                .into(),
        });
    }
    let name = conv_spec.name.clone();
    let old_w = host::values(model.weight(&name, "weight")?)?;
    let (o, k) = (conv.filters, conv.kernel_size);
    let (c_old, c_new) = (map.old, map.new);
    let at = |w: &[f32], c: usize, oi: usize, ci: usize, ki: usize| w[(oi * c + ci) * k + ki];
    let mut new_w = vec![0.0f32; o * c_new * k];
    let src = source_with_repeats(&map);
    match strategy {
        Strategy::Zero => {
            for (j, s) in map.source.iter().enumerate() {
                if let Some(i) = *s {
                    for oi in 0..o {
                        for ki in 0..k {
                            new_w[(oi * c_new + j) * k + ki] = at(&old_w, c_old, oi, i, ki);
                        }
                    }
                }
            }
        }
        Strategy::RepeatRescale => {
            let mut count = vec![0usize; c_old];
            for &i in &src {
                count[i] += 1;
            }
            for (j, &i) in src.iter().enumerate() {
                let scale = 1.0 / count[i] as f32;
                for oi in 0..o {
                    for ki in 0..k {
                        new_w[(oi * c_new + j) * k + ki] = at(&old_w, c_old, oi, i, ki) * scale;
                    }
                }
            }
        }
        Strategy::FanScaled {
            initializer,
            rescale_old,
        } => {
            let shape = [o, c_new, k];
            let fans = Fans::from_shape(&shape, KernelLayout::Torch)?;
            let drawn =
                initializer.sample_with_fans(&shape, KernelLayout::Torch, fans, request.seed)?;
            let scale = if *rescale_old {
                (c_old as f32 / c_new as f32).sqrt()
            } else {
                1.0
            };
            for (j, s) in map.source.iter().enumerate() {
                for oi in 0..o {
                    for ki in 0..k {
                        let idx = (oi * c_new + j) * k + ki;
                        new_w[idx] = match *s {
                            Some(i) => at(&old_w, c_old, oi, i, ki) * scale,
                            None => drawn[idx],
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

    let mut spec = model.spec.clone();
    spec.input.channels = c_new;
    // A leading Normalization sees the new width too: old statistics move with their channels,
    // new channels pass through (mean 0, variance 1) until `standardize` calibrates them.
    let mut skip = vec![(name.as_str(), "weight")];
    let norm_name;
    let mut norm_stats = None;
    if index == 1
        && let Some(first) = spec.layers.first_mut()
        && let LayerConfig::Normalization(cfg) = &mut first.config
    {
        norm_name = first.name.clone();
        let mean = host::values(model.weight(&norm_name, "mean")?)?;
        let var = host::values(model.weight(&norm_name, "variance")?)?;
        let mut new_mean = vec![0.0; c_new];
        let mut new_var = vec![1.0; c_new];
        for (j, s) in map.source.iter().enumerate() {
            if let Some(i) = *s {
                new_mean[j] = mean[i];
                new_var[j] = var[i];
            }
        }
        *cfg = NormalizationConfig {
            mean: new_mean.clone(),
            variance: new_var.clone(),
        };
        norm_stats = Some((new_mean, new_var));
        skip.push((norm_name.as_str(), "mean"));
        skip.push((norm_name.as_str(), "variance"));
    }
    let mut widened = rebuild(model, spec, &skip, request.seed, device)?;
    widened.set_weight(&name, "weight", TensorData::new(new_w, [o, c_new, k]))?;
    if let Some((mean, var)) = norm_stats
        && let Some(first) = widened.spec.layers.first().map(|l| l.name.clone())
    {
        widened.set_weight(&first, "mean", TensorData::new(mean, [c_new]))?;
        widened.set_weight(&first, "variance", TensorData::new(var, [c_new]))?;
    }
    Ok(Expansion {
        model: widened,
        map,
        adapted_layer: name,
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
    if let Some(name) = &request.layer {
        // The projection goes in front of the model; a named layer only has to exist.
        if !model.spec.layers.iter().any(|l| &l.name == name) {
            return Err(AdaptError::NoSuchLayer {
                name: name.clone(),
                available: model
                    .spec
                    .layers
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let (c_old, c_new) = (map.old, map.new);
    let mut name = PROJECTION_LAYER.to_string();
    let mut n = 1;
    while model.spec.layers.iter().any(|l| l.name == name) {
        name = format!("{PROJECTION_LAYER}_{n}");
        n += 1;
    }
    let mut spec = model.spec.clone();
    spec.input.channels = c_new;
    let config = Conv1dConfig::new(c_old, 1).with_data_format(spec.input.data_format);
    spec.layers.insert(
        0,
        LayerSpec {
            name: name.clone(),
            config: LayerConfig::Conv1d(config),
        },
    );
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
        adapted_layer: name,
        strategy: Strategy::Projection { init: init.clone() },
    })
}
