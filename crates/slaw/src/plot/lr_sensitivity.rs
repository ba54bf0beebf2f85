//! Final validation loss against learning rate: one panel per budget, one curve per model size,
//! each cell's optimum and the local parabola that found it, diverged runs at the top edge.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Scale};
use super::style::{self, Entry, Marker, Shape, INK, LEGEND_WIDTH, TITLE_HEIGHT};
use super::{DrawError, Figure, Format, PlotError, Render};
use crate::analysis::laws::{FitReport, LrCell};
use crate::analysis::observations::{Observations, Run};

pub(crate) const NAME: &str = "lr_sensitivity";
const TITLE: &str = "Sensitivity to the learning rate";
/// At most this many panels: budgets closer than a growing tolerance share one beyond it.
const MAX_PANELS: usize = 12;
/// Where diverged runs are drawn, as a fraction of a panel's height.
const DIVERGED_AT: f64 = 0.955;

/// Draws the final validation loss against the learning rate (log scale): a panel per epoch
/// budget, a curve per model size, each cell's optimum (from the LR fit), the local parabola
/// through the best rate and its neighbours, and diverged runs as × at the panel's top edge.
/// `None` when no run has a learning rate.
pub fn lr_sensitivity(
    obs: &Observations,
    report: &FitReport,
    path: &Path,
    format: Format,
) -> Result<Option<Figure>, PlotError> {
    match LrSensitivity::new(obs, report) {
        Some(figure) => super::save(NAME, TITLE, &figure, path, format).map(Some),
        None => Ok(None),
    }
}

/// One size in one panel.
struct Series {
    size: usize,
    /// `(lr, loss)` of finite runs, by rate.
    points: Vec<(f64, f64)>,
    /// Rates of diverged runs.
    diverged: Vec<f64>,
    /// `(lr*, loss*)` and whether the laws use it.
    optimum: Option<((f64, f64), bool)>,
    /// The parabola through the best rate and its neighbours.
    parabola: Vec<(f64, f64)>,
}

struct Panel {
    caption: String,
    series: Vec<Series>,
    y: Axis,
    diverged: bool,
    all_diverged: bool,
}

pub(crate) struct LrSensitivity {
    subtitle: String,
    y_desc: String,
    sizes: Vec<(String, f64)>,
    panels: Vec<Panel>,
    x: Axis,
    has_edge: bool,
    has_used: bool,
    has_parabola: bool,
    has_diverged: bool,
}

/// Budgets (D) grouped so that there are at most [`MAX_PANELS`] groups; each group is the
/// range of D it covers.
fn budget_groups(mut budgets: Vec<f64>) -> Vec<(f64, f64)> {
    budgets.sort_by(f64::total_cmp);
    budgets.dedup();
    let mut tolerance = 0.05;
    loop {
        let mut groups: Vec<(f64, f64)> = Vec::new();
        for &d in &budgets {
            match groups.last_mut() {
                Some(g) if d <= g.0 * (1.0 + tolerance) => g.1 = d,
                _ => groups.push((d, d)),
            }
        }
        if groups.len() <= MAX_PANELS || !tolerance.is_finite() {
            return groups;
        }
        tolerance *= 2.0;
    }
}

/// The parabola in log₂(lr) through three points, sampled between the outer two.
fn parabola(p: [(f64, f64); 3]) -> Vec<(f64, f64)> {
    let u: Vec<f64> = p.iter().map(|q| q.0.log2()).collect();
    let y = [p[0].1, p[1].1, p[2].1];
    if (u[0] - u[1]).abs() < 1e-12 || (u[1] - u[2]).abs() < 1e-12 || (u[0] - u[2]).abs() < 1e-12 {
        return Vec::new();
    }
    let at = |x: f64| {
        y[0] * (x - u[1]) * (x - u[2]) / ((u[0] - u[1]) * (u[0] - u[2]))
            + y[1] * (x - u[0]) * (x - u[2]) / ((u[1] - u[0]) * (u[1] - u[2]))
            + y[2] * (x - u[0]) * (x - u[1]) / ((u[2] - u[0]) * (u[2] - u[1]))
    };
    (0..=40)
        .map(|i| {
            let x = u[0] + (u[2] - u[0]) * i as f64 / 40.0;
            (x.exp2(), at(x))
        })
        .collect()
}

