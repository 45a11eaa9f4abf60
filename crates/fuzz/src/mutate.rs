//! Mutators: each takes an input and returns a nearby one. Byte-level edits (flips, sets,
//! inserts, deletes, duplicates, truncation, splicing) find framing bugs; token-aware edits
//! (numbers, keys, lines, delimiters, encodings) keep a text or header mostly well formed so
//! the reader gets past its first checks.

use std::ops::Range;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde_json::{Map, Number, Value};

/// No mutant grows past this: a reader's cost on a larger file says nothing new.
pub const MAX_INPUT: usize = 1 << 20;

/// The seeded random source: one `--seed` reproduces every case.
#[derive(Debug, Clone)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// A stream determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed))
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (0 when `n` is 0). The modulo bias is irrelevant here.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True once in `n` draws.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len()))
    }

    /// A length in `1..=max`, mostly small (most interesting edits are a few bytes).
    pub fn small_len(&mut self, max: usize) -> usize {
        let max = max.max(1);
        let cap = match self.below(4) {
            0 => 4,
            1 => 16,
            2 => 64,
            _ => max,
        };
        1 + self.below(cap.min(max))
    }
}

/// A little-endian integer field at a fixed offset (a container's length prefix).
#[derive(Debug, Clone, Copy)]
pub struct LengthField {
    /// Byte offset of the field.
    pub offset: usize,
    /// Width in bytes: 1, 2, 4 or 8.
    pub width: u8,
}

/// What a target's inputs look like, for the token-aware mutators.
#[derive(Debug, Clone, Copy)]
pub struct Grammar {
    /// Keywords, punctuation and magic bytes worth inserting.
    pub tokens: &'static [&'static [u8]],
    /// Length fields worth overwriting with boundary values.
    pub length_fields: &'static [LengthField],
    /// Text formats weight the token-aware edits higher.
    pub text: bool,
    /// JSON: a third of the mutants are one edit of the parsed document instead.
    pub json: bool,
}

/// One kind of edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutation {
    FlipBit,
    SetByte,
    InsertRandom,
    DeleteChunk,
    DuplicateChunk,
    RepeatChunk,
    Truncate,
    Splice,
    ReplaceNumber,
    DuplicateLine,
    DuplicateKey,
    DeleteDelimiter,
    InsertDelimiter,
    InsertBom,
    InsertControl,
    InsertToken,
    LengthField,
    OverwriteInt,
    /// One edit of the parsed JSON document (not part of the byte-level mix).
    Json,
}

/// Each mutation with its weight for binary and for text grammars.
const WEIGHTS: [(Mutation, u32, u32); 18] = [
    (Mutation::FlipBit, 6, 3),
    (Mutation::SetByte, 6, 3),
    (Mutation::InsertRandom, 4, 2),
    (Mutation::DeleteChunk, 5, 4),
    (Mutation::DuplicateChunk, 4, 3),
    (Mutation::RepeatChunk, 1, 1),
    (Mutation::Truncate, 3, 2),
    (Mutation::Splice, 3, 3),
    (Mutation::ReplaceNumber, 4, 10),
    (Mutation::DuplicateLine, 1, 5),
    (Mutation::DuplicateKey, 2, 4),
    (Mutation::DeleteDelimiter, 3, 5),
    (Mutation::InsertDelimiter, 2, 4),
    (Mutation::InsertBom, 1, 2),
    (Mutation::InsertControl, 2, 3),
    (Mutation::InsertToken, 4, 6),
    (Mutation::LengthField, 6, 1),
    (Mutation::OverwriteInt, 5, 1),
];

