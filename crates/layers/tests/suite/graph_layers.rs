//! Merge and shape layers (Add … Minimum, Concatenate, ZeroPadding1D, Cropping1D, UpSampling1D,
//! SpatialDropout1D, Reshape, Permute) against plain-loop oracles in the user-visible layout,
//! shape inference against the forward pass, and typed errors for every bad config or shape.

use burn::tensor::Device;
use widen_layers::{
    ConcatenateConfig, CroppingConfig, DataFormat, FeatureShape, InputSpec, LayerConfig,
    LayerError, LayerSpec, MergeConfig, Mode, Model, ModelSpec, PermuteConfig, ReshapeConfig,
    ShapeContext, SpatialDropoutConfig, UpSamplingConfig, Value, ZeroPaddingConfig,
};

use crate::common::{assert_close, pseudo_random, tensor3, values};

const CL: DataFormat = DataFormat::ChannelsLast;
const CF: DataFormat = DataFormat::ChannelsFirst;

/// A rank-3 array in the layout the user sees, row-major: the oracle's only data structure.
#[derive(Debug, Clone, PartialEq)]
struct Arr {
    d: [usize; 3],
    v: Vec<f32>,
}

impl Arr {
    fn random(d: [usize; 3], seed: u64) -> Self {
        Self {
            d,
            v: pseudo_random(d.iter().product(), seed),
        }
    }
    fn from_fn(d: [usize; 3], f: impl Fn([usize; 3]) -> f32) -> Self {
        let mut v = Vec::with_capacity(d.iter().product());
        for b in 0..d[0] {
            for i in 0..d[1] {
                for j in 0..d[2] {
                    v.push(f([b, i, j]));
                }
            }
        }
        Self { d, v }
    }
    fn at(&self, [b, i, j]: [usize; 3]) -> f32 {
        self.v[(b * self.d[1] + i) * self.d[2] + j]
    }
}

/// The user-visible axis of the length (batch included).
fn len_axis(format: DataFormat) -> usize {
    match format {
        CL => 1,
        CF => 2,
    }
}

/// The user-visible axis of the channels.
fn ch_axis(format: DataFormat) -> usize {
    3 - len_axis(format)
}

/// User-layout dims of `batch` samples of `channels × length`.
fn user_dims(format: DataFormat, batch: usize, channels: usize, length: usize) -> [usize; 3] {
    match format {
        CL => [batch, length, channels],
        CF => [batch, channels, length],
    }
}

fn crop(x: &Arr, axis: usize, before: usize, after: usize) -> Arr {
    let mut d = x.d;
    d[axis] -= before + after;
    Arr::from_fn(d, |mut ix| {
        ix[axis] += before;
        x.at(ix)
    })
}

fn pad(x: &Arr, axis: usize, before: usize, after: usize) -> Arr {
    let mut d = x.d;
    d[axis] += before + after;
    Arr::from_fn(d, |mut ix| {
        if ix[axis] < before || ix[axis] >= before + x.d[axis] {
            0.0
        } else {
            ix[axis] -= before;
            x.at(ix)
        }
    })
}

fn upsample(x: &Arr, axis: usize, size: usize) -> Arr {
    let mut d = x.d;
    d[axis] *= size;
    Arr::from_fn(d, |mut ix| {
        ix[axis] /= size;
        x.at(ix)
    })
}

fn concat(xs: &[&Arr], axis: usize) -> Arr {
    let mut d = xs[0].d;
    d[axis] = xs.iter().map(|x| x.d[axis]).sum();
    Arr::from_fn(d, |mut ix| {
        for x in xs {
            if ix[axis] < x.d[axis] {
                return x.at(ix);
            }
            ix[axis] -= x.d[axis];
        }
        unreachable!()
    })
}

fn transpose(x: &Arr) -> Arr {
    Arr::from_fn([x.d[0], x.d[2], x.d[1]], |[b, i, j]| x.at([b, j, i]))
}

fn device() -> Device {
    Device::flex()
}

fn spec(format: DataFormat, channels: usize, length: Option<usize>) -> ModelSpec {
    let mut input = InputSpec::new(channels).with_data_format(format);
    input.length = length;
    ModelSpec::new(input)
}

/// Builds the model and runs it on `x` (user layout).
fn run(spec: &ModelSpec, x: &Arr, mode: Mode) -> Result<Value, LayerError> {
    let model = Model::new(spec.clone(), 7, &device())?;
    let dev = device();
    model.forward_mode(tensor3(&x.v, x.d, &dev), mode)
}

/// A sequence output (user layout) as an array.
fn seq_out(v: Value) -> Arr {
    let d = v.dims();
    let t = v.into_seq().unwrap();
    Arr {
        d: [d[0], d[1], d[2]],
        v: values(t.into_data()),
    }
}

/// A flat output as `(batch, features, values)`.
fn flat_out(v: Value) -> (usize, usize, Vec<f32>) {
    let d = v.dims();
    (d[0], d[1], values(v.into_flat().unwrap().into_data()))
}

/// The model's sequence output on `x` in inference (user layout).
fn infer_seq(spec: &ModelSpec, x: &Arr) -> Arr {
    seq_out(run(spec, x, Mode::Inference).unwrap())
}

/// The model's flat output on `x` in inference, as [`flat_out`].
fn infer_flat(spec: &ModelSpec, x: &Arr) -> (usize, usize, Vec<f32>) {
    flat_out(run(spec, x, Mode::Inference).unwrap())
}