/// The parabola of a cell whose optimum came from one (no flags): through the best rate and
/// its neighbours in rate order.
fn cell_parabola(runs: &[&Run], cell: Option<&LrCell>) -> Vec<(f64, f64)> {
    let Some(opt) = cell.and_then(|c| c.optimum.as_ref()) else {
        return Vec::new();
    };
    if !opt.flags.is_empty() {
        return Vec::new();
    }
    let mut by_rate: Vec<(f64, Option<f64>)> = runs
        .iter()
        .filter_map(|r| r.lr.map(|lr| (lr, super::finite_loss(r))))
        .collect();
    by_rate.sort_by(|a, b| a.0.total_cmp(&b.0));
    let Some(best) = by_rate.iter().position(|(lr, _)| *lr == opt.best_lr) else {
        return Vec::new();
    };
    if best == 0 || best + 1 >= by_rate.len() {
        return Vec::new();
    }
    match (by_rate[best - 1], by_rate[best], by_rate[best + 1]) {
        ((u0, Some(y0)), (u1, Some(y1)), (u2, Some(y2))) => {
            parabola([(u0, y0), (u1, y1), (u2, y2)])
        }
        _ => Vec::new(),
    }
}

fn epochs_text(e: f64) -> String {
    if e == 1.0 {
        "1 epoch".to_string()
    } else {
        format!("{} epochs", super::axis::plain(e))
    }
}

