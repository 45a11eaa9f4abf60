//! Checkpoints: a directory holding a model's architecture and its weights.
//!
//! ```text
//! <dir>/
//!   model.json            {"format": "widen-model", "version": 2,
//!                          "weights": "weights.safetensors", "spec": <ModelSpec>}
//!   weights.safetensors   (default)   or   weights.bpk   (Burn's burnpack)
//! ```
//!
//! `spec` is the [`ModelSpec`] as serde writes it: `{"input": {"name": "input", ...},
//! "layers": [{"name": "conv1d", "inbound": ["input"], "type": "conv1d", ...}, ...]}`: a graph
//! in topological order, each layer naming the nodes it reads, the last layer the output.
//! Version 1 (chains) had no `inbound` and no input name; it still loads, each layer reading
//! the one before (an `Activation` layer nests its function:
//! `{"name": "activation", "type": "activation", "activation": {"name": "gelu"}}`). Config
//! fields Keras gives defaults may be left out. `weights` is optional on load; without it the
//! single weights file present is used. [`Sequential::load`] rebuilds the model from the spec
//! alone and then requires the weights file to hold exactly the tensors that architecture has,
//! each with its shape.
//!
//! # Tensors
//!
//! Names are `"<layer name>.<param>"` (see [`Sequential::weight_infos`]); values are
//! little-endian `F32` (`F64` is accepted on load and rounded to `F32`), C order:
//!
//! - `Conv1D`: `weight` `[filters, in_channels / groups, kernel_size]`; `bias` `[filters]` (if
//!   `use_bias`).
//! - `Dense`: `weight` `[in_features, units]`; `bias` `[units]` (if `use_bias`).
//! - `BatchNormalization`: `gamma` (if `scale`), `beta` (if `center`), `moving_mean`,
//!   `moving_variance`, each `[channels]`.
//! - `Normalization`: `mean`, `variance`, each `[channels]`.
//! - Pooling, `Flatten`, `Dropout`, `Activation`, merges: none.
//! - Every other layer type lists its tensors in its own file (`LayerKind::params`).
//!
//! The Conv1D weight is Burn's/PyTorch's layout: a Keras kernel `[kernel_size, in / groups,
//! filters]` is written as `kernel.transpose(2, 1, 0)`. The Dense weight is Keras' own layout
//! (no transpose; PyTorch's `Linear.weight` would need `.T`). A Dense after `Flatten` sees the
//! features in Keras' order for the model's data format, so Keras weights need no permutation.
//!
//! Each tensor may carry a CRC-32 (IEEE, as Python's `zlib.crc32`) of its stored bytes in the
//! file's string metadata (safetensors `__metadata__`, burnpack metadata), under the key
//! `"widen.crc32.<tensor name>"` with 8 lowercase hex digits. widen always writes them; a file
//! from another writer may omit them, and loading then relies on the finiteness check alone.
//! A Python exporter needs nothing beyond NumPy and the `safetensors` package:
//!
//! ```text
//! k = conv.kernel.numpy()                                   # [k, in/groups, filters]
//! t = {"conv1d.weight": np.ascontiguousarray(k.transpose(2, 1, 0), dtype="<f4"), ...}
//! meta = {f"widen.crc32.{n}": f"{zlib.crc32(a.tobytes()):08x}" for n, a in t.items()}
//! safetensors.numpy.save_file(t, "ckpt/weights.safetensors", metadata=meta)
//! ```
//!
//! # Atomicity
//!
//! A save builds every file in memory, writes them into a fresh hidden directory beside the
//! target and renames it into place, so a failure never leaves a half-written checkpoint. An
//! existing checkpoint at the target is replaced as a whole (no stale weights file of the other
//! format survives); any other existing directory is refused, never deleted. Replacing takes
//! two renames; a crash between them leaves the previous checkpoint in a hidden
//! `.<name>.widen-old-*` sibling rather than losing it.
//!
//! Freezing is not stored: a loaded model has no frozen layer.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use burn::store::burn_pack;
use burn::tensor::{DType, Device, TensorData};
use serde::{Deserialize, Serialize};

