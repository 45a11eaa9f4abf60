//! Expansion on graphs: every layer that reads the input's channels is widened together, on the
//! reference architectures and on random DAGs (branches, merges, several input consumers).

use burn::tensor::Device;
use proptest::prelude::*;
use widen_adapt::{ExpandRequest, ProjectionInit, Strategy, expand};
use widen_layers::zoo::{self, FcnConfig, InceptionTimeConfig, ResNetConfig};
use widen_layers::{
    Activation, BatchNormConfig, ConcatenateConfig, Conv1dConfig, DropoutConfig, FeatureShape,
    GruConfig, InputSpec, LayerConfig, LstmConfig, MergeConfig, Mode, Model, ModelSpec,
    PaddingMode, PoolConfig, Value,
};

use crate::common::{max_abs_diff, pseudo_random, tensor3, values, widen_data};

const SCALE: f32 = 100.0;

fn strategies() -> Vec<Strategy> {
    vec![
        Strategy::Zero,
        Strategy::Projection {
            init: ProjectionInit::Identity,
        },
    ]
}

/// `base(x)` against `widened([x, new channels × 100])` for each function-preserving strategy,
/// and `repeat` on `[x, repeated channels]`; returns the widened models' adapted layers.
fn check_preserved(spec: ModelSpec, extra: usize, tolerance: f32) -> Vec<Vec<String>> {
    let device = Device::flex();
    let base = Model::new(spec, 3, &device).unwrap();
    let c = base.input().channels;
    let l = base.input().length.unwrap();
    let b = 2;
    let x = pseudo_random(b * l * c, 7);
    let want = values(base.forward(tensor3(&x, [b, l, c], &device)).unwrap());
    let positions: Vec<usize> = (0..c).collect();
    let mut adapted = Vec::new();
    for strategy in strategies() {
        let wide = expand(&base, &ExpandRequest::new(c + extra, strategy.clone())).unwrap();
        let noise = pseudo_random(b * l * (c + extra), 11);
        let xw = widen_data(&x, b, l, c, c + extra, &positions, |i| noise[i] * SCALE);
        let got = values(
            wide.model
                .forward(tensor3(&xw, [b, l, c + extra], &device))
                .unwrap(),
        );
        let d = max_abs_diff(&want, &got);
        assert!(d <= tolerance, "{strategy:?}: max |Δ| = {d}");
        adapted.push(wide.adapted_layers);
    }
    // `repeat`: new channel j carries old channel j mod C; the kernels split their weight.
    let wide = expand(
        &base,
        &ExpandRequest::new(c + extra, Strategy::RepeatRescale),
    )
    .unwrap();
    let xr = widen_data(&x, b, l, c, c + extra, &positions, |i| {
        let (row, j) = (i / (c + extra), i % (c + extra));
        x[row * c + j % c]
    });
    let got = values(
        wide.model
            .forward(tensor3(&xr, [b, l, c + extra], &device))
            .unwrap(),
    );
    let d = max_abs_diff(&want, &got);
    assert!(d <= tolerance, "repeat: max |Δ| = {d}");
    adapted
}

#[test]
fn fcn_widens_its_one_input_conv() {
    let spec = zoo::fcn(
        InputSpec::new(3).with_length(24),
        4,
        &FcnConfig {
            filters: [8, 16, 8],
            kernels: [8, 5, 3],
        },
    );
    let adapted = check_preserved(spec, 3, 1e-5);
    assert_eq!(adapted[0], ["conv1d"]);
}

#[test]
fn resnet_widens_the_first_conv_and_the_shortcut_together() {
    let spec = zoo::resnet(
        InputSpec::new(3).with_length(24),
        4,
        &ResNetConfig {
            filters: vec![8, 16, 16],
            kernels: [8, 5, 3],
        },
    );
    let model = Model::new(spec.clone(), 0, &Device::flex()).unwrap();
    assert_eq!(
        model.input_consumers().len(),
        2,
        "conv and shortcut conv read the input"
    );
    let adapted = check_preserved(spec, 3, 1e-5);
    assert_eq!(adapted[0].len(), 2, "{:?}", adapted[0]);
    assert_eq!(adapted[1].len(), 1, "one projection in front of both");
}