/// A sequence shape.
fn seq(channels: usize, length: Option<usize>) -> FeatureShape {
    FeatureShape::Seq { channels, length }
}

/// The layer a typed error names.
fn layer_of(e: &LayerError) -> Option<&str> {
    match e {
        LayerError::Config { layer, .. }
        | LayerError::InputShape { layer, .. }
        | LayerError::ChannelMismatch { layer, .. } => Some(layer),
        _ => None,
    }
}

/// Shape inference and `Model::new` both refuse the spec, with the same error naming `layer`.
fn refused(spec: &ModelSpec, layer: &str) -> LayerError {
    let inferred = spec.infer_shapes().unwrap_err();
    let built = Model::new(spec.clone(), 0, &device()).unwrap_err();
    assert_eq!(inferred.to_string(), built.to_string());
    assert_eq!(layer_of(&inferred), Some(layer), "{inferred}");
    inferred
}

fn is_config(e: &LayerError) -> bool {
    matches!(e, LayerError::Config { .. })
}

/// [`refused`], with a config error.
fn assert_refused_config(spec: &ModelSpec, layer: &str, what: &str) {
    let e = refused(spec, layer);
    assert!(is_config(&e), "{what}: {e}");
}

/// `e` is a channel mismatch of `expected` against `got` channels.
fn assert_channel_mismatch(e: &LayerError, expected: usize, got: usize) {
    assert!(
        matches!(
            e,
            LayerError::ChannelMismatch { expected: x, got: g, .. } if (*x, *g) == (expected, got)
        ),
        "{e}"
    );
}

/// A forward that fails at run time with an input-shape error naming `layer`, on `got`.
fn assert_input_shape_error(result: Result<Value, LayerError>, layer: &str, got: &[usize]) {
    match result {
        Err(LayerError::InputShape {
            layer: named,
            got: dims,
            ..
        }) => {
            assert_eq!(named, layer);
            assert_eq!(dims, got);
        }
        other => panic!(
            "expected an input-shape error, got {:?}",
            other.map(|v| v.dims())
        ),
    }
}

const MERGE: MergeConfig = MergeConfig {};

/// A merge variant's constructor.
type MakeMerge = fn(MergeConfig) -> LayerConfig;

/// A binary operation on floats.
type BinOp = fn(f32, f32) -> f32;

fn crop_cfg(before: usize, after: usize) -> LayerConfig {
    LayerConfig::Cropping1d(CroppingConfig {
        cropping: [before, after],
    })
}

/// The element-wise merges, each on three differently cropped windows of random input
/// (Subtract on two, first − second), in both layouts.
#[test]
fn elementwise_merges_match_loops() {
    type Oracle = fn(&[f32]) -> f32;
    let ops: [(&str, MakeMerge, usize, Oracle); 6] = [
        ("add", LayerConfig::Add, 3, |v| v.iter().sum()),
        ("subtract", LayerConfig::Subtract, 2, |v| v[0] - v[1]),
        ("multiply", LayerConfig::Multiply, 3, |v| v.iter().product()),
        ("average", LayerConfig::Average, 3, |v| {
            v.iter().sum::<f32>() / v.len() as f32
        }),
        ("maximum", LayerConfig::Maximum, 3, |v| {
            v.iter().copied().fold(f32::MIN, f32::max)
        }),
        ("minimum", LayerConfig::Minimum, 3, |v| {
            v.iter().copied().fold(f32::MAX, f32::min)
        }),
    ];
    for format in [CL, CF] {
        let (c, l) = (3, 8);
        let x = Arr::random(user_dims(format, 2, c, l), 11);
        let la = len_axis(format);
        for (stem, make, n, oracle) in ops {
            let mut s = spec(format, c, Some(l));
            let branches: Vec<String> = (0..n)
                .map(|k| s.add(&["input"], crop_cfg(k, 2 - k)))
                .collect();
            let refs: Vec<&str> = branches.iter().map(String::as_str).collect();
            let name = s.add(&refs, make(MERGE));
            assert_eq!(name, stem);
            let got = infer_seq(&s, &x);
            let windows: Vec<Arr> = (0..n).map(|k| crop(&x, la, k, 2 - k)).collect();
            let want = Arr::from_fn(windows[0].d, |ix| {
                let v: Vec<f32> = windows.iter().map(|w| w.at(ix)).collect();
                oracle(&v)
            });
            assert_eq!(got.d, want.d, "{stem}");
            assert_close(&got.v, &want.v, 1e-6, stem);
        }
    }
}

/// Merges of flat values (global max and mean over the length).
#[test]
fn flat_merges_match_loops() {
    let (b, c, l) = (3, 4, 5);
    let x = Arr::random([b, l, c], 5);
    let max = |bi: usize, ci: usize| (0..l).map(|t| x.at([bi, t, ci])).fold(f32::MIN, f32::max);
    let mean = |bi: usize, ci: usize| (0..l).map(|t| x.at([bi, t, ci])).sum::<f32>() / l as f32;
    let cases: [(MakeMerge, BinOp); 3] = [
        (LayerConfig::Subtract, |a, m| a - m),
        (LayerConfig::Add, |a, m| a + m),
        (LayerConfig::Minimum, f32::min),
    ];
    for (make, op) in cases {
        let mut s = spec(CL, c, Some(l));
        let gmp = s.add(&["input"], LayerConfig::GlobalMaxPool1d);
        let gap = s.add(&["input"], LayerConfig::GlobalAvgPool1d);
        s.add(&[&gmp, &gap], make(MERGE));
        let (ob, of, got) = infer_flat(&s, &x);
        assert_eq!((ob, of), (b, c));
        let want: Vec<f32> = (0..b)
            .flat_map(|bi| (0..c).map(move |ci| (bi, ci)))
            .map(|(bi, ci)| op(max(bi, ci), mean(bi, ci)))
            .collect();
        assert_close(&got, &want, 1e-6, "flat merge");
    }
}