use crate::{LayerError, LayerSpec, ModelSpec, Sequential, WeightInfo};

/// The architecture file in a checkpoint directory.
pub const MODEL_FILE: &str = "model.json";
/// The `format` tag of `model.json`.
pub const CHECKPOINT_FORMAT: &str = "widen-model";
/// The `version` of `model.json` this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 2;
/// The oldest `model.json` version this build reads (version 1: chains without `inbound`).
pub const OLDEST_CHECKPOINT_VERSION: u32 = 1;

const CRC_KEY_PREFIX: &str = "widen.crc32.";

/// How a checkpoint's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WeightFormat {
    /// `weights.safetensors`, readable from Python (`safetensors`, NumPy, PyTorch).
    #[default]
    Safetensors,
    /// `weights.bpk`, Burn's burnpack container.
    Burnpack,
}

impl WeightFormat {
    /// Every format, in detection order.
    pub const ALL: [WeightFormat; 2] = [WeightFormat::Safetensors, WeightFormat::Burnpack];

    /// The weights file name in a checkpoint directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::Safetensors => "weights.safetensors",
            Self::Burnpack => "weights.bpk",
        }
    }

    /// The format stored under `name`, if `name` is a weights file name.
    pub fn from_file_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.file_name() == name)
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    format: &'a str,
    version: u32,
    weights: &'a str,
    spec: &'a ModelSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<&'a serde_json::Value>,
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> LayerError + '_ {
    move |source| LayerError::CheckpointIo {
        path: display(path),
        source,
    }
}

/// CRC-32 (IEEE 802.3, reflected, as zlib), table built at compile time.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// The tensors `spec` needs, in the order `Model::weight_infos` lists them, worked out from
/// the configs alone (each layer type says what it stores): a file can be checked before any
/// device memory is spent.
pub(crate) fn spec_tensors(spec: &ModelSpec) -> Result<Vec<WeightInfo>, LayerError> {
    spec.tensors()
}

fn check_finite(path: &str, tensor: &str, values: &[f32]) -> Result<(), LayerError> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(LayerError::NonFiniteWeight {
            path: path.to_string(),
            tensor: tensor.to_string(),
            index,
            value: values.get(index).copied().unwrap_or(f32::NAN),
        }),
        None => Ok(()),
    }
}

