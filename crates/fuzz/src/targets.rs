//! The target table: one entry per reader. An entry is a name, a grammar for the token-aware
//! mutators, an optional frame (where a binary container keeps its text header, so the header
//! can be mutated and the length prefix rewritten to match), a seeds function and a run
//! function. A new reader is one more entry in [`TARGETS`] (`onnx` was the last added).

use std::fs;
use std::io::ErrorKind;
use std::ops::Range;
use std::path::{Path, PathBuf};

use widen::burn::tensor::Device;
use widen::layers::{
    Activation, BatchNormConfig, Conv1dConfig, DenseConfig, DropoutConfig, InputSpec, LayerConfig,
    ModelSpec, NormalizationConfig, PaddingMode, PoolConfig, Sequential, WeightFormat, keras_ex1,
    keras_ex3,
};
use widen_cli::data::{Dataset, LengthPolicy, parse_ts};
use widen_cli::npy;

use crate::mutate::{Grammar, LengthField};

/// A valid input to start mutating from. `companion` is the other file a checkpoint target
/// needs unchanged beside the mutated one (empty for single-file readers).
#[derive(Debug, Clone)]
pub struct Seed {
    /// What the seed is, for notes.
    pub name: String,
    /// The input.
    pub data: Vec<u8>,
    /// The file written beside it, unmutated.
    pub companion: Vec<u8>,
}

/// What a reader did with one input.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Read successfully (and every property held).
    Accepted,
    /// Refused with a typed error: the expected answer to a bad file.
    Refused(String),
    /// A property failed: a finding.
    Violation(String),
}

/// What run functions share: a scratch directory and the CPU device checkpoints load onto.
#[derive(Debug)]
pub struct Context {
    /// This target's scratch directory (under the cargo target dir).
    pub scratch: PathBuf,
    /// Burn's flex CPU device.
    pub device: Device,
}

impl Context {
    /// Creates `scratch` and opens the flex device.
    pub fn new(scratch: PathBuf) -> Result<Self, String> {
        fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let device = widen::BackendKind::Flex
            .device()
            .map_err(|e| format!("no CPU device: {e}"))?;
        Ok(Self { scratch, device })
    }
}

/// Where a binary container keeps its header, and how to rebuild the file around a new one.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// The header's byte range in a well-formed file.
    pub header: fn(&[u8]) -> Option<Range<usize>>,
    /// The file with its header replaced and the length prefix rewritten to match.
    pub rebuild: fn(&[u8], &[u8]) -> Option<Vec<u8>>,
    /// Whether the header is text (the npy dictionary, safetensors' JSON), so the text
    /// mutators get the higher weight inside it.
    pub text: bool,
}

/// One reader under test.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The name on the command line and in finding file names (no `-`).
    pub name: &'static str,
    /// What it reads, for the summary.
    pub about: &'static str,
    /// Tokens and length fields for the mutators.
    pub grammar: Grammar,
    /// A header worth mutating on its own, if the format has one.
    pub frame: Option<Frame>,
    /// The valid inputs to start from.
    pub seeds: fn(&Context) -> Result<Vec<Seed>, String>,
    /// Runs the reader on one input (and its companion).
    pub run: fn(&Context, &[u8], &[u8]) -> Outcome,
}

/// Every target, in the order a run visits them.
pub static TARGETS: &[Target] = &[
    Target {
        name: "npy",
        about: "widen_data::npy::parse and parse_labels",
        grammar: Grammar {
            tokens: NPY_TOKENS,
            length_fields: &[
                LengthField {
                    offset: 6,
                    width: 1,
                },
                LengthField {
                    offset: 8,
                    width: 2,
                },
                LengthField {
                    offset: 8,
                    width: 4,
                },
            ],
            text: false,
            json: false,
        },
        frame: Some(Frame {
            header: npy_header,
            rebuild: npy_rebuild,
            text: true,
        }),
        seeds: npy_seeds,
        run: run_npy,
    },
    Target {
        name: "ts",
        about: "widen_cli::data::parse_ts, every LengthPolicy",
        grammar: Grammar {
            tokens: TS_TOKENS,
            length_fields: &[],
            text: true,
            json: false,
        },
        frame: None,
        seeds: ts_seeds,
        run: run_ts,
    },
    Target {
        name: "model_json",
        about: "Sequential::load, model.json mutated",
        grammar: Grammar {
            tokens: JSON_TOKENS,
            length_fields: &[],
            text: true,
            json: true,
        },
        frame: None,
        seeds: model_json_seeds,
        run: run_model_json,
    },
    Target {
        name: "safetensors",
        about: "Sequential::load, weights.safetensors mutated",
        grammar: Grammar {
            tokens: SAFETENSORS_TOKENS,
            length_fields: &[LengthField {
                offset: 0,
                width: 8,
            }],
            text: false,
            json: true,
        },
        frame: Some(Frame {
            header: safetensors_header,
            rebuild: safetensors_rebuild,
            text: true,
        }),
        seeds: safetensors_seeds,
        run: run_safetensors,
    },
    Target {
        name: "burnpack",
        about: "Sequential::load, weights.bpk mutated",
        grammar: Grammar {
            tokens: BURNPACK_TOKENS,
            length_fields: &[
                LengthField {
                    offset: 4,
                    width: 2,
                },
                LengthField {
                    offset: 6,
                    width: 4,
                },
            ],
            text: false,
            json: false,
        },
        frame: Some(Frame {
            header: burnpack_header,
            rebuild: burnpack_rebuild,
            text: false,
        }),
        seeds: burnpack_seeds,
        run: run_burnpack,
    },
    Target {
        name: "onnx",
        about: "widen::onnx::import (then build, export and import again)",
        grammar: Grammar {
            tokens: ONNX_TOKENS,
            length_fields: &[],
            text: false,
            json: false,
        },
        frame: None,
        seeds: onnx_seeds,
        run: run_onnx,
    },
];