#[test]
fn inception_time_widens_bottleneck_pool_branch_and_shortcut() {
    for (depth, filters) in [(3, 4), (6, 8)] {
        let spec = zoo::inception_time(
            InputSpec::new(3).with_length(20),
            3,
            &InceptionTimeConfig {
                depth,
                filters,
                bottleneck: filters,
                kernels: [9, 5, 3],
                residual: true,
            },
        );
        let adapted = check_preserved(spec, 3, 1e-5);
        // The bottleneck, the conv behind the max-pool branch and the residual shortcut conv.
        assert_eq!(adapted[0].len(), 3, "{:?}", adapted[0]);
    }
}

#[test]
fn cnn_lstm_and_lstm_on_the_input_widen() {
    let lstm_first = ModelSpec::new(InputSpec::new(3).with_length(12))
        .push(LayerConfig::Lstm(
            LstmConfig::new(6).with_return_sequences(true),
        ))
        .push(LayerConfig::Gru(GruConfig::new(5)))
        .push(LayerConfig::Dense(widen_layers::DenseConfig::new(4)));
    let adapted = check_preserved(lstm_first, 2, 1e-5);
    assert_eq!(adapted[0], ["lstm"]);
}

#[test]
fn flatten_dense_on_the_input_widens_its_rows_in_both_layouts() {
    for format in [
        widen_layers::DataFormat::ChannelsLast,
        widen_layers::DataFormat::ChannelsFirst,
    ] {
        let spec = ModelSpec::new(InputSpec::new(3).with_length(5).with_data_format(format))
            .push(LayerConfig::Dropout(DropoutConfig { rate: 0.1 }))
            .push(LayerConfig::Flatten)
            .push(LayerConfig::Dense(widen_layers::DenseConfig::new(4)));
        let device = Device::flex();
        let base = Model::new(spec, 1, &device).unwrap();
        let (c, l, b) = (3, 5, 2);
        let x = pseudo_random(b * l * c, 5);
        let to_layout = |v: &[f32], c: usize| -> burn::tensor::Tensor<3> {
            let t = tensor3(v, [b, l, c], &device);
            match format {
                widen_layers::DataFormat::ChannelsLast => t,
                widen_layers::DataFormat::ChannelsFirst => t.swap_dims(1, 2),
            }
        };
        let want = values(base.forward(to_layout(&x, c)).unwrap());
        let wide = expand(&base, &ExpandRequest::new(5, Strategy::Zero)).unwrap();
        let noise = pseudo_random(b * l * 5, 3);
        let xw = widen_data(&x, b, l, c, 5, &[0, 1, 2], |i| noise[i] * SCALE);
        let got = values(wide.model.forward(to_layout(&xw, 5)).unwrap());
        assert!(max_abs_diff(&want, &got) <= 1e-5, "{format:?}");
        assert_eq!(wide.adapted_layers, ["dense"]);
    }
}

#[test]
fn readers_without_a_kernel_get_an_adapter_on_their_edge() {
    // An identity shortcut on the raw input (`x + conv(x)`), a softmax over channels and a
    // LayerNormalization reading the input: none can take more channels, so each edge gets a
    // 1×1 adapter widened by the strategy, and the function is kept.
    let mut spec = ModelSpec::new(InputSpec::new(3).with_length(8));
    let input = spec.input_name.clone();
    let c = spec.add(
        &[&input],
        LayerConfig::Conv1d(Conv1dConfig::new(3, 3).with_padding(PaddingMode::Same)),
    );
    let sum = spec.add(&[&input, &c], LayerConfig::Add(MergeConfig {}));
    let soft = spec.add(&[&input], LayerConfig::Activation(Activation::Softmax));
    let norm = spec.add(
        &[&input],
        LayerConfig::LayerNorm(widen_layers::LayerNormConfig::default()),
    );
    let cat = spec.add(
        &[&sum, &soft, &norm],
        LayerConfig::Concatenate(ConcatenateConfig { axis: -1 }),
    );
    let g = spec.add(&[&cat], LayerConfig::GlobalAvgPool1d);
    spec.add(&[&g], LayerConfig::Dense(widen_layers::DenseConfig::new(2)));
    let adapted = check_preserved(spec.clone(), 2, 1e-5);
    assert_eq!(
        adapted[0],
        ["widen_adapter", "conv1d"],
        "one adapter for the input node, shared by its three readers"
    );
    let model = Model::new(spec, 0, &Device::flex()).unwrap();
    let wide = expand(&model, &ExpandRequest::new(5, Strategy::Zero)).unwrap();
    let consumers: Vec<&str> = wide
        .model
        .input_consumers()
        .iter()
        .map(|&i| wide.model.layers()[i].name())
        .collect();
    assert_eq!(consumers, ["widen_adapter", "conv1d"]);
}