/// One tensor as stored: little-endian F32 bytes.
struct Stored {
    name: String,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Sequential {
    /// Saves the model into the checkpoint directory `dir` (layout in the
    /// [module docs](crate::checkpoint)). `dir`'s parent must exist; an existing checkpoint at
    /// `dir` is replaced, any other existing path is refused. The write is atomic.
    pub fn save(&self, dir: &Path, format: WeightFormat) -> Result<(), LayerError> {
        self.save_with_meta(dir, format, None)
    }

    /// [`Model::save`], with `meta` stored as `model.json`'s `"meta"` object: what made the
    /// model (an expansion's channel map and strategy), for the tools that read it back with
    /// [`read_meta`]. Loading ignores it.
    pub fn save_with_meta(
        &self,
        dir: &Path,
        format: WeightFormat,
        meta: Option<&serde_json::Value>,
    ) -> Result<(), LayerError> {
        let target = display(dir);
        let infos = spec_tensors(self.spec()).map_err(|e| LayerError::InvalidSpec {
            path: target.clone(),
            source: Box::new(e),
        })?;

        let mut tensors = Vec::with_capacity(infos.len());
        for info in &infos {
            let key = info.key();
            let data = self.weight(&info.layer, &info.param)?;
            // A layer whose tensor drifted from what its spec says would save a checkpoint
            // that cannot load.
            if data.shape().as_slice() != info.shape.as_slice() {
                return Err(LayerError::WeightShape {
                    path: target.clone(),
                    tensor: key,
                    expected: info.shape.clone(),
                    got: format!("{:?} in the model", data.shape().as_slice()),
                });
            }
            let values = data
                .try_to_vec_as::<f32>()
                .map_err(|e| LayerError::Checkpoint {
                    path: target.clone(),
                    reason: format!("tensor `{key}` cannot be read as f32: {e:?}"),
                })?;
            check_finite(&target, &key, &values)?;
            tensors.push(Stored {
                name: key,
                shape: info.shape.clone(),
                bytes: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            });
        }

        let weights_path = dir.join(format.file_name());
        let weights = match format {
            WeightFormat::Safetensors => encode_safetensors(&tensors),
            WeightFormat::Burnpack => encode_burnpack(tensors),
        }
        .map_err(|reason| LayerError::Checkpoint {
            path: display(&weights_path),
            reason,
        })?;
        let mut model_json = serde_json::to_vec_pretty(&Envelope {
            format: CHECKPOINT_FORMAT,
            version: CHECKPOINT_VERSION,
            weights: format.file_name(),
            spec: self.spec(),
            meta,
        })
        .map_err(|e| LayerError::Checkpoint {
            path: display(&dir.join(MODEL_FILE)),
            reason: format!("cannot serialise the architecture: {e}"),
        })?;
        model_json.push(b'\n');

        write_dir_atomically(
            dir,
            &[(MODEL_FILE, &model_json), (format.file_name(), &weights)],
        )
    }

    /// Loads the checkpoint in `dir`: rebuilds the model from `model.json` on `device`, then
    /// fills it from the weights file, which must hold exactly the architecture's tensors with
    /// their shapes, finite and (where recorded) matching their checksums.
    pub fn load(dir: &Path, device: &Device) -> Result<Sequential, LayerError> {
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                let keras = dir
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "keras" | "h5"));
                return Err(LayerError::Checkpoint {
                    path: display(dir),
                    reason: if keras {
                        format!(
                            "a Keras model file, not a widen model directory; export it first: \
                             python3 tools/keras_export.py {} MODEL_DIR (see docs/KERAS.md)",
                            dir.display()
                        )
                    } else {
                        "a file, not a widen model directory (expected a directory holding \
                         model.json and weights.safetensors or weights.bpk)"
                            .into()
                    },
                });
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(LayerError::CheckpointNotFound {
                    path: display(dir),
                    what: "checkpoint directory".into(),
                });
            }
            Err(e) => return Err(io_error(dir)(e)),
        }

        let model_path = dir.join(MODEL_FILE);
        // serde_json's tree of a spec takes up to ~32 times its text (a 32-byte value per
        // two-byte `0,`, in vectors that double).
        let model_json = read_file(&model_path, "architecture file model.json", 32)?;
        let (spec, named_weights) = parse_model_json(&model_path, &model_json)?;
        let model_label = display(&model_path);
        let invalid = |e: LayerError| LayerError::InvalidSpec {
            path: model_label.clone(),
            source: Box::new(e),
        };
        let expected = spec_tensors(&spec).map_err(invalid)?;

        let format = match named_weights {
            Some(format) => format,
            None => detect_format(dir)?,
        };
        let weights_path = dir.join(format.file_name());
        // The file, the tensors copied out of it, and their f32 values.
        let bytes = read_file(&weights_path, "weights file", 3)?;
        let label = display(&weights_path);
        let file = match format {
            WeightFormat::Safetensors => decode_safetensors(&bytes),
            WeightFormat::Burnpack => decode_burnpack(bytes),
        }
        .map_err(|reason| LayerError::CorruptWeights {
            path: label.clone(),
            reason,
        })?;
        let values = check_file(&label, &expected, file)?;
        check_statistics(&label, &expected, &values)?;

        let mut model = Sequential::new(spec, 0, device).map_err(invalid)?;
        if model.weight_infos() != expected {
            // Only a bug in `spec_tensors` gets here; say so rather than load half a model.
            return Err(spec_mismatch(
                &model_label,
                &expected,
                &model.weight_infos(),
            ));
        }
        for (info, values) in expected.iter().zip(values) {
            let data = TensorData::new(values, info.shape.clone());
            model.set_weight(&info.layer, &info.param, data)?;
        }
        Ok(model)
    }
}

