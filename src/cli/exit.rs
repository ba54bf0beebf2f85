//! Exit codes and error messages at the edge of the command line: which errors are the user's
//! input (exit 2) and which are failures at run time (exit 1), and an error's text with each
//! cause said once.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a failure at run time (a trial failed after its retries, the database failed) |
//! | 2 | invalid input: a sweep file, an argument, a database location, a query |
//! | 3 | (a worker started by `slaw run`) its GPU failed; the run starts a fresh worker |
//! | 4 | (a worker started by `slaw run`) the database failed under it; the run stops |
//! | 130 | interrupted (Ctrl-C, SIGTERM) |

use std::process::ExitCode;

use slaw::analysis::AnalysisError;
use slaw::exec::ExecError;
use slaw::query::QueryError;
use slaw::spec::SpecError;
use slaw::store::StoreError;
use slaw::sweep::SweepError;

/// Exit code for invalid input (a bad sweep file, argument, location or query).
pub const INVALID: u8 = 2;
/// Exit code of a worker whose GPU failed (out of memory in a device thread): its trial is
/// recorded as failed and the process ends, since a training thread may be stuck on the
/// device; `slaw run` starts a fresh worker in its slot.
pub const WORKER_DEVICE_FAILED: u8 = 3;
/// Exit code of a worker whose database failed under it (file deleted or read-only, disk
/// full): `slaw run` stops the whole run.
pub const WORKER_STORE_FAILED: u8 = slaw::exec::local::WORKER_STORE_FAILED as u8;
/// Exit code after Ctrl-C or SIGTERM.
pub const INTERRUPTED: u8 = 130;

/// An invalid argument or combination of arguments, found by the command line itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Returns early with an [`Invalid`] error (exit code 2).
macro_rules! invalid {
    ($($arg:tt)*) => {
        return Err($crate::cli::exit::Invalid(format!($($arg)*)).into())
    };
}
pub(crate) use invalid;

/// The exit code for `err`: 2 when any cause in its chain is the user's input, else 1.
pub fn code_for(err: &anyhow::Error) -> u8 {
    let invalid = err.chain().any(|cause| {
        if cause.is::<Invalid>() || cause.is::<SpecError>() || cause.is::<clap::Error>() {
            return true;
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return e.is_invalid_input();
        }
        if let Some(e) = cause.downcast_ref::<QueryError>() {
            return e.is_invalid_input();
        }
        if let Some(e) = cause.downcast_ref::<AnalysisError>() {
            return analysis_invalid(e);
        }
        if let Some(e) = cause.downcast_ref::<ExecError>() {
            return exec_invalid(e);
        }
        if let Some(e) = cause.downcast_ref::<SweepError>() {
            return match e {
                SweepError::Unsupported(_) | SweepError::Input(_) => true,
                SweepError::Store(s) => s.is_invalid_input(),
                SweepError::Exec(e) => exec_invalid(e),
                SweepError::Analysis(e) => analysis_invalid(e),
                SweepError::Plot(_) | SweepError::Io { .. } => false,
            };
        }
        false
    });
    if invalid {
        INVALID
    } else {
        1
    }
}

/// Whether an analysis error is the user's input.
fn analysis_invalid(e: &AnalysisError) -> bool {
    match e {
        AnalysisError::Store(s) => s.is_invalid_input(),
        AnalysisError::Input(_) | AnalysisError::NoFits(_) => true,
    }
}

/// Whether an executor's error is the user's input.
fn exec_invalid(e: &ExecError) -> bool {
    match e {
        ExecError::Device(_) => true,
        ExecError::Store(s) => s.is_invalid_input(),
        _ => false,
    }
}

/// The process exit code for `err`.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(code_for(err))
}

/// `err` and its causes on one line, each cause once: a cause whose text the message already
/// holds (`thiserror`'s `#[from]` and `{0}` both show it) is not repeated.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || out.contains(text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let spec = SpecError::Io {
            path: "s.yaml".into(),
            source: io,
        };
        let err = anyhow::Error::new(spec).context("loading the sweep");
        assert_eq!(
            render(&err),
            "loading the sweep: cannot read s.yaml: No such file or directory"
        );
    }

    #[test]
    fn user_input_exits_2_and_failures_1() {
        let missing = SpecError::Io {
            path: "s.yaml".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(code_for(&anyhow::Error::new(missing)), INVALID);
        assert_eq!(
            code_for(&anyhow::Error::new(StoreError::NoSuchSweep("x".into()))),
            INVALID
        );
        assert_eq!(
            code_for(&anyhow::Error::new(ExecError::Device("tpu".into()))),
            INVALID
        );
        assert_eq!(
            code_for(&anyhow::Error::new(Invalid(
                "--params needs a budget".into()
            ))),
            INVALID
        );
        assert_eq!(
            code_for(&anyhow::Error::new(ExecError::Worker("crashed".into()))),
            1
        );
        let fault = StoreError::Fault(slaw::store::Fault::Full {
            detail: "database or disk is full".into(),
        });
        assert_eq!(code_for(&anyhow::Error::new(fault)), 1);
    }
}
