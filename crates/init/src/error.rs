//! The one error type of the crate.
//!
//! Every caller input an initializer can refuse (a shape, a parameter, a set of fans) is checked
//! up front and reported here, so nothing in this crate panics on bad input. Each variant names
//! what was expected and what came.

use crate::fans::FanMode;

/// Why an initializer refused to produce values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The shape has no dimensions; a tensor needs at least one.
    #[error("expected a shape with at least one dimension, got an empty shape")]
    EmptyShape,

    /// A dimension is zero, so the tensor would be empty and its fans undefined.
    #[error("expected every dimension to be at least 1, got {shape:?} (axis {axis} is 0)")]
    ZeroDim {
        /// The shape as given.
        shape: Vec<usize>,
        /// The first axis whose size is zero.
        axis: usize,
    },

    /// The number of elements (or a fan) does not fit in `usize`.
    #[error("expected a shape whose element count fits in usize, got {shape:?}")]
    ShapeOverflow {
        /// The shape as given.
        shape: Vec<usize>,
    },

    /// The tensor rank does not suit the initializer.
    #[error("{initializer} expects a tensor of rank {expected}, got shape {shape:?}")]
    UnsupportedRank {
        /// The initializer that refused.
        initializer: &'static str,
        /// The ranks it accepts, in words.
        expected: &'static str,
        /// The shape as given.
        shape: Vec<usize>,
    },

    /// A parameter is NaN or infinite.
    #[error("expected {name} to be finite, got {value}")]
    NonFinite {
        /// The parameter's name.
        name: &'static str,
        /// The value given.
        value: f64,
    },

    /// A parameter is finite but outside its domain (a negative standard deviation, say).
    #[error("expected {name} to be {expected}, got {value}")]
    OutOfRange {
        /// The parameter's name.
        name: &'static str,
        /// The domain, in words (`"> 0"`, `">= 0"`).
        expected: &'static str,
        /// The value given.
        value: f64,
    },

    /// A uniform range is empty or reversed.
    #[error("expected low < high for a uniform range, got low = {low}, high = {high}")]
    EmptyRange {
        /// Lower bound as given.
        low: f64,
        /// Upper bound as given.
        high: f64,
    },

    /// The fan an initializer needs is zero (typically: the caller did not know it).
    #[error(
        "expected the fans {mode:?} uses to be at least 1 (0 means unknown), \
         got fan_in = {fan_in}, fan_out = {fan_out}"
    )]
    ZeroFan {
        /// The fan mode that needed the missing fan.
        mode: FanMode,
        /// `fan_in` as given.
        fan_in: usize,
        /// `fan_out` as given.
        fan_out: usize,
    },

    /// `groups` is zero or does not divide the output channels.
    #[error(
        "expected groups >= 1 dividing the {out_channels} output channels, got groups = {groups}"
    )]
    InvalidGroups {
        /// Groups as given.
        groups: usize,
        /// Output channels of the kernel.
        out_channels: usize,
    },

    /// The parameters are valid but a drawn value overflows `f32` (e.g. `Constant(1e40)`).
    #[error("expected every value to be finite in f32, got {value} from {initializer}")]
    NotRepresentable {
        /// The initializer that produced the value.
        initializer: &'static str,
        /// The offending value, before conversion.
        value: f64,
    },

    /// The host buffer for the values could not be allocated.
    #[error("could not allocate {len} values on the host")]
    Allocation {
        /// Number of `f32` values requested.
        len: usize,
    },
}
