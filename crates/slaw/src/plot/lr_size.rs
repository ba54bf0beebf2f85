//! The optimal learning rate against model size: each cell's optimum coloured by budget, the
//! law `log η* = c0 + c1·log N` with its bootstrap band, and the rate it predicts for the next
//! size.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{self, Axis, Scale};
use super::style::{self, Entry, Key, Marker, Shape, INK, LEGEND_WIDTH};
use super::{DrawError, Figure, Format, PlotError, Render};
use crate::analysis::laws::{FitReport, Method};

pub(crate) const NAME: &str = "lr_vs_size";
const TITLE: &str = "Optimal learning rate against model size";
/// Sideways offset between budgets at one size, in decades of N.
const DODGE: f64 = 0.012;

/// Draws each cell's optimal learning rate (`lr_star`) against N, log–log, coloured by budget
/// (cells the laws leave out, with the best rate on the grid's edge, hollow), the fitted law
/// `log η* = c0 + c1·log N` with its bootstrap band, and the rate it predicts for the next size
/// (the largest N times the median ratio between consecutive sizes). `None` when the LR fit has
/// no cell with an optimum.
pub fn lr_vs_size(
    report: &FitReport,
    path: &Path,
    format: Format,
) -> Result<Option<Figure>, PlotError> {
    match LrVsSize::new(report) {
        Some(figure) => super::save(NAME, TITLE, &figure, path, format).map(Some),
        None => Ok(None),
    }
}

struct Point {
    params: f64,
    lr: f64,
    budget: usize,
    used: bool,
}

struct Prediction {
    params: f64,
    lr: f64,
    interval: Option<(f64, f64)>,
    interval_text: String,
}

pub(crate) struct LrVsSize {
    subtitle: String,
    /// Budget captions, in increasing D.
    budgets: Vec<String>,
    budget_values: Vec<f64>,
    points: Vec<Point>,
    law: Vec<(f64, f64)>,
    law_text: String,
    band: Option<super::Band>,
    band_text: String,
    largest: f64,
    prediction: Option<Prediction>,
    x: Axis,
    y: Axis,
}

