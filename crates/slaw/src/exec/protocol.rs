//! The line protocol of command trainers, and the state of one trial built from its lines.
//!
//! A trainer writes one JSON object per line, to stdout or to the file named by
//! `$SLAW_METRICS`:
//!
//! ```text
//! {"params": 55050, "flops_per_example": 330300}                 declared once (optional)
//! {"step": 100, "examples": 12800, "train_loss": 1.9, "lr": 0.001}
//! {"step": 100, "val_loss": 2.0, "val_accuracy": 0.61, "grad_norm": 0.8}
//! ```
//!
//! Known fields: `step`, `examples`, `train_loss`, `val_loss`, `val_accuracy`, `lr`, and the
//! declarations `params`, `params_non_embedding`, `flops_per_example`. Every other field is
//! kept as it is (the `extra` JSON of the evaluation point). Lines of the same step merge into
//! one point. A line that is not a JSON object is output, kept as the trial's log; an object
//! whose known fields have the wrong type is logged and ignored. Python's `NaN`, `Infinity`
//! and `-Infinity` (which `json.dumps` writes) are read as numbers; a non-finite loss means the
//! trial diverged. Pure: no I/O.

use serde_json::{Map, Value};

/// What one line is.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A protocol record.
    Record(Record),
    /// Output for the log.
    Text,
    /// A JSON object that breaks the protocol: logged, with the reason, and ignored.
    Malformed(String),
}

/// The values of one protocol line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    /// Optimiser steps done.
    pub step: Option<u64>,
    /// Examples seen.
    pub examples: Option<u64>,
    /// Training loss.
    pub train_loss: Option<f64>,
    /// Validation loss.
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Learning rate now.
    pub lr: Option<f64>,
    /// Declared parameters.
    pub params: Option<u64>,
    /// Declared non-embedding parameters.
    pub params_non_embedding: Option<u64>,
    /// Declared training FLOPs per example.
    pub flops_per_example: Option<f64>,
    /// Every other field.
    pub extra: Map<String, Value>,
}

impl Record {
    /// Whether the line carries a point of the curve (not only declarations).
    fn has_point(&self) -> bool {
        self.step.is_some()
            || self.examples.is_some()
            || self.train_loss.is_some()
            || self.val_loss.is_some()
            || self.val_accuracy.is_some()
            || self.lr.is_some()
            || !self.extra.is_empty()
    }
}

/// Rewrites the bare tokens `NaN`, `Infinity` and `-Infinity` outside strings as the strings
/// `"NaN"`, `"Infinity"` and `"-Infinity"` (valid JSON).
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        } else {
            let token = ["-Infinity", "Infinity", "NaN"]
                .into_iter()
                .find(|t| rest.starts_with(t));
            if let Some(t) = token {
                out.push('"');
                out.push_str(t);
                out.push('"');
                rest = &rest[t.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A number, or one of the non-finite spellings.
fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.to_ascii_lowercase().as_str() {
            "nan" => Some(f64::NAN),
            "infinity" | "inf" => Some(f64::INFINITY),
            "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A non-negative whole number (`100` or `100.0`).
fn count(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|x| x.is_finite() && *x >= 0.0 && x.fract() == 0.0 && *x < 1.8e19)
            .map(|x| x as u64)
    })
}

/// Reads one line (without its newline).
pub fn parse_line(text: &str) -> Line {
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return Line::Text;
    }
    let object = match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Line::Text,
        Err(_) => match serde_json::from_str::<Value>(&quote_non_finite(trimmed)) {
            Ok(Value::Object(m)) => m,
            _ => return Line::Text,
        },
    };
    let mut r = Record::default();
    for (key, value) in object {
        if value.is_null() {
            continue;
        }
        let bad = |what: &str| Line::Malformed(format!("{key} must be {what}, got {value}"));
        match key.as_str() {
            "step" => match count(&value) {
                Some(n) => r.step = Some(n),
                None => return bad("a whole number ≥ 0"),
            },
            "examples" => match count(&value) {
                Some(n) => r.examples = Some(n),
                None => return bad("a whole number ≥ 0"),
            },
            "params" | "params_non_embedding" => match count(&value).filter(|n| *n > 0) {
                Some(n) if key == "params" => r.params = Some(n),
                Some(n) => r.params_non_embedding = Some(n),
                None => return bad("a whole number > 0"),
            },
            "flops_per_example" => match float(&value).filter(|x| x.is_finite() && *x > 0.0) {
                Some(x) => r.flops_per_example = Some(x),
                None => return bad("a positive number"),
            },
            "train_loss" | "val_loss" | "val_accuracy" | "lr" => {
                let Some(x) = float(&value) else {
                    return bad("a number");
                };
                match key.as_str() {
                    "train_loss" => r.train_loss = Some(x),
                    "val_loss" => r.val_loss = Some(x),
                    "val_accuracy" => r.val_accuracy = Some(x),
                    _ => r.lr = Some(x),
                }
            }
            _ => {
                r.extra.insert(key, value);
            }
        }
    }
    Line::Record(r)
}