fn spec_mismatch(path: &str, spec: &[WeightInfo], model: &[WeightInfo]) -> LayerError {
    for (s, m) in spec.iter().zip(model) {
        if s.key() == m.key() && s.shape != m.shape {
            return LayerError::WeightShape {
                path: path.to_string(),
                tensor: s.key(),
                expected: s.shape.clone(),
                got: format!("{:?} in the model", m.shape),
            };
        }
    }
    let keys = |v: &[WeightInfo]| v.iter().map(WeightInfo::key).collect::<Vec<_>>().join(", ");
    LayerError::Checkpoint {
        path: path.to_string(),
        reason: format!(
            "the model's tensors [{}] disagree with its spec, which needs [{}]",
            keys(model),
            keys(spec)
        ),
    }
}

/// Reads a checkpoint file after checking `factor ×` its size against the memory budget.
fn read_file(path: &Path, what: &str, factor: u128) -> Result<Vec<u8>, LayerError> {
    widen_guard::read_bounded(path, what, factor).map_err(|e| match e {
        widen_guard::InputError::Budget(b) => LayerError::Budget(b),
        widen_guard::InputError::Io { source, .. } if source.kind() == ErrorKind::NotFound => {
            LayerError::CheckpointNotFound {
                path: display(path),
                what: what.to_string(),
            }
        }
        widen_guard::InputError::Io { source, .. } => io_error(path)(source),
        // A directory, or a device or FIFO (a link to /dev/zero) that may never end.
        other => LayerError::Checkpoint {
            path: display(path),
            reason: format!("the {what}: {other}"),
        },
    })
}

fn detect_format(dir: &Path) -> Result<WeightFormat, LayerError> {
    let present: Vec<WeightFormat> = WeightFormat::ALL
        .into_iter()
        .filter(|f| dir.join(f.file_name()).is_file())
        .collect();
    match present.as_slice() {
        [format] => Ok(*format),
        [] => Err(LayerError::CheckpointNotFound {
            path: display(dir),
            what: "weights file (weights.safetensors or weights.bpk)".into(),
        }),
        _ => Err(LayerError::Checkpoint {
            path: display(dir),
            reason: "both weights.safetensors and weights.bpk are present and model.json names \
                     neither"
                .into(),
        }),
    }
}

/// The `"meta"` object a [`Model::save_with_meta`] stored in `dir`'s `model.json`, if any.
pub fn read_meta(dir: &Path) -> Result<Option<serde_json::Value>, LayerError> {
    let path = dir.join(MODEL_FILE);
    let bytes = read_file(&path, "architecture file model.json", 32)?;
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let root: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| LayerError::ModelJson {
            path: display(&path),
            reason: format!("not valid JSON: {e}"),
        })?;
    Ok(root.get("meta").cloned())
}

