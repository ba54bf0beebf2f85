//! The `slurm:` section of a sweep file: the resources of the job array that
//! `slaw run --executor slurm` submits (partition, time limit, CPUs, memory, GPUs per trial,
//! array throttle, trials per task, resubmissions, extra `sbatch` arguments, setup lines).
//! Validated like every other section: each problem names its YAML path and position.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Findings;

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SlurmSection {
    partition: Option<String>,
    /// `minutes`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`, or a number of minutes.
    time: Option<serde_yaml::Value>,
    cpus: Option<u32>,
    /// `4G`, `500M`, or a number of megabytes.
    mem: Option<serde_yaml::Value>,
    gpus_per_trial: Option<u32>,
    max_parallel: Option<u32>,
    trials_per_task: Option<u32>,
    resubmit: Option<u32>,
    sbatch_args: Option<Vec<String>>,
    setup: Option<Vec<String>>,
    log_dir: Option<PathBuf>,
    job_name: Option<String>,
}

/// The resources and policy of the Slurm executor, every default resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmSpec {
    /// `--partition` (default: the cluster's default partition).
    pub partition: Option<String>,
    /// `--time`, the limit of one array task, in Slurm's format.
    pub time: Option<String>,
    /// `--cpus-per-task` (also the worker's training threads).
    pub cpus: u32,
    /// `--mem`, per task, in Slurm's format (`4G`; a bare number is megabytes).
    pub mem: Option<String>,
    /// GPUs per array task (`--gpus-per-task`): 0 trains on the CPU, 1 on the task's GPU.
    pub gpus_per_trial: u32,
    /// At most this many array tasks at once (`--array=0-N%max_parallel`).
    pub max_parallel: Option<u32>,
    /// Trials each task's worker runs before it exits (`slaw worker --max-trials`).
    pub trials_per_task: u32,
    /// How many times trials that are still claimable when every task has ended (cancelled,
    /// preempted, out of time) are submitted again.
    pub resubmit: u32,
    /// Further `sbatch` arguments, passed as written (`--account=x`, `--qos=high`).
    pub sbatch_args: Vec<String>,
    /// Shell lines run before the worker starts (`module load cuda`).
    pub setup: Vec<String>,
    /// Where the tasks write their output (default `results/<sweep>/slurm`); must be visible
    /// from the compute nodes.
    pub log_dir: Option<PathBuf>,
    /// `--job-name` (default `slaw-<sweep>`).
    pub job_name: Option<String>,
}

impl Default for SlurmSpec {
    fn default() -> Self {
        SlurmSpec {
            partition: None,
            time: None,
            cpus: 1,
            mem: None,
            gpus_per_trial: 0,
            max_parallel: None,
            trials_per_task: 1,
            resubmit: 2,
            sbatch_args: Vec::new(),
            setup: Vec::new(),
            log_dir: None,
            job_name: None,
        }
    }
}

/// `sbatch` options that slaw sets itself and that `sbatch_args` may not override.
const RESERVED: &[&str] = &["--array", "-a", "--parsable", "--wrap"];

fn scalar_text(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::String(s) => Some(s.trim().to_string()),
        _ => None,
    }
}

/// Whether `text` is a time limit Slurm accepts: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`,
/// `D-H:M:S`, or `UNLIMITED`/`INFINITE`.
pub fn valid_time(text: &str) -> bool {
    if matches!(text.to_ascii_lowercase().as_str(), "unlimited" | "infinite") {
        return true;
    }
    let numbers = |s: &str, max_parts: usize| {
        let parts: Vec<&str> = s.split(':').collect();
        parts.len() <= max_parts
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 6 && p.chars().all(|c| c.is_ascii_digit()))
    };
    match text.split_once('-') {
        Some((days, rest)) => {
            !days.is_empty() && days.chars().all(|c| c.is_ascii_digit()) && numbers(rest, 3)
        }
        None => numbers(text, 3),
    }
}