impl Mutation {
    /// A short name, for finding notes.
    pub fn name(self) -> &'static str {
        match self {
            Self::FlipBit => "flip-bit",
            Self::SetByte => "set-byte",
            Self::InsertRandom => "insert-random",
            Self::DeleteChunk => "delete-chunk",
            Self::DuplicateChunk => "duplicate-chunk",
            Self::RepeatChunk => "repeat-chunk",
            Self::Truncate => "truncate",
            Self::Splice => "splice",
            Self::ReplaceNumber => "replace-number",
            Self::DuplicateLine => "duplicate-line",
            Self::DuplicateKey => "duplicate-key",
            Self::DeleteDelimiter => "delete-delimiter",
            Self::InsertDelimiter => "insert-delimiter",
            Self::InsertBom => "insert-bom",
            Self::InsertControl => "insert-control",
            Self::InsertToken => "insert-token",
            Self::LengthField => "length-field",
            Self::OverwriteInt => "overwrite-int",
            Self::Json => "json-edit",
        }
    }

    fn choose(rng: &mut Rng, grammar: &Grammar) -> Mutation {
        let weight = |&(_, binary, text): &(Mutation, u32, u32)| {
            if grammar.text { text } else { binary }
        };
        let total: u32 = WEIGHTS.iter().map(weight).sum();
        let mut ticket = rng.below(total as usize) as u32;
        for entry in &WEIGHTS {
            let w = weight(entry);
            if ticket < w {
                return entry.0;
            }
            ticket -= w;
        }
        Mutation::FlipBit
    }
}

/// Numbers that sit on a boundary of some integer or float type, or of a parser.
const BOUNDARY_NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "-0",
    "0.0",
    "00",
    "1.",
    "-",
    "+1",
    "0x10",
    "1_000",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "1e309",
    "-1e308",
    "1e39",
    "3.4028236e38",
    "1e-45",
    "1e-400",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
];

/// Integers on the boundaries of the unsigned widths (and of `usize` arithmetic).
const BOUNDARY_INTS: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    9,
    15,
    16,
    31,
    32,
    63,
    64,
    127,
    128,
    255,
    256,
    1023,
    1024,
    4095,
    4096,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    1 << 32,
    (1 << 32) + 1,
    1 << 40,
    1 << 53,
    1 << 62,
    i64::MAX as u64,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

/// Bytes that mean something to some parser.
const INTERESTING_BYTES: &[u8] = &[
    0x00, 0x01, 0x7f, 0x80, 0xff, b'\n', b'\r', b'\t', b' ', b'"', b'\'', b'0', b'9', b'-', b'.',
    b'e', b':', b',', b'{', b'}', b'(', b')', b'[', b']', b'@', b'#', b'?',
];

const DELIMITERS: &[u8] = b"{}()[]:,'\"@\n";

/// Written into names: terminal escapes, invisible and direction-changing characters, and
/// invalid UTF-8 (a reader that echoes a name must not let it repaint the terminal).
const CONTROLS: &[&[u8]] = &[
    b"\x1b[31m",
    b"\x1b[2J\x1b[H",
    b"\x1b]0;title\x07",
    b"\0",
    b"\r",
    b"\t",
    b"\x08",
    b"\x7f",
    "\u{202e}".as_bytes(),
    "\u{200b}".as_bytes(),
    "\u{2028}".as_bytes(),
    "\u{feff}".as_bytes(),
    b"\xff\xfe",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
];

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Mutates `base` with one to five stacked edits; `other` is a second corpus entry for
/// splicing. Returns the mutant and the edits that applied.
pub fn mutate(
    rng: &mut Rng,
    base: &[u8],
    other: &[u8],
    grammar: &Grammar,
) -> (Vec<u8>, Vec<Mutation>) {
    let mut data = base.to_vec();
    let mut applied = Vec::new();
    // A third of the time one edit that keeps the document well formed (a JSON value, a
    // number, a keyword), so the mutant gets past the syntax and into the semantic checks.
    if grammar.json && rng.one_in(3) && apply(rng, Mutation::Json, &mut data, other, grammar) {
        return (data, vec![Mutation::Json]);
    }
    if grammar.text && rng.one_in(3) {
        let gentle = [
            Mutation::ReplaceNumber,
            Mutation::ReplaceNumber,
            Mutation::InsertToken,
            Mutation::DuplicateKey,
            Mutation::DuplicateLine,
        ];
        let m = rng
            .pick(&gentle)
            .copied()
            .unwrap_or(Mutation::ReplaceNumber);
        if apply(rng, m, &mut data, other, grammar) {
            return (data, vec![m]);
        }
    }
    let rounds = 1 + (0..4).take_while(|_| rng.one_in(2)).count();
    for _ in 0..rounds {
        // A mutation that cannot apply (no number to replace) is retried as another kind.
        for _ in 0..4 {
            let m = Mutation::choose(rng, grammar);
            if apply(rng, m, &mut data, other, grammar) {
                applied.push(m);
                break;
            }
        }
    }
    if applied.is_empty() {
        let at = rng.below(data.len() + 1);
        data.insert(at, rng.next_u64() as u8);
        applied.push(Mutation::InsertRandom);
    }
    data.truncate(MAX_INPUT);
    (data, applied)
}

