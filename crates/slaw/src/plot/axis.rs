//! One plot axis: linear, log₁₀ or log₂, with its own ticks (decades, 1-2-5 within decades when
//! the range is short, or given values) and compact labels (`1G`, `26.5k`, `0.004`, `2e-5`).

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

/// How values map to the axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    Linear,
    Log10,
    Log2,
}

/// How tick values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Labels {
    /// `0.004`, `2e-5`, `1.5`.
    Plain,
    /// SI prefixes for large values: `26.5k`, `1.9M`, `10G`.
    Si,
}

/// An axis over `lo..hi`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Axis {
    lo: f64,
    hi: f64,
    scale: Scale,
    labels: Labels,
    ticks: Option<Vec<f64>>,
}

impl Axis {
    /// A log₁₀ axis covering `lo..hi` (both positive; a degenerate or invalid range is widened).
    pub fn log10(lo: f64, hi: f64) -> Axis {
        Axis::new(lo, hi, Scale::Log10)
    }

    /// A linear axis covering `lo..hi`.
    #[cfg(test)]
    pub fn linear(lo: f64, hi: f64) -> Axis {
        Axis::new(lo, hi, Scale::Linear)
    }

    fn new(lo: f64, hi: f64, scale: Scale) -> Axis {
        let (mut lo, mut hi) = (lo.min(hi), lo.max(hi));
        match scale {
            Scale::Linear => {
                if !(lo.is_finite() && hi.is_finite()) {
                    (lo, hi) = (0.0, 1.0);
                }
                if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
                    let pad = (lo.abs() * 0.1).max(0.5);
                    (lo, hi) = (lo - pad, hi + pad);
                }
            }
            Scale::Log10 | Scale::Log2 => {
                if !(lo > 0.0 && lo.is_finite() && hi.is_finite()) {
                    (lo, hi) = (1.0, 10.0);
                }
                if hi / lo < 1.0 + 1e-9 {
                    (lo, hi) = (lo / 2.0, hi * 2.0);
                }
            }
        }
        Axis {
            lo,
            hi,
            scale,
            labels: Labels::Plain,
            ticks: None,
        }
    }

    /// The smallest interval covering the finite (and, for log axes, positive) values, padded by
    /// `pad` of its width on each side; `None` when no value qualifies.
    pub fn covering(scale: Scale, values: impl IntoIterator<Item = f64>, pad: f64) -> Option<Axis> {
        let (lo, hi) = values
            .into_iter()
            .filter(|v| v.is_finite() && (scale == Scale::Linear || *v > 0.0))
            .fold(None, |acc: Option<(f64, f64)>, v| match acc {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            })?;
        Some(Axis::new(lo, hi, scale).padded(pad))
    }

    /// Widened by `fraction` of its (transformed) width on each side.
    pub fn padded(self, fraction: f64) -> Axis {
        let (a, b) = (self.unit(self.lo), self.unit(self.hi));
        let w = (b - a) * fraction;
        let (lo, hi) = (self.at_unit(a - w), self.at_unit(b + w));
        Axis { lo, hi, ..self }
    }

    /// Extended below by `below` and above by `above`, fractions of its (transformed) width.
    pub fn extended(self, below: f64, above: f64) -> Axis {
        let (lo, hi) = (self.at_fraction(-below), self.at_fraction(1.0 + above));
        Axis { lo, hi, ..self }
    }

    /// With labels in SI prefixes.
    pub fn si(mut self) -> Axis {
        self.labels = Labels::Si;
        self
    }

    /// With these major ticks (those outside the range are dropped).
    pub fn with_ticks(mut self, ticks: Vec<f64>) -> Axis {
        self.ticks = Some(ticks);
        self
    }

    /// The lower end.
    pub fn lo(&self) -> f64 {
        self.lo
    }

    /// The upper end.
    pub fn hi(&self) -> f64 {
        self.hi
    }

    /// The value in the axis' linear space (log for log axes).
    fn unit(&self, v: f64) -> f64 {
        match self.scale {
            Scale::Linear => v,
            Scale::Log10 => v.log10(),
            Scale::Log2 => v.log2(),
        }
    }

    fn at_unit(&self, u: f64) -> f64 {
        match self.scale {
            Scale::Linear => u,
            Scale::Log10 => 10f64.powf(u),
            Scale::Log2 => u.exp2(),
        }
    }

    /// Where `v` lies: 0 at `lo`, 1 at `hi` (NaN for values a log axis cannot show).
    pub fn fraction(&self, v: f64) -> f64 {
        if self.scale != Scale::Linear && v <= 0.0 {
            return f64::NAN;
        }
        let (a, b) = (self.unit(self.lo), self.unit(self.hi));
        (self.unit(v) - a) / (b - a)
    }

    /// The value at `fraction` of the axis.
    pub fn at_fraction(&self, fraction: f64) -> f64 {
        let (a, b) = (self.unit(self.lo), self.unit(self.hi));
        self.at_unit(a + fraction * (b - a))
    }

    /// Whether `v` is on the axis.
    pub fn contains(&self, v: f64) -> bool {
        let f = self.fraction(v);
        (-1e-9..=1.0 + 1e-9).contains(&f)
    }

    /// `n` values evenly spaced (in the axis' space) from `lo` to `hi` inclusive.
    pub fn grid(&self, lo: f64, hi: f64, n: usize) -> Vec<f64> {
        let (a, b) = (self.unit(lo), self.unit(hi));
        (0..n.max(2))
            .map(|i| self.at_unit(a + (b - a) * i as f64 / (n.max(2) - 1) as f64))
            .collect()
    }

    /// The labelled ticks, at most `max` (but at least two where the range allows).
    fn majors(&self, max: usize) -> Vec<f64> {
        let max = max.max(2);
        if let Some(ticks) = &self.ticks {
            let inside: Vec<f64> = ticks
                .iter()
                .copied()
                .filter(|t| self.contains(*t))
                .collect();
            if inside.len() >= 2 {
                // Thin out evenly when there are too many.
                let step = inside.len().div_ceil(max);
                return inside.into_iter().step_by(step).collect();
            }
        }
        match self.scale {
            Scale::Linear => linear_ticks(self.lo, self.hi, max.min(8)),
            // Without given ticks (e.g. the rates of the grid), round decimal values read better
            // than powers of two: a log axis is a log axis.
            Scale::Log2 | Scale::Log10 => self.log10_majors(max),
        }
    }

    fn log10_majors(&self, max: usize) -> Vec<f64> {
        if self.hi / self.lo < 3.0 {
            // Within half a decade a log axis is nearly linear: round values read best.
            return linear_ticks(self.lo, self.hi, max.min(8));
        }
        let (a, b) = (self.lo.log10(), self.hi.log10());
        let (first, last) = (a.ceil() as i32, b.floor() as i32);
        let decades = (last - first + 1).max(0) as usize;
        if decades > max {
            // Every k-th decade.
            let step = decades.div_ceil(max) as i32;
            return (first..=last)
                .filter(|e| e.rem_euclid(step) == 0)
                .map(|e| decade(1.0, e))
                .collect();
        }
        const SETS: [&[f64]; 4] = [
            &[1.0],
            &[1.0, 2.0, 5.0],
            &[1.0, 2.0, 3.0, 5.0, 7.0],
            &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0],
        ];
        let candidates: Vec<Vec<f64>> = SETS
            .iter()
            .map(|set| {
                (a.floor() as i32..=b.ceil() as i32)
                    .flat_map(|e| set.iter().map(move |m| decade(*m, e)))
                    .filter(|t| self.contains(*t))
                    .collect()
            })
            .collect();
        // The coarsest set giving five ticks, else four, else three.
        for least in [5, 4, 3] {
            if let Some(ticks) = candidates
                .iter()
                .find(|t| t.len() >= least && t.len() <= max)
            {
                return ticks.clone();
            }
        }
        if decades >= 2 {
            return candidates[0].clone();
        }
        linear_ticks(self.lo, self.hi, max.min(8))
    }

    /// Unlabelled ticks (light grid lines): 2…9 within decades on log₁₀ axes.
    fn minors(&self) -> Vec<f64> {
        if self.scale == Scale::Linear || self.ticks.is_some() {
            return Vec::new();
        }
        let (a, b) = (
            self.lo.log10().floor() as i32,
            self.hi.log10().ceil() as i32,
        );
        if b - a > 8 {
            return Vec::new();
        }
        (a..=b)
            .flat_map(|e| (1..10).map(move |m| decade(m as f64, e)))
            .filter(|t| self.contains(*t))
            .collect()
    }

    /// A tick label.
    pub fn label(&self, v: f64) -> String {
        match self.labels {
            Labels::Plain => plain(v),
            Labels::Si => si(v),
        }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let f = self.fraction(*value);
        // Far-off values stay far off without overflowing pixel arithmetic.
        let f = if f.is_finite() {
            f.clamp(-4.0, 5.0)
        } else {
            -4.0
        };
        (limit.0 as f64 + f * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.minors()
        } else {
            self.majors(hint.max_num_points())
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, value: &f64) -> String {
        self.label(*value)
    }
}

