//! Fan computation: the single place that turns a kernel shape into `fan_in` and `fan_out`.
//!
//! Keras and PyTorch store kernels in different axis orders, and the fans of a weight differ with
//! the order. Both conventions live here, each following its framework exactly, so an initializer
//! never reasons about axes itself.
//!
//! | shape rank | [`KernelLayout::Keras`]                     | [`KernelLayout::Torch`]                     |
//! |------------|---------------------------------------------|---------------------------------------------|
//! | 1 (bias)   | `fan_in = fan_out = n`                      | `fan_in = fan_out = n`                      |
//! | 2 (dense)  | `[in, out]`: `fan_in = in`, `fan_out = out` | `[out, in]`: `fan_in = in`, `fan_out = out` |
//! | ≥ 3 (conv) | `[k.., in, out]`: `rf·in`, `rf·out`         | `[out, in/groups, k..]`: `in/groups·rf`, `out·rf` |
//!
//! `rf` is the receptive field: the product of the spatial (kernel) dimensions. For the Torch
//! layout `fan_out` is `shape[0]·rf` exactly as `torch.nn.init._calculate_fan_in_and_fan_out`
//! computes it, i.e. `out·k` and not `out/groups·k`, even for grouped convolutions. For rank 1
//! PyTorch raises; we use Keras' rule (both fans equal the length) so biases can be initialised
//! on their own, though a bias usually wants its weight's fans (see
//! [`Initializer::sample_with_fans`](crate::Initializer::sample_with_fans)).

use crate::error::InitError;

/// Axis order of a kernel, which decides how its fans are computed.
///
/// There is no default on purpose: Burn's own layers store Torch order, Keras checkpoints the
/// other, and guessing wrong silently changes every fan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum KernelLayout {
    /// Keras / TensorFlow: dense `[in, out]`, conv `[k.., in/groups, out]` (channels last).
    Keras,
    /// PyTorch: dense `[out, in]`, conv `[out, in/groups, k..]` (Burn uses this order too).
    Torch,
}

/// Which fan a variance-scaling initializer divides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum FanMode {
    /// `fan_in`: preserves the variance of activations in the forward pass.
    FanIn,
    /// `fan_out`: preserves the variance of gradients in the backward pass.
    FanOut,
    /// `(fan_in + fan_out) / 2`: the Glorot compromise between the two.
    FanAvg,
}

/// The number of inputs and outputs one unit of a weight connects to.
///
/// A zero fan means "unknown"; initializers that need it return [`InitError::ZeroFan`] instead
/// of dividing by zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Fans {
    /// Inputs per output unit.
    pub fan_in: usize,
    /// Outputs per input unit.
    pub fan_out: usize,
}

impl Fans {
    /// Fans given directly, for callers who know them (e.g. a bias taking its weight's fans).
    pub fn new(fan_in: usize, fan_out: usize) -> Self {
        Self { fan_in, fan_out }
    }

    /// Fans of a tensor of `shape` stored in `layout` (see the [module docs](self) for the rules).
    ///
    /// # Errors
    ///
    /// [`InitError::EmptyShape`] for `[]`, [`InitError::ZeroDim`] when a dimension is zero and
    /// [`InitError::ShapeOverflow`] when a fan does not fit in `usize`.
    pub fn from_shape(shape: &[usize], layout: KernelLayout) -> Result<Self, InitError> {
        check_shape(shape)?;
        let overflow = || InitError::ShapeOverflow {
            shape: shape.to_vec(),
        };
        match (shape, layout) {
            ([n], _) => Ok(Self::new(*n, *n)),
            ([fan_in, fan_out], KernelLayout::Keras) => Ok(Self::new(*fan_in, *fan_out)),
            ([fan_out, fan_in], KernelLayout::Torch) => Ok(Self::new(*fan_in, *fan_out)),
            (_, KernelLayout::Keras) => {
                let (spatial, channels) = shape.split_at(shape.len() - 2);
                let rf = product(spatial).ok_or_else(overflow)?;
                Ok(Self::new(
                    rf.checked_mul(channels[0]).ok_or_else(overflow)?,
                    rf.checked_mul(channels[1]).ok_or_else(overflow)?,
                ))
            }
            (_, KernelLayout::Torch) => {
                let (channels, spatial) = shape.split_at(2);
                let rf = product(spatial).ok_or_else(overflow)?;
                Ok(Self::new(
                    channels[1].checked_mul(rf).ok_or_else(overflow)?,
                    channels[0].checked_mul(rf).ok_or_else(overflow)?,
                ))
            }
        }
    }

    /// The divisor `n` of a variance-scaling initializer (`std = sqrt(scale / n)`) for `mode`.
    ///
    /// # Errors
    ///
    /// [`InitError::ZeroFan`] when a fan the mode uses is zero. For [`FanMode::FanAvg`] both
    /// must be known: averaging with a missing fan would silently halve the divisor.
    pub fn scaling_divisor(&self, mode: FanMode) -> Result<f64, InitError> {
        let needed_known = match mode {
            FanMode::FanIn => self.fan_in > 0,
            FanMode::FanOut => self.fan_out > 0,
            FanMode::FanAvg => self.fan_in > 0 && self.fan_out > 0,
        };
        if !needed_known {
            return Err(InitError::ZeroFan {
                mode,
                fan_in: self.fan_in,
                fan_out: self.fan_out,
            });
        }
        // usize -> f64 is exact up to 2^53, far beyond any real kernel.
        let (fan_in, fan_out) = (self.fan_in as f64, self.fan_out as f64);
        Ok(match mode {
            FanMode::FanIn => fan_in,
            FanMode::FanOut => fan_out,
            FanMode::FanAvg => (fan_in + fan_out) / 2.0,
        })
    }
}

