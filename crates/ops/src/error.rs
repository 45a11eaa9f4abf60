use thiserror::Error;

/// Everything that can go wrong in a widen-ops call. Each variant names what was expected and
/// what came, so a caller can act on it without reading our source.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OpsError {
    /// The input's channel count does not match what the kernel was built for.
    #[error("{op}: expected {expected} input channels, got {got}")]
    ChannelMismatch {
        op: &'static str,
        expected: usize,
        got: usize,
    },
    /// A tensor has the wrong shape.
    #[error("{op}: {what} has shape {got:?}, expected {expected}")]
    ShapeMismatch {
        op: &'static str,
        what: &'static str,
        expected: String,
        got: Vec<usize>,
    },
    /// A size that must be positive is zero.
    #[error("{op}: {what} must be > 0, got 0")]
    ZeroSize {
        op: &'static str,
        what: &'static str,
    },
    /// Keras (and TensorFlow) refuse strides > 1 together with dilation > 1; so do we.
    #[error(
        "{op}: stride {stride} > 1 together with dilation {dilation} > 1 is not supported (as in Keras)"
    )]
    StrideWithDilation {
        op: &'static str,
        stride: usize,
        dilation: usize,
    },
    /// The (padded) input is shorter than the dilated kernel, so the output would be empty.
    #[error(
        "{op}: input length {length} (+ padding {pad_left}+{pad_right}) is shorter than the dilated kernel {effective_kernel}; the output would be empty"
    )]
    InputTooShort {
        op: &'static str,
        length: usize,
        pad_left: usize,
        pad_right: usize,
        effective_kernel: usize,
    },
    /// Channels (or filters) are not divisible by the group count.
    #[error("{op}: {what} = {count} is not divisible by groups = {groups}")]
    GroupsDoNotDivide {
        op: &'static str,
        what: &'static str,
        count: usize,
        groups: usize,
    },
    /// A channel index or index map is invalid (out of range, repeated, wrong length).
    #[error("{op}: {reason}")]
    BadChannelIndex { op: &'static str, reason: String },
    /// A tensor holds NaN or infinity where finite values are required.
    #[error("{what}: {count} non-finite value(s) (NaN or Inf), first at flat index {first}")]
    NonFinite {
        what: String,
        count: usize,
        first: usize,
    },
    /// Reading a tensor back from its device failed.
    #[error("{op}: could not read tensor data: {reason}")]
    Read { op: &'static str, reason: String },
}