/// Shape mismatches, wrong input counts and mixed kinds are typed errors naming the merge.
#[test]
fn merges_refuse_mismatched_inputs() {
    // Channels: 3 against 6.
    let mut s = spec(CL, 3, Some(6));
    let wide = s.add(
        &["input", "input"],
        LayerConfig::Concatenate(ConcatenateConfig::default()),
    );
    s.add(&["input", &wide], LayerConfig::Add(MERGE));
    let e = refused(&s, "add");
    assert_channel_mismatch(&e, 3, 6);

    // Lengths: 6 against 4.
    let mut s = spec(CL, 3, Some(6));
    let short = s.add(&["input"], crop_cfg(1, 1));
    s.add(&["input", &short], LayerConfig::Maximum(MERGE));
    assert_refused_config(&s, "maximum", "lengths 6 and 4");

    // A sequence and a flat value.
    let mut s = spec(CL, 3, Some(6));
    let flat = s.add(&["input"], LayerConfig::GlobalMaxPool1d);
    s.add(&["input", &flat], LayerConfig::Multiply(MERGE));
    assert_refused_config(&s, "multiply", "a sequence and a flat value");

    // Subtract takes exactly two; the others at least two.
    let mut s = spec(CL, 3, Some(6));
    s.add(&["input", "input", "input"], LayerConfig::Subtract(MERGE));
    assert_refused_config(&s, "subtract", "three inputs");
    let mut s = spec(CL, 3, Some(6));
    s.add(&["input"], LayerConfig::Average(MERGE));
    assert_refused_config(&s, "average", "one input");
    let mut s = spec(CL, 3, Some(6));
    s.add(
        &["input"],
        LayerConfig::Concatenate(ConcatenateConfig::default()),
    );
    assert_refused_config(&s, "concatenate", "one input");
}

/// With variable lengths the shapes agree at build time; lengths that differ at run time are
/// a typed error, not a Burn panic.
#[test]
fn merges_check_runtime_lengths() {
    let mut s = spec(CF, 2, None);
    let short = s.add(&["input"], crop_cfg(1, 0));
    s.add(&["input", &short], LayerConfig::Add(MERGE));
    assert_eq!(s.infer_shapes().unwrap()[1], seq(2, None));
    let x = Arr::random([2, 2, 5], 1);
    assert_input_shape_error(run(&s, &x, Mode::Inference), "add", &[2, 2, 4]);
}

/// Concatenate on the channels and on the length, each Keras axis spelling, both layouts.
#[test]
fn concatenate_matches_loops() {
    let (b, c, l) = (2, 3, 6);
    for format in [CL, CF] {
        let x = Arr::random(user_dims(format, b, c, l), 21);
        let la = len_axis(format);
        let channel_axes: &[i64] = if format == CL { &[-1, 2] } else { &[1, -2] };
        let length_axes: &[i64] = if format == CL { &[1, -2] } else { &[-1, 2] };
        for &axis in channel_axes {
            // Two windows of one length, joined channel-wise.
            let mut s = spec(format, c, Some(l));
            let a = s.add(&["input"], crop_cfg(0, 1));
            let z = s.add(&["input"], crop_cfg(1, 0));
            s.add(
                &[&a, &z],
                LayerConfig::Concatenate(ConcatenateConfig { axis }),
            );
            let got = infer_seq(&s, &x);
            let want = concat(&[&crop(&x, la, 0, 1), &crop(&x, la, 1, 0)], ch_axis(format));
            assert_eq!(got, want, "{format:?} channels axis {axis}");
            assert_eq!(s.infer_shapes().unwrap()[2], seq(2 * c, Some(l - 1)));
        }
        for &axis in length_axes {
            // The input, a shorter window, and the input again, joined along the length.
            let mut s = spec(format, c, Some(l));
            let a = s.add(&["input"], crop_cfg(1, 2));
            s.add(
                &["input", &a, "input"],
                LayerConfig::Concatenate(ConcatenateConfig { axis }),
            );
            let got = infer_seq(&s, &x);
            let want = concat(&[&x, &crop(&x, la, 1, 2), &x], la);
            assert_eq!(got, want, "{format:?} length axis {axis}");
            assert_eq!(s.infer_shapes().unwrap()[1], seq(c, Some(3 * l - 3)));
        }
    }
}

