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

/// Gradients of [`conv1d`] for an upstream gradient `dy` shaped like its output: `(dx,
/// dweight, dbias)`. The forward's loops with each multiply-add turned into its two partial
/// derivatives, so it is as plainly right as the forward; tests check it against the forward by
/// the adjoint identity `Σ y·dy = Σ x·dx = Σ w·dw` (a bias-free conv is bilinear).
#[allow(clippy::too_many_arguments)]
pub fn conv1d_backward(
    x: &Array,
    weight: &Array,
    dy: &Array,
    stride: usize,
    dilation: usize,
    groups: usize,
    padding: Padding,
) -> Result<(Array, Array, Vec<f64>), OpsError> {
    const OP: &str = "reference::conv1d_backward";
    // The forward validates everything and gives the output shape dy must have.
    let y = conv1d(x, weight, None, stride, dilation, groups, padding)?;
    if dy.shape != y.shape {
        return Err(OpsError::ShapeMismatch {
            op: OP,
            what: "dy",
            expected: format!("{:?}", y.shape),
            got: dy.shape.clone(),
        });
    }
    let (b, c, l) = (x.shape[0], x.shape[1], x.shape[2]);
    let (o, cg, k) = (weight.shape[0], weight.shape[1], weight.shape[2]);
    let left = conv_output(l, k, stride, dilation, padding)?.left;
    let lo = y.shape[2];
    let og = o / groups;
    let mut dx = vec![0.0; x.values.len()];
    let mut dw = vec![0.0; weight.values.len()];
    let mut db = vec![0.0; o];
    for bi in 0..b {
        for (oi, db_o) in db.iter_mut().enumerate() {
            let g = oi / og;
            for t in 0..lo {
                let up = dy.values[(bi * o + oi) * lo + t];
                *db_o += up;
                for ci in 0..cg {
                    let cin = g * cg + ci;
                    for ki in 0..k {
                        let p = (t * stride + ki * dilation) as isize - left as isize;
                        if p >= 0 && (p as usize) < l {
                            let xi = (bi * c + cin) * l + p as usize;
                            let wi = (oi * cg + ci) * k + ki;
                            dx[xi] += up * weight.values[wi];
                            dw[wi] += up * x.values[xi];
                        }
                    }
                }
            }
        }
    }
    Ok((
        Array {
            values: dx,
            shape: x.shape.clone(),
        },
        Array {
            values: dw,
            shape: weight.shape.clone(),
        },
        db,
    ))
}
