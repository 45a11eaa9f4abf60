//! Shapes between layers, and the value that flows through a `Sequential`.

use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// How a 3-D input is laid out. Keras' default is channels-last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// `[batch, length, channels]` (Keras).
    #[default]
    ChannelsLast,
    /// `[batch, channels, length]` (Burn, PyTorch).
    ChannelsFirst,
}

/// The shape of one sample between layers (batch excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureShape {
    /// A sequence: `channels` features at each of `length` steps (`None`: variable length).
    Seq {
        /// Channels (features per step).
        channels: usize,
        /// Steps, if fixed.
        length: Option<usize>,
    },
    /// A flat feature vector.
    Flat {
        /// Features.
        features: usize,
    },
}

impl FeatureShape {
    /// Keras-style text with the batch as `None`, e.g. `(None, 48, 32)`.
    pub fn keras_text(&self, format: DataFormat) -> String {
        let len = |l: Option<usize>| l.map_or("None".to_string(), |l| l.to_string());
        match *self {
            Self::Seq { channels, length } => match format {
                DataFormat::ChannelsLast => format!("(None, {}, {channels})", len(length)),
                DataFormat::ChannelsFirst => format!("(None, {channels}, {})", len(length)),
            },
            Self::Flat { features } => format!("(None, {features})"),
        }
    }
}

/// An activation between layers: sequences are always channels-first inside a model.
#[derive(Debug, Clone)]
pub enum Value {
    /// `[batch, channels, length]`.
    Seq(Tensor<3>),
    /// `[batch, features]`.
    Flat(Tensor<2>),
}

impl Value {
    /// Dimensions, batch first.
    pub fn dims(&self) -> Vec<usize> {
        match self {
            Self::Seq(t) => t.dims().to_vec(),
            Self::Flat(t) => t.dims().to_vec(),
        }
    }

    /// The flat tensor, or `None` for a sequence.
    pub fn into_flat(self) -> Option<Tensor<2>> {
        match self {
            Self::Flat(t) => Some(t),
            Self::Seq(_) => None,
        }
    }

    /// The channels-first sequence tensor, or `None` for a flat value.
    pub fn into_seq(self) -> Option<Tensor<3>> {
        match self {
            Self::Seq(t) => Some(t),
            Self::Flat(_) => None,
        }
    }
}

/// Whether a forward pass trains (batch statistics, dropout) or infers. A frozen layer always
/// infers, as Keras' `trainable = False` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Moving statistics, no dropout.
    #[default]
    Inference,
    /// Batch statistics (and their moving update), dropout on.
    Training,
}
