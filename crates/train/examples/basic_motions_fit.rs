//! The user's road on real data, measured: BasicMotions (UEA), a small FCN trained on the
//! accelerometer (3 channels), widened to accelerometer + gyroscope (6) with what
//! `widen expand --strategy auto` chooses, fine-tuned with `widen fit`'s defaults (the staged
//! recipe), against the same FCN trained from scratch on all six channels. Per seed: test
//! accuracy of the base, the widened-and-fitted model and the scratch model, the worst
//! validation dip below the start, and wall times.
//!
//! `cargo run --release -p widen-train --example basic_motions_fit -- [SEEDS]` (default 5).

use std::time::Instant;

use burn::tensor::Device;
use widen_adapt::{ExpandRequest, Placement, channel_scales, expand, recommend, standardize};
use widen_data::{Dataset, basic_motions};
use widen_layers::zoo::{FcnConfig, fcn};
use widen_layers::{DataFormat, InputSpec, Model};
use widen_train::{Expanded, FitConfig, Recipe, batch, evaluate, fit};

fn fcn_on(channels: usize, length: usize, classes: usize) -> widen_layers::ModelSpec {
    fcn(
        InputSpec::new(channels).with_length(length),
        classes,
        &FcnConfig {
            filters: [16, 32, 16],
            kernels: [8, 5, 3],
        },
    )
}