/// Applies one edit; false when it does not apply to this input.
pub fn apply(
    rng: &mut Rng,
    m: Mutation,
    data: &mut Vec<u8>,
    other: &[u8],
    grammar: &Grammar,
) -> bool {
    let len = data.len();
    match m {
        Mutation::FlipBit => {
            if len == 0 {
                return false;
            }
            let at = rng.below(len);
            data[at] ^= 1 << rng.below(8);
        }
        Mutation::SetByte => {
            if len == 0 {
                return false;
            }
            let at = rng.below(len);
            data[at] = match rng.pick(INTERESTING_BYTES) {
                Some(&b) if rng.one_in(2) => b,
                _ => rng.next_u64() as u8,
            };
        }
        Mutation::InsertRandom => {
            let at = rng.below(len + 1);
            let n = rng.small_len(32);
            let bytes: Vec<u8> = if rng.one_in(2) {
                let b = rng.pick(INTERESTING_BYTES).copied().unwrap_or(0);
                vec![b; n]
            } else {
                (0..n).map(|_| rng.next_u64() as u8).collect()
            };
            data.splice(at..at, bytes);
        }
        Mutation::DeleteChunk => {
            if len == 0 {
                return false;
            }
            let start = rng.below(len);
            let n = rng.small_len(len - start);
            data.drain(start..start + n);
        }
        Mutation::DuplicateChunk => {
            if len == 0 {
                return false;
            }
            let start = rng.below(len);
            let n = rng.small_len(len - start);
            let chunk = data[start..start + n].to_vec();
            let at = if rng.one_in(2) {
                start + n
            } else {
                rng.below(len + 1)
            };
            data.splice(at..at, chunk);
        }
        Mutation::RepeatChunk => {
            // Many copies of a short chunk: quadratic work shows up as a slow case.
            if len == 0 {
                return false;
            }
            let start = rng.below(len);
            let n = rng.small_len((len - start).min(64));
            let copies = 2 + rng.below(2000);
            let copies = copies.min((MAX_INPUT.saturating_sub(len)) / n);
            if copies == 0 {
                return false;
            }
            let chunk = data[start..start + n].repeat(copies);
            data.splice(start..start, chunk);
        }
        Mutation::Truncate => {
            if len == 0 {
                return false;
            }
            data.truncate(rng.below(len));
        }
        Mutation::Splice => {
            if other.is_empty() {
                return false;
            }
            let j = rng.below(other.len());
            if rng.one_in(2) {
                // Head of this input, tail of the other.
                data.truncate(rng.below(len + 1));
                data.extend_from_slice(&other[j..]);
            } else {
                // A chunk of the other inside this one.
                let n = rng.small_len(other.len() - j);
                let at = rng.below(len + 1);
                data.splice(at..at, other[j..j + n].iter().copied());
            }
        }
        Mutation::ReplaceNumber => {
            let Some(span) = find_number(data, rng.below(len.max(1))) else {
                return false;
            };
            let text = boundary_number(rng, &data[span.clone()]);
            data.splice(span, text.into_bytes());
        }
        Mutation::DuplicateLine => {
            let Some(line) = pick_segment(data, rng, b'\n') else {
                return false;
            };
            let copy = data[line.clone()].to_vec();
            let at = if rng.one_in(2) {
                line.end
            } else {
                line_start(data, rng.below(len + 1))
            };
            data.splice(at..at, copy);
        }
        Mutation::DuplicateKey => {
            let Some((key, value_end)) = find_key(data, rng.below(len.max(1))) else {
                return false;
            };
            let mut copy = data[key.start..value_end].to_vec();
            copy.push(b',');
            if rng.one_in(2) {
                // The same key with another value.
                if let Some(span) = find_number(&copy, key.end - key.start) {
                    let text = boundary_number(rng, &copy[span.clone()]);
                    copy.splice(span, text.into_bytes());
                }
            }
            data.splice(key.start..key.start, copy);
        }
        Mutation::DeleteDelimiter => {
            let Some(&d) = rng.pick(DELIMITERS) else {
                return false;
            };
            let Some(at) = find_byte_from(data, rng.below(len.max(1)), |b| b == d)
                .or_else(|| find_byte_from(data, 0, |b| DELIMITERS.contains(&b)))
            else {
                return false;
            };
            data.remove(at);
        }
        Mutation::InsertDelimiter => {
            let d = rng.pick(DELIMITERS).copied().unwrap_or(b',');
            let at = rng.below(len + 1);
            data.insert(at, d);
        }
        Mutation::InsertBom => {
            let at = if rng.one_in(4) {
                line_start(data, rng.below(len + 1))
            } else {
                0
            };
            data.splice(at..at, BOM.iter().copied());
        }
        Mutation::InsertControl => {
            let Some(&control) = rng.pick(CONTROLS) else {
                return false;
            };
            // Prefer the inside of a quoted name or right after a header keyword.
            let at = match find_byte_from(data, rng.below(len.max(1)), |b| {
                matches!(b, b'"' | b'\'' | b'@' | b' ')
            }) {
                Some(q) if !rng.one_in(4) => (q + 1).min(len),
                _ => rng.below(len + 1),
            };
            data.splice(at..at, control.iter().copied());
        }
        Mutation::InsertToken => {
            let Some(&token) = rng.pick(grammar.tokens) else {
                return false;
            };
            match (rng.one_in(2), find_word(data, rng.below(len.max(1)))) {
                (true, Some(word)) => {
                    data.splice(word, token.iter().copied());
                }
                _ => {
                    let at = rng.below(len + 1);
                    data.splice(at..at, token.iter().copied());
                }
            }
        }
        Mutation::LengthField => {
            let Some(&field) = rng.pick(grammar.length_fields) else {
                return false;
            };
            let width = usize::from(field.width);
            if field.offset + width > len {
                return false;
            }
            let slot = &mut data[field.offset..field.offset + width];
            let current = read_le(slot);
            let value = if rng.one_in(3) {
                // Off by a little from the true length: the classic fencepost.
                let delta = *rng.pick(&[1u64, 2, 7, 8, 64]).unwrap_or(&1);
                if rng.one_in(2) {
                    current.wrapping_add(delta)
                } else {
                    current.wrapping_sub(delta)
                }
            } else {
                rng.pick(BOUNDARY_INTS).copied().unwrap_or(0)
            };
            write_le(slot, value);
        }
        Mutation::Json => {
            let Ok(mut value) = serde_json::from_slice::<Value>(data) else {
                return false;
            };
            let target = rng.below(count_nodes(&value));
            edit_nth(&mut value, target, &mut 0, rng);
            let text = if rng.one_in(2) {
                serde_json::to_vec_pretty(&value)
            } else {
                serde_json::to_vec(&value)
            };
            match text {
                Ok(text) => *data = text,
                Err(_) => return false,
            }
        }
        Mutation::OverwriteInt => {
            let width = *rng.pick(&[1usize, 2, 4, 8]).unwrap_or(&4);
            if len < width {
                return false;
            }
            let at = rng.below(len - width + 1);
            let value = rng.pick(BOUNDARY_INTS).copied().unwrap_or(0);
            let slot = &mut data[at..at + width];
            write_le(slot, value);
            if rng.one_in(2) {
                slot.reverse(); // big-endian, as CBOR writes lengths
            }
        }
    }
    true
}

