//! What the figures share: fonts, palettes, markers, the title block, the legend column, chart
//! frames, and lines and bands clipped to the plotting area.

use plotters::chart::ChartContext;
use plotters::coord::cartesian::Cartesian2d;
use plotters::coord::{CoordTranslate, Shift};
use plotters::element::{DashedPathElement, Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::Axis;
use super::DrawError;

/// The font family of every text (the vendored DejaVu Sans is registered under this name).
pub(crate) const FONT: &str = "sans-serif";

/// Width of the legend column at the right of a figure.
pub(crate) const LEGEND_WIDTH: u32 = 360;

pub(crate) const GREY: RGBColor = RGBColor(90, 90, 90);
pub(crate) const INK: RGBColor = RGBColor(25, 25, 25);
/// Okabe–Ito vermillion, for a second law next to a black one.
pub(crate) const VERMILLION: RGBColor = RGBColor(213, 94, 0);

/// A text style of `size` pixels.
pub(crate) fn text(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&INK)
}

/// A text style of `size` pixels in grey.
pub(crate) fn grey_text(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font()).color(&GREY)
}

// ---------------------------------------------------------------------------------------------
// Palettes
// ---------------------------------------------------------------------------------------------

const VIRIDIS: [(u8, u8, u8); 11] = [
    (0x44, 0x01, 0x54),
    (0x48, 0x24, 0x75),
    (0x41, 0x44, 0x87),
    (0x35, 0x5f, 0x8d),
    (0x2a, 0x78, 0x8e),
    (0x21, 0x91, 0x8c),
    (0x22, 0xa8, 0x84),
    (0x44, 0xbf, 0x70),
    (0x7a, 0xd1, 0x51),
    (0xbd, 0xdf, 0x26),
    (0xfd, 0xe7, 0x25),
];

const PLASMA: [(u8, u8, u8); 11] = [
    (0x0d, 0x08, 0x87),
    (0x41, 0x04, 0x9d),
    (0x6a, 0x00, 0xa8),
    (0x8f, 0x0d, 0xa4),
    (0xb1, 0x2a, 0x90),
    (0xcc, 0x47, 0x78),
    (0xe1, 0x64, 0x62),
    (0xf2, 0x84, 0x4b),
    (0xfc, 0xa6, 0x36),
    (0xfc, 0xce, 0x25),
    (0xf0, 0xf9, 0x21),
];

fn sample(map: &[(u8, u8, u8); 11], t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * 10.0;
    let i = (x.floor() as usize).min(9);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + f * (b as f64 - a as f64)).round() as u8;
    let (a, b) = (map[i], map[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

fn position(i: usize, n: usize, top: f64) -> f64 {
    if n <= 1 {
        0.4 * top
    } else {
        top * i as f64 / (n - 1) as f64
    }
}

/// Colour `i` of `n` ordered by model size: viridis, leaving out its palest yellows so that
/// every line reads on white.
pub(crate) fn size_colour(i: usize, n: usize) -> RGBColor {
    sample(&VIRIDIS, position(i, n, 0.86))
}

/// Colour `i` of `n` ordered by budget: plasma, leaving out its palest yellows.
pub(crate) fn budget_colour(i: usize, n: usize) -> RGBColor {
    sample(&PLASMA, position(i, n, 0.78))
}

// ---------------------------------------------------------------------------------------------
// Markers
// ---------------------------------------------------------------------------------------------

/// A marker's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Circle,
    Diamond,
    Star,
    Cross,
}

/// A marker: shape, radius in pixels, fill and edge.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Marker {
    pub shape: Shape,
    pub size: i32,
    pub colour: RGBAColor,
    /// Filled in its colour (else only its edge, in its colour).
    pub filled: bool,
    /// A dark edge around a filled marker.
    pub edged: bool,
}

impl Marker {
    pub fn new(shape: Shape, size: i32, colour: impl Color) -> Marker {
        Marker {
            shape,
            size,
            colour: colour.to_rgba(),
            filled: true,
            edged: false,
        }
    }

    pub fn hollow(mut self) -> Marker {
        self.filled = false;
        self
    }

    pub fn edged(mut self) -> Marker {
        self.edged = true;
        self
    }

