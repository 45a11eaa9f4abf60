//! The controlled scenario: seeded multichannel time-series classification data in which a model
//! trained on the "old" channels gains "new" channels that carry extra class signal at another
//! magnitude.
//!
//! # Design
//! Channels `0..old_channels` are the old ones, then come the new ones: first `informative_new`
//! informative channels, then pure noise up to `new_channels` (the total). Class `c` belongs to
//! group `c / 2` and has parity `c % 2`.
//!
//! - **Old channels** carry a sinusoid whose frequency is set by the group (`group + 1` cycles over
//!   the series) and whose amplitude is set by the parity (1.0 or 1.3), with a random phase per
//!   case and a log-normal per-case amplitude jitter (σ = 0.2), plus a fixed gain and phase offset
//!   per channel, plus Gaussian noise. The group is easy to read; the parity only partly (the two
//!   amplitude levels overlap under the jitter), so for 4 classes the old channels alone allow about
//!   75% accuracy at best (a matched-filter classifier on 2000 cases scored 74–76% over three
//!   seeds, the group always right): clearly above chance, clearly not perfect.
//! - **Informative new channels** carry a Gaussian bump (width `length / 20`) at a random time per
//!   case, positive for even classes and negative for odd ones, with a fixed gain and small lag per
//!   channel, plus noise: exactly the bit the old channels confuse.
//! - **Noise new channels** are Gaussian noise only.
//! - Every new channel is then multiplied by `new_scale` and shifted by `new_offset`: the magnitude
//!   mismatch that makes naive widening train erratically.
//!
//! Labels cycle `0, 1, …, classes − 1` so every split is balanced (counts differ by at most one).
//! The per-channel structure is shared by both splits; the cases are drawn from separate streams.
//!
//! Randomness is a local SplitMix64 with Box–Muller normals, so the data for a seed never changes
//! with a dependency's version.

use std::f64::consts::TAU;
use std::ops::Range;

use super::{DataError, Dataset};

/// Amplitude of the old channels' sinusoid, by class parity.
const OLD_AMPLITUDE: [f64; 2] = [1.0, 1.3];
/// Default standard deviation of the per-case log-amplitude jitter (old sinusoid and new bump).
const AMPLITUDE_JITTER: f64 = 0.2;
/// Height of the informative channels' bump before `new_scale`.
const BUMP_HEIGHT: f64 = 1.0;

/// Parameters of the synthetic scenario; see the [module documentation](self) for the design.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Training cases (at least `classes`). Default 200.
    pub cases_train: usize,
    /// Test cases (at least `classes`). Default 100.
    pub cases_test: usize,
    /// Number of classes (at least 2). Default 4.
    pub classes: usize,
    /// Time steps per series (at least 8, and 4 per cycle of the fastest sinusoid). Default 50.
    pub length: usize,
    /// Channels the original model sees (at least 1). Default 8.
    pub old_channels: usize,
    /// All channels after widening, old ones included (at least `old_channels`). Default 32.
    pub new_channels: usize,
    /// How many of the added channels carry class signal (at most
    /// `new_channels - old_channels`). Default 8.
    pub informative_new: usize,
    /// Factor on every added channel (finite, positive). Default 10.
    pub new_scale: f32,
    /// Offset added to every added channel after scaling (finite). Default 5.
    pub new_offset: f32,
    /// Standard deviation of the Gaussian noise before scaling (finite, non-negative). Default 1.
    pub noise: f32,
    /// Standard deviation of the per-case log-amplitude jitter (finite, non-negative): it sets
    /// how far the two parity levels of the old sinusoid overlap, so how well the old channels
    /// alone can do. Default 0.2 (about 75% at best for 4 classes); 0.15 gives about 80%.
    pub amplitude_jitter: f64,
    /// Seed: the same seed gives the same data, bit for bit.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            cases_train: 200,
            cases_test: 100,
            classes: 4,
            length: 50,
            old_channels: 8,
            new_channels: 32,
            informative_new: 8,
            new_scale: 10.0,
            new_offset: 5.0,
            noise: 1.0,
            amplitude_jitter: AMPLITUDE_JITTER,
            seed: 0,
        }
    }
}

