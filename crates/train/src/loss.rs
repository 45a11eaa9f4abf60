//! The classification loss and scoring. Keras classifiers usually end in a softmax, PyTorch ones
//! in logits: the loss is taken from what the model outputs, never a softmax applied twice.

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use widen_data::Dataset;
use widen_layers::{Activation, LayerConfig, Model, Value};

use crate::{TrainError, batch, labels_of};

/// What a classifier's last layer outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Unnormalised scores: the loss applies log-softmax.
    Logits,
    /// Probabilities (a final softmax): the loss takes their log.
    Probabilities,
    /// Log-probabilities (a final log-softmax): the loss uses them as they are.
    LogProbabilities,
}

/// Reads the model's last layer: a Dense or Activation ending in softmax gives probabilities.
pub fn output_kind(model: &Model) -> OutputKind {
    let activation = match model.spec().layers.last().map(|l| &l.config) {
        Some(LayerConfig::Dense(d)) => d.activation,
        Some(LayerConfig::Activation(a)) => *a,
        _ => Activation::Linear,
    };
    match activation {
        Activation::Softmax => OutputKind::Probabilities,
        a if format!("{a:?}") == "LogSoftmax" => OutputKind::LogProbabilities,
        _ => OutputKind::Logits,
    }
}

/// Log-probabilities from the model's output.
fn log_probs(out: Tensor<2>, kind: OutputKind) -> Tensor<2> {
    match kind {
        OutputKind::Logits => log_softmax(out, 1),
        // Clamped so a probability of exactly 0 gives a large finite loss, not -inf.
        OutputKind::Probabilities => out.clamp_min(1e-12).log(),
        OutputKind::LogProbabilities => out,
    }
}

/// Mean cross-entropy of the model's output against integer labels.
pub fn loss_of(out: Tensor<2>, labels: &[usize], kind: OutputKind) -> Tensor<1> {
    let [b, classes] = out.dims();
    let device = out.device();
    let mut onehot = vec![0.0f32; b * classes];
    for (i, &y) in labels.iter().enumerate() {
        if y < classes {
            onehot[i * classes + y] = 1.0;
        }
    }
    let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [b, classes]), &device);
    (log_probs(out, kind) * onehot)
        .sum()
        .neg()
        .div_scalar(b.max(1) as f64)
}

/// Loss, accuracy, per-class recall and the confusion matrix of a model on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of cases predicted right.
    pub accuracy: f64,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// `confusion[true][predicted]` case counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Evaluation {
    /// Recall (correct / cases) of each class; `None` for a class without cases.
    pub fn recall(&self) -> Vec<Option<f64>> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let n: usize = row.iter().sum();
                (n > 0).then(|| row.get(i).copied().unwrap_or(0) as f64 / n as f64)
            })
            .collect()
    }
}

/// Cases per inference batch when scoring.
const EVAL_BATCH: usize = 256;

pub(crate) fn require_labels(data: &Dataset, what: &str) -> Result<(), TrainError> {
    if data.cases == 0 || data.labels.len() != data.cases {
        return Err(TrainError::Data(widen_data::DataError::Unlabelled {
            origin: what.to_string(),
            expected: "training and scoring need class labels, one per case".to_string(),
        }));
    }
    Ok(())
}

/// Checks that the model takes `data` (channels, length) and has an output per class.
pub(crate) fn check_fit(model: &Model, data: &Dataset, what: &str) -> Result<(), TrainError> {
    let input = model.input();
    if data.channels != input.channels {
        return Err(TrainError::Mismatch(format!(
            "{what} has {} channels; the model takes {}",
            data.channels, input.channels
        )));
    }
    if input.length.is_some_and(|l| l != data.length) {
        return Err(TrainError::Mismatch(format!(
            "{what} has series of length {}; the model takes length {}",
            data.length,
            input.length.unwrap_or(0)
        )));
    }
    match model.output_shape() {
        widen_layers::FeatureShape::Flat { features } if features >= data.num_classes() => Ok(()),
        widen_layers::FeatureShape::Flat { features } => Err(TrainError::Mismatch(format!(
            "{what} has {} classes; the model outputs {features}",
            data.num_classes()
        ))),
        other => Err(TrainError::Mismatch(format!(
            "the model outputs a sequence {other:?}, not one score per class"
        ))),
    }
}