/// Flat inputs join their features (axis -1 or 1); variable lengths join into a variable length.
#[test]
fn concatenate_flat_and_variable_length() {
    let (b, c, l) = (2, 3, 4);
    let x = Arr::random([b, l, c], 8);
    for axis in [-1, 1] {
        let mut s = spec(CL, c, Some(l));
        let gmp = s.add(&["input"], LayerConfig::GlobalMaxPool1d);
        let gap = s.add(&["input"], LayerConfig::GlobalAvgPool1d);
        s.add(
            &[&gap, &gmp],
            LayerConfig::Concatenate(ConcatenateConfig { axis }),
        );
        let (ob, of, got) = infer_flat(&s, &x);
        assert_eq!((ob, of), (b, 2 * c));
        let mut want = Vec::new();
        for bi in 0..b {
            for ci in 0..c {
                want.push((0..l).map(|t| x.at([bi, t, ci])).sum::<f32>() / l as f32);
            }
            for ci in 0..c {
                want.push((0..l).map(|t| x.at([bi, t, ci])).fold(f32::MIN, f32::max));
            }
        }
        assert_close(&got, &want, 1e-6, "flat concatenate");
    }

    let mut s = spec(CL, c, None);
    let a = s.add(&["input"], crop_cfg(1, 0));
    s.add(
        &["input", &a],
        LayerConfig::Concatenate(ConcatenateConfig { axis: 1 }),
    );
    assert_eq!(s.infer_shapes().unwrap()[1], seq(c, None));
    for length in [3, 7] {
        let x = Arr::random([b, length, c], length as u64);
        let got = infer_seq(&s, &x);
        assert_eq!(got, concat(&[&x, &crop(&x, 1, 1, 0)], 1));
    }
}

/// Bad axes, disagreeing off-axis dims and mixed kinds are typed errors.
#[test]
fn concatenate_refuses_bad_axes_and_shapes() {
    for axis in [0, 3, -4, i64::MIN, i64::MAX] {
        let mut s = spec(CL, 3, Some(6));
        s.add(
            &["input", "input"],
            LayerConfig::Concatenate(ConcatenateConfig { axis }),
        );
        assert_refused_config(&s, "concatenate", &format!("axis {axis}"));
    }
    // Flat inputs have no axis 2 (nor -2).
    for axis in [2, -2, 0] {
        let mut s = spec(CL, 3, Some(6));
        let g = s.add(&["input"], LayerConfig::GlobalMaxPool1d);
        s.add(
            &[&g, &g],
            LayerConfig::Concatenate(ConcatenateConfig { axis }),
        );
        assert_refused_config(&s, "concatenate", &format!("flat axis {axis}"));
    }
    // Channel-wise join of lengths 6 and 5.
    for format in [CL, CF] {
        let mut s = spec(format, 3, Some(6));
        let a = s.add(&["input"], crop_cfg(1, 0));
        let axis = if format == CL { -1 } else { 1 };
        s.add(
            &["input", &a],
            LayerConfig::Concatenate(ConcatenateConfig { axis }),
        );
        assert_refused_config(&s, "concatenate", &format!("{format:?}: lengths 6 and 5"));
    }
    // Length-wise join of 3 and 6 channels.
    let mut s = spec(CL, 3, Some(6));
    let wide = s.add(
        &["input", "input"],
        LayerConfig::Concatenate(ConcatenateConfig::new(-1)),
    );
    s.add(
        &["input", &wide],
        LayerConfig::Concatenate(ConcatenateConfig::new(1)),
    );
    let e = refused(&s, "concatenate_1");
    assert_channel_mismatch(&e, 3, 6);
    // A sequence and a flat value.
    let mut s = spec(CL, 3, Some(6));
    let g = s.add(&["input"], LayerConfig::GlobalMaxPool1d);
    s.add(
        &["input", &g],
        LayerConfig::Concatenate(ConcatenateConfig::default()),
    );
    assert_refused_config(&s, "concatenate", "a sequence and a flat value");
}

fn shape_of(config: &LayerConfig, inputs: &[FeatureShape]) -> Result<FeatureShape, LayerError> {
    config.output_shape(&ShapeContext {
        name: "m",
        inputs,
        data_format: CL,
    })
}

/// Shape rules a model cannot reach from one input (a fixed beside a variable length), asked
/// of the configs directly.
#[test]
fn shape_rules_for_mixed_lengths() {
    let add = LayerConfig::Add(MERGE);
    assert!(is_config(
        &shape_of(&add, &[seq(2, Some(3)), seq(2, None)]).unwrap_err()
    ));
    assert_eq!(
        shape_of(&add, &[seq(2, None), seq(2, None)]).unwrap(),
        seq(2, None)
    );
    assert!(is_config(&shape_of(&add, &[]).unwrap_err()));
    let along_length = LayerConfig::Concatenate(ConcatenateConfig::new(1));
    let err = shape_of(&along_length, &[seq(2, Some(3)), seq(2, None)]).unwrap_err();
    assert!(is_config(&err));
    assert_eq!(
        shape_of(&along_length, &[seq(2, Some(3)), seq(2, Some(4))]).unwrap(),
        seq(2, Some(7))
    );
    let along_channels = LayerConfig::Concatenate(ConcatenateConfig::new(-1));
    assert_eq!(
        shape_of(&along_channels, &[seq(2, None), seq(3, None)]).unwrap(),
        seq(5, None)
    );
    let err = shape_of(&along_channels, &[seq(2, None), seq(3, Some(1))]).unwrap_err();
    assert!(is_config(&err));
    let err = shape_of(&along_channels, &[seq(usize::MAX, None), seq(1, None)]).unwrap_err();
    assert!(is_config(&err));
}