/// Reads the envelope, then the spec layer by layer so a bad layer is named by index and name.
fn parse_model_json(
    path: &Path,
    bytes: &[u8],
) -> Result<(ModelSpec, Option<WeightFormat>), LayerError> {
    let label = display(path);
    let bad = |reason: String| LayerError::ModelJson {
        path: label.clone(),
        reason,
    };
    // A byte-order mark (Windows editors write one) is not JSON but means nothing here.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let root: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let Some(root) = root.as_object() else {
        return Err(bad("expected a JSON object at the top level".into()));
    };
    match root.get("format").and_then(|f| f.as_str()) {
        Some(CHECKPOINT_FORMAT) => {}
        other => {
            return Err(bad(format!(
                "not a widen model: expected \"format\": \"{CHECKPOINT_FORMAT}\", got {}",
                other.map_or("no format".to_string(), |f| format!("\"{f}\""))
            )));
        }
    }
    match root.get("version") {
        Some(v)
            if v.as_u64().is_some_and(|v| {
                (u64::from(OLDEST_CHECKPOINT_VERSION)..=u64::from(CHECKPOINT_VERSION)).contains(&v)
            }) => {}
        found => {
            return Err(LayerError::CheckpointVersion {
                path: label.clone(),
                found: found.map_or("(none)".to_string(), |v| v.to_string()),
                supported: CHECKPOINT_VERSION,
                oldest: OLDEST_CHECKPOINT_VERSION,
            });
        }
    }
    let weights = match root.get("weights") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(WeightFormat::from_file_name)
                .ok_or_else(|| {
                    bad(format!(
                        "\"weights\" must be \"weights.safetensors\" or \"weights.bpk\", got {v}"
                    ))
                })?,
        ),
    };
    let spec = root
        .get("spec")
        .and_then(|s| s.as_object())
        .ok_or_else(|| bad("missing the \"spec\" object".into()))?;
    let input = spec
        .get("input")
        .ok_or_else(|| bad("spec: missing \"input\"".into()))
        .and_then(|v| {
            crate::InputSpec::deserialize(v).map_err(|e| bad(format!("spec.input: {e}")))
        })?;
    let layers = spec
        .get("layers")
        .and_then(|l| l.as_array())
        .ok_or_else(|| bad("spec: missing the \"layers\" array".into()))?;
    let layers = layers
        .iter()
        .enumerate()
        .map(|(index, v)| {
            LayerSpec::deserialize(v).map_err(|e| LayerError::LayerSpecJson {
                path: label.clone(),
                index,
                name: v
                    .get("name")
                    .and_then(|n| n.as_str())
                    .unwrap_or("?")
                    .to_string(),
                reason: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let input_name = match spec.get("input").and_then(|i| i.get("name")) {
        None => crate::DEFAULT_INPUT_NAME.to_string(),
        Some(v) => v
            .as_str()
            .ok_or_else(|| bad(format!("spec.input.name: expected a string, got {v}")))?
            .to_string(),
    };
    Ok((
        ModelSpec {
            input,
            input_name,
            layers,
        },
        weights,
    ))
}

fn encode_safetensors(tensors: &[Stored]) -> Result<Vec<u8>, String> {
    let mut views = Vec::with_capacity(tensors.len());
    let mut metadata = HashMap::new();
    for t in tensors {
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            t.shape.clone(),
            &t.bytes,
        )
        .map_err(|e| format!("tensor `{}`: {e}", t.name))?;
        views.push((t.name.clone(), view));
        metadata.insert(
            format!("{CRC_KEY_PREFIX}{}", t.name),
            format!("{:08x}", crc32(&t.bytes)),
        );
    }
    // safetensors 0.8 writes a broken header for `Some(empty)` metadata (a model without
    // tensors), so empty metadata is left out.
    let metadata = (!metadata.is_empty()).then_some(metadata);
    safetensors::serialize(views, metadata).map_err(|e| e.to_string())
}

fn encode_burnpack(tensors: Vec<Stored>) -> Result<Vec<u8>, String> {
    let mut metadata = Vec::with_capacity(tensors.len());
    let tensors = tensors
        .into_iter()
        .map(|t| {
            metadata.push((
                format!("{CRC_KEY_PREFIX}{}", t.name),
                format!("{:08x}", crc32(&t.bytes)),
            ));
            burn_pack::Tensor::new(
                t.name,
                DType::F32,
                t.shape,
                None,
                burn_pack::Bytes::from_bytes_vec(t.bytes),
            )
        })
        .collect();
    let mut writer = burn_pack::Writer::new(tensors);
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    writer
        .into_bytes()
        .map(|b| b.to_vec())
        .map_err(|e| e.to_string())
}

/// A tensor as read from a file, before any check.
struct Raw {
    dtype: RawDtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

enum RawDtype {
    F32,
    F64,
    Other(String),
}

struct RawFile {
    tensors: BTreeMap<String, Raw>,
    metadata: BTreeMap<String, String>,
}

/// Variances must be non-negative: BatchNorm divides by `sqrt(variance + epsilon)`.
fn check_statistics(
    path: &str,
    expected: &[WeightInfo],
    values: &[Vec<f32>],
) -> Result<(), LayerError> {
    for (info, values) in expected.iter().zip(values) {
        if !matches!(info.param.as_str(), "moving_variance" | "variance") {
            continue;
        }
        if let Some(index) = values.iter().position(|&v| v < 0.0) {
            return Err(LayerError::InvalidStatistic {
                path: path.to_string(),
                tensor: info.key(),
                index,
                value: values[index],
                expected: "a variance cannot be negative".into(),
            });
        }
    }
    Ok(())
}

/// Which tensor of a safetensors header has a byte range that does not fit its shape and
/// dtype (the crate's own error does not say).
fn explain_bad_tensor(bytes: &[u8]) -> Option<String> {
    let n = usize::try_from(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?)).ok()?;
    // Only an explanation: skipped when the header's JSON tree would not fit the budget.
    widen_guard::budget()
        .check(
            "explaining a safetensors header",
            (n as u128).saturating_mul(32),
        )
        .ok()?;
    let header: serde_json::Value =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    for (name, info) in header.as_object()? {
        if name == "__metadata__" {
            continue;
        }
        let width: u128 = match info.get("dtype")?.as_str()? {
            "F64" | "I64" | "U64" => 8,
            "F32" | "I32" | "U32" => 4,
            "F16" | "BF16" | "I16" | "U16" => 2,
            _ => 1,
        };
        let shape: Vec<u128> = info
            .get("shape")?
            .as_array()?
            .iter()
            .map(|d| d.as_u64().map(u128::from))
            .collect::<Option<_>>()?;
        let offsets = info.get("data_offsets")?.as_array()?;
        let (start, end) = (offsets.first()?.as_u64()?, offsets.get(1)?.as_u64()?);
        let needed = shape.iter().fold(width, |a, &d| a.saturating_mul(d));
        let stored = u128::from(end.saturating_sub(start));
        if needed != stored {
            return Some(format!(
                "tensor `{name}`: shape {shape:?} needs {needed} bytes but its data_offsets [{start}, {end}] hold {stored}"
            ));
        }
    }
    None
}

fn decode_safetensors(bytes: &[u8]) -> Result<RawFile, String> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| explain_bad_tensor(bytes).unwrap_or_else(|| e.to_string()))?;
    let file = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
    let tensors = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let dtype = match view.dtype() {
                safetensors::Dtype::F32 => RawDtype::F32,
                safetensors::Dtype::F64 => RawDtype::F64,
                other => RawDtype::Other(format!("{other:?}")),
            };
            let raw = Raw {
                dtype,
                shape: view.shape().to_vec(),
                bytes: view.data().to_vec(),
            };
            (name, raw)
        })
        .collect();
    let metadata = header
        .metadata()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(RawFile { tensors, metadata })
}