/// The target called `name`.
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

fn seed(name: impl Into<String>, data: Vec<u8>) -> Seed {
    Seed {
        name: name.into(),
        data,
        companion: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// .npy

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

const NPY_TOKENS: &[&[u8]] = &[
    NPY_MAGIC,
    b"'descr'",
    b"'<f4'",
    b"'<f8'",
    b"'>f4'",
    b"'<f2'",
    b"'|b1'",
    b"'<i8'",
    b"'<c8'",
    b"'fortran_order'",
    b"False",
    b"True",
    b"'shape'",
    b"()",
    b"(0,)",
    b"(1,)",
    b"(,)",
    b"(-1,)",
    b"(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)",
    b"{",
    b"}",
    b": ",
    b", ",
    b"'",
    b"\n",
];

/// A `.npy` file with a hand-written header (padded as NumPy pads it) and raw data.
fn npy_file(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    widen_cli::npy::encode_raw(version, header, data)
}

fn f64_bytes(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (i as f64 * 1.5 - 2.0).to_le_bytes())
        .collect()
}

fn f32_bytes(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (i as f32 * 0.5 + 1.0).to_le_bytes())
        .collect()
}

fn npy_seeds(_: &Context) -> Result<Vec<Seed>, String> {
    let mut seeds = Vec::new();
    let shapes: [&[usize]; 6] = [&[3], &[2, 3, 4], &[0], &[], &[1, 1, 5], &[4, 0, 2]];
    for shape in shapes {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 1.0).collect();
        seeds.push(seed(
            format!("encode({shape:?})"),
            npy::encode(shape, &values),
        ));
    }
    let f8 = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
    seeds.push(seed("np.save float64 v1.0", npy_file(1, f8, &f64_bytes(6))));
    seeds.push(seed("v2.0 float64", npy_file(2, f8, &f64_bytes(6))));
    let f4 = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
    seeds.push(seed("v2.0 float32", npy_file(2, f4, &f32_bytes(3))));
    seeds.push(seed("v3.0 float32", npy_file(3, f4, &f32_bytes(3))));
    // Labels: integers and fixed-width strings, as np.save writes them.
    let i8 = "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }";
    let ints: Vec<u8> = [3i64, -1, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    seeds.push(seed("int64 labels", npy_file(1, i8, &ints)));
    let u3 = "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }";
    let text: Vec<u8> = "runwa\0"
        .chars()
        .flat_map(|c| (c as u32).to_le_bytes())
        .collect();
    seeds.push(seed("string labels", npy_file(1, u3, &text)));
    let reordered = "{'shape': (1, 2), 'fortran_order': False, 'descr': '<f4'}";
    seeds.push(seed(
        "keys reordered",
        npy_file(1, reordered, &f32_bytes(2)),
    ));
    Ok(seeds)
}

/// The header length's offset and width for the file's version byte.
fn npy_length_field(bytes: &[u8]) -> Option<(usize, usize)> {
    match bytes.get(6)? {
        1 => Some((8, 2)),
        2 | 3 => Some((8, 4)),
        _ => None,
    }
}

fn npy_header(bytes: &[u8]) -> Option<Range<usize>> {
    let (at, width) = npy_length_field(bytes)?;
    let field = bytes.get(at..at + width)?;
    let len = field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let start = at + width;
    let end = start.checked_add(len).filter(|&e| e <= bytes.len())?;
    Some(start..end)
}

