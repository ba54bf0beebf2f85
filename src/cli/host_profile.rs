//! `slaw bench --host-profile PATH`: samples every thread of the process (pprof-rs, SIGPROF at
//! ~1 kHz of CPU time) while the benchmark runs, and writes the samples as a flame graph
//! (`PATH`, SVG) and as folded stacks (`PATH.folded`, one `thread;frame;...;frame count` line
//! per stack, for grep and `bench/host_profile_summary.py`).
//!
//! Built only with `--features host-profile`: the profiler is a tool for performance work on
//! the GPU machine (`bench/host_profile.sh`), not part of a sweep.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// A running profiler; [`HostProfile::finish`] writes what it sampled.
pub(super) struct HostProfile {
    #[cfg(feature = "host-profile")]
    guard: pprof::ProfilerGuard<'static>,
    path: PathBuf,
}

impl HostProfile {
    /// Starts sampling every thread of this process.
    #[cfg(feature = "host-profile")]
    pub(super) fn start(path: &Path) -> Result<Self> {
        use anyhow::Context;
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(997)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .context("starting the host profiler")?;
        Ok(HostProfile {
            guard,
            path: path.to_path_buf(),
        })
    }

    /// Without the `host-profile` feature there is no profiler: an error that says so.
    #[cfg(not(feature = "host-profile"))]
    pub(super) fn start(path: &Path) -> Result<Self> {
        let _ = path;
        anyhow::bail!("--host-profile needs a build with `--features host-profile`")
    }

    /// Writes the flame graph and the folded stacks; returns the number of samples.
    #[cfg(feature = "host-profile")]
    pub(super) fn finish(self) -> Result<u64> {
        use std::io::Write;

        use anyhow::Context;
        let report = self
            .guard
            .report()
            .build()
            .context("building the host profile")?;
        let svg = std::fs::File::create(&self.path)
            .with_context(|| format!("creating {}", self.path.display()))?;
        report.flamegraph(svg).context("writing the flame graph")?;
        let folded_path = self.path.with_extension("folded");
        let mut folded = std::io::BufWriter::new(
            std::fs::File::create(&folded_path)
                .with_context(|| format!("creating {}", folded_path.display()))?,
        );
        let mut samples = 0u64;
        for (frames, count) in &report.data {
            let mut line = frames.thread_name_or_id();
            // pprof keeps the innermost frame first; folded stacks start at the root.
            for frame in frames.frames.iter().rev() {
                for symbol in frame.iter().rev() {
                    line.push(';');
                    line.push_str(&symbol.name());
                }
            }
            writeln!(folded, "{line} {count}")?;
            samples += *count as u64;
        }
        folded.flush()?;
        Ok(samples)
    }

    /// Without the feature nothing was started.
    #[cfg(not(feature = "host-profile"))]
    pub(super) fn finish(self) -> Result<u64> {
        let _ = self.path;
        Ok(0)
    }
}
