//! Which layers read the model input's channels. In a ResNet the input feeds the first conv and
//! the 1×1 shortcut conv; in InceptionTime a bottleneck conv and a max-pool branch whose conv
//! sees the input's channels. Widening the input means widening every one of them, so this
//! walks the graph from the input through channel-local layers (dropout, pooling, padding,
//! activations: `ChannelRole::Local`; BatchNorm/Normalization: `ChannelRole::PerChannel`) to the
//! layers that mix channels, and says how each one's kernel indexes them. A reader that mixes
//! channels without a kernel (a merge on the raw input, LayerNormalization) gets a 1×1 adapter
//! on its edge instead, widened by the same strategy.

use widen_layers::{ChannelRole, FeatureShape, LayerConfig, Model, ShapeContext};

use crate::AdaptError;

/// How a consumer's kernel indexes input channels: viewed as `[outer, channels, inner]`
/// (row-major), the channel axis in the middle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelView {
    /// The consumer layer's index.
    pub layer: usize,
    /// Its name.
    pub name: String,
    /// The kernel tensor (`weight` for Conv1D and Dense, `kernel` for LSTM/GRU).
    pub param: &'static str,
    /// Product of the axes before the channel axis.
    pub outer: usize,
    /// Product of the axes after it.
    pub inner: usize,
    /// The layout the kernel is stored in, for fans of random slices.
    pub layout: widen_init::KernelLayout,
    /// `None` for a 3-D conv kernel `[outer, C, inner]`; `Some(cols)` for a 2-D kernel
    /// `[rows, cols]` whose rows hold the channels (Dense, recurrent input kernels).
    pub cols: Option<usize>,
}

impl KernelView {
    /// The kernel's shape for `channels` input channels.
    pub fn shape(&self, channels: usize) -> Vec<usize> {
        match self.cols {
            None => vec![self.outer, channels, self.inner],
            Some(cols) => vec![self.outer * channels * self.inner / cols.max(1), cols],
        }
    }
}

/// What widening the input touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputRegion {
    /// Channel-local layers with one value per channel (their tensors grow).
    pub per_channel: Vec<usize>,
    /// The layers that mix channels, with how their kernels index them.
    pub consumers: Vec<KernelView>,
    /// Sequence nodes (0 the input, `i + 1` layer `i`) carrying the input's channels into
    /// layers that cannot take more channels and have no kernel to widen (a merge right on the
    /// input, as in an identity shortcut; LayerNormalization over channels; Permute): each
    /// gets a 1×1 adapter, `C_new → C_old`, widened by the strategy, in front of those readers.
    /// Listed with the readers to rewire.
    pub adapters: Vec<(usize, Vec<usize>)>,
}

impl InputRegion {
    fn adapt(&mut self, node: usize, reader: usize) {
        match self.adapters.iter_mut().find(|(n, _)| *n == node) {
            Some((_, readers)) if !readers.contains(&reader) => readers.push(reader),
            Some(_) => {}
            None => self.adapters.push((node, vec![reader])),
        }
    }
}

/// A sequence still in the input's channels, or features that are the input's channels
/// (after global pooling) or its flattened steps (after Flatten, `length` steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carried {
    Seq,
    Pooled,
    Flattened { length: usize },
}

fn cannot(name: &str, kind: &str, reason: impl Into<String>) -> AdaptError {
    AdaptError::CannotWiden {
        name: name.to_string(),
        kind: kind.to_string(),
        reason: reason.into(),
    }
}

