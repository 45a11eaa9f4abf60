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
        "{path}: .npy dtype `{descr}` is not supported (expected little-endian float32 '<f4' or float64 '<f8')"
    )]
    Dtype { path: String, descr: String },
    /// A float64 value that float32 cannot hold (it would become infinite).
    #[error(
        "{path}: value {value:e} at flat index {index} is out of float32 range (|x| > 3.4e38); widen computes in float32"
    )]
    Range {
        path: String,
        index: usize,
        value: f64,
    },
    /// The output could not be written (or was refused).
    #[error(transparent)]
    Output(widen_guard::OutputError),
    /// The array would not fit in the memory budget.
    #[error(transparent)]
    Budget(#[from] widen_guard::BudgetError),
    /// The data section is shorter or longer than the shape says.
    #[error("{path}: the shape {shape:?} needs {expected} bytes of data, the file has {got}")]
    Size {
        path: String,
        shape: Vec<usize>,
        /// Bytes the shape needs (as `u128`: a hostile shape overflows `usize`).
        expected: u128,
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

/// A value of the header dictionary: the Python literals numpy writes there.
#[derive(Debug, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// The header dictionary, read by the grammar numpy's `safe_eval` accepts for it: `{`, then
/// `'key': value` pairs separated by commas (a trailing comma allowed), then `}`, then only
/// spaces and a final newline. Keys are quoted strings; values are quoted strings, `True` /
/// `False`, or tuples of non-negative integers. Anything else — a duplicate key, an unclosed
/// brace, an unquoted word — is refused rather than guessed at.
struct HeaderParser<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> HeaderParser<'a> {
    fn skip_space(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        if self.text.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn require(&mut self, byte: u8, what: &str) -> Result<(), String> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(format!("expected {what} at byte {} of the header", self.at))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let quote = match self.text.get(self.at) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.at)),
        };
        let start = self.at + 1;
        let len = self.text[start..]
            .iter()
            .position(|&b| b == quote || b == b'\\' || b == b'\n')
            .ok_or("an unterminated string")?;
        if self.text[start + len] != quote {
            return Err("escapes and line breaks inside header strings are not supported".into());
        }
        self.at = start + len + 1;
        String::from_utf8(self.text[start..start + len].to_vec())
            .map_err(|_| "a header string is not UTF-8".to_string())
    }

    fn integer(&mut self) -> Result<usize, String> {
        self.skip_space();
        let start = self.at;
        while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = std::str::from_utf8(&self.text[start..self.at]).unwrap_or_default();
        if digits.is_empty() {
            return Err(format!(
                "expected a non-negative integer in the shape at byte {start}"
            ));
        }
        digits
            .parse()
            .map_err(|_| format!("shape entry {digits} is too large"))
    }

    fn value(&mut self) -> Result<Literal, String> {
        self.skip_space();
        match self.text.get(self.at) {
            Some(b'\'' | b'"') => Ok(Literal::Str(self.string()?)),
            Some(b'(') => {
                self.at += 1;
                let mut dims = Vec::new();
                let mut one_without_comma = false;
                loop {
                    if self.eat(b')') {
                        break;
                    }
                    dims.push(self.integer()?);
                    if self.eat(b',') {
                        continue;
                    }
                    self.require(b')', "`,` or `)` in the shape")?;
                    one_without_comma = dims.len() == 1;
                    break;
                }
                // `(3)` is the integer 3 in Python, not a tuple.
                if one_without_comma {
                    return Err("the shape `(n)` is not a tuple; numpy writes `(n,)`".into());
                }
                Ok(Literal::Tuple(dims))
            }
            _ => {
                for (word, value) in [("True", true), ("False", false)] {
                    if self.text[self.at..].starts_with(word.as_bytes()) {
                        self.at += word.len();
                        return Ok(Literal::Bool(value));
                    }
                }
                Err(format!(
                    "expected a string, True/False or a tuple at byte {}",
                    self.at
                ))
            }
        }
    }

    fn dict(mut self) -> Result<Vec<(String, Literal)>, String> {
        self.require(b'{', "`{`")?;
        let mut entries: Vec<(String, Literal)> = Vec::new();
        loop {
            if self.eat(b'}') {
                break;
            }
            if self.at >= self.text.len() {
                return Err("the dictionary is not closed (no `}`)".into());
            }
            let key = self.string()?;
            // Refused at once: at most three entries are ever kept, so the duplicate check stays
            // constant work however long a hostile header is.
            if !matches!(key.as_str(), "descr" | "fortran_order" | "shape") {
                return Err(format!(
                    "unknown header key '{key}' (expected exactly 'descr', 'fortran_order', 'shape')"
                ));
            }
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(format!("the key '{key}' appears twice"));
            }
            self.require(b':', "`:` after a key")?;
            let value = self.value()?;
            entries.push((key, value));
            if self.eat(b',') {
                continue;
            }
            self.require(b'}', "`,` or `}` (the dictionary is not closed)")?;
            break;
        }
        self.skip_space();
        if self.at != self.text.len() {
            return Err(format!(
                "unexpected text after the dictionary at byte {}",
                self.at
            ));
        }
        Ok(entries)
    }
}