/// ZeroPadding1D, Cropping1D and UpSampling1D against loops, both layouts.
#[test]
fn padding_cropping_upsampling_match_loops() {
    let (b, c, l) = (2, 3, 5);
    for format in [CL, CF] {
        let x = Arr::random(user_dims(format, b, c, l), 31);
        let la = len_axis(format);
        for [before, after] in [[0, 0], [2, 1], [0, 3]] {
            let s = spec(format, c, Some(l)).push(LayerConfig::ZeroPadding1d(ZeroPaddingConfig {
                padding: [before, after],
            }));
            let got = infer_seq(&s, &x);
            assert_eq!(got, pad(&x, la, before, after), "pad {before},{after}");

            let s = spec(format, c, Some(l)).push(crop_cfg(before, after));
            let got = infer_seq(&s, &x);
            assert_eq!(got, crop(&x, la, before, after), "crop {before},{after}");
        }
        for size in [1, 2, 3] {
            let s =
                spec(format, c, Some(l)).push(LayerConfig::UpSampling1d(UpSamplingConfig { size }));
            let got = infer_seq(&s, &x);
            assert_eq!(got, upsample(&x, la, size), "upsample {size}");
        }
    }
    // Keras' own example: [a, b] → [a, a, b, b] along the steps.
    let x = Arr {
        d: [1, 2, 1],
        v: vec![1.0, 2.0],
    };
    let s = spec(CL, 1, Some(2)).push(LayerConfig::UpSampling1d(UpSamplingConfig { size: 2 }));
    assert_eq!(infer_seq(&s, &x).v, vec![1.0, 1.0, 2.0, 2.0]);
}

/// Cropping that leaves no step, a zero upsampling size and flat inputs are typed errors; a
/// variable-length input too short for the cropping is one at run time.
#[test]
fn length_layers_refuse_bad_configs() {
    for cropping in [[3, 3], [6, 0], [0, 7], [usize::MAX, 1]] {
        let s = spec(CL, 2, Some(6)).push(LayerConfig::Cropping1d(CroppingConfig { cropping }));
        assert_refused_config(&s, "cropping1d", &format!("{cropping:?}"));
    }
    let s = spec(CL, 2, Some(6)).push(LayerConfig::UpSampling1d(UpSamplingConfig { size: 0 }));
    assert_refused_config(&s, "up_sampling1d", "size 0");
    let s = spec(CL, 2, Some(6)).push(LayerConfig::ZeroPadding1d(ZeroPaddingConfig {
        padding: [usize::MAX, 1],
    }));
    assert_refused_config(&s, "zero_padding1d", "padding overflows");
    let s = spec(CL, 2, Some(6)).push(LayerConfig::UpSampling1d(UpSamplingConfig {
        size: usize::MAX,
    }));
    assert_refused_config(&s, "up_sampling1d", "size overflows");
    for layer in [
        LayerConfig::ZeroPadding1d(ZeroPaddingConfig::default()),
        LayerConfig::Cropping1d(CroppingConfig::default()),
        LayerConfig::UpSampling1d(UpSamplingConfig::default()),
        LayerConfig::SpatialDropout1d(SpatialDropoutConfig { rate: 0.5 }),
    ] {
        let stem = layer.default_stem();
        let s = spec(CL, 2, Some(6))
            .push(LayerConfig::GlobalMaxPool1d)
            .push(layer);
        let e = refused(&s, stem);
        assert!(matches!(e, LayerError::InputShape { .. }), "{stem}: {e}");
    }

    let s = spec(CF, 2, None).push(crop_cfg(2, 2));
    assert!(s.infer_shapes().is_ok());
    let ok = infer_seq(&s, &Arr::random([1, 2, 5], 2));
    assert_eq!(ok.d, [1, 2, 1]);
    let short = run(&s, &Arr::random([1, 2, 4], 2), Mode::Inference);
    assert_input_shape_error(short, "cropping1d", &[1, 2, 4]);
}

/// SpatialDropout1D: the identity in inference; in training each (sample, channel) is either
/// all zeros or all `x / (1 − rate)`, with both outcomes seen; frozen, the identity again.
#[test]
fn spatial_dropout_drops_whole_channels() {
    let (b, c, l) = (4, 32, 6);
    let rate = 0.5;
    for format in [CL, CF] {
        let x = Arr::from_fn(user_dims(format, b, c, l), |ix| {
            // Nonzero everywhere, so a zero can only come from the mask.
            1.0 + (ix[0] * 7 + ix[1] * 3 + ix[2]) as f32 / 10.0
        });
        let s = spec(format, c, Some(l))
            .push(LayerConfig::SpatialDropout1d(SpatialDropoutConfig { rate }));
        assert_eq!(infer_seq(&s, &x), x);

        let got = seq_out(run(&s, &x, Mode::Training).unwrap());
        assert_eq!(got.d, x.d);
        let (mut dropped, mut kept) = (0, 0);
        for bi in 0..b {
            for ch in 0..c {
                let at = |t: usize| {
                    let mut ix = [bi, 0, 0];
                    ix[len_axis(format)] = t;
                    ix[ch_axis(format)] = ch;
                    ix
                };
                if got.at(at(0)) == 0.0 {
                    dropped += 1;
                    assert!(
                        (0..l).all(|t| got.at(at(t)) == 0.0),
                        "partly dropped channel"
                    );
                } else {
                    kept += 1;
                    for t in 0..l {
                        let want = x.at(at(t)) / (1.0 - rate as f32);
                        assert!((got.at(at(t)) - want).abs() <= 1e-5, "kept value scaled");
                    }
                }
            }
        }
        assert!(dropped > 0 && kept > 0, "dropped {dropped}, kept {kept}");

        let model = Model::new(s.clone(), 1, &device())
            .unwrap()
            .freeze_layer("spatial_dropout1d")
            .unwrap();
        let y = model.forward_train(tensor3(&x.v, x.d, &device())).unwrap();
        assert_eq!(seq_out(y), x, "frozen layer must infer");
    }
    for rate in [1.0, -0.1, f64::NAN, f64::INFINITY] {
        let s =
            spec(CL, 2, Some(3)).push(LayerConfig::SpatialDropout1d(SpatialDropoutConfig { rate }));
        assert_refused_config(&s, "spatial_dropout1d", &format!("rate {rate}"));
    }
}

