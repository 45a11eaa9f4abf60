//! Channel surgery and pooling: algebraic identities against plain loops.

use burn::tensor::Device;
use proptest::prelude::*;
use widen_ops::{
    OpsError, concat_channels, ensure_finite, global_avg_pool1d, global_max_pool1d, pad_channels,
    pad_channels_appended, select_channels, slice_channels,
};

use crate::common::{pseudo_random, tensor3, values};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Padding puts old channel i at positions[i] bit-exact and zeros elsewhere; selecting the
    /// positions back gives the input.
    #[test]
    fn pad_then_select_roundtrip(b in 1usize..3, c in 1usize..6, extra in 0usize..6, l in 1usize..9, seed in any::<u64>()) {
        let device = Device::flex();
        let n = c + extra;
        // a one-to-one map: a seeded shuffle of 0..n, first c entries
        let mut order: Vec<usize> = (0..n).collect();
        let keys = pseudo_random(n, seed);
        order.sort_by(|&i, &j| keys[i].total_cmp(&keys[j]));
        let positions = &order[..c];
        let x = pseudo_random(b * c * l, seed ^ 3);
        let y = pad_channels(tensor3(&x, [b, c, l], &device), n, positions).unwrap();
        prop_assert_eq!(y.dims(), [b, n, l]);
        let yv = values(y.clone());
        for bi in 0..b {
            for j in 0..n {
                for t in 0..l {
                    let got = yv[(bi * n + j) * l + t];
                    let want: f32 = positions.iter().position(|&p| p == j).map_or(0.0, |i| x[(bi * c + i) * l + t]);
                    prop_assert_eq!(got.to_bits(), want.to_bits());
                }
            }
        }
        let back = values(select_channels(y, positions).unwrap());
        prop_assert_eq!(back, x);
    }
}

#[test]
fn channel_errors() {
    let device = Device::flex();
    let x = tensor3(&pseudo_random(2 * 3 * 4, 1), [2, 3, 4], &device);
    let bad = |r: Result<_, OpsError>| matches!(r, Err(OpsError::BadChannelIndex { .. }));
    assert!(bad(pad_channels(x.clone(), 5, &[0, 1])));
    assert!(bad(pad_channels(x.clone(), 5, &[0, 1, 1])));
    assert!(bad(pad_channels(x.clone(), 5, &[0, 1, 5])));
    assert!(bad(pad_channels(x.clone(), 2, &[0, 1, 2])));
    assert!(bad(select_channels(x.clone(), &[3])));
    assert!(bad(slice_channels(x.clone(), 2, 2)));
    assert!(bad(slice_channels(x.clone(), usize::MAX, 2)));
    assert!(matches!(
        select_channels(x.clone(), &[]),
        Err(OpsError::ZeroSize { .. })
    ));
    assert!(matches!(
        concat_channels(vec![]),
        Err(OpsError::ZeroSize { .. })
    ));
    let other = tensor3(&pseudo_random(2 * 3 * 5, 1), [2, 3, 5], &device);
    assert!(matches!(
        concat_channels(vec![x.clone(), other]),
        Err(OpsError::ShapeMismatch { .. })
    ));
    let y = pad_channels_appended(x.clone(), 5).unwrap();
    assert_eq!(
        values(slice_channels(y.clone(), 0, 3).unwrap()),
        values(x.clone())
    );
    assert!(
        values(slice_channels(y, 3, 2).unwrap())
            .iter()
            .all(|&v| v == 0.0)
    );
    let z = concat_channels(vec![x.clone(), x.clone()]).unwrap();
    assert_eq!(z.dims(), [2, 6, 4]);
    assert_eq!(values(select_channels(z, &[3, 4, 5]).unwrap()), values(x));
}

#[test]
fn global_pools_match_loops() {
    let device = Device::flex();
    let (b, c, l) = (3, 4, 7);
    let x = pseudo_random(b * c * l, 11);
    let t = tensor3(&x, [b, c, l], &device);
    let max = values(global_max_pool1d(t.clone()).unwrap());
    let avg = values(global_avg_pool1d(t).unwrap());
    for bi in 0..b {
        for ci in 0..c {
            let row = &x[(bi * c + ci) * l..(bi * c + ci + 1) * l];
            assert_eq!(
                max[bi * c + ci],
                row.iter().copied().fold(f32::MIN, f32::max)
            );
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / l as f64;
            assert!((avg[bi * c + ci] as f64 - mean).abs() < 1e-6);
        }
    }
    let empty = tensor3(&[], [2, 3, 0], &device);
    assert!(matches!(
        global_max_pool1d(empty),
        Err(OpsError::ZeroSize { .. })
    ));
}

#[test]
fn ensure_finite_names_the_first_bad_value() {
    let device = Device::flex();
    let mut x = pseudo_random(12, 5);
    assert!(ensure_finite(&tensor3(&x, [1, 3, 4], &device), "input").is_ok());
    x[7] = f32::NAN;
    x[9] = f32::INFINITY;
    let err = ensure_finite(&tensor3(&x, [1, 3, 4], &device), "input").unwrap_err();
    assert_eq!(
        err,
        OpsError::NonFinite {
            what: "input".into(),
            count: 2,
            first: 7
        }
    );
}
