//! Study outputs: a Markdown table, a JSON file with every number, an SVG of the loss curves.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{Stat, StudyError, StudyResult, svg};

/// Paths of the files a study wrote.
#[derive(Debug, Clone)]
pub struct StudyFiles {
    /// `study.md`.
    pub markdown: PathBuf,
    /// `study.json`.
    pub json: PathBuf,
    /// `loss_curves.svg`.
    pub plot: PathBuf,
}

fn pm(s: &Stat, digits: usize) -> String {
    format!("{:.d$} ± {:.d$}", s.mean, s.std, d = digits)
}

/// The Markdown report.
pub fn markdown(result: &StudyResult) -> String {
    let mut out = String::new();
    let c = &result.config;
    let _ = writeln!(
        out,
        "# widen study\n\nBackend `{}`; seeds {:?}; base {} steps (Adam lr {}), fine-tune {} \
         steps (Adam lr {}), batch {}; mean ± std over seeds. A spike is a step whose loss \
         exceeds the running average of the previous losses by ×{} and by at least 0.1.\n",
        result.backend,
        c.seeds,
        c.base_steps,
        c.learning_rate,
        c.finetune_steps,
        c.finetune_learning_rate,
        c.batch_size,
        c.spike_factor
    );
    for s in &result.scenarios {
        let base = Stat::of(&s.base_accuracy);
        let _ = writeln!(
            out,
            "## {}\n\n{}\n\n{} → {} channels (old: {:?}); {} train / {} test cases; base model \
             test accuracy on the old channels {}.\n",
            s.name,
            s.description,
            s.old_channels.len(),
            s.new_channels,
            s.old_channels,
            s.train_cases,
            s.test_cases,
            pm(&base, 3)
        );
        let _ = writeln!(
            out,
            "| variant | acc before | acc after | loss @0 | drift @0 | max loss jump | spikes | max ‖g‖ | BN shift @0 |\n|---|---|---|---|---|---|---|---|---|"
        );
        for v in &s.variants {
            let m = &v.summary;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                v.variant.name,
                pm(&m.accuracy_before, 3),
                pm(&m.accuracy_after, 3),
                pm(&m.loss_step0, 3),
                pm(&m.drift_step0, 3),
                pm(&m.max_loss_jump, 3),
                pm(&m.spikes, 1),
                pm(&m.max_grad_norm, 2),
                pm(&m.bn_shift_step0, 2),
            );
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "## Wall time (seconds, all seeds)\n\n| scenario | variant | s |\n|---|---|---|"
    );
    for t in &result.timing {
        let _ = writeln!(out, "| {} | {} | {:.2} |", t.scenario, t.variant, t.seconds);
    }
    out
}

/// Each file through a temporary and a rename: a killed study leaves whole files or none.
fn write(path: &Path, text: &str) -> Result<(), StudyError> {
    widen_guard::write_file_atomically(path, text.as_bytes()).map_err(|e| StudyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Writes `study.md`, `study.json` and `loss_curves.svg` into `dir` (created if needed).
pub fn write_outputs(result: &StudyResult, dir: &Path) -> Result<StudyFiles, StudyError> {
    std::fs::create_dir_all(dir).map_err(|e| StudyError::Io {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let files = StudyFiles {
        markdown: dir.join("study.md"),
        json: dir.join("study.json"),
        plot: dir.join("loss_curves.svg"),
    };
    write(&files.markdown, &markdown(result))?;
    let json = serde_json::to_string_pretty(result).map_err(|e| StudyError::Io {
        path: files.json.display().to_string(),
        reason: e.to_string(),
    })?;
    write(&files.json, &json)?;
    write(&files.plot, &svg::loss_curves(result))?;
    Ok(files)
}