/// Strings worth putting anywhere in a JSON document: the names the formats use (so a type
/// or a dtype changes), paths, and hostile text.
const JSON_STRINGS: &[&str] = &[
    "",
    "conv1d",
    "batch_norm1d",
    "max_pool1d",
    "avg_pool1d",
    "global_max_pool1d",
    "global_avg_pool1d",
    "dense",
    "dropout",
    "flatten",
    "activation",
    "normalization",
    "relu",
    "softmax",
    "leaky_relu",
    "same",
    "causal",
    "valid",
    "channels_first",
    "channels_last",
    "moving",
    "glorot_uniform",
    "weights.safetensors",
    "weights.bpk",
    "../weights.safetensors",
    "/dev/zero",
    "widen-model",
    "F32",
    "F64",
    "F16",
    "BF16",
    "I64",
    "BOOL",
    "00000000",
    "\u{1b}[31mred\u{1b}[0m",
    "a\u{0}b",
    "\u{202e}txt.exe",
    "\u{feff}conv1d",
];

/// Numbers on the boundaries of JSON readers: `u64`/`i64` limits, 2^53 + 1 (not an `f64`),
/// tiny and huge floats, a fraction where an integer goes.
fn json_number(rng: &mut Rng) -> Value {
    let ints: [u64; 9] = [
        0,
        1,
        2,
        3,
        1 << 31,
        1 << 32,
        (1 << 53) + 1,
        1 << 63,
        u64::MAX,
    ];
    let floats = [0.5, -1.5, 1e308, 1e-308, 5e-324, 1e39, -0.0, 1e-45];
    match rng.below(3) {
        0 => Value::from(rng.pick(&ints).copied().unwrap_or(0)),
        1 => Value::from(-(rng.below(3) as i64) - i64::from(rng.one_in(2)) * (i64::MAX - 2)),
        _ => Number::from_f64(rng.pick(&floats).copied().unwrap_or(0.5))
            .map_or(Value::Null, Value::Number),
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Edits the `target`-th node in pre-order.
fn edit_nth(v: &mut Value, target: usize, index: &mut usize, rng: &mut Rng) -> bool {
    if *index == target {
        edit_value(v, rng);
        return true;
    }
    *index += 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|x| edit_nth(x, target, index, rng)),
        Value::Object(o) => o.values_mut().any(|x| edit_nth(x, target, index, rng)),
        _ => false,
    }
}

