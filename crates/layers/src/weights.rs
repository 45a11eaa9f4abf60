//! Named access to a model's tensors: `"<layer>.<param>"`, in widen's (Burn's) layouts. This is
//! what checkpoints, Keras import and the expansion adapters read and write.

use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};

use crate::LayerError;

/// One stored tensor of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightInfo {
    /// Layer name.
    pub layer: String,
    /// Parameter name within the layer (`weight`, `bias`, `gamma`, `beta`, `moving_mean`,
    /// `moving_variance`).
    pub param: String,
    /// Shape.
    pub shape: Vec<usize>,
}

impl WeightInfo {
    /// `"<layer>.<param>"`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.layer, self.param)
    }
}

pub(crate) fn upload<const D: usize>(
    layer: &str,
    param: &str,
    data: TensorData,
    expected: [usize; D],
    device: &Device,
) -> Result<Tensor<D>, LayerError> {
    if data.shape().as_slice() != expected.as_slice() {
        return Err(LayerError::WeightShape {
            path: "(in memory)".into(),
            tensor: format!("{layer}.{param}"),
            expected: expected.to_vec(),
            got: format!("{:?}", data.shape().as_slice()),
        });
    }
    // The fallible conversion: `convert` panics on a dtype it cannot cast.
    let values = data
        .try_to_vec_as::<f32>()
        .map_err(|e| LayerError::config(layer, format!("tensor `{param}` unreadable: {e:?}")))?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(LayerError::config(
            layer,
            format!("tensor `{param}` holds a non-finite value at flat index {i}"),
        ));
    }
    Ok(Tensor::from_data(TensorData::new(values, expected), device))
}

pub(crate) fn set_param<const D: usize>(
    slot: &mut Param<Tensor<D>>,
    layer: &str,
    param: &str,
    data: TensorData,
) -> Result<(), LayerError> {
    let value = slot.val();
    let t = upload(layer, param, data, value.dims(), &value.device())?;
    *slot = Param::from_tensor(t);
    Ok(())
}

pub(crate) fn set_state(
    slot: &mut RunningState<Tensor<1>>,
    layer: &str,
    param: &str,
    data: TensorData,
) -> Result<(), LayerError> {
    let value = slot.value_sync();
    let t = upload(layer, param, data, value.dims(), &value.device())?;
    *slot = RunningState::new(t);
    Ok(())
}

/// Reads `weight` or `bias` of a kernel-and-bias layer (Conv1D, Dense).
pub(crate) fn kernel_or_bias<const D: usize>(
    layer: &str,
    weight: &Param<Tensor<D>>,
    bias: Option<&Param<Tensor<1>>>,
    param: &str,
) -> Result<TensorData, LayerError> {
    match (param, bias) {
        ("weight", _) => Ok(weight.val().into_data()),
        ("bias", Some(b)) => Ok(b.val().into_data()),
        _ => Err(crate::layer::unknown_param(layer, param)),
    }
}

/// Replaces `weight` or `bias` of a kernel-and-bias layer (Conv1D, Dense).
pub(crate) fn set_kernel_or_bias<const D: usize>(
    layer: &str,
    weight: &mut Param<Tensor<D>>,
    bias: Option<&mut Param<Tensor<1>>>,
    param: &str,
    data: TensorData,
) -> Result<(), LayerError> {
    match (param, bias) {
        ("weight", _) => set_param(weight, layer, param, data),
        ("bias", Some(b)) => set_param(b, layer, param, data),
        _ => Err(crate::layer::unknown_param(layer, param)),
    }
}