    fn outline(&self) -> Vec<(i32, i32)> {
        let r = self.size;
        match self.shape {
            Shape::Circle | Shape::Cross => Vec::new(),
            Shape::Diamond => {
                let r = r + r / 3;
                vec![(0, -r), (r, 0), (0, r), (-r, 0)]
            }
            Shape::Star => (0..10)
                .map(|k| {
                    let radius = if k % 2 == 0 {
                        r as f64 * 1.5
                    } else {
                        r as f64 * 0.65
                    };
                    let angle = std::f64::consts::PI * (k as f64 / 5.0 - 0.5);
                    (
                        (radius * angle.cos()).round() as i32,
                        (radius * angle.sin()).round() as i32,
                    )
                })
                .collect(),
        }
    }

    /// Draws the marker at `at` on `area` (data coordinates on a chart, pixels elsewhere).
    pub fn draw<DB, CT>(&self, area: &DrawingArea<DB, CT>, at: CT::From) -> Result<(), DrawError>
    where
        DB: DrawingBackend,
        CT: CoordTranslate,
        CT::From: Clone + 'static,
    {
        let edge = if self.edged {
            INK.to_rgba()
        } else {
            self.colour
        };
        let stroke = ShapeStyle::from(edge).stroke_width(if self.filled { 1 } else { 2 });
        let fill = ShapeStyle::from(self.colour).filled();
        let r = self.size;
        match self.shape {
            Shape::Circle => {
                if self.filled {
                    draw(
                        area,
                        EmptyElement::at(at.clone()) + Circle::new((0, 0), r, fill),
                    )?;
                }
                if self.edged || !self.filled {
                    draw(area, EmptyElement::at(at) + Circle::new((0, 0), r, stroke))?;
                }
            }
            Shape::Cross => {
                let s = ShapeStyle::from(self.colour).stroke_width(3);
                draw(
                    area,
                    EmptyElement::at(at.clone()) + PathElement::new(vec![(-r, -r), (r, r)], s),
                )?;
                draw(
                    area,
                    EmptyElement::at(at) + PathElement::new(vec![(-r, r), (r, -r)], s),
                )?;
            }
            Shape::Diamond | Shape::Star => {
                let outline = self.outline();
                if self.filled {
                    draw(
                        area,
                        EmptyElement::at(at.clone()) + Polygon::new(outline.clone(), fill),
                    )?;
                }
                if self.edged || !self.filled {
                    let mut closed = outline;
                    closed.push(closed[0]);
                    draw(
                        area,
                        EmptyElement::at(at) + PathElement::new(closed, stroke),
                    )?;
                }
            }
        }
        Ok(())
    }
}

fn draw<DB, CT, E>(area: &DrawingArea<DB, CT>, element: E) -> Result<(), DrawError>
where
    DB: DrawingBackend,
    CT: CoordTranslate,
    E: Drawable<DB>,
    for<'b> &'b E: PointCollection<'b, CT::From>,
{
    area.draw(&element)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Title block and legend
// ---------------------------------------------------------------------------------------------

/// Height of the title block.
pub(crate) const TITLE_HEIGHT: u32 = 78;

/// Draws `title` and a grey `subtitle` across the top of `root`; returns the area below.
pub(crate) fn title_block<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    subtitle: &str,
) -> Result<DrawingArea<DB, Shift>, DrawError> {
    let (w, _) = root.dim_in_pixel();
    let centre = Pos::new(HPos::Center, VPos::Top);
    root.draw(&Text::new(
        title.to_string(),
        (w as i32 / 2, 12),
        text(28).pos(centre),
    ))?;
    if !subtitle.is_empty() {
        // Smaller, then cut short, rather than past the edges.
        let room = w.saturating_sub(40);
        let mut size = 16;
        while size > 12 && root.estimate_text_size(subtitle, &grey_text(size))?.0 > room {
            size -= 1;
        }
        let mut shown = subtitle.to_string();
        while root.estimate_text_size(&shown, &grey_text(size))?.0 > room {
            let keep = shown.chars().count().saturating_sub(2);
            if keep == 0 {
                break;
            }
            shown = shown.chars().take(keep).collect::<String>() + "…";
        }
        root.draw(&Text::new(
            shown,
            (w as i32 / 2, 48),
            grey_text(size).pos(centre),
        ))?;
    }
    Ok(root.split_vertically(TITLE_HEIGHT).1)
}