fn run(seed: u64) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let (train, test) = basic_motions().map_err(|e| err(&e))?;
    let classes = train.num_classes();
    let accel = [0, 1, 2];
    let old_train = train.select_channels(&accel).map_err(|e| err(&e))?;
    let old_test = test.select_channels(&accel).map_err(|e| err(&e))?;
    let (fit_train, fit_val) = train.split_stratified(0.2, seed).map_err(|e| err(&e))?;
    let old_val = fit_val.select_channels(&accel).map_err(|e| err(&e))?;
    let old_fit = fit_train.select_channels(&accel).map_err(|e| err(&e))?;
    // Base and scratch models get a generous budget: they are the references, trained the
    // way a user would train a model from scratch (plain, early stopping on validation).
    let plain = FitConfig {
        recipe: Recipe::Plain,
        seed,
        epochs: 300,
        patience: Some(60),
        learning_rate: 3e-3,
        ..FitConfig::default()
    };

    let t0 = Instant::now();
    let base = Model::new(fcn_on(3, train.length, classes), seed, &ad).map_err(|e| err(&e))?;
    let base = fit(
        base,
        None,
        &old_fit,
        &old_val,
        &plain,
        None,
        false,
        |_, _| true,
    )
    .map_err(|e| err(&e))?
    .model;
    let base_test = evaluate(&base, &old_test, &device).map_err(|e| err(&e))?;
    let base_time = t0.elapsed().as_secs_f64();

    // `expand --strategy auto` on a sample of the widened data.
    let t1 = Instant::now();
    let map = Placement::Append.resolve(3, 6).map_err(|e| err(&e))?;
    let scales = channel_scales(&fit_train.series, 6, fit_train.length, &map);
    let rec = recommend(&base, &scales).map_err(|e| err(&e))?;
    let wide = expand(&base, &ExpandRequest::new(6, rec.strategy.clone())).map_err(|e| err(&e))?;
    let all: Vec<usize> = (0..fit_train.cases).collect();
    let sample = batch(&fit_train, &all, DataFormat::ChannelsLast, &device);
    let model = if rec.standardize {
        standardize(&wide.model, &sample, &map.new_positions()).map_err(|e| err(&e))?
    } else {
        wide.model
    };
    let record = Expanded {
        map: wide.map,
        strategy: wide.strategy,
        adapted_layers: wide.adapted_layers,
        standardized: rec.standardize,
    };
    let dir = std::env::temp_dir().join(format!("widen-bm-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    model
        .save(&dir, widen_layers::WeightFormat::Safetensors)
        .map_err(|e| err(&e))?;
    let model = Model::load(&dir, &ad).map_err(|e| err(&e))?;
    let _ = std::fs::remove_dir_all(&dir);
    let mut defaults = FitConfig {
        seed,
        ..FitConfig::default()
    };
    // Overrides for exploring the defaults (the numbers in the docs use none).
    if let Some(v) = env_f64("WIDEN_EPOCHS") {
        defaults.epochs = v as usize;
    }
    if let Some(v) = env_f64("WIDEN_LR") {
        defaults.learning_rate = v;
    }
    if let Some(v) = env_f64("WIDEN_FT") {
        defaults.finetune_factor = v;
    }
    if let Some(v) = env_f64("WIDEN_PATIENCE") {
        defaults.patience = Some(v as usize);
    }
    let out = fit(
        model,
        Some(&record),
        &fit_train,
        &fit_val,
        &defaults,
        None,
        false,
        |_, _| true,
    )
    .map_err(|e| err(&e))?;
    let wide_test = evaluate(&out.model, &test, &device).map_err(|e| err(&e))?;
    let wide_time = t1.elapsed().as_secs_f64();

    let t2 = Instant::now();
    let scratch = Model::new(fcn_on(6, train.length, classes), seed, &ad).map_err(|e| err(&e))?;
    let scratch = fit(
        scratch,
        None,
        &fit_train,
        &fit_val,
        &plain,
        None,
        false,
        |_, _| true,
    )
    .map_err(|e| err(&e))?
    .model;
    let scratch_test = evaluate(&scratch, &test, &device).map_err(|e| err(&e))?;
    let scratch_time = t2.elapsed().as_secs_f64();
    let h = &out.history;
    println!(
        "| {seed} | {:.3} | {:.3} | {:.3} | {:.3} | {} | {:.1} | {:.1} | {:.1} |",
        base_test.accuracy,
        wide_test.accuracy,
        scratch_test.accuracy,
        h.worst_dip,
        h.best_epoch,
        base_time,
        wide_time,
        scratch_time
    );
    let _: &Dataset = &old_train;
    Ok(())
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok()?.parse().ok()
}

/// Wall time of `expand --strategy auto` + `fit` (defaults, every epoch run: no early stop) on
/// 100 cases of length 224 with 6 channels, 4 classes.
fn time_fit() -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let (cases, length, classes) = (100, 224, 4);
    let mut rng = widen_init::HostRng::new(9);
    let mut series = Vec::with_capacity(cases * 6 * length);
    let mut labels = Vec::with_capacity(cases);
    for n in 0..cases {
        let class = n % classes;
        for c in 0..6 {
            for t in 0..length {
                let signal = ((t as f64 * (class + 1) as f64 * 0.05) + c as f64).sin();
                series.push((signal + rng.uniform() - 0.5) as f32 * if c >= 3 { 8.0 } else { 1.0 });
            }
        }
        labels.push(class);
    }
    let names = (0..classes).map(|c| c.to_string()).collect();
    let data = Dataset::new(series, cases, 6, length, labels, names).map_err(|e| err(&e))?;
    let (train, val) = data.split_stratified(0.2, 1).map_err(|e| err(&e))?;
    let device = Device::flex();
    let ad = device.clone().autodiff();
    let base = Model::new(fcn_on(3, length, classes), 1, &device).map_err(|e| err(&e))?;
    let t = Instant::now();
    let map = Placement::Append.resolve(3, 6).map_err(|e| err(&e))?;
    let rec =
        recommend(&base, &channel_scales(&train.series, 6, length, &map)).map_err(|e| err(&e))?;
    let wide = expand(&base, &ExpandRequest::new(6, rec.strategy.clone())).map_err(|e| err(&e))?;
    let dir = std::env::temp_dir().join(format!("widen-bm-time-{}", std::process::id()));
    wide.model
        .save(&dir, widen_layers::WeightFormat::Safetensors)
        .map_err(|e| err(&e))?;
    let model = Model::load(&dir, &ad).map_err(|e| err(&e))?;
    let _ = std::fs::remove_dir_all(&dir);
    let record = Expanded {
        map: wide.map,
        strategy: wide.strategy,
        adapted_layers: wide.adapted_layers,
        standardized: false,
    };
    let config = FitConfig {
        patience: None,
        ..FitConfig::default()
    };
    let out = fit(
        model,
        Some(&record),
        &train,
        &val,
        &config,
        None,
        false,
        |_, _| true,
    )
    .map_err(|e| err(&e))?;
    println!(
        "expand auto + fit (defaults, all {} epochs, {} steps) on {} + {} cases × 224 steps × 6 channels: {:.1} s",
        out.history.epochs.len(),
        out.history.steps,
        train.cases,
        val.cases,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("time") {
        if let Err(e) = time_fit() {
            eprintln!("{e}");
            std::process::exit(1);
        }
        return;
    }
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!(
        "| seed | base test acc (3 ch) | auto + fit test acc (6 ch) | scratch test acc (6 ch) | \
         worst val dip below start | best epoch | base s | widen+fit s | scratch s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for seed in 1..=seeds {
        if let Err(e) = run(seed) {
            eprintln!("seed {seed}: {e}");
            std::process::exit(1);
        }
    }
}
