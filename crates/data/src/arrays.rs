//! Datasets from `.npy` arrays: series `[cases, length, channels]` (Keras' layout) or `[cases,
//! channels, length]` (PyTorch's), with labels as integers or strings; and what a fit needs
//! from any dataset: a seeded stratified split and subsets.

use std::path::Path;

use crate::npy::{self, NpyArray};
use crate::{DataError, Dataset};

/// How a 3-D series array is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeriesLayout {
    /// `[cases, length, channels]` (Keras).
    #[default]
    ChannelsLast,
    /// `[cases, channels, length]` (PyTorch).
    ChannelsFirst,
}

fn npy_error(e: npy::NpyError) -> DataError {
    DataError::Invalid {
        reason: e.to_string(),
    }
}

/// Class names in a stable order: numerically when every label is an integer (`2` before `10`),
/// else lexicographically.
pub fn class_names_of(labels: &[String]) -> Vec<String> {
    let mut names: Vec<String> = labels.to_vec();
    names.sort();
    names.dedup();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
    }
    names
}

/// A dataset from a series array and optional labels (`origin` names them in errors).
pub fn dataset_from_arrays(
    x: NpyArray,
    labels: Option<Vec<String>>,
    layout: SeriesLayout,
    origin: &str,
) -> Result<Dataset, DataError> {
    let [cases, a, b] = match x.shape.as_slice() {
        [n, a, b] => [*n, *a, *b],
        [n, l] => [*n, *l, 1],
        other => {
            return Err(DataError::Invalid {
                reason: format!(
                    "{origin}: expected series of shape [cases, length, channels] (or [cases, \
                     channels, length] with --channels-first), got {other:?}"
                ),
            });
        }
    };
    if cases == 0 || a == 0 || b == 0 {
        return Err(DataError::Invalid {
            reason: format!("{origin}: the array has a zero dimension: {:?}", x.shape),
        });
    }
    if let Some(i) = x.values.iter().position(|v| !v.is_finite()) {
        return Err(DataError::Invalid {
            reason: format!(
                "{origin}: value {} at flat index {i} is not finite (NaN or infinite values cannot be trained on)",
                x.values[i]
            ),
        });
    }
    let (channels, length) = match layout {
        SeriesLayout::ChannelsLast => (b, a),
        SeriesLayout::ChannelsFirst => (a, b),
    };
    let series = match layout {
        SeriesLayout::ChannelsFirst => x.values,
        SeriesLayout::ChannelsLast => {
            let mut out = vec![0.0f32; x.values.len()];
            for n in 0..cases {
                for t in 0..length {
                    for c in 0..channels {
                        out[(n * channels + c) * length + t] =
                            x.values[(n * length + t) * channels + c];
                    }
                }
            }
            out
        }
    };
    let (labels, class_names) = match labels {
        None => (Vec::new(), Vec::new()),
        Some(l) if l.len() != cases => {
            return Err(DataError::Inconsistent {
                expected: format!("{cases} labels (one per case of {origin})"),
                found: format!("{} labels", l.len()),
            });
        }
        Some(l) => {
            let names = class_names_of(&l);
            let index: std::collections::HashMap<&str, usize> = names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i))
                .collect();
            (
                l.iter()
                    .map(|n| index.get(n.as_str()).copied().unwrap_or(0))
                    .collect(),
                names,
            )
        }
    };
    Dataset::new(series, cases, channels, length, labels, class_names)
}

/// Reads `x` (and `labels`) `.npy` files into a dataset.
pub fn read_npy_dataset(
    x: &Path,
    labels: Option<&Path>,
    layout: SeriesLayout,
) -> Result<Dataset, DataError> {
    let arr = npy::read(x).map_err(npy_error)?;
    let labels = labels
        .map(|p| npy::read_labels(p).map_err(npy_error))
        .transpose()?;
    dataset_from_arrays(arr, labels, layout, &x.display().to_string())
}

impl Dataset {
    /// The cases at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset, DataError> {
        let per = self.channels * self.length;
        let mut series = Vec::with_capacity(indices.len().saturating_mul(per));
        for &i in indices {
            let case = self.case(i).ok_or_else(|| DataError::Inconsistent {
                expected: format!("case indices below {}", self.cases),
                found: format!("index {i}"),
            })?;
            series.extend_from_slice(case);
        }
        let labels = if self.labels.is_empty() {
            Vec::new()
        } else {
            indices.iter().map(|&i| self.labels[i]).collect()
        };
        Dataset::new(
            series,
            indices.len(),
            self.channels,
            self.length,
            labels,
            self.class_names.clone(),
        )
    }

    /// A seeded stratified split: about `fraction` of each class goes to the second set (at
    /// least one case of each class with two or more), the rest to the first.
    pub fn split_stratified(
        &self,
        fraction: f64,
        seed: u64,
    ) -> Result<(Dataset, Dataset), DataError> {
        if !(fraction.is_finite() && fraction > 0.0 && fraction < 1.0) {
            return Err(DataError::Invalid {
                reason: format!("the validation fraction must be in (0, 1), got {fraction}"),
            });
        }
        if self.labels.len() != self.cases {
            return Err(DataError::Unlabelled {
                origin: "the data to split".into(),
                expected: "a stratified split needs one class label per case".into(),
            });
        }
        let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // splitmix64: a seeded shuffle without a dependency on widen-init.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let (mut first, mut second) = (Vec::new(), Vec::new());
        for class in 0..self.num_classes() {
            let mut members: Vec<usize> = (0..self.cases)
                .filter(|&i| self.labels[i] == class)
                .collect();
            for i in (1..members.len()).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                members.swap(i, j);
            }
            let take = if members.len() >= 2 {
                ((members.len() as f64 * fraction).round() as usize).clamp(1, members.len() - 1)
            } else {
                0
            };
            second.extend_from_slice(&members[..take]);
            first.extend_from_slice(&members[take..]);
        }
        first.sort_unstable();
        second.sort_unstable();
        if second.is_empty() {
            return Err(DataError::Invalid {
                reason: "too few cases to hold out a validation set (each class needs two)".into(),
            });
        }
        Ok((self.subset(&first)?, self.subset(&second)?))
    }
}
