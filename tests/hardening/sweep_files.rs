//! Hostile and careless sweep files: nesting deep enough to overflow a recursive parser, files
//! of megabytes, grids of millions of trials or of non-finite rates, values of a megabyte in an
//! error message, and thousands of mutated sweep files. Each ends with exit code 2 (or a valid
//! sweep) quickly, with the line of the problem, and never with a crash.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::slaw_in;
use crate::common::{repo, Sandbox};

fn validate(sb: &Sandbox, name: &str, yaml: &str, extra: &[&str]) -> (Option<i32>, String) {
    let file = sb.write(name, yaml);
    let mut args = vec!["validate", file.to_str().unwrap()];
    args.extend(extra);
    let out = slaw_in(sb, &args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn deep_and_large_files_are_refused_quickly_with_a_line() {
    let sb = Sandbox::new();
    let started = Instant::now();
    // 20 000 nested block sequences in 40 KB: `- - - … x`.
    let block = format!("name: x\nmodel:\n{}x\n", "- ".repeat(20_000));
    let (code, err) = validate(&sb, "block.yaml", &block, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("block.yaml:3:") && err.contains("nested deeper than 64"),
        "{err}"
    );
    let flow = format!(
        "name: x\nmodel: {}{}\n",
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let (code, err) = validate(&sb, "flow.yaml", &flow, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("nested deeper than 64"), "{err}");
    let big = format!("name: x\ndescription: \"{}\"\n", "a".repeat(2 << 20));
    let (code, err) = validate(&sb, "big.yaml", &big, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("at most 1048576"), "{err}");
    assert!(err.len() < 1000, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

const GRID: &str = "name: grid
data: {dataset: synthetic, side: 6, classes: 3, train: 512, validation: 128, teacher_width: 16, seed: 1}
model: {family: mlp, depth: 1, sizes: [{name: a, width: 8}, {name: b, width: 16}]}
train:
  epochs: [1]
  batch_size: 32
";

#[test]
fn huge_and_non_finite_grids_are_refused() {
    let sb = Sandbox::new();
    let (code, err) = validate(
        &sb,
        "wide.yaml",
        &format!("{GRID}  lr: {{grid: {{centre: 0.01, below: 10000, above: 10000}}}}\n"),
        &[],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("train.lr.grid") && err.contains("at most 1000"),
        "{err}"
    );
    for factor in ["1e200", "1e30"] {
        let (code, err) = validate(
            &sb,
            "factor.yaml",
            &format!(
                "{GRID}  lr: {{grid: {{centre: 0.01, below: 20, above: 20, factor: {factor}}}}}\n"
            ),
            &[],
        );
        assert_eq!(code, Some(2), "{factor}: {err}");
        assert!(err.contains("reaches a learning rate of"), "{err}");
    }
    // 2 sizes × 500 rates × 120 seeds = 120 000 trials: over the default cap, under a raised one.
    let seeds: Vec<String> = (0..120).map(|s| s.to_string()).collect();
    let many = format!(
        "{GRID}  lr: {{grid: {{centre: 0.01, below: 250, above: 249, factor: 1.01}}}}\n  seeds: [{}]\n",
        seeds.join(", ")
    );
    let started = Instant::now();
    let (code, err) = validate(&sb, "many.yaml", &many, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("120000 trials") && err.contains("--max-trials"),
        "{err}"
    );
    let (code, err) = validate(&sb, "many.yaml", &many, &["--max-trials", "150000"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn long_values_are_cut_in_errors() {
    let sb = Sandbox::new();
    let long = "z".repeat(500_000);
    for yaml in [
        format!("{GRID}  lr: {{values: [0.01]}}\n  optimizer: {{name: {long}}}\n"),
        format!(
            "{}  lr: {{values: [0.01]}}\n",
            GRID.replace("name: grid", &format!("name: \"{long}!\""))
        ),
        format!("{GRID}  lr: {{values: [0.01]}}\n  {long}: 1\n"),
    ] {
        let (code, err) = validate(&sb, "long.yaml", &yaml, &[]);
        assert_eq!(code, Some(2), "{}", &err[..err.len().min(300)]);
        assert!(err.len() < 2_000, "{} bytes: {}…", err.len(), &err[..300]);
        // Named by its length (or, for a key too long to be one, by its position).
        assert!(
            err.contains("characters") || err.contains("column 500003"),
            "{err}"
        );
    }
}

/// A small deterministic generator (no dependency on the run's randomness).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces a careless or hostile edit inserts.
const PIECES: &[&str] = &[
    "\n",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "'",
    "\"",
    "&a ",
    "*a",
    "!!binary ",
    "~",
    "1e308",
    "-1",
    "0",
    "nan",
    ".inf",
    "99999999999999999999",
    "\t",
    "#",
    "---\n",
    "...\n",
    "? ",
    "|\n",
    ">\n",
    "below: 1000000",
    "factor: 1e-300",
    "epochs: []",
    "seeds: [0, 0]",
    "\u{feff}",
    "\0",
    "\u{1b}[2J",
    "{a: [b, {c: [d, {e: f}]}]}",
];

fn mutate(base: &str, rng: &mut Lcg) -> String {
    let mut s: Vec<char> = base.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(5) {
            0 if !s.is_empty() => {
                let end = (at + rng.below(40)).min(s.len());
                s.drain(at.min(end)..end);
            }
            1 => {
                let piece = PIECES[rng.below(PIECES.len())];
                let copies = if rng.below(10) == 0 {
                    1 + rng.below(300)
                } else {
                    1
                };
                for _ in 0..copies {
                    s.splice(at..at, piece.chars());
                }
            }
            2 if !s.is_empty() => {
                // Duplicate a line elsewhere.
                let text: String = s.iter().collect();
                let lines: Vec<&str> = text.lines().collect();
                let line = format!("{}\n", lines[rng.below(lines.len())]);
                s.splice(at..at, line.chars());
            }
            3 if at < s.len() => s[at] = char::from(32 + rng.below(95) as u8),
            _ => {
                let digits: String = (0..1 + rng.below(12))
                    .map(|_| char::from(b'0' + rng.below(10) as u8))
                    .collect();
                s.splice(at..at, digits.chars());
            }
        }
    }
    s.into_iter().collect()
}

/// 10 000 mutations of the repository's sweep files through the parser: no panic, no parse
/// slower than a second, and every rejection names a file line.
#[test]
fn ten_thousand_mutated_sweep_files_neither_crash_nor_hang() {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(repo().join("sweeps")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "yaml") {
            bases.push(std::fs::read_to_string(entry.path()).unwrap());
        }
    }
    assert!(bases.len() >= 5);
    let mut rng = Lcg(21);
    let mut worst = Duration::ZERO;
    let (mut valid, mut invalid) = (0, 0);
    for i in 0..10_000 {
        let base = &bases[i % bases.len()];
        let text = mutate(base, &mut rng);
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| slaw::spec::parse(&text, "m.yaml")));
        let took = started.elapsed();
        worst = worst.max(took);
        match result {
            Err(_) => panic!("mutation {i} panicked:\n{text}"),
            Ok(Ok(_)) => valid += 1,
            Ok(Err(slaw::spec::SpecError::Invalid(problems))) => {
                invalid += 1;
                assert!(!problems.is_empty());
                for p in &problems {
                    assert!(
                        p.message.len() <= 1_100,
                        "mutation {i}: {}",
                        p.message.len()
                    );
                }
            }
            Ok(Err(e)) => panic!("mutation {i}: unexpected error {e}"),
        }
        assert!(
            took < Duration::from_secs(1),
            "mutation {i} took {took:?}:\n{text}"
        );
    }
    eprintln!("10000 mutated sweep files: {valid} valid, {invalid} refused, slowest {worst:?}");
    assert!(
        invalid > 5_000,
        "the mutations should mostly break the files"
    );
}
