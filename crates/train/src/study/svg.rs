//! The study's figure as SVG: small multiples, one row per scenario × architecture, four
//! panels per row: test accuracy of the function-preserving variants (and the recommended
//! road), test accuracy of the re-initialising ones, the validation accuracy (what `fit`
//! chooses its checkpoint on) of the preserving ones, and the training loss of all on a log
//! axis. Each line is the mean over seeds with a band from the lowest to the highest seed; the
//! base model's accuracy is a dotted line and the scratch model's a dashed one.
//!
//! Written by hand: a few polylines and polygons need no plotting library. `png.rs` rasterises
//! the same document.

use std::fmt::Write as _;

use super::{ArchResult, Run, ScenarioResult, Start, StudyResult};
use widen_adapt::Strategy;

const PANEL_W: f64 = 330.0;
const PANEL_H: f64 = 190.0;
const LEFT: f64 = 46.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 34.0;
const RIGHT: f64 = 12.0;
const LEGEND_H: f64 = 64.0;

/// Tableau 10: distinguishable, and the order is fixed per variant name across panels.
const COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Which accuracy panel a variant belongs to.
#[derive(PartialEq, Clone, Copy)]
enum Family {
    /// The reference drawn as a line, not a curve.
    Scratch,
    /// Starts as the base (zero, projection) or is the recommended road.
    Preserving,
    /// Puts new random or repeated weights in (random, fan, repeat).
    Reinitialising,
}

fn family(start: &Start) -> Family {
    match start {
        Start::Scratch => Family::Scratch,
        Start::Recommended => Family::Preserving,
        Start::Expand { strategy } => match strategy {
            Strategy::Zero | Strategy::Projection { .. } => Family::Preserving,
            _ => Family::Reinitialising,
        },
    }
}

/// A mean curve with its seed band: `(step, mean, low, high)`.
type Band = Vec<(f64, f64, f64, f64)>;

/// Per point index, over the seeds. A run that stopped early holds its kept checkpoint's test
/// accuracy from then on (what its user has); its loss curve simply ends.
fn band(runs: &[Run], value: impl Fn(&Run, usize) -> Option<f64>) -> Band {
    let points = runs.iter().map(|r| r.curve.len()).max().unwrap_or(0);
    let step = |i: usize| {
        runs.iter()
            .find_map(|r| r.curve.get(i).map(|p| p.step as f64))
            .unwrap_or(0.0)
    };
    (0..points)
        .filter_map(|i| {
            let v: Vec<f64> = runs
                .iter()
                .filter_map(|r| value(r, i))
                .filter(|v| v.is_finite())
                .collect();
            if v.is_empty() {
                return None;
            }
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Some((step(i), mean, lo, hi))
        })
        .collect()
}

fn accuracy(r: &Run, i: usize) -> Option<f64> {
    Some(r.curve.get(i).map_or(r.accuracy_kept, |p| p.test_accuracy))
}

/// Validation accuracy, held at the last value once a run stopped (its kept checkpoint was
/// chosen on it; `fit` scores nothing after the stop).
fn val_accuracy(r: &Run, i: usize) -> Option<f64> {
    r.curve
        .get(i)
        .or_else(|| r.curve.last())
        .map(|p| p.val_accuracy)
}

fn train_loss(r: &Run, i: usize) -> Option<f64> {
    r.curve.get(i).map(|p| p.train_loss)
}

struct Series {
    colour: &'static str,
    band: Band,
}

/// A reference level drawn across a panel.
struct Level {
    value: f64,
    dash: &'static str,
    label: String,
}

struct Panel<'a> {
    x: f64,
    y: f64,
    title: String,
    y_label: &'a str,
    log: bool,
    series: Vec<Series>,
    levels: Vec<Level>,
}

/// Tick values for a log axis over `[lo, hi]`: the powers of ten inside, with 2× and 5× when
/// fewer than two decades are spanned; labelled with as many digits as they need.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let few = hi / lo <= 100.0;
    let mut ticks = Vec::new();
    for e in a..=b {
        let p = 10f64.powi(e);
        for m in if few {
            &[1.0, 2.0, 5.0][..]
        } else {
            &[1.0][..]
        } {
            let t = m * p;
            if t >= lo * 0.999 && t <= hi * 1.001 {
                ticks.push(t);
            }
        }
    }
    ticks
}

/// A tick label that never rounds a positive value to zero.
fn label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits = (-(v.abs().log10().floor()) as i32).max(0) as usize;
    format!("{v:.digits$}")
}