/// Walks from the input to every layer that mixes its channels. `allow_grouped` accepts
/// grouped convs (only a projection in front can widen them; the caller decides).
pub fn input_region(model: &Model, allow_grouped: bool) -> Result<InputRegion, AdaptError> {
    let spec = model.spec();
    let n = spec.layers.len();
    let channels = spec.input.channels;
    let channels_last = spec.input.data_format == widen_layers::DataFormat::ChannelsLast;
    let mut region = InputRegion::default();
    // Nodes carrying the input's channels: (node, how). Node 0 is the input.
    let mut frontier = vec![(0usize, Carried::Seq)];
    let mut seen = vec![false; n + 1];
    seen[0] = true;
    while let Some((node, carried)) = frontier.pop() {
        let readers: Vec<usize> = (0..n)
            .filter(|&i| model.inbound(i).contains(&node))
            .collect();
        if readers.is_empty() {
            let name = if node == 0 {
                spec.input_name.clone()
            } else {
                spec.layers[node - 1].name.clone()
            };
            return Err(cannot(
                &name,
                "model output",
                "the model's output still carries the input's channels, so a wider input \
                 would change the output's shape",
            ));
        }
        for i in readers {
            let layer = &spec.layers[i];
            let name = layer.name.as_str();
            let kind = layer.config.keras_class();
            if model.inbound(i).len() > 1 {
                if carried != Carried::Seq {
                    return Err(cannot(
                        name,
                        kind,
                        "it combines features that are the input's channels with another \
                         tensor; widen with the projection strategy instead",
                    ));
                }
                region.adapt(node, i);
                continue;
            }
            let out = model.shapes()[i];
            match (&layer.config, carried) {
                (LayerConfig::Flatten, Carried::Seq) => {
                    let FeatureShape::Seq {
                        length: Some(length),
                        ..
                    } = input_of(model, i)
                    else {
                        return Err(cannot(name, kind, "needs a fixed length"));
                    };
                    push(&mut frontier, &mut seen, i, Carried::Flattened { length });
                }
                (LayerConfig::Conv1d(c), Carried::Seq) if c.groups > 1 => {
                    if !allow_grouped {
                        return Err(AdaptError::Groups {
                            name: name.to_string(),
                            groups: c.groups,
                            reason: "each input channel belongs to one group, so a new channel \
                                     would have to join a group and change which filters see \
                                     it; widen a grouped model with the Projection strategy \
                                     instead"
                                .into(),
                        });
                    }
                    region.consumers.push(KernelView {
                        layer: i,
                        name: name.to_string(),
                        param: "weight",
                        outer: c.filters,
                        inner: c.kernel_size,
                        layout: widen_init::KernelLayout::Torch,
                        cols: None,
                    });
                }
                (config, carried)
                    if let Some(k) = config.input_kernel(&ShapeContext {
                        name,
                        inputs: &[input_of(model, i)],
                        data_format: spec.input.data_format,
                    }) =>
                {
                    let layout = if k.keras_layout {
                        widen_init::KernelLayout::Keras
                    } else {
                        widen_init::KernelLayout::Torch
                    };
                    // A 2-D `[rows, cols]` kernel (Keras layout) holds one row per feature.
                    let cols = k.keras_layout.then_some(k.inner);
                    let (outer, inner) = match carried {
                        Carried::Seq | Carried::Pooled => (k.outer, k.inner),
                        // After Flatten, rows are `l · C + c` (channels-last) or `c · L + l`.
                        Carried::Flattened { length } if channels_last => (length, k.inner),
                        Carried::Flattened { length } => (1, length * k.inner),
                    };
                    region.consumers.push(KernelView {
                        layer: i,
                        name: name.to_string(),
                        param: k.param,
                        outer,
                        inner,
                        layout,
                        cols,
                    });
                }
                (config, _) => match config.channel_role() {
                    ChannelRole::Local | ChannelRole::PerChannel => {
                        if config.channel_role() == ChannelRole::PerChannel {
                            region.per_channel.push(i);
                        }
                        let next = match (carried, out) {
                            (Carried::Seq, FeatureShape::Flat { features })
                                if features == channels =>
                            {
                                Carried::Pooled
                            }
                            (c, _) => c,
                        };
                        if matches!(carried, Carried::Flattened { .. })
                            && config.channel_role() == ChannelRole::PerChannel
                        {
                            return Err(cannot(
                                name,
                                kind,
                                "per-feature statistics on flattened steps are not supported",
                            ));
                        }
                        push(&mut frontier, &mut seen, i, next);
                    }
                    ChannelRole::Mixes if carried == Carried::Seq => region.adapt(node, i),
                    ChannelRole::Mixes => {
                        return Err(cannot(
                            name,
                            kind,
                            "it mixes features that are the input's channels and has no kernel \
                             widen knows how to widen; widen with the projection strategy instead",
                        ));
                    }
                },
            }
        }
    }
    region.consumers.sort_by_key(|c| c.layer);
    region.consumers.dedup_by_key(|c| c.layer);
    region.per_channel.sort_unstable();
    region.per_channel.dedup();
    region.adapters.sort_by_key(|a| a.0);
    Ok(region)
}

fn push(frontier: &mut Vec<(usize, Carried)>, seen: &mut [bool], layer: usize, how: Carried) {
    if !seen[layer + 1] {
        seen[layer + 1] = true;
        frontier.push((layer + 1, how));
    }
}

/// The shape layer `i` reads (its first input).
fn input_of(model: &Model, i: usize) -> FeatureShape {
    match model.inbound(i).first() {
        Some(0) | None => FeatureShape::Seq {
            channels: model.input().channels,
            length: model.input().length,
        },
        Some(&n) => model.shapes()[n - 1],
    }
}
