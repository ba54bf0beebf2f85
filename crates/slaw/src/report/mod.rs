//! What slaw shows people: the text tables of fits and predictions ([`text`]), number formats
//! ([`units`]), and the self-contained HTML report of a sweep (this module): its definition,
//! the trial table, the fitted laws with intervals, predictions for the next model size, and
//! every figure inline. The page has no script and no external resource.

pub mod text;
pub mod units;

use crate::analysis::laws::FitReport;
use crate::analysis::predict::{self, Estimate};
use crate::store::{SweepRow, TrialRow};
use crate::sweep::SweepStatus;
use units::{duration, lr, si};

/// A figure to embed: its title and SVG markup.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedFigure {
    /// Caption.
    pub title: String,
    /// The `<svg>` element.
    pub svg: String,
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    /// The sweep.
    pub sweep: &'a SweepRow,
    /// Its status.
    pub status: &'a SweepStatus,
    /// Its trials.
    pub trials: &'a [TrialRow],
    /// The fitted laws.
    pub fits: Option<&'a FitReport>,
    /// The latest `slaw fit --audit` of the sweep, if one was made.
    pub audit: Option<&'a crate::analysis::audit::Audit>,
    /// Figures.
    pub figures: &'a [EmbeddedFigure],
    /// When it was generated (Unix seconds).
    pub generated_at: f64,
}