// ---- random DAGs ------------------------------------------------------------------------

/// Builds a random graph from `choices`: every op keeps the length (same padding, stride 1),
/// merges read only nodes that no longer carry the raw input's channels (a merge on those is a
/// documented refusal, tested above), and all loose ends are concatenated before the head.
fn random_dag(c: usize, l: usize, choices: &[u32]) -> ModelSpec {
    let mut spec = ModelSpec::new(InputSpec::new(c).with_length(l));
    // (name, channels, carries the input's channels, used)
    let mut nodes: Vec<(String, usize, bool, bool)> =
        vec![(spec.input_name.clone(), c, true, false)];
    let mut it = choices.iter().copied();
    let mut next = move || it.next().unwrap_or(0) as usize;
    let steps = 2 + next() % 6;
    for _ in 0..steps {
        let a = next() % nodes.len();
        let (_, ac, acarry, _) = nodes[a].clone();
        let (config, ch, carry, reads): (LayerConfig, usize, bool, Vec<usize>) = match next() % 9 {
            0 | 1 => {
                let f = 1 + next() % 5;
                let k = 1 + next() % 4;
                (
                    LayerConfig::Conv1d(
                        Conv1dConfig::new(f, k)
                            .with_padding(PaddingMode::Same)
                            .with_activation(if next() % 2 == 0 {
                                Activation::Relu
                            } else {
                                Activation::Tanh
                            }),
                    ),
                    f,
                    false,
                    vec![a],
                )
            }
            2 => (
                LayerConfig::BatchNorm1d(BatchNormConfig::keras()),
                ac,
                acarry,
                vec![a],
            ),
            3 => (
                LayerConfig::Activation(Activation::Relu),
                ac,
                acarry,
                vec![a],
            ),
            4 => (
                LayerConfig::MaxPool1d(
                    PoolConfig::new(2)
                        .with_strides(1)
                        .with_padding(PaddingMode::Same),
                ),
                ac,
                acarry,
                vec![a],
            ),
            5 => {
                let u = 1 + next() % 4;
                (
                    LayerConfig::Lstm(LstmConfig::new(u).with_return_sequences(true)),
                    u,
                    false,
                    vec![a],
                )
            }
            6 | 7 => {
                // A merge of two nodes that no longer carry the input.
                let free: Vec<usize> = (0..nodes.len()).filter(|&i| !nodes[i].2).collect();
                if free.is_empty() {
                    continue;
                }
                let x = free[next() % free.len()];
                let y = free[next() % free.len()];
                if next() % 2 == 0 && nodes[x].1 == nodes[y].1 {
                    (
                        LayerConfig::Add(MergeConfig {}),
                        nodes[x].1,
                        false,
                        vec![x, y],
                    )
                } else {
                    (
                        LayerConfig::Concatenate(ConcatenateConfig { axis: -1 }),
                        nodes[x].1 + nodes[y].1,
                        false,
                        vec![x, y],
                    )
                }
            }
            _ => (
                LayerConfig::Dropout(DropoutConfig { rate: 0.2 }),
                ac,
                acarry,
                vec![a],
            ),
        };
        let names: Vec<String> = reads.iter().map(|&i| nodes[i].0.clone()).collect();
        for &i in &reads {
            nodes[i].3 = true;
        }
        let name = spec.add(&names, config);
        nodes.push((name, ch, carry, false));
    }
    // Loose ends: give the ones still carrying the input a conv, then concatenate them all.
    let mut ends = Vec::new();
    for (name, _, carry, used) in nodes.clone() {
        if used {
            continue;
        }
        if carry {
            let conv = spec.add(
                &[&name],
                LayerConfig::Conv1d(Conv1dConfig::new(2, 2).with_padding(PaddingMode::Same)),
            );
            ends.push(conv);
        } else {
            ends.push(name);
        }
    }
    let last = if ends.len() > 1 {
        spec.add(
            &ends,
            LayerConfig::Concatenate(ConcatenateConfig { axis: -1 }),
        )
    } else {
        ends[0].clone()
    };
    let g = spec.add(&[&last], LayerConfig::GlobalAvgPool1d);
    spec.add(&[&g], LayerConfig::Dense(widen_layers::DenseConfig::new(3)));
    spec
}

