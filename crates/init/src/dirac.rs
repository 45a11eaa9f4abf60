//! Identity kernels for [`Initializer::Identity`](crate::Initializer::Identity).
//!
//! PyTorch's `dirac_` semantics: a convolution with this kernel (and "same" padding) passes its
//! input through unchanged, channel for channel, which lets a freshly widened or inserted layer
//! start as a no-op. Per group `g` and `i < min(out/groups, in/groups)`, the centre tap
//! (`k / 2` on every spatial axis, integer division) of output channel `g·out_per_group + i`
//! reading input channel `i` of its group is 1; everything else is 0. For a 2-D (dense) weight
//! this is the identity matrix, rectangular if need be.

use crate::error::InitError;
use crate::fans::KernelLayout;

/// Row-major identity kernel of `shape` in `layout`.
///
/// The caller has checked that `shape` is non-empty with non-zero dimensions and that its
/// element count fits in `usize`.
///
/// # Errors
///
/// [`InitError::UnsupportedRank`] for rank 1 and [`InitError::InvalidGroups`] when `groups` is 0
/// or does not divide the output channels.
pub(crate) fn dirac(
    shape: &[usize],
    layout: KernelLayout,
    groups: usize,
) -> Result<Vec<f64>, InitError> {
    let rank = shape.len();
    if rank < 2 {
        return Err(InitError::UnsupportedRank {
            initializer: "Identity",
            expected: "2 or more (a dense or conv kernel)",
            shape: shape.to_vec(),
        });
    }
    // Channel axes and spatial axes for each layout.
    let (out_axis, in_axis, spatial) = match layout {
        KernelLayout::Torch => (0, 1, 2..rank),
        KernelLayout::Keras => (rank - 1, rank - 2, 0..rank - 2),
    };
    let (out_channels, in_per_group) = (shape[out_axis], shape[in_axis]);
    if groups == 0 || out_channels % groups != 0 {
        return Err(InitError::InvalidGroups {
            groups,
            out_channels,
        });
    }
    let out_per_group = out_channels / groups;

    let strides = row_major_strides(shape);
    // Offset of the centre tap over all spatial axes.
    let centre: usize = spatial.map(|axis| shape[axis] / 2 * strides[axis]).sum();

    let mut values = vec![0.0; shape.iter().product()];
    for g in 0..groups {
        for i in 0..out_per_group.min(in_per_group) {
            let out = g * out_per_group + i;
            values[out * strides[out_axis] + i * strides[in_axis] + centre] = 1.0;
        }
    }
    Ok(values)
}

/// Strides of a row-major (C order) array of `shape`.
fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn dense_identity_is_eye_in_both_layouts() {
        for layout in [KernelLayout::Keras, KernelLayout::Torch] {
            for (r, c) in [(3, 3), (2, 5), (5, 2)] {
                let w = dirac(&[r, c], layout, 1).unwrap();
                for i in 0..r {
                    for j in 0..c {
                        assert_eq!(w[i * c + j], f64::from(u8::from(i == j)), "{r}x{c} {i},{j}");
                    }
                }
            }
        }
    }

    #[test]
    fn keras_kernel_is_the_torch_kernel_with_axes_moved() {
        // Torch [out, in/groups, k] against Keras [k, in/groups, out].
        for (out, in_per_group, k, groups) in
            [(4, 4, 3, 1), (6, 2, 5, 3), (3, 5, 1, 1), (8, 2, 3, 2)]
        {
            let torch = dirac(&[out, in_per_group, k], KernelLayout::Torch, groups).unwrap();
            let keras = dirac(&[k, in_per_group, out], KernelLayout::Keras, groups).unwrap();
            for o in 0..out {
                for i in 0..in_per_group {
                    for t in 0..k {
                        let torch_at = torch[(o * in_per_group + i) * k + t];
                        let keras_at = keras[(t * in_per_group + i) * out + o];
                        assert_eq!(torch_at, keras_at);
                    }
                }
            }
        }
    }

    #[test]
    fn ones_sit_at_the_centre_tap_of_each_group() {
        let (out, in_per_group, k, groups) = (6, 2, 5, 3);
        let w = dirac(&[out, in_per_group, k], KernelLayout::Torch, groups).unwrap();
        let ones: Vec<(usize, usize, usize)> = (0..w.len())
            .filter(|&n| w[n] == 1.0)
            .map(|n| (n / (in_per_group * k), n / k % in_per_group, n % k))
            .collect();
        assert_eq!(
            ones,
            vec![
                (0, 0, 2),
                (1, 1, 2),
                (2, 0, 2),
                (3, 1, 2),
                (4, 0, 2),
                (5, 1, 2)
            ]
        );
        assert_eq!(w.iter().filter(|&&x| x != 0.0).count(), ones.len());
    }

    #[test]
    fn conv2d_kernels_get_a_centre_tap_on_every_spatial_axis() {
        let w = dirac(&[2, 2, 3, 3], KernelLayout::Torch, 1).unwrap();
        // out 0 / in 0 / (1, 1), out 1 / in 1 / (1, 1).
        let expected: Vec<usize> = vec![4, 9 * 3 + 4];
        let ones: Vec<usize> = (0..w.len()).filter(|&n| w[n] == 1.0).collect();
        assert_eq!(ones, expected);
    }

    #[test]
    fn bad_rank_and_groups_are_typed_errors() {
        assert!(matches!(
            dirac(&[4], KernelLayout::Torch, 1),
            Err(InitError::UnsupportedRank { .. })
        ));
        assert_eq!(
            dirac(&[6, 2, 3], KernelLayout::Torch, 4),
            Err(InitError::InvalidGroups {
                groups: 4,
                out_channels: 6
            })
        );
        assert!(matches!(
            dirac(&[6, 2, 3], KernelLayout::Torch, 0),
            Err(InitError::InvalidGroups { groups: 0, .. })
        ));
    }
}