/// `m·10^e`, exactly where the result is representable (0.7, not 0.7000000000000001).
fn decade(m: f64, e: i32) -> f64 {
    if e < 0 {
        m / 10f64.powi(-e)
    } else {
        m * 10f64.powi(e)
    }
}

/// Round ticks (steps of 1, 2 or 5 × 10ᵏ) inside `lo..hi`, at most `max`.
fn linear_ticks(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return vec![lo];
    }
    let raw = span / max.max(2) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|k| {
            // Round away binary noise (0.30000000000000004).
            let v = k as f64 * step;
            (v / mag * 1e6).round() * mag / 1e6
        })
        .collect()
}

/// Trims a decimal's trailing zeros (and a trailing point).
fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Three significant digits, without trailing zeros; scientific notation outside 1e-3 … 1e5.
pub(crate) fn plain(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    let exp = a.log10().floor() as i32;
    if (1e-3..1e5).contains(&a) {
        let decimals = (2 - exp).max(0) as usize;
        trim(format!("{v:.decimals$}"))
    } else {
        let m = v / 10f64.powi(exp);
        // 9.996e-4 rounds to 10.0e-4: renormalise.
        let (m, exp) = if (m.abs() * 100.0).round() >= 1000.0 {
            (m / 10.0, exp + 1)
        } else {
            (m, exp)
        };
        format!("{}e{exp}", trim(format!("{m:.2}")))
    }
}