/// HTML-escapes text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An SVG document as an inline element: the XML declaration and DOCTYPE removed.
fn inline_svg(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

const STYLE: &str = "
body { font-family: 'DejaVu Sans', Helvetica, Arial, sans-serif; margin: 2rem auto; max-width: 1280px; color: #1b1b1b; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.7rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; }
.meta { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.6rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.55rem; text-align: right; }
th { background: #f3f3f3; }
td.l, th.l { text-align: left; }
tr.completed td.state { color: #176b2c; }
tr.diverged td.state, tr.failed td.state { color: #a11; font-weight: bold; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 0.8rem; overflow-x: auto; font-size: 0.78rem; line-height: 1.3; }
figure { margin: 1.2rem 0 2rem 0; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9rem; color: #444; margin-top: 0.3rem; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: 4px; padding: 0.5rem 0.9rem; min-width: 9rem; }
.card b { display: block; font-size: 1.3rem; }
";

fn card(label: &str, value: &str) -> String {
    format!(
        "<div class=\"card\"><b>{}</b>{}</div>",
        escape(value),
        escape(label)
    )
}

fn estimate(e: Option<&Estimate>, fmt: &dyn Fn(f64) -> String) -> String {
    match e {
        Some(e) => match (e.lo, e.hi) {
            (Some(lo), Some(hi)) => format!("{} [{}, {}]", fmt(e.value), fmt(lo), fmt(hi)),
            _ => fmt(e.value),
        },
        None => "–".into(),
    }
}

/// The next model size: the largest times the median ratio between consecutive sizes.
pub fn next_size(params: &[f64]) -> Option<f64> {
    let mut p: Vec<f64> = params.iter().copied().filter(|x| *x > 0.0).collect();
    p.sort_by(f64::total_cmp);
    p.dedup();
    let mut ratios: Vec<f64> = p.windows(2).map(|w| w[1] / w[0]).collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    Some(p.last()? * ratios[ratios.len() / 2])
}

fn predictions(input: &ReportInput<'_>, report: &FitReport) -> String {
    let params: Vec<f64> = input.trials.iter().map(|t| t.params as f64).collect();
    let Some(n) = next_size(&params) else {
        return "<p>One model size only: nothing to extrapolate to.</p>".into();
    };
    let mut budgets: Vec<(f64, f64)> = input
        .trials
        .iter()
        .map(|t| (t.epochs, t.examples as f64))
        .collect();
    budgets.sort_by(|a, b| a.0.total_cmp(&b.0));
    budgets.dedup_by(|a, b| a.0 == b.0);
    let mut rows = String::new();
    let mut notes = Vec::new();
    for (epochs, d) in budgets {
        let p = predict::at_size_or_note(report, n, d);
        rows.push_str(&format!(
            "<tr><td>{epochs}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            si(d),
            estimate(p.loss.first(), &|v| format!("{v:.4}")),
            estimate(p.lr.first(), &lr),
            escape(&p.lr.first().map_or(String::new(), |e| e.method.clone())),
        ));
        for note in p.notes {
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
    }
    let mut out = format!(
        "<p>The next size in the sweep's progression: N = {} parameters (the largest times the median ratio between sizes).</p>\
         <table><tr><th>epochs</th><th>examples D</th><th>validation loss [95 %]</th><th>optimal learning rate [95 %]</th><th class=\"l\">learning-rate law</th></tr>{rows}</table>",
        si(n)
    );
    for n in notes {
        out.push_str(&format!("<p class=\"meta\">note: {}</p>", escape(&n)));
    }
    out
}

fn trial_table(trials: &[TrialRow]) -> String {
    let mut rows = String::new();
    for t in trials {
        rows.push_str(&format!(
            "<tr class=\"{state}\"><td class=\"l\"><code>{key}</code></td><td class=\"l\">{size}</td><td>{params}</td><td>{epochs}</td><td>{lr}</td><td>{seed}</td><td class=\"state l\">{state}</td><td>{loss}</td><td>{acc}</td><td>{flops}</td><td>{time}</td></tr>",
            state = t.state,
            key = escape(&t.key),
            size = escape(&t.size_name),
            params = si(t.params as f64),
            epochs = t.epochs,
            lr = lr(t.lr),
            seed = t.seed,
            loss = t.final_val_loss.map_or("–".into(), |v| format!("{v:.4}")),
            acc = t.final_val_accuracy.map_or("–".into(), |v| format!("{v:.3}")),
            flops = si(t.flops),
            time = t.wall_seconds.map_or("–".into(), duration),
        ));
    }
    format!(
        "<table><tr><th class=\"l\">trial</th><th class=\"l\">size</th><th>params</th><th>epochs</th><th>lr</th><th>seed</th><th class=\"l\">state</th><th>val loss</th><th>val acc</th><th>FLOPs</th><th>time</th></tr>{rows}</table>"
    )
}

/// The report as one HTML document.
pub fn render_html(input: &ReportInput<'_>) -> String {
    let c = &input.status.counts;
    let name = escape(&input.sweep.name);
    let spec = input.sweep.spec().ok();
    let data = spec
        .as_ref()
        .and_then(|s| s.burn())
        .and_then(|b| b.data_identity.as_ref())
        .map_or(String::new(), |d| {
            format!("<p class=\"meta\">data: {}</p>", escape(&d.summary()))
        });
    let description = spec
        .and_then(|s| s.description)
        .map_or(String::new(), |d| format!("<p>{}</p>", escape(&d)))
        + &data;
    let wall: f64 = input.trials.iter().filter_map(|t| t.wall_seconds).sum();
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>slaw report: {name}</title><style>{STYLE}</style></head><body>\n\
         <h1>Sweep {name}</h1>{description}\
         <p class=\"meta\">slaw report generated {} UTC from <code>{}</code></p>\n\
         <div class=\"cards\">{}{}{}{}{}</div>\n",
        utc(input.generated_at),
        escape(input.sweep.source_path.as_deref().unwrap_or("?")),
        card("trials", &c.total().to_string()),
        card("completed", &c.completed.to_string()),
        card("diverged / failed", &format!("{} / {}", c.diverged, c.failed)),
        card("training FLOPs", &si(input.status.total_flops - input.status.remaining_flops)),
        card("training time", &duration(wall)),
    );
    match input.fits {
        Some(report) => {
            html.push_str("<h2>Predictions for the next model size</h2>\n");
            html.push_str(&predictions(input, report));
            html.push_str("\n<h2>Fitted laws</h2>\n<pre>");
            html.push_str(&escape(&text::fit_summary(report)));
            html.push_str("</pre>\n<h2>Audit</h2>\n");
            match input.audit {
                Some(a) => {
                    html.push_str("<pre>");
                    html.push_str(&escape(&text::audit(a)));
                    html.push_str("</pre>\n");
                }
                None => html.push_str(
                    "<p>No audit stored: <code>slaw fit --audit</code> back-tests every method \
                     and prices their disagreement.</p>\n",
                ),
            }
        }
        None => {
            html.push_str("<h2>Fitted laws</h2><p>No fits stored: run <code>slaw fit</code>.</p>\n")
        }
    }
    html.push_str("<h2>Figures</h2>\n");
    if input.figures.is_empty() {
        html.push_str("<p>No figures.</p>\n");
    }
    for f in input.figures {
        html.push_str(&format!(
            "<figure>{}<figcaption>{}</figcaption></figure>\n",
            inline_svg(&f.svg),
            escape(&f.title)
        ));
    }
    html.push_str("<h2>Trials</h2>\n");
    html.push_str(&trial_table(input.trials));
    html.push_str("\n<h2>Sweep definition</h2>\n<pre>");
    html.push_str(&escape(&input.sweep.yaml));
    html.push_str("</pre>\n</body></html>\n");
    html
}

/// `YYYY-MM-DD HH:MM` of Unix seconds, in UTC.
pub fn utc(t: f64) -> String {
    let secs = t.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_dates() {
        assert_eq!(escape("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
        assert_eq!(utc(0.0), "1970-01-01 00:00");
        assert_eq!(utc(1_795_305_600.0), "2026-11-22 00:00");
        assert_eq!(inline_svg("<?xml version=\"1.0\"?>\n<svg a>"), "<svg a>");
    }

    #[test]
    fn next_size_follows_the_progression() {
        assert_eq!(next_size(&[1.0, 2.0, 4.0, 4.0, 8.0]), Some(16.0));
        assert_eq!(next_size(&[5.0]), None);
    }
}
