//! IsoFLOP profiles: loss against N at each compute budget with the fitted parabolas and their
//! vertices, and the vertices' law N*(C).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{self, Axis, Scale};
use super::style::{self, Entry, Key, Marker, Shape, INK, LEGEND_WIDTH};
use super::{DrawError, Figure, Format, PlotError, Render};
use crate::analysis::laws::{FitReport, IsoFlopReport};
use crate::analysis::observations::Observations;
use crate::fit::{BudgetVertex, VertexFlag};

pub(crate) const NAME: &str = "isoflop";
const TITLE: &str = "IsoFLOP profiles";

/// Draws the IsoFLOP profiles: for each compute budget of the IsoFLOP fit, the loss of each
/// size's best run against N, the parabola in log N fitted to them and its vertex (hollow when
/// the law leaves it out), and beside it the vertices' law N*(C) = a·C^b. `None` when the
/// IsoFLOP method was not fitted.
pub fn isoflop(
    obs: &Observations,
    report: &FitReport,
    path: &Path,
    format: Format,
) -> Result<Option<Figure>, PlotError> {
    match IsoFlop::new(obs, report) {
        Some(figure) => super::save(NAME, TITLE, &figure, path, format).map(Some),
        None => Ok(None),
    }
}

struct Budget {
    compute: f64,
    points: Vec<(f64, f64)>,
    parabola: Vec<(f64, f64)>,
    vertex: Option<(f64, f64)>,
    valid: bool,
    /// Why the vertex is not used, if it is not.
    problem: Option<&'static str>,
}

pub(crate) struct IsoFlop {
    subtitle: String,
    y_desc: String,
    budgets: Vec<Budget>,
    law: Vec<(f64, f64)>,
    law_text: String,
    band: Option<super::Band>,
    band_text: String,
    x: Axis,
    y: Axis,
    c_axis: Axis,
    n_axis: Axis,
}

/// The points of each budget, as the fit grouped them: `(N, loss)` sorted by N.
fn budget_points(iso: &IsoFlopReport) -> Vec<Vec<(f64, f64)>> {
    iso.fit
        .budgets
        .iter()
        .map(|b| {
            let mut pts: Vec<(f64, f64)> = iso
                .points
                .iter()
                .zip(&iso.budget_ids)
                .filter(|(_, id)| Some(**id) == b.budget_id)
                .map(|(p, _)| (p.params, p.loss))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            pts
        })
        .collect()
}

fn flags_text(flags: &[VertexFlag]) -> &'static str {
    if flags.contains(&VertexFlag::OutsideSampledRange) {
        "outside the sampled sizes"
    } else if flags.contains(&VertexFlag::NotConvex) {
        "not convex"
    } else {
        "too few sizes"
    }
}

impl IsoFlop {
    pub(crate) fn new(obs: &Observations, report: &FitReport) -> Option<IsoFlop> {
        let iso: &IsoFlopReport = report.isoflop.as_ref().and_then(|m| m.fitted())?;
        let fit = &iso.fit;
        if fit.budgets.is_empty() {
            return None;
        }
        let points = budget_points(iso);
        let mut budgets = Vec::new();
        for (b, pts) in fit.budgets.iter().zip(points) {
            let vertex = match (b.params_star, b.loss_star) {
                (Some(n), Some(l)) if n > 0.0 && l.is_finite() => Some((n, l)),
                _ => None,
            };
            let parabola = match (vertex, b.curvature) {
                (Some((n_star, l_star)), Some(c2)) if c2.is_finite() => {
                    let lo = b.params_range.0.min(n_star) / 1.15;
                    let hi = b.params_range.1.max(n_star) * 1.15;
                    Axis::log10(1.0, 2.0)
                        .grid(lo, hi, 60)
                        .into_iter()
                        .map(|n| (n, l_star + c2 * (n / n_star).ln().powi(2)))
                        .collect()
                }
                _ => Vec::new(),
            };
            budgets.push(Budget {
                compute: b.compute,
                points: pts,
                parabola,
                vertex,
                valid: b.is_valid(),
                problem: (!b.is_valid()).then(|| flags_text(&b.flags)),
            });
        }
        let valid: Vec<&BudgetVertex> = fit.budgets.iter().filter(|b| b.is_valid()).collect();
        let (c_lo, c_hi) = valid.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), b| {
            (lo.min(b.compute), hi.max(b.compute))
        });
        let law_grid = if c_hi > 0.0 && c_lo.is_finite() {
            Axis::log10(1.0, 2.0).grid(c_lo / 1.3, c_hi * 1.3, 60)
        } else {
            Vec::new()
        };
        let law: Vec<(f64, f64)> = law_grid
            .iter()
            .map(|&c| (c, fit.params_law.predict(c)))
            .filter(|p| p.1 > 0.0 && p.1.is_finite())
            .collect();
        let samples = iso.samples.as_ref();
        let cols = samples.and_then(|s| {
            Some((
                super::column(s, "params_log_a")?,
                super::column(s, "params_b")?,
            ))
        });
        let band = cols.and_then(|(la, b)| {
            super::bootstrap_band(samples, &law_grid, |p, c| (p[la] + p[b] * c.ln()).exp())
        });
        let band_text = super::band_text(samples);
        let law_text = format!("N*(C) = a·C^b: b = {}", axis::plain(fit.params_law.b));

        let x = Axis::covering(
            Scale::Log10,
            budgets
                .iter()
                .flat_map(|b| b.points.iter().map(|p| p.0).chain(b.vertex.map(|v| v.0))),
            0.05,
        )?
        .si();
        let y = Axis::covering(
            Scale::Log10,
            budgets
                .iter()
                .flat_map(|b| b.points.iter().map(|p| p.1).chain(b.vertex.map(|v| v.1))),
            0.06,
        )?;
        let c_axis = Axis::covering(
            Scale::Log10,
            budgets
                .iter()
                .map(|b| b.compute)
                .chain(law.iter().map(|p| p.0)),
            0.06,
        )?
        .si();
        let n_axis = Axis::covering(
            Scale::Log10,
            budgets
                .iter()
                .filter_map(|b| b.vertex.map(|v| v.0))
                .chain(law.iter().map(|p| p.1)),
            0.08,
        )
        .unwrap_or_else(|| x.clone())
        .si();
        let how = if iso.interpolated {
            "budgets interpolated along each size's epoch budgets"
        } else {
            "runs grouped by equal compute"
        };
        let subtitle = format!(
            "{} · {}, {} used · {how}",
            obs.source,
            super::count(budgets.len(), "budget"),
            super::count(valid.len(), "vertex")
        );
        Some(IsoFlop {
            subtitle,
            y_desc: super::loss_title(obs, "Best validation loss"),
            budgets,
            law,
            law_text,
            band,
            band_text,
            x,
            y,
            c_axis,
            n_axis,
        })
    }
}

