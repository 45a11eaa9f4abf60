//! Every trainable tensor's gradient after a backward pass, by `"<layer>.<param>"`, on the host.
//! Shared by the `compare_backends` example and the backend test suite.

use burn::tensor::{Gradients, Tensor, TensorData};
use widen::layers::{Layer, Sequential};

/// `(name, gradient values)` for every trainable tensor in layer order; `None` where the tensor
/// got no gradient.
pub type NamedGradients = Vec<(String, Option<Vec<f32>>)>;

/// Every trainable tensor's gradient in `grads`, read back to the host.
pub fn gradients(model: &Sequential, grads: &Gradients) -> Result<NamedGradients, String> {
    fn host(data: TensorData) -> Result<Vec<f32>, String> {
        data.convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| format!("gradient unreadable: {e:?}"))
    }
    fn grad<const D: usize>(t: Tensor<D>, grads: &Gradients) -> Result<Option<Vec<f32>>, String> {
        t.grad(grads).map(|g| host(g.into_data())).transpose()
    }
    let mut out = Vec::new();
    for layer in model.layers() {
        let name = layer.name();
        let key = |param: &str| format!("{name}.{param}");
        match layer {
            Layer::Conv1d(l) => {
                out.push((key("weight"), grad(l.weight.val(), grads)?));
                if let Some(b) = &l.bias {
                    out.push((key("bias"), grad(b.val(), grads)?));
                }
            }
            Layer::Dense(l) => {
                out.push((key("weight"), grad(l.weight.val(), grads)?));
                if let Some(b) = &l.bias {
                    out.push((key("bias"), grad(b.val(), grads)?));
                }
            }
            Layer::BatchNorm1d(l) => {
                if let Some(g) = &l.gamma {
                    out.push((key("gamma"), grad(g.val(), grads)?));
                }
                if let Some(b) = &l.beta {
                    out.push((key("beta"), grad(b.val(), grads)?));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
