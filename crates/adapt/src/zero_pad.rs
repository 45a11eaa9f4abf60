//! `ZeroPadInput`: feed data with the old channel count to a model that expects more, by
//! putting zeros in the new channels (the seed's Example 2, done on purpose).

use burn::tensor::Tensor;
use widen_layers::DataFormat;
use widen_ops::{pad_channels, to_channels_first, to_channels_last};

use crate::{AdaptError, ChannelMap};

/// Pads `[batch, length, C_old]` (or channels-first) data to `map.new` channels, old channel
/// `i` at its mapped position, zeros elsewhere.
#[derive(Debug, Clone)]
pub struct ZeroPadInput {
    /// The mapping.
    pub map: ChannelMap,
    /// Layout of the data.
    pub data_format: DataFormat,
}

impl ZeroPadInput {
    /// Pads `x`.
    pub fn apply(&self, x: Tensor<3>) -> Result<Tensor<3>, AdaptError> {
        if self.map.source.iter().flatten().count() != self.map.old {
            return Err(AdaptError::BadIndexMap(
                "zero padding needs every old channel placed (a Keep selection drops some)".into(),
            ));
        }
        let positions = self.map.old_positions();
        Ok(match self.data_format {
            DataFormat::ChannelsFirst => pad_channels(x, self.map.new, &positions)?,
            DataFormat::ChannelsLast => to_channels_last(pad_channels(
                to_channels_first(x),
                self.map.new,
                &positions,
            )?),
        })
    }
}