/// One evaluation point, merged from the lines of its step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Point {
    /// Step.
    pub step: u64,
    /// Examples seen (0 when neither reported nor derivable).
    pub examples: u64,
    /// Learning rate.
    pub lr: Option<f64>,
    /// Training loss.
    pub train_loss: Option<f64>,
    /// Validation loss.
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Other metrics.
    pub extra: Map<String, Value>,
    /// Seconds since the trial started, at its last line.
    pub wall_seconds: f64,
}

/// What the lines of a trial said so far.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    batch_size: Option<u64>,
    /// Parameters, non-embedding parameters and FLOPs per example, as declared.
    pub params: Option<u64>,
    /// Declared non-embedding parameters.
    pub params_non_embedding: Option<u64>,
    /// Declared training FLOPs per example.
    pub flops_per_example: Option<f64>,
    current: Option<Point>,
    current_dirty: bool,
    done: Vec<Point>,
    /// The largest step seen.
    pub last_step: u64,
    /// The largest number of examples seen.
    pub examples: u64,
    /// The last training loss.
    pub train_loss: Option<f64>,
    /// The last validation loss.
    pub val_loss: Option<f64>,
    /// The last validation accuracy.
    pub val_accuracy: Option<f64>,
    /// The lowest validation loss.
    pub best_val_loss: Option<f64>,
    /// Why the trial diverged, once a loss was not finite.
    pub diverged: Option<String>,
    /// Protocol lines read.
    pub records: usize,
}

impl Tracker {
    /// A tracker for a trial whose batch size is `batch_size` (when the sweep says), for
    /// deriving examples from steps.
    pub fn new(batch_size: Option<u64>) -> Self {
        Tracker {
            batch_size,
            ..Tracker::default()
        }
    }

    /// Takes in one record read `wall_seconds` after the start.
    pub fn apply(&mut self, r: Record, wall_seconds: f64) {
        self.records += 1;
        self.params = r.params.or(self.params);
        self.params_non_embedding = r.params_non_embedding.or(self.params_non_embedding);
        self.flops_per_example = r.flops_per_example.or(self.flops_per_example);
        if !r.has_point() {
            return;
        }
        let current_step = self.current.as_ref().map(|p| p.step);
        let step = r
            .step
            .or_else(|| {
                let (e, b) = (r.examples?, self.batch_size?);
                Some(e.div_ceil(b.max(1)))
            })
            .or(current_step)
            .unwrap_or(self.last_step);
        if current_step.is_some_and(|s| s != step) {
            if let Some(p) = self.current.take() {
                // A point already written and unchanged since need not be written again.
                if self.current_dirty {
                    self.done.push(p);
                }
            }
        }
        let batch = self.batch_size;
        let last_examples = self.examples;
        let p = self.current.get_or_insert_with(|| Point {
            step,
            examples: batch.map_or(last_examples, |b| step * b),
            ..Point::default()
        });
        if let Some(e) = r.examples {
            p.examples = e;
        }
        p.lr = r.lr.or(p.lr);
        p.train_loss = r.train_loss.or(p.train_loss);
        p.val_loss = r.val_loss.or(p.val_loss);
        p.val_accuracy = r.val_accuracy.or(p.val_accuracy);
        p.extra.extend(r.extra);
        p.wall_seconds = wall_seconds;
        self.current_dirty = true;
        self.last_step = self.last_step.max(step);
        self.examples = self.examples.max(p.examples);
        if let Some(l) = r.train_loss {
            self.train_loss = Some(l);
            if !l.is_finite() && self.diverged.is_none() {
                self.diverged = Some(format!("non-finite train_loss ({l}) at step {step}"));
            }
        }
        if let Some(l) = r.val_loss {
            self.val_loss = Some(l);
            if l.is_finite() {
                self.best_val_loss = Some(self.best_val_loss.map_or(l, |b| b.min(l)));
            } else if self.diverged.is_none() {
                self.diverged = Some(format!("non-finite val_loss ({l}) at step {step}"));
            }
        }
        if let Some(a) = r.val_accuracy {
            self.val_accuracy = Some(a);
        }
    }