fn shape_of(v: &Value) -> FeatureShape {
    match v {
        Value::Seq(t) => {
            let [_, c, l] = t.dims();
            FeatureShape::Seq {
                channels: c,
                length: Some(l),
            }
        }
        Value::Flat(t) => FeatureShape::Flat {
            features: t.dims()[1],
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_dags_infer_the_forward_shapes_and_widen_preserving(
        c in 1usize..4,
        l in 3usize..9,
        choices in proptest::collection::vec(any::<u32>(), 40),
    ) {
        let spec = random_dag(c, l, &choices);
        let shapes = spec.infer_shapes().unwrap();
        let device = Device::flex();
        let model = Model::new(spec.clone(), 1, &device).unwrap();
        let x = tensor3(&pseudo_random(2 * l * c, 9), [2, l, c], &device);
        let trace = model.forward_trace(x, Mode::Inference).unwrap();
        let traced: Vec<FeatureShape> = trace.iter().skip(1).map(|(_, v)| shape_of(v)).collect();
        prop_assert_eq!(traced, shapes);
        check_preserved(spec, 1 + choices[0] as usize % 3, 1e-5);
    }

    #[test]
    fn any_spec_is_refused_or_built_without_a_panic(
        c in 0usize..4,
        l in 0usize..6,
        choices in proptest::collection::vec(any::<u32>(), 40),
        rewires in proptest::collection::vec((any::<u16>(), any::<u16>()), 0..4),
    ) {
        // A valid random graph, then wiring broken at random: names that do not exist, come
        // later, point at the layer itself, or merges with one input.
        let mut spec = random_dag(c.max(1), l.max(1), &choices);
        spec.input.channels = c;
        spec.input.length = Some(l);
        let n = spec.layers.len();
        for (a, b) in rewires {
            let i = a as usize % n;
            let target = match b % 4 {
                0 => "no_such_layer".to_string(),
                1 => spec.layers[(b as usize) % n].name.clone(),
                2 => spec.layers[i].name.clone(),
                _ => spec.input_name.clone(),
            };
            if b % 5 == 0 {
                spec.layers[i].inbound = vec![target];
            } else {
                spec.layers[i].inbound.push(target);
            }
        }
        let device = Device::flex();
        if let Ok(model) = Model::new(spec, 0, &device) {
            let x = tensor3(&pseudo_random(2 * l.max(1) * c.max(1), 1), [2, l.max(1), c.max(1)], &device);
            let _ = model.forward(x);
        }
    }
}

#[test]
fn diagnostics_cover_every_layer_that_reads_the_input() {
    // A ResNet's input feeds the first conv and the shortcut conv: each channel's kernel norm
    // counts both slices, computed here from the stored weights.
    let spec = zoo::resnet(
        InputSpec::new(3).with_length(16),
        2,
        &ResNetConfig {
            filters: vec![4],
            kernels: [3, 3, 3],
        },
    );
    let device = Device::flex();
    let model = Model::new(spec, 5, &device).unwrap();
    let x = tensor3(&pseudo_random(2 * 16 * 3, 4), [2, 16, 3], &device);
    let got = widen_adapt::channel_contributions(&model, x.clone()).unwrap();
    let readers: Vec<String> = model
        .input_consumers()
        .iter()
        .map(|&i| model.layers()[i].name().to_string())
        .collect();
    assert_eq!(readers.len(), 2);
    for ch in 0..3 {
        let mut sq = 0.0f64;
        for name in &readers {
            let w = crate::common::data_values(model.weight(name, "weight").unwrap());
            let k = w.len() / (4 * 3);
            for o in 0..4 {
                for t in 0..k {
                    sq += (w[(o * 3 + ch) * k + t] as f64).powi(2);
                }
            }
        }
        assert!(
            (got[ch].kernel_norm - sq.sqrt()).abs() < 1e-9,
            "channel {ch}"
        );
    }
    // After `zero`, the new channels feed nothing and the old ones what they fed before.
    let wide = expand(&model, &ExpandRequest::new(5, Strategy::Zero)).unwrap();
    let noise = pseudo_random(2 * 16 * 5, 8);
    let xw = widen_data(
        &pseudo_random(2 * 16 * 3, 4),
        2,
        16,
        3,
        5,
        &[0, 1, 2],
        |i| noise[i] * SCALE,
    );
    let after =
        widen_adapt::channel_contributions(&wide.model, tensor3(&xw, [2, 16, 5], &device)).unwrap();
    for ch in 0..3 {
        assert!((after[ch].contribution - got[ch].contribution).abs() < 1e-6);
    }
    assert_eq!(after[3].contribution, 0.0);
    assert_eq!(after[4].contribution, 0.0);
}

#[test]
fn gradient_norms_name_recurrent_tensors() {
    use burn::optim::GradientsParams;
    let spec = ModelSpec::new(InputSpec::new(2).with_length(6))
        .push(LayerConfig::Lstm(LstmConfig::new(3)))
        .push(LayerConfig::Dense(widen_layers::DenseConfig::new(2)));
    let device = Device::flex().autodiff();
    let model = Model::new(spec, 1, &device).unwrap();
    let x = tensor3(&pseudo_random(2 * 6 * 2, 3), [2, 6, 2], &device);
    let loss = match model.forward_train(x).unwrap() {
        Value::Flat(t) => t.sum(),
        Value::Seq(_) => panic!("flat output expected"),
    };
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let norms = widen_adapt::gradient_norms(&model, &grads).unwrap();
    let lstm: Vec<&str> = norms
        .iter()
        .filter(|n| n.layer == "lstm")
        .map(|n| n.param.as_str())
        .collect();
    assert_eq!(lstm, ["kernel", "recurrent_kernel", "bias"]);
    assert!(
        norms
            .iter()
            .filter(|n| n.layer == "lstm")
            .all(|n| n.norm > 0.0)
    );
}

#[test]
fn a_dropped_constant_channel_is_compensated_exactly() {
    // Conv (valid) and an LSTM both read the input; channel 1 is retired. Where it held a
    // constant, moving its contribution into the biases keeps the function.
    let mut spec = ModelSpec::new(InputSpec::new(3).with_length(10));
    let input = spec.input_name.clone();
    let conv = spec.add(&[&input], LayerConfig::Conv1d(Conv1dConfig::new(4, 3)));
    let lstm = spec.add(&[&input], LayerConfig::Lstm(LstmConfig::new(2)));
    let g = spec.add(&[&conv], LayerConfig::GlobalAvgPool1d);
    let cat = spec.add(
        &[&g, &lstm],
        LayerConfig::Concatenate(ConcatenateConfig { axis: -1 }),
    );
    spec.add(
        &[&cat],
        LayerConfig::Dense(widen_layers::DenseConfig::new(2)),
    );
    let device = Device::flex();
    let base = Model::new(spec, 2, &device).unwrap();
    let (b, l) = (3, 10);
    let mut x = pseudo_random(b * l * 3, 6);
    for row in x.chunks_mut(3) {
        row[1] = 0.7;
    }
    let want = values(base.forward(tensor3(&x, [b, l, 3], &device)).unwrap());
    let mut narrowed = expand(
        &base,
        &ExpandRequest::new(2, Strategy::Zero)
            .with_placement(widen_adapt::Placement::Keep(vec![0, 2])),
    )
    .unwrap();
    let changed =
        widen_adapt::compensate_dropped(&base, &mut narrowed, tensor3(&x, [b, l, 3], &device))
            .unwrap();
    assert_eq!(changed, ["conv1d", "lstm"]);
    let x2: Vec<f32> = x.chunks(3).flat_map(|r| [r[0], r[2]]).collect();
    let got = values(
        narrowed
            .model
            .forward(tensor3(&x2, [b, l, 2], &device))
            .unwrap(),
    );
    assert!(
        max_abs_diff(&want, &got) <= 1e-5,
        "{}",
        max_abs_diff(&want, &got)
    );
    // Without compensation the output moves.
    let plain = expand(
        &base,
        &ExpandRequest::new(2, Strategy::Zero)
            .with_placement(widen_adapt::Placement::Keep(vec![0, 2])),
    )
    .unwrap();
    let moved = values(
        plain
            .model
            .forward(tensor3(&x2, [b, l, 2], &device))
            .unwrap(),
    );
    assert!(max_abs_diff(&want, &moved) > 1e-3);
}
