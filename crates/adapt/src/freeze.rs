//! Training only what the expansion added: the new kernel slices, or the projection.

use burn::module::{Module, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use widen_layers::{Layer, Sequential};

use crate::{AdaptError, Expansion, Strategy};

/// Zeroes the gradient of the trained slices of a widened kernel, so an optimiser moves only
/// the new slices (with Adam/SGD and no weight decay, a zero gradient from the first step
/// leaves a weight exactly where it is).
#[derive(Debug, Clone)]
pub struct GradientMask {
    /// The kernel's parameter id.
    pub param: ParamId,
    /// 1 where the kernel may move, 0 where it must not: `[filters, C_new, k]`.
    pub mask: Tensor<3>,
}

impl GradientMask {
    /// Multiplies the kernel's gradient by the mask.
    pub fn apply(&self, grads: &mut GradientsParams) {
        if let Some(g) = grads.remove::<3>(self.param) {
            let mask = self.mask.clone().to_device(&g.device());
            grads.register(self.param, g * mask);
        }
    }
}

/// Freezes everything but what `expansion` added: for a projection, the projection trains; for
/// a widened kernel, only its new slices train (returned as a mask to apply to gradients) and
/// its bias is frozen. Frozen BatchNorm layers run in inference mode, as in Keras.
pub fn freeze_base(expansion: Expansion) -> Result<(Sequential, Option<GradientMask>), AdaptError> {
    let Expansion {
        model,
        map,
        adapted_layer,
        strategy,
    } = expansion;
    let mut layers = Vec::with_capacity(model.layers.len());
    let mut mask = None;
    for layer in model.layers {
        if layer.name() != adapted_layer {
            layers.push(layer.freeze());
            continue;
        }
        match (layer, &strategy) {
            (Layer::Conv1d(conv), Strategy::Projection { .. }) => layers.push(Layer::Conv1d(conv)),
            (Layer::Conv1d(mut conv), _) => {
                let [o, c, k] = conv.weight.dims();
                let mut m = vec![0.0f32; o * c * k];
                for oi in 0..o {
                    for (j, s) in map.source.iter().enumerate() {
                        if s.is_none() {
                            for ki in 0..k {
                                m[(oi * c + j) * k + ki] = 1.0;
                            }
                        }
                    }
                }
                let device = conv.weight.val().device();
                mask = Some(GradientMask {
                    param: conv.weight.id,
                    mask: Tensor::from_data(TensorData::new(m, [o, c, k]), &device),
                });
                conv.bias = conv.bias.map(|b| b.set_require_grad(false));
                layers.push(Layer::Conv1d(conv));
            }
            (other, _) => {
                return Err(AdaptError::NotConv1d {
                    name: adapted_layer.clone(),
                    kind: format!("{other:?}").chars().take(40).collect(),
                });
            }
        }
    }
    Ok((
        Sequential {
            layers,
            spec: model.spec,
            shapes: model.shapes,
        },
        mask,
    ))
}

/// Unfreezes the whole model (fine-tune everything after the new parts settled).
pub fn unfreeze_all(model: Sequential) -> Sequential {
    model.unfreeze()
}