fn edit_value(v: &mut Value, rng: &mut Rng) {
    match rng.below(8) {
        0 | 1 => *v = json_number(rng),
        2 => {
            *v = match rng.below(5) {
                0 => Value::Null,
                1 => Value::Bool(rng.one_in(2)),
                2 => Value::Array(Vec::new()),
                3 => Value::Object(Map::new()),
                _ => Value::String(String::new()),
            }
        }
        3 => *v = Value::String(rng.pick(JSON_STRINGS).copied().unwrap_or("").to_string()),
        4 => {
            // Deep nesting: the parser's recursion limit, or the reader's own recursion.
            for _ in 0..1 + rng.below(200) {
                *v = Value::Array(vec![v.take()]);
            }
        }
        5 => match v {
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0);
                *v = match rng.below(4) {
                    0 => Value::from(n.as_u64().map_or(0, |u| u.wrapping_add(1))),
                    1 => Number::from_f64(x + 0.5).map_or(Value::Null, Value::Number),
                    2 => Number::from_f64(-x).map_or(Value::Null, Value::Number),
                    _ => Value::String(n.to_string()),
                }
            }
            Value::String(s) => match rng.below(3) {
                0 => s.push_str(&"x".repeat(1 + rng.below(100_000))),
                1 => s.insert_str(0, "\u{1b}[2J"),
                _ => *s = s.to_uppercase(),
            },
            _ => *v = json_number(rng),
        },
        _ => match v {
            Value::Array(a) if !a.is_empty() => {
                let i = rng.below(a.len());
                match rng.below(4) {
                    0 => {
                        a.remove(i);
                    }
                    1 => {
                        let copy = a[i].clone();
                        a.insert(rng.below(a.len() + 1), copy);
                    }
                    2 => {
                        let j = rng.below(a.len());
                        a.swap(i, j);
                    }
                    _ => a.truncate(i),
                }
            }
            Value::Object(o) if !o.is_empty() => {
                let keys: Vec<String> = o.keys().cloned().collect();
                let key = rng.pick(&keys).cloned().unwrap_or_default();
                if rng.one_in(2) {
                    o.remove(&key);
                } else if let Some(value) = o.get(&key).cloned() {
                    // The value under another key of this object (a field of the wrong kind).
                    let other = rng.pick(&keys).cloned().unwrap_or_default();
                    o.insert(other, value);
                }
            }
            _ => *v = json_number(rng),
        },
    }
}

