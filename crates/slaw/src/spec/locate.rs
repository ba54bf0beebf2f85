//! Positions of YAML nodes by path (`train.lr.values[2]`), so that errors found after parsing
//! can still name their line and column.
//!
//! serde_yaml gives a location only for its own errors; semantic checks run on parsed values, so
//! this module re-reads the text with yaml-rust2's event parser and records where every node
//! starts.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// A 1-based line and column in the sweep file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

impl From<Marker> for Position {
    fn from(m: Marker) -> Self {
        Position {
            line: m.line(),
            column: m.col() + 1,
        }
    }
}

/// Where each node of a YAML document starts, keyed by its path.
#[derive(Debug, Default)]
pub struct Locator {
    values: HashMap<String, Position>,
    keys: HashMap<String, Position>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct Collector {
    stack: Vec<Frame>,
    locator: Locator,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Collector {
    /// The path of a node starting now, or `None` when the node is a mapping key.
    fn place(&mut self, scalar: Option<&str>, mark: Marker) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => Some(join(path, &k)),
                None => {
                    let k = scalar.unwrap_or("?").to_string();
                    self.locator.keys.insert(join(path, &k), mark.into());
                    *key = Some(k);
                    None
                }
            },
        }
    }
}

impl MarkedEventReceiver for Collector {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(p) = self.place(Some(&value), mark) {
                    self.locator.values.insert(p, mark.into());
                }
            }
            Event::Alias(_) => {
                if let Some(p) = self.place(None, mark) {
                    self.locator.values.insert(p, mark.into());
                }
            }
            Event::MappingStart(..) => {
                let path = self.place(None, mark).unwrap_or_default();
                self.locator.values.insert(path.clone(), mark.into());
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.place(None, mark).unwrap_or_default();
                self.locator.values.insert(path.clone(), mark.into());
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Locator {
    /// Indexes `text`; a document that does not parse yields an empty index.
    pub fn new(text: &str) -> Self {
        let mut collector = Collector::default();
        let mut parser = Parser::new_from_str(text);
        if parser.load(&mut collector, false).is_err() {
            return Locator::default();
        }
        collector.locator
    }

    /// Where the value at `path` starts; for a path that is not in the document, where its
    /// nearest ancestor starts; line 1 when nothing matches.
    pub fn value(&self, path: &str) -> Position {
        let mut p = path.to_string();
        while !p.is_empty() {
            if let Some(pos) = self.values.get(&p) {
                return *pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => p.clear(),
            }
        }
        Position { line: 1, column: 1 }
    }

    /// Where the key of `path` is written, when the path is a mapping entry.
    pub fn key(&self, path: &str) -> Option<Position> {
        self.keys.get(path).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "name: x\ntrain:\n  epochs: [1, 2]\n  lr:\n    values:\n      - 0.1\n      - -3\nmodel:\n  sizes:\n    - {name: a, width: 4}\n";

    #[test]
    fn finds_values_by_path() {
        let l = Locator::new(DOC);
        assert_eq!(l.value("name"), Position { line: 1, column: 7 });
        assert_eq!(
            l.value("train.epochs[1]"),
            Position {
                line: 3,
                column: 15
            }
        );
        assert_eq!(
            l.value("train.lr.values[1]"),
            Position { line: 7, column: 9 }
        );
        assert_eq!(
            l.value("model.sizes[0].width"),
            Position {
                line: 10,
                column: 24
            }
        );
        assert_eq!(l.key("train.lr"), Some(Position { line: 4, column: 3 }));
    }

    #[test]
    fn missing_paths_fall_back_to_the_nearest_ancestor() {
        let l = Locator::new(DOC);
        assert_eq!(l.value("train.lr.grid.centre"), l.value("train.lr"));
        assert_eq!(l.value("nothing.here"), Position { line: 1, column: 1 });
    }
}
