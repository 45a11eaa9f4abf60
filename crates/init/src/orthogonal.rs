//! (Semi-)orthogonal matrices for [`Initializer::Orthogonal`](crate::Initializer::Orthogonal).
//!
//! Follows Saxe et al. (2013) as PyTorch's `orthogonal_` and Keras' `Orthogonal` implement it:
//! flatten the kernel to a matrix, draw it from a standard normal, take the Q of its QR
//! decomposition, multiply each column by the sign of R's diagonal (which makes the result
//! Haar-distributed rather than biased by the QR convention), transpose if the matrix is wide,
//! and scale by the gain. The QR is a small Householder factorisation in `f64`, so no linear
//! algebra backend is needed and the values stay identical on every Burn backend.

use crate::fans::KernelLayout;
use crate::rng::HostRng;

/// How a kernel of `shape` is flattened to `(rows, cols)` before orthogonalisation.
///
/// Torch: rows are the output channels (`shape[0]`), as in PyTorch. Keras: columns are the last
/// axis (the output channels), rows everything before it. The caller guarantees `shape.len() >= 2`
/// and that the product fits in `usize`.
pub(crate) fn matrix_dims(shape: &[usize], layout: KernelLayout) -> (usize, usize) {
    let total: usize = shape.iter().product();
    let rows = match layout {
        KernelLayout::Torch => shape[0],
        KernelLayout::Keras => total / shape[shape.len() - 1],
    };
    (rows, total / rows)
}

/// Row-major `rows × cols` values whose rows (if `rows <= cols`) or columns (otherwise) are
/// orthonormal, times `gain`.
pub(crate) fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut HostRng) -> Vec<f64> {
    // Factorise the tall orientation `m × n` with m >= n; transpose back at the end if wide.
    let (m, n) = (rows.max(cols), rows.min(cols));
    // Column-major, so each Householder step works on contiguous columns.
    let mut a: Vec<f64> = (0..m * n).map(|_| rng.normal()).collect();
    let q = householder_q_with_positive_r(&mut a, m, n);

    let mut out = vec![0.0; rows * cols];
    for c in 0..n {
        for r in 0..m {
            let value = gain * q[c * m + r];
            // Tall: out[r][c] = q[r][c]. Wide: out = qᵀ, so out[c][r] = q[r][c].
            let index = if rows >= cols {
                r * cols + c
            } else {
                c * cols + r
            };
            out[index] = value;
        }
    }
    out
}

/// The thin Q (`m × n`, column-major) of the QR of the column-major `a` (`m × n`, `m >= n`),
/// with columns multiplied by `sign(diag(R))`, i.e. the Q of the unique QR with `R_kk >= 0`.
///
/// `a` is overwritten. A zero `R_kk` counts as positive so Q stays orthonormal even then.
fn householder_q_with_positive_r(a: &mut [f64], m: usize, n: usize) -> Vec<f64> {
    // Householder vectors v_k (unit length, zero above k) and the signs of R's diagonal.
    let mut reflectors: Vec<Vec<f64>> = Vec::with_capacity(n);
    let mut signs = Vec::with_capacity(n);

    for k in 0..n {
        let column = &a[k * m..(k + 1) * m];
        let norm = column[k..].iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            // Nothing to reflect: H_k = I and R_kk = 0.
            reflectors.push(vec![0.0; m]);
            signs.push(1.0);
            continue;
        }
        // Reflect x onto alpha·e_k with alpha = -sign(x_k)·|x|, avoiding cancellation in v.
        let alpha = if column[k] >= 0.0 { -norm } else { norm };
        let mut v = vec![0.0; m];
        v[k..].copy_from_slice(&column[k..]);
        v[k] -= alpha;
        let v_norm = v[k..].iter().map(|x| x * x).sum::<f64>().sqrt();
        v[k..].iter_mut().for_each(|x| *x /= v_norm);

        // A[k.., j] -= 2 v (vᵀ A[k.., j]) for the remaining columns.
        for j in k..n {
            reflect(&v, &mut a[j * m..(j + 1) * m], k);
        }
        signs.push(if alpha < 0.0 { -1.0 } else { 1.0 });
        reflectors.push(v);
    }

    // Q = H_0 H_1 … H_{n-1} applied to the first n columns of the identity, from the right end.
    let mut q = vec![0.0; m * n];
    for c in 0..n {
        q[c * m + c] = 1.0;
    }
    for (k, v) in reflectors.iter().enumerate().rev() {
        for c in 0..n {
            reflect(v, &mut q[c * m..(c + 1) * m], k);
        }
    }
    for (c, sign) in signs.iter().enumerate() {
        q[c * m..(c + 1) * m].iter_mut().for_each(|x| *x *= sign);
    }
    q
}