/// A replacement for the number `old`: a boundary value, a huge digit string, or a neighbour.
fn boundary_number(rng: &mut Rng, old: &[u8]) -> String {
    match rng.below(8) {
        0 => {
            let digits = 20 + rng.below(400);
            "9".repeat(digits)
        }
        1 => {
            let parsed = std::str::from_utf8(old)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            match parsed {
                Some(n) => match rng.below(4) {
                    0 => n.wrapping_add(1).to_string(),
                    1 => n.wrapping_sub(1).to_string(),
                    2 => n.wrapping_mul(2).to_string(),
                    _ => format!("-{n}"),
                },
                None => "0".to_string(),
            }
        }
        _ => rng
            .pick(BOUNDARY_NUMBERS)
            .copied()
            .unwrap_or("0")
            .to_string(),
    }
}

/// The span of the first number at or after `from` (wrapping): digits with an optional sign,
/// fraction and exponent.
pub fn find_number(data: &[u8], from: usize) -> Option<Range<usize>> {
    let digit = find_byte_from(data, from, |b| b.is_ascii_digit())?;
    let mut start = digit;
    while start > 0 && (data[start - 1].is_ascii_digit() || data[start - 1] == b'.') {
        start -= 1;
    }
    if start > 0 && data[start - 1] == b'-' {
        start -= 1;
    }
    let mut end = digit;
    while end < data.len() {
        let b = data[end];
        let exponent_sign =
            matches!(b, b'+' | b'-') && end > 0 && matches!(data[end - 1], b'e' | b'E');
        let exponent = matches!(b, b'e' | b'E')
            && data
                .get(end + 1)
                .is_some_and(|&n| n.is_ascii_digit() || matches!(n, b'+' | b'-'));
        if b.is_ascii_digit() || b == b'.' || exponent || exponent_sign {
            end += 1;
        } else {
            break;
        }
    }
    Some(start..end)
}

/// A quoted key before a `:` (`"name":` or `'descr':`) at or after `from`: the key's span and
/// where its value ends (the next `,`, `}` or newline).
fn find_key(data: &[u8], from: usize) -> Option<(Range<usize>, usize)> {
    let n = data.len();
    for i in 0..n {
        let colon = (from + i) % n;
        if data[colon] != b':' || colon == 0 {
            continue;
        }
        let mut q = colon - 1;
        while q > 0 && data[q] == b' ' {
            q -= 1;
        }
        let quote = data[q];
        if !matches!(quote, b'"' | b'\'') || q == 0 {
            continue;
        }
        let Some(open) = data[..q].iter().rposition(|&b| b == quote) else {
            continue;
        };
        let value_end = data[colon..]
            .iter()
            .position(|&b| matches!(b, b',' | b'}' | b'\n'))
            .map_or(n, |p| colon + p);
        return Some((open..colon + 1, value_end));
    }
    None
}

