//! Deterministic host-side random numbers.
//!
//! Values are drawn here, on the host, in `f64`, and only then converted to `f32` and uploaded.
//! Backends' own random kernels differ from one another (and between versions), so drawing on the
//! host is what makes one seed give bit-identical weights on every backend.
//!
//! The stream is ChaCha8 seeded with [`SeedableRng::seed_from_u64`], both specified as portable by
//! `rand_core`. The transforms from raw bits to distributions are written out here rather than
//! taken from `rand`'s distributions, whose algorithms may change between versions. The uniform
//! stream is exact on every platform; normal draws go through `ln`, `sqrt` and `cos` of the
//! platform's math library, which may differ in the last `f64` bit between platforms (rarely
//! visible after rounding to `f32`), but never between backends on one machine.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Standard deviation of a standard normal truncated to `[-2, 2]`.
///
/// Keras divides the target standard deviation by this, so that after cutting at two (effective)
/// standard deviations the drawn values have the intended spread. Keras writes
/// `.87962566103423978`; this is the same `f64`.
pub const TRUNCATED_NORMAL_STD: f64 = 0.879_625_661_034_239_8;

/// Where a truncated normal is cut, in standard deviations (as Keras and TensorFlow do).
pub const TRUNCATION_BOUND: f64 = 2.0;

/// A seeded, portable source of `f64` draws.
#[derive(Debug, Clone)]
pub struct HostRng {
    inner: ChaCha8Rng,
    /// Box–Muller yields normals in pairs; the second waits here.
    spare_normal: Option<f64>,
}

impl HostRng {
    /// A stream determined entirely by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            inner: ChaCha8Rng::seed_from_u64(seed),
            spare_normal: None,
        }
    }

    /// Uniform in `[0, 1)` with 53 random bits: the top 53 bits of one `u64`, times 2⁻⁵³.
    pub fn uniform(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.inner.next_u64() >> 11) as f64 * SCALE
    }

    /// Standard normal by the Box–Muller transform.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        // 1 - u lies in (0, 1], so the logarithm is finite.
        let radius = (-2.0 * (1.0 - self.uniform()).ln()).sqrt();
        let angle = core::f64::consts::TAU * self.uniform();
        self.spare_normal = Some(radius * angle.sin());
        radius * angle.cos()
    }

    /// Standard normal conditioned on `|z| <= 2`, by resampling draws outside (Keras, TF).
    ///
    /// About 4.6% of draws are rejected, so the loop ends almost at once.
    pub fn truncated_normal(&mut self) -> f64 {
        loop {
            let z = self.normal();
            if z.abs() <= TRUNCATION_BOUND {
                return z;
            }
        }
    }
}

/// `∫ z^k φ(z) dz` over `[-a, a]` by composite Simpson: moments of a truncated standard normal
/// for tests, so no constant has to be taken on trust.
#[cfg(test)]
pub(crate) fn truncated_moment(k: i32, a: f64) -> f64 {
    let steps = 20_000;
    let h = 2.0 * a / f64::from(steps);
    let f = |z: f64| z.powi(k) * (-z * z / 2.0).exp() / core::f64::consts::TAU.sqrt();
    let mut sum = f(-a) + f(a);
    for i in 1..steps {
        let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
        sum += weight * f(-a + f64::from(i) * h);
    }
    sum * h / 3.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const N: usize = 100_000;

    #[test]
    fn same_seed_same_stream_different_seed_different_stream() {
        let draw = |seed| {
            let mut rng = HostRng::new(seed);
            (0..64).map(|_| rng.normal().to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn uniform_lies_in_unit_interval_with_uniform_moments() {
        let mut rng = HostRng::new(1);
        let xs: Vec<f64> = (0..N).map(|_| rng.uniform()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        // U(0,1): mean 1/2, variance 1/12.
        let mean = xs.iter().sum::<f64>() / N as f64;
        assert!((mean - 0.5).abs() < 5.0 * (1.0 / 12.0f64).sqrt() / (N as f64).sqrt());
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut rng = HostRng::new(2);
        let xs: Vec<f64> = (0..N).map(|_| rng.normal()).collect();
        let n = N as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| x * x).sum::<f64>() / n;
        assert!(mean.abs() < 5.0 / n.sqrt(), "mean {mean}");
        // Var(z²) = E z⁴ - 1 = 2 for a standard normal.
        assert!((var - 1.0).abs() < 5.0 * (2.0 / n).sqrt(), "var {var}");
    }

    #[test]
    fn truncation_constant_is_the_std_of_the_truncated_standard_normal() {
        let mass = truncated_moment(0, TRUNCATION_BOUND);
        let var = truncated_moment(2, TRUNCATION_BOUND) / mass;
        assert!((var.sqrt() - TRUNCATED_NORMAL_STD).abs() < 1e-9);
    }

    #[test]
    fn truncated_normal_stays_within_two_and_has_truncated_variance() {
        let mut rng = HostRng::new(3);
        let xs: Vec<f64> = (0..N).map(|_| rng.truncated_normal()).collect();
        assert!(xs.iter().all(|x| x.abs() <= TRUNCATION_BOUND));
        let mass = truncated_moment(0, TRUNCATION_BOUND);
        let sigma2 = truncated_moment(2, TRUNCATION_BOUND) / mass;
        let mu4 = truncated_moment(4, TRUNCATION_BOUND) / mass;
        let n = N as f64;
        let var = xs.iter().map(|x| x * x).sum::<f64>() / n;
        assert!((var - sigma2).abs() < 5.0 * ((mu4 - sigma2 * sigma2) / n).sqrt());
    }
}