/// What a legend entry shows beside its text.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    /// A line (dashed or not) of a width.
    Line {
        colour: RGBAColor,
        width: u32,
        dashed: bool,
    },
    /// A line through a marker.
    LineMarker { colour: RGBAColor, marker: Marker },
    /// A marker.
    Marker(Marker),
    /// A filled band.
    Band(RGBAColor),
    /// No key: a heading.
    Heading,
}

/// One legend entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: Key,
    pub text: String,
}

impl Entry {
    pub fn new(key: Key, text: impl Into<String>) -> Entry {
        Entry {
            key,
            text: text.into(),
        }
    }

    pub fn heading(text: impl Into<String>) -> Entry {
        Entry::new(Key::Heading, text)
    }

    pub fn line(colour: impl Color, width: u32, text: impl Into<String>) -> Entry {
        Entry::new(
            Key::Line {
                colour: colour.to_rgba(),
                width,
                dashed: false,
            },
            text,
        )
    }

    pub fn dashed(colour: impl Color, width: u32, text: impl Into<String>) -> Entry {
        Entry::new(
            Key::Line {
                colour: colour.to_rgba(),
                width,
                dashed: true,
            },
            text,
        )
    }

    pub fn marker(marker: Marker, text: impl Into<String>) -> Entry {
        Entry::new(Key::Marker(marker), text)
    }
}

/// Draws the entries top-down in `area` (a column beside the charts), shrinking the text when
/// they do not fit; a text too long for the column wraps at spaces.
pub(crate) fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
    top: i32,
) -> Result<(), DrawError> {
    let (w, h) = area.dim_in_pixel();
    let key_width = 44;
    let text_left = key_width + 12;
    let text_width = (w as i32 - text_left - 20).max(40) as u32;
    // Shrink until everything fits.
    let mut size = 16u32;
    let lines = loop {
        let style = text(size);
        let mut lines: Vec<(usize, String)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            for line in wrap(area, &e.text, &style, text_width)? {
                lines.push((i, line));
            }
        }
        let needed = lines.len() as i32 * (size as i32 + 7)
            + entries
                .iter()
                .filter(|e| matches!(e.key, Key::Heading))
                .count() as i32
                * 10;
        if needed <= h as i32 - top - 10 || size <= 10 {
            break lines;
        }
        size -= 1;
    };
    let row = size as i32 + 7;
    let mut y = top;
    let mut previous: Option<usize> = None;
    for (i, line) in lines {
        let entry = &entries[i];
        let first_line = previous != Some(i);
        previous = Some(i);
        if first_line && matches!(entry.key, Key::Heading) && y > top {
            y += 10;
        }
        let mid = (0, y + row / 2 - 1);
        if first_line {
            let (x0, x1, cy) = (4, key_width, mid.1);
            match &entry.key {
                Key::Line {
                    colour,
                    width,
                    dashed,
                } => {
                    let style = ShapeStyle::from(*colour).stroke_width(*width);
                    if *dashed {
                        area.draw(&DashedPathElement::new(
                            vec![(x0, cy), (x1, cy)],
                            7,
                            5,
                            style,
                        ))?;
                    } else {
                        area.draw(&PathElement::new(vec![(x0, cy), (x1, cy)], style))?;
                    }
                }
                Key::LineMarker { colour, marker } => {
                    let style = ShapeStyle::from(*colour).stroke_width(2);
                    area.draw(&PathElement::new(vec![(x0, cy), (x1, cy)], style))?;
                    marker.draw(area, ((x0 + x1) / 2, cy))?;
                }
                Key::Marker(marker) => marker.draw(area, ((x0 + x1) / 2, cy))?,
                Key::Band(colour) => {
                    area.draw(&Rectangle::new(
                        [(x0, cy - row / 3), (x1, cy + row / 3)],
                        ShapeStyle::from(*colour).filled(),
                    ))?;
                }
                Key::Heading => {}
            }
        }
        let left = if matches!(entry.key, Key::Heading) {
            4
        } else {
            text_left
        };
        area.draw(&Text::new(
            line,
            (left, mid.1),
            text(size).pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
        y += row;
    }
    Ok(())
}

/// `text` broken at spaces into lines no wider than `width`.
fn wrap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    width: u32,
) -> Result<Vec<String>, DrawError> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if !line.is_empty() && area.estimate_text_size(&candidate, style)?.0 > width {
            lines.push(std::mem::replace(&mut line, format!("   {word}")));
        } else {
            line = candidate;
        }
    }
    lines.push(line);
    Ok(lines)
}

