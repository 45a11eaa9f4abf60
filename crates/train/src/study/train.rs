//! The training loop the study runs: Adam on cross-entropy, seeded batches, per-step metrics.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use widen_adapt::{GradientMask, batchnorm_shift, gradient_norms};
use widen_init::HostRng;
use widen_layers::{Sequential, Value};

use crate::study::StudyError;
use widen_data::Dataset;

/// Channels-first batch `[b, c, l]` of the given cases.
pub fn batch(data: &Dataset, cases: &[usize], device: &Device) -> Tensor<3> {
    let per = data.channels * data.length;
    let mut v = Vec::with_capacity(cases.len() * per);
    for &i in cases {
        v.extend_from_slice(&data.series[i * per..(i + 1) * per]);
    }
    Tensor::from_data(
        TensorData::new(v, [cases.len(), data.channels, data.length]),
        device,
    )
}

fn logits(model: &Sequential, x: Tensor<3>, train: bool) -> Result<Tensor<2>, StudyError> {
    let out = if train {
        model.forward_train(x)?
    } else {
        model.forward(x)?
    };
    match out {
        Value::Flat(t) => Ok(t),
        Value::Seq(_) => Err(StudyError::Config(
            "the model must end in flat class logits".into(),
        )),
    }
}

/// Mean cross-entropy of `logits` against integer labels.
pub fn cross_entropy(logits: Tensor<2>, labels: &[usize], classes: usize) -> Tensor<1> {
    let b = labels.len();
    let device = logits.device();
    let mut onehot = vec![0.0f32; b * classes];
    for (i, &y) in labels.iter().enumerate() {
        onehot[i * classes + y] = 1.0;
    }
    let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [b, classes]), &device);
    (log_softmax(logits, 1) * onehot)
        .sum()
        .neg()
        .div_scalar(b as f64)
}

fn scalar(t: Tensor<1>) -> Result<f64, StudyError> {
    let v = t
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| StudyError::Config(format!("unreadable loss: {e:?}")))?;
    Ok(v.first().copied().unwrap_or(f32::NAN) as f64)
}

/// Cases per inference batch when scoring.
const EVAL_BATCH: usize = 256;

/// Training and scoring index one class label per case: refuse data without them (a `.ts`
/// file with `@classLabel false`) instead of indexing an empty list.
pub(crate) fn require_labels(data: &Dataset, origin: &str) -> Result<(), StudyError> {
    if data.cases == 0 || data.labels.len() != data.cases {
        return Err(StudyError::Data(widen_data::DataError::Unlabelled {
            origin: origin.to_string(),
            expected: "the study trains and scores on class labels, one per case".to_string(),
        }));
    }
    Ok(())
}

/// Loss and accuracy of `model` on all of `data`, inference mode, on `device` (plain).
pub fn evaluate(
    model: &Sequential,
    data: &Dataset,
    device: &Device,
) -> Result<(f64, f64), StudyError> {
    require_labels(data, "the evaluation data")?;
    model.check_memory(data.cases.min(EVAL_BATCH), data.length, false)?;
    let model = burn::module::Module::valid(model);
    let mut loss_sum = 0.0;
    let mut correct = 0usize;
    let all: Vec<usize> = (0..data.cases).collect();
    for chunk in all.chunks(EVAL_BATCH) {
        let x = batch(data, chunk, device);
        let labels: Vec<usize> = chunk.iter().map(|&i| data.labels[i]).collect();
        let z = logits(&model, x, false)?;
        let classes = z.dims()[1];
        let zv = z
            .clone()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| StudyError::Config(format!("unreadable logits: {e:?}")))?;
        for (i, &y) in labels.iter().enumerate() {
            let row = &zv[i * classes..(i + 1) * classes];
            let best = row
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |acc, (j, &v)| if v > acc.1 { (j, v) } else { acc },
                )
                .0;
            correct += usize::from(best == y);
        }
        loss_sum += scalar(cross_entropy(z, &labels, classes))? * chunk.len() as f64;
    }
    Ok((
        loss_sum / data.cases as f64,
        correct as f64 / data.cases as f64,
    ))
}

/// What one training run recorded.
#[derive(Debug, Clone, Default)]
pub struct Curve {
    /// Training-batch loss at each step (before that step's update).
    pub loss: Vec<f64>,
    /// Global gradient norm at each step.
    pub grad_norm: Vec<f64>,
}

/// Settings of one training run.
#[derive(Debug, Clone, Copy)]
pub struct TrainSettings {
    /// Optimiser steps.
    pub steps: usize,
    /// Cases per batch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Seed of the batch order.
    pub seed: u64,
}

/// Trains `model` (on an autodiff device) and returns it with its curve.
pub fn train(
    mut model: Sequential,
    data: &Dataset,
    settings: TrainSettings,
    masks: &[GradientMask],
    device: &Device,
    mut on_step: impl FnMut(),
) -> Result<(Sequential, Curve), StudyError> {
    require_labels(data, "the training data")?;
    let b = settings.batch_size.min(data.cases).max(1);
    model.check_memory(b, data.length, true)?;
    let mut optim = AdamConfig::new().init();
    let mut rng = HostRng::new(settings.seed);
    let mut order: Vec<usize> = Vec::new();
    let mut curve = Curve::default();
    for step in 1..=settings.steps {
        if order.len() < b {
            // A fresh seeded permutation each epoch (Fisher–Yates on the host).
            let mut perm: Vec<usize> = (0..data.cases).collect();
            for i in (1..perm.len()).rev() {
                let j = (rng.uniform() * (i + 1) as f64) as usize;
                perm.swap(i, j.min(i));
            }
            order = perm;
        }
        let cases: Vec<usize> = order.drain(..b).collect();
        let labels: Vec<usize> = cases.iter().map(|&i| data.labels[i]).collect();
        let z = logits(&model, batch(data, &cases, device), true)?;
        let classes = z.dims()[1];
        let loss = cross_entropy(z, &labels, classes);
        let value = scalar(loss.clone())?;
        if !value.is_finite() {
            return Err(StudyError::Diverged {
                step,
                loss: value,
                learning_rate: settings.learning_rate,
            });
        }
        curve.loss.push(value);
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        for mask in masks {
            mask.apply(&mut grads);
        }
        let norms = gradient_norms(&model, &grads)?;
        curve
            .grad_norm
            .push(norms.iter().map(|n| n.norm * n.norm).sum::<f64>().sqrt());
        model = optim.step(settings.learning_rate, model, grads);
        on_step();
    }
    Ok((model, curve))
}

/// Mean BatchNorm mean-shift of `model` on the first `n` training cases (cause 3).
pub fn bn_shift(
    model: &Sequential,
    data: &Dataset,
    n: usize,
    device: &Device,
) -> Result<f64, StudyError> {
    let model = burn::module::Module::valid(model);
    let cases: Vec<usize> = (0..n.min(data.cases)).collect();
    let shifts = batchnorm_shift(&model, batch(data, &cases, device))?;
    Ok(shifts.iter().map(|s| s.mean_shift).sum::<f64>() / shifts.len().max(1) as f64)
}
