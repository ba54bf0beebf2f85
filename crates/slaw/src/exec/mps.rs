//! The CUDA Multi-Process Service (MPS) for a packed local run.
//!
//! Without MPS, the worker processes packed on one GPU each hold their own CUDA context, and the
//! GPU time-slices between contexts: one process's kernels run at a time, so small trials that
//! each fill a fraction of the GPU take turns instead of running side by side. Under MPS the
//! workers' kernels run concurrently. Measured on one H100 (docs/PERFORMANCE.md): the 24-trial
//! benchmark sweep, 5 workers per GPU, took 121 s time-sliced and 78–88 s under MPS.
//!
//! This module owns the daemon's lifetime for one `slaw run`: it decides whether MPS is wanted
//! ([`wanted`]), starts `nvidia-cuda-mps-control -d` with a pipe and log directory of this run's
//! own (so that no other program's CUDA work is routed through it), hands the workers the
//! environment that connects them ([`MpsDaemon::worker_env`]), and stops the daemon when the run
//! ends ([`Drop`]). A daemon the user already runs (`CUDA_MPS_PIPE_DIRECTORY` set) is used as
//! it is and left running.
//!
//! The price of MPS is weaker isolation: an out-of-memory error stays with its trial, but a
//! fatal GPU fault (an illegal memory access) in one client is reported to every client on that
//! GPU, so the trials running beside it fail too (and are retried). `--mps off` keeps full
//! isolation.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use slaw_core::ComputeDevice;

/// The control program of the CUDA MPS daemon.
pub const CONTROL_PROGRAM: &str = "nvidia-cuda-mps-control";
/// The environment variable that routes a CUDA program to an MPS daemon.
pub const PIPE_VAR: &str = "CUDA_MPS_PIPE_DIRECTORY";
/// Where the MPS daemon and servers write their logs.
pub const LOG_VAR: &str = "CUDA_MPS_LOG_DIRECTORY";

/// Whether a run uses MPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MpsMode {
    /// When trials share a GPU and the control program is installed.
    #[default]
    Auto,
    /// Always for a GPU run; an error if the daemon cannot be started.
    On,
    /// Never.
    Off,
}

/// Errors while starting the daemon.
#[derive(Debug, thiserror::Error)]
pub enum MpsError {
    /// `--mps on` but the control program is not installed.
    #[error("--mps on: {CONTROL_PROGRAM} is not on PATH (it comes with the NVIDIA driver)")]
    NotFound,
    /// The control program ran but no daemon came up.
    #[error("the MPS control daemon did not start: {0}")]
    Start(String),
    /// Creating its directories or running the control program failed.
    #[error("MPS: {0}")]
    Io(#[from] std::io::Error),
}

/// What a run does about MPS.
#[derive(Debug)]
pub enum MpsSetup {
    /// Not used, and why.
    Off(&'static str),
    /// The user's own daemon (`CUDA_MPS_PIPE_DIRECTORY` was set): workers inherit it.
    UserDaemon(PathBuf),
    /// A daemon started for this run; stopped when this value is dropped.
    Started(MpsDaemon),
}

impl MpsSetup {
    /// Environment variables every worker gets.
    pub fn worker_env(&self) -> Vec<(String, String)> {
        match self {
            MpsSetup::Started(d) => d.worker_env(),
            _ => Vec::new(),
        }
    }

    /// One line for the run's header.
    pub fn describe(&self) -> String {
        match self {
            MpsSetup::Off(why) => format!("MPS off ({why})"),
            MpsSetup::UserDaemon(dir) => format!("MPS: your daemon at {}", dir.display()),
            MpsSetup::Started(d) => format!("MPS on (daemon of this run, {})", d.root.display()),
        }
    }
}

/// Whether `mode` asks for MPS on these job slots: `Auto` wants it when two or more slots share
/// one GPU, `On` for any GPU run.
pub fn wanted(mode: MpsMode, slots: &[ComputeDevice]) -> bool {
    let gpus: Vec<usize> = slots
        .iter()
        .filter_map(|d| match d {
            ComputeDevice::Cuda(i) => Some(*i),
            ComputeDevice::Cpu => None,
        })
        .collect();
    match mode {
        MpsMode::Off => false,
        MpsMode::On => !gpus.is_empty(),
        MpsMode::Auto => gpus
            .iter()
            .enumerate()
            .any(|(k, g)| gpus[k + 1..].contains(g)),
    }
}

/// The control program on `PATH`, if installed.
pub fn find_control() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(CONTROL_PROGRAM))
        .find(|p| p.is_file())
}

/// Decides and, where wanted, starts MPS for a run on `slots`. With `Auto`, a control program
/// that is missing or fails leaves MPS off (the returned setup says why) instead of failing.
pub fn prepare(mode: MpsMode, slots: &[ComputeDevice]) -> Result<MpsSetup, MpsError> {
    if !wanted(mode, slots) {
        return Ok(MpsSetup::Off(match mode {
            MpsMode::Off => "--mps off",
            _ => "no GPU is shared",
        }));
    }
    if let Some(dir) = std::env::var_os(PIPE_VAR) {
        return Ok(MpsSetup::UserDaemon(PathBuf::from(dir)));
    }
    let Some(control) = find_control() else {
        return match mode {
            MpsMode::On => Err(MpsError::NotFound),
            _ => Ok(MpsSetup::Off("nvidia-cuda-mps-control not found")),
        };
    };
    let root = std::env::temp_dir().join(format!("slaw-mps-{}", std::process::id()));
    match MpsDaemon::start(&control, root) {
        Ok(d) => Ok(MpsSetup::Started(d)),
        Err(e) if mode == MpsMode::Auto => {
            eprintln!("slaw: warning: {e}; running without MPS");
            Ok(MpsSetup::Off("the daemon did not start"))
        }
        Err(e) => Err(e),
    }
}

