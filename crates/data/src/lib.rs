//! Datasets for widen: an in-memory [`Dataset`] of labelled multichannel time series and the
//! ways in — the UEA/UCR `.ts` reader ([`ts`]), `.npy` arrays ([`npy`], and [`read_npy_dataset`] for
//! series plus labels), the embedded BasicMotions data ([`basic_motions`]) and the seeded
//! synthetic scenario ([`synthetic`]) — with what a user needs before training: labels mapped by
//! name between files, a length policy for unequal lengths, channel selection, a seeded
//! stratified split and per-channel statistics.
//!
//! **Owns:** file formats for data, label maps, splits, channel statistics.
//! **Must not know:** tensors, models or training (no Burn dependency: callers turn a
//! [`Dataset`] into tensors, so this crate stays quick to compile and test). Its errors
//! ([`DataError`]) say which file, which line and what was expected versus found.
//!
//! The `.npy` reader is ours (about 400 lines): the `npyz`/`ndarray-npy` crates would bring a
//! second array type and, as of 2026, accept headers numpy itself refuses; this one follows
//! numpy's header grammar strictly and checks every declared size against the memory budget.

mod arrays;
pub mod npy;
pub mod synthetic;
pub mod ts;

pub use arrays::{SeriesLayout, class_names_of, dataset_from_arrays, read_npy_dataset};

pub use synthetic::{SyntheticConfig, generate};
pub use ts::{LengthPolicy, basic_motions, parse_ts, read_ts};

/// A labelled set of equal-length multichannel time series, stored flat so it can be handed to a
/// tensor constructor without copying case by case.
///
/// Invariants (checked by [`Dataset::new`], kept by every constructor in this module):
/// `series.len() == cases * channels * length`; `labels` is either empty (unlabelled data) or has
/// one entry per case, each `< class_names.len()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Values, row-major `[cases, channels, length]`.
    pub series: Vec<f32>,
    /// Number of cases (examples).
    pub cases: usize,
    /// Number of channels (the `.ts` format's dimensions).
    pub channels: usize,
    /// Time steps per channel.
    pub length: usize,
    /// Class index per case, into `class_names`; empty when the data is unlabelled.
    pub labels: Vec<usize>,
    /// Class names, in the order their indices refer to (for `.ts` files: the header's order).
    pub class_names: Vec<String>,
}

/// Mean and standard deviation of one channel, over all cases and time steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChannelStats {
    /// Mean over `cases × length` values.
    pub mean: f32,
    /// Population standard deviation over the same values.
    pub std: f32,
}

impl Dataset {
    /// Builds a dataset after checking the invariants documented on [`Dataset`], so later code can
    /// index without bounds worries.
    pub fn new(
        series: Vec<f32>,
        cases: usize,
        channels: usize,
        length: usize,
        labels: Vec<usize>,
        class_names: Vec<String>,
    ) -> Result<Self, DataError> {
        let expected = cases
            .checked_mul(channels)
            .and_then(|n| n.checked_mul(length))
            .ok_or_else(|| DataError::Inconsistent {
                expected: "a shape whose element count fits in usize".to_string(),
                found: format!("[{cases}, {channels}, {length}]"),
            })?;
        if series.len() != expected {
            return Err(DataError::Inconsistent {
                expected: format!("{expected} values for shape [{cases}, {channels}, {length}]"),
                found: format!("{} values", series.len()),
            });
        }
        if !labels.is_empty() && labels.len() != cases {
            return Err(DataError::Inconsistent {
                expected: format!("{cases} labels (one per case) or none"),
                found: format!("{} labels", labels.len()),
            });
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= class_names.len()) {
            return Err(DataError::Inconsistent {
                expected: format!(
                    "labels below {} (the number of class names)",
                    class_names.len()
                ),
                found: format!("label {bad}"),
            });
        }
        Ok(Self {
            series,
            cases,
            channels,
            length,
            labels,
            class_names,
        })
    }