/// Reshape keeps Keras' row-major element order of the user-visible layout.
#[test]
fn reshape_keeps_row_major_order() {
    let b = 2;
    for format in [CL, CF] {
        let (c, l) = (3, 4);
        let x = Arr::random(user_dims(format, b, c, l), 41);
        // 12 elements per sample as two user-visible dims.
        for target in [[6, 2], [2, 6], [-1, 4], [12, -1], [1, 12]] {
            let s =
                spec(format, c, Some(l)).push(LayerConfig::Reshape(ReshapeConfig::new(&target)));
            let got = infer_seq(&s, &x);
            let d1 = if target[0] == -1 {
                12 / target[1]
            } else {
                target[0]
            } as usize;
            assert_eq!(got.d, [b, d1, 12 / d1], "{format:?} {target:?}");
            assert_eq!(got.v, x.v, "{format:?} {target:?}: element order");
            let (channels, length) = match format {
                CL => (12 / d1, d1),
                CF => (d1, 12 / d1),
            };
            assert_eq!(s.infer_shapes().unwrap()[0], seq(channels, Some(length)));
        }
        // To flat and back.
        let s = spec(format, c, Some(l)).push(LayerConfig::Reshape(ReshapeConfig::new(&[-1])));
        let (ob, of, got) = infer_flat(&s, &x);
        assert_eq!((ob, of, &got), (b, 12, &x.v));
        let back = match format {
            CL => [l as i64, c as i64],
            CF => [c as i64, l as i64],
        };
        let s = s.push(LayerConfig::Reshape(ReshapeConfig::new(&back)));
        assert_eq!(infer_seq(&s, &x), x);
    }
}

/// Permute [2, 1] transposes the user-visible sample; [1, 2] (and [1] on a flat value) is the
/// identity.
#[test]
fn permute_transposes_the_user_layout() {
    let (b, c, l) = (2, 3, 5);
    for format in [CL, CF] {
        let x = Arr::random(user_dims(format, b, c, l), 51);
        let s = spec(format, c, Some(l)).push(LayerConfig::Permute(PermuteConfig::new(&[2, 1])));
        assert_eq!(s.infer_shapes().unwrap()[0], seq(l, Some(c)));
        assert_eq!(infer_seq(&s, &x), transpose(&x));
        let s = spec(format, c, Some(l)).push(LayerConfig::Permute(PermuteConfig::new(&[1, 2])));
        assert_eq!(infer_seq(&s, &x), x);
    }
    let x = Arr::random([2, 4, 3], 3);
    let s = spec(CL, 3, Some(4))
        .push(LayerConfig::GlobalMaxPool1d)
        .push(LayerConfig::Permute(PermuteConfig::new(&[1])));
    assert_eq!(infer_flat(&s, &x).1, 3);
}

/// Unsupported reshape targets and permutations are typed errors.
#[test]
fn reshape_and_permute_refuse_bad_configs() {
    let bad_targets: &[&[i64]] = &[
        &[],
        &[2, 3, 2],
        &[-1, -1],
        &[0, 12],
        &[-2, 6],
        &[5, 2],
        &[-1, 5],
        &[i64::MAX, i64::MAX],
    ];
    for &target in bad_targets {
        let s = spec(CL, 3, Some(4)).push(LayerConfig::Reshape(ReshapeConfig::new(target)));
        assert_refused_config(&s, "reshape", &format!("{target:?}"));
    }
    let s = spec(CL, 3, None).push(LayerConfig::Reshape(ReshapeConfig::new(&[-1])));
    assert_refused_config(&s, "reshape", "variable length to flat");

    let bad_dims: &[&[usize]] = &[
        &[],
        &[1],
        &[2],
        &[1, 1],
        &[2, 2],
        &[0, 1],
        &[3, 1],
        &[1, 2, 3],
    ];
    for &dims in bad_dims {
        let s = spec(CL, 3, Some(4)).push(LayerConfig::Permute(PermuteConfig::new(dims)));
        assert_refused_config(&s, "permute", &format!("{dims:?}"));
    }
    // A swap needs a fixed length; a flat value has one axis.
    let s = spec(CL, 3, None).push(LayerConfig::Permute(PermuteConfig::new(&[2, 1])));
    assert_refused_config(&s, "permute", "swap on a variable length");
    let s = spec(CL, 3, None).push(LayerConfig::Permute(PermuteConfig::new(&[1, 2])));
    assert!(s.infer_shapes().is_ok());
    let s = spec(CL, 3, Some(4))
        .push(LayerConfig::GlobalMaxPool1d)
        .push(LayerConfig::Permute(PermuteConfig::new(&[2, 1])));
    assert_refused_config(&s, "permute", "swap on a flat value");
}