fn draw(out: &mut String, p: &Panel<'_>) {
    let (w, h) = (PANEL_W - LEFT - RIGHT, PANEL_H - TOP - BOTTOM);
    let (ox, oy) = (p.x + LEFT, p.y + TOP);
    let xmax = p
        .series
        .iter()
        .flat_map(|s| s.band.iter().map(|b| b.0))
        .fold(1.0, f64::max);
    let values = || {
        p.series
            .iter()
            .flat_map(|s| s.band.iter().flat_map(|b| [b.2, b.3]))
            .chain(p.levels.iter().map(|l| l.value))
            .filter(|v| v.is_finite() && (!p.log || *v > 0.0))
    };
    let (mut lo, mut hi) = (
        values().fold(f64::INFINITY, f64::min),
        values().fold(f64::NEG_INFINITY, f64::max),
    );
    if !lo.is_finite() {
        (lo, hi) = if p.log { (0.1, 1.0) } else { (0.0, 1.0) };
    }
    let ticks: Vec<f64>;
    if p.log {
        lo = lo.max(1e-6);
        hi = hi.max(lo * 1.5);
        ticks = log_ticks(lo, hi);
    } else {
        // Accuracy: whole tenths, always up to 1.
        lo = (lo * 10.0).floor() / 10.0;
        hi = 1.0f64.max(lo + 0.1);
        let n = ((hi - lo) * 10.0).round() as usize;
        let stride = if n > 5 { 2 } else { 1 };
        ticks = (0..=n)
            .step_by(stride)
            .map(|i| lo + i as f64 / 10.0)
            .collect();
    }
    let fy = |v: f64| {
        let t = if p.log {
            (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10())
        } else {
            (v.clamp(lo, hi) - lo) / (hi - lo)
        };
        oy + h * (1.0 - t)
    };
    let fx = |s: f64| ox + w * s / xmax;
    let _ = writeln!(
        out,
        r#"<text x="{ox}" y="{:.1}" font-size="12" font-weight="bold">{}</text>"#,
        p.y + 14.0,
        escape(&p.title)
    );
    for &t in &ticks {
        let y = fy(t);
        let _ = writeln!(
            out,
            r##"<line x1="{ox}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e6e6e6"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            ox + w,
            ox - 4.0,
            y + 4.0,
            label(t)
        );
    }
    let xticks = 4;
    for i in 0..=xticks {
        let s = (xmax * i as f64 / xticks as f64).round();
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{s}</text>"#,
            fx(s),
            oy + h + 13.0
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">optimiser steps</text><text x="{:.1}" y="{:.1}" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">{}</text>"#,
        ox + w / 2.0,
        oy + h + 27.0,
        p.x + 11.0,
        oy + h / 2.0,
        p.x + 11.0,
        oy + h / 2.0,
        escape(p.y_label)
    );
    let _ = writeln!(
        out,
        r#"<path d="M{ox} {oy} V{:.1} H{:.1}" stroke="black" fill="none"/>"#,
        oy + h,
        ox + w
    );
    // The first level is labelled at the left, the second at the right: they may coincide.
    for (i, l) in p.levels.iter().enumerate() {
        let y = fy(l.value);
        let (tx, anchor) = if i == 0 {
            (ox + 4.0, "start")
        } else {
            (ox + w, "end")
        };
        let _ = writeln!(
            out,
            r#"<line x1="{ox}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="black" stroke-dasharray="{}"/><text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" font-size="9">{}</text>"#,
            ox + w,
            l.dash,
            y - 3.0,
            escape(&l.label)
        );
    }
    for s in &p.series {
        let pts: Vec<&(f64, f64, f64, f64)> = s.band.iter().filter(|b| b.1.is_finite()).collect();
        if pts.is_empty() {
            continue;
        }
        let upper: Vec<String> = pts
            .iter()
            .map(|b| format!("{:.1},{:.1}", fx(b.0), fy(b.3)))
            .collect();
        let lower: Vec<String> = pts
            .iter()
            .rev()
            .map(|b| format!("{:.1},{:.1}", fx(b.0), fy(b.2)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polygon points="{} {}" fill="{}" fill-opacity="0.15" stroke="none"/>"#,
            upper.join(" "),
            lower.join(" "),
            s.colour
        );
        let line: Vec<String> = pts
            .iter()
            .map(|b| format!("{:.1},{:.1}", fx(b.0), fy(b.1)))
            .collect();
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6"/>"#,
            line.join(" "),
            s.colour
        );
    }
}

fn colour_of(result: &StudyResult, name: &str) -> &'static str {
    let i = result
        .config
        .variants
        .iter()
        .position(|v| v.name == name)
        .unwrap_or(0);
    COLOURS[i % COLOURS.len()]
}