impl Render for IsoFlop {
    fn size(&self) -> (u32, u32) {
        (1600, 850)
    }

    fn render<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = style::title_block(root, TITLE, &self.subtitle)?;
        let (w, _) = body.dim_in_pixel();
        let (plots, side) = body.split_horizontally(w - LEGEND_WIDTH);
        let (pw, _) = plots.dim_in_pixel();
        let (left, right) = plots.split_horizontally(pw * 3 / 5);
        let m = self.budgets.len();

        let mut chart = style::chart(
            &left,
            "Loss against size at each budget",
            &self.x,
            &self.y,
            "Parameters N",
            &self.y_desc,
        )?;
        for (k, b) in self.budgets.iter().enumerate() {
            let colour = style::budget_colour(k, m);
            style::line(
                &mut chart,
                &b.parabola,
                ShapeStyle::from(colour.mix(0.8)).stroke_width(2),
            )?;
            for p in &b.points {
                style::mark(&chart, *p, Marker::new(Shape::Circle, 5, colour))?;
            }
        }
        for (k, b) in self.budgets.iter().enumerate() {
            if let Some(v) = b.vertex {
                let marker = Marker::new(Shape::Diamond, 7, style::budget_colour(k, m));
                let marker = if b.valid {
                    marker.edged()
                } else {
                    marker.hollow()
                };
                style::mark(&chart, v, marker)?;
            }
        }

        let mut chart = style::chart(
            &right,
            "Compute-optimal size",
            &self.c_axis,
            &self.n_axis,
            "Training compute C (FLOPs)",
            "Optimal size N*",
        )?;
        if let Some((lo, hi)) = &self.band {
            style::band(&mut chart, lo, hi, INK.mix(0.13))?;
        }
        style::line(&mut chart, &self.law, ShapeStyle::from(INK).stroke_width(3))?;
        for (k, b) in self.budgets.iter().enumerate() {
            if let Some(v) = b.vertex {
                let marker = Marker::new(Shape::Diamond, 7, style::budget_colour(k, m));
                let marker = if b.valid {
                    marker.edged()
                } else {
                    marker.hollow()
                };
                style::mark(&chart, (b.compute, v.0), marker)?;
            }
        }

        let mut entries = vec![Entry::heading("Budget")];
        for (k, b) in self.budgets.iter().enumerate() {
            entries.push(Entry::new(
                Key::LineMarker {
                    colour: style::budget_colour(k, m).to_rgba(),
                    marker: Marker::new(Shape::Circle, 5, style::budget_colour(k, m)),
                },
                match b.problem {
                    Some(p) => format!("C = {} FLOPs ({p})", axis::si(b.compute)),
                    None => format!("C = {} FLOPs", axis::si(b.compute)),
                },
            ));
        }
        entries.push(Entry::heading("Vertices"));
        if self.budgets.iter().any(|b| b.valid) {
            entries.push(Entry::marker(
                Marker::new(Shape::Diamond, 7, style::GREY).edged(),
                "vertex used by the law",
            ));
        }
        if self.budgets.iter().any(|b| b.vertex.is_some() && !b.valid) {
            entries.push(Entry::marker(
                Marker::new(Shape::Diamond, 7, style::GREY).hollow(),
                "vertex left out (outside the sampled sizes)",
            ));
        }
        if !self.law.is_empty() {
            entries.push(Entry::heading("Law"));
            entries.push(Entry::line(INK, 3, self.law_text.clone()));
            if self.band.is_some() {
                entries.push(Entry::new(Key::Band(INK.mix(0.13)), self.band_text.clone()));
            }
        }
        style::legend(&side, &entries, 14)?;
        Ok(())
    }
}