/// Every new layer in one graph: the inferred shapes are the forward's, in both layouts and
/// both modes.
#[test]
fn inferred_shapes_match_the_forward() {
    let (b, c, l) = (2, 3, 8);
    for format in [CL, CF] {
        let mut s = spec(format, c, Some(l));
        let add = |s: &mut ModelSpec, from: &[&str], cfg: LayerConfig| s.add(from, cfg);
        let chan = if format == CL { -1 } else { 1 };
        let len = if format == CL { 1 } else { -1 };
        let p = add(
            &mut s,
            &["input"],
            LayerConfig::ZeroPadding1d(ZeroPaddingConfig { padding: [1, 2] }),
        );
        let u = add(
            &mut s,
            &[&p],
            LayerConfig::UpSampling1d(UpSamplingConfig { size: 2 }),
        );
        let k = add(&mut s, &[&u], crop_cfg(3, 3));
        let d = add(
            &mut s,
            &[&k],
            LayerConfig::SpatialDropout1d(SpatialDropoutConfig { rate: 0.5 }),
        );
        let t = add(
            &mut s,
            &[&d],
            LayerConfig::Permute(PermuteConfig::new(&[2, 1])),
        );
        let t2 = add(
            &mut s,
            &[&t],
            LayerConfig::Permute(PermuteConfig::new(&[2, 1])),
        );
        let target: [i64; 2] = if format == CL { [8, -1] } else { [-1, 8] };
        let r = add(
            &mut s,
            &[&t2],
            LayerConfig::Reshape(ReshapeConfig::new(&target)),
        );
        let c1 = add(
            &mut s,
            &["input", "input"],
            LayerConfig::Concatenate(ConcatenateConfig::new(chan)),
        );
        let a = add(&mut s, &[&r, &c1], LayerConfig::Add(MERGE));
        let m = add(&mut s, &[&a, &r], LayerConfig::Multiply(MERGE));
        let mx = add(&mut s, &[&a, &c1], LayerConfig::Maximum(MERGE));
        let mn = add(&mut s, &[&mx, &m], LayerConfig::Minimum(MERGE));
        let av = add(&mut s, &[&m, &mx, &mn], LayerConfig::Average(MERGE));
        let sb = add(&mut s, &[&av, &mn], LayerConfig::Subtract(MERGE));
        let cl = add(
            &mut s,
            &[&sb, &a],
            LayerConfig::Concatenate(ConcatenateConfig::new(len)),
        );
        let f = add(
            &mut s,
            &[&cl],
            LayerConfig::Reshape(ReshapeConfig::new(&[-1])),
        );
        let g = add(&mut s, &[&cl], LayerConfig::GlobalMaxPool1d);
        add(
            &mut s,
            &[&f, &g],
            LayerConfig::Concatenate(ConcatenateConfig::default()),
        );

        let shapes = s.infer_shapes().unwrap();
        assert_eq!(shapes[6], seq(6, Some(8)), "reshape");
        assert_eq!(shapes[14], seq(6, Some(16)), "length join");
        assert_eq!(
            *shapes.last().unwrap(),
            FeatureShape::Flat { features: 96 + 6 }
        );
        let model = Model::new(s.clone(), 3, &device()).unwrap();
        assert_eq!(model.shapes(), shapes.as_slice());
        let x = Arr::random(user_dims(format, b, c, l), 61);
        for mode in [Mode::Inference, Mode::Training] {
            let trace = model
                .forward_trace(tensor3(&x.v, x.d, &device()), mode)
                .unwrap();
            assert_eq!(trace.len(), shapes.len() + 1);
            for ((name, v), shape) in trace[1..].iter().zip(&shapes) {
                let want = match *shape {
                    FeatureShape::Seq { channels, length } => vec![b, channels, length.unwrap()],
                    FeatureShape::Flat { features } => vec![b, features],
                };
                assert_eq!(v.dims(), want, "{format:?} {mode:?} layer {name}");
            }
        }
    }
}

/// With a variable-length input, the length layers keep the length variable and the forward
/// gives the length the shape rules predict.
#[test]
fn variable_lengths_follow_the_shape_rules() {
    let c = 2;
    let mut s = spec(CL, c, None);
    let p = s.add(
        &["input"],
        LayerConfig::ZeroPadding1d(ZeroPaddingConfig { padding: [2, 0] }),
    );
    let u = s.add(
        &[&p],
        LayerConfig::UpSampling1d(UpSamplingConfig { size: 3 }),
    );
    let k = s.add(&[&u], crop_cfg(1, 4));
    let d = s.add(
        &[&k],
        LayerConfig::SpatialDropout1d(SpatialDropoutConfig { rate: 0.1 }),
    );
    let q = s.add(&[&d], LayerConfig::Permute(PermuteConfig::new(&[1, 2])));
    s.add(&[&q, &k], LayerConfig::Maximum(MERGE));
    assert!(
        s.infer_shapes()
            .unwrap()
            .iter()
            .all(|sh| *sh == seq(c, None))
    );
    for length in [1, 4, 9] {
        let x = Arr::random([1, length, c], length as u64);
        let got = infer_seq(&s, &x);
        let want = crop(&upsample(&pad(&x, 1, 2, 0), 1, 3), 1, 1, 4);
        assert_eq!(got, want, "length {length}");
    }
}

