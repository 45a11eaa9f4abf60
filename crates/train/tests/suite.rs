//! widen-train: recipes, determinism, resumption, the divergence guard and evaluation, on
//! small models and data whose answers are known.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use burn::tensor::Device;
use widen_adapt::{ExpandRequest, Strategy, expand};
use widen_data::Dataset;
use widen_layers::{
    Activation, Conv1dConfig, DenseConfig, InputSpec, LayerConfig, Model, ModelSpec, PaddingMode,
};
use widen_train::{Expanded, FitConfig, Recipe, TrainError, evaluate, fit};

/// Two classes told apart by channel 0's sign; channel 1 (the new one) also carries it, at
/// another scale, so a widened model can use it.
fn data(cases: usize, channels: usize, seed: u64) -> Dataset {
    let mut rng = widen_init::HostRng::new(seed);
    let length = 8;
    let mut series = Vec::with_capacity(cases * channels * length);
    let mut labels = Vec::with_capacity(cases);
    for n in 0..cases {
        let class = n % 2;
        let sign = if class == 0 { -1.0 } else { 1.0 };
        for c in 0..channels {
            for _ in 0..length {
                let noise = rng.uniform() as f32 - 0.5;
                let scale = if c == 0 { 1.0 } else { 10.0 };
                series.push(scale * (0.4 * sign + noise));
            }
        }
        labels.push(class);
    }
    Dataset::new(
        series,
        cases,
        channels,
        length,
        labels,
        vec!["neg".into(), "pos".into()],
    )
    .unwrap()
}

fn base(device: &Device) -> Model {
    let spec = ModelSpec::new(InputSpec::new(1).with_length(8))
        .push(LayerConfig::Conv1d(
            Conv1dConfig::new(4, 3)
                .with_padding(PaddingMode::Same)
                .with_activation(Activation::Relu),
        ))
        .push(LayerConfig::GlobalAvgPool1d)
        .push(LayerConfig::Dense(DenseConfig::new(2)));
    Model::new(spec, 5, device).unwrap()
}

fn widened(device: &Device) -> (Model, Expanded) {
    let e = expand(&base(device), &ExpandRequest::new(2, Strategy::Zero)).unwrap();
    let record = Expanded {
        map: e.map.clone(),
        strategy: e.strategy.clone(),
        adapted_layers: e.adapted_layers.clone(),
        standardized: false,
    };
    (e.model, record)
}

fn config(recipe: Recipe, epochs: usize) -> FitConfig {
    FitConfig {
        recipe,
        epochs,
        batch_size: 8,
        learning_rate: 1e-2,
        seed: 3,
        patience: None,
        ..FitConfig::default()
    }
}