/// Checks that `shape` describes a non-empty tensor and returns its element count.
///
/// # Errors
///
/// [`InitError::EmptyShape`], [`InitError::ZeroDim`] or [`InitError::ShapeOverflow`].
pub fn check_shape(shape: &[usize]) -> Result<usize, InitError> {
    if shape.is_empty() {
        return Err(InitError::EmptyShape);
    }
    if let Some(axis) = shape.iter().position(|&d| d == 0) {
        return Err(InitError::ZeroDim {
            shape: shape.to_vec(),
            axis,
        });
    }
    product(shape).ok_or_else(|| InitError::ShapeOverflow {
        shape: shape.to_vec(),
    })
}

/// Product of `dims` (1 for none), or `None` on overflow.
fn product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Keras' `_compute_fans`, transcribed independently of [`Fans::from_shape`].
    fn keras_reference(shape: &[usize]) -> (usize, usize) {
        match shape.len() {
            1 => (shape[0], shape[0]),
            2 => (shape[0], shape[1]),
            n => {
                let rf: usize = shape[..n - 2].iter().product();
                (rf * shape[n - 2], rf * shape[n - 1])
            }
        }
    }

    /// PyTorch's `_calculate_fan_in_and_fan_out`, transcribed independently.
    fn torch_reference(shape: &[usize]) -> (usize, usize) {
        let rf: usize = shape[2..].iter().product();
        (shape[1] * rf, shape[0] * rf)
    }

    #[test]
    fn keras_conv_fans_follow_keras_formula() {
        // (kernel, in, out) triples for conv1d, plus conv2d and dense shapes.
        let shapes: &[&[usize]] = &[
            &[3, 16, 32],
            &[5, 1, 7],
            &[1, 8, 8],
            &[7, 4, 2],
            &[3, 3, 16, 32],
            &[2, 3, 4, 5, 6],
            &[16, 32],
            &[1, 1],
            &[9],
        ];
        for &shape in shapes {
            let fans = Fans::from_shape(shape, KernelLayout::Keras).unwrap();
            let (fan_in, fan_out) = keras_reference(shape);
            assert_eq!((fans.fan_in, fans.fan_out), (fan_in, fan_out), "{shape:?}");
        }
    }

    #[test]
    fn keras_conv1d_fans_are_k_times_channels() {
        for (k, cin, cout) in [(3, 16, 32), (5, 2, 9), (1, 4, 4)] {
            let fans = Fans::from_shape(&[k, cin, cout], KernelLayout::Keras).unwrap();
            assert_eq!(fans, Fans::new(k * cin, k * cout));
        }
    }

    #[test]
    fn torch_conv_fans_follow_pytorch_formula_including_groups() {
        // (out, in, groups, k): the stored kernel is [out, in / groups, k].
        for (out, cin, groups, k) in [
            (32, 16, 1, 3),
            (32, 16, 4, 3),
            (8, 8, 8, 5),
            (6, 4, 2, 1),
            (12, 6, 3, 7),
        ] {
            let shape = [out, cin / groups, k];
            let fans = Fans::from_shape(&shape, KernelLayout::Torch).unwrap();
            assert_eq!((fans.fan_in, fans.fan_out), torch_reference(&shape));
            // PyTorch: fan_in counts the inputs of one group; fan_out is out·k, not out/groups·k.
            assert_eq!(fans.fan_in, cin / groups * k);
            assert_eq!(fans.fan_out, out * k);
        }
        for shape in [[32usize, 16, 3, 3], [4, 2, 5, 1]] {
            let fans = Fans::from_shape(&shape, KernelLayout::Torch).unwrap();
            assert_eq!((fans.fan_in, fans.fan_out), torch_reference(&shape));
        }
    }

    #[test]
    fn dense_fans_swap_with_layout() {
        let keras = Fans::from_shape(&[16, 32], KernelLayout::Keras).unwrap();
        let torch = Fans::from_shape(&[32, 16], KernelLayout::Torch).unwrap();
        assert_eq!(keras, Fans::new(16, 32));
        assert_eq!(torch, keras);
    }

    #[test]
    fn bias_fans_equal_length_in_both_layouts() {
        for layout in [KernelLayout::Keras, KernelLayout::Torch] {
            assert_eq!(Fans::from_shape(&[10], layout).unwrap(), Fans::new(10, 10));
        }
    }

    #[test]
    fn bad_shapes_are_typed_errors() {
        assert_eq!(
            Fans::from_shape(&[], KernelLayout::Keras),
            Err(InitError::EmptyShape)
        );
        assert_eq!(
            Fans::from_shape(&[3, 0, 2], KernelLayout::Torch),
            Err(InitError::ZeroDim {
                shape: vec![3, 0, 2],
                axis: 1
            })
        );
        assert!(matches!(
            Fans::from_shape(&[usize::MAX, 2, 2], KernelLayout::Keras),
            Err(InitError::ShapeOverflow { .. })
        ));
    }

    #[test]
    fn scaling_divisor_uses_the_mode_and_refuses_missing_fans() {
        let fans = Fans::new(48, 96);
        assert_eq!(fans.scaling_divisor(FanMode::FanIn), Ok(48.0));
        assert_eq!(fans.scaling_divisor(FanMode::FanOut), Ok(96.0));
        assert_eq!(fans.scaling_divisor(FanMode::FanAvg), Ok(72.0));

        let no_fan_out = Fans::new(48, 0);
        assert_eq!(no_fan_out.scaling_divisor(FanMode::FanIn), Ok(48.0));
        for mode in [FanMode::FanOut, FanMode::FanAvg] {
            assert!(matches!(
                no_fan_out.scaling_divisor(mode),
                Err(InitError::ZeroFan { fan_out: 0, .. })
            ));
        }
    }
}
