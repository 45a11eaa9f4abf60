//! Parallel loops that stay on the calling thread for small work: rayon hands a call from
//! outside its pool to a worker and blocks until it is done (~10–20 µs measured here), more
//! than a whole pass over a small tensor costs.

use std::sync::OnceLock;

use rayon::prelude::*;

/// Elements below which a pass runs on the calling thread (the bench's seed shape has 15k).
pub(crate) const PARALLEL_FROM: usize = 1 << 16;

/// Runs `f` compiled for the best instruction set this CPU has (AVX-512, AVX2+FMA, else the
/// x86-64 baseline) through pulp's runtime dispatch: rustc otherwise targets SSE2 only, and the
/// kernels' own loops (statistics, transposes, maxima) then run 4 lanes wide at best.
#[inline(always)]
pub(crate) fn simd<R>(f: impl FnOnce() -> R) -> R {
    // Detected once: `Arch::new` queries every feature it knows, tens of ns a call.
    static ARCH: OnceLock<pulp::Arch> = OnceLock::new();
    ARCH.get_or_init(pulp::Arch::new).dispatch(f)
}

/// `(0..n).map(f)`, over rayon's threads when `parallel`; each call SIMD-dispatched.
pub(crate) fn map_range<T: Send>(
    n: usize,
    parallel: bool,
    f: impl Fn(usize) -> T + Sync + Send,
) -> Vec<T> {
    if parallel {
        (0..n).into_par_iter().map(|i| simd(|| f(i))).collect()
    } else {
        (0..n).map(|i| simd(|| f(i))).collect()
    }
}

/// `f(i, chunk)` for each `chunk`-sized piece of `data`, over rayon's threads when `parallel`;
/// each call SIMD-dispatched.
pub(crate) fn for_chunks_mut<T: Send>(
    data: &mut [T],
    chunk: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if parallel {
        data.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        data.chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

/// `item(scratch, (i, chunk))` for each `chunk`-sized piece of `data`: over rayon's threads with
/// one scratch per worker when `parallel`, else in order with one scratch. Stops at the first
/// error.
pub(crate) fn try_chunks_with_scratch<T: Send, S, E: Send>(
    data: &mut [T],
    chunk: usize,
    parallel: bool,
    init: impl Fn() -> S + Sync + Send,
    item: impl Fn(&mut S, (usize, &mut [T])) -> Result<(), E> + Sync + Send,
) -> Result<(), E> {
    if parallel {
        data.par_chunks_mut(chunk)
            .enumerate()
            .try_for_each_init(init, item)
    } else {
        let mut scratch = init();
        data.chunks_mut(chunk)
            .enumerate()
            .try_for_each(|c| item(&mut scratch, c))
    }
}