fn bits(model: &Model) -> Vec<u32> {
    model
        .weight_infos()
        .iter()
        .flat_map(|w| {
            model
                .weight(&w.layer, &w.param)
                .unwrap()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap()
        })
        .map(f32::to_bits)
        .collect()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("widen-train-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let device = Device::flex().autodiff();
    let (train, val) = (data(32, 2, 1), data(16, 2, 2));
    let run = || {
        let (m, e) = widened(&device);
        fit(
            m,
            Some(&e),
            &train,
            &val,
            &config(Recipe::Plain, 3),
            None,
            false,
            |_, _| true,
        )
        .unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(bits(&a.model), bits(&b.model));
    assert_eq!(a.history, b.history);
}

#[test]
fn a_resumed_run_ends_with_an_uninterrupted_runs_weights() {
    let device = Device::flex().autodiff();
    let (train, val) = (data(32, 2, 1), data(16, 2, 2));
    let cfg = config(Recipe::Staged, 4);
    let (m, e) = widened(&device);
    let whole = fit(m, Some(&e), &train, &val, &cfg, None, false, |_, _| true).unwrap();

    let dir = scratch("resume");
    let state = dir.join(".out.widen-fit");
    let (m, e) = widened(&device);
    // Stop after epoch 2, as a kill after its state was saved would.
    let first = fit(
        m,
        Some(&e),
        &train,
        &val,
        &cfg,
        Some(&state),
        false,
        |r, _| r.epoch < 2,
    )
    .unwrap();
    assert_eq!(first.history.epochs.len(), 2);
    // The resumed run starts from the saved state, whatever model it is handed.
    let (m, e) = widened(&device);
    let resumed = fit(
        m,
        Some(&e),
        &train,
        &val,
        &cfg,
        Some(&state),
        true,
        |_, _| true,
    )
    .unwrap();
    assert_eq!(resumed.history.epochs.len(), 4);
    assert_eq!(bits(&resumed.model), bits(&whole.model));
    assert_eq!(resumed.history, whole.history);
}

#[test]
fn new_only_moves_only_the_new_slices() {
    let device = Device::flex().autodiff();
    let (train, val) = (data(32, 2, 1), data(16, 2, 2));
    let (m, e) = widened(&device);
    let before = m
        .weight("conv1d", "weight")
        .unwrap()
        .try_to_vec::<f32>()
        .unwrap();
    let dense_before = bits(&m)[before.len()..].to_vec();
    let out = fit(
        m,
        Some(&e),
        &train,
        &val,
        &config(Recipe::NewOnly, 2),
        None,
        false,
        |_, _| true,
    )
    .unwrap();
    let after = out
        .model
        .weight("conv1d", "weight")
        .unwrap()
        .try_to_vec::<f32>()
        .unwrap();
    // [filters 4, channels 2, k 3]: channel 0 is old, channel 1 new.
    let mut moved = 0;
    for f in 0..4 {
        for t in 0..3 {
            let old = f * 6 + t;
            assert_eq!(
                after[old].to_bits(),
                before[old].to_bits(),
                "an old slice moved"
            );
            moved += usize::from(after[f * 6 + 3 + t] != before[f * 6 + 3 + t]);
        }
    }
    if out.history.best_epoch > 0 {
        assert!(moved > 0, "the new slices must train");
    }
    // The conv bias and the Dense head are frozen too.
    let all_after = bits(&out.model);
    assert_eq!(all_after[before.len()..], dense_before[..]);
}

#[test]
fn the_staged_recipe_beats_or_keeps_the_start_and_records_its_phases() {
    let device = Device::flex().autodiff();
    let (train, val) = (data(48, 2, 1), data(24, 2, 2));
    let (m, e) = widened(&device);
    let out = fit(
        m,
        Some(&e),
        &train,
        &val,
        &config(Recipe::Staged, 8),
        None,
        false,
        |_, _| true,
    )
    .unwrap();
    let h = &out.history;
    assert!(h.best_val_accuracy >= h.start_val_accuracy);
    assert_eq!(h.epochs[0].phase, "new-only");
    assert_eq!(h.epochs.last().unwrap().phase, "all");
    assert!(h.epochs.last().unwrap().learning_rate < h.epochs[0].learning_rate);
    // The kept model scores what the history says.
    let score = evaluate(&out.model, &val, &Device::flex()).unwrap();
    assert!((score.accuracy - h.best_val_accuracy).abs() < 1e-9);
    // The standardisation the recipe added sits in front.
    assert!(out.model.layer("widen_standardize").is_some());
}

#[test]
fn refusals_are_typed() {
    let device = Device::flex().autodiff();
    let (train, val) = (data(16, 2, 1), data(8, 2, 2));
    let (m, e) = widened(&device);
    // A diverging learning rate stops with the step named.
    let mut cfg = config(Recipe::Plain, 3);
    cfg.learning_rate = 1e30;
    match fit(m, Some(&e), &train, &val, &cfg, None, false, |_, _| true) {
        Err(TrainError::Diverged { step, .. }) => assert!(step >= 1),
        Err(other) => panic!("expected Diverged, got {other}"),
        Ok(_) => panic!("a 1e30 learning rate cannot train"),
    }
    // new-only needs an expansion record.
    let (m, _) = widened(&device);
    match fit(
        m,
        None,
        &train,
        &val,
        &config(Recipe::NewOnly, 1),
        None,
        false,
        |_, _| true,
    ) {
        Err(TrainError::Config(msg)) => assert!(msg.contains("--recipe plain"), "{msg}"),
        other => panic!("expected Config, got {other:?}"),
    }
    // The wrong channel count is named.
    let (m, e) = widened(&device);
    let narrow = data(16, 1, 1);
    match fit(
        m,
        Some(&e),
        &narrow,
        &val,
        &config(Recipe::Plain, 1),
        None,
        false,
        |_, _| true,
    ) {
        Err(TrainError::Mismatch(msg)) => assert!(msg.contains("1 channels"), "{msg}"),
        other => panic!("expected Mismatch, got {other:?}"),
    }
    // Unlabelled data is refused for training.
    let (m, e) = widened(&device);
    let mut unlabelled = data(16, 2, 1);
    unlabelled.labels.clear();
    assert!(matches!(
        fit(
            m,
            Some(&e),
            &unlabelled,
            &val,
            &config(Recipe::Plain, 1),
            None,
            false,
            |_, _| true
        ),
        Err(TrainError::Data(_))
    ));
    // Bad settings.
    let (m, e) = widened(&device);
    let mut cfg = config(Recipe::Plain, 0);
    cfg.epochs = 0;
    assert!(matches!(
        fit(m, Some(&e), &train, &val, &cfg, None, false, |_, _| true),
        Err(TrainError::Config(_))
    ));
}

#[test]
fn evaluation_counts_a_known_confusion() {
    // A model whose Dense maps channel 0's mean straight to the two classes.
    let device = Device::flex();
    let spec = ModelSpec::new(InputSpec::new(1).with_length(8))
        .push(LayerConfig::GlobalAvgPool1d)
        .push(LayerConfig::Dense(DenseConfig::new(2)));
    let mut model = Model::new(spec, 0, &device).unwrap();
    model
        .set_weight(
            "dense",
            "weight",
            burn::tensor::TensorData::new(vec![-1.0f32, 1.0], [1, 2]),
        )
        .unwrap();
    model
        .set_weight(
            "dense",
            "bias",
            burn::tensor::TensorData::new(vec![0.0f32, 0.0], [2]),
        )
        .unwrap();
    let val = data(20, 1, 4);
    let e = evaluate(&model, &val, &device).unwrap();
    // Count what the sign rule predicts from the data itself.
    let mut confusion = vec![vec![0usize; 2]; 2];
    for n in 0..val.cases {
        let mean: f32 = val.case(n).unwrap().iter().sum::<f32>() / 8.0;
        confusion[val.labels[n]][usize::from(mean > 0.0)] += 1;
    }
    assert_eq!(e.confusion, confusion);
    let right = confusion[0][0] + confusion[1][1];
    assert!((e.accuracy - right as f64 / 20.0).abs() < 1e-12);
}
