//! Finiteness checks at API boundaries (a NaN in the input should be an error the user sees,
//! not a model that silently outputs NaN).

use burn::tensor::Tensor;

use crate::OpsError;

/// Returns an error naming `what`, the count of NaN/Inf values and the first flat index if `x`
/// holds any. Reads the tensor back to the host, so call it at boundaries, not in hot loops.
pub fn ensure_finite<const D: usize>(x: &Tensor<D>, what: &str) -> Result<(), OpsError> {
    let values = x
        .to_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| OpsError::Read {
            op: "ensure_finite",
            reason: format!("{e:?}"),
        })?;
    let mut bad = values.iter().enumerate().filter(|(_, v)| !v.is_finite());
    if let Some((first, _)) = bad.next() {
        return Err(OpsError::NonFinite {
            what: what.to_string(),
            count: 1 + bad.count(),
            first,
        });
    }
    Ok(())
}