impl SyntheticConfig {
    /// Checks every field's range, so [`generate`] cannot build degenerate data.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |field: &'static str, reason: String| Err(DataError::Config { field, reason });
        if self.classes < 2 {
            return bad(
                "classes",
                format!("must be at least 2, found {}", self.classes),
            );
        }
        for (field, cases) in [
            ("cases_train", self.cases_train),
            ("cases_test", self.cases_test),
        ] {
            if cases < self.classes {
                return bad(
                    field,
                    format!(
                        "must be at least classes ({}) so every class appears, found {cases}",
                        self.classes
                    ),
                );
            }
        }
        let min_length = (4 * self.classes.div_ceil(2)).max(8);
        if self.length < min_length {
            return bad(
                "length",
                format!(
                    "must be at least {min_length} (8, and 4 samples per cycle of the fastest \
                     class sinusoid), found {}",
                    self.length
                ),
            );
        }
        if self.old_channels == 0 {
            return bad("old_channels", "must be at least 1, found 0".to_string());
        }
        if self.new_channels < self.old_channels {
            return bad(
                "new_channels",
                format!(
                    "counts all channels and must be at least old_channels ({}), found {}",
                    self.old_channels, self.new_channels
                ),
            );
        }
        let added = self.new_channels - self.old_channels;
        if self.informative_new > added {
            return bad(
                "informative_new",
                format!(
                    "must be at most new_channels - old_channels ({added}), found {}",
                    self.informative_new
                ),
            );
        }
        if !(self.new_scale.is_finite() && self.new_scale > 0.0) {
            return bad(
                "new_scale",
                format!("must be finite and positive, found {}", self.new_scale),
            );
        }
        if !self.new_offset.is_finite() {
            return bad(
                "new_offset",
                format!("must be finite, found {}", self.new_offset),
            );
        }
        if !(self.noise.is_finite() && self.noise >= 0.0) {
            return bad(
                "noise",
                format!("must be finite and non-negative, found {}", self.noise),
            );
        }
        if !(self.amplitude_jitter.is_finite() && self.amplitude_jitter >= 0.0) {
            return bad(
                "amplitude_jitter",
                format!(
                    "must be finite and non-negative, found {}",
                    self.amplitude_jitter
                ),
            );
        }
        Ok(())
    }

    /// Indices of the old channels, ready for [`Dataset::select_channels`].
    pub fn old_channel_indices(&self) -> Vec<usize> {
        (0..self.old_channels).collect()
    }

    /// Channels carrying the extra class signal.
    pub fn informative_channels(&self) -> Range<usize> {
        self.old_channels..self.old_channels + self.informative_new
    }

    /// Added channels carrying noise only.
    pub fn noise_channels(&self) -> Range<usize> {
        self.old_channels + self.informative_new..self.new_channels
    }
}

/// Generates `(train, test)` for `config`; both have `new_channels` channels (select
/// [`SyntheticConfig::old_channel_indices`] for the old model's view).
///
/// Deterministic in `config.seed`: equal configs give bit-identical data. Errors with
/// [`DataError::Config`] when a field is out of range (see [`SyntheticConfig::validate`]).
pub fn generate(config: &SyntheticConfig) -> Result<(Dataset, Dataset), DataError> {
    config.validate()?;
    // Both splits are held at once, and the study copies each into tensors: check before drawing.
    let cases = config.cases_train.saturating_add(config.cases_test);
    widen_guard::budget().check_elements(
        &format!(
            "the synthetic data ({cases} cases × {} channels × length {})",
            config.new_channels, config.length
        ),
        &[cases, config.new_channels, config.length, 2],
        4,
    )?;
    let structure = Structure::draw(config, &mut SplitMix64::new(config.seed, 0));
    let train = split(
        config,
        &structure,
        config.cases_train,
        &mut SplitMix64::new(config.seed, 1),
    )?;
    let test = split(
        config,
        &structure,
        config.cases_test,
        &mut SplitMix64::new(config.seed, 2),
    )?;
    // A finite scale and offset can still overflow float32 together with the signal.
    if train
        .series
        .iter()
        .chain(&test.series)
        .any(|v| !v.is_finite())
    {
        return Err(DataError::Config {
            field: "new_scale and new_offset",
            reason: format!(
                "scale {} with offset {} overflows float32 in the generated data; keep both below ~1e37",
                config.new_scale, config.new_offset
            ),
        });
    }
    Ok((train, test))
}

