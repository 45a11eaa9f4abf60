//! Layout transposes between Keras (channels-last data, `[k, in, out]` kernels) and Burn
//! (channels-first data, `[out, in, k]` kernels).

use burn::tensor::Tensor;

/// `[batch, length, channels]` → `[batch, channels, length]`.
pub fn to_channels_first(x: Tensor<3>) -> Tensor<3> {
    x.swap_dims(1, 2)
}

/// `[batch, channels, length]` → `[batch, length, channels]`.
pub fn to_channels_last(x: Tensor<3>) -> Tensor<3> {
    x.swap_dims(1, 2)
}

/// Keras Conv1D kernel `[k, in / groups, out]` → Burn `[out, in / groups, k]`.
pub fn keras_kernel_to_burn(kernel: Tensor<3>) -> Tensor<3> {
    kernel.permute([2, 1, 0])
}

/// Burn kernel `[out, in / groups, k]` → Keras `[k, in / groups, out]`.
pub fn burn_kernel_to_keras(weight: Tensor<3>) -> Tensor<3> {
    weight.permute([2, 1, 0])
}
