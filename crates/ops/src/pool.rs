//! Global pooling over the length axis (Burn 0.22 has no global max pool).

use burn::tensor::Tensor;

use crate::OpsError;

fn check(x: &Tensor<3>, op: &'static str) -> Result<[usize; 3], OpsError> {
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

/// Keras `GlobalMaxPooling1D` on channels-first data: `[batch, channels, length]` →
/// `[batch, channels]`.
pub fn global_max_pool1d(x: Tensor<3>) -> Result<Tensor<2>, OpsError> {
    let [b, c, _] = check(&x, "global_max_pool1d")?;
    // widen's CPU kernel where it serves the device: one pass, and a backward that writes each
    // gradient at its argmax.
    if let Some(y) = crate::cpu::global_max_pool(&x) {
        return Ok(y);
    }
    Ok(x.max_dim(2).reshape([b, c]))
}

/// Keras `GlobalAveragePooling1D` on channels-first data: `[batch, channels, length]` →
/// `[batch, channels]`.
pub fn global_avg_pool1d(x: Tensor<3>) -> Result<Tensor<2>, OpsError> {
    let [b, c, _] = check(&x, "global_avg_pool1d")?;
    Ok(x.mean_dim(2).reshape([b, c]))
}
