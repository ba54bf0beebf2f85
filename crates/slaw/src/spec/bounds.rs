//! Bounds on what a sweep file may cost slaw before and while it is read: the file's size and
//! its nesting depth are checked before any YAML parser builds a tree (20 000 nested levels
//! used to overflow the stack, flow-style nesting parsed in quadratic time), the number of
//! trials a sweep expands to is counted before the grid is built, and the values that error
//! messages quote are cut to a readable length.

use yaml_rust2::parser::{Event, Parser};

use super::{Position, Problem, SpecError};

/// The largest sweep file slaw reads.
pub const MAX_BYTES: usize = 1 << 20;
/// The deepest nesting of mappings and sequences a sweep file may have.
pub const MAX_DEPTH: usize = 64;
/// The most trials a sweep may expand to unless the user raises it (`--max-trials`).
pub const DEFAULT_MAX_TRIALS: u64 = 100_000;
/// The longest a quoted value in an error message is shown.
const MAX_QUOTED_CHARS: usize = 80;
/// The longest an error message is shown.
const MAX_MESSAGE_CHARS: usize = 1_000;

/// What a sweep file may expand to, and where its image data sets are decoded.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The most trials.
    pub max_trials: u64,
    /// The cache of image data sets and the decoding progress.
    pub data: super::DataOptions,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_trials: DEFAULT_MAX_TRIALS,
            data: super::DataOptions::default(),
        }
    }
}

/// Checks the size and nesting depth of `text` without building a tree: yaml-rust2's event
/// parser is a state machine, so it reads any depth in constant stack and stops at the first
/// level too deep. Syntax errors are left to the real parse, which reports them with context.
pub fn check_shape(text: &str, file: &str) -> Result<(), SpecError> {
    let problem = |position: Position, message: String| {
        SpecError::Invalid(vec![Problem {
            file: file.to_string(),
            position,
            path: "(top level)".to_string(),
            message,
        }])
    };
    if text.len() > MAX_BYTES {
        return Err(problem(
            Position { line: 1, column: 1 },
            format!(
                "the file has {} bytes; a sweep file may have at most {MAX_BYTES} (1 MiB)",
                text.len()
            ),
        ));
    }
    let too_deep = |line: usize, col: usize| {
        problem(
            Position {
                line,
                column: col + 1,
            },
            format!(
                "mappings and lists are nested deeper than {MAX_DEPTH} levels here; a sweep \
                 file needs a handful"
            ),
        )
    };
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            // The scanner gives up on flow nesting past 255 levels (before any event of it).
            Err(e) if e.info().contains("recursion limit") => {
                return Err(too_deep(e.marker().line(), e.marker().col()));
            }
            // Other syntax errors are the real parser's to report, with context.
            Err(_) => return Ok(()),
        };
        match event {
            Event::StreamEnd => return Ok(()),
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(too_deep(mark.line(), mark.col()));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
}

/// `message` with every quoted part (`"…"`, `` `…` ``) longer than 80 characters cut, and the
/// whole cut at 1 000 characters: a 1 MB value is named, not echoed.
pub fn clip(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 64));
    let mut rest = message;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(quote) else {
            out.push_str(&cut(after, MAX_QUOTED_CHARS));
            rest = "";
            break;
        };
        out.push_str(&cut(&after[..close], MAX_QUOTED_CHARS));
        out.push(quote);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    cut(&out, MAX_MESSAGE_CHARS)
}

/// `text` cut to `max` characters, saying how long it was.
fn cut(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head: String = text.chars().take(max.saturating_sub(20)).collect();
    format!("{head}… ({count} characters)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_refused_quickly_with_its_line() {
        let block: String = (0..200).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        let started = std::time::Instant::now();
        let Err(SpecError::Invalid(p)) = check_shape(&block, "deep.yaml") else {
            panic!("not refused");
        };
        assert_eq!(p[0].position.line, MAX_DEPTH + 1);
        let flow = format!("x: {}{}", "[".repeat(50_000), "]".repeat(50_000));
        assert!(check_shape(&flow, "flow.yaml").is_err());
        let dashes = format!("x:\n{}y\n", "- ".repeat(20_000));
        let Err(SpecError::Invalid(p)) = check_shape(&dashes, "dashes.yaml") else {
            panic!("not refused");
        };
        assert_eq!(p[0].position.line, 2);
        // Generous: both stop after reading ~65 levels.
        assert!(started.elapsed().as_secs_f64() < 5.0);
        let fine = format!(
            "x: {}1{}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(check_shape(&fine, "ok.yaml").is_ok());
    }

    #[test]
    fn large_files_are_refused() {
        let big = format!("name: x\ndescription: {}\n", "a".repeat(MAX_BYTES));
        let Err(SpecError::Invalid(p)) = check_shape(&big, "big.yaml") else {
            panic!("not refused");
        };
        assert!(p[0].message.contains("at most 1048576"), "{}", p[0].message);
    }

    #[test]
    fn quoted_values_are_cut() {
        let long = "x".repeat(100_000);
        let m = clip(&format!(
            "unknown variant `{long}`, expected `mlp` or `vit`"
        ));
        assert!(m.len() < 200, "{m}");
        assert!(
            m.contains("(100000 characters)`, expected `mlp` or `vit`"),
            "{m}"
        );
        assert_eq!(clip("short `value`"), "short `value`");
        let open = clip(&format!("name \"{long}"));
        assert!(open.len() < 200, "{open}");
    }
}