/// A running MPS control daemon with its own pipe and log directories under `root`.
#[derive(Debug)]
pub struct MpsDaemon {
    control: PathBuf,
    root: PathBuf,
}

impl MpsDaemon {
    /// Starts `control -d` with pipe and log directories under `root` (created, and removed
    /// again when the daemon stops), and waits until its control pipe exists.
    pub fn start(control: &Path, root: PathBuf) -> Result<Self, MpsError> {
        std::fs::create_dir_all(root.join("pipe"))?;
        std::fs::create_dir_all(root.join("log"))?;
        let daemon = MpsDaemon {
            control: control.to_path_buf(),
            root,
        };
        let out = daemon.command().arg("-d").stdin(Stdio::null()).output()?;
        if !out.status.success() {
            return Err(MpsError::Start(format!(
                "{} -d: {}: {}",
                daemon.control.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        // `-d` forks the daemon and returns; the control pipe appears once it listens.
        let pipe = daemon.pipe_dir().join("control");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pipe.exists() {
            if Instant::now() > deadline {
                return Err(MpsError::Start(format!(
                    "no control pipe at {} after 10 s (log: {})",
                    pipe.display(),
                    daemon.log_dir().join("control.log").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(daemon)
    }

    /// The directory of the daemon's pipes.
    pub fn pipe_dir(&self) -> PathBuf {
        self.root.join("pipe")
    }

    /// The directory of the daemon's and servers' logs.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }

    /// The environment that connects a CUDA program to this daemon.
    pub fn worker_env(&self) -> Vec<(String, String)> {
        vec![
            (PIPE_VAR.into(), self.pipe_dir().display().to_string()),
            (LOG_VAR.into(), self.log_dir().display().to_string()),
        ]
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.control);
        cmd.envs(self.worker_env());
        cmd
    }

    /// Asks the daemon to quit (it waits for its clients to end) and removes the directories.
    ///
    /// The daemon handles `quit` and exits before the control client that sent it returns (its
    /// log shows the command and its exit in the same millisecond on the H100 machine), and it
    /// leaves its pipe files (`control`, `control_lock`, `control_privileged`) behind, so the
    /// client's exit is the signal to clean up. An earlier version waited for the pipe to go
    /// and so added its 10-second limit to every packed run.
    fn stop(&mut self) -> std::io::Result<()> {
        let mut child = self
            .command()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(b"quit\n")?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                child.kill()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::remove_dir_all(&self.root)
    }
}

impl Drop for MpsDaemon {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!(
                "slaw: warning: stopping the MPS daemon at {}: {e}",
                self.root.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn auto_wants_mps_only_where_trials_share_a_gpu() {
        use ComputeDevice::{Cpu, Cuda};
        assert!(wanted(MpsMode::Auto, &[Cuda(0), Cuda(0)]));
        assert!(wanted(MpsMode::Auto, &[Cuda(0), Cuda(1), Cuda(0), Cuda(1)]));
        assert!(!wanted(MpsMode::Auto, &[Cuda(0), Cuda(1)]));
        assert!(!wanted(MpsMode::Auto, &[Cpu, Cpu]));
        assert!(wanted(MpsMode::On, &[Cuda(1)]));
        assert!(!wanted(MpsMode::On, &[Cpu]));
        assert!(!wanted(MpsMode::Off, &[Cuda(0), Cuda(0)]));
    }

    /// A stand-in for `nvidia-cuda-mps-control` (the real one needs a GPU): `-d` creates the
    /// control pipe in `$CUDA_MPS_PIPE_DIRECTORY`; otherwise it appends its input and that
    /// variable to `record`. Like the real daemon, it leaves the pipe behind on `quit`.
    fn fake_control(dir: &Path, record: &Path) -> PathBuf {
        let script = dir.join(CONTROL_PROGRAM);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 if [ \"$1\" = -d ]; then touch \"$CUDA_MPS_PIPE_DIRECTORY/control\"; exit 0; fi\n\
                 while read -r line; do echo \"$line $CUDA_MPS_PIPE_DIRECTORY\" >> {rec}; done\n",
                rec = record.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    #[test]
    fn the_daemon_gets_its_own_directories_and_is_told_to_quit() {
        let tmp = tempfile::tempdir().unwrap();
        let record = tmp.path().join("record");
        let control = fake_control(tmp.path(), &record);
        let root = tmp.path().join("run");
        let daemon = MpsDaemon::start(&control, root.clone()).unwrap();
        let env = daemon.worker_env();
        let pipe = root.join("pipe");
        assert_eq!(env[0], (PIPE_VAR.to_string(), pipe.display().to_string()));
        assert_eq!(env[1].0, LOG_VAR);
        assert!(pipe.join("control").exists());
        let stopping = Instant::now();
        drop(daemon);
        assert!(
            stopping.elapsed() < Duration::from_secs(5),
            "stopping waits for the control client, not for the pipe the daemon leaves behind"
        );
        let said = std::fs::read_to_string(&record).unwrap();
        assert_eq!(said.trim(), format!("quit {}", pipe.display()));
        assert!(!root.exists(), "the run's MPS directories are removed");
    }

    #[test]
    fn a_daemon_that_never_listens_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let control = tmp.path().join(CONTROL_PROGRAM);
        std::fs::write(
            &control,
            "#!/bin/sh\necho 'cannot open the GPU' >&2\nexit 3\n",
        )
        .unwrap();
        std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = MpsDaemon::start(&control, tmp.path().join("run")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("cannot open the GPU"), "{text}");
    }
}