fn npy_rebuild(original: &[u8], header: &[u8]) -> Option<Vec<u8>> {
    let (at, width) = npy_length_field(original)?;
    let old = npy_header(original)?;
    let mut out = original[..at].to_vec();
    if width == 2 {
        out.extend_from_slice(&u16::try_from(header.len()).ok()?.to_le_bytes());
    } else {
        out.extend_from_slice(&u32::try_from(header.len()).ok()?.to_le_bytes());
    }
    out.extend_from_slice(header);
    out.extend_from_slice(&original[old.end..]);
    Some(out)
}

fn run_npy(_: &Context, data: &[u8], _: &[u8]) -> Outcome {
    // The labels reader parses the same headers (integers, floats, strings): whatever it
    // returns, it must return without a panic and within the budget.
    if let Ok(labels) = npy::parse_labels(data, "fuzz.npy")
        && labels.iter().any(|l| l.contains('\0'))
    {
        return Outcome::Violation("a label kept a NUL terminator".into());
    }
    let array = match npy::parse(data, "fuzz.npy") {
        Ok(a) => a,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let count = array
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    if count != Some(array.values.len()) {
        return Outcome::Violation(format!(
            "parse accepted shape {:?} with {} values",
            array.shape,
            array.values.len()
        ));
    }
    let encoded = npy::encode(&array.shape, &array.values);
    match npy::parse(&encoded, "round-trip.npy") {
        Ok(again)
            if again.shape == array.shape
                && again.values.len() == array.values.len()
                && again
                    .values
                    .iter()
                    .zip(&array.values)
                    .all(|(a, b)| a.to_bits() == b.to_bits()) =>
        {
            Outcome::Accepted
        }
        Ok(again) => Outcome::Violation(format!(
            "encode/parse round trip changed shape {:?} into {:?} (or the values)",
            array.shape, again.shape
        )),
        Err(e) => Outcome::Violation(format!(
            "parse refuses what encode wrote for shape {:?}: {e}",
            array.shape
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// .ts

const BASIC_MOTIONS_TRAIN: &str =
    include_str!("../../data/data/BasicMotions/BasicMotions_TRAIN.ts");

const TS_TOKENS: &[&[u8]] = &[
    b"@problemName",
    b"@timeStamps",
    b"@missing",
    b"@univariate",
    b"@dimensions",
    b"@equalLength",
    b"@seriesLength",
    b"@classLabel",
    b"@data",
    b"@DATA",
    b"@targetLabel",
    b"true",
    b"false",
    b"TRUE",
    b"?",
    b"NaN",
    b"nan",
    b"inf",
    b"-inf",
    b"1e39",
    b"(1,2.5)",
    b":",
    b",",
    b"#",
    b"\r\n",
    b"\n",
    b" ",
    b"\t",
    b"@",
];

/// The first `cases` cases of BasicMotions, header included (the whole file is 228 kB).
fn basic_motions_head(cases: usize) -> String {
    let mut out = String::new();
    let mut data = false;
    let mut kept = 0;
    for line in BASIC_MOTIONS_TRAIN.lines() {
        if data {
            if kept == cases {
                break;
            }
            kept += 1;
        }
        if line.trim().eq_ignore_ascii_case("@data") {
            data = true;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

const TS_UNIVARIATE: &str = "@problemName Uni
@timeStamps false
@missing false
@univariate true
@equalLength true
@seriesLength 4
@classLabel true a b
@data
1,2,3,4:a
5,6.5,-7,8e-1:b
0,0,0,0:a
";

const TS_UNLABELLED: &str = "# comments and blank lines are skipped

@problemName Unlabelled
@univariate false
@dimensions 2
@equalLength true
@classLabel false
@data
1,2,3:4,5,6

7,8,9:1,2,3
";

const TS_UNEQUAL: &str = "@problemName Unequal
@univariate false
@dimensions 2
@equalLength false
@classLabel true x y
@data
1,2,3:4,5:x
6,7:8,9,10,11:y
1:2:x
";

const TS_MIXED_CASE_CRLF: &str = "@ProblemName Crlf\r\n@TIMESTAMPS false\r\n@Missing true\r\n\
@Univariate true\r\n@EqualLength false\r\n@ClassLabel true 1 2 3\r\n@Data\r\n1,2:1\r\n3,4,5:3\r\n";

fn ts_seeds(_: &Context) -> Result<Vec<Seed>, String> {
    Ok(vec![
        seed(
            "BasicMotions_TRAIN, 3 cases",
            basic_motions_head(3).into_bytes(),
        ),
        seed("univariate", TS_UNIVARIATE.as_bytes().to_vec()),
        seed("unlabelled", TS_UNLABELLED.as_bytes().to_vec()),
        seed("unequal lengths", TS_UNEQUAL.as_bytes().to_vec()),
        seed("mixed case, CRLF", TS_MIXED_CASE_CRLF.as_bytes().to_vec()),
    ])
}

/// Every policy, each run on every input (so an input file alone reproduces a finding).
const POLICIES: [LengthPolicy; 6] = [
    LengthPolicy::Error,
    LengthPolicy::PadTo(None),
    LengthPolicy::PadTo(Some(1)),
    LengthPolicy::PadTo(Some(150)),
    LengthPolicy::PadTo(Some(0)),
    LengthPolicy::Crop,
];

/// The invariants [`Dataset`] documents, and the padded length the policy asked for.
fn check_dataset(d: &Dataset, policy: LengthPolicy) -> Result<(), String> {
    let size = d
        .cases
        .checked_mul(d.channels)
        .and_then(|n| n.checked_mul(d.length));
    if size != Some(d.series.len()) {
        return Err(format!(
            "{} values for {} cases x {} channels x {} steps",
            d.series.len(),
            d.cases,
            d.channels,
            d.length
        ));
    }
    if !d.labels.is_empty() && d.labels.len() != d.cases {
        return Err(format!("{} labels for {} cases", d.labels.len(), d.cases));
    }
    if let Some(bad) = d.labels.iter().find(|&&l| l >= d.class_names.len()) {
        return Err(format!(
            "label index {bad} with {} classes",
            d.class_names.len()
        ));
    }
    if let LengthPolicy::PadTo(Some(n)) = policy
        && d.length != n
    {
        return Err(format!("padded to {n} but the length is {}", d.length));
    }
    Ok(())
}

fn same_dataset(a: &Dataset, b: &Dataset) -> bool {
    a.cases == b.cases
        && a.channels == b.channels
        && a.length == b.length
        && a.labels == b.labels
        && a.class_names == b.class_names
        && a.series.len() == b.series.len()
        && a.series
            .iter()
            .zip(&b.series)
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

fn run_ts(_: &Context, data: &[u8], _: &[u8]) -> Outcome {
    // Files are bytes: invalid UTF-8 reaches the parser the way `read_to_string` callers
    // that fall back to lossy decoding would pass it.
    let text = String::from_utf8_lossy(data);
    let mut strict: Option<Dataset> = None;
    let mut refusal = None;
    let mut accepted = false;
    for policy in POLICIES {
        // Policies that only act on unequal lengths must leave data `Error` accepts alone.
        let neutral = matches!(policy, LengthPolicy::PadTo(None) | LengthPolicy::Crop);
        match parse_ts(&text, "fuzz.ts", policy) {
            Ok(d) => {
                if let Err(e) = check_dataset(&d, policy) {
                    return Outcome::Violation(format!("{policy:?}: {e}"));
                }
                if neutral
                    && let Some(s) = &strict
                    && !same_dataset(s, &d)
                {
                    return Outcome::Violation(format!(
                        "{policy:?} changed data that LengthPolicy::Error accepts"
                    ));
                }
                if policy == LengthPolicy::Error {
                    strict = Some(d);
                }
                accepted = true;
            }
            Err(e) => {
                if neutral && strict.is_some() {
                    return Outcome::Violation(format!(
                        "{policy:?} refused data that LengthPolicy::Error accepts: {e}"
                    ));
                }
                refusal.get_or_insert_with(|| e.to_string());
            }
        }
    }
    match refusal {
        Some(e) if !accepted => Outcome::Refused(e),
        _ => Outcome::Accepted,
    }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

const JSON_TOKENS: &[&[u8]] = &[
    b"\"format\"",
    b"\"widen-model\"",
    b"\"version\"",
    b"\"weights\"",
    b"\"weights.safetensors\"",
    b"\"weights.bpk\"",
    b"\"../weights.safetensors\"",
    b"\"/dev/zero\"",
    b"\"spec\"",
    b"\"input\"",
    b"\"layers\"",
    b"\"channels\"",
    b"\"length\"",
    b"\"data_format\"",
    b"\"channels_first\"",
    b"\"channels_last\"",
    b"\"name\"",
    b"\"type\"",
    b"\"conv1d\"",
    b"\"batch_norm1d\"",
    b"\"max_pool1d\"",
    b"\"avg_pool1d\"",
    b"\"global_max_pool1d\"",
    b"\"global_avg_pool1d\"",
    b"\"dense\"",
    b"\"dropout\"",
    b"\"flatten\"",
    b"\"activation\"",
    b"\"normalization\"",
    b"\"filters\"",
    b"\"kernel_size\"",
    b"\"strides\"",
    b"\"dilation_rate\"",
    b"\"groups\"",
    b"\"padding\"",
    b"\"same\"",
    b"\"causal\"",
    b"\"valid\"",
    b"\"units\"",
    b"\"use_bias\"",
    b"\"pool_size\"",
    b"\"rate\"",
    b"\"mean\"",
    b"\"variance\"",
    b"\"momentum\"",
    b"\"epsilon\"",
    b"\"center\"",
    b"\"scale\"",
    b"\"softmax\"",
    b"\"leaky_relu\"",
    b"\"alpha\"",
    b"null",
    b"true",
    b"false",
    b"[]",
    b"{}",
    b"[",
    b"]",
    b"{",
    b"}",
    b":",
    b",",
    b"\"",
    b"\\u0000",
    b"\\ud800",
    b"\\u001b[31m",
];

const SAFETENSORS_TOKENS: &[&[u8]] = &[
    b"\"dtype\"",
    b"\"F32\"",
    b"\"F64\"",
    b"\"F16\"",
    b"\"BF16\"",
    b"\"I64\"",
    b"\"U8\"",
    b"\"BOOL\"",
    b"\"F8_E4M3\"",
    b"\"shape\"",
    b"\"data_offsets\"",
    b"\"__metadata__\"",
    b"\"widen.crc32.",
    b"00000000",
    b"[]",
    b"[0,0]",
    b"[0]",
    b"{}",
    b"null",
    b":",
    b",",
    b"\"",
    b"[",
    b"]",
    b"{",
    b"}",
];

const BURNPACK_TOKENS: &[&[u8]] = &[
    b"NRUB",
    b"F32",
    b"F64",
    b"BF16",
    b"I64",
    b"Bool",
    b"QFloat",
    b"widen.crc32.",
    b"weight",
    // CBOR heads: 8- and 4-byte unsigned, a text string claiming 4 GiB, indefinite array and
    // map, break, null, empty map and array, empty text.
    b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x1a\xff\xff\xff\xff",
    b"\x7b\x00\x00\x00\x01\x00\x00\x00\x00",
    b"\x9f",
    b"\xbf",
    b"\xff",
    b"\xf6",
    b"\xa0",
    b"\x80",
    b"\x60",
];

/// A small model saved in one format: the two files a checkpoint directory holds.
struct Checkpoint {
    name: String,
    model_json: Vec<u8>,
    weights: Vec<u8>,
}

/// Architectures covering every layer type, padding mode, groups, dilation, both data
/// formats and a variable input length.
fn seed_specs() -> Vec<(&'static str, ModelSpec)> {
    let mixed = ModelSpec::new(InputSpec::new(4).with_length(32))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(8, 3)
                .with_padding(PaddingMode::Causal)
                .with_dilation_rate(2)
                .with_groups(2),
        ))
        .push(LayerConfig::MaxPool1d(PoolConfig::new(2)))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(4, 1).with_bias(false),
        ))
        .push(LayerConfig::Flatten)
        .push(LayerConfig::Dense(
            DenseConfig::new(3).with_activation(Activation::Softmax),
        ));
    let variable = ModelSpec::new(InputSpec::new(2))
        .push(LayerConfig::Normalization(NormalizationConfig {
            mean: vec![0.5, -1.0],
            variance: vec![2.0, 0.25],
        }))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(4, 5)
                .with_padding(PaddingMode::Same)
                .with_strides(2)
                .with_activation(Activation::Gelu),
        ))
        .push(LayerConfig::BatchNorm1d(
            BatchNormConfig::keras().with_center(false),
        ))
        .push(LayerConfig::Dropout(DropoutConfig { rate: 0.25 }))
        .push(LayerConfig::Activation(Activation::LeakyRelu {
            alpha: 0.2,
        }))
        .push(LayerConfig::AvgPool1d(PoolConfig::new(2)))
        .push(LayerConfig::GlobalAvgPool1d)
        .push(LayerConfig::Dense(DenseConfig::new(2)));
    let channels_first = ModelSpec::new(
        InputSpec::new(3)
            .with_length(16)
            .with_data_format(widen::layers::DataFormat::ChannelsFirst),
    )
    .push(LayerConfig::Conv1d(
        Conv1dConfig::new(2, 3).with_data_format(widen::layers::DataFormat::ChannelsFirst),
    ))
    .push(LayerConfig::GlobalMaxPool1d);
    // Graphs: branches, merges, several readers of the input, recurrent layers.
    use widen::layers::zoo;
    let resnet = zoo::resnet(
        InputSpec::new(3).with_length(16),
        2,
        &zoo::ResNetConfig {
            filters: vec![4, 8],
            kernels: [3, 3, 3],
        },
    );
    let inception = zoo::inception_time(
        InputSpec::new(2).with_length(12),
        2,
        &zoo::InceptionTimeConfig {
            depth: 3,
            filters: 2,
            bottleneck: 2,
            kernels: [5, 3, 1],
            residual: true,
        },
    );
    let recurrent = ModelSpec::new(InputSpec::new(3).with_length(10))
        .push(LayerConfig::Conv1d(Conv1dConfig::new(4, 3)))
        .push(LayerConfig::Lstm(
            widen::layers::LstmConfig::new(3).with_return_sequences(true),
        ))
        .push(LayerConfig::Gru(widen::layers::GruConfig::new(2)))
        .push(LayerConfig::Dense(DenseConfig::new(2)));
    vec![
        ("keras_ex1(8, 50)", keras_ex1(8, 50)),
        ("keras_ex3(3, 20)", keras_ex3(3, 20)),
        ("mixed layers", mixed),
        ("variable length", variable),
        ("channels first", channels_first),
        ("resnet graph", resnet),
        ("inception graph", inception),
        ("cnn-lstm-gru", recurrent),
    ]
}

/// Builds and saves every seed architecture in `format`, and reads the files back.
fn checkpoints(ctx: &Context, format: WeightFormat) -> Result<Vec<Checkpoint>, String> {
    let mut out = Vec::new();
    for (i, (name, spec)) in seed_specs().into_iter().enumerate() {
        let model = Sequential::new(spec, 7 + i as u64, &ctx.device)
            .map_err(|e| format!("seed model {name}: {e}"))?;
        let dir = ctx.scratch.join(format!("seed-{i}-{}", format.file_name()));
        remove_dir(&dir)?;
        model
            .save(&dir, format)
            .map_err(|e| format!("saving seed model {name}: {e}"))?;
        let read = |file: &str| {
            fs::read(dir.join(file)).map_err(|e| format!("{}: {e}", dir.join(file).display()))
        };
        out.push(Checkpoint {
            name: format!("{name}, {}", format.file_name()),
            model_json: read(widen::layers::MODEL_FILE)?,
            weights: read(format.file_name())?,
        });
    }
    Ok(out)
}

fn remove_dir(dir: &Path) -> Result<(), String> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(format!("{}: {e}", dir.display())),
        _ => Ok(()),
    }
}

fn model_json_seeds(ctx: &Context) -> Result<Vec<Seed>, String> {
    let mut seeds = Vec::new();
    for format in WeightFormat::ALL {
        for c in checkpoints(ctx, format)? {
            // Without "weights" the loader finds the single weights file itself.
            let text = String::from_utf8_lossy(&c.model_json);
            let unnamed: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("\"weights\""))
                .map(|l| format!("{l}\n"))
                .collect();
            seeds.push(Seed {
                name: format!("{} without \"weights\"", c.name),
                data: unnamed.into_bytes(),
                companion: c.weights.clone(),
            });
            seeds.push(Seed {
                name: c.name,
                data: c.model_json,
                companion: c.weights,
            });
        }
    }
    Ok(seeds)
}

fn weights_seeds(ctx: &Context, format: WeightFormat) -> Result<Vec<Seed>, String> {
    Ok(checkpoints(ctx, format)?
        .into_iter()
        .map(|c| Seed {
            name: c.name,
            data: c.weights,
            companion: c.model_json,
        })
        .collect())
}

fn safetensors_seeds(ctx: &Context) -> Result<Vec<Seed>, String> {
    weights_seeds(ctx, WeightFormat::Safetensors)
}

fn burnpack_seeds(ctx: &Context) -> Result<Vec<Seed>, String> {
    weights_seeds(ctx, WeightFormat::Burnpack)
}

/// Burnpack's magic, as it appears on disk.
const BURNPACK_MAGIC: &[u8] = b"NRUB";

fn run_model_json(ctx: &Context, data: &[u8], companion: &[u8]) -> Outcome {
    let format = if companion.starts_with(BURNPACK_MAGIC) {
        WeightFormat::Burnpack
    } else {
        WeightFormat::Safetensors
    };
    load_checkpoint(ctx, data, companion, format)
}

fn run_safetensors(ctx: &Context, data: &[u8], companion: &[u8]) -> Outcome {
    load_checkpoint(ctx, companion, data, WeightFormat::Safetensors)
}

fn run_burnpack(ctx: &Context, data: &[u8], companion: &[u8]) -> Outcome {
    load_checkpoint(ctx, companion, data, WeightFormat::Burnpack)
}

/// Writes a checkpoint directory and loads it. A model that loads must also save, and its
/// saved copy load back to the same architecture and weights.
fn load_checkpoint(
    ctx: &Context,
    model_json: &[u8],
    weights: &[u8],
    format: WeightFormat,
) -> Outcome {
    let dir = ctx.scratch.join("case");
    if let Err(e) = write_checkpoint(&dir, model_json, weights, format) {
        return Outcome::Violation(format!("harness: cannot write the case: {e}"));
    }
    let label = dir.display().to_string();
    let model = match Sequential::load(&dir, &ctx.device) {
        Ok(m) => m,
        Err(e) => return Outcome::Refused(e.to_string().replace(&label, "<ckpt>")),
    };
    // Saving syncs to disk (milliseconds); a quarter of the accepted inputs, chosen by their
    // bytes so that a replay decides the same, is enough.
    if !fnv1a(model_json)
        .wrapping_add(fnv1a(weights))
        .is_multiple_of(4)
    {
        return Outcome::Accepted;
    }
    let copy = ctx.scratch.join("resaved");
    if let Err(e) = model.save(&copy, format) {
        return Outcome::Violation(format!("loaded, but saving it again fails: {e}"));
    }
    let again = match Sequential::load(&copy, &ctx.device) {
        Ok(m) => m,
        Err(e) => return Outcome::Violation(format!("loaded, but its saved copy does not: {e}")),
    };
    if again.spec() != model.spec() || again.weight_infos() != model.weight_infos() {
        let (a, b) = (format!("{:?}", model.spec()), format!("{:?}", again.spec()));
        return Outcome::Violation(format!(
            "the saved copy has another architecture: {}",
            first_difference(&a, &b)
        ));
    }
    for info in model.weight_infos() {
        let values = |m: &Sequential| {
            m.weight(&info.layer, &info.param)
                .ok()
                .and_then(|d| d.try_to_vec::<f32>().ok())
                .map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
        };
        if values(&model).is_none() || values(&model) != values(&again) {
            return Outcome::Violation(format!(
                "tensor `{}` differs in the saved copy",
                info.key()
            ));
        }
    }
    Outcome::Accepted
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where two descriptions part, with some context: `…loaded … | …saved …`.
fn first_difference(a: &str, b: &str) -> String {
    let at = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, x), y)| x != y)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    let from = a[..at].char_indices().rev().nth(40).map_or(0, |(i, _)| i);
    let window = |s: &str| s[from..].chars().take(80).collect::<String>();
    format!("loaded `…{}` | saved `…{}`", window(a), window(b))
}