    /// `[cases, channels, length]`, the shape a Conv1D input tensor takes.
    pub fn shape(&self) -> [usize; 3] {
        [self.cases, self.channels, self.length]
    }

    /// Number of classes (the number of class names).
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Cases per class, indexed by class; all zeros for unlabelled data.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(label) {
                *count += 1;
            }
        }
        counts
    }

    /// One case's values, row-major `[channels, length]`; `None` past the last case.
    pub fn case(&self, index: usize) -> Option<&[f32]> {
        let size = self.channels * self.length;
        let start = index.checked_mul(size)?;
        self.series.get(start..start.checked_add(size)?)
    }

    /// The same cases with labels re-indexed into `class_names` **by name**, so a test file that
    /// declares its labels in another order than the training file still scores against the
    /// right classes. A name this data uses that `class_names` lacks is an error.
    pub fn relabel_to(self, class_names: &[String], origin: &str) -> Result<Dataset, DataError> {
        let index: std::collections::HashMap<&str, usize> = class_names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let counts = self.class_counts();
        let mut map = Vec::with_capacity(self.class_names.len());
        for (name, &count) in self.class_names.iter().zip(&counts) {
            match index.get(name.as_str()) {
                Some(&i) => map.push(Some(i)),
                // A declared class no case uses needs no place in the other file.
                None if count == 0 => map.push(None),
                None => {
                    let shown: Vec<&String> = class_names.iter().take(20).collect();
                    let more = class_names.len().saturating_sub(20);
                    return Err(DataError::Inconsistent {
                        expected: format!(
                            "{origin}: class labels among the training labels {shown:?}{}",
                            if more > 0 {
                                format!(" and {more} more")
                            } else {
                                String::new()
                            }
                        ),
                        found: format!("`{name}` (used by {count} case(s))"),
                    });
                }
            }
        }
        let labels = self
            .labels
            .iter()
            .map(|&l| map.get(l).copied().flatten())
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| DataError::Inconsistent {
                expected: format!("labels below {} (the number of class names)", map.len()),
                found: "a label out of range".to_string(),
            })?;
        Dataset::new(
            self.series,
            self.cases,
            self.channels,
            self.length,
            labels,
            class_names.to_vec(),
        )
    }

    /// A copy keeping only `channels`, in the order given (repeats allowed): this is how a model
    /// trained on the "old" channels gets its narrower view of the same cases.
    pub fn select_channels(&self, channels: &[usize]) -> Result<Dataset, DataError> {
        if channels.is_empty() {
            return Err(DataError::Inconsistent {
                expected: "at least one channel to select".to_string(),
                found: "an empty selection".to_string(),
            });
        }
        if let Some(&channel) = channels.iter().find(|&&c| c >= self.channels) {
            return Err(DataError::ChannelOutOfRange {
                channel,
                channels: self.channels,
            });
        }
        let mut series = Vec::with_capacity(self.cases * channels.len() * self.length);
        for case in self.series.chunks_exact(self.channels * self.length) {
            for &c in channels {
                series.extend_from_slice(&case[c * self.length..(c + 1) * self.length]);
            }
        }
        Dataset::new(
            series,
            self.cases,
            channels.len(),
            self.length,
            self.labels.clone(),
            self.class_names.clone(),
        )
    }

    /// Per-channel mean and population standard deviation over `cases × length`, accumulated in
    /// `f64` so long series do not lose precision. Compute these on the training split and apply
    /// them to both splits with [`Dataset::standardize`].
    pub fn channel_stats(&self) -> Vec<ChannelStats> {
        let n = (self.cases * self.length) as f64;
        let mut sums = vec![(0.0_f64, 0.0_f64); self.channels];
        if self.length > 0 {
            for case in self.series.chunks_exact(self.channels * self.length) {
                for (channel, values) in case.chunks_exact(self.length).enumerate() {
                    let (sum, _) = &mut sums[channel];
                    *sum += values.iter().map(|&v| f64::from(v)).sum::<f64>();
                }
            }
        }
        let means: Vec<f64> = sums
            .iter()
            .map(|&(s, _)| if n > 0.0 { s / n } else { 0.0 })
            .collect();
        // Second pass about the mean: numerically safer than E[x²] - E[x]² for offset channels.
        if self.length > 0 {
            for case in self.series.chunks_exact(self.channels * self.length) {
                for (channel, values) in case.chunks_exact(self.length).enumerate() {
                    let mean = means[channel];
                    let (_, sq) = &mut sums[channel];
                    *sq += values
                        .iter()
                        .map(|&v| (f64::from(v) - mean).powi(2))
                        .sum::<f64>();
                }
            }
        }
        sums.iter()
            .zip(&means)
            .map(|(&(_, sq), &mean)| ChannelStats {
                mean: mean as f32,
                std: if n > 0.0 { (sq / n).sqrt() as f32 } else { 0.0 },
            })
            .collect()
    }

    /// Subtracts each channel's mean and divides by its standard deviation, in place. A channel
    /// whose std is not positive and finite (constant) is only centred, so no NaN or infinity
    /// appears.
    pub fn standardize(&mut self, stats: &[ChannelStats]) -> Result<(), DataError> {
        if stats.len() != self.channels {
            return Err(DataError::Inconsistent {
                expected: format!("{} channel statistics (one per channel)", self.channels),
                found: format!("{}", stats.len()),
            });
        }
        if self.length == 0 {
            return Ok(());
        }
        for case in self.series.chunks_exact_mut(self.channels * self.length) {
            for (values, s) in case.chunks_exact_mut(self.length).zip(stats) {
                let scale = if s.std.is_finite() && s.std > 0.0 {
                    s.std
                } else {
                    1.0
                };
                for v in values {
                    *v = (*v - s.mean) / scale;
                }
            }
        }
        Ok(())
    }
}

