//! Host-side reads of tensor data.

use burn::tensor::TensorData;

use crate::AdaptError;

pub(crate) fn values(data: TensorData) -> Result<Vec<f32>, AdaptError> {
    data.convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| AdaptError::Data(format!("tensor unreadable: {e:?}")))
}
