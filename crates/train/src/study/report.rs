//! Study outputs: `study.md` (tables, paired comparisons, and the list of differences whose
//! interval excludes zero), `study.json` (every number; identical for the same seeds),
//! `timing.json` (wall times, which do not reproduce), and the figure as `curves.svg` (and
//! `curves.png` with the `png` feature).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{
    ArchResult, PAIRED_METRICS, Paired, RECOMMENDED, Reached, SCRATCH, ScenarioResult, Stat,
    StudyError, StudyResult, svg,
};

/// Paths of the files a study wrote.
#[derive(Debug, Clone)]
pub struct StudyFiles {
    /// `study.md`.
    pub markdown: PathBuf,
    /// `study.json`.
    pub json: PathBuf,
    /// `timing.json`.
    pub timing: PathBuf,
    /// `curves.svg`.
    pub figure: PathBuf,
    /// `curves.png` (with the `png` feature).
    pub png: Option<PathBuf>,
}

/// The names of every file [`write_outputs`] may write, for callers that check them first.
pub const OUTPUT_FILES: [&str; 5] = [
    "study.md",
    "study.json",
    "timing.json",
    "curves.svg",
    "curves.png",
];

/// `mean [low, high]`, or the mean alone for one seed.
fn ci(s: &Stat, d: usize) -> String {
    match s.ci95 {
        Some([lo, hi]) => format!("{:.d$} [{lo:.d$}, {hi:.d$}]", s.mean),
        None => format!("{:.d$}", s.mean),
    }
}

fn reached(r: &Reached) -> String {
    if r.reached == 0 {
        return format!("never (0/{})", r.of);
    }
    format!("{:.0} ({}/{})", r.steps.mean, r.reached, r.of)
}

/// A signed difference with its interval, starred when the interval excludes zero.
fn diff(p: &Paired) -> String {
    let s = &p.difference;
    let star = if s.excludes_zero() { " *" } else { "" };
    match s.ci95 {
        Some([lo, hi]) => format!("{:+.3} [{lo:+.3}, {hi:+.3}]{star}", s.mean),
        None => format!("{:+.3}", s.mean),
    }
}

fn find<'a>(paired: &'a [Paired], against: &str, metric: &str) -> Option<&'a Paired> {
    paired
        .iter()
        .find(|p| p.against == against && p.metric == metric)
}

fn arch_section(out: &mut String, s: &ScenarioResult, a: &ArchResult) {
    let b = &a.base;
    let _ = writeln!(
        out,
        "### {} · {}\n\nBase model ({} parameters, old channels): test accuracy {}, training \
         accuracy {} (gap {:+.3}); epochs trained {:?}.\n",
        s.name,
        a.arch.name(),
        a.base_parameters,
        ci(&b.test, 3),
        ci(&b.train, 3),
        b.train.mean - b.test.mean,
        b.epochs_run
    );
    let _ = writeln!(
        out,
        "| variant | acc @0 | acc kept | acc last | train acc kept | steps → base | steps → scratch | worst dip | max loss jump | spikes | max ‖g‖ | BN shift @0 | drift @0 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for v in &a.variants {
        let m = &v.summary;
        let chosen = v
            .runs
            .iter()
            .filter_map(|r| r.chosen.clone())
            .collect::<std::collections::BTreeSet<_>>();
        let name = if chosen.is_empty() {
            v.variant.name.clone()
        } else {
            format!(
                "{} (chose {})",
                v.variant.name,
                chosen.into_iter().collect::<Vec<_>>().join(", ")
            )
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {} | {} | {} |",
            ci(&m.accuracy_before, 3),
            ci(&m.accuracy_kept, 3),
            ci(&m.accuracy_last, 3),
            ci(&m.train_accuracy_kept, 3),
            reached(&m.steps_to_base),
            reached(&m.steps_to_scratch),
            ci(&m.worst_dip, 3),
            ci(&m.max_loss_jump, 3),
            m.spikes.mean,
            ci(&m.max_grad_norm, 2),
            ci(&m.bn_shift_step0, 2),
            ci(&m.drift_step0, 3),
        );
    }
    let _ = writeln!(
        out,
        "\nPaired per-seed differences (this variant minus the reference; 95% interval; `*`: \
         the interval excludes 0):\n\n| variant | acc kept − {SCRATCH} | acc kept − {RECOMMENDED} \
         | acc last − {RECOMMENDED} | worst dip − {RECOMMENDED} |\n|---|---|---|---|---|"
    );
    let cell = |p: Option<&Paired>| p.map_or_else(|| "—".to_string(), diff);
    for v in &a.variants {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            v.variant.name,
            cell(find(&v.paired, SCRATCH, "accuracy_kept")),
            cell(find(&v.paired, RECOMMENDED, "accuracy_kept")),
            cell(find(&v.paired, RECOMMENDED, "accuracy_last")),
            cell(find(&v.paired, RECOMMENDED, "worst_dip")),
        );
    }
    let _ = writeln!(out);
}