// ---------------------------------------------------------------------------------------------
// Charts
// ---------------------------------------------------------------------------------------------

/// A chart on our axes.
pub(crate) type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<Axis, Axis>>;

/// A chart in `area` with a caption (may be empty), its mesh and axis titles drawn.
pub(crate) fn chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    caption: &str,
    x: &Axis,
    y: &Axis,
    x_desc: &str,
    y_desc: &str,
) -> Result<Chart<'a, DB>, DrawError> {
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_top(if caption.is_empty() { 14 } else { 8 })
        .margin_right(24)
        .margin_left(8)
        .margin_bottom(8)
        .x_label_area_size(if x_desc.is_empty() { 32 } else { 58 })
        .y_label_area_size(if y_desc.is_empty() { 58 } else { 84 });
    if !caption.is_empty() {
        builder.caption(caption, text(19));
    }
    let mut chart = builder.build_cartesian_2d(x.clone(), y.clone())?;
    let light = RGBColor(0, 0, 0).mix(0.05);
    let bold = RGBColor(0, 0, 0).mix(0.13);
    chart
        .configure_mesh()
        .x_labels(10)
        .y_labels(10)
        .light_line_style(light)
        .bold_line_style(bold)
        .axis_style(INK.mix(0.8))
        .label_style(text(15))
        .axis_desc_style(text(17))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .draw()?;
    Ok(chart)
}

/// The pieces of the polyline inside the chart (clipped in the axes' space); non-finite points
/// break the line.
pub(crate) fn clip_line(points: &[(f64, f64)], x: &Axis, y: &Axis) -> Vec<Vec<(f64, f64)>> {
    let to = |p: &(f64, f64)| (x.fraction(p.0), y.fraction(p.1));
    let from = |q: (f64, f64)| (x.at_fraction(q.0), y.at_fraction(q.1));
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    for w in points.windows(2) {
        let (a, b) = (to(&w[0]), to(&w[1]));
        let clipped = if [a.0, a.1, b.0, b.1].iter().all(|v| v.is_finite()) {
            clip_segment(a, b)
        } else {
            None
        };
        match clipped {
            Some((p, q)) => {
                let continues = current
                    .last()
                    .is_some_and(|l| (l.0 - p.0).abs() < 1e-12 && (l.1 - p.1).abs() < 1e-12);
                if !continues {
                    if current.len() >= 2 {
                        pieces.push(std::mem::take(&mut current));
                    }
                    current.clear();
                    current.push(p);
                }
                current.push(q);
            }
            None => {
                if current.len() >= 2 {
                    pieces.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    if current.len() >= 2 {
        pieces.push(current);
    }
    pieces
        .into_iter()
        .map(|piece| piece.into_iter().map(from).collect())
        .collect()
}

/// Liang–Barsky: the part of segment `a`–`b` inside the unit square.
fn clip_segment(a: (f64, f64), b: (f64, f64)) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, a.0), (dx, 1.0 - a.0), (-dy, a.1), (dy, 1.0 - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    (t0 <= t1).then_some((
        (a.0 + t0 * dx, a.1 + t0 * dy),
        (a.0 + t1 * dx, a.1 + t1 * dy),
    ))
}

/// The polygon clipped to the chart (Sutherland–Hodgman in the axes' space).
pub(crate) fn clip_polygon(points: &[(f64, f64)], x: &Axis, y: &Axis) -> Vec<(f64, f64)> {
    let mut poly: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (x.fraction(p.0), y.fraction(p.1)))
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .collect();
    // Each edge of the unit square: inside test and intersection.
    type Edge = (fn((f64, f64)) -> f64, usize, f64);
    let edges: [Edge; 4] = [
        (|p| p.0, 0, 0.0),
        (|p| 1.0 - p.0, 0, 1.0),
        (|p| p.1, 1, 0.0),
        (|p| 1.0 - p.1, 1, 1.0),
    ];
    for (inside, axis, bound) in edges {
        if poly.is_empty() {
            break;
        }
        let mut out = Vec::with_capacity(poly.len() + 4);
        for i in 0..poly.len() {
            let (p, q) = (poly[i], poly[(i + 1) % poly.len()]);
            let (ip, iq) = (inside(p) >= 0.0, inside(q) >= 0.0);
            if ip {
                out.push(p);
            }
            if ip != iq {
                let (pa, qa) = if axis == 0 { (p.0, q.0) } else { (p.1, q.1) };
                let t = (bound - pa) / (qa - pa);
                out.push((p.0 + t * (q.0 - p.0), p.1 + t * (q.1 - p.1)));
            }
        }
        poly = out;
    }
    poly.into_iter()
        .map(|q| (x.at_fraction(q.0), y.at_fraction(q.1)))
        .collect()
}

/// Draws a polyline clipped to the chart.
pub(crate) fn line<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    points: &[(f64, f64)],
    style: ShapeStyle,
) -> Result<(), DrawError> {
    let (x, y) = axes(chart);
    for piece in clip_line(points, &x, &y) {
        chart
            .plotting_area()
            .draw(&PathElement::new(piece, style))?;
    }
    Ok(())
}

/// Draws a dashed polyline clipped to the chart.
pub(crate) fn dashed<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    points: &[(f64, f64)],
    style: ShapeStyle,
) -> Result<(), DrawError> {
    let (x, y) = axes(chart);
    for piece in clip_line(points, &x, &y) {
        chart
            .plotting_area()
            .draw(&DashedPathElement::new(piece, 9, 6, style))?;
    }
    Ok(())
}