/// Why data could not be loaded or generated. File errors carry the origin (a path or a name for
/// embedded text), the 1-based line number, and what was expected versus found, so a user can
/// fix the file without reading the reader.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be read at all.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A header line is unknown, malformed, repeated or contradicts another header.
    #[error("{origin}:{line}: bad header: expected {expected}, found `{found}`")]
    Header {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What the reader wanted here.
        expected: String,
        /// What it got (long lines are shortened).
        found: String,
    },
    /// No `@data` line before the first case or before the end of the input.
    #[error("{origin}:{line}: expected `@data` before the cases, found {found}")]
    MissingData {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number of the first case, or of the last line when the input ends.
        line: usize,
        /// `a case` or `the end of the input`.
        found: String,
    },
    /// A format feature widen does not read (for example `@timeStamps true`).
    #[error("{origin}:{line}: {feature} is not supported; expected {expected}")]
    Unsupported {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// The feature, as written in the file.
        feature: String,
        /// What widen accepts instead.
        expected: String,
    },
    /// `@data` is followed by no case.
    #[error("{origin}:{line}: expected at least one case after `@data`, found none")]
    NoCases {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number of the `@data` line.
        line: usize,
    },
    /// A case has a different number of dimensions than declared or than the first case.
    #[error(
        "{origin}:{line}: expected {expected} dimensions (from {expected_from}), found {found}"
    )]
    Dimensions {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// The dimension count in force.
        expected: usize,
        /// Where that count came from (`@dimensions`, `@univariate true`, `the first case`).
        expected_from: String,
        /// The dimensions on this line.
        found: usize,
    },
    /// A value is not a finite number.
    #[error(
        "{origin}:{line}: dimension {dimension}, value {position} (both from 1): expected a finite number, found `{found}`"
    )]
    NotNumeric {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// 1-based dimension on the line.
        dimension: usize,
        /// 1-based position of the value within its dimension.
        position: usize,
        /// The text that failed to parse.
        found: String,
    },
    /// A missing value (`?` or NaN): widen trains on complete data and does not impute.
    #[error(
        "{origin}:{line}: dimension {dimension}, value {position} (both from 1): expected a value, found the missing-value marker `{found}` (widen needs complete data; impute before loading)"
    )]
    MissingValue {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// 1-based dimension on the line.
        dimension: usize,
        /// 1-based position of the value within its dimension.
        position: usize,
        /// The marker as written (`?`, `NaN`).
        found: String,
    },
    /// A dimension with no values at all (for example `1,2::3,4`).
    #[error(
        "{origin}:{line}: dimension {dimension} (from 1): expected at least one value, found an empty series"
    )]
    EmptySeries {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// 1-based dimension on the line.
        dimension: usize,
    },
    /// `@classLabel true` but the line has no label after the last `:`.
    #[error("{origin}:{line}: expected a class label after the last `:`, found {found}")]
    MissingLabel {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is there instead (`nothing`, `a series of values`).
        found: String,
    },
    /// A label the `@classLabel` header did not declare.
    #[error(
        "{origin}:{line}: expected one of the declared class labels {declared:?}, found `{found}`"
    )]
    UndeclaredLabel {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// The label on the line.
        found: String,
        /// The labels `@classLabel` declared.
        declared: Vec<String>,
    },
    /// A series length that disagrees with `@seriesLength` (or the first case) under
    /// `@equalLength true`.
    #[error(
        "{origin}:{line}: dimension {dimension} (from 1): expected length {expected} (from {expected_from}), found {found}"
    )]
    Length {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// 1-based dimension on the line.
        dimension: usize,
        /// The length in force.
        expected: usize,
        /// Where it came from (`@seriesLength`, `the first case (@equalLength true)`).
        expected_from: String,
        /// This series' length.
        found: usize,
    },
    /// Lengths differ and [`LengthPolicy::Error`] is in force.
    #[error(
        "{origin}:{line}: dimension {dimension} (from 1): expected length {expected} (as in the first case; lengths differ and the length policy is Error — choose PadTo or Crop), found {found}"
    )]
    UnequalLengths {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number of the first case that differs.
        line: usize,
        /// 1-based dimension on the line.
        dimension: usize,
        /// The first case's first series length.
        expected: usize,
        /// This series' length.
        found: usize,
    },
    /// A series longer than the length given to [`LengthPolicy::PadTo`] (it pads, never drops data).
    #[error(
        "{origin}:{line}: dimension {dimension} (from 1): expected at most {limit} values (LengthPolicy::PadTo), found {found}"
    )]
    TooLong {
        /// File path or name of the embedded text.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// 1-based dimension on the line.
        dimension: usize,
        /// The padded length requested.
        limit: usize,
        /// This series' length.
        found: usize,
    },
    /// A length policy that cannot produce data (`PadTo(Some(0))`).
    #[error("invalid length policy: expected {expected}, found {found}")]
    Policy {
        /// What a valid policy needs.
        expected: String,
        /// The policy given.
        found: String,
    },
    /// A [`Dataset`] whose parts disagree, or a request it cannot satisfy.
    #[error("inconsistent dataset: expected {expected}, found {found}")]
    Inconsistent {
        /// What the invariant or request needs.
        expected: String,
        /// What was there.
        found: String,
    },
    /// A channel index past the dataset's channels.
    #[error("channel {channel} is out of range: expected an index below {channels}")]
    ChannelOutOfRange {
        /// The index asked for.
        channel: usize,
        /// The dataset's channel count.
        channels: usize,
    },
    /// Data that would not fit in the memory budget.
    #[error(transparent)]
    Budget(#[from] widen_guard::BudgetError),
    /// Data without class labels where labels are needed (training, scoring).
    #[error("{origin}: {expected}, but the data is unlabelled (`@classLabel false`)")]
    Unlabelled {
        /// File path or name of the data.
        origin: String,
        /// What needed the labels.
        expected: String,
    },
    /// An array or a request that cannot become a dataset (shape, values, a split).
    #[error("{reason}")]
    Invalid {
        /// What is wrong, naming the file.
        reason: String,
    },
    /// A [`SyntheticConfig`] field out of range.
    #[error("invalid synthetic config: `{field}` {reason}")]
    Config {
        /// The field's name.
        field: &'static str,
        /// What is wrong, with the value found.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn small() -> Dataset {
        // 2 cases, 3 channels, length 2: value = 100·case + 10·channel + t.
        let mut series = Vec::new();
        for case in 0..2 {
            for channel in 0..3 {
                for t in 0..2 {
                    series.push((100 * case + 10 * channel + t) as f32);
                }
            }
        }
        Dataset::new(series, 2, 3, 2, vec![1, 0], vec!["a".into(), "b".into()]).unwrap()
    }

    #[test]
    fn new_rejects_inconsistent_parts() {
        assert!(matches!(
            Dataset::new(vec![0.0; 5], 1, 2, 3, vec![], vec![]),
            Err(DataError::Inconsistent { .. })
        ));
        assert!(matches!(
            Dataset::new(vec![0.0; 6], 2, 1, 3, vec![0], vec!["a".into()]),
            Err(DataError::Inconsistent { .. })
        ));
        assert!(matches!(
            Dataset::new(vec![0.0; 6], 2, 1, 3, vec![0, 1], vec!["a".into()]),
            Err(DataError::Inconsistent { .. })
        ));
    }

    #[test]
    fn shape_case_and_counts() {
        let d = small();
        assert_eq!(d.shape(), [2, 3, 2]);
        assert_eq!(d.num_classes(), 2);
        assert_eq!(d.class_counts(), vec![1, 1]);
        assert_eq!(d.case(1).unwrap()[0], 100.0);
        assert!(d.case(2).is_none());
    }

    #[test]
    fn select_channels_reorders_and_checks_range() {
        let d = small();
        let s = d.select_channels(&[2, 0]).unwrap();
        assert_eq!(s.shape(), [2, 2, 2]);
        assert_eq!(
            s.series,
            vec![20.0, 21.0, 0.0, 1.0, 120.0, 121.0, 100.0, 101.0]
        );
        assert_eq!(s.labels, d.labels);
        assert!(matches!(
            d.select_channels(&[3]),
            Err(DataError::ChannelOutOfRange {
                channel: 3,
                channels: 3
            })
        ));
        assert!(matches!(
            d.select_channels(&[]),
            Err(DataError::Inconsistent { .. })
        ));
    }

    #[test]
    fn stats_and_standardize() {
        let mut d = small();
        let stats = d.channel_stats();
        assert_eq!(stats.len(), 3);
        // Channel 0 holds 0, 1, 100, 101: mean 50.5, population std sqrt(2550.25) = 50.5...
        assert!((stats[0].mean - 50.5).abs() < 1e-4);
        let expected_std = ((49.5f64.powi(2) * 2.0 + 50.5f64.powi(2) * 2.0) / 4.0).sqrt();
        assert!((f64::from(stats[0].std) - expected_std).abs() < 1e-3);
        d.standardize(&stats).unwrap();
        let after = d.channel_stats();
        for s in after {
            assert!(s.mean.abs() < 1e-5);
            assert!((s.std - 1.0).abs() < 1e-5);
        }
        assert!(matches!(
            d.standardize(&stats[..2]),
            Err(DataError::Inconsistent { .. })
        ));
    }

    #[test]
    fn standardize_only_centres_constant_channels() {
        let mut d = Dataset::new(vec![3.0; 4], 2, 1, 2, vec![], vec![]).unwrap();
        let stats = d.channel_stats();
        assert_eq!(stats[0].std, 0.0);
        d.standardize(&stats).unwrap();
        assert!(d.series.iter().all(|&v| v == 0.0));
    }
}
