//! Backend comparison: the same seeded models on every backend compiled in, compared layer by
//! layer and gradient by gradient with ndarray, and timed. Prints Markdown; exits non-zero where a
//! difference exceeds its tolerance (see `tolerance.rs` and docs/BACKENDS.md).
//!
//! ```sh
//! cargo xtask compare-backends                      # builds this with `--features wgpu`
//! cargo run -p widen --features wgpu --example compare_backends -- --runs 9 --warmup 3
//! ```
//!
//! Models: the seed's Ex1 (`keras_ex1(8, 50)`) and Ex3 (`keras_ex3(32, 50)`), and Ex1 widened to
//! 32 channels by each expansion strategy. Weights are drawn on the host from one seed, so every
//! backend starts from bit-identical parameters. Per model and backend: an inference forward, a
//! training-mode forward with one backward (loss: mean of squared outputs), and the median time
//! of an inference forward and of a train step (forward, backward, Adam step) after warm-up, the
//! device synchronised before each timer stops.

mod gradients;
mod tolerance;

use std::error::Error;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use widen::adapt::{ExpandRequest, ProjectionInit, Strategy, expand};
use widen::init::Initializer;
use widen::layers::{Mode, Sequential, Value, keras_ex1, keras_ex3};
use widen::{BackendKind, describe_device};

use gradients::gradients;
use tolerance::{Diff, Quantity};

type Res<T> = Result<T, Box<dyn Error>>;

/// Seed of every model's parameters and of the expansions' random slices.
const SEED: u64 = 2026;
/// The backend every other is compared with.
const REFERENCE: BackendKind = BackendKind::Ndarray;
/// Set to skip wgpu on a machine without a Vulkan, Metal or DX12 adapter.
const SKIP_WGPU: &str = "WIDEN_SKIP_WGPU";

/// One model to compare.
struct Case {
    name: &'static str,
    /// `[batch, length, channels]`, Keras layout.
    input: [usize; 3],
    strategy: Option<Strategy>,
}

fn cases() -> Vec<Case> {
    let widened = |name, strategy| Case {
        name,
        input: [10, 50, 32],
        strategy: Some(strategy),
    };
    vec![
        Case {
            name: "ex1",
            input: [10, 50, 8],
            strategy: None,
        },
        Case {
            name: "ex3",
            input: [10, 50, 32],
            strategy: None,
        },
        widened("ex1+zero", Strategy::Zero),
        widened("ex1+repeat", Strategy::RepeatRescale),
        widened(
            "ex1+fan",
            Strategy::FanScaled {
                initializer: Initializer::he_normal(),
                rescale_old: true,
            },
        ),
        widened(
            "ex1+projection",
            Strategy::Projection {
                init: ProjectionInit::Identity,
            },
        ),
    ]
}

impl Case {
    fn build(&self, device: &Device) -> Res<Sequential> {
        if self.name == "ex3" {
            return Ok(Sequential::new(keras_ex3(32, 50), SEED, device)?);
        }
        let ex1 = Sequential::new(keras_ex1(8, 50), SEED, device)?;
        Ok(match &self.strategy {
            None => ex1,
            Some(s) => {
                let request = ExpandRequest::new(32, s.clone()).with_seed(SEED);
                expand(&ex1, &request)?.model
            }
        })
    }

    fn x(&self, device: &Device) -> Tensor<3> {
        let n = self.input.iter().product();
        let seed = self.input[2] as u64;
        Tensor::from_data(TensorData::new(pseudo_random(n, seed), self.input), device)
    }
}

/// Deterministic pseudo-random values in [-1, 1) (splitmix64).
fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

fn host(v: &Value) -> Res<Vec<f32>> {
    let data = match v {
        Value::Seq(t) => t.to_data(),
        Value::Flat(t) => t.to_data(),
    };
    data.convert::<f32>()
        .try_to_vec::<f32>()
        .map_err(|e| format!("tensor unreadable: {e:?}").into())
}

/// Named tensors of one run: layer outputs or parameter gradients.
type Named = Vec<(String, Vec<f32>)>;

/// What one backend produced for one model.
struct Run {
    inference: Named,
    training: Named,
    gradients: Named,
    forward_ms: f64,
    step_ms: f64,
}

fn trace(model: &Sequential, x: Tensor<3>, mode: Mode) -> Res<(Named, Value)> {
    let trace = model.forward_trace(x, mode)?;
    let last = trace
        .last()
        .map(|(_, v)| v.clone())
        .ok_or("the model has no layers")?;
    let named = trace
        .iter()
        .skip(1) // the model input, identical everywhere
        .map(|(name, v)| Ok((name.clone(), host(v)?)))
        .collect::<Res<Named>>()?;
    Ok((named, last))
}

