//! Statistics over seeds: mean, sample standard deviation and a 95% Student-t interval, and
//! paired differences between two variants on the same seeds (same base model, same data,
//! same batch order), which is what lets a small number of seeds separate two recipes.

use serde::Serialize;

/// Two-sided 95% quantile of Student's t for 1..=30 degrees of freedom (standard tables, e.g.
/// NIST/SEMATECH e-Handbook 1.3.6.7.2); beyond 30 the normal approximation with a small
/// correction is within 0.005 of the exact value.
const T975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
    2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
    2.052, 2.048, 2.045, 2.042,
];

/// The 0.975 quantile of Student's t with `df` degrees of freedom (`df` ≥ 1).
pub fn t975(df: usize) -> f64 {
    match df {
        0 => f64::NAN,
        1..=30 => T975[df - 1],
        // Cornish-Fisher's first term: 1.96 + (1.96³ + 1.96) / (4 df).
        _ => 1.959_964 + 2.373 / df as f64,
    }
}

/// Mean over seeds with its spread and a 95% interval for the mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Stat {
    /// Seeds (values) behind it.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for one value).
    pub std: f64,
    /// 95% t-interval for the mean, `[low, high]`; absent for fewer than two values.
    pub ci95: Option<[f64; 2]>,
}

impl Stat {
    /// The statistics of `values`; an empty slice gives `n = 0` and a NaN mean.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self {
                n,
                mean: f64::NAN,
                std: f64::NAN,
                ci95: None,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let ci95 = (n > 1).then(|| {
            let half = t975(n - 1) * std / (n as f64).sqrt();
            [mean - half, mean + half]
        });
        Self { n, mean, std, ci95 }
    }

    /// Whether the interval lies wholly above or wholly below zero.
    pub fn excludes_zero(&self) -> bool {
        self.ci95.is_some_and(|[lo, hi]| lo > 0.0 || hi < 0.0)
    }
}

/// A paired comparison: per seed, this variant's value minus the reference's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paired {
    /// The reference variant.
    pub against: String,
    /// What is compared (a [`super::Run`] field name).
    pub metric: String,
    /// Statistics of the per-seed differences.
    pub difference: Stat,
}

impl Paired {
    /// Differences `ours[i] - theirs[i]` over the seeds both have (paired by position).
    pub fn of(against: &str, metric: &str, ours: &[f64], theirs: &[f64]) -> Self {
        let d: Vec<f64> = ours.iter().zip(theirs).map(|(a, b)| a - b).collect();
        Self {
            against: against.to_string(),
            metric: metric.to_string(),
            difference: Stat::of(&d),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Hand-computed: values 1, 2, 3, 4 have mean 2.5, s = sqrt(5/3), and the interval
    /// 2.5 ± 3.182 · s / 2 (t with 3 degrees of freedom).
    #[test]
    fn interval_matches_a_hand_computation() {
        let s = Stat::of(&[1.0, 2.0, 3.0, 4.0]);
        let sd = (5.0f64 / 3.0).sqrt();
        assert!((s.mean - 2.5).abs() < 1e-12);
        assert!((s.std - sd).abs() < 1e-12);
        let [lo, hi] = s.ci95.unwrap();
        assert!((hi - lo - 2.0 * 3.182 * sd / 2.0).abs() < 1e-12);
        assert!(s.excludes_zero());
    }

    #[test]
    fn one_value_has_no_interval_and_nothing_is_claimed() {
        let s = Stat::of(&[0.7]);
        assert_eq!((s.n, s.mean, s.std, s.ci95), (1, 0.7, 0.0, None));
        assert!(!s.excludes_zero());
        assert!(Stat::of(&[]).mean.is_nan());
    }

    /// Equal means with opposite per-seed differences: the paired interval contains zero.
    #[test]
    fn paired_differences_are_per_seed() {
        let p = Paired::of("b", "acc", &[0.9, 0.8, 0.7], &[0.8, 0.9, 0.7]);
        assert!((p.difference.mean).abs() < 1e-12);
        assert!(!p.difference.excludes_zero());
        // A consistent small gain is separated even though the two spreads overlap.
        let p = Paired::of(
            "b",
            "acc",
            &[0.71, 0.91, 0.52, 0.81],
            &[0.70, 0.90, 0.50, 0.80],
        );
        assert!(p.difference.excludes_zero(), "{p:?}");
    }

    /// The table's tail and the large-df formula agree where they meet, and fall towards 1.96.
    #[test]
    fn t_quantiles_are_monotone_towards_the_normal() {
        for df in 1..60 {
            assert!(t975(df) > t975(df + 1), "df {df}");
            assert!(t975(df) > 1.959);
        }
        assert!((t975(31) - 2.040).abs() < 0.005);
        assert!((t975(120) - 1.980).abs() < 0.005);
    }
}