fn decode_burnpack(bytes: Vec<u8>) -> Result<RawFile, String> {
    let reader = burn_pack::Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(bytes))
        .map_err(|e| e.to_string())?;
    let metadata = reader.metadata().clone();
    let mut tensors = BTreeMap::new();
    for t in reader.into_tensors().map_err(|e| e.to_string())? {
        let (name, dtype, shape, _, bytes) = t.into_parts().map_err(|e| e.to_string())?;
        let dtype = match dtype {
            DType::F32 => RawDtype::F32,
            DType::F64 => RawDtype::F64,
            other => RawDtype::Other(format!("{other:?}")),
        };
        let raw = Raw {
            dtype,
            shape: shape.to_vec(),
            bytes: bytes.to_vec(),
        };
        tensors.insert(name, raw);
    }
    Ok(RawFile { tensors, metadata })
}

/// Checks a file against the tensors the architecture needs and decodes their values, in the
/// order of `expected`.
fn check_file(
    path: &str,
    expected: &[WeightInfo],
    mut file: RawFile,
) -> Result<Vec<Vec<f32>>, LayerError> {
    let mut out = Vec::with_capacity(expected.len());
    for info in expected {
        let key = info.key();
        let Some(raw) = file.tensors.remove(&key) else {
            return Err(LayerError::MissingTensor {
                path: path.to_string(),
                tensor: key,
                expected: info.shape.clone(),
            });
        };
        if raw.shape != info.shape {
            return Err(LayerError::WeightShape {
                path: path.to_string(),
                tensor: key,
                expected: info.shape.clone(),
                got: format!("{:?}", raw.shape),
            });
        }
        if let Some(recorded) = file.metadata.get(&format!("{CRC_KEY_PREFIX}{key}")) {
            let computed = crc32(&raw.bytes);
            if u32::from_str_radix(recorded, 16).ok() != Some(computed) {
                return Err(LayerError::WeightChecksum {
                    path: path.to_string(),
                    tensor: key,
                    recorded: recorded.clone(),
                    computed: format!("{computed:08x}"),
                });
            }
        }
        let values = decode_values(path, &key, &raw)?;
        check_finite(path, &key, &values)?;
        out.push(values);
    }
    if let Some((name, raw)) = file.tensors.into_iter().next() {
        return Err(LayerError::UnexpectedTensor {
            path: path.to_string(),
            tensor: name,
            shape: raw.shape,
        });
    }
    Ok(out)
}

