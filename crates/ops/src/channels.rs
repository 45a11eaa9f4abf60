//! Channel surgery on channels-first tensors `[batch, channels, length]`.
//!
//! Everything is built from `narrow` + `cat` (no index tensors, no 0/1 matrix products) so old
//! channels come through bit-exact and a NaN in one channel cannot leak into another.

use burn::tensor::Tensor;

use crate::OpsError;

/// Builds `[batch, plan.len(), length]` where output channel `j` is input channel `plan[j]`, or
/// zeros for `None`. Consecutive runs become one `narrow`, so the common cases are one or two
/// copies.
fn gather(x: Tensor<3>, plan: &[Option<usize>]) -> Tensor<3> {
    let [b, _, l] = x.dims();
    let device = x.device();
    let mut parts = Vec::new();
    let mut j = 0;
    while j < plan.len() {
        let mut end = j + 1;
        match plan[j] {
            Some(start) => {
                while end < plan.len() && plan[end] == Some(start + (end - j)) {
                    end += 1;
                }
                parts.push(x.clone().narrow(1, start, end - j));
            }
            None => {
                while end < plan.len() && plan[end].is_none() {
                    end += 1;
                }
                parts.push(Tensor::zeros([b, end - j, l], &device));
            }
        }
        j = end;
    }
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        Tensor::cat(parts, 1)
    }
}

fn nonzero_dims(x: &Tensor<3>, op: &'static str) -> Result<[usize; 3], OpsError> {
    let dims = x.dims();
    for (what, v) in [
        ("batch", dims[0]),
        ("channels", dims[1]),
        ("length", dims[2]),
    ] {
        if v == 0 {
            return Err(OpsError::ZeroSize { op, what });
        }
    }
    Ok(dims)
}

/// Zero-pads `x: [batch, C_old, length]` to `new_channels`, putting old channel `i` at index
/// `positions[i]`; every other channel is zero. `positions` must be one-to-one and in range.
pub fn pad_channels(
    x: Tensor<3>,
    new_channels: usize,
    positions: &[usize],
) -> Result<Tensor<3>, OpsError> {
    const OP: &str = "pad_channels";
    let [_, c_old, _] = nonzero_dims(&x, OP)?;
    if positions.len() != c_old {
        return Err(OpsError::BadChannelIndex {
            op: OP,
            reason: format!(
                "the position map has {} entries, expected one per input channel ({c_old})",
                positions.len()
            ),
        });
    }
    if new_channels < c_old {
        return Err(OpsError::BadChannelIndex {
            op: OP,
            reason: format!("cannot pad {c_old} channels down to {new_channels}"),
        });
    }
    let mut plan = vec![None; new_channels];
    for (old, &new) in positions.iter().enumerate() {
        match plan.get_mut(new) {
            None => {
                return Err(OpsError::BadChannelIndex {
                    op: OP,
                    reason: format!("old channel {old} maps to {new}, outside 0..{new_channels}"),
                });
            }
            Some(Some(other)) => {
                return Err(OpsError::BadChannelIndex {
                    op: OP,
                    reason: format!("old channels {other} and {old} both map to {new}"),
                });
            }
            Some(slot) => *slot = Some(old),
        }
    }
    Ok(gather(x, &plan))
}

/// Zero-pads `x: [batch, C_old, length]` to `new_channels` with the new channels appended.
pub fn pad_channels_appended(x: Tensor<3>, new_channels: usize) -> Result<Tensor<3>, OpsError> {
    let c_old = x.dims()[1];
    let positions: Vec<usize> = (0..c_old).collect();
    pad_channels(x, new_channels, &positions)
}

/// Picks channels by index, in the given order (repeats allowed).
pub fn select_channels(x: Tensor<3>, indices: &[usize]) -> Result<Tensor<3>, OpsError> {
    const OP: &str = "select_channels";
    let [_, c, _] = nonzero_dims(&x, OP)?;
    if indices.is_empty() {
        return Err(OpsError::ZeroSize {
            op: OP,
            what: "selected channel count",
        });
    }
    if let Some(&bad) = indices.iter().find(|&&i| i >= c) {
        return Err(OpsError::BadChannelIndex {
            op: OP,
            reason: format!("channel index {bad} outside 0..{c}"),
        });
    }
    let plan: Vec<Option<usize>> = indices.iter().copied().map(Some).collect();
    Ok(gather(x, &plan))
}

/// Channels `start .. start + count`.
pub fn slice_channels(x: Tensor<3>, start: usize, count: usize) -> Result<Tensor<3>, OpsError> {
    const OP: &str = "slice_channels";
    let [_, c, _] = nonzero_dims(&x, OP)?;
    if count == 0 {
        return Err(OpsError::ZeroSize {
            op: OP,
            what: "slice length",
        });
    }
    if start.checked_add(count).is_none_or(|end| end > c) {
        return Err(OpsError::BadChannelIndex {
            op: OP,
            reason: format!("channels {start}..{start}+{count} outside 0..{c}"),
        });
    }
    Ok(x.narrow(1, start, count))
}

/// Concatenates along channels; batch and length must agree.
pub fn concat_channels(parts: Vec<Tensor<3>>) -> Result<Tensor<3>, OpsError> {
    const OP: &str = "concat_channels";
    let Some(first) = parts.first() else {
        return Err(OpsError::ZeroSize {
            op: OP,
            what: "number of tensors",
        });
    };
    let [b, _, l] = nonzero_dims(first, OP)?;
    for part in &parts {
        let [pb, pc, pl] = part.dims();
        if pb != b || pl != l || pc == 0 {
            return Err(OpsError::ShapeMismatch {
                op: OP,
                what: "part",
                expected: format!("[{b}, >0, {l}]"),
                got: vec![pb, pc, pl],
            });
        }
    }
    Ok(Tensor::cat(parts, 1))
}