/// Fills the band between `lower` and `upper` (both along the same x values), clipped.
pub(crate) fn band<DB: DrawingBackend>(
    chart: &mut Chart<DB>,
    lower: &[(f64, f64)],
    upper: &[(f64, f64)],
    colour: RGBAColor,
) -> Result<(), DrawError> {
    if lower.len() < 2 || upper.len() < 2 {
        return Ok(());
    }
    let (x, y) = axes(chart);
    let outline: Vec<(f64, f64)> = lower.iter().chain(upper.iter().rev()).copied().collect();
    let clipped = clip_polygon(&outline, &x, &y);
    if clipped.len() >= 3 {
        chart
            .plotting_area()
            .draw(&Polygon::new(clipped, ShapeStyle::from(colour).filled()))?;
    }
    Ok(())
}

/// Draws `marker` at `(x, y)` if that point is on the chart.
pub(crate) fn mark<DB: DrawingBackend>(
    chart: &Chart<DB>,
    at: (f64, f64),
    marker: Marker,
) -> Result<(), DrawError> {
    let (x, y) = axes(chart);
    if x.contains(at.0) && y.contains(at.1) {
        marker.draw(chart.plotting_area(), at)?;
    }
    Ok(())
}

/// The chart's axes.
pub(crate) fn axes<DB: DrawingBackend>(chart: &Chart<DB>) -> (Axis, Axis) {
    let spec = chart.plotting_area().as_coord_spec();
    (spec.x_spec().clone(), spec.y_spec().clone())
}

/// The box `(left, top, width, height)` that [`note`] fills, kept inside the plotting area.
fn note_box<DB: DrawingBackend>(
    chart: &Chart<DB>,
    lines: &[String],
    at: (i32, i32),
    pos: Pos,
    size: u32,
) -> Result<(i32, i32, i32, i32), DrawError> {
    let area = chart.plotting_area().strip_coord_spec();
    let style = text(size);
    let mut width = 0;
    for l in lines {
        width = width.max(area.estimate_text_size(l, &style)?.0 as i32);
    }
    let height = (size as i32 + 5) * lines.len() as i32;
    let left = match pos.h_pos {
        HPos::Left => at.0,
        HPos::Center => at.0 - width / 2,
        HPos::Right => at.0 - width,
    };
    let top = match pos.v_pos {
        VPos::Top => at.1,
        VPos::Center => at.1 - height / 2,
        VPos::Bottom => at.1 - height,
    };
    let (pw, ph) = area.dim_in_pixel();
    let left = left.min(pw as i32 - width - 8).max(8);
    let top = top.min(ph as i32 - height - 6).max(6);
    Ok((left, top, width, height))
}