fn write_checkpoint(
    dir: &Path,
    model_json: &[u8],
    weights: &[u8],
    format: WeightFormat,
) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    // Only this case's weights file: a stale one of the other format changes detection.
    for f in WeightFormat::ALL {
        let stale = dir.join(f.file_name());
        if f != format && stale.exists() {
            fs::remove_file(stale)?;
        }
    }
    overwrite(&dir.join(widen::layers::MODEL_FILE), model_json)?;
    overwrite(&dir.join(format.file_name()), weights)
}

/// Rewrites a file in place. Not `fs::write`: ext4 flushes a file truncated to zero and
/// rewritten when it is closed (`auto_da_alloc`), which made each case cost milliseconds.
fn overwrite(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    file.write_all(bytes)?;
    file.set_len(bytes.len() as u64)
}

fn read_u64_le(bytes: &[u8], at: usize, width: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(width)?)?;
    Some(
        field
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    )
}

/// safetensors: an 8-byte little-endian header length, then that much JSON.
fn safetensors_header(bytes: &[u8]) -> Option<Range<usize>> {
    let len = usize::try_from(read_u64_le(bytes, 0, 8)?).ok()?;
    let end = 8usize.checked_add(len).filter(|&e| e <= bytes.len())?;
    Some(8..end)
}

