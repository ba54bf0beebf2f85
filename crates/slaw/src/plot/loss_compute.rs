//! Validation loss against training compute: every trial's curve, the compute frontier, and the
//! laws fitted to it, extrapolated one decade with their bootstrap band.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Scale};
use super::style::{self, Entry, Key, Marker, Shape, GREY, INK, LEGEND_WIDTH, VERMILLION};
use super::{DrawError, Figure, Format, PlotError, Render};
use crate::analysis::laws::{FitReport, Method};
use crate::analysis::observations::Observations;

pub(crate) const NAME: &str = "loss_vs_compute";
const TITLE: &str = "Validation loss against training compute";
/// How far beyond the largest compute the laws are drawn.
const EXTRAPOLATION: f64 = 10.0;

/// Draws every trial's validation curve against compute (log–log, coloured by model size), the
/// frontier points, and the saturating and power laws fitted to the frontier, extrapolated one
/// decade beyond the largest compute with their 95 % bootstrap bands. `None` when no run has a
/// curve.
pub fn loss_vs_compute(
    obs: &Observations,
    report: &FitReport,
    path: &Path,
    format: Format,
) -> Result<Option<Figure>, PlotError> {
    match LossVsCompute::new(obs, report) {
        Some(figure) => super::save(NAME, TITLE, &figure, path, format).map(Some),
        None => Ok(None),
    }
}

/// A law drawn through the frontier.
struct Law {
    text: String,
    colour: RGBColor,
    /// The main law (thicker).
    main: bool,
    points: Vec<(f64, f64)>,
    /// Lower and upper edges of the bootstrap band.
    band: Option<super::Band>,
    band_text: String,
}

pub(crate) struct LossVsCompute {
    subtitle: String,
    y_desc: String,
    sizes: Vec<(String, f64)>,
    /// Size index and `(C, L)` points of each curve.
    curves: Vec<(usize, Vec<(f64, f64)>)>,
    /// Frontier points and their trial's size index.
    frontier: Vec<((f64, f64), Option<usize>)>,
    laws: Vec<Law>,
    /// The largest compute on the frontier (where extrapolation starts).
    data_end: Option<f64>,
    x: Axis,
    y: Axis,
}