/// The header of `.npy` bytes: dtype, shape and where the data starts (C order only).
fn header(bytes: &[u8], path: &str) -> Result<(String, Vec<usize>, usize), NpyError> {
    let fmt = |reason: &str| NpyError::Format {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if !bytes.starts_with(MAGIC) {
        return Err(fmt("missing the \\x93NUMPY magic"));
    }
    if bytes.len() < 10 {
        return Err(fmt(&format!(
            "truncated: {} bytes, while the magic, version and header length take 10",
            bytes.len()
        )));
    }
    let (header_len, offset) = match (bytes[6], bytes[7]) {
        (1, 0) => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        (2 | 3, 0) if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        (major, minor) => {
            return Err(fmt(&format!(
                "format version {major}.{minor} is unknown (expected 1.0, 2.0 or 3.0)"
            )));
        }
    };
    // numpy's own reader refuses headers over 10000 bytes (`max_header_size`); a float array's
    // header is under 200.
    if header_len > 10_000 {
        return Err(fmt(&format!(
            "the header is {header_len} bytes, over numpy's limit of 10000"
        )));
    }
    let end = offset
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            fmt(&format!(
                "the header length field says {header_len} bytes but the file has {} after it",
                bytes.len() - offset
            ))
        })?;
    let entries = HeaderParser {
        text: &bytes[offset..end],
        at: 0,
    }
    .dict()
    .map_err(|reason| fmt(&format!("bad header: {reason}")))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (key, value) in entries {
        match (key.as_str(), value) {
            ("descr", Literal::Str(s)) => descr = Some(s),
            ("fortran_order", Literal::Bool(b)) => fortran = Some(b),
            ("shape", Literal::Tuple(t)) => shape = Some(t),
            ("descr" | "fortran_order" | "shape", other) => {
                return Err(fmt(&format!("'{key}' has the wrong type: {other:?}")));
            }
            (other, _) => {
                return Err(fmt(&format!(
                    "unknown header key '{other}' (expected exactly 'descr', 'fortran_order', 'shape')"
                )));
            }
        }
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return Err(fmt(
            "the header must have the keys 'descr', 'fortran_order' and 'shape'",
        ));
    };
    if fortran {
        return Err(fmt(
            "Fortran order is not supported; save with np.ascontiguousarray",
        ));
    }
    Ok((descr, shape, end))
}