impl LrVsSize {
    pub(crate) fn new(report: &FitReport) -> Option<LrVsSize> {
        let fit = report.lr.as_ref().and_then(|m| m.fitted())?;
        let cells: Vec<_> = fit
            .cells
            .iter()
            .filter_map(|c| {
                let o = c.optimum.as_ref()?;
                (o.lr_star > 0.0 && o.lr_star.is_finite() && c.params > 0.0).then_some((c, o))
            })
            .collect();
        if cells.is_empty() {
            return None;
        }
        let mut budget_values: Vec<f64> = cells.iter().map(|(c, _)| c.examples).collect();
        budget_values.sort_by(f64::total_cmp);
        budget_values.dedup();
        let budgets = budget_values
            .iter()
            .map(|d| {
                let epochs = cells
                    .iter()
                    .find(|(c, _)| c.examples == *d)
                    .and_then(|(c, _)| c.epochs);
                match epochs {
                    Some(1.0) => format!("1 epoch · D = {}", axis::si(*d)),
                    Some(e) => format!("{} epochs · D = {}", axis::plain(e), axis::si(*d)),
                    None => format!("D = {}", axis::si(*d)),
                }
            })
            .collect();
        let points: Vec<Point> = cells
            .iter()
            .map(|(c, o)| Point {
                params: c.params,
                lr: o.lr_star,
                budget: budget_values
                    .iter()
                    .position(|d| *d == c.examples)
                    .unwrap_or(0),
                used: c.used,
            })
            .collect();

        let mut sizes: Vec<f64> = points.iter().map(|p| p.params).collect();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        let smallest = sizes[0];
        let largest = sizes[sizes.len() - 1];
        let ratios = sizes.windows(2).map(|w| w[1] / w[0]);
        let next = super::median(ratios)
            .filter(|r| *r > 1.0)
            .map(|r| largest * r);

        let (mut law, mut law_text, mut band, mut band_text, mut prediction) =
            (Vec::new(), String::new(), None, String::new(), None);
        let mut note = String::new();
        match &fit.params_law {
            Method::Fitted(l) => {
                let end = next.unwrap_or(largest);
                let grid = Axis::log10(1.0, 2.0).grid(smallest / 1.2, end * 1.2, 120);
                law = grid.iter().map(|&n| (n, l.predict(n))).collect();
                let samples = fit.params_samples.as_ref();
                let cols =
                    samples.and_then(|s| Some((super::column(s, "c0")?, super::column(s, "c1")?)));
                let value =
                    |p: &[f64], n: f64, (c0, c1): (usize, usize)| (p[c0] + p[c1] * n.ln()).exp();
                if let Some(cols) = cols {
                    band = super::bootstrap_band(samples, &grid, |p, n| value(p, n, cols));
                    if band.is_some() {
                        band_text = super::band_text(samples);
                    }
                }
                let c1_interval = samples
                    .and_then(|s| s.intervals.get("c1"))
                    .map(|iv| format!(" [{}, {}]", axis::plain(iv.lo), axis::plain(iv.hi)))
                    .unwrap_or_default();
                law_text = format!(
                    "log η* = c0 + c1·log N: c1 = {}{c1_interval}",
                    axis::plain(l.c1())
                );
                if let Some(n) = next {
                    let lr = l.predict(n);
                    let (interval, what) = match (samples, cols) {
                        (Some(s), Some(cols)) => (
                            s.interval_of(|p| value(p, n, cols))
                                .map(|iv| (iv.lo, iv.hi)),
                            format!("{:.0} % bootstrap", s.level * 100.0),
                        ),
                        _ => (
                            Some(l.predict_interval(n)),
                            format!("{:.0} % confidence", l.fit.level * 100.0),
                        ),
                    };
                    let interval = interval.filter(|(lo, hi)| *lo > 0.0 && hi.is_finite());
                    let interval_text = match interval {
                        Some((lo, hi)) => {
                            format!("{what}: {} – {}", axis::plain(lo), axis::plain(hi))
                        }
                        None => String::new(),
                    };
                    if lr > 0.0 && lr.is_finite() {
                        prediction = Some(Prediction {
                            params: n,
                            lr,
                            interval,
                            interval_text,
                        });
                    }
                }
            }
            other => note = format!(" · law {}", other.problem().unwrap_or_default()),
        }

        let x_values = points
            .iter()
            .map(|p| p.params)
            .chain(law.iter().map(|p| p.0))
            .chain(prediction.as_ref().map(|p| p.params));
        let x = Axis::covering(Scale::Log10, x_values, 0.05)?.si();
        let y_values = points
            .iter()
            .map(|p| p.lr)
            .chain(law.iter().map(|p| p.1))
            .chain(band.iter().flat_map(|(lo, hi)| {
                // The band where there are data (its extrapolated end may fan out).
                lo.iter()
                    .chain(hi.iter())
                    .filter(|p| p.0 <= largest)
                    .map(|p| p.1)
            }))
            .chain(prediction.iter().flat_map(|p| {
                [Some(p.lr), p.interval.map(|i| i.0), p.interval.map(|i| i.1)]
                    .into_iter()
                    .flatten()
            }));
        let y = Axis::covering(Scale::Log10, y_values, 0.08)?;

        let used = points.iter().filter(|p| p.used).count();
        let subtitle = format!(
            "{} · {}, {used} used by the law · points of one size dodged sideways by budget{note}",
            report.source,
            super::count(points.len(), "cell")
        );
        Some(LrVsSize {
            subtitle,
            budgets,
            budget_values,
            points,
            law,
            law_text,
            band,
            band_text,
            largest,
            prediction,
            x,
            y,
        })
    }
}

