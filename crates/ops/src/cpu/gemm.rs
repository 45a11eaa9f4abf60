//! The one `unsafe` call in the workspace: `gemm::gemm` on strided views of slices. Every view is
//! checked against its slice first, so the raw pointers gemm reads and writes stay in bounds.

use gemm::Parallelism;

/// A strided matrix inside a slice: element `(i, j)` lives at `offset + i·rs + j·cs`. Strides
/// may overlap for read-only operands (an im2col matrix read straight from the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View {
    /// A dense row-major `rows × cols` block at `offset`.
    pub fn row_major(offset: usize, rows: usize, cols: usize) -> Self {
        Self {
            offset,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The view with rows and columns swapped (no data moves).
    pub fn t(self) -> Self {
        Self {
            offset: self.offset,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// One past the largest index the view touches, `None` on overflow.
    fn end(&self) -> Option<usize> {
        let last_row = (self.rows - 1).checked_mul(self.rs)?;
        let last_col = (self.cols - 1).checked_mul(self.cs)?;
        self.offset
            .checked_add(last_row)?
            .checked_add(last_col)?
            .checked_add(1)
    }

    fn fits(&self, len: usize) -> bool {
        self.end().is_some_and(|end| end <= len) && isize::try_from(self.rs.max(self.cs)).is_ok()
    }

    /// Distinct elements at distinct addresses: required of a destination.
    fn injective(&self) -> bool {
        let by_rows = self.cs >= 1 && self.rs >= self.cols.saturating_mul(self.cs);
        let by_cols = self.rs >= 1 && self.cs >= self.rows.saturating_mul(self.rs);
        self.rows <= 1 && self.cs >= 1 || self.cols <= 1 && self.rs >= 1 || by_rows || by_cols
    }
}

/// Shapes or bounds that would make the call unsound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadView;

/// `dst = dst + lhs · rhs` when `accumulate`, else `dst = lhs · rhs`. `threads` > 1 lets gemm
/// split the product over rayon's pool; callers that already run one product per thread pass 1.
#[allow(clippy::too_many_arguments)] // three (slice, view) pairs: gemm's own call takes 18
pub(crate) fn matmul(
    dst: &mut [f32],
    d: View,
    lhs: &[f32],
    l: View,
    rhs: &[f32],
    r: View,
    accumulate: bool,
    threads: usize,
) -> Result<(), BadView> {
    if d.rows != l.rows || d.cols != r.cols || l.cols != r.rows {
        return Err(BadView);
    }
    if d.rows == 0 || d.cols == 0 {
        return Ok(());
    }
    if !d.fits(dst.len()) || !d.injective() {
        return Err(BadView);
    }
    if l.cols == 0 {
        if !accumulate {
            for i in 0..d.rows {
                for j in 0..d.cols {
                    dst[d.offset + i * d.rs + j * d.cs] = 0.0;
                }
            }
        }
        return Ok(());
    }
    if !l.fits(lhs.len()) || !r.fits(rhs.len()) {
        return Err(BadView);
    }
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // Strides fit in isize (checked by `fits`).
    let s = |v: usize| v as isize;
    // SAFETY: every view was checked to lie inside its slice (`fits`), the destination maps
    // distinct elements to distinct addresses (`injective`), and `dst` is a unique borrow that
    // cannot alias `lhs` or `rhs`. gemm reads `lhs`/`rhs` and reads/writes `dst` only at
    // `offset + i·rs + j·cs` for i < rows, j < cols.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            d.rows,
            d.cols,
            l.cols,
            dst.as_mut_ptr().add(d.offset),
            s(d.cs),
            s(d.rs),
            accumulate,
            lhs.as_ptr().add(l.offset),
            s(l.cs),
            s(l.rs),
            rhs.as_ptr().add(r.offset),
            s(r.cs),
            s(r.rs),
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn small_product_matches_hand_result() {
        // [[1,2],[3,4]] · [[5,6],[7,8]] = [[19,22],[43,50]]
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut c = [100.0; 4];
        let v = View::row_major(0, 2, 2);
        matmul(&mut c, v, &a, v, &b, v, false, 1).unwrap();
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        matmul(&mut c, v, &a, v, &b, v, true, 1).unwrap();
        assert_eq!(c, [38.0, 44.0, 86.0, 100.0]);
        // Transposed destination: column-major C.
        let mut ct = [0.0; 4];
        matmul(&mut ct, v.t(), &a, v, &b, v, false, 1).unwrap();
        assert_eq!(ct, [19.0, 43.0, 22.0, 50.0]);
    }

    #[test]
    fn overlapping_read_view_is_an_im2col_matrix() {
        // Rows [x0 x1], [x1 x2], [x2 x3]: a k=2 sliding window with row stride 1.
        let x = [1.0, 2.0, 3.0, 4.0];
        let w = [10.0, 1.0];
        let mut y = [0.0; 3];
        let l = View {
            offset: 0,
            rows: 3,
            cols: 2,
            rs: 1,
            cs: 1,
        };
        matmul(
            &mut y,
            View::row_major(0, 3, 1),
            &x,
            l,
            &w,
            View::row_major(0, 2, 1),
            false,
            1,
        )
        .unwrap();
        assert_eq!(y, [12.0, 23.0, 34.0]);
    }

    #[test]
    fn out_of_bounds_and_aliasing_views_are_refused() {
        let a = [0.0; 4];
        let mut c = [0.0; 4];
        let v = View::row_major(0, 2, 2);
        let long = View::row_major(1, 2, 2);
        assert_eq!(matmul(&mut c, v, &a, long, &a, v, false, 1), Err(BadView));
        let overlapping = View {
            offset: 0,
            rows: 2,
            cols: 2,
            rs: 1,
            cs: 1,
        };
        assert_eq!(
            matmul(&mut c, overlapping, &a, v, &a, v, false, 1),
            Err(BadView)
        );
        let wrong_inner = View::row_major(0, 1, 2);
        assert_eq!(
            matmul(&mut c, v, &a, v, &a, wrong_inner, false, 1),
            Err(BadView)
        );
    }
}