/// The paired differences whose interval excludes zero, one line each, and how many do not.
fn findings(out: &mut String, result: &StudyResult) {
    let mut separated = Vec::new();
    let mut open = 0usize;
    for s in &result.scenarios {
        for a in &s.archs {
            for v in &a.variants {
                for p in &v.paired {
                    if p.difference.excludes_zero() {
                        let [lo, hi] = p.difference.ci95.unwrap_or([f64::NAN; 2]);
                        separated.push(format!(
                            "- {} · {}: `{}` {} `{}` by {:+.3} [{lo:+.3}, {hi:+.3}]",
                            s.name,
                            a.arch.name(),
                            v.variant.name,
                            match p.metric.as_str() {
                                "accuracy_kept" => "kept-checkpoint accuracy vs",
                                "accuracy_last" => "last-epoch accuracy vs",
                                _ => "worst dip below the base vs",
                            },
                            p.against,
                            p.difference.mean
                        ));
                    } else {
                        open += 1;
                    }
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "## Differences whose 95% interval excludes zero\n\nOf {} paired comparisons ({} \
         against `{SCRATCH}` and `{RECOMMENDED}`), {} exclude zero; the other {open} do not \
         separate the two variants at these seeds.\n",
        separated.len() + open,
        PAIRED_METRICS.join(", "),
        separated.len()
    );
    for line in separated {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out);
}

/// The Markdown report (without wall times, which [`write_outputs`] appends).
pub fn markdown(result: &StudyResult) -> String {
    let mut out = String::new();
    let c = &result.config;
    let archs: Vec<&str> = c.archs.iter().map(|a| a.name()).collect();
    let _ = writeln!(
        out,
        "# widen study\n\nBackend `{}`; seeds {:?} (n = {}); architectures {}. Budgets are in \
         optimiser steps, rounded up to whole epochs per dataset. Base and `{SCRATCH}`: up to {} \
         steps (Adam lr {}), early stopping after {} steps without a better validation score. \
         Widened variants: {} steps (Adam lr {}), every epoch trained, except `{RECOMMENDED}`, \
         which is `widen fit`'s staged recipe with its defaults (warm-up of a quarter of the \
         epochs training only the new parts, then everything at a tenth of the rate, patience \
         10 epochs) within the same budget. Batch {}; validation: a stratified {:.0}% of the training split per seed; every model \
         `fit` returns is its best validation checkpoint (\"kept\"). Curves and accuracies are \
         on the test split, which no decision uses. Intervals: 95% Student-t over seeds; \
         paired: per-seed differences (same base, data and split).\n",
        result.backend,
        c.seeds,
        c.seeds.len(),
        archs.join(", "),
        c.base_steps,
        c.learning_rate,
        c.base_patience,
        c.steps,
        c.finetune_learning_rate,
        c.batch_size,
        c.validation_fraction * 100.0
    );
    findings(&mut out, result);
    for s in &result.scenarios {
        let _ = writeln!(
            out,
            "## {}\n\n{}\n\n{} → {} channels (old: {:?}); {} training cases ({} of them held out \
             for validation), {} test cases; {} classes (chance {:.3}).\n",
            s.name,
            s.description,
            s.old_channels.len(),
            s.new_channels,
            s.old_channels,
            s.train_cases,
            s.val_cases,
            s.test_cases,
            s.classes,
            1.0 / s.classes.max(1) as f64
        );
        for a in &s.archs {
            arch_section(&mut out, s, a);
        }
    }
    out
}

/// Each file through a temporary and a rename: a killed study leaves whole files or none.
fn write(path: &Path, bytes: &[u8]) -> Result<(), StudyError> {
    widen_guard::write_file_atomically(path, bytes).map_err(|e| StudyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Compact JSON: the curves make `study.json` megabytes when pretty-printed.
fn json<T: serde::Serialize>(value: &T, path: &Path) -> Result<String, StudyError> {
    serde_json::to_string(value).map_err(|e| StudyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes the study's files into `dir` (created if needed).
pub fn write_outputs(result: &StudyResult, dir: &Path) -> Result<StudyFiles, StudyError> {
    std::fs::create_dir_all(dir).map_err(|e| StudyError::Io {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let files = StudyFiles {
        markdown: dir.join(OUTPUT_FILES[0]),
        json: dir.join(OUTPUT_FILES[1]),
        timing: dir.join(OUTPUT_FILES[2]),
        figure: dir.join(OUTPUT_FILES[3]),
        png: cfg!(feature = "png").then(|| dir.join(OUTPUT_FILES[4])),
    };
    let mut md = markdown(result);
    let total: f64 = result.timing.iter().map(|t| t.seconds).sum();
    let _ = writeln!(
        md,
        "## Wall time (seconds, all seeds; {total:.1} s in all)\n\n| scenario | arch | variant | s |\n|---|---|---|---|"
    );
    for t in &result.timing {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2} |",
            t.scenario, t.arch, t.variant, t.seconds
        );
    }
    write(&files.markdown, md.as_bytes())?;
    write(&files.json, json(result, &files.json)?.as_bytes())?;
    write(
        &files.timing,
        json(&result.timing, &files.timing)?.as_bytes(),
    )?;
    let figure = svg::figure(result);
    write(&files.figure, figure.as_bytes())?;
    #[cfg(feature = "png")]
    if let Some(png) = &files.png {
        write(png, &super::png::render(&figure)?)?;
    }
    Ok(files)
}