/// SI prefixes for values of a thousand and more (`26.5k`, `1.86M`, `10G`), else [`plain`].
pub(crate) fn si(v: f64) -> String {
    const PREFIXES: [(f64, &str); 6] = [
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
    ];
    let a = v.abs();
    if !v.is_finite() || a >= 1e21 {
        return plain(v);
    }
    for (scale, prefix) in PREFIXES {
        // Values that round up to the prefix (999.96k → 1M) take it.
        if a >= scale * 0.99995 {
            let m = v / scale;
            let decimals = (2 - m.abs().log10().floor() as i32).max(0) as usize;
            return format!("{}{prefix}", trim(format!("{m:.decimals$}")));
        }
    }
    plain(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::coord::ranged1d::{BoldPoints, LightPoints};

    #[test]
    fn labels_are_compact() {
        assert_eq!(si(26506.0), "26.5k");
        assert_eq!(si(1863690.0), "1.86M");
        assert_eq!(si(1e9), "1G");
        assert_eq!(si(1e10), "10G");
        assert_eq!(si(2.5e17), "250P");
        assert_eq!(si(999_999.0), "1M");
        assert_eq!(si(512.0), "512");
        assert_eq!(plain(0.004), "0.004");
        assert_eq!(plain(0.0078125), "0.00781");
        assert_eq!(plain(0.45), "0.45");
        assert_eq!(plain(2.0), "2");
        assert_eq!(plain(2e-5), "2e-5");
        assert_eq!(plain(1.5e-4), "1.5e-4");
        assert_eq!(plain(0.0009996), "1e-3");
        assert_eq!(plain(-0.25), "-0.25");
    }

    #[test]
    fn log_ticks_adapt_to_the_range() {
        let wide = Axis::log10(3e7, 2e11);
        assert_eq!(wide.key_points(BoldPoints(10)), vec![1e8, 1e9, 1e10, 1e11]);
        let wider = Axis::log10(3e7, 2e13);
        assert_eq!(wider.key_points(BoldPoints(10)).len(), 6);
        assert!(wide.key_points(LightPoints::new(10, 100)).len() > 20);
        let short = Axis::log10(0.35, 2.4);
        assert_eq!(
            short.key_points(BoldPoints(10)),
            vec![0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2.0]
        );
        let loss = Axis::log10(0.18, 2.4);
        assert_eq!(
            loss.key_points(BoldPoints(10)),
            vec![0.2, 0.3, 0.5, 0.7, 1.0, 2.0]
        );
        let sizes = Axis::log10(8e3, 1.2e6);
        assert_eq!(
            sizes.key_points(BoldPoints(10)),
            vec![1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6]
        );
        let narrow = Axis::log10(0.41, 0.47);
        let ticks = narrow.key_points(BoldPoints(10));
        assert!(ticks.len() >= 2, "{ticks:?}");
        assert!(ticks.iter().all(|t| narrow.contains(*t)));
        let many = Axis::log10(1e-3, 1e30);
        assert!(many.key_points(BoldPoints(8)).len() <= 8);
        let lr = Axis::covering(Scale::Log2, [0.0008, 0.04], 0.0)
            .unwrap()
            .with_ticks(vec![0.001, 0.002, 0.004, 0.008, 0.016]);
        assert_eq!(lr.key_points(BoldPoints(10)).len(), 5);
        assert_eq!(lr.label(0.016), "0.016");
    }

    #[test]
    fn degenerate_ranges_are_widened() {
        let a = Axis::log10(5.0, 5.0);
        assert!(a.lo() < 5.0 && a.hi() > 5.0);
        let b = Axis::log10(-1.0, f64::NAN);
        assert!(b.lo() > 0.0 && b.hi() > b.lo());
        let c = Axis::linear(0.0, 0.0);
        assert!(c.hi() > c.lo());
        assert!(Axis::covering(Scale::Log10, [f64::NAN, -1.0], 0.1).is_none());
        let d = Axis::covering(Scale::Log10, [10.0, 1000.0], 0.0).unwrap();
        assert!((d.fraction(100.0) - 0.5).abs() < 1e-12);
    }
}
