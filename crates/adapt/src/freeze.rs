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
    /// The kernel's layer.
    pub layer: String,
    /// The kernel's parameter id.
    pub param: ParamId,
    /// 1 where the kernel may move, 0 where it must not, in the kernel's shape (rank 2 or 3).
    pub mask: TensorData,
}

impl GradientMask {
    /// Multiplies the kernel's gradient by the mask.
    pub fn apply(&self, grads: &mut GradientsParams) {
        fn masked<const D: usize>(m: &GradientMask, grads: &mut GradientsParams) {
            if let Some(g) = grads.remove::<D>(m.param) {
                let mask = Tensor::<D>::from_data(m.mask.clone(), &g.device());
                grads.register(m.param, g * mask);
            }
        }
        match self.mask.shape().len() {
            2 => masked::<2>(self, grads),
            3 => masked::<3>(self, grads),
            _ => {}
        }
    }
}

/// Freezes everything but what `expansion` added: for a projection, the projection trains; for
/// widened kernels, only their new slices train (returned as masks to apply to gradients) and
/// their other tensors are frozen. Frozen BatchNorm layers run in inference mode, as in Keras.
pub fn freeze_base(expansion: Expansion) -> Result<(Sequential, Vec<GradientMask>), AdaptError> {
    let Expansion {
        model,
        map,
        adapted_layers,
        strategy,
    } = expansion;
    let region = if matches!(strategy, Strategy::Projection { .. }) {
        None
    } else {
        Some(crate::input_region(&model, false)?)
    };
    let mut masks = Vec::new();
    let model = model.try_map_layers(|layer| -> Result<Layer, AdaptError> {
        let name = layer.name().to_string();
        if !adapted_layers.contains(&name) {
            return Ok(layer.freeze());
        }
        let Some(region) = &region else {
            return Ok(layer); // the projection trains as a whole
        };
        let Some(view) = region.consumers.iter().find(|c| c.name == name) else {
            // A per-channel layer on the way (BatchNorm, Normalization): kept as trained.
            return Ok(layer.freeze());
        };
        let c = map.new;
        let shape = view.shape(c);
        let (o, k) = (view.outer, view.inner);
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
        let (id, layer) = match layer {
            Layer::Conv1d(mut conv) => {
                conv.bias = conv.bias.map(|b| b.set_require_grad(false));
                (conv.weight.id, Layer::Conv1d(conv))
            }
            Layer::Dense(mut dense) => {
                dense.bias = dense.bias.map(|b| b.set_require_grad(false));
                (dense.weight.id, Layer::Dense(dense))
            }
            other => {
                let Some(id) = kernel_id(&other, view.param) else {
                    return Err(AdaptError::CannotWiden {
                        name,
                        kind: other.keras_class().to_string(),
                        reason: "its input kernel cannot be found to mask".into(),
                    });
                };
                (id, other)
            }
        };
        masks.push(GradientMask {
            layer: name,
            param: id,
            mask: TensorData::new(m, shape),
        });
        Ok(layer)
    })?;
    Ok((model, masks))
}

/// The id of the first float parameter of `layer` whose shape matches its stored `param`
/// (a recurrent layer's input kernel).
fn kernel_id(layer: &Layer, param: &str) -> Option<ParamId> {
    struct Find {
        dims: Vec<usize>,
        found: Option<ParamId>,
    }
    impl burn::module::ModuleVisitor for Find {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            if self.found.is_none() && p.val().dims().as_slice() == self.dims.as_slice() {
                self.found = Some(p.id);
            }
        }
    }
    let dims = layer.weight(param).ok()?.shape().to_vec();
    let mut v = Find { dims, found: None };
    layer.visit(&mut v);
    v.found
}

/// Unfreezes the whole model (fine-tune everything after the new parts settled).
pub fn unfreeze_all(model: Sequential) -> Sequential {
    model.unfreeze()
}