/// Per-channel constants shared by both splits, so train and test describe the same problem.
#[derive(Debug)]
struct Structure {
    /// Gain and phase offset of each old channel.
    old: Vec<(f64, f64)>,
    /// Gain and lag (in samples) of each informative new channel.
    informative: Vec<(f64, f64)>,
}

impl Structure {
    fn draw(config: &SyntheticConfig, rng: &mut SplitMix64) -> Self {
        let length = config.length as f64;
        let old = (0..config.old_channels)
            .map(|_| (0.6 + 0.8 * rng.uniform(), TAU * rng.uniform()))
            .collect();
        let informative = (0..config.informative_new)
            .map(|_| {
                (
                    0.6 + 0.8 * rng.uniform(),
                    (rng.uniform() - 0.5) * length / 10.0,
                )
            })
            .collect();
        Self { old, informative }
    }
}

fn split(
    config: &SyntheticConfig,
    structure: &Structure,
    cases: usize,
    rng: &mut SplitMix64,
) -> Result<Dataset, DataError> {
    let length = config.length;
    let len = length as f64;
    let noise = f64::from(config.noise);
    let scale = f64::from(config.new_scale);
    let offset = f64::from(config.new_offset);
    let width = (len / 20.0).max(1.0);
    let mut series = Vec::with_capacity(cases * config.new_channels * length);
    let mut labels = Vec::with_capacity(cases);
    for case in 0..cases {
        let class = case % config.classes;
        let (group, parity) = (class / 2, class % 2);
        labels.push(class);
        // Per-case nuisance: the order of these draws is part of the data's definition.
        let jitter = config.amplitude_jitter;
        let amplitude = OLD_AMPLITUDE[parity] * (jitter * rng.normal()).exp();
        let phase = TAU * rng.uniform();
        let centre = len * (0.25 + 0.5 * rng.uniform());
        let sign = if parity == 0 { 1.0 } else { -1.0 };
        let bump = sign * BUMP_HEIGHT * (jitter * rng.normal()).exp();
        let cycles = (group + 1) as f64;

        for &(gain, channel_phase) in &structure.old {
            for t in 0..length {
                let x = TAU * cycles * t as f64 / len + phase + channel_phase;
                let v = gain * amplitude * x.sin() + noise * rng.normal();
                series.push(v as f32);
            }
        }
        for &(gain, lag) in &structure.informative {
            for t in 0..length {
                let u = (t as f64 - centre - lag) / width;
                let signal = gain * bump * (-0.5 * u * u).exp();
                series.push((offset + scale * (signal + noise * rng.normal())) as f32);
            }
        }
        for _ in config.noise_channels() {
            for _ in 0..length {
                series.push((offset + scale * noise * rng.normal()) as f32);
            }
        }
    }
    let class_names = (0..config.classes).map(|c| format!("class{c}")).collect();
    Dataset::new(
        series,
        cases,
        config.new_channels,
        length,
        labels,
        class_names,
    )
}

/// SplitMix64 (Steele, Lea & Flood 2014): tiny, fast, and fixed forever, unlike a dependency's
/// generator; good enough statistically for simulated data.
#[derive(Debug, Clone)]
struct SplitMix64 {
    state: u64,
    /// Box–Muller yields normals in pairs; the second waits here.
    spare: Option<f64>,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// An independent stream per `(seed, stream)`: the structure, train and test draws never
    /// share values, and changing one split's size leaves the other unchanged.
    fn new(seed: u64, stream: u64) -> Self {
        Self::from_state(mix64(seed ^ mix64(stream.wrapping_add(GOLDEN_GAMMA))))
    }

    fn from_state(state: u64) -> Self {
        Self { state, spare: None }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
    }

