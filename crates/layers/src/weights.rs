//! Named access to a model's tensors: `"<layer>.<param>"`, in widen's (Burn's) layouts. This is
//! what checkpoints, Keras import and the expansion adapters read and write.

use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};

use crate::{Layer, LayerError, Sequential};

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

fn info(layer: &str, param: &str, shape: &[usize]) -> WeightInfo {
    WeightInfo {
        layer: layer.to_string(),
        param: param.to_string(),
        shape: shape.to_vec(),
    }
}

fn unknown(layer: &str, param: &str) -> LayerError {
    LayerError::config(layer, format!("layer has no tensor named `{param}`"))
}

fn upload<const D: usize>(
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

fn set_param<const D: usize>(
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

fn set_state(
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

impl Layer {
    /// The layer's stored tensors.
    pub fn weight_infos(&self) -> Vec<WeightInfo> {
        let n = self.name();
        match self {
            Layer::Conv1d(l) => {
                let mut v = vec![info(n, "weight", &l.weight.dims())];
                if let Some(b) = &l.bias {
                    v.push(info(n, "bias", &b.dims()));
                }
                v
            }
            Layer::Dense(l) => {
                let mut v = vec![info(n, "weight", &l.weight.dims())];
                if let Some(b) = &l.bias {
                    v.push(info(n, "bias", &b.dims()));
                }
                v
            }
            Layer::BatchNorm1d(l) => {
                let c = [l.channels()];
                let mut v = Vec::new();
                if l.gamma.is_some() {
                    v.push(info(n, "gamma", &c));
                }
                if l.beta.is_some() {
                    v.push(info(n, "beta", &c));
                }
                v.push(info(n, "moving_mean", &c));
                v.push(info(n, "moving_variance", &c));
                v
            }
            Layer::Normalization(l) => {
                let c = [l.channels()];
                vec![info(n, "mean", &c), info(n, "variance", &c)]
            }
            _ => Vec::new(),
        }
    }

    /// Reads one tensor.
    pub fn weight(&self, param: &str) -> Result<TensorData, LayerError> {
        let n = self.name();
        let data = match (self, param) {
            (Layer::Conv1d(l), "weight") => l.weight.val().into_data(),
            (Layer::Conv1d(l), "bias") => l
                .bias
                .as_ref()
                .ok_or_else(|| unknown(n, param))?
                .val()
                .into_data(),
            (Layer::Dense(l), "weight") => l.weight.val().into_data(),
            (Layer::Dense(l), "bias") => l
                .bias
                .as_ref()
                .ok_or_else(|| unknown(n, param))?
                .val()
                .into_data(),
            (Layer::BatchNorm1d(l), "gamma") => l
                .gamma
                .as_ref()
                .ok_or_else(|| unknown(n, param))?
                .val()
                .into_data(),
            (Layer::BatchNorm1d(l), "beta") => l
                .beta
                .as_ref()
                .ok_or_else(|| unknown(n, param))?
                .val()
                .into_data(),
            (Layer::BatchNorm1d(l), "moving_mean") => l.moving_mean.value_sync().into_data(),
            (Layer::BatchNorm1d(l), "moving_variance") => {
                l.moving_variance.value_sync().into_data()
            }
            (Layer::Normalization(l), "mean") => l.mean.value_sync().into_data(),
            (Layer::Normalization(l), "variance") => l.variance.value_sync().into_data(),
            _ => return Err(unknown(n, param)),
        };
        Ok(data)
    }

    /// Replaces one tensor; the shape must match and every value be finite.
    pub fn set_weight(&mut self, param: &str, data: TensorData) -> Result<(), LayerError> {
        let n = self.name().to_string();
        let n = n.as_str();
        match (self, param) {
            (Layer::Conv1d(l), "weight") => set_param(&mut l.weight, n, param, data),
            (Layer::Conv1d(l), "bias") => set_param(
                l.bias.as_mut().ok_or_else(|| unknown(n, param))?,
                n,
                param,
                data,
            ),
            (Layer::Dense(l), "weight") => set_param(&mut l.weight, n, param, data),
            (Layer::Dense(l), "bias") => set_param(
                l.bias.as_mut().ok_or_else(|| unknown(n, param))?,
                n,
                param,
                data,
            ),
            (Layer::BatchNorm1d(l), "gamma") => set_param(
                l.gamma.as_mut().ok_or_else(|| unknown(n, param))?,
                n,
                param,
                data,
            ),
            (Layer::BatchNorm1d(l), "beta") => set_param(
                l.beta.as_mut().ok_or_else(|| unknown(n, param))?,
                n,
                param,
                data,
            ),
            (Layer::BatchNorm1d(l), "moving_mean") => set_state(&mut l.moving_mean, n, param, data),
            (Layer::BatchNorm1d(l), "moving_variance") => {
                set_state(&mut l.moving_variance, n, param, data)
            }
            (Layer::Normalization(l), "mean") => set_state(&mut l.mean, n, param, data),
            (Layer::Normalization(l), "variance") => set_state(&mut l.variance, n, param, data),
            _ => Err(unknown(n, param)),
        }
    }
}

impl Sequential {
    /// Every stored tensor, in layer order.
    pub fn weight_infos(&self) -> Vec<WeightInfo> {
        self.layers.iter().flat_map(Layer::weight_infos).collect()
    }

    fn layer_named(&self, layer: &str) -> Result<&Layer, LayerError> {
        self.layers
            .iter()
            .find(|l| l.name() == layer)
            .ok_or_else(|| LayerError::config(layer, "no layer with this name in the model"))
    }

    /// Reads `"<layer>.<param>"`.
    pub fn weight(&self, layer: &str, param: &str) -> Result<TensorData, LayerError> {
        self.layer_named(layer)?.weight(param)
    }

    /// Replaces `"<layer>.<param>"`; the shape must match and every value be finite.
    pub fn set_weight(
        &mut self,
        layer: &str,
        param: &str,
        data: TensorData,
    ) -> Result<(), LayerError> {
        let l = self
            .layers
            .iter_mut()
            .find(|l| l.name() == layer)
            .ok_or_else(|| LayerError::config(layer, "no layer with this name in the model"))?;
        l.set_weight(param, data)
    }
}