fn host(t: Tensor<2>) -> Result<Vec<f32>, TrainError> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Mismatch(format!("unreadable model output: {e:?}")))
}

pub(crate) fn scalar(t: Tensor<1>) -> Result<f64, TrainError> {
    let v = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| TrainError::Mismatch(format!("unreadable loss: {e:?}")))?;
    Ok(v.first().copied().unwrap_or(f32::NAN) as f64)
}

/// Loss and accuracy of a model on a dataset: what training needs after every epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Fraction of cases predicted right.
    pub accuracy: f64,
}

/// The mean loss and each case's predicted class, in inference mode.
fn predict_all(
    model: &Model,
    data: &Dataset,
    device: &Device,
) -> Result<(f64, Vec<usize>), TrainError> {
    require_labels(data, "the evaluation data")?;
    check_fit(model, data, "the evaluation data")?;
    model.check_memory(data.cases.min(EVAL_BATCH), data.length, false)?;
    let kind = output_kind(model);
    let model = burn::module::Module::valid(model);
    let format = model.input().data_format;
    let mut predicted = Vec::with_capacity(data.cases);
    let mut loss_sum = 0.0;
    let all: Vec<usize> = (0..data.cases).collect();
    for chunk in all.chunks(EVAL_BATCH) {
        let labels = labels_of(data, chunk);
        let out = match model.forward(batch(data, chunk, format, device))? {
            Value::Flat(t) => t,
            Value::Seq(_) => {
                return Err(TrainError::Mismatch(
                    "the model must end in one score per class".into(),
                ));
            }
        };
        let width = out.dims()[1];
        let values = host(out.clone())?;
        for row in values.chunks(width.max(1)).take(chunk.len()) {
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (j, &v)| {
                        if v > acc.1 { (j, v) } else { acc }
                    },
                )
                .0;
            predicted.push(best);
        }
        loss_sum += scalar(loss_of(out, &labels, kind))? * chunk.len() as f64;
    }
    Ok((loss_sum / data.cases as f64, predicted))
}

/// Loss and accuracy of `model` on all of `data` in inference mode (no confusion matrix, so
/// its cost does not grow with the square of the class count).
pub fn score(model: &Model, data: &Dataset, device: &Device) -> Result<Score, TrainError> {
    let (loss, predicted) = predict_all(model, data, device)?;
    let correct = predicted
        .iter()
        .zip(&data.labels)
        .filter(|(p, y)| p == y)
        .count();
    Ok(Score {
        loss,
        accuracy: correct as f64 / data.cases as f64,
    })
}

/// Scores `model` on all of `data` in inference mode, with the confusion matrix (checked
/// against the memory budget first: it holds classes² counts).
pub fn evaluate(model: &Model, data: &Dataset, device: &Device) -> Result<Evaluation, TrainError> {
    let classes = data.num_classes();
    widen_guard::budget().check_elements(
        &format!("the confusion matrix of {classes} classes"),
        &[classes, classes],
        std::mem::size_of::<usize>(),
    )?;
    let (loss, predicted) = predict_all(model, data, device)?;
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&y, &p) in data.labels.iter().zip(&predicted) {
        if let Some(c) = confusion
            .get_mut(y)
            .and_then(|r| r.get_mut(p.min(classes.saturating_sub(1))))
        {
            *c += 1;
        }
    }
    let correct: usize = (0..classes).map(|i| confusion[i][i]).sum();
    Ok(Evaluation {
        loss,
        accuracy: correct as f64 / data.cases as f64,
        classes: data.class_names.clone(),
        confusion,
    })
}