fn row(out: &mut String, result: &StudyResult, s: &ScenarioResult, a: &ArchResult, y: f64) {
    let mut preserving = Vec::new();
    let mut preserving_val = Vec::new();
    let mut reinit = Vec::new();
    let mut losses = Vec::new();
    let mut scratch_level = None;
    for v in &a.variants {
        let colour = colour_of(result, &v.variant.name);
        let fam = family(&v.variant.start);
        if fam == Family::Scratch {
            scratch_level = Some(Level {
                value: v.summary.accuracy_kept.mean,
                dash: "6 3",
                label: format!("{} (kept)", v.variant.name),
            });
            continue;
        }
        let acc = Series {
            colour,
            band: band(&v.runs, accuracy),
        };
        if fam == Family::Preserving {
            preserving.push(acc);
            preserving_val.push(Series {
                colour,
                band: band(&v.runs, val_accuracy),
            });
        } else {
            reinit.push(acc);
        }
        losses.push(Series {
            colour,
            band: band(&v.runs, train_loss),
        });
    }
    let levels = || {
        let mut l = vec![Level {
            value: a.base.test.mean,
            dash: "2 2",
            label: "base".into(),
        }];
        if let Some(sc) = &scratch_level {
            l.push(Level {
                value: sc.value,
                dash: sc.dash,
                label: sc.label.clone(),
            });
        }
        l
    };
    let head = format!("{} · {}", s.name, a.arch.name());
    let panels = [
        Panel {
            x: 0.0,
            y,
            title: format!("{head}: preserving"),
            y_label: "test accuracy",
            log: false,
            series: preserving,
            levels: levels(),
        },
        Panel {
            x: PANEL_W,
            y,
            title: format!("{head}: re-initialising"),
            y_label: "test accuracy",
            log: false,
            series: reinit,
            levels: levels(),
        },
        Panel {
            x: 2.0 * PANEL_W,
            y,
            title: format!("{head}: preserving, validation"),
            y_label: "validation accuracy",
            log: false,
            series: preserving_val,
            levels: Vec::new(),
        },
        Panel {
            x: 3.0 * PANEL_W,
            y,
            title: format!("{head}: training loss"),
            y_label: "mean batch loss",
            log: true,
            series: losses,
            levels: Vec::new(),
        },
    ];
    for p in &panels {
        draw(out, p);
    }
}

/// The whole figure.
pub fn figure(result: &StudyResult) -> String {
    let rows: Vec<(&ScenarioResult, &ArchResult)> = result
        .scenarios
        .iter()
        .flat_map(|s| s.archs.iter().map(move |a| (s, a)))
        .collect();
    let width = 4.0 * PANEL_W;
    let height = LEGEND_H + PANEL_H * rows.len().max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="10">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="8" y="16" font-size="13" font-weight="bold">widen study: mean over {} seeds (line), lowest to highest seed (band); dotted: base model, dashed: scratch model's kept accuracy</text>"#,
        result.config.seeds.len()
    );
    // One legend for all panels: colours are fixed per variant.
    let mut x = 8.0;
    let mut y = 36.0;
    for v in &result.config.variants {
        if family(&v.start) == Family::Scratch {
            continue;
        }
        let w = 26.0 + 6.5 * v.name.len() as f64;
        if x + w > width {
            x = 8.0;
            y += 16.0;
        }
        let _ = writeln!(
            out,
            r#"<line x1="{x}" x2="{}" y1="{y}" y2="{y}" stroke="{}" stroke-width="2.5"/><text x="{}" y="{}">{}</text>"#,
            x + 18.0,
            colour_of(result, &v.name),
            x + 22.0,
            y + 4.0,
            escape(&v.name)
        );
        x += w;
    }
    for (i, (s, a)) in rows.iter().enumerate() {
        row(&mut out, result, s, a, LEGEND_H + PANEL_H * i as f64);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_ticks_are_honest() {
        // Two decades or less: 1-2-5 ticks, none outside the range, none labelled 0.
        let t = log_ticks(0.03, 1.4);
        assert_eq!(t, vec![0.05, 0.1, 0.2, 0.5, 1.0]);
        let labels: Vec<String> = log_ticks(0.0004, 0.02).into_iter().map(label).collect();
        assert_eq!(
            labels,
            ["0.0005", "0.001", "0.002", "0.005", "0.01", "0.02"]
        );
        // Many decades: powers of ten only.
        assert_eq!(log_ticks(1e-4, 10.0).len(), 6);
    }
}
