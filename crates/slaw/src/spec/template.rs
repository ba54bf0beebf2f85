//! Argument templates of command trainers: `"--width={model.width}"`, `"{lr}"`.
//!
//! A template is text with fields in braces; `{{` and `}}` stand for literal braces. A field
//! is replaced by its value verbatim: the result becomes one argument (or one environment
//! value) of a program started without a shell, so spaces, quotes and shell metacharacters in
//! a value reach the program unchanged.

use std::collections::BTreeMap;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; an unbalanced brace or an empty or malformed field name is an error.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!(
                            "{text:?}: a '{{' is not closed (write {{{{ for a literal brace)"
                        ));
                    }
                    let name = name.trim().to_string();
                    let valid = !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
                    if !valid {
                        return Err(format!(
                            "{text:?}: {{{name}}} is not a field name (write {{{{ for a literal brace)"
                        ));
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Field(name));
                }
                '}' => {
                    return Err(format!(
                        "{text:?}: a '}}' has no opening brace (write }}}} for a literal brace)"
                    ))
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// The field names, in order of appearance.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.as_str()),
            Part::Text(_) => None,
        })
    }

    /// The text with every field replaced by its value in `vars`; the first field without a
    /// value is the error.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => out.push_str(vars.get(f).ok_or_else(|| f.clone())?),
            }
        }
        Ok(out)
    }
}

/// Renders `text` with `vars`, leaving unknown fields (and unparsable text) as written. For
/// templates that validation has already checked.
pub fn render_checked(text: &str, vars: &BTreeMap<String, String>) -> String {
    let Ok(t) = Template::parse(text) else {
        return text.to_string();
    };
    let mut out = String::new();
    for p in &t.parts {
        match p {
            Part::Text(s) => out.push_str(s),
            Part::Field(f) => match vars.get(f) {
                Some(v) => out.push_str(v),
                None => {
                    out.push('{');
                    out.push_str(f);
                    out.push('}');
                }
            },
        }
    }
    out
}

/// A number as a template value: the shortest text that reads back as the same `f64`
/// (`0.001`, `2`, `0.5`), never in exponent notation.
pub fn number(v: f64) -> String {
    format!("{v}")
}

/// A size field (a YAML scalar) as a template value: strings verbatim, numbers as written.
pub fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => number(f),
            _ => n.to_string(),
        },
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fields_and_escapes() {
        let t = Template::parse("--width={model.width} {{literal}} {lr}").unwrap();
        assert_eq!(t.fields().collect::<Vec<_>>(), vec!["model.width", "lr"]);
        let v = vars(&[("model.width", "64"), ("lr", "0.001")]);
        assert_eq!(t.render(&v).unwrap(), "--width=64 {literal} 0.001");
        assert_eq!(
            Template::parse("{a}{b}")
                .unwrap()
                .render(&vars(&[("a", "1")])),
            Err("b".to_string())
        );
    }

    #[test]
    fn values_with_spaces_and_shell_metacharacters_are_verbatim() {
        let nasty = r#"a b; rm -rf / && echo "$HOME" `id` $(whoami) 'q' | > < * ~ \n {x}"#;
        let t = Template::parse("{model.note}").unwrap();
        assert_eq!(t.render(&vars(&[("model.note", nasty)])).unwrap(), nasty);
        let t = Template::parse("pre {model.note} post").unwrap();
        assert_eq!(
            t.render(&vars(&[("model.note", nasty)])).unwrap(),
            format!("pre {nasty} post")
        );
    }

    #[test]
    fn malformed_templates() {
        for bad in ["{lr", "lr}", "{}", "{a b}", "{$HOME}"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        assert!(Template::parse("}}{{").is_ok());
    }

    #[test]
    fn checked_rendering_keeps_unknown_fields() {
        assert_eq!(
            render_checked("{a}-{b}", &vars(&[("a", "x")])),
            "x-{b}".to_string()
        );
    }

    #[test]
    fn number_formats() {
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(number(1e-5), "0.00001");
        assert_eq!(scalar(&serde_json::json!(64)), "64");
        assert_eq!(scalar(&serde_json::json!(0.25)), "0.25");
        assert_eq!(scalar(&serde_json::json!("a b")), "a b");
        assert_eq!(scalar(&serde_json::json!(true)), "true");
    }
}