/// Parses `.npy` bytes; `path` only names the file in errors.
pub fn parse(bytes: &[u8], path: &str) -> Result<NpyArray, NpyError> {
    let (descr, shape, end) = header(bytes, path)?;
    let width = match descr.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        other => {
            return Err(NpyError::Dtype {
                path: path.to_string(),
                descr: other.to_string(),
            });
        }
    };
    let data = &bytes[end..];
    let expected = shape
        .iter()
        .try_fold(width, |acc: usize, &d| acc.checked_mul(d))
        .filter(|&n| n == data.len());
    let Some(expected) = expected else {
        let needed = shape
            .iter()
            .fold(width as u128, |acc, &d| acc.saturating_mul(d as u128));
        return Err(NpyError::Size {
            path: path.to_string(),
            shape,
            expected: needed,
            got: data.len(),
        });
    };
    // The data is in memory already; the f32 copy is what is new.
    widen_guard::budget().check(
        &format!("reading {path} (shape {shape:?})"),
        (expected / width * 4) as u128,
    )?;
    let values = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        let mut out = Vec::with_capacity(expected / 8);
        for (i, c) in data.chunks_exact(8).enumerate() {
            let v = f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            let narrowed = v as f32;
            if v.is_finite() && !narrowed.is_finite() {
                return Err(NpyError::Range {
                    path: path.to_string(),
                    index: i,
                    value: v,
                });
            }
            out.push(narrowed);
        }
        out
    };
    Ok(NpyArray { shape, values })
}

/// Reads an `.npy` file.
pub fn read(path: &Path) -> Result<NpyArray, NpyError> {
    let (bytes, label) = read_bytes(path)?;
    parse(&bytes, &label)
}

/// Parses a 1-D array of class labels: integers (`<i1`…`<i8`, `|u1`…`<u8`), integral floats,
/// or strings (`<U*`, `|S*`), each as text (so `3` and `"walking"` are both names).
pub fn parse_labels(bytes: &[u8], path: &str) -> Result<Vec<String>, NpyError> {
    let (descr, shape, end) = header(bytes, path)?;
    let fmt = |reason: String| NpyError::Format {
        path: path.to_string(),
        reason,
    };
    let n = match shape.as_slice() {
        [n] => *n,
        [n, 1] => *n,
        other => {
            return Err(fmt(format!(
                "labels must be a 1-D array [cases], got shape {other:?}"
            )));
        }
    };
    let data = &bytes[end..];
    let (kind, width) = descr
        .split_at_checked(2)
        .and_then(|(k, w)| Some((k, w.parse::<usize>().ok()?)))
        .ok_or_else(|| NpyError::Dtype {
            path: path.to_string(),
            descr: descr.clone(),
        })?;
    let unit = if matches!(kind, "<U" | ">U") { 4 } else { 1 };
    let item = width
        .checked_mul(unit)
        .filter(|&w| w > 0)
        .ok_or_else(|| fmt(format!("dtype {descr} has no width")))?;
    let needed = (n as u128).saturating_mul(item as u128);
    if needed != data.len() as u128 {
        return Err(NpyError::Size {
            path: path.to_string(),
            shape,
            expected: needed,
            got: data.len(),
        });
    }
    // Each label becomes a short string: budget what the caller sized.
    widen_guard::budget().check(
        &format!("reading the labels in {path}"),
        (n as u128).saturating_mul(32 + item as u128),
    )?;
    let int = |c: &[u8], signed: bool| -> i128 {
        let mut b = [0u8; 16];
        b[..c.len()].copy_from_slice(c);
        if signed && c.last().is_some_and(|&h| h & 0x80 != 0) {
            b[c.len()..].fill(0xff);
        }
        i128::from_le_bytes(b)
    };
    let mut out = Vec::with_capacity(n);
    for (i, c) in data.chunks_exact(item).enumerate() {
        let text = match (kind, width) {
            ("<i" | "|i", 1 | 2 | 4 | 8) => int(c, true).to_string(),
            ("<u" | "|u", 1 | 2 | 4 | 8) => int(c, false).to_string(),
            ("<f", 4 | 8) => {
                let v = if width == 4 {
                    f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64
                } else {
                    f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                };
                if !(v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15) {
                    return Err(fmt(format!(
                        "label {v} at index {i} is not a whole number (class labels are integers or strings)"
                    )));
                }
                format!("{}", v as i64)
            }
            ("<U", _) => {
                let mut s = String::new();
                for u in c.chunks_exact(4) {
                    let code = u32::from_le_bytes([u[0], u[1], u[2], u[3]]);
                    if code == 0 {
                        break;
                    }
                    s.push(char::from_u32(code).ok_or_else(|| {
                        fmt(format!("label {i} holds an invalid character {code:#x}"))
                    })?);
                }
                s
            }
            ("|S", _) => {
                let t = c.split(|&b| b == 0).next().unwrap_or(&[]);
                String::from_utf8(t.to_vec()).map_err(|_| fmt(format!("label {i} is not UTF-8")))?
            }
            _ => {
                return Err(NpyError::Dtype {
                    path: path.to_string(),
                    descr: descr.clone(),
                });
            }
        };
        out.push(text);
    }
    Ok(out)
}

