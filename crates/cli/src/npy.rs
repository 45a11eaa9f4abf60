//! Reading and writing NumPy `.npy` files (format versions 1–3): little-endian float32 or
//! float64, C order. Small enough to own: a header dictionary and raw values.

use std::path::Path;

use thiserror::Error;

/// What can be wrong with an `.npy` file.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    /// Not an `.npy` file, or a header widen cannot use.
    #[error("{path}: not a usable .npy file: {reason}")]
    Format { path: String, reason: String },
    /// A dtype widen does not read.
    #[error(
        "{path}: dtype `{descr}` is not supported (expected little-endian float32 '<f4' or float64 '<f8')"
    )]
    Dtype { path: String, descr: String },
    /// The data section is shorter or longer than the shape says.
    #[error("{path}: the shape {shape:?} needs {expected} bytes of data, the file has {got}")]
    Size {
        path: String,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
}

/// A float array read from `.npy`, as f32.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

const MAGIC: &[u8] = b"\x93NUMPY";

fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Parses `.npy` bytes; `path` only names the file in errors.
pub fn parse(bytes: &[u8], path: &str) -> Result<NpyArray, NpyError> {
    let fmt = |reason: &str| NpyError::Format {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(fmt("missing the \\x93NUMPY magic"));
    }
    let (header_len, offset) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(fmt(&format!("format version {v} is unknown"))),
    };
    let end = offset
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| fmt("the header is truncated"))?;
    let header =
        std::str::from_utf8(&bytes[offset..end]).map_err(|_| fmt("the header is not text"))?;
    let descr = field(header, "descr")
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.split('\'').next())
        .ok_or_else(|| fmt("no 'descr' in the header"))?;
    let fortran =
        field(header, "fortran_order").ok_or_else(|| fmt("no 'fortran_order' in the header"))?;
    if fortran.starts_with("True") {
        return Err(fmt(
            "Fortran order is not supported; save with np.ascontiguousarray",
        ));
    }
    let shape_text = field(header, "shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| fmt("no 'shape' in the header"))?;
    let shape = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| fmt(&format!("shape entry `{s}` is not a size")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let width = match descr {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(NpyError::Dtype {
                path: path.to_string(),
                descr: other.to_string(),
            });
        }
    };
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| fmt("the shape overflows"))?;
    let data = &bytes[end..];
    let expected = count.saturating_mul(width);
    if data.len() != expected {
        return Err(NpyError::Size {
            path: path.to_string(),
            shape,
            expected,
            got: data.len(),
        });
    }
    let values = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect()
    };
    Ok(NpyArray { shape, values })
}

/// Reads an `.npy` file.
pub fn read(path: &Path) -> Result<NpyArray, NpyError> {
    let bytes = std::fs::read(path).map_err(|e| NpyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse(&bytes, &path.display().to_string())
}

/// Encodes float32 values of `shape` as `.npy` (version 1.0).
pub fn encode(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Pad so the data starts on a 64-byte boundary, header ending in '\n'.
    let unpadded = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + values.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes float32 values of `shape` to `path`.
pub fn write(path: &Path, shape: &[usize], values: &[f32]) -> Result<(), NpyError> {
    std::fs::write(path, encode(shape, values)).map_err(|e| NpyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn round_trip() {
        let values: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bytes = encode(&[2, 3, 4], &values);
        assert_eq!(
            (bytes.len() - values.len() * 4) % 64,
            0,
            "data is 64-byte aligned"
        );
        let a = parse(&bytes, "x.npy").unwrap();
        assert_eq!(a.shape, vec![2, 3, 4]);
        assert_eq!(a.values, values);
        let one = parse(&encode(&[3], &[1.0, 2.0, 3.0]), "y.npy").unwrap();
        assert_eq!(one.shape, vec![3]);
    }

    /// Bytes exactly as `np.save` writes `np.arange(6, dtype=np.float64).reshape(2, 3)`.
    #[test]
    fn reads_numpy_float64() {
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = header.to_string();
        let pad = (64 - (10 + h.len() + 1) % 64) % 64;
        h.push_str(&" ".repeat(pad));
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        for i in 0..6 {
            bytes.extend_from_slice(&(i as f64).to_le_bytes());
        }
        let a = parse(&bytes, "z.npy").unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.values, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn bad_files_are_errors() {
        assert!(matches!(parse(b"hello", "a"), Err(NpyError::Format { .. })));
        let good = encode(&[2, 2], &[1.0; 4]);
        assert!(matches!(
            parse(&good[..good.len() - 3], "a"),
            Err(NpyError::Size { .. })
        ));
        assert!(matches!(
            parse(&good[..20], "a"),
            Err(NpyError::Format { .. })
        ));
        // Same-length edits of the header bytes (the file is not UTF-8 as a whole).
        let edit = |from: &[u8], to: &[u8]| {
            let mut b = good.clone();
            let at = b.windows(from.len()).position(|w| w == from).unwrap();
            b[at..at + to.len()].copy_from_slice(to);
            b
        };
        let int = edit(b"<f4", b"<i4");
        assert!(matches!(parse(&int, "a"), Err(NpyError::Dtype { .. })));
        let fortran = edit(b"False", b"True ");
        assert!(matches!(parse(&fortran, "a"), Err(NpyError::Format { .. })));
    }
}