fn decode_values(path: &str, key: &str, raw: &Raw) -> Result<Vec<f32>, LayerError> {
    let width: usize = match &raw.dtype {
        RawDtype::F32 => 4,
        RawDtype::F64 => 8,
        RawDtype::Other(dtype) => {
            return Err(LayerError::WeightDtype {
                path: path.to_string(),
                tensor: key.to_string(),
                dtype: dtype.clone(),
            });
        }
    };
    let len = raw
        .shape
        .iter()
        .try_fold(width, |n, &d| n.checked_mul(d))
        .filter(|&n| n == raw.bytes.len());
    if len.is_none() {
        return Err(LayerError::CorruptWeights {
            path: path.to_string(),
            reason: format!(
                "tensor `{key}`: {} bytes do not fill shape {:?} at {width} bytes per value",
                raw.bytes.len(),
                raw.shape
            ),
        });
    }
    Ok(match raw.dtype {
        RawDtype::F64 => {
            let mut out = Vec::with_capacity(raw.bytes.len() / 8);
            for (index, c) in raw.bytes.chunks_exact(8).enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                let v = f64::from_le_bytes(b);
                if v.is_finite() && !(v as f32).is_finite() {
                    return Err(LayerError::CorruptWeights {
                        path: path.to_string(),
                        reason: format!(
                            "tensor `{key}`: the F64 value {v:e} at flat index {index} is out of float32 range"
                        ),
                    });
                }
                out.push(v as f32);
            }
            out
        }
        _ => raw
            .bytes
            .chunks_exact(4)
            .map(|c| {
                let mut b = [0u8; 4];
                b.copy_from_slice(c);
                f32::from_le_bytes(b)
            })
            .collect(),
    })
}