fn safetensors_rebuild(original: &[u8], header: &[u8]) -> Option<Vec<u8>> {
    let old = safetensors_header(original)?;
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(&original[old.end..]);
    Some(out)
}

/// burnpack: magic (4), version (2), a 4-byte metadata length, CBOR metadata, then the data
/// padded to a 256-byte boundary.
fn burnpack_header(bytes: &[u8]) -> Option<Range<usize>> {
    let len = usize::try_from(read_u64_le(bytes, 6, 4)?).ok()?;
    let end = 10usize.checked_add(len).filter(|&e| e <= bytes.len())?;
    Some(10..end)
}

fn burnpack_data_start(metadata_len: usize) -> usize {
    (10 + metadata_len).div_ceil(256) * 256
}

fn burnpack_rebuild(original: &[u8], header: &[u8]) -> Option<Vec<u8>> {
    let old = burnpack_header(original)?;
    let data = original.get(burnpack_data_start(old.len())..)?;
    let mut out = original[..6].to_vec();
    out.extend_from_slice(&u32::try_from(header.len()).ok()?.to_le_bytes());
    out.extend_from_slice(header);
    out.resize(burnpack_data_start(header.len()), 0);
    out.extend_from_slice(data);
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// .onnx

/// Op types, attribute names and protobuf keys: a key byte is `(field << 3) | wire type`
/// (`0x3a` ModelProto.graph, `0x0a` GraphProto.node, `0x2a` NodeProto.attribute, ...).
const ONNX_TOKENS: &[&[u8]] = &[
    b"Conv",
    b"Gemm",
    b"MatMul",
    b"BatchNormalization",
    b"Relu",
    b"Softmax",
    b"MaxPool",
    b"AveragePool",
    b"GlobalAveragePool",
    b"Flatten",
    b"Reshape",
    b"Squeeze",
    b"Unsqueeze",
    b"Transpose",
    b"Concat",
    b"Add",
    b"Pad",
    b"Slice",
    b"LSTM",
    b"GRU",
    b"Shape",
    b"Gather",
    b"ConstantOfShape",
    b"Constant",
    b"If",
    b"pads",
    b"strides",
    b"kernel_shape",
    b"auto_pad",
    b"SAME_UPPER",
    b"group",
    b"axes",
    b"perm",
    b"hidden_size",
    b"\x3a",
    b"\x0a",
    b"\x12",
    b"\x2a",
    b"\x42\x02\x10\x11",
    b"\x08\x01",
    b"\x10\x07",
    b"\x48\x01",
    b"\xff\xff\xff\xff\x0f",
    b"\x80\x80\x80\x80\x80\x80\x80\x80\x40",
];

/// The ONNX fixtures (the CLI's and widen-onnx's own) and every seed architecture exported.
fn onnx_seeds(ctx: &Context) -> Result<Vec<Seed>, String> {
    let mut seeds = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["cli/tests/fixtures/onnx", "onnx/tests/fixtures"] {
        let Ok(entries) = fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path().join("model.onnx"))
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for p in paths {
            let data = fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            seeds.push(seed(format!("{dir}/{}", p.display()), data));
        }
    }
    for (i, (name, spec)) in seed_specs().into_iter().enumerate() {
        let model = Sequential::new(spec, 11 + i as u64, &ctx.device)
            .map_err(|e| format!("seed model {name}: {e}"))?;
        // A seed architecture with a layer ONNX has no form for is skipped, not a failure.
        if let Ok(bytes) = widen::onnx::export(&model) {
            seeds.push(seed(format!("export of {name}"), bytes));
        }
    }
    if seeds.is_empty() {
        return Err("no ONNX seeds".into());
    }
    Ok(seeds)
}

