//! Numbers as people read them: SI suffixes, learning rates, durations; the table style of
//! every text table slaw prints.

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{Cell, Table};

/// A number with an SI suffix and three significant digits: 1.23G, 45.6M, 789.
pub fn si(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    const UNITS: [(f64, &str); 6] = [
        (1e18, "E"),
        (1e15, "P"),
        (1e12, "T"),
        (1e9, "G"),
        (1e6, "M"),
        (1e3, "k"),
    ];
    for (scale, unit) in UNITS {
        if x.abs() >= scale {
            return format!("{}{unit}", three_digits(x / scale));
        }
    }
    three_digits(x)
}

fn three_digits(x: f64) -> String {
    if x.abs() >= 100.0 || x == x.trunc() && x.abs() < 1000.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// A learning rate with three significant digits: `3e-3`, `1.53e-4`, `0.0132`, `1.6`.
pub fn lr(x: f64) -> String {
    if (1e-2..10.0).contains(&x) {
        let digits = (2 - x.log10().floor() as i32).max(0) as usize;
        let s = format!("{x:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        let s = format!("{x:.2e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = m.trim_end_matches('0').trim_end_matches('.');
        format!("{m}e{e}")
    }
}

/// Seconds as `12.3 s`, `4 min 05 s`, `1 h 02 min`.
pub fn duration(s: f64) -> String {
    if !s.is_finite() {
        return "?".into();
    }
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{} min {:02} s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{} h {:02} min",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// A table in slaw's style with `header`.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    t.set_header(header.iter().map(Cell::new));
    t
}

/// Parses a number with an optional SI suffix: `1.86M`, `2.5e9`, `3G`, `600k`.
pub fn parse_si(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (digits, scale) = match t.chars().last() {
        Some('k') | Some('K') => (&t[..t.len() - 1], 1e3),
        Some('M') => (&t[..t.len() - 1], 1e6),
        Some('G') | Some('B') => (&t[..t.len() - 1], 1e9),
        Some('T') => (&t[..t.len() - 1], 1e12),
        Some('P') => (&t[..t.len() - 1], 1e15),
        Some('E') if !t[..t.len() - 1].is_empty() && !t.ends_with("eE") => {
            (&t[..t.len() - 1], 1e18)
        }
        _ => (t, 1.0),
    };
    match digits.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!(
            "{text:?} is not a positive number (e.g. 1.2e9, 1.2G, 350M, 600k)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(si(1.234e12), "1.23T");
        assert_eq!(si(45_600_000.0), "45.6M");
        assert_eq!(si(789.0), "789");
        assert_eq!(si(1000.0), "1k");
        assert_eq!(lr(0.003), "3e-3");
        assert_eq!(lr(0.00015), "1.5e-4");
        assert_eq!(lr(0.009407), "9.41e-3");
        assert_eq!(lr(0.013245), "0.0132");
        assert_eq!(lr(0.1), "0.1");
        assert_eq!(lr(1.6), "1.6");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(125.0), "2 min 05 s");
    }

    #[test]
    fn si_suffixes() {
        assert_eq!(parse_si("1.5M").unwrap(), 1.5e6);
        assert_eq!(parse_si("2e9").unwrap(), 2e9);
        assert_eq!(parse_si("600k").unwrap(), 6e5);
        assert_eq!(parse_si("3G").unwrap(), 3e9);
        assert!(parse_si("-1").is_err());
        assert!(parse_si("abc").is_err());
    }
}