impl LrSensitivity {
    pub(crate) fn new(obs: &Observations, report: &FitReport) -> Option<LrSensitivity> {
        let runs: Vec<&Run> = obs
            .runs
            .iter()
            .filter(|r| r.lr.is_some_and(|lr| lr > 0.0 && lr.is_finite()))
            .collect();
        if runs.is_empty() {
            return None;
        }
        let sizes = super::sizes(obs);
        let cells: &[LrCell] = report
            .lr
            .as_ref()
            .and_then(|m| m.fitted())
            .map_or(&[], |f| f.cells.as_slice());
        let rates: Vec<f64> = runs.iter().filter_map(|r| r.lr).collect();
        let x = Axis::covering(Scale::Log2, rates.iter().copied(), 0.06)?;
        let mut grid = rates.clone();
        grid.sort_by(f64::total_cmp);
        grid.dedup();
        let x = if grid.len() <= 12 {
            x.with_ticks(grid)
        } else {
            x
        };

        let all_finite: Vec<f64> = runs.iter().filter_map(|r| super::finite_loss(r)).collect();
        let groups = budget_groups(runs.iter().map(|r| r.examples).collect());
        let mut panels = Vec::new();
        for (d_lo, d_hi) in groups {
            let here: Vec<&Run> = runs
                .iter()
                .copied()
                .filter(|r| r.examples >= d_lo && r.examples <= d_hi)
                .collect();
            let mut series = Vec::new();
            for (i, (name, params)) in sizes.iter().enumerate() {
                let mine: Vec<&Run> = here
                    .iter()
                    .copied()
                    .filter(|r| &r.size == name && r.params.to_bits() == params.to_bits())
                    .collect();
                if mine.is_empty() {
                    continue;
                }
                let mut points: Vec<(f64, f64)> = mine
                    .iter()
                    .filter_map(|r| Some((r.lr?, super::finite_loss(r)?)))
                    .filter(|p| p.1 > 0.0)
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let diverged: Vec<f64> = mine
                    .iter()
                    .filter(|r| super::finite_loss(r).is_none())
                    .filter_map(|r| r.lr)
                    .collect();
                // The cell of this size at this budget (one D when budgets were not merged).
                let cell = cells.iter().find(|c| {
                    c.params.to_bits() == params.to_bits()
                        && c.examples >= d_lo
                        && c.examples <= d_hi
                        && c.size == *name
                });
                let optimum = cell.and_then(|c| {
                    let o = c.optimum.as_ref()?;
                    (o.lr_star > 0.0 && o.loss_star.is_finite())
                        .then_some(((o.lr_star, o.loss_star), c.used))
                });
                let parabola = if d_lo == d_hi {
                    cell_parabola(&mine, cell)
                } else {
                    Vec::new()
                };
                series.push(Series {
                    size: i,
                    points,
                    diverged,
                    optimum,
                    parabola,
                });
            }
            let losses: Vec<f64> = series
                .iter()
                .flat_map(|s| {
                    s.points
                        .iter()
                        .map(|p| p.1)
                        .chain(s.optimum.map(|o| o.0 .1))
                })
                .collect();
            let all_diverged = losses.is_empty();
            let y = Axis::covering(Scale::Log10, losses, 0.06)
                .or_else(|| Axis::covering(Scale::Log10, all_finite.iter().copied(), 0.06))
                .unwrap_or_else(|| Axis::log10(1.0, 10.0));
            let diverged = series.iter().any(|s| !s.diverged.is_empty());
            let y = if diverged { y.extended(0.0, 0.1) } else { y };
            let epochs: Vec<f64> = here.iter().filter_map(|r| r.epochs).collect();
            let same_epochs = !epochs.is_empty()
                && epochs.len() == here.len()
                && epochs.iter().all(|e| *e == epochs[0]);
            let d = if d_lo == d_hi {
                format!("D = {}", super::axis::si(d_lo))
            } else {
                format!("D = {}–{}", super::axis::si(d_lo), super::axis::si(d_hi))
            };
            let caption = if same_epochs {
                format!("{} · {d} examples", epochs_text(epochs[0]))
            } else {
                format!("{d} examples")
            };
            panels.push(Panel {
                caption,
                series,
                y,
                diverged,
                all_diverged,
            });
        }
        let every = || panels.iter().flat_map(|p| p.series.iter());
        let has_edge = every().any(|s| s.optimum.is_some_and(|o| !o.1));
        let has_used = every().any(|s| s.optimum.is_some_and(|o| o.1));
        let has_parabola = every().any(|s| !s.parabola.is_empty());
        let has_diverged = panels.iter().any(|p| p.diverged);
        let diverged_runs = runs
            .iter()
            .filter(|r| super::finite_loss(r).is_none())
            .count();
        let mut subtitle = format!(
            "{} · {} with a learning rate, {diverged_runs} diverged · optimum: vertex of the \
             parabola in log₂(lr) through the best rate and its neighbours",
            obs.source,
            super::count(runs.len(), "run")
        );
        if cells.is_empty() {
            subtitle = format!(
                "{} · {} · LR fit not available",
                obs.source,
                super::count(runs.len(), "run")
            );
        }
        Some(LrSensitivity {
            subtitle,
            y_desc: super::loss_title(obs, "Final validation loss"),
            sizes,
            panels,
            x,
            has_edge,
            has_used,
            has_parabola,
            has_diverged,
        })
    }

    fn grid(&self) -> (usize, usize) {
        let n = self.panels.len().max(1);
        let cols = (n as f64).sqrt().ceil() as usize;
        (n.div_ceil(cols), cols)
    }
}

impl Render for LrSensitivity {
    fn size(&self) -> (u32, u32) {
        let (rows, cols) = self.grid();
        (
            (cols as u32 * 620 + LEGEND_WIDTH).max(1200),
            (rows as u32 * 440 + TITLE_HEIGHT + 10).max(800),
        )
    }