/// An import must be a typed refusal or a spec that builds; a model that builds must export,
/// and the export import again with the same layer types in the same order.
fn run_onnx(ctx: &Context, data: &[u8], _: &[u8]) -> Outcome {
    let (spec, weights) = match widen::onnx::import(data) {
        Ok(x) => x,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let model = match widen::onnx::build(spec, weights, &ctx.device) {
        Ok(m) => m,
        Err(e) => return Outcome::Refused(e.to_string()),
    };
    let bytes = match widen::onnx::export(&model) {
        Ok(b) => b,
        Err(e) => return Outcome::Violation(format!("an imported model does not export: {e}")),
    };
    let types = |spec: &ModelSpec| -> Vec<&'static str> {
        spec.layers.iter().map(|l| l.config.type_tag()).collect()
    };
    match widen::onnx::import(&bytes) {
        Ok((again, _)) if types(&again) == types(model.spec()) => Outcome::Accepted,
        Ok((again, _)) => Outcome::Violation(format!(
            "export → import changed the layers {:?} into {:?}",
            types(model.spec()),
            types(&again)
        )),
        Err(e) => Outcome::Violation(format!("widen's own export does not import: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_are_unique_and_file_name_safe() {
        for (i, t) in TARGETS.iter().enumerate() {
            assert!(
                t.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                t.name
            );
            assert!(TARGETS[..i].iter().all(|o| o.name != t.name));
        }
    }

    #[test]
    fn text_seeds_are_accepted_and_frames_rebuild_them() {
        let ctx = Context::new(std::env::temp_dir().join("widen-fuzz-unit")).unwrap();
        for target in [find("npy").unwrap(), find("ts").unwrap()] {
            for s in (target.seeds)(&ctx).unwrap() {
                let outcome = (target.run)(&ctx, &s.data, &s.companion);
                assert_eq!(outcome, Outcome::Accepted, "{}: {}", target.name, s.name);
                if let Some(frame) = target.frame {
                    let header = (frame.header)(&s.data).unwrap();
                    let rebuilt = (frame.rebuild)(&s.data, &s.data[header]).unwrap();
                    assert_eq!(rebuilt, s.data, "{}", s.name);
                }
            }
        }
    }
}