/// Reads a labels `.npy` file (see [`parse_labels`]).
pub fn read_labels(path: &Path) -> Result<Vec<String>, NpyError> {
    let (bytes, label) = read_bytes(path)?;
    parse_labels(&bytes, &label)
}

fn read_bytes(path: &Path) -> Result<(Vec<u8>, String), NpyError> {
    // The file's bytes plus their f32 copy (at most as large).
    let bytes = widen_guard::read_bounded(path, "the .npy file", 2).map_err(|e| match e {
        widen_guard::InputError::Budget(b) => NpyError::Budget(b),
        other => NpyError::Io {
            path: path.display().to_string(),
            reason: match other {
                widen_guard::InputError::NotRegular { kind, .. } => {
                    format!("is {kind}, not a regular file; expected an .npy file")
                }
                widen_guard::InputError::Io { source, .. } => source.to_string(),
                _ => other.to_string(),
            },
        },
    })?;
    Ok((bytes, path.display().to_string()))
}

/// Encodes float32 values of `shape` as `.npy` (version 1.0).
pub fn encode(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    // Version 2.0 only when the header outgrows version 1.0's 16-bit length.
    let version = if header.len() + 64 > usize::from(u16::MAX) {
        2
    } else {
        1
    };
    encode_raw(version, &header, &data)
}

