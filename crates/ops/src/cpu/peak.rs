//! This machine's FP32 peak, measured: a loop of fused multiply-adds over many independent
//! accumulator chains, on one thread and on several, with the widest instruction set the CPU
//! has (AVX-512F, else AVX2 + FMA, else plain multiply and add) chosen at run time.
//!
//! It is what `widen bench` divides its GFLOP/s by. A derived peak (cores × FMA pipes × lanes ×
//! 2 × clock) needs the sustained clock and the pipe width, which a VM does not report (Zen 4
//! runs a 512-bit FMA on two 256-bit pipes: AVX-512 doubles the lanes, not the throughput), so
//! the measured number is the one to trust; docs/PERFORMANCE.md derives the other.
//!
//! The loop needs `core::arch` intrinsics behind `#[target_feature]`, and calling such a
//! function is `unsafe`: this module is the second place in widen-ops allowed it (after
//! `gemm.rs`), three calls (512-bit loop, 256-bit loop, the one-chain clock loop), each right
//! after `is_x86_feature_detected!` said yes, into functions that touch registers only.
//! Intrinsics rather than `pulp`: the measurement must be one known instruction
//! (`vfmadd…ps`) on a known number of chains, not whatever a portable abstraction lowers to.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Independent chains per instruction set: enough to cover FMA latency × FMA pipes (4 × 2 on
/// Zen 4 and recent Intel) with room to spare, few enough to stay in registers (32 zmm, 16 ymm
/// with the two operands).
const CHAINS_512: usize = 16;
const CHAINS_256: usize = 12;
const CHAINS_SCALAR: usize = 8;

/// The instruction set a measurement ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// 512-bit `vfmadd231ps` on 16 f32 lanes.
    Avx512f,
    /// 256-bit `vfmadd231ps` on 8 f32 lanes.
    Avx2Fma,
    /// Scalar multiply then add (whatever the baseline target compiles that to).
    Scalar,
}

impl Isa {
    /// The widest instruction set this CPU runs.
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Self::Avx512f;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Self::Avx2Fma;
            }
        }
        Self::Scalar
    }

    /// Whether this CPU runs it.
    pub fn available(self) -> bool {
        match self {
            Self::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx512f => is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2Fma => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Its name as printed.
    pub fn name(self) -> &'static str {
        match self {
            Self::Avx512f => "avx512f",
            Self::Avx2Fma => "avx2+fma",
            Self::Scalar => "scalar",
        }
    }

    /// FLOPs one iteration of the loop does (chains × lanes × 2).
    fn flops_per_iteration(self) -> u64 {
        let (chains, lanes) = match self {
            Self::Avx512f => (CHAINS_512, 16),
            Self::Avx2Fma => (CHAINS_256, 8),
            Self::Scalar => (CHAINS_SCALAR, 1),
        };
        (chains * lanes * 2) as u64
    }
}

/// One measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// What the loop ran on.
    pub isa: Isa,
    /// Threads that ran it at once, each its own copy.
    pub threads: usize,
    /// FP32 GFLOP/s of all threads together (an FMA counts 2).
    pub gflops: f64,
}

/// The peak on one thread and on every core the process may use, with the best instruction
/// set; `duration` is roughly how long each of the three tries per thread count runs.
pub fn machine_peak(duration: Duration) -> (Peak, Peak) {
    let isa = Isa::detect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (measure(isa, 1, duration), measure(isa, cores, duration))
}

/// Best of three tries of `threads` threads running the loop on `isa` for about `duration`;
/// best, because anything else on the machine only ever lowers the number. An `isa` the CPU
/// lacks measures the scalar loop instead (the result says so).
pub fn measure(isa: Isa, threads: usize, duration: Duration) -> Peak {
    let isa = if isa.available() { isa } else { Isa::Scalar };
    let threads = threads.max(1);
    // Calibrate: grow the iteration count until one run takes a measurable time, then scale it
    // to `duration`.
    let mut iterations: u64 = 1 << 10;
    let per_iteration = loop {
        let start = Instant::now();
        black_box(run(isa, iterations));
        let t = start.elapsed();
        if t >= Duration::from_millis(5) || iterations >= 1 << 40 {
            break t.as_secs_f64() / iterations as f64;
        }
        iterations *= 4;
    };
    let iterations = ((duration.as_secs_f64() / per_iteration.max(1e-12)) as u64).max(1);
    let flops = isa.flops_per_iteration() as f64 * iterations as f64 * threads as f64;
    let mut best = 0.0f64;
    for _ in 0..3 {
        // Each thread reads the clock itself, once released and once done: a timestamp taken
        // by the spawning thread could wait for a core behind the workers and start late.
        let barrier = Barrier::new(threads);
        let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let start = Instant::now();
                        black_box(run(isa, iterations));
                        (start, Instant::now())
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        let (Some(first), Some(last)) = (
            spans.iter().map(|s| s.0).min(),
            spans.iter().map(|s| s.1).max(),
        ) else {
            continue;
        };
        if spans.len() != threads {
            continue;
        }
        let seconds = last
            .saturating_duration_since(first)
            .as_secs_f64()
            .max(1e-9);
        best = best.max(flops / seconds / 1e9);
    }
    Peak {
        isa,
        threads,
        gflops: best,
    }
}

