//! Figures a researcher looks at, drawn with `plotters` as PNG or SVG.
//!
//! Every figure has its own function, which draws it to a given path and returns `None` when the
//! data hold nothing to draw; [`draw_all`] draws every figure the data support into one folder.
//! Figures:
//! - [`loss_vs_compute`]: every trial's validation curve against compute, the frontier, and the
//!   saturating (and power) law fitted to it, extrapolated one decade, with its bootstrap band.
//! - [`lr_sensitivity`]: final loss against learning rate, one panel per budget, one curve per
//!   size, with each cell's optimum, its local parabola and the diverged runs.
//! - [`lr_vs_size`]: each cell's optimal learning rate against N, the law `log η* = c0 + c1·log N`
//!   with its bootstrap band, and the rate it predicts for the next size.
//! - [`isoflop`]: loss against N per compute budget with the parabolas and their vertices, and
//!   the vertices' N*(C) law.
//! - [`training_curves`]: training and validation loss against examples seen, for a few trials.
//!
//! Text uses the vendored DejaVu Sans (registered as `sans-serif` on first use), so figures
//! render the same on machines without system fonts. Colours are colour-blind friendly: viridis
//! ordered by model size, plasma ordered by budget.

mod axis;
mod curves;
mod isoflop;
mod loss_compute;
mod lr_sensitivity;
mod lr_size;
mod style;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::analysis::laws::FitReport;
use crate::analysis::observations::Observations;
use crate::store::MetricRow;

pub use curves::training_curves;
pub use isoflop::isoflop;
pub use loss_compute::loss_vs_compute;
pub use lr_sensitivity::lr_sensitivity;
pub use lr_size::lr_vs_size;

/// The file format of a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A bitmap (PNG).
    Png,
    /// A vector image (SVG).
    Svg,
}

impl Format {
    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }
}

/// A figure that was drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figure {
    /// Short name, also the file's stem (`loss_vs_compute`, …).
    pub name: String,
    /// The title drawn on it.
    pub title: String,
    /// Where it was written.
    pub path: PathBuf,
}

/// Why a figure could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The output folder could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The vendored font could not be loaded.
    #[error("cannot load the vendored font: {0}")]
    Font(String),
    /// Drawing or writing the figure failed.
    #[error("cannot draw {figure} to {}: {message}", path.display())]
    Draw {
        /// The figure's name.
        figure: String,
        /// The file being written.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Draws every figure the data support into `out_dir` (created if needed), one file per figure
/// named after it (`loss_vs_compute.png`, …), and returns what it drew. `curves` are
/// `(label, evaluation points)` of the trials whose training curves to show (the caller picks
/// them, e.g. the best trial of each size at the largest budget); a figure whose data are
/// missing (an unfitted method, no curves) is left out without error.
pub fn draw_all(
    obs: &Observations,
    report: &FitReport,
    curves: &[(String, Vec<MetricRow>)],
    out_dir: &Path,
    format: Format,
) -> Result<Vec<Figure>, PlotError> {
    std::fs::create_dir_all(out_dir).map_err(|source| PlotError::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let path = |name: &str| out_dir.join(format!("{name}.{}", format.extension()));
    let drawn = [
        loss_vs_compute(obs, report, &path(loss_compute::NAME), format)?,
        lr_sensitivity(obs, report, &path(lr_sensitivity::NAME), format)?,
        lr_vs_size(report, &path(lr_size::NAME), format)?,
        isoflop(obs, report, &path(isoflop::NAME), format)?,
        training_curves(
            curves,
            &loss_title(obs, "Loss"),
            &path(curves::NAME),
            format,
        )?,
    ];
    Ok(drawn.into_iter().flatten().collect())
}

// ---------------------------------------------------------------------------------------------
// Shared machinery: fonts, errors, rendering to either backend
// ---------------------------------------------------------------------------------------------

static FONT: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the vendored DejaVu Sans as `sans-serif`, once.
fn register_font() -> Result<(), PlotError> {
    FONT.get_or_init(|| {
        plotters::style::register_font(
            style::FONT,
            FontStyle::Normal,
            include_bytes!("../../../../assets/fonts/DejaVuSans.ttf"),
        )
        .map_err(|_| "DejaVuSans.ttf is not a usable font".to_string())
    })
    .clone()
    .map_err(PlotError::Font)
}

/// A drawing failure inside a figure (the backend's error as text).
#[derive(Debug)]
pub(crate) struct DrawError(String);

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawError(e.to_string())
    }
}

/// A figure ready to draw on any backend.
pub(crate) trait Render {
    /// Its size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws it on `root` (already white).
    fn render<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError>;
}

