//! The figure as PNG: the SVG rasterised by resvg (the maintained pure-Rust renderer; its text
//! comes from the system's fonts through fontdb, so a machine without fonts gets the lines
//! and bands without labels rather than an error).

use super::StudyError;

/// Pixels per SVG unit: twice the nominal size, so the labels stay legible when zoomed.
const SCALE: f32 = 2.0;

/// Renders `svg` to PNG bytes.
pub fn render(svg: &str) -> Result<Vec<u8>, StudyError> {
    let fail = |reason: String| StudyError::Io {
        path: "the PNG figure".into(),
        reason,
    };
    let mut options = resvg::usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    let tree = resvg::usvg::Tree::from_str(svg, &options).map_err(|e| fail(e.to_string()))?;
    let size = tree.size();
    let (w, h) = (
        (size.width() * SCALE).ceil() as u32,
        (size.height() * SCALE).ceil() as u32,
    );
    widen_guard::budget()
        .check_elements("the PNG figure", &[w as usize, h as usize, 4], 1)
        .map_err(|e| fail(e.to_string()))?;
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w, h)
        .ok_or_else(|| fail(format!("cannot allocate a {w}×{h} canvas")))?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(SCALE, SCALE),
        &mut pixmap.as_mut(),
    );
    pixmap.encode_png().map_err(|e| fail(e.to_string()))
}