impl LossVsCompute {
    pub(crate) fn new(obs: &Observations, report: &FitReport) -> Option<LossVsCompute> {
        let sizes = super::sizes(obs);
        let mut curves: Vec<(usize, Vec<(f64, f64)>)> = obs
            .runs
            .iter()
            .map(|r| {
                let mut pts: Vec<(f64, f64)> = r
                    .curve
                    .iter()
                    .copied()
                    .filter(|(c, l)| c.is_finite() && *c > 0.0 && l.is_finite() && *l > 0.0)
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                (super::size_index(&sizes, &r.size, r.params), pts)
            })
            .filter(|(_, pts)| !pts.is_empty())
            .collect();
        // Small models first, so that the large ones (the frontier's end) are on top.
        curves.sort_by_key(|(i, _)| *i);
        if curves.is_empty() {
            return None;
        }

        let fit = report
            .frontier
            .as_ref()
            .and_then(|m| m.fitted())
            .filter(|f| !f.fit.frontier.points.is_empty());
        let mut frontier = Vec::new();
        let mut laws = Vec::new();
        let mut data_end = None;
        let mut note = String::new();
        if let Some(f) = fit {
            for (k, p) in f.fit.frontier.points.iter().enumerate() {
                if !(p.compute > 0.0 && p.loss > 0.0 && p.loss.is_finite()) {
                    continue;
                }
                let size = f
                    .frontier_trials
                    .get(k)
                    .and_then(|id| obs.runs.iter().find(|r| &r.id == id))
                    .map(|r| super::size_index(&sizes, &r.size, r.params));
                frontier.push(((p.compute, p.loss), size));
            }
            let c_lo = frontier
                .iter()
                .map(|p| p.0 .0)
                .fold(f64::INFINITY, f64::min);
            let c_hi = frontier.iter().map(|p| p.0 .0).fold(0.0, f64::max);
            if c_hi > 0.0 && c_lo.is_finite() {
                data_end = Some(c_hi);
                let grid =
                    Axis::log10(c_lo, c_hi * EXTRAPOLATION).grid(c_lo, c_hi * EXTRAPOLATION, 160);
                if let Some(sat) = &f.fit.saturating {
                    let samples = f.saturating_samples.as_ref();
                    let cols = samples.and_then(|s| {
                        Some((
                            super::column(s, "log_e")?,
                            super::column(s, "log_a")?,
                            super::column(s, "alpha")?,
                        ))
                    });
                    let band = cols.and_then(|(e, a, al)| {
                        super::bootstrap_band(samples, &grid, |p, c| {
                            p[e].exp() + (p[a] - p[al] * c.ln()).exp()
                        })
                    });
                    laws.push(Law {
                        text: format!(
                            "L = E + A·C^(−α): E = {}, α = {}",
                            super::axis::plain(sat.irreducible_loss()),
                            super::axis::plain(sat.alpha)
                        ),
                        colour: INK,
                        main: true,
                        points: grid.iter().map(|&c| (c, sat.predict(c))).collect(),
                        band,
                        band_text: super::band_text(samples),
                    });
                }
                if let Some(pl) = &f.fit.power_law {
                    // The power law's band only when it is the only law (two bands hide each
                    // other).
                    let samples = f.power_samples.as_ref().filter(|_| laws.is_empty());
                    let cols = samples
                        .and_then(|s| Some((super::column(s, "log_a")?, super::column(s, "b")?)));
                    let band = cols.and_then(|(la, b)| {
                        super::bootstrap_band(samples, &grid, |p, c| (p[la] + p[b] * c.ln()).exp())
                    });
                    let main = laws.is_empty();
                    laws.push(Law {
                        text: format!("L = a·C^b: b = {}", super::axis::plain(pl.b)),
                        colour: if main { INK } else { VERMILLION },
                        main,
                        points: grid.iter().map(|&c| (c, pl.predict(c))).collect(),
                        band,
                        band_text: super::band_text(samples),
                    });
                }
            }
        } else if let Some(problem) = report.frontier.as_ref().and_then(Method::problem) {
            note = format!(" · frontier {problem}");
        }

        // The x axis runs from the first curve point to the end of the extrapolation.
        let c_min = curves
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.0))
            .fold(f64::INFINITY, f64::min);
        let c_max = curves
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.0))
            .fold(0.0, f64::max);
        let x_hi = data_end.map_or(c_max, |c| c_max.max(c * EXTRAPOLATION));
        let x = Axis::log10(c_min, x_hi).padded(0.02).si();

        // The y axis: from below the lowest loss (or law) to a top that shows where curves
        // start without letting early spikes flatten the rest.
        let finals: Vec<f64> = obs.runs.iter().filter_map(super::finite_loss).collect();
        let firsts = curves.iter().filter_map(|(_, p)| p.first().map(|q| q.1));
        let front_max = frontier.iter().map(|p| p.0 .1).fold(0.0, f64::max);
        let all_max = curves
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .fold(0.0, f64::max);
        let top = [
            front_max * 1.15,
            super::median(firsts).unwrap_or(0.0),
            finals.iter().copied().fold(0.0, f64::max),
        ]
        .into_iter()
        .fold(0.0, f64::max)
        .min(all_max);
        let bottom = curves
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            // The main law, not the second one (which may leave through the bottom).
            .chain(
                laws.iter()
                    .take(1)
                    .flat_map(|l| l.points.iter().map(|q| q.1)),
            )
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        let y = Axis::covering(Scale::Log10, [bottom, top], 0.04)?;

        let subtitle = format!(
            "{} · {}, {} · laws fitted to the frontier, extrapolated one decade{note}",
            obs.source,
            super::count(obs.runs.len(), "run"),
            super::count(sizes.len(), "size")
        );
        Some(LossVsCompute {
            subtitle,
            y_desc: super::loss_title(obs, "Validation loss"),
            sizes,
            curves,
            frontier,
            laws,
            data_end,
            x,
            y,
        })
    }
}