/// Creates a fresh hidden sibling directory; `create_dir` itself is the uniqueness check, so a
/// directory someone else made is never adopted (and never removed by the guard).
fn create_temp_dir(dir: &Path) -> Result<TempDir, LayerError> {
    loop {
        // widen-guard's naming, so a later run's stale-temporary cleanup recognises it.
        let path = widen_guard::temp_sibling(dir);
        match fs::create_dir(&path) {
            Ok(()) => return Ok(TempDir { path, armed: true }),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(&path)(e)),
        }
    }
}

/// Deletes a replaced checkpoint file by file, so nothing but checkpoint files is ever removed.
fn remove_checkpoint_dir(dir: &Path) {
    let files = std::iter::once(MODEL_FILE).chain(WeightFormat::ALL.map(WeightFormat::file_name));
    for file in files {
        let _ = fs::remove_file(dir.join(file));
    }
    let _ = fs::remove_dir(dir);
}

/// Removes the directory it guards unless disarmed: a failed save leaves nothing behind.
struct TempDir {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: this directory was created by us under a fresh name, so removing it
            // cannot touch anything else.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Whether `dir` holds nothing but checkpoint files, and so may be replaced by a save.
fn is_replaceable(dir: &Path) -> Result<bool, LayerError> {
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let known = name
            .to_str()
            .is_some_and(|n| n == MODEL_FILE || WeightFormat::from_file_name(n).is_some());
        let is_file = entry.file_type().map_err(io_error(dir))?.is_file();
        if !(known && is_file) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn sync_dir(dir: &Path) {
    // Durability of the rename; not every platform can open a directory, hence best effort.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes `files` into a fresh hidden sibling of `dir` and renames it to `dir`.
fn write_dir_atomically(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), LayerError> {
    if dir.file_name().is_none() {
        return Err(LayerError::Checkpoint {
            path: display(dir),
            reason: "the path has no final directory name".into(),
        });
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match fs::metadata(parent) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(LayerError::Checkpoint {
                path: display(dir),
                reason: format!("parent {} is not a directory", parent.display()),
            });
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(LayerError::CheckpointNotFound {
                path: display(dir),
                what: format!("parent directory {}", parent.display()),
            });
        }
        Err(e) => return Err(io_error(parent)(e)),
    }
    let replace = match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == ErrorKind::NotFound => false,
        Err(e) => return Err(io_error(dir)(e)),
        Ok(m) if m.is_dir() => {
            if !is_replaceable(dir)? {
                return Err(LayerError::Checkpoint {
                    path: display(dir),
                    reason: "exists and holds files other than a widen checkpoint's; refusing \
                             to replace it"
                        .into(),
                });
            }
            true
        }
        Ok(_) => {
            return Err(LayerError::Checkpoint {
                path: display(dir),
                reason: "exists and is not a directory".into(),
            });
        }
    };

    // Temporaries a killed save left here (hundreds of MB each) go before a new one is made.
    widen_guard::remove_stale_temporaries(parent);
    let mut tmp = create_temp_dir(dir)?;
    for (file, bytes) in files {
        // Inside the fresh temporary directory; the directory is renamed into place below.
        let path = tmp.path.join(file);
        let mut f = fs::File::create(&path).map_err(io_error(&path))?;
        f.write_all(bytes).map_err(io_error(&path))?;
        f.sync_all().map_err(io_error(&path))?;
    }
    sync_dir(&tmp.path);

    if replace {
        let old = widen_guard::old_sibling(dir);
        fs::rename(dir, &old).map_err(io_error(dir))?;
        if let Err(e) = fs::rename(&tmp.path, dir) {
            // Put the previous checkpoint back; the new one is removed by the guard.
            let _ = fs::rename(&old, dir);
            return Err(io_error(dir)(e));
        }
        tmp.armed = false;
        // The new checkpoint is in place; failing to delete the old copy is not a failed save.
        remove_checkpoint_dir(&old);
    } else {
        fs::rename(&tmp.path, dir).map_err(io_error(dir))?;
        tmp.armed = false;
    }
    sync_dir(parent);
    Ok(())
}