    fn render<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), DrawError> {
        let body = style::title_block(root, TITLE, &self.subtitle)?;
        let (w, _) = body.dim_in_pixel();
        let (plots, side) = body.split_horizontally(w - LEGEND_WIDTH);
        let (rows, cols) = self.grid();
        let areas = plots.split_evenly((rows, cols));
        let n = self.sizes.len();
        for (k, (panel, area)) in self.panels.iter().zip(areas.iter()).enumerate() {
            let (row, col) = (k / cols, k % cols);
            // Axis titles on the outer panels only: the bottom one of each column, the left
            // one of each row.
            let bottom = row + 1 == rows || k + cols >= self.panels.len();
            let x_desc = if bottom { "Peak learning rate η" } else { "" };
            let y_desc = if col == 0 { self.y_desc.as_str() } else { "" };
            let mut chart = style::chart(area, &panel.caption, &self.x, &panel.y, x_desc, y_desc)?;
            for s in &panel.series {
                let colour = style::size_colour(s.size, n);
                if !s.parabola.is_empty() {
                    style::line(
                        &mut chart,
                        &s.parabola,
                        ShapeStyle::from(colour.mix(0.35)).stroke_width(6),
                    )?;
                }
                style::line(
                    &mut chart,
                    &s.points,
                    ShapeStyle::from(colour).stroke_width(2),
                )?;
                for p in &s.points {
                    style::mark(&chart, *p, Marker::new(Shape::Circle, 4, colour))?;
                }
                let top = panel.y.at_fraction(DIVERGED_AT);
                for lr in &s.diverged {
                    style::mark(&chart, (*lr, top), Marker::new(Shape::Cross, 6, colour))?;
                }
            }
            // Optima above the curves.
            for s in &panel.series {
                if let Some((at, used)) = s.optimum {
                    let marker = Marker::new(Shape::Diamond, 6, style::size_colour(s.size, n));
                    let marker = if used {
                        marker.edged()
                    } else {
                        marker.hollow()
                    };
                    style::mark(&chart, at, marker)?;
                }
            }
            if panel.all_diverged {
                let (pw, ph) = chart.plotting_area().dim_in_pixel();
                style::note(
                    &chart,
                    &["every run diverged".to_string()],
                    (pw as i32 / 2, ph as i32 / 2),
                    Pos::new(HPos::Center, VPos::Center),
                    16,
                )?;
            }
        }

        let mut entries = vec![Entry::heading("Model size")];
        for (i, (name, params)) in self.sizes.iter().enumerate() {
            entries.push(Entry::new(
                style::Key::LineMarker {
                    colour: style::size_colour(i, n).to_rgba(),
                    marker: Marker::new(Shape::Circle, 4, style::size_colour(i, n)),
                },
                super::size_label(name, *params),
            ));
        }
        entries.push(Entry::heading("Optimum of each cell"));
        if self.has_used {
            entries.push(Entry::marker(
                Marker::new(Shape::Diamond, 6, style::GREY).edged(),
                "optimum (parabola vertex)",
            ));
        }
        if self.has_edge {
            entries.push(Entry::marker(
                Marker::new(Shape::Diamond, 6, style::GREY).hollow(),
                "best rate on the grid's edge (not used by the laws)",
            ));
        }
        if self.has_parabola {
            entries.push(Entry::line(
                style::GREY.mix(0.35),
                6,
                "local parabola through the best rate and its neighbours",
            ));
        }
        if self.has_diverged {
            entries.push(Entry::marker(Marker::new(Shape::Cross, 6, INK), "diverged"));
        }
        style::legend(&side, &entries, 14)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_merge_beyond_twelve_panels() {
        assert_eq!(
            budget_groups(vec![4.0, 8.0, 4.0]),
            vec![(4.0, 4.0), (8.0, 8.0)]
        );
        let many: Vec<f64> = (0..40).map(|i| 1000.0 * 1.1f64.powi(i)).collect();
        let groups = budget_groups(many);
        assert!(
            groups.len() <= MAX_PANELS && groups.len() >= 3,
            "{groups:?}"
        );
    }

    #[test]
    fn parabola_passes_through_its_points() {
        let p = parabola([(0.001, 0.7), (0.002, 0.6), (0.004, 0.65)]);
        assert!((p[0].1 - 0.7).abs() < 1e-12);
        assert!((p[20].1 - 0.6).abs() < 1e-12);
        assert!((p[40].1 - 0.65).abs() < 1e-12);
    }
}