impl Render for LrVsSize {
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
            "Parameters N",
            "Optimal peak learning rate η*",
        )?;
        let m = self.budget_values.len();
        if let Some((lo, hi)) = &self.band {
            style::band(&mut chart, lo, hi, INK.mix(0.13))?;
        }
        if !self.law.is_empty() {
            let inside: Vec<(f64, f64)> = self
                .law
                .iter()
                .copied()
                .filter(|p| p.0 <= self.largest)
                .collect();
            let beyond: Vec<(f64, f64)> = self
                .law
                .iter()
                .copied()
                .filter(|p| p.0 >= self.largest)
                .collect();
            let style = ShapeStyle::from(INK).stroke_width(3);
            style::line(&mut chart, &inside, style)?;
            style::dashed(&mut chart, &beyond, style)?;
        }
        for p in &self.points {
            let offset = (p.budget as f64 - (m as f64 - 1.0) / 2.0) * DODGE;
            let at = (p.params * 10f64.powf(offset), p.lr);
            let marker = Marker::new(Shape::Circle, 6, style::budget_colour(p.budget, m));
            let marker = if p.used {
                marker.edged()
            } else {
                marker.hollow()
            };
            style::mark(&chart, at, marker)?;
        }
        if let Some(p) = &self.prediction {
            if let Some((lo, hi)) = p.interval {
                let s = ShapeStyle::from(INK).stroke_width(2);
                style::line(&mut chart, &[(p.params, lo), (p.params, hi)], s)?;
                for end in [lo, hi] {
                    let (px, py) = style::pixel(&chart, (p.params, end));
                    let area = chart.plotting_area().strip_coord_spec();
                    area.draw(&PathElement::new(vec![(px - 7, py), (px + 7, py)], s))?;
                }
            }
            style::mark(
                &chart,
                (p.params, p.lr),
                Marker::new(Shape::Star, 8, RGBColor(255, 255, 255)).edged(),
            )?;
            let mut lines = vec![
                format!("next size N ≈ {}", axis::si(p.params)),
                format!("η* ≈ {}", axis::plain(p.lr)),
            ];
            if !p.interval_text.is_empty() {
                lines.push(p.interval_text.clone());
            }
            // Beside the star where that is free, else in a free corner.
            let lower = p.interval.map_or(p.lr, |i| i.0);
            let upper = p.interval.map_or(p.lr, |i| i.1);
            let (px, py_low) = style::pixel(&chart, (p.params, lower));
            let (_, py_high) = style::pixel(&chart, (p.params, upper));
            let (pw, ph) = chart.plotting_area().dim_in_pixel();
            let (pw, ph) = (pw as i32, ph as i32);
            let candidates = [
                ((px - 16, py_low + 12), Pos::new(HPos::Right, VPos::Top)),
                ((px - 16, py_high - 12), Pos::new(HPos::Right, VPos::Bottom)),
                ((pw - 12, 12), Pos::new(HPos::Right, VPos::Top)),
                ((pw - 12, ph - 12), Pos::new(HPos::Right, VPos::Bottom)),
                ((12, ph - 12), Pos::new(HPos::Left, VPos::Bottom)),
                ((12, 12), Pos::new(HPos::Left, VPos::Top)),
            ];
            let mut obstacles: Vec<(f64, f64)> = self.law.clone();
            obstacles.extend(self.points.iter().map(|q| (q.params, q.lr)));
            obstacles.extend(
                Axis::log10(1.0, 2.0)
                    .grid(lower, upper, 12)
                    .into_iter()
                    .map(|y| (p.params, y)),
            );
            style::note_avoiding(&chart, &lines, &candidates, &obstacles, 16)?;
        }

        let mut entries = vec![Entry::heading("Budget")];
        for (j, text) in self.budgets.iter().enumerate() {
            entries.push(Entry::marker(
                Marker::new(Shape::Circle, 6, style::budget_colour(j, m)).edged(),
                text.clone(),
            ));
        }
        entries.push(Entry::heading("Cells"));
        if self.points.iter().any(|p| p.used) {
            entries.push(Entry::marker(
                Marker::new(Shape::Circle, 6, style::GREY).edged(),
                "optimum inside the grid (used by the law)",
            ));
        }
        if self.points.iter().any(|p| !p.used) {
            entries.push(Entry::marker(
                Marker::new(Shape::Circle, 6, style::GREY).hollow(),
                "best rate on the grid's edge (not used)",
            ));
        }
        if !self.law.is_empty() {
            entries.push(Entry::heading("Law"));
            entries.push(Entry::line(INK, 3, self.law_text.clone()));
            if self.band.is_some() {
                entries.push(Entry::new(Key::Band(INK.mix(0.13)), self.band_text.clone()));
            }
            if self.prediction.is_some() {
                entries.push(Entry::marker(
                    Marker::new(Shape::Star, 8, RGBColor(255, 255, 255)).edged(),
                    "predicted for the next size",
                ));
                entries.push(Entry::dashed(INK, 3, "dashed: extrapolated"));
            }
        }
        style::legend(&side, &entries, 14)?;
        Ok(())
    }
}