fn sync(device: &Device) -> Res<()> {
    device
        .sync()
        .map_err(|e| format!("device sync failed: {e:?}").into())
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

fn run(case: &Case, device: &Device, autodiff: &Device, opts: &Options) -> Res<Run> {
    // Agreement.
    let model = case.build(device)?;
    let (inference, _) = trace(&model, case.x(device), Mode::Inference)?;
    let model = case.build(autodiff)?;
    let (training, last) = trace(&model, case.x(autodiff), Mode::Training)?;
    let y = last.into_flat().ok_or("the model output is not flat")?;
    let grads = (y.clone() * y).mean().backward();
    let gradients = gradients(&model, &grads)?
        .into_iter()
        .map(|(name, g)| Ok((name.clone(), g.ok_or(format!("{name}: no gradient"))?)))
        .collect::<Res<Named>>()?;

    // Timings.
    let model = case.build(device)?;
    let x = case.x(device);
    let mut forward = Vec::new();
    for i in 0..opts.warmup + opts.runs {
        sync(device)?;
        let start = Instant::now();
        let _y = model.forward(x.clone())?;
        sync(device)?;
        if i >= opts.warmup {
            forward.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut model = case.build(autodiff)?;
    let x = case.x(autodiff);
    let mut optim = AdamConfig::new().init();
    let mut step = Vec::new();
    for i in 0..opts.warmup + opts.runs {
        sync(autodiff)?;
        let start = Instant::now();
        let y = model
            .forward_train(x.clone())?
            .into_flat()
            .ok_or("the model output is not flat")?;
        let grads = GradientsParams::from_grads((y.clone() * y).mean().backward(), &model);
        model = optim.step(1e-3, model, grads);
        sync(autodiff)?;
        if i >= opts.warmup {
            step.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(Run {
        inference,
        training,
        gradients,
        forward_ms: median_ms(forward),
        step_ms: median_ms(step),
    })
}

struct Options {
    runs: usize,
    warmup: usize,
}

fn options() -> Res<Options> {
    let mut opts = Options { runs: 9, warmup: 3 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |what: &str| -> Res<usize> {
            let v = args.next().ok_or(format!("{what} needs a number"))?;
            Ok(v.parse()
                .map_err(|_| format!("{what}: `{v}` is not a number"))?)
        };
        match arg.as_str() {
            "--runs" => opts.runs = number("--runs")?.max(1),
            "--warmup" => opts.warmup = number("--warmup")?,
            "-h" | "--help" => {
                println!("usage: compare_backends [--runs N (9)] [--warmup N (3)]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    Ok(opts)
}

/// One row of the agreement table: a tensor, and per compared backend its difference.
struct Row {
    case: &'static str,
    quantity: Quantity,
    tensor: String,
    diffs: Vec<Diff>,
}

fn compare(reference: &Named, other: &Named) -> Res<Vec<(String, Diff)>> {
    if reference.len() != other.len() {
        return Err("backends produced different numbers of tensors".into());
    }
    Ok(reference
        .iter()
        .zip(other)
        .map(|((name, r), (_, o))| (name.clone(), Diff::between(o, r)))
        .collect())
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("compare_backends: {e}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> Res<bool> {
    let opts = options()?;
    let skip_wgpu = std::env::var(SKIP_WGPU).is_ok_and(|v| !v.is_empty() && v != "0");
    let mut kinds = BackendKind::compiled();
    if skip_wgpu && kinds.contains(&BackendKind::Wgpu) {
        eprintln!("note: {SKIP_WGPU} is set: wgpu is not compared");
        kinds.retain(|k| *k != BackendKind::Wgpu);
    }
    if !kinds.contains(&REFERENCE) {
        return Err(format!("the reference backend `{REFERENCE}` is not compiled in").into());
    }
    // The reference first, then the others in their usual order.
    kinds.sort_by_key(|k| *k != REFERENCE);

    let mut out = String::new();
    writeln!(out, "## Backend comparison\n")?;
    let threads = std::thread::available_parallelism().map_or(0, |n| n.get());
    writeln!(
        out,
        "Seed {SEED}; {threads} CPU threads; timings: median of {} runs after {} warm-up, \
         device synchronised.\n",
        opts.runs, opts.warmup
    )?;
    writeln!(out, "| backend | device |\n|---|---|")?;
    let mut devices = Vec::new();
    for kind in &kinds {
        let device = kind.device()?;
        let autodiff = kind.autodiff_device()?;
        writeln!(out, "| {kind} | `{}` |", describe_device(&device))?;
        devices.push((*kind, device, autodiff));
    }

    let cases = cases();
    // runs[backend][case]
    let mut runs: Vec<Vec<Run>> = Vec::new();
    for (kind, device, autodiff) in &devices {
        eprintln!("running {} models on {kind}...", cases.len());
        let mut per_case = Vec::new();
        for case in &cases {
            per_case.push(
                run(case, device, autodiff, &opts)
                    .map_err(|e| format!("{} on {kind}: {e}", case.name))?,
            );
        }
        runs.push(per_case);
    }

    let others: Vec<BackendKind> = kinds.iter().copied().skip(1).collect();
    let mut rows: Vec<Row> = Vec::new();
    for (c, case) in cases.iter().enumerate() {
        let reference = &runs[0][c];
        for (quantity, pick) in [
            (
                Quantity::Inference,
                (|r: &Run| &r.inference) as fn(&Run) -> &Named,
            ),
            (Quantity::Training, |r: &Run| &r.training),
            (Quantity::Gradient, |r: &Run| &r.gradients),
        ] {
            let per_backend = runs[1..]
                .iter()
                .map(|r| compare(pick(reference), pick(&r[c])))
                .collect::<Res<Vec<_>>>()?;
            for (t, (tensor, _)) in pick(reference).iter().enumerate() {
                rows.push(Row {
                    case: case.name,
                    quantity,
                    tensor: tensor.clone(),
                    diffs: per_backend.iter().map(|d| d[t].1).collect(),
                });
            }
        }
    }

    let mut ok = true;
    writeln!(
        out,
        "\n### Agreement with {REFERENCE}, per layer output and per parameter gradient\n"
    )?;
    write!(out, "| model | pass | tensor |")?;
    for k in &others {
        write!(out, " {k} max abs | {k} max rel |")?;
    }
    writeln!(out, " tolerance (rel) | ok |")?;
    write!(out, "|---|---|---|")?;
    for _ in &others {
        write!(out, "---:|---:|")?;
    }
    writeln!(out, "---:|---|")?;
    for row in &rows {
        let pass = row.diffs.iter().all(|d| d.within(row.quantity));
        ok &= pass;
        write!(
            out,
            "| {} | {} | {} |",
            row.case,
            row.quantity.name(),
            row.tensor
        )?;
        for d in &row.diffs {
            write!(out, " {:.1e} | {:.1e} |", d.max_abs, d.max_rel)?;
        }
        writeln!(
            out,
            " {:.0e} | {} |",
            row.quantity.tolerance(),
            if pass { "yes" } else { "**NO**" }
        )?;
    }

    writeln!(out, "\n### Worst relative difference per pass\n")?;
    write!(out, "| pass |")?;
    for k in &others {
        write!(out, " {k} |")?;
    }
    writeln!(out, " tolerance |")?;
    write!(out, "|---|")?;
    for _ in &others {
        write!(out, "---:|")?;
    }
    writeln!(out, "---:|")?;
    for quantity in [Quantity::Inference, Quantity::Training, Quantity::Gradient] {
        write!(out, "| {} |", quantity.name())?;
        for b in 0..others.len() {
            let worst = rows
                .iter()
                .filter(|r| r.quantity == quantity)
                .map(|r| r.diffs[b].max_rel)
                .fold(0.0, f64::max);
            write!(out, " {worst:.1e} |")?;
        }
        writeln!(out, " {:.0e} |", quantity.tolerance())?;
    }

    writeln!(
        out,
        "\n### Timings (ms, median): inference forward / train step (forward, backward, Adam)\n"
    )?;
    write!(out, "| model | input |")?;
    for k in &kinds {
        write!(out, " {k} forward | {k} step |")?;
    }
    writeln!(out)?;
    write!(out, "|---|---|")?;
    for _ in &kinds {
        write!(out, "---:|---:|")?;
    }
    writeln!(out)?;
    for (c, case) in cases.iter().enumerate() {
        let [b, l, ch] = case.input;
        write!(out, "| {} | [{b}, {l}, {ch}] |", case.name)?;
        for r in &runs {
            write!(out, " {:.2} | {:.2} |", r[c].forward_ms, r[c].step_ms)?;
        }
        writeln!(out)?;
    }

    if others.is_empty() {
        writeln!(
            out,
            "\nOnly {REFERENCE} is compiled in: nothing to compare."
        )?;
    }
    writeln!(
        out,
        "\nResult: {}",
        if ok {
            "every difference within its tolerance"
        } else {
            "FAILED: differences above tolerance (marked **NO**)"
        }
    )?;
    print!("{out}");
    Ok(ok)
}
