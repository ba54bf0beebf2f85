//! What the command line prints, and how: every line to standard output or standard error goes
//! through [`outln!`] / [`errln!`], which
//!
//! - escape control characters when the stream is a terminal (a trainer's output, a trial's
//!   error or a value in the database may hold escape sequences that would move the cursor,
//!   retitle the window or hide text; `\x1b` is printed instead), and leave them as they are
//!   for pipes and files;
//! - end quietly when the reader of a pipe has gone (`slaw query … | head`): exit code 0 for
//!   commands that only print, and no more output (but no stop) for `slaw run` and workers,
//!   whose trials go on.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// Set by commands whose work must go on when nobody reads their output any more.
static KEEP_GOING: AtomicBool = AtomicBool::new(false);
/// Set once standard output is a closed pipe (for `KEEP_GOING` commands).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Makes a closed standard output silence the process instead of ending it.
pub fn keep_going_when_output_closes() {
    KEEP_GOING.store(true, Ordering::SeqCst);
}

fn stdout_is_terminal() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::io::stdout().is_terminal())
}

/// Whether standard error is a terminal (cached).
pub fn stderr_is_terminal() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::io::stderr().is_terminal())
}

/// `text` with control characters (other than newline and tab) written as escapes: C0 and DEL
/// as `\xNN`, C1 as `\u{NN}`.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let bad = |c: char| (c.is_control() && c != '\n' && c != '\t') || c == '\u{7f}';
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !bad(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

/// Writes `text` to standard output, escaped on a terminal; see the module's description for
/// a closed pipe.
pub fn stdout(text: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let text = if stdout_is_terminal() {
        escape_controls(text)
    } else {
        Cow::Borrowed(text)
    };
    let mut lock = std::io::stdout().lock();
    let result = lock.write_all(text.as_bytes()).and_then(|()| lock.flush());
    if let Err(e) = result {
        closed(e);
    }
}

/// Writes `text` to standard error, escaped on a terminal; errors are ignored.
pub fn stderr(text: &str) {
    let text = if stderr_is_terminal() {
        escape_controls(text)
    } else {
        Cow::Borrowed(text)
    };
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn closed(e: std::io::Error) {
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        return;
    }
    if KEEP_GOING.load(Ordering::SeqCst) {
        STDOUT_CLOSED.store(true, Ordering::SeqCst);
    } else {
        std::process::exit(0);
    }
}

/// `println!` through [`stdout`].
macro_rules! outln {
    () => { $crate::cli::out::stdout("\n") };
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        $crate::cli::out::stdout(&line)
    }};
}
pub(crate) use outln;

/// `print!` through [`stdout`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::stdout(&format!($($arg)*)) };
}
pub(crate) use out;

/// `eprintln!` through [`stderr`].
macro_rules! errln {
    ($($arg:tt)*) => {{
        let mut line = format!($($arg)*);
        line.push('\n');
        $crate::cli::out::stderr(&line)
    }};
}
pub(crate) use errln;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            escape_controls("a\x1b]0;pwned\x07b\rc"),
            "a\\x1b]0;pwned\\x07b\\x0dc"
        );
        assert_eq!(
            escape_controls("csi\u{9b}2J del\u{7f}"),
            "csi\\u{9b}2J del\\x7f"
        );
        assert!(matches!(escape_controls("ünïcode ✓"), Cow::Borrowed(_)));
    }
}