/// The JSON each config is stored as (what a Python exporter writes), read back equal; Keras'
/// defaults and integer shorthands parse.
#[test]
fn configs_round_trip_through_json() {
    use serde_json::{Value as Json, json};
    // The merges store nothing but their type.
    let merges: [(MakeMerge, &str, &str); 6] = [
        (LayerConfig::Add, "Add", "add"),
        (LayerConfig::Subtract, "Subtract", "subtract"),
        (LayerConfig::Multiply, "Multiply", "multiply"),
        (LayerConfig::Average, "Average", "average"),
        (LayerConfig::Maximum, "Maximum", "maximum"),
        (LayerConfig::Minimum, "Minimum", "minimum"),
    ];
    let mut cases: Vec<(LayerConfig, Json, &str, &str)> = merges
        .into_iter()
        .map(|(make, class, stem)| (make(MERGE), json!({"type": stem}), class, stem))
        .collect();
    cases.extend([
        (
            LayerConfig::Concatenate(ConcatenateConfig::new(1)),
            json!({"type": "concatenate", "axis": 1}),
            "Concatenate",
            "concatenate",
        ),
        (
            LayerConfig::ZeroPadding1d(ZeroPaddingConfig { padding: [1, 2] }),
            json!({"type": "zero_padding1d", "padding": [1, 2]}),
            "ZeroPadding1D",
            "zero_padding1d",
        ),
        (
            LayerConfig::Cropping1d(CroppingConfig { cropping: [0, 3] }),
            json!({"type": "cropping1d", "cropping": [0, 3]}),
            "Cropping1D",
            "cropping1d",
        ),
        (
            LayerConfig::UpSampling1d(UpSamplingConfig { size: 3 }),
            json!({"type": "up_sampling1d", "size": 3}),
            "UpSampling1D",
            "up_sampling1d",
        ),
        (
            LayerConfig::SpatialDropout1d(SpatialDropoutConfig { rate: 0.25 }),
            json!({"type": "spatial_dropout1d", "rate": 0.25}),
            "SpatialDropout1D",
            "spatial_dropout1d",
        ),
        (
            LayerConfig::Reshape(ReshapeConfig::new(&[-1, 4])),
            json!({"type": "reshape", "target_shape": [-1, 4]}),
            "Reshape",
            "reshape",
        ),
        (
            LayerConfig::Permute(PermuteConfig::new(&[2, 1])),
            json!({"type": "permute", "dims": [2, 1]}),
            "Permute",
            "permute",
        ),
    ]);
    for (config, fields, class, stem) in cases {
        assert_eq!(config.keras_class(), class);
        assert_eq!(config.default_stem(), stem);
        assert_eq!(config.type_tag(), stem);
        let spec = LayerSpec::new("x", &["input"], config);
        let mut want = fields;
        want["name"] = json!("x");
        want["inbound"] = json!(["input"]);
        assert_eq!(serde_json::to_value(&spec).unwrap(), want, "{stem}");
        let back: LayerSpec = serde_json::from_value(want).unwrap();
        assert_eq!(back, spec);
    }
    let parse = |j: Json| serde_json::from_value::<LayerSpec>(j).unwrap().config;
    assert_eq!(
        parse(json!({"name": "c", "type": "concatenate"})),
        LayerConfig::Concatenate(ConcatenateConfig { axis: -1 })
    );
    assert_eq!(
        parse(json!({"name": "z", "type": "zero_padding1d"})),
        LayerConfig::ZeroPadding1d(ZeroPaddingConfig { padding: [1, 1] })
    );
    assert_eq!(
        parse(json!({"name": "z", "type": "zero_padding1d", "padding": 3})),
        LayerConfig::ZeroPadding1d(ZeroPaddingConfig { padding: [3, 3] })
    );
    assert_eq!(
        parse(json!({"name": "k", "type": "cropping1d", "cropping": 2})),
        LayerConfig::Cropping1d(CroppingConfig { cropping: [2, 2] })
    );
    assert_eq!(
        parse(json!({"name": "u", "type": "up_sampling1d"})),
        LayerConfig::UpSampling1d(UpSamplingConfig { size: 2 })
    );
    for bad in [
        json!({"name": "z", "type": "zero_padding1d", "padding": -1}),
        json!({"name": "z", "type": "zero_padding1d", "padding": [1, 2, 3]}),
        json!({"name": "z", "type": "zero_padding1d", "padding": [1]}),
        json!({"name": "k", "type": "cropping1d", "cropping": "x"}),
        json!({"name": "s", "type": "spatial_dropout1d"}),
        json!({"name": "r", "type": "reshape"}),
    ] {
        assert!(
            serde_json::from_value::<LayerSpec>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

/// Keras' default names for repeated merges, and a spec with them survives JSON.
#[test]
fn merge_graph_spec_round_trips() {
    let mut s = spec(CL, 2, Some(4));
    let a = s.add(&["input", "input"], LayerConfig::Add(MERGE));
    let b = s.add(&["input", &a], LayerConfig::Add(MERGE));
    let c = s.add(
        &[&a, &b],
        LayerConfig::Concatenate(ConcatenateConfig::default()),
    );
    assert_eq!(
        (a.as_str(), b.as_str(), c.as_str()),
        ("add", "add_1", "concatenate")
    );
    let text = serde_json::to_string(&s).unwrap();
    let back: ModelSpec = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
    let model = Model::new(back, 0, &device()).unwrap();
    assert!(model.weight_infos().is_empty());
    assert!(
        model.summary().contains("add_1 (Add)"),
        "{}",
        model.summary()
    );
}
