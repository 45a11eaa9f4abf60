//! A checked 1-D convolution: the same maths as `burn::tensor::module::conv1d`, with Keras'
//! padding semantics and typed errors where Burn would panic. On flex and ndarray (f32) it runs
//! widen's CPU kernel ([`crate::cpu`]), elsewhere Burn's.

use burn::tensor::{Tensor, module, ops::ConvOptions};

use crate::{OpsError, Padding, conv_output};

/// Hyper-parameters of a 1-D convolution, independent of its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv1dSpec {
    /// Step between windows (Keras `strides`).
    pub stride: usize,
    /// Spacing between kernel taps (Keras `dilation_rate`).
    pub dilation: usize,
    /// Channel groups; input channels and filters must both divide by it.
    pub groups: usize,
    /// Length-axis padding.
    pub padding: Padding,
}

impl Default for Conv1dSpec {
    fn default() -> Self {
        Self {
            stride: 1,
            dilation: 1,
            groups: 1,
            padding: Padding::Valid,
        }
    }
}

impl Conv1dSpec {
    /// Spec with the given padding and stride/dilation/groups of 1.
    pub fn new(padding: Padding) -> Self {
        Self {
            padding,
            ..Self::default()
        }
    }
    /// Sets the stride.
    pub fn with_stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }
    /// Sets the dilation.
    pub fn with_dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }
    /// Sets the group count.
    pub fn with_groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
}

const OP: &str = "conv1d";

/// Validates shapes and returns Burn's options for `x: [batch, channels, length]` and
/// `weight: [filters, channels / groups, kernel]`.
fn check(
    x: [usize; 3],
    weight: [usize; 3],
    bias: Option<[usize; 1]>,
    spec: &Conv1dSpec,
) -> Result<ConvOptions<1>, OpsError> {
    let [batch, channels, length] = x;
    let [filters, per_group, kernel] = weight;
    for (what, v) in [
        ("batch", batch),
        ("input channels", channels),
        ("input length", length),
        ("filters", filters),
        ("kernel channels", per_group),
        ("kernel size", kernel),
        ("groups", spec.groups),
    ] {
        if v == 0 {
            return Err(OpsError::ZeroSize { op: OP, what });
        }
    }
    let expected = per_group.saturating_mul(spec.groups);
    if channels != expected {
        return Err(OpsError::ChannelMismatch {
            op: OP,
            expected,
            got: channels,
        });
    }
    if filters % spec.groups != 0 {
        return Err(OpsError::GroupsDoNotDivide {
            op: OP,
            what: "filters",
            count: filters,
            groups: spec.groups,
        });
    }
    if let Some([b]) = bias
        && b != filters
    {
        return Err(OpsError::ShapeMismatch {
            op: OP,
            what: "bias",
            expected: format!("[{filters}]"),
            got: vec![b],
        });
    }
    let geo = conv_output(length, kernel, spec.stride, spec.dilation, spec.padding)?;
    Ok(ConvOptions::new_with_padding(
        [spec.stride],
        [(geo.left, geo.right)],
        [spec.dilation],
        spec.groups,
    ))
}

fn geometry_of(
    x: [usize; 3],
    weight: [usize; 3],
    options: &ConvOptions<1>,
) -> crate::cpu::Geometry {
    let [batch, channels, length] = x;
    let [filters, _, kernel] = weight;
    let [(pad_left, pad_right)] = options.padding;
    crate::cpu::Geometry {
        batch,
        channels,
        length,
        filters,
        kernel,
        stride: options.stride[0],
        dilation: options.dilation[0],
        groups: options.groups,
        pad_left,
        pad_right,
    }
}

/// The kernel geometry of a checked call (same errors as [`conv1d`]).
pub(crate) fn geometry(
    x: &Tensor<3>,
    weight: &Tensor<3>,
    bias: Option<&Tensor<1>>,
    spec: &Conv1dSpec,
) -> Result<crate::cpu::Geometry, OpsError> {
    let options = check(x.dims(), weight.dims(), bias.map(|b| b.dims()), spec)?;
    Ok(geometry_of(x.dims(), weight.dims(), &options))
}

/// Channels-first convolution: `x: [batch, channels, length]`, `weight: [filters,
/// channels / groups, kernel]` (Burn/PyTorch layout), optional `bias: [filters]`; returns
/// `[batch, filters, length_out]` with `length_out` from [`conv_output`].
pub fn conv1d(
    x: Tensor<3>,
    weight: Tensor<3>,
    bias: Option<Tensor<1>>,
    spec: &Conv1dSpec,
) -> Result<Tensor<3>, OpsError> {
    let options = check(
        x.dims(),
        weight.dims(),
        bias.as_ref().map(|b| b.dims()),
        spec,
    )?;
    let geometry = geometry_of(x.dims(), weight.dims(), &options);
    if let Some(y) = crate::cpu::conv1d(&x, &weight, bias.as_ref(), geometry) {
        return Ok(y);
    }
    if options.groups > 1 {
        return Ok(grouped_by_parts(x, weight, bias, options));
    }
    Ok(module::conv1d(x, weight, bias, options))
}

/// A grouped convolution as one ungrouped convolution per group, concatenated. Burn 0.22.1's
/// ndarray backward of a grouped conv1d panics on some strided shapes (`could not broadcast
/// array from shape [1, 1, 2] to [1, 1, 1]` for batch 1, groups 2, kernel 1, stride 2, length
/// 8); the per-group form has the same value and gradients and never reaches that code.
fn grouped_by_parts(
    x: Tensor<3>,
    weight: Tensor<3>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<1>,
) -> Tensor<3> {
    let groups = options.groups;
    let per_group = x.dims()[1] / groups;
    let filters_per_group = weight.dims()[0] / groups;
    let single =
        ConvOptions::new_with_padding(options.stride, options.padding, options.dilation, 1);
    let parts: Vec<Tensor<3>> = (0..groups)
        .map(|g| {
            module::conv1d(
                x.clone().narrow(1, g * per_group, per_group),
                weight
                    .clone()
                    .narrow(0, g * filters_per_group, filters_per_group),
                bias.clone()
                    .map(|b| b.narrow(0, g * filters_per_group, filters_per_group)),
                single.clone(),
            )
        })
        .collect();
    Tensor::cat(parts, 1)
}

/// Channels-last convolution as Keras runs it: `x: [batch, length, channels]`, output
/// `[batch, length_out, filters]`. The weight keeps Burn's `[filters, channels / groups, kernel]`
/// layout; convert a Keras kernel with [`crate::keras_kernel_to_burn`].
pub fn conv1d_channels_last(
    x: Tensor<3>,
    weight: Tensor<3>,
    bias: Option<Tensor<1>>,
    spec: &Conv1dSpec,
) -> Result<Tensor<3>, OpsError> {
    let y = conv1d(x.swap_dims(1, 2), weight, bias, spec)?;
    Ok(y.swap_dims(1, 2))
}