/// Draws `figure` to `path` in `format`.
fn save(
    name: &str,
    title: &str,
    figure: &impl Render,
    path: &Path,
    format: Format,
) -> Result<Figure, PlotError> {
    register_font()?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| PlotError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let size = figure.size();
    let result = match format {
        Format::Png => draw_on(BitMapBackend::new(path, size).into_drawing_area(), figure),
        Format::Svg => draw_on(SVGBackend::new(path, size).into_drawing_area(), figure),
    };
    result.map_err(|DrawError(message)| PlotError::Draw {
        figure: name.to_string(),
        path: path.to_path_buf(),
        message,
    })?;
    Ok(Figure {
        name: name.to_string(),
        title: title.to_string(),
        path: path.to_path_buf(),
    })
}

fn draw_on<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    figure: &impl Render,
) -> Result<(), DrawError> {
    root.fill(&WHITE)?;
    figure.render(&root)?;
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared data helpers
// ---------------------------------------------------------------------------------------------

/// The model sizes of `obs` as `(name, N)`, in increasing N (then name).
pub(crate) fn sizes(obs: &Observations) -> Vec<(String, f64)> {
    let mut sizes: Vec<(String, f64)> = Vec::new();
    for r in &obs.runs {
        if !sizes
            .iter()
            .any(|(n, p)| *n == r.size && p.to_bits() == r.params.to_bits())
        {
            sizes.push((r.size.clone(), r.params));
        }
    }
    sizes.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    sizes
}

/// The index of a run's size in [`sizes`].
pub(crate) fn size_index(sizes: &[(String, f64)], name: &str, params: f64) -> usize {
    sizes
        .iter()
        .position(|(n, p)| n == name && p.to_bits() == params.to_bits())
        .unwrap_or(0)
}

/// `w32 · N = 26.5k`, or just the N when the name says it already.
pub(crate) fn size_label(name: &str, params: f64) -> String {
    let n = axis::si(params);
    if name.is_empty() || name.starts_with("N=") {
        format!("N = {n}")
    } else {
        format!("{name} · N = {n}")
    }
}

/// The loss axis' title, with what the loss is when the source says (cross-entropy in nats
/// for slaw's classifiers, the next-patch error for AIM).
pub(crate) fn loss_title(obs: &Observations, what: &str) -> String {
    match &obs.loss_name {
        Some(name) => format!("{what} ({name})"),
        None => what.to_string(),
    }
}

/// `1 size`, `6 sizes`.
pub(crate) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if let Some(stem) = noun.strip_suffix("ex") {
        format!("{n} {stem}ices")
    } else {
        format!("{n} {noun}s")
    }
}

/// A run's final loss, when finite.
pub(crate) fn finite_loss(run: &crate::analysis::observations::Run) -> Option<f64> {
    run.loss.filter(|l| l.is_finite())
}

/// The median of finite values (`None` when there is none).
pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    })
}

/// The lower and upper edges of a band, along the same x values.
pub(crate) type Band = (Vec<(f64, f64)>, Vec<(f64, f64)>);

/// The bootstrap band of `value(coefficients, x)` over `grid`: at each x, the samples'
/// percentile interval (points where it is not positive and finite are left out).
pub(crate) fn bootstrap_band(
    samples: Option<&crate::analysis::laws::Samples>,
    grid: &[f64],
    value: impl Fn(&[f64], f64) -> f64,
) -> Option<Band> {
    let samples = samples?;
    let (mut lo, mut hi) = (Vec::new(), Vec::new());
    for &x in grid {
        if let Some(iv) = samples.interval_of(|p| value(p, x)) {
            if iv.lo > 0.0 && iv.hi.is_finite() {
                lo.push((x, iv.lo));
                hi.push((x, iv.hi));
            }
        }
    }
    (lo.len() >= 2).then_some((lo, hi))
}

/// `95 % bootstrap band (200 resamples)`.
pub(crate) fn band_text(samples: Option<&crate::analysis::laws::Samples>) -> String {
    match samples {
        Some(s) => format!(
            "{:.0} % bootstrap band ({} resamples)",
            s.level * 100.0,
            s.values.len()
        ),
        None => String::new(),
    }
}

/// The column of a named coefficient in bootstrap samples.
pub(crate) fn column(samples: &crate::analysis::laws::Samples, name: &str) -> Option<usize> {
    // Logs were stored as `e`, `a`, `b` before they were named `log_e`, `log_a`, `log_b`.
    let old = name
        .strip_prefix("log_")
        .filter(|n| ["e", "a", "b"].contains(n));
    samples
        .names
        .iter()
        .position(|n| n == name || Some(n.as_str()) == old)
}
