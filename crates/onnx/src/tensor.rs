//! `TensorProto` ↔ host values: dims checked (non-negative, their product against the memory
//! budget in saturating `u128`) before anything of that size is allocated, the payload's length
//! checked against the dims, floats of every width read as `f32`, integers as `i64`.

use crate::OnnxError;
use crate::proto::{TensorProto, data_type};

/// A constant's values: floats (weights, scalars) or integers (axes, shapes, pads).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Values {
    /// FLOAT, DOUBLE, FLOAT16 and BFLOAT16, rounded to `f32`.
    F32(Vec<f32>),
    /// INT64, INT32 and BOOL.
    I64(Vec<i64>),
}

/// A constant tensor, as read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    /// Its shape (`[]` for a scalar).
    pub dims: Vec<usize>,
    /// Its values, row-major.
    pub values: Values,
}

impl Const {
    /// The element count.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    /// The float values, if it holds floats.
    pub fn floats(&self) -> Option<&[f32]> {
        match &self.values {
            Values::F32(v) => Some(v),
            Values::I64(_) => None,
        }
    }

    /// The integer values, if it holds integers.
    pub fn ints(&self) -> Option<&[i64]> {
        match &self.values {
            Values::I64(v) => Some(v),
            Values::F32(_) => None,
        }
    }

    /// The one value of a constant with one element, as `f64`.
    pub fn scalar(&self) -> Option<f64> {
        match &self.values {
            Values::F32(v) if v.len() == 1 => Some(f64::from(v[0])),
            Values::I64(v) if v.len() == 1 => Some(v[0] as f64),
            _ => None,
        }
    }
}

fn tensor_error(name: &str, reason: impl Into<String>) -> OnnxError {
    OnnxError::Tensor {
        name: name.to_string(),
        reason: reason.into(),
    }
}

/// Decodes an IEEE half's bits.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1f);
    let frac = u32::from(bits & 0x3ff);
    let out = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: frac · 2^-24.
            let v = frac as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (frac << 13),
        _ => sign | ((exp + 112) << 23) | (frac << 13),
    };
    f32::from_bits(out)
}