/// Writes `lines` at `at` (pixels inside the plotting area), anchored by `pos`, over a white
/// box so that grid lines do not cross them; the box is kept inside the plotting area.
pub(crate) fn note<DB: DrawingBackend>(
    chart: &Chart<DB>,
    lines: &[String],
    at: (i32, i32),
    pos: Pos,
    size: u32,
) -> Result<(), DrawError> {
    let (left, top, width, height) = note_box(chart, lines, at, pos, size)?;
    let area = chart.plotting_area().strip_coord_spec();
    area.draw(&Rectangle::new(
        [(left - 5, top - 4), (left + width + 5, top + height + 2)],
        ShapeStyle::from(WHITE.mix(0.85)).filled(),
    ))?;
    let style = text(size);
    for (i, l) in lines.iter().enumerate() {
        area.draw(&Text::new(
            l.clone(),
            (left, top + i as i32 * (size as i32 + 5)),
            style.pos(Pos::new(HPos::Left, VPos::Top)),
        ))?;
    }
    Ok(())
}

/// [`note`] at whichever of the `candidates` (pixel anchors) covers the fewest `obstacles`
/// (data points, in data coordinates); ties go to the earlier candidate.
pub(crate) fn note_avoiding<DB: DrawingBackend>(
    chart: &Chart<DB>,
    lines: &[String],
    candidates: &[((i32, i32), Pos)],
    obstacles: &[(f64, f64)],
    size: u32,
) -> Result<(), DrawError> {
    let pixels: Vec<(i32, i32)> = obstacles.iter().map(|p| pixel(chart, *p)).collect();
    let mut best: Option<(usize, (i32, i32), Pos)> = None;
    for &(at, pos) in candidates {
        let (left, top, width, height) = note_box(chart, lines, at, pos, size)?;
        let margin = 10;
        let covered = pixels
            .iter()
            .filter(|(x, y)| {
                *x >= left - margin
                    && *x <= left + width + margin
                    && *y >= top - margin
                    && *y <= top + height + margin
            })
            .count();
        if best.is_none_or(|b| covered < b.0) {
            best = Some((covered, at, pos));
        }
    }
    match best {
        Some((_, at, pos)) => note(chart, lines, at, pos, size),
        None => Ok(()),
    }
}

/// The pixel position of a data point inside the plotting area.
pub(crate) fn pixel<DB: DrawingBackend>(chart: &Chart<DB>, at: (f64, f64)) -> (i32, i32) {
    let area = chart.plotting_area();
    let (x0, y0) = area.get_base_pixel();
    let (px, py) = chart.backend_coord(&at);
    (px - x0, py - y0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_clipped_to_the_axes() {
        let (x, y) = (Axis::linear(0.0, 1.0), Axis::linear(0.0, 1.0));
        let pieces = clip_line(&[(-1.0, 0.5), (0.5, 0.5), (0.5, 2.0), (0.8, 0.5)], &x, &y);
        assert_eq!(pieces.len(), 2);
        assert!((pieces[0][0].0 - 0.0).abs() < 1e-12);
        assert_eq!(pieces[0].len(), 3);
        assert!((pieces[0][2].1 - 1.0).abs() < 1e-12);
        assert!((pieces[1][0].0 - 0.7).abs() < 1e-12);
        let nan = clip_line(&[(0.1, 0.1), (f64::NAN, 0.2), (0.3, 0.3)], &x, &y);
        assert!(nan.is_empty());
        let square = clip_polygon(
            &[(-1.0, -1.0), (2.0, -1.0), (2.0, 2.0), (-1.0, 2.0)],
            &x,
            &y,
        );
        assert_eq!(square.len(), 4);
        assert!(square
            .iter()
            .all(|p| (0.0..=1.0).contains(&p.0) && (0.0..=1.0).contains(&p.1)));
    }

    #[test]
    fn palettes_are_ordered_and_distinct() {
        let c: Vec<RGBColor> = (0..6).map(|i| size_colour(i, 6)).collect();
        assert_eq!(c[0], RGBColor(0x44, 0x01, 0x54));
        for w in c.windows(2) {
            assert_ne!(w[0], w[1]);
        }
        assert_ne!(budget_colour(0, 3), budget_colour(2, 3));
        let _ = size_colour(0, 1);
    }
}