impl Render for LossVsCompute {
    fn size(&self) -> (u32, u32) {
        (1400, 850)
    }

    fn render<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = style::title_block(root, TITLE, &self.subtitle)?;
        let (w, _) = body.dim_in_pixel();
        let (plot, side) = body.split_horizontally(w - LEGEND_WIDTH);
        let mut chart = style::chart(
            &plot,
            "",
            &self.x,
            &self.y,
            "Training compute C (FLOPs)",
            &self.y_desc,
        )?;
        let n = self.sizes.len();

        // Bands under everything.
        for law in &self.laws {
            if let Some((lo, hi)) = &law.band {
                style::band(&mut chart, lo, hi, law.colour.mix(0.16))?;
            }
        }
        for (i, pts) in &self.curves {
            let colour = style::size_colour(*i, n).mix(0.45);
            style::line(&mut chart, pts, ShapeStyle::from(colour).stroke_width(1))?;
        }
        // Where the data end and the extrapolation begins.
        if let Some(end) = self.data_end {
            if self.x.contains(end) {
                style::dashed(
                    &mut chart,
                    &[(end, self.y.lo()), (end, self.y.hi())],
                    ShapeStyle::from(GREY.mix(0.8)).stroke_width(1),
                )?;
                let (px, _) = style::pixel(&chart, (end, self.y.hi()));
                style::note(
                    &chart,
                    &["extrapolation →".to_string()],
                    (px + 8, 10),
                    Pos::new(HPos::Left, VPos::Top),
                    15,
                )?;
            }
        }
        for law in &self.laws {
            let end = self.data_end.unwrap_or(f64::INFINITY);
            let width = if law.main { 3 } else { 2 };
            let inside: Vec<(f64, f64)> = law
                .points
                .iter()
                .copied()
                .filter(|p| p.0 <= end * (1.0 + 1e-9))
                .collect();
            let beyond: Vec<(f64, f64)> = law
                .points
                .iter()
                .copied()
                .filter(|p| p.0 >= end * (1.0 - 1e-9))
                .collect();
            let style = ShapeStyle::from(law.colour).stroke_width(width);
            style::line(&mut chart, &inside, style)?;
            style::dashed(&mut chart, &beyond, style)?;
        }
        for ((c, l), size) in &self.frontier {
            let colour = size.map_or(GREY, |i| style::size_colour(i, n));
            style::mark(
                &chart,
                (*c, *l),
                Marker::new(Shape::Circle, 5, colour).edged(),
            )?;
        }

        let mut entries = vec![Entry::heading("Model size")];
        for (i, (name, params)) in self.sizes.iter().enumerate() {
            entries.push(Entry::line(
                style::size_colour(i, n),
                3,
                super::size_label(name, *params),
            ));
        }
        if !self.frontier.is_empty() {
            entries.push(Entry::heading("Frontier"));
            entries.push(Entry::marker(
                Marker::new(Shape::Circle, 5, GREY).edged(),
                format!("frontier points ({})", self.frontier.len()),
            ));
        }
        for law in &self.laws {
            entries.push(Entry::new(
                Key::Line {
                    colour: law.colour.to_rgba(),
                    width: 3,
                    dashed: false,
                },
                law.text.clone(),
            ));
            if law.band.is_some() {
                entries.push(Entry::new(
                    Key::Band(law.colour.mix(0.16)),
                    law.band_text.clone(),
                ));
            }
        }
        if !self.laws.is_empty() {
            entries.push(Entry::dashed(INK, 3, "dashed: extrapolated"));
        }
        style::legend(&side, &entries, 14)?;
        Ok(())
    }
}