    /// Standard normal by Box–Muller.
    fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1], so the log is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (TAU * u2).sin_cos();
        self.spare = Some(r * sin);
        r * cos
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn small() -> SyntheticConfig {
        SyntheticConfig {
            cases_train: 40,
            cases_test: 20,
            ..SyntheticConfig::default()
        }
    }

    fn bytes(d: &Dataset) -> Vec<u8> {
        d.series.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Mean and population std of one channel over all cases and time steps.
    fn channel(d: &Dataset, c: usize) -> (f64, f64) {
        let stats = d.channel_stats();
        (f64::from(stats[c].mean), f64::from(stats[c].std))
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        let mut rng = SplitMix64::from_state(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut rng = SplitMix64::new(3, 0);
        let n = 100_000;
        let draws: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|z| (z - mean).powi(2)).sum::<f64>() / n as f64;
        // Standard errors: 1/√n ≈ 0.003 for the mean, √(2/n) ≈ 0.0045 for the variance.
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.03, "{var}");
    }

    #[test]
    fn shapes_and_names() {
        let config = small();
        let (train, test) = generate(&config).unwrap();
        assert_eq!(train.shape(), [40, 32, 50]);
        assert_eq!(test.shape(), [20, 32, 50]);
        assert_eq!(train.class_names, ["class0", "class1", "class2", "class3"]);
        assert_eq!(config.old_channel_indices(), (0..8).collect::<Vec<_>>());
        assert_eq!(config.informative_channels(), 8..16);
        assert_eq!(config.noise_channels(), 16..32);
        assert!(
            train
                .series
                .iter()
                .chain(&test.series)
                .all(|v| v.is_finite())
        );
        let old = train
            .select_channels(&config.old_channel_indices())
            .unwrap();
        assert_eq!(old.shape(), [40, 8, 50]);
    }

    #[test]
    fn labels_are_balanced() {
        let (train, test) = generate(&small()).unwrap();
        assert_eq!(train.class_counts(), vec![10; 4]);
        assert_eq!(test.class_counts(), vec![5; 4]);
        let odd = SyntheticConfig {
            cases_train: 23,
            classes: 3,
            ..small()
        };
        let (train, _) = generate(&odd).unwrap();
        assert_eq!(train.class_counts(), vec![8, 8, 7]);
    }

    #[test]
    fn same_seed_gives_identical_bytes() {
        let (a_train, a_test) = generate(&small()).unwrap();
        let (b_train, b_test) = generate(&small()).unwrap();
        assert_eq!(bytes(&a_train), bytes(&b_train));
        assert_eq!(bytes(&a_test), bytes(&b_test));
        assert_eq!(a_train.labels, b_train.labels);
    }

    #[test]
    fn different_seeds_and_splits_differ() {
        let (a_train, a_test) = generate(&small()).unwrap();
        let other = SyntheticConfig { seed: 1, ..small() };
        let (b_train, b_test) = generate(&other).unwrap();
        assert_ne!(bytes(&a_train), bytes(&b_train));
        assert_ne!(bytes(&a_test), bytes(&b_test));
        // The test split is not a prefix of the training split.
        assert_ne!(bytes(&a_test), bytes(&a_train)[..bytes(&a_test).len()]);
    }

    #[test]
    fn growing_one_split_leaves_the_other_unchanged() {
        let (_, a_test) = generate(&small()).unwrap();
        let more = SyntheticConfig {
            cases_train: 80,
            ..small()
        };
        let (_, b_test) = generate(&more).unwrap();
        assert_eq!(bytes(&a_test), bytes(&b_test));
    }

    #[test]
    fn new_channels_are_offset_and_scaled() {
        let config = SyntheticConfig::default();
        let (train, _) = generate(&config).unwrap();
        let n = (train.cases * train.length) as f64;
        let (scale, offset, noise) = (
            f64::from(config.new_scale),
            f64::from(config.new_offset),
            f64::from(config.noise),
        );
        // Pure noise channels: mean offset ± 5 standard errors (σ/√n), std σ ± 5·σ/√(2n).
        let sigma = scale * noise;
        for c in config.noise_channels() {
            let (mean, std) = channel(&train, c);
            assert!(
                (mean - offset).abs() < 5.0 * sigma / n.sqrt(),
                "channel {c}: mean {mean}"
            );
            assert!(
                (std - sigma).abs() < 5.0 * sigma / (2.0 * n).sqrt(),
                "channel {c}: std {std}"
            );
        }
        // Informative channels: the bumps of opposite sign cancel over balanced classes, up to
        // the gain and jitter; they add a little variance on top of the noise.
        for c in config.informative_channels() {
            let (mean, std) = channel(&train, c);
            assert!(
                (mean - offset).abs() < scale * 0.05 + 5.0 * sigma / n.sqrt(),
                "channel {c}: mean {mean}"
            );
            assert!(
                std > 0.95 * sigma && std < 1.3 * sigma,
                "channel {c}: std {std}"
            );
        }
        // Old channels stay unscaled: mean 0 (whole sinusoid cycles), std between the noise's and
        // noise plus the largest sinusoid's.
        for c in 0..config.old_channels {
            let (mean, std) = channel(&train, c);
            assert!(
                mean.abs() < 5.0 * 1.7 / n.sqrt(),
                "channel {c}: mean {mean}"
            );
            assert!(std > noise && std < 2.0 * noise, "channel {c}: std {std}");
        }
    }

    /// The sign of a case's summed, de-offset informative channels recovers the class parity (the
    /// bit the old channels confuse); the noise channels do not.
    #[test]
    fn informative_channels_carry_the_parity() {
        let config = SyntheticConfig {
            cases_train: 400,
            ..SyntheticConfig::default()
        };
        let (train, _) = generate(&config).unwrap();
        let offset = config.new_offset;
        let accuracy = |channels: Range<usize>| {
            let hits = (0..train.cases)
                .filter(|&i| {
                    let case = train.case(i).unwrap();
                    let sum: f32 = channels
                        .clone()
                        .flat_map(|c| &case[c * train.length..(c + 1) * train.length])
                        .map(|v| v - offset)
                        .sum();
                    (sum > 0.0) == (train.labels[i] % 2 == 0)
                })
                .count();
            hits as f64 / train.cases as f64
        };
        let informative = accuracy(config.informative_channels());
        let noise = accuracy(config.noise_channels().start..config.noise_channels().start + 8);
        assert!(informative > 0.9, "informative accuracy {informative}");
        // Chance is 0.5 with standard error 0.025 for 400 cases.
        assert!(noise < 0.65, "noise accuracy {noise}");
    }

    #[test]
    fn bad_configs_name_their_field() {
        let d = SyntheticConfig::default();
        let cases: Vec<(SyntheticConfig, &str)> = vec![
            (
                SyntheticConfig {
                    cases_train: 0,
                    ..d.clone()
                },
                "cases_train",
            ),
            (
                SyntheticConfig {
                    cases_test: 3,
                    ..d.clone()
                },
                "cases_test",
            ),
            (
                SyntheticConfig {
                    classes: 1,
                    ..d.clone()
                },
                "classes",
            ),
            (
                SyntheticConfig {
                    length: 0,
                    ..d.clone()
                },
                "length",
            ),
            (
                SyntheticConfig {
                    old_channels: 0,
                    ..d.clone()
                },
                "old_channels",
            ),
            (
                SyntheticConfig {
                    new_channels: 4,
                    ..d.clone()
                },
                "new_channels",
            ),
            (
                SyntheticConfig {
                    informative_new: 25,
                    ..d.clone()
                },
                "informative_new",
            ),
            (
                SyntheticConfig {
                    new_scale: f32::INFINITY,
                    ..d.clone()
                },
                "new_scale",
            ),
            (
                SyntheticConfig {
                    new_scale: 0.0,
                    ..d.clone()
                },
                "new_scale",
            ),
            (
                SyntheticConfig {
                    new_offset: f32::NAN,
                    ..d.clone()
                },
                "new_offset",
            ),
            (
                SyntheticConfig {
                    noise: -1.0,
                    ..d.clone()
                },
                "noise",
            ),
        ];
        for (config, field) in cases {
            match generate(&config) {
                Err(DataError::Config { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected a config error, got {other:?}"),
            }
        }
        // The boundary cases are accepted: no added channels at all, all of them informative.
        for ok in [
            SyntheticConfig {
                new_channels: 8,
                informative_new: 0,
                ..small()
            },
            SyntheticConfig {
                informative_new: 24,
                ..small()
            },
        ] {
            assert!(generate(&ok).is_ok());
        }
    }
}