/// A run of ASCII letters or `_` at or after `from`.
fn find_word(data: &[u8], from: usize) -> Option<Range<usize>> {
    let is_word = |b: u8| b.is_ascii_alphabetic() || b == b'_';
    let start = find_byte_from(data, from, is_word)?;
    let mut begin = start;
    while begin > 0 && is_word(data[begin - 1]) {
        begin -= 1;
    }
    let len = data[start..].iter().take_while(|&&b| is_word(b)).count();
    Some(begin..start + len)
}

/// The first index at or after `from` (wrapping) whose byte matches.
fn find_byte_from(data: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> Option<usize> {
    let n = data.len();
    (0..n).map(|i| (from + i) % n).find(|&i| pred(data[i]))
}

/// A random `sep`-terminated segment (a line, with its newline).
fn pick_segment(data: &[u8], rng: &mut Rng, sep: u8) -> Option<Range<usize>> {
    if data.is_empty() {
        return None;
    }
    let start = line_start(data, rng.below(data.len()));
    let end = data[start..]
        .iter()
        .position(|&b| b == sep)
        .map_or(data.len(), |p| start + p + 1);
    (end > start).then_some(start..end)
}

/// The start of the line holding `at`.
fn line_start(data: &[u8], at: usize) -> usize {
    let at = at.min(data.len());
    data[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1)
}

fn read_le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn write_le(bytes: &mut [u8], value: u64) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (value >> (8 * i)) as u8;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const TEXT: Grammar = Grammar {
        tokens: &[b"@data", b"true"],
        length_fields: &[],
        text: true,
        json: false,
    };

    #[test]
    fn the_same_seed_gives_the_same_mutants() {
        let base = b"@dimensions 2\n@data\n1,2:3,4:a\n";
        let run = |seed| {
            let mut rng = Rng::new(seed);
            (0..200)
                .map(|_| mutate(&mut rng, base, b"other", &TEXT).0)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn every_mutation_applies_and_stays_bounded() {
        let mut rng = Rng::new(1);
        let grammar = Grammar {
            tokens: &[b"'shape'"],
            length_fields: &[LengthField {
                offset: 0,
                width: 2,
            }],
            text: false,
            json: false,
        };
        let base = b"{'descr': '<f4', 'shape': (2, 3), }\n";
        for &(m, _, _) in &WEIGHTS {
            let mut data = base.to_vec();
            assert!(apply(&mut rng, m, &mut data, base, &grammar), "{m:?}");
            assert!(data.len() <= MAX_INPUT + base.len());
        }
        let json = br#"{"a": [1, {"b": "c"}], "d": 2.5}"#;
        for _ in 0..200 {
            let mut data = json.to_vec();
            assert!(apply(&mut rng, Mutation::Json, &mut data, b"", &grammar));
        }
        assert!(!apply(
            &mut rng,
            Mutation::Json,
            &mut b"{".to_vec(),
            b"",
            &grammar
        ));
        let mut empty = Vec::new();
        for _ in 0..100 {
            let (out, _) = mutate(&mut rng, &empty, b"", &grammar);
            assert!(out.len() <= MAX_INPUT);
            empty = out;
        }
    }

    #[test]
    fn numbers_and_keys_are_found() {
        let text = b"{'shape': (12, 3), 'x': -1.5e+3}";
        let first = find_number(text, 0).unwrap();
        assert_eq!(&text[first], b"12");
        let last = find_number(text, 24).unwrap();
        assert_eq!(&text[last], b"-1.5e+3");
        let (key, end) = find_key(text, 0).unwrap();
        assert_eq!(&text[key.start..end], b"'shape': (12");
        let mut field = [0u8; 4];
        write_le(&mut field, 0x0102_0304);
        assert_eq!(field, [4, 3, 2, 1]);
        assert_eq!(read_le(&field), 0x0102_0304);
    }
}