/// An `.npy` file of format `version` (1, 2 or 3) with `header` written as given, padded the
/// way numpy pads (the data starts on a 64-byte boundary, the header ends in `\n`), then
/// `data`. Nothing is checked: tests and fuzzers use it to build files that should be refused.
pub fn encode_raw(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut h = header.to_string();
    h.push_str(&" ".repeat((64 - (prefix + h.len() + 1) % 64) % 64));
    h.push('\n');
    let mut out = Vec::with_capacity(prefix + h.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Writes float32 values of `shape` to `path` atomically (a temporary beside it, then a
/// rename): a killed run leaves the previous file or none, never a truncated one.
pub fn write(path: &Path, shape: &[usize], values: &[f32]) -> Result<(), NpyError> {
    widen_guard::write_file_atomically(path, &encode(shape, values)).map_err(NpyError::Output)
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

    /// The message `parse` refuses `bytes` with.
    fn refusal(bytes: &[u8]) -> String {
        parse(bytes, "t.npy").unwrap_err().to_string()
    }

    /// Headers numpy writes (`np.save` of a 0-d, a 1-d and a 2-d array; version 2.0; double
    /// quotes, which `ast.literal_eval` accepts) are read.
    #[test]
    fn headers_numpy_writes_are_accepted() {
        let four = 1.5f32.to_le_bytes();
        let scalar = encode_raw(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
            &four,
        );
        assert_eq!(parse(&scalar, "a").unwrap().shape, Vec::<usize>::new());
        let one = encode_raw(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
            &four,
        );
        assert_eq!(parse(&one, "a").unwrap().values, vec![1.5]);
        let v2 = encode_raw(
            2,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }",
            &four,
        );
        assert_eq!(parse(&v2, "a").unwrap().shape, vec![1, 1]);
        let dq = encode_raw(
            1,
            "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1,)}",
            &four,
        );
        assert_eq!(parse(&dq, "a").unwrap().values, vec![1.5]);
    }

    /// Headers numpy's `safe_eval` + key check refuses are refused here too, with the reason.
    #[test]
    fn headers_numpy_rejects_are_refused() {
        let four = [0u8; 4];
        let cases = [
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'shape': (1,), }",
                "appears twice",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), ",
                "not closed",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 'yes', 'shape': (1,), }",
                "wrong type",
            ),
            ("{'descr': '<f4', 'shape': (1,), }", "must have the keys"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1, }",
                "unknown header key 'x'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 'y', }",
                "unknown header key",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
                "non-negative integer",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1.0,), }",
                "`,` or `)`",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1), }",
                "not a tuple",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } x",
                "after the dictionary",
            ),
            (
                "{'descr': '<f4', 'fortran_order': false, 'shape': (1,), }",
                "True/False",
            ),
            (
                "{'descr': '<f4, 'fortran_order': False, 'shape': (1,), }",
                "expected `,` or `}`",
            ),
        ];
        for (header, reason) in cases {
            let err = parse(&encode_raw(1, header, &four), "h.npy").unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, NpyError::Format { .. }), "{header}: {text}");
            assert!(text.contains(reason), "{header}: {text}");
        }
        let mut bad_version = encode(&[1], &[1.0]);
        bad_version[6] = 9;
        assert!(refusal(&bad_version).contains("version 9.0"));
        let mut past_end = encode(&[1], &[1.0]);
        past_end[8..10].copy_from_slice(&10_000u16.to_le_bytes());
        assert!(refusal(&past_end).contains("header length"));
        // A version-2 header may declare up to 4 GiB; numpy reads at most 10000 bytes of it, and
        // a dictionary of a million keys is refused at its first unknown key.
        let keys: String = (0..1_000_000).map(|i| format!("'k{i}': True, ")).collect();
        let long = encode_raw(2, &format!("{{{keys}}}"), &[]);
        assert!(refusal(&long).contains("over numpy's limit"));
        let many = encode_raw(
            1,
            &format!("{{'k0': True, {}}}", "'descr': '<f4', ".repeat(100)),
            &[],
        );
        assert!(refusal(&many).contains("unknown header key 'k0'"));
        let big_endian = encode_raw(
            1,
            "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
            &four,
        );
        assert!(matches!(
            parse(&big_endian, "b"),
            Err(NpyError::Dtype { .. })
        ));
    }

    /// float64 values float32 cannot hold are named as out of range, not as NaN/Inf.
    #[test]
    fn float64_beyond_float32_is_out_of_range() {
        let mut data = Vec::new();
        for v in [1.0f64, -1e300] {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let bytes = encode_raw(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
            &data,
        );
        let err = parse(&bytes, "r.npy").unwrap_err();
        assert!(matches!(err, NpyError::Range { index: 1, .. }), "{err}");
        assert!(err.to_string().contains("out of float32 range"), "{err}");
        // f32::MAX itself still fits.
        let fits = encode_raw(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
            &f64::from(f32::MAX).to_le_bytes(),
        );
        assert_eq!(parse(&fits, "f").unwrap().values, vec![f32::MAX]);
    }

    /// Whatever the shape, a parse that succeeds holds exactly the shape's element count.
    #[test]
    fn declared_shapes_never_outgrow_the_data() {
        let huge = encode_raw(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100), }",
            &[0u8; 16],
        );
        assert!(matches!(parse(&huge, "h"), Err(NpyError::Size { .. })));
        let overflow = encode_raw(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 2), }",
            &[],
        );
        assert!(matches!(parse(&overflow, "o"), Err(NpyError::Size { .. })));
    }
}
