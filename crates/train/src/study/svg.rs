//! A small SVG line chart of the mean loss curves, one panel per scenario. Written by hand: a
//! polyline per variant needs no plotting library (and no system fonts).

use std::fmt::Write as _;

use super::StudyResult;

const PANEL_W: f64 = 560.0;
const PANEL_H: f64 = 360.0;
const MARGIN: f64 = 48.0;
const LEGEND_W: f64 = 190.0;

/// Distinguishable colours (Tableau 10), then dashes for the second half of the variants.
const COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart: x = step, y = mean batch loss over seeds (log scale, so spikes and slow starts
/// both show).
pub fn loss_curves(result: &StudyResult) -> String {
    let panels = result.scenarios.len().max(1) as f64;
    let width = panels * (PANEL_W + LEGEND_W);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" font-family="sans-serif" font-size="11">"#,
        h = PANEL_H + 40.0
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (p, s) in result.scenarios.iter().enumerate() {
        let x0 = p as f64 * (PANEL_W + LEGEND_W);
        let curves: Vec<(String, Vec<f64>)> = s
            .variants
            .iter()
            .map(|v| {
                let n = v.runs.iter().map(|r| r.loss_curve.len()).min().unwrap_or(0);
                let mean = (0..n)
                    .map(|t| {
                        v.runs.iter().map(|r| r.loss_curve[t]).sum::<f64>()
                            / v.runs.len().max(1) as f64
                    })
                    .collect();
                (v.variant.name.clone(), mean)
            })
            .collect();
        let steps = curves.iter().map(|c| c.1.len()).max().unwrap_or(1).max(2);
        let finite = curves
            .iter()
            .flat_map(|c| c.1.iter().copied())
            .filter(|v| v.is_finite() && *v > 0.0);
        let lo = finite.clone().fold(f64::INFINITY, f64::min).max(1e-4);
        let hi = finite.fold(0.0, f64::max).max(lo * 1.01);
        let (llo, lhi) = (lo.log10(), hi.log10());
        let px = |t: usize| x0 + MARGIN + (PANEL_W - 2.0 * MARGIN) * t as f64 / (steps - 1) as f64;
        let py = |v: f64| {
            let v = v.clamp(lo, hi).log10();
            20.0 + (PANEL_H - MARGIN) * (1.0 - (v - llo) / (lhi - llo))
        };
        let _ = writeln!(
            out,
            r#"<text x="{}" y="14" font-size="13" font-weight="bold">{} — mean batch loss per step (log scale)</text>"#,
            x0 + MARGIN,
            escape(&s.name)
        );
        // axes and a few labelled ticks
        let (ax, ay) = (x0 + MARGIN, 20.0 + PANEL_H - MARGIN);
        let _ = writeln!(
            out,
            r#"<path d="M{ax} 20 V{ay} H{}" stroke="black" fill="none"/>"#,
            x0 + PANEL_W - MARGIN
        );
        for i in 0..=4 {
            let v = 10f64.powf(llo + (lhi - llo) * i as f64 / 4.0);
            let y = py(v);
            let _ = writeln!(
                out,
                r##"<line x1="{ax}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v:.3}</text>"##,
                x0 + PANEL_W - MARGIN,
                ax - 4.0,
                y + 4.0
            );
        }
        for i in 0..=4 {
            let t = (steps - 1) * i / 4;
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{t}</text>"#,
                px(t),
                ay + 14.0
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">step</text>"#,
            x0 + PANEL_W / 2.0,
            ay + 28.0
        );
        for (i, (name, curve)) in curves.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let dash = if i >= COLOURS.len() {
                r#" stroke-dasharray="5 3""#
            } else {
                ""
            };
            let points: Vec<String> = curve
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(t, &v)| format!("{:.1},{:.1}", px(t), py(v)))
                .collect();
            let _ = writeln!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>"#,
                points.join(" ")
            );
            let ly = 30.0 + 16.0 * i as f64;
            let lx = x0 + PANEL_W - 20.0;
            let _ = writeln!(
                out,
                r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
                lx + 18.0,
                lx + 22.0,
                ly + 4.0,
                escape(name)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}