    /// Points to write: every finished point not written yet, and the current one when it
    /// changed since the last call (written again, merged, if more lines of its step come).
    pub fn take_dirty(&mut self) -> Vec<Point> {
        let mut out = std::mem::take(&mut self.done);
        if self.current_dirty {
            if let Some(p) = &self.current {
                out.push(p.clone());
            }
            self.current_dirty = false;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Record {
        match parse_line(text) {
            Line::Record(r) => r,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn records_and_their_fields() {
        let r = record(
            r#"{"step": 100, "examples": 12800, "train_loss": 1.9, "val_loss": 2.0, "lr": 0.001, "grad_norm": 0.5, "tag": "x"}"#,
        );
        assert_eq!(r.step, Some(100));
        assert_eq!(r.examples, Some(12800));
        assert_eq!(
            (r.train_loss, r.val_loss, r.lr),
            (Some(1.9), Some(2.0), Some(0.001))
        );
        assert_eq!(r.extra["grad_norm"], serde_json::json!(0.5));
        assert_eq!(r.extra["tag"], serde_json::json!("x"));
        let d = record(r#"{"params": 1.2e6, "flops_per_example": 7.2e6}"#);
        assert_eq!(d.params, Some(1_200_000));
        assert_eq!(d.flops_per_example, Some(7.2e6));
        assert!(!d.has_point());
        assert_eq!(
            record(r#"  {"step": 3.0, "val_accuracy": null}  "#).step,
            Some(3)
        );
    }

    #[test]
    fn malformed_lines_are_text_or_rejected() {
        for text in [
            "",
            "epoch 1/10: loss 2.3",
            "{not json",
            r#"{"step": 1"#,
            "[1, 2, 3]",
            "{'step': 1}",
            "\u{1b}[2K progress ██▌ 40%",
        ] {
            assert_eq!(parse_line(text), Line::Text, "{text:?}");
        }
        for text in [
            r#"{"step": "ten"}"#,
            r#"{"step": -1}"#,
            r#"{"step": 1.5}"#,
            r#"{"train_loss": "low"}"#,
            r#"{"params": 0}"#,
            r#"{"examples": [1]}"#,
        ] {
            assert!(
                matches!(parse_line(text), Line::Malformed(_)),
                "{text:?}: {:?}",
                parse_line(text)
            );
        }
        let Line::Malformed(why) = parse_line(r#"{"step": "ten"}"#) else {
            panic!()
        };
        assert!(why.contains("step must be"), "{why}");
    }

    #[test]
    fn python_non_finite_numbers() {
        let r =
            record(r#"{"step": 5, "train_loss": NaN, "note": "NaN stays text", "x": -Infinity}"#);
        assert!(r.train_loss.unwrap().is_nan());
        assert_eq!(r.extra["note"], serde_json::json!("NaN stays text"));
        assert_eq!(r.extra["x"], serde_json::json!("-Infinity"));
        let r = record(r#"{"step": 5, "val_loss": Infinity}"#);
        assert_eq!(r.val_loss, Some(f64::INFINITY));
        assert_eq!(
            quote_non_finite(r#"{"a": "x\"NaN", "b": NaN}"#),
            r#"{"a": "x\"NaN", "b": "NaN"}"#
        );
    }

    #[test]
    fn lines_of_a_step_merge_and_examples_follow_the_batch() {
        let mut t = Tracker::new(Some(32));
        t.apply(record(r#"{"params": 100}"#), 0.1);
        assert!(t.take_dirty().is_empty());
        t.apply(record(r#"{"step": 10, "train_loss": 2.0}"#), 1.0);
        t.apply(record(r#"{"step": 10, "val_loss": 2.5, "acc5": 0.9}"#), 1.5);
        let pts = t.take_dirty();
        assert_eq!(pts.len(), 1);
        assert_eq!(pts[0].examples, 320);
        assert_eq!((pts[0].train_loss, pts[0].val_loss), (Some(2.0), Some(2.5)));
        assert_eq!(pts[0].extra["acc5"], serde_json::json!(0.9));
        assert!(t.take_dirty().is_empty(), "unchanged");
        t.apply(
            record(r#"{"step": 20, "examples": 700, "val_loss": 2.1}"#),
            2.0,
        );
        t.apply(record(r#"{"throughput": 5}"#), 2.1);
        let pts = t.take_dirty();
        assert_eq!(pts.iter().map(|p| p.step).collect::<Vec<_>>(), vec![20]);
        assert_eq!(pts[0].examples, 700);
        assert_eq!(pts[0].extra["throughput"], serde_json::json!(5));
        assert_eq!(t.params, Some(100));
        assert_eq!(t.best_val_loss, Some(2.1));
        assert_eq!((t.last_step, t.examples), (20, 700));
        assert!(t.diverged.is_none());
        t.apply(record(r#"{"step": 30, "train_loss": NaN}"#), 3.0);
        assert!(t.diverged.as_deref().unwrap().contains("step 30"));
        let pts = t.take_dirty();
        assert_eq!(pts.len(), 1);
    }

    #[test]
    fn without_a_batch_size_examples_carry_forward() {
        let mut t = Tracker::new(None);
        t.apply(
            record(r#"{"step": 1, "examples": 50, "train_loss": 1}"#),
            0.0,
        );
        t.apply(record(r#"{"step": 2, "train_loss": 1}"#), 0.0);
        let pts = t.take_dirty();
        assert_eq!(
            pts.iter().map(|p| p.examples).collect::<Vec<_>>(),
            vec![50, 50]
        );
    }
}
