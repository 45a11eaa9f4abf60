//! Where the old channels sit in the widened input.

use serde::{Deserialize, Serialize};

use crate::AdaptError;

/// How old input channels map into the new input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Old channel `i` stays at `i`; new channels follow (`C_old .. C_new`).
    #[default]
    Append,
    /// Old channel `i` goes to `positions[i]`; one-to-one, inside `0 .. C_new`.
    Map(Vec<usize>),
    /// Narrowing: new channel `j` is old channel `keep[j]` (the explicit selection needed when
    /// `C_new < C_old`); old channels not listed are dropped.
    Keep(Vec<usize>),
}

/// The resolved mapping: for each new channel, the old channel it carries (if any).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelMap {
    /// Old channel count.
    pub old: usize,
    /// New channel count.
    pub new: usize,
    /// `source[j]`: the old channel at new position `j`, or `None` for a new channel.
    pub source: Vec<Option<usize>>,
}

impl ChannelMap {
    /// New positions of the old channels that survive, in old-channel order.
    pub fn old_positions(&self) -> Vec<usize> {
        let mut pos: Vec<(usize, usize)> = self
            .source
            .iter()
            .enumerate()
            .filter_map(|(j, s)| s.map(|i| (i, j)))
            .collect();
        pos.sort_unstable();
        pos.into_iter().map(|(_, j)| j).collect()
    }

    /// Positions of the channels that are new (no old source).
    pub fn new_positions(&self) -> Vec<usize> {
        self.source
            .iter()
            .enumerate()
            .filter_map(|(j, s)| s.is_none().then_some(j))
            .collect()
    }
}

impl Placement {
    /// Resolves against `old` and `new` channel counts.
    pub fn resolve(&self, old: usize, new: usize) -> Result<ChannelMap, AdaptError> {
        if new == 0 || old == 0 {
            return Err(AdaptError::BadIndexMap(format!(
                "channel counts must be > 0, got {old} → {new}"
            )));
        }
        let mut source = vec![None; new];
        match self {
            Placement::Append => {
                if new < old {
                    return Err(AdaptError::FewerChannels { old, new });
                }
                for (i, s) in source.iter_mut().enumerate().take(old) {
                    *s = Some(i);
                }
            }
            Placement::Map(positions) => {
                if new < old {
                    return Err(AdaptError::FewerChannels { old, new });
                }
                if positions.len() != old {
                    return Err(AdaptError::BadIndexMap(format!(
                        "the map has {} entries, expected one per old channel ({old})",
                        positions.len()
                    )));
                }
                for (i, &p) in positions.iter().enumerate() {
                    match source.get_mut(p) {
                        None => {
                            return Err(AdaptError::BadIndexMap(format!(
                                "old channel {i} maps to {p}, outside 0..{new}"
                            )));
                        }
                        Some(Some(other)) => {
                            return Err(AdaptError::BadIndexMap(format!(
                                "old channels {other} and {i} both map to {p}: the map must be one-to-one"
                            )));
                        }
                        Some(slot) => *slot = Some(i),
                    }
                }
            }
            Placement::Keep(keep) => {
                if keep.len() != new {
                    return Err(AdaptError::BadIndexMap(format!(
                        "the selection keeps {} channels but {new} were asked for",
                        keep.len()
                    )));
                }
                let mut seen = vec![false; old];
                for (j, &i) in keep.iter().enumerate() {
                    match seen.get_mut(i) {
                        None => {
                            return Err(AdaptError::BadIndexMap(format!(
                                "kept channel {i} is outside 0..{old}"
                            )));
                        }
                        Some(true) => {
                            return Err(AdaptError::BadIndexMap(format!(
                                "old channel {i} is kept twice"
                            )));
                        }
                        Some(s) => *s = true,
                    }
                    source[j] = Some(i);
                }
            }
        }
        Ok(ChannelMap { old, new, source })
    }
}
