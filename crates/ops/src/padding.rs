//! Padding arithmetic with Keras' (TensorFlow's) exact semantics.

use crate::OpsError;

/// How a convolution or pooling window pads the length axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Padding {
    /// No padding; windows that do not fit are dropped.
    #[default]
    Valid,
    /// Output length `ceil(L / stride)`; the total padding is split with the odd element on the
    /// right, as TensorFlow does (PyTorch's `same` puts it on the left for even kernels).
    Same,
    /// `dilation · (k − 1)` zeros on the left only, so output `t` never sees input after `t`.
    Causal,
    /// Explicit `(left, right)` zeros.
    Explicit { left: usize, right: usize },
}

/// The result of [`conv_output`]: padding split and output length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    /// Zeros before the first element.
    pub left: usize,
    /// Zeros after the last element.
    pub right: usize,
    /// Output length.
    pub length_out: usize,
}

/// Output length and padding split of a 1-D window op (convolution or pooling), as Keras computes
/// them, for any length, kernel, stride and dilation.
///
/// Errors: zero length/kernel/stride/dilation, stride > 1 with dilation > 1, or an input shorter
/// than the dilated kernel (empty output).
pub fn conv_output(
    length: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
) -> Result<ConvGeometry, OpsError> {
    const OP: &str = "conv_output";
    for (what, v) in [
        ("input length", length),
        ("kernel size", kernel),
        ("stride", stride),
        ("dilation", dilation),
    ] {
        if v == 0 {
            return Err(OpsError::ZeroSize { op: OP, what });
        }
    }
    if stride > 1 && dilation > 1 {
        return Err(OpsError::StrideWithDilation {
            op: OP,
            stride,
            dilation,
        });
    }
    // Saturating: a silly kernel must give an error, not an overflow panic.
    let effective = dilation.saturating_mul(kernel - 1).saturating_add(1);
    let (left, right) = match padding {
        Padding::Valid => (0, 0),
        Padding::Explicit { left, right } => (left, right),
        Padding::Causal => (dilation.saturating_mul(kernel - 1), 0),
        Padding::Same => {
            let out = length.div_ceil(stride);
            let needed = ((out - 1) * stride).saturating_add(effective);
            let total = needed.saturating_sub(length);
            (total / 2, total - total / 2)
        }
    };
    let padded = length.saturating_add(left).saturating_add(right);
    if padded < effective {
        return Err(OpsError::InputTooShort {
            op: OP,
            length,
            pad_left: left,
            pad_right: right,
            effective_kernel: effective,
        });
    }
    Ok(ConvGeometry {
        left,
        right,
        length_out: (padded - effective) / stride + 1,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Table-driven: (L, k, s, d, padding) → (left, right, out), worked by hand from Keras'
    /// `compute_conv_output_shape` and TF's SAME rule; the Keras fixtures check the rest.
    #[test]
    fn keras_table() {
        let cases = [
            (10, 3, 1, 2, Padding::Same, (2, 2, 10)), // Burn 0.22's Same gives length 8 here
            (10, 2, 1, 1, Padding::Same, (0, 1, 10)), // odd element on the right
            (10, 4, 1, 1, Padding::Same, (1, 2, 10)),
            (10, 4, 2, 1, Padding::Same, (1, 1, 5)),
            (9, 3, 2, 1, Padding::Same, (1, 1, 5)),
            (10, 3, 1, 2, Padding::Causal, (4, 0, 10)),
            (10, 3, 2, 1, Padding::Causal, (2, 0, 5)),
            (50, 3, 1, 1, Padding::Valid, (0, 0, 48)),
            (10, 3, 2, 1, Padding::Valid, (0, 0, 4)),
            (5, 5, 1, 1, Padding::Valid, (0, 0, 1)),
            (
                7,
                3,
                1,
                1,
                Padding::Explicit { left: 2, right: 0 },
                (2, 0, 7),
            ),
        ];
        for (l, k, s, d, p, want) in cases {
            let g = conv_output(l, k, s, d, p).unwrap();
            assert_eq!(
                (g.left, g.right, g.length_out),
                want,
                "L{l} k{k} s{s} d{d} {p:?}"
            );
        }
    }

    #[test]
    fn errors() {
        assert!(matches!(
            conv_output(10, 3, 2, 2, Padding::Valid),
            Err(OpsError::StrideWithDilation { .. })
        ));
        assert!(matches!(
            conv_output(2, 3, 1, 1, Padding::Valid),
            Err(OpsError::InputTooShort { .. })
        ));
        assert!(matches!(
            conv_output(0, 3, 1, 1, Padding::Same),
            Err(OpsError::ZeroSize { .. })
        ));
        assert!(matches!(
            conv_output(5, 0, 1, 1, Padding::Same),
            Err(OpsError::ZeroSize { .. })
        ));
        assert!(matches!(
            conv_output(5, 3, 0, 1, Padding::Same),
            Err(OpsError::ZeroSize { .. })
        ));
        assert!(matches!(
            conv_output(5, usize::MAX, 1, 1, Padding::Valid),
            Err(OpsError::InputTooShort { .. })
        ));
    }
}
