//! Training curves: training and validation loss against examples seen, for a few trials.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axis::{Axis, Scale};
use super::style::{self, Entry, Key, Marker, Shape, INK, LEGEND_WIDTH};
use super::{DrawError, Figure, Format, PlotError, Render};
use crate::store::MetricRow;

pub(crate) const NAME: &str = "training_curves";
const TITLE: &str = "Training curves";

/// Draws the validation loss (solid, with markers) and the training loss (dashed) of each
/// `(label, evaluation points)` against examples seen (log–log), one colour per trial in the
/// order given (viridis: pass them in increasing size). `None` when no trial has a finite loss
/// after its first example.
pub fn training_curves(
    curves: &[(String, Vec<MetricRow>)],
    loss_title: &str,
    path: &Path,
    format: Format,
) -> Result<Option<Figure>, PlotError> {
    match TrainingCurves::new(curves) {
        Some(mut figure) => {
            figure.y_title = loss_title.to_string();
            super::save(NAME, TITLE, &figure, path, format).map(Some)
        }
        None => Ok(None),
    }
}

struct Trial {
    label: String,
    val: Vec<(f64, f64)>,
    train: Vec<(f64, f64)>,
}

pub(crate) struct TrainingCurves {
    subtitle: String,
    y_title: String,
    trials: Vec<Trial>,
    x: Axis,
    y: Axis,
}

fn series(rows: &[MetricRow], loss: impl Fn(&MetricRow) -> Option<f64>) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.examples as f64, loss(r)?)))
        .filter(|(x, y)| *x > 0.0 && y.is_finite() && *y > 0.0)
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

impl TrainingCurves {
    pub(crate) fn new(curves: &[(String, Vec<MetricRow>)]) -> Option<TrainingCurves> {
        let trials: Vec<Trial> = curves
            .iter()
            .map(|(label, rows)| Trial {
                label: label.clone(),
                val: series(rows, |r| r.val_loss),
                train: series(rows, |r| r.train_loss),
            })
            .filter(|t| !t.val.is_empty() || !t.train.is_empty())
            .collect();
        if trials.is_empty() {
            return None;
        }
        let all = || {
            trials
                .iter()
                .flat_map(|t| t.val.iter().chain(t.train.iter()))
        };
        let x = Axis::covering(Scale::Log10, all().map(|p| p.0), 0.03)?.si();
        // Early spikes (a loss of 90 at the second step) would flatten everything else.
        let median = super::median(all().map(|p| p.1))?;
        let top = all()
            .map(|p| p.1)
            .filter(|l| *l <= 4.0 * median)
            .fold(0.0, f64::max);
        let bottom = all().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let y = Axis::covering(Scale::Log10, [bottom, top], 0.05)?;
        let clipped = all().any(|p| p.1 > top);
        let subtitle = format!(
            "{} · validation loss solid, training loss dashed{}",
            super::count(trials.len(), "trial"),
            if clipped {
                " · early losses above the top edge clipped"
            } else {
                ""
            }
        );
        Some(TrainingCurves {
            subtitle,
            y_title: "Loss".into(),
            trials,
            x,
            y,
        })
    }
}

impl Render for TrainingCurves {
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
            "Examples seen D",
            &self.y_title,
        )?;
        let n = self.trials.len();
        for (i, t) in self.trials.iter().enumerate() {
            let colour = style::size_colour(i, n);
            style::dashed(
                &mut chart,
                &t.train,
                ShapeStyle::from(colour.mix(0.75)).stroke_width(2),
            )?;
            style::line(&mut chart, &t.val, ShapeStyle::from(colour).stroke_width(3))?;
            for p in &t.val {
                style::mark(&chart, *p, Marker::new(Shape::Circle, 4, colour))?;
            }
        }
        let mut entries = vec![Entry::heading("Trial")];
        for (i, t) in self.trials.iter().enumerate() {
            let colour = style::size_colour(i, n);
            entries.push(Entry::new(
                Key::LineMarker {
                    colour: colour.to_rgba(),
                    marker: Marker::new(Shape::Circle, 4, colour),
                },
                t.label.clone(),
            ));
        }
        entries.push(Entry::heading("Loss"));
        entries.push(Entry::new(
            Key::LineMarker {
                colour: INK.to_rgba(),
                marker: Marker::new(Shape::Circle, 4, INK),
            },
            "validation",
        ));
        entries.push(Entry::dashed(
            INK,
            2,
            "training (mean since the last evaluation)",
        ));
        style::legend(&side, &entries, 14)?;
        Ok(())
    }
}