/// `x -= 2 v (vᵀ x)`, touching entries from `start` on (where `v` is non-zero).
fn reflect(v: &[f64], x: &mut [f64], start: usize) {
    let dot: f64 = v[start..].iter().zip(&x[start..]).map(|(a, b)| a * b).sum();
    x[start..]
        .iter_mut()
        .zip(&v[start..])
        .for_each(|(xi, vi)| *xi -= 2.0 * dot * vi);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    /// Max |M Mᵀ - g² I| (rows <= cols) or |Mᵀ M - g² I| (otherwise) of a row-major matrix.
    fn orthogonality_error(w: &[f64], rows: usize, cols: usize, gain: f64) -> f64 {
        // Element (i, k) of whichever of M, Mᵀ is wide.
        let at = |i: usize, k: usize| {
            if rows <= cols {
                w[i * cols + k]
            } else {
                w[k * cols + i]
            }
        };
        let (outer, inner) = (rows.min(cols), rows.max(cols));
        let mut worst: f64 = 0.0;
        for i in 0..outer {
            for j in 0..outer {
                let dot: f64 = (0..inner).map(|k| at(i, k) * at(j, k)).sum();
                let expected = if i == j { gain * gain } else { 0.0 };
                worst = worst.max((dot - expected).abs());
            }
        }
        worst
    }

    #[test]
    fn result_is_orthonormal_for_tall_square_and_wide() {
        for (rows, cols) in [(1, 1), (4, 4), (9, 3), (3, 9), (1, 7), (7, 1), (16, 48)] {
            let w = orthogonal(rows, cols, 1.0, &mut HostRng::new(11));
            assert!(
                orthogonality_error(&w, rows, cols, 1.0) < 1e-12,
                "{rows}x{cols}"
            );
        }
    }

    #[test]
    fn gain_scales_the_gram_matrix() {
        let w = orthogonal(5, 8, 2.5, &mut HostRng::new(3));
        assert!(orthogonality_error(&w, 5, 8, 2.5) < 1e-12);
    }

    #[test]
    fn r_diagonal_sign_correction_makes_q_equal_to_gram_schmidt() {
        // Gram–Schmidt on the same columns yields the Q whose R has a positive diagonal, which
        // the sign correction must reproduce.
        let (m, n) = (6, 4);
        let mut rng = HostRng::new(5);
        let a: Vec<f64> = (0..m * n).map(|_| rng.normal()).collect();
        let q = householder_q_with_positive_r(&mut a.clone(), m, n);

        let mut gs: Vec<Vec<f64>> = Vec::new();
        for c in 0..n {
            let mut v = a[c * m..(c + 1) * m].to_vec();
            for u in &gs {
                let dot: f64 = u.iter().zip(&v).map(|(x, y)| x * y).sum();
                v.iter_mut().zip(u).for_each(|(x, y)| *x -= dot * y);
            }
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            gs.push(v.into_iter().map(|x| x / norm).collect());
        }
        for c in 0..n {
            for r in 0..m {
                assert!((q[c * m + r] - gs[c][r]).abs() < 1e-10);
            }
        }
    }

    #[test]
    fn flattening_follows_each_layout() {
        assert_eq!(matrix_dims(&[8, 4, 3], KernelLayout::Torch), (8, 12));
        assert_eq!(matrix_dims(&[3, 4, 8], KernelLayout::Keras), (12, 8));
        assert_eq!(matrix_dims(&[5, 7], KernelLayout::Torch), (5, 7));
        assert_eq!(matrix_dims(&[5, 7], KernelLayout::Keras), (5, 7));
    }
}
