//! A naive 1-D convolution in f64 with plain loops and no Burn: the oracle that tests compare
//! every fast path against. Channels-first, Burn kernel layout. Slow on purpose: obviously right.

use crate::{OpsError, Padding, conv_output};

/// A dense f64 array with a shape, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Row-major values.
    pub values: Vec<f64>,
    /// Dimensions.
    pub shape: Vec<usize>,
}

/// Reference convolution: `x: [batch, channels, length]`, `weight: [filters, channels / groups,
/// kernel]`, `bias: [filters]`. Same errors as [`crate::conv1d`] for bad geometry.
#[allow(clippy::too_many_arguments)]
pub fn conv1d(
    x: &Array,
    weight: &Array,
    bias: Option<&[f64]>,
    stride: usize,
    dilation: usize,
    groups: usize,
    padding: Padding,
) -> Result<Array, OpsError> {
    const OP: &str = "reference::conv1d";
    let (&[b, c, l], &[o, cg, k]) = (x.shape.as_slice(), weight.shape.as_slice()) else {
        return Err(OpsError::ShapeMismatch {
            op: OP,
            what: "input or weight",
            expected: "rank 3".into(),
            got: x.shape.clone(),
        });
    };
    if groups == 0 || cg * groups != c || o % groups != 0 {
        return Err(OpsError::ChannelMismatch {
            op: OP,
            expected: cg * groups,
            got: c,
        });
    }
    if x.values.len() != b * c * l || weight.values.len() != o * cg * k {
        return Err(OpsError::ShapeMismatch {
            op: OP,
            what: "values",
            expected: "as many values as the shape holds".into(),
            got: vec![x.values.len(), weight.values.len()],
        });
    }
    if let Some(bias) = bias
        && bias.len() != o
    {
        return Err(OpsError::ShapeMismatch {
            op: OP,
            what: "bias",
            expected: format!("[{o}]"),
            got: vec![bias.len()],
        });
    }
    let geo = conv_output(l, k, stride, dilation, padding)?;
    let lo = geo.length_out;
    let og = o / groups;
    let mut out = vec![0.0; b * o * lo];
    for bi in 0..b {
        for oi in 0..o {
            let g = oi / og;
            for t in 0..lo {
                let mut acc = bias.map_or(0.0, |bias| bias[oi]);
                for ci in 0..cg {
                    let cin = g * cg + ci;
                    for ki in 0..k {
                        // Position in the unpadded input; outside it the padding is zero.
                        let p = (t * stride + ki * dilation) as isize - geo.left as isize;
                        if p >= 0 && (p as usize) < l {
                            acc += x.values[(bi * c + cin) * l + p as usize]
                                * weight.values[(oi * cg + ci) * k + ki];
                        }
                    }
                }
                out[(bi * o + oi) * lo + t] = acc;
            }
        }
    }
    Ok(Array {
        values: out,
        shape: vec![b, o, lo],
    })
}