/// The core clock in GHz, estimated from one dependent chain of 256-bit FMAs, which waits on
/// the FMA's latency every step: clock = 4 cycles × steps / seconds. Assumes that latency is 4
/// cycles (Zen 2 to Zen 5, Intel since Skylake; Haswell's 5 would read 20% low). Best of three
/// tries of about `duration`. `None` without AVX2 + FMA. A VM's `/proc/cpuinfo` shows the TSC
/// rate, not the clock the core runs at, hence this.
pub fn fma_clock_ghz(duration: Duration) -> Option<f64> {
    if !Isa::Avx2Fma.available() {
        return None;
    }
    let steps = (duration.as_secs_f64() * 1e9 / 4.0).max(1e3) as u64;
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        black_box(one_chain(steps));
        best = best.max(4.0 * steps as f64 / start.elapsed().as_secs_f64() / 1e9);
    }
    Some(best)
}

/// `iterations` rounds of `acc = acc·a + b` on every chain; returns the chains' sum so the
/// work cannot be optimised away. `a` just under 1 keeps the values finite and normal.
#[allow(unsafe_code)]
fn run(isa: Isa, iterations: u64) -> f32 {
    let iterations = black_box(iterations);
    let (a, b) = (black_box(0.999_999_9f32), black_box(1e-3f32));
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512f if is_x86_feature_detected!("avx512f") => {
            // SAFETY: the CPU has AVX-512F (checked on this line); the function only computes on
            // registers, no memory is touched through pointers.
            unsafe { x86::fma_512(iterations, a, b) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") => {
            // SAFETY: the CPU has AVX2 and FMA (checked on this line); registers only, as above.
            unsafe { x86::fma_256(iterations, a, b) }
        }
        _ => scalar(iterations, a, b),
    }
}

/// `steps` rounds of one 256-bit FMA chain (the caller checked AVX2 + FMA; scalar otherwise).
#[allow(unsafe_code)]
fn one_chain(steps: u64) -> f32 {
    let steps = black_box(steps);
    let (a, b) = (black_box(0.999_999_9f32), black_box(1e-3f32));
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx2Fma.available() {
        // SAFETY: the CPU has AVX2 and FMA (checked on the line above); registers only.
        return unsafe { x86::fma_256_one_chain(steps, a, b) };
    }
    scalar(steps, a, b)
}

fn scalar(iterations: u64, a: f32, b: f32) -> f32 {
    let mut acc = [0.0f32; CHAINS_SCALAR];
    for _ in 0..iterations {
        for x in &mut acc {
            *x = *x * a + b;
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{CHAINS_256, CHAINS_512};

    #[target_feature(enable = "avx512f")]
    pub(super) fn fma_512(iterations: u64, a: f32, b: f32) -> f32 {
        let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
        let mut acc = [_mm512_setzero_ps(); CHAINS_512];
        for _ in 0..iterations {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, va, vb);
            }
        }
        let sum = acc
            .into_iter()
            .fold(_mm512_setzero_ps(), |s, x| _mm512_add_ps(s, x));
        _mm512_reduce_add_ps(sum)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn fma_256(iterations: u64, a: f32, b: f32) -> f32 {
        let (va, vb) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
        let mut acc = [_mm256_setzero_ps(); CHAINS_256];
        for _ in 0..iterations {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, va, vb);
            }
        }
        let sum = acc
            .into_iter()
            .fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, x));
        // Lane 0 suffices: every lane holds the same value.
        _mm256_cvtss_f32(sum)
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn fma_256_one_chain(iterations: u64, a: f32, b: f32) -> f32 {
        let (va, vb) = (_mm256_set1_ps(a), _mm256_set1_ps(b));
        let mut x = _mm256_setzero_ps();
        for _ in 0..iterations {
            x = _mm256_fmadd_ps(x, va, vb);
        }
        _mm256_cvtss_f32(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every loop computes the same recurrence; the wide ones must agree with the scalar one
    /// (up to the FMA's single rounding), so the dispatch runs the maths it claims to time.
    #[test]
    fn every_instruction_set_computes_the_recurrence() {
        let reference = scalar(1000, 0.999_999_9, 1e-3) / CHAINS_SCALAR as f32;
        for isa in [Isa::Avx512f, Isa::Avx2Fma] {
            if !isa.available() {
                continue;
            }
            let chains = match isa {
                Isa::Avx512f => CHAINS_512 * 16,
                _ => CHAINS_256,
            };
            let per_chain = run(isa, 1000) / chains as f32;
            assert!(
                (per_chain - reference).abs() <= 1e-4 * reference.abs(),
                "{}: {per_chain} vs {reference}",
                isa.name()
            );
        }
    }

    /// A short measurement is positive and finite, on one thread and two (no timing asserted).
    #[test]
    fn measures_a_positive_peak() {
        for threads in [1, 2] {
            let p = measure(Isa::detect(), threads, Duration::from_millis(2));
            assert!(p.gflops.is_finite() && p.gflops > 0.0, "{p:?}");
            assert_eq!(p.threads, threads);
        }
        if let Some(ghz) = fma_clock_ghz(Duration::from_millis(2)) {
            assert!(ghz.is_finite() && ghz > 0.0, "{ghz}");
        }
    }
}
