//! `widen import` and `widen export`: ONNX files in and out of widen model directories. The
//! mapping lives in `widen-onnx`; this module reads and writes the files (bounded reads,
//! outputs that never alias an input, atomic writes) and words the one-line summaries.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use thiserror::Error;
use widen::guard::{InputError, OutputError};
use widen::layers::{DataFormat, InputSpec, LayerError, Model, WeightFormat};
use widen::onnx::OnnxError;

/// Why an import or export did not happen.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InteropError {
    /// The ONNX file could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The output would overwrite or sit inside an input, or cannot be written.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The model did not import, or does not export.
    #[error("{path}: {source}")]
    Onnx {
        /// The ONNX file or model directory.
        path: String,
        /// What `widen-onnx` said.
        #[source]
        source: OnnxError,
    },
    /// The widen model directory could not be read or written.
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// What an import read and wrote.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// Nodes per ONNX op type.
    pub ops: BTreeMap<String, usize>,
    /// Layers per Keras class in the widen model.
    pub layers: BTreeMap<&'static str, usize>,
    /// The default-domain opset.
    pub opset: i64,
    /// The exporter named in the file.
    pub producer: String,
    /// The widen model's input.
    pub input: InputSpec,
}

fn counts<K: Ord + std::fmt::Display>(m: &BTreeMap<K, usize>) -> String {
    m.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[batch, 3, 32]` or `[batch, length, 3]`, as the model takes it.
pub fn input_text(input: &InputSpec) -> String {
    let len = input.length.map_or("length".to_string(), |l| l.to_string());
    match input.data_format {
        DataFormat::ChannelsFirst => format!("[batch, {}, {len}] (channels-first)", input.channels),
        DataFormat::ChannelsLast => format!("[batch, {len}, {}] (channels-last)", input.channels),
    }
}

impl ImportReport {
    /// `9 ONNX nodes (Conv 2, ...) → 7 layers (Conv1D 2, ...)`.
    pub fn summary(&self) -> String {
        format!(
            "{} ONNX node(s) ({}) → {} layer(s) ({}); opset {}{}; input {}",
            self.ops.values().sum::<usize>(),
            counts(&self.ops),
            self.layers.values().sum::<usize>(),
            counts(&self.layers),
            self.opset,
            if self.producer.is_empty() {
                String::new()
            } else {
                format!(", from {}", widen::layers::printable(&self.producer))
            },
            input_text(&self.input)
        )
    }
}

/// Reads `onnx` (never modified), builds the model on `device` and saves it to `out` in
/// `format` (atomically, as every checkpoint save is).
pub fn import_onnx(
    onnx: &Path,
    out: &Path,
    format: WeightFormat,
    device: &Device,
) -> Result<ImportReport, InteropError> {
    widen::guard::check_output(out, &[onnx])?;
    // The bytes, then the decoded weights (widen-onnx bounds the decoded tree itself).
    let bytes = widen::guard::read_bounded(onnx, "ONNX model", 2)?;
    let path = onnx.display().to_string();
    let onnx_error = |source| InteropError::Onnx {
        path: path.clone(),
        source,
    };
    let imported = widen::onnx::import_detailed(&bytes).map_err(onnx_error)?;
    let mut layers = BTreeMap::new();
    for l in &imported.spec.layers {
        *layers.entry(l.config.keras_class()).or_insert(0) += 1;
    }
    let report = ImportReport {
        ops: imported.ops,
        layers,
        opset: imported.opset,
        producer: imported.producer,
        input: imported.spec.input,
    };
    let model = widen::onnx::build(imported.spec, imported.weights, device).map_err(onnx_error)?;
    model.save(out, format)?;
    Ok(report)
}

/// What an export wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    /// Layers in the widen model.
    pub layers: usize,
    /// Bytes written.
    pub bytes: usize,
    /// The model's input.
    pub input: InputSpec,
}

/// Loads the model in `model_dir` (never modified) and writes it to `onnx` as ONNX
/// (atomically; `onnx` may not be the directory or lie inside it).
pub fn export_onnx(
    model_dir: &Path,
    onnx: &Path,
    device: &Device,
) -> Result<ExportReport, InteropError> {
    widen::guard::check_output(onnx, &[model_dir])?;
    widen::guard::check_file_output(onnx)?;
    let model = Model::load(model_dir, device)?;
    let bytes = widen::onnx::export(&model).map_err(|source| InteropError::Onnx {
        path: model_dir.display().to_string(),
        source,
    })?;
    widen::guard::write_file_atomically(onnx, &bytes)?;
    Ok(ExportReport {
        layers: model.spec().layers.len(),
        bytes: bytes.len(),
        input: model.input(),
    })
}