/// Reads a tensor. `name` is what errors call it (an initializer's or attribute's name).
pub(crate) fn read(t: &TensorProto, name: &str) -> Result<Const, OnnxError> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        let location = t
            .external_data
            .iter()
            .find(|e| e.key == "location")
            .map_or(String::new(), |e| format!(" (`{}`)", e.value));
        return Err(tensor_error(
            name,
            format!(
                "its data is stored outside the model file{location}; widen reads self-contained \
                 models only: save it with onnx.save_model(model, path, \
                 save_as_external_data=False)"
            ),
        ));
    }
    let mut dims = Vec::with_capacity(t.dims.len().min(64));
    for &d in &t.dims {
        let d = usize::try_from(d)
            .map_err(|_| tensor_error(name, format!("dims {:?} has a negative entry", t.dims)))?;
        dims.push(d);
    }
    let (width, float) = match t.data_type {
        data_type::FLOAT => (4, true),
        data_type::DOUBLE => (8, true),
        data_type::FLOAT16 | data_type::BFLOAT16 => (2, true),
        data_type::INT64 => (8, false),
        data_type::INT32 => (4, false),
        data_type::BOOL => (1, false),
        other => {
            return Err(tensor_error(
                name,
                format!(
                    "data type {} is not read: widen takes FLOAT, DOUBLE, FLOAT16 or BFLOAT16 \
                     weights and INT32, INT64 or BOOL constants",
                    data_type::name(other)
                ),
            ));
        }
    };
    // Values are decoded into a vector and then copied into a TensorData: two of the widest.
    let count = widen_guard::budget().check_elements(
        &format!("tensor `{name}` of dims {dims:?}"),
        &dims,
        16,
    )?;
    let from_raw = !t.raw_data.is_empty();
    let stored = if from_raw {
        t.raw_data.len() / width
    } else {
        match t.data_type {
            data_type::FLOAT => t.float_data.len(),
            data_type::DOUBLE => t.double_data.len(),
            data_type::INT64 => t.int64_data.len(),
            _ => t.int32_data.len(),
        }
    };
    if stored != count || (from_raw && !t.raw_data.len().is_multiple_of(width)) {
        return Err(tensor_error(
            name,
            format!(
                "dims {dims:?} need {count} value(s), the tensor holds {} ({})",
                if from_raw {
                    format!("{} bytes of raw data", t.raw_data.len())
                } else {
                    format!("{stored}")
                },
                data_type::name(t.data_type)
            ),
        ));
    }
    let raw = |i: usize| &t.raw_data[i * width..(i + 1) * width];
    let values = if float {
        let v: Vec<f32> = match (t.data_type, from_raw) {
            (data_type::FLOAT, true) => (0..count)
                .map(|i| f32::from_le_bytes([raw(i)[0], raw(i)[1], raw(i)[2], raw(i)[3]]))
                .collect(),
            (data_type::FLOAT, false) => t.float_data.clone(),
            (data_type::DOUBLE, true) => (0..count)
                .map(|i| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(raw(i));
                    f64::from_le_bytes(b) as f32
                })
                .collect(),
            (data_type::DOUBLE, false) => t.double_data.iter().map(|&v| v as f32).collect(),
            (kind, _) => {
                let bits = |i: usize| -> u16 {
                    if from_raw {
                        u16::from_le_bytes([raw(i)[0], raw(i)[1]])
                    } else {
                        (t.int32_data[i] & 0xffff) as u16
                    }
                };
                if kind == data_type::FLOAT16 {
                    (0..count).map(|i| f16_to_f32(bits(i))).collect()
                } else {
                    (0..count)
                        .map(|i| f32::from_bits(u32::from(bits(i)) << 16))
                        .collect()
                }
            }
        };
        Values::F32(v)
    } else {
        let v: Vec<i64> = match (t.data_type, from_raw) {
            (data_type::INT64, true) => (0..count)
                .map(|i| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(raw(i));
                    i64::from_le_bytes(b)
                })
                .collect(),
            (data_type::INT64, false) => t.int64_data.clone(),
            (data_type::INT32, true) => (0..count)
                .map(|i| {
                    i64::from(i32::from_le_bytes([
                        raw(i)[0],
                        raw(i)[1],
                        raw(i)[2],
                        raw(i)[3],
                    ]))
                })
                .collect(),
            (_, true) => (0..count).map(|i| i64::from(raw(i)[0])).collect(),
            (_, false) => t.int32_data.iter().map(|&v| i64::from(v)).collect(),
        };
        Values::I64(v)
    };
    Ok(Const { dims, values })
}

/// A FLOAT tensor in `raw_data` (what PyTorch writes).
pub(crate) fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data_type::FLOAT,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

/// An INT64 tensor in `raw_data`.
pub(crate) fn i64_tensor(name: &str, dims: &[usize], values: &[i64]) -> TensorProto {
    TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: data_type::INT64,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..TensorProto::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_decode() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
        assert!(f16_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn payload_length_must_match_dims() {
        let mut t = f32_tensor("w", &[2, 3], &[1.0; 6]);
        assert!(read(&t, "w").is_ok());
        t.raw_data.pop();
        assert!(matches!(read(&t, "w"), Err(OnnxError::Tensor { .. })));
        let huge = TensorProto {
            dims: vec![1 << 40, 1 << 40],
            data_type: data_type::FLOAT,
            ..TensorProto::default()
        };
        assert!(matches!(read(&huge, "h"), Err(OnnxError::Budget(_))));
        let negative = TensorProto {
            dims: vec![-1],
            data_type: data_type::FLOAT,
            ..TensorProto::default()
        };
        assert!(matches!(
            read(&negative, "n"),
            Err(OnnxError::Tensor { .. })
        ));
    }
}