/// Whether `text` is a memory size Slurm accepts: digits with an optional `K`, `M`, `G` or
/// `T` unit.
pub fn valid_mem(text: &str) -> bool {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && text.len() - digits.len() <= 1
}

pub(super) fn resolve(section: Option<&SlurmSection>, f: &mut Findings) -> Option<SlurmSpec> {
    let s = section?;
    let mut out = SlurmSpec::default();
    let word = |f: &mut Findings, path: &str, v: &Option<String>| -> Option<String> {
        let v = v.as_ref()?;
        if v.is_empty() || v.chars().any(char::is_whitespace) {
            f.add(path, format!("must be one word, got {v:?}"));
        }
        Some(v.clone())
    };
    out.partition = word(f, "slurm.partition", &s.partition);
    out.job_name = word(f, "slurm.job_name", &s.job_name);
    if let Some(v) = &s.time {
        match scalar_text(v) {
            Some(t) if valid_time(&t) => out.time = Some(t),
            Some(t) => f.add(
                "slurm.time",
                format!(
                    "{t:?} is not a Slurm time limit: use minutes, MM:SS, HH:MM:SS, D-HH, \
                     D-HH:MM or D-HH:MM:SS"
                ),
            ),
            None => f.add(
                "slurm.time",
                "give the time limit as text, e.g. \"2:00:00\"",
            ),
        }
    }
    if let Some(v) = &s.mem {
        match scalar_text(v) {
            Some(m) if valid_mem(&m) => out.mem = Some(m),
            Some(m) => f.add(
                "slurm.mem",
                format!("{m:?} is not a Slurm memory size: use e.g. 4G, 500M or 4096 (megabytes)"),
            ),
            None => f.add("slurm.mem", "give the memory as text, e.g. 4G"),
        }
    }
    for (path, value, slot) in [
        ("slurm.cpus", s.cpus, &mut out.cpus),
        (
            "slurm.trials_per_task",
            s.trials_per_task,
            &mut out.trials_per_task,
        ),
    ] {
        if let Some(v) = value {
            if v == 0 {
                f.add(path, "must be at least 1");
            }
            *slot = v;
        }
    }
    if let Some(m) = s.max_parallel {
        if m == 0 {
            f.add("slurm.max_parallel", "must be at least 1");
        }
        out.max_parallel = Some(m);
    }
    if let Some(g) = s.gpus_per_trial {
        if g > 1 {
            f.add(
                "slurm.gpus_per_trial",
                format!("slaw trains a trial on one device: use 0 (CPU) or 1, got {g}"),
            );
        }
        out.gpus_per_trial = g;
    }
    if let Some(r) = s.resubmit {
        out.resubmit = r;
    }
    for (i, arg) in s.sbatch_args.iter().flatten().enumerate() {
        let path = format!("slurm.sbatch_args[{i}]");
        let name = arg.split('=').next().unwrap_or(arg);
        if !arg.starts_with('-') {
            f.add(
                path,
                format!("{arg:?} is not an option: write each as --name=value"),
            );
        } else if RESERVED.contains(&name) {
            f.add(path, format!("{name} is set by slaw"));
        } else if arg.contains('\n') {
            f.add(path, "an argument cannot span lines");
        }
    }
    out.sbatch_args = s.sbatch_args.clone().unwrap_or_default();
    out.setup = s.setup.clone().unwrap_or_default();
    out.log_dir = s.log_dir.clone();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits_and_memory_sizes() {
        for t in [
            "30",
            "30:00",
            "2:00:00",
            "1-0",
            "1-12:00",
            "1-12:00:00",
            "UNLIMITED",
        ] {
            assert!(valid_time(t), "{t}");
        }
        for t in ["", "1h", "2::00", "1:2:3:4", "-5", "1-", "1-1:2:3:4"] {
            assert!(!valid_time(t), "{t}");
        }
        for m in ["4096", "4G", "500M", "1T", "64k"] {
            assert!(valid_mem(m), "{m}");
        }
        for m in ["", "G", "4GB", "4.5G", "lots"] {
            assert!(!valid_mem(m), "{m}");
        }
    }
}
