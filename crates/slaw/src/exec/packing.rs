//! Packing trials onto GPUs: an estimate of a trial's device memory from its parameter count,
//! batch, sequence length and width, and how many such trials fit on one GPU at once.
//!
//! The estimate is deliberately generous (f32 everywhere, no memory reuse): packing one trial
//! too few costs a little speed, one too many costs an out-of-memory failure.

use slaw_core::config::{ModelConfig, Precision, TrialConfig};
use slaw_core::cost::model_cost;
use slaw_core::ComputeDevice;

use crate::plan::expand;
use crate::spec::{PerDevice, Stack, SweepSpec};

/// Bytes a CUDA context and Burn's allocator pools take per process before any tensor.
pub const PROCESS_OVERHEAD: u64 = 700 << 20;

/// At most this many trials in one stack on a GPU.
pub const MAX_STACK: usize = 64;

/// At most this many trials share a GPU (each worker also needs a CPU core to launch kernels).
pub const MAX_PER_DEVICE: usize = 8;

/// Host cores one Burn CUDA worker keeps busy: measured 1.9–2.6 (its own thread, Burn's fusion
/// thread and CubeCL's launch loop) on the H100 machine, where 8 workers on 16 cores saturated
/// the CPU and ran the sweep benchmark in 143 s against 117 s with 4–6 (docs/PERFORMANCE.md).
pub const CORES_PER_CUDA_WORKER: usize = 3;

/// How many Burn CUDA workers per GPU the host's `cores` can feed across `gpus` GPUs (at least 1).
pub fn cpu_cap(cores: usize, gpus: usize) -> usize {
    (cores / CORES_PER_CUDA_WORKER / gpus.max(1)).max(1)
}

/// Estimated peak device memory of one trial, in bytes.
pub fn trial_memory(config: &TrialConfig) -> u64 {
    stack_memory(config, 1)
}

/// Estimated peak device memory of a worker training `stack` trials like `config` as one
/// stacked model: one process and one copy of the data, the rest once per trial.
pub fn stack_memory(config: &TrialConfig, stack: usize) -> u64 {
    let shape = config.data.input_shape();
    let cost = model_cost(&config.model, &shape);
    // Mixed precision keeps f32 tensors (its bf16 copies of a product's operands are
    // short-lived and smaller).
    let elem: u64 = match config.precision {
        Precision::F32 | Precision::Bf16Mixed => 4,
        Precision::Bf16 => 2,
    };
    // Weights, gradients and AdamW's two moments.
    let params = cost.params_total * (elem * 2 + 8);
    let batch = config.batch_size as u64;
    let activations = match &config.model {
        ModelConfig::Mlp(m) => batch * m.width as u64 * m.depth as u64 * 4 * elem,
        ModelConfig::Vit(v) => {
            let t = cost.tokens_per_example;
            batch * v.depth as u64 * per_block(t, v.width as u64, v.heads as u64) * elem
        }
        ModelConfig::Aim(a) => {
            let t = cost.tokens_per_example;
            // As the ViT, with the head's blocks counted as blocks, plus the per-example masks.
            let blocks = (a.depth + a.head_depth) as u64;
            batch * (blocks * per_block(t, a.width as u64, a.heads as u64) + t * t) * elem
        }
        ModelConfig::Convnet(c) => {
            // Per block: about six feature maps of the stage's size (two convolutions, their
            // inputs, activations and the residual sum) and the two 3×3 convolutions' im2col
            // columns (nine maps each); stages halve the area and double the channels, so
            // every stage costs about half the previous one.
            let area = shape.height as u64 * shape.width as u64;
            let blocks: u64 = c
                .depths
                .iter()
                .enumerate()
                .map(|(i, &n)| (n as u64 * area * c.stage_width(i) as u64) >> (2 * i))
                .sum();
            batch * (24 * blocks + 11 * area * c.width as u64) * elem
        }
    };
    // The training and validation sets live on the device.
    let examples = (config.data.train_examples() + config.data.validation_examples()) as u64;
    let data = examples * (shape.features() + shape.classes) as u64 * 4;
    PROCESS_OVERHEAD + stack.max(1) as u64 * (params + activations) + data
}

/// Activations a transformer block keeps per example (in elements) for `t` tokens of width `d`
/// with `h` heads: inputs of the norms, q/k/v, attention output and the MLP's 4·d hidden units
/// and their activation (≈ 16·d per token), plus scores and softmax (≈ 3·h·t²).
fn per_block(t: u64, d: u64, h: u64) -> u64 {
    16 * t * d + 3 * h * t * t
}

/// How many workers, each training stacks of up to `stack` of the largest of `trials`, fit on
/// a GPU of `device_bytes`, keeping 15 % free, between 1 and [`MAX_PER_DEVICE`].
pub fn per_device(trials: &[&TrialConfig], device_bytes: u64, stack: usize) -> usize {
    let largest = trials
        .iter()
        .map(|c| stack_memory(c, stack))
        .max()
        .unwrap_or(PROCESS_OVERHEAD);
    let fit = (device_bytes as f64 * 0.85 / largest as f64).floor() as usize;
    fit.clamp(1, MAX_PER_DEVICE)
}

/// Where a local run's workers go.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// One device per worker process.
    pub slots: Vec<ComputeDevice>,
    /// Trials per GPU, when on GPUs.
    pub per_device: Option<usize>,
    /// CPU threads per worker, when on the CPU.
    pub threads_per_job: Option<usize>,
    /// The most trials each worker trains as one stack.
    pub stack: usize,
}

/// The worker slots for `spec` on `devices`: on the CPU `jobs` workers (default 1) sharing the
/// cores; on GPUs `per_device` workers per GPU (the sweep's `execution.per_device` unless
/// overridden; `auto` from [`trial_memory`] and the smallest GPU, and for Burn trials no more
/// than the host's cores can feed, [`cpu_cap`]), or `jobs` in all.
pub fn layout(
    spec: &SweepSpec,
    devices: &[ComputeDevice],
    jobs: Option<usize>,
    per_device_override: Option<PerDevice>,
    stack_override: Option<Stack>,
) -> Layout {
    if devices.is_empty() || devices.contains(&ComputeDevice::Cpu) {
        let jobs = jobs.unwrap_or(1).max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        return Layout {
            slots: vec![ComputeDevice::Cpu; jobs],
            per_device: None,
            threads_per_job: Some((cores / jobs).max(1)),
            stack: stack_override.unwrap_or(spec.stack).limit(false),
        };
    }
    let requested = stack_override.unwrap_or(spec.stack);
    let k = match per_device_override.unwrap_or(spec.per_device) {
        PerDevice::Count(k) => k as usize,
        PerDevice::Auto => {
            let plan = expand(spec);
            let configs: Vec<&TrialConfig> =
                plan.trials.iter().filter_map(|t| t.config.burn()).collect();
            let smallest = gpu_memory().into_iter().min().unwrap_or(16 << 30);
            let stack = match requested {
                Stack::Count(n) => n as usize,
                Stack::Auto => 1,
            };
            let fit = per_device(&configs, smallest, stack);
            if configs.is_empty() {
                fit
            } else {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                fit.min(cpu_cap(cores, devices.len()))
            }
        }
    };
    let jobs = jobs.unwrap_or(devices.len() * k).max(1);
    // `auto` stacks where a worker has its GPU to itself: trials packed on a GPU under MPS
    // already keep it busy, and the packed benchmark sweep ran 10 % slower with stacks
    // (docs/PERFORMANCE.md).
    let stack = match requested {
        Stack::Count(n) => (n as usize).max(1),
        Stack::Auto if jobs <= devices.len() => Stack::AUTO_CUDA,
        Stack::Auto => 1,
    };
    Layout {
        slots: (0..jobs)
            .map(|i| devices[i % devices.len()].clone())
            .collect(),
        per_device: Some(k),
        threads_per_job: None,
        stack,
    }
}

/// Memory of each visible GPU in bytes (`nvidia-smi`, asked once per process), empty when none
/// is visible.
pub fn gpu_memory() -> Vec<u64> {
    static MEMORY: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    MEMORY.get_or_init(query_gpu_memory).clone()
}

fn query_gpu_memory() -> Vec<u64> {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .map(|mib| mib << 20)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::expand;
    use crate::spec::parse;

    const SWEEP: &str = "\
name: p
data: {dataset: fashion-mnist, validation: 2000}
model:
  family: vit
  patch: 4
  heads: 4
  sizes: [{name: s, width: 64, depth: 2}, {name: l, width: 1024, depth: 24}]
train:
  epochs: [1]
  lr: {values: [0.001]}
  batch_size: 256
";

    /// The measured plateau on the 16-core H100 machine (4–6 workers) contains the cap; CI's
    /// two cores still get one worker, and GPUs share the host's cores.
    #[test]
    fn the_host_cores_cap_workers_per_gpu() {
        assert_eq!(cpu_cap(16, 1), 5);
        assert_eq!(cpu_cap(2, 1), 1);
        assert_eq!(cpu_cap(128, 8), 5);
        assert_eq!(cpu_cap(32, 2), 5);
        assert_eq!(cpu_cap(16, 0), 5, "no GPU count is treated as one");
    }

    #[test]
    fn bigger_models_need_more_memory_and_pack_fewer() {
        let plan = expand(&parse(SWEEP, "p.yaml").unwrap());
        let small = plan.trials[0].config.burn().unwrap();
        let large = plan.trials[1].config.burn().unwrap();
        let (ms, ml) = (trial_memory(small), trial_memory(large));
        assert!(
            ms > PROCESS_OVERHEAD && ml > 4 * (ms - PROCESS_OVERHEAD),
            "{ms} {ml}"
        );
        let h100 = 80u64 << 30;
        assert_eq!(per_device(&[small], h100, 1), MAX_PER_DEVICE);
        let k = per_device(&[small, large], h100, 1);
        assert!((1..MAX_PER_DEVICE).contains(&k), "{k}");
        assert_eq!(
            per_device(&[large], 1 << 30, 1),
            1,
            "at least one, even if it cannot fit"
        );
        // A stack of four holds one process and one data set, and four trials' state.
        let four = stack_memory(large, 4);
        assert!(
            four > 3 * (ml - PROCESS_OVERHEAD) && four < 4 * ml,
            "{four} vs {ml}"
        );
        assert!(per_device(&[small, large], h100, 4) < k);
    }

    #[test]
    fn layouts() {
        let spec = parse(SWEEP, "p.yaml").unwrap();
        let cpu = layout(&spec, &[ComputeDevice::Cpu], Some(2), None, None);
        assert_eq!(cpu.slots, vec![ComputeDevice::Cpu; 2]);
        assert!(cpu.threads_per_job.is_some());
        let gpus = [ComputeDevice::Cuda(0), ComputeDevice::Cuda(2)];
        let two = layout(&spec, &gpus, None, Some(PerDevice::Count(3)), None);
        assert_eq!(two.slots.len(), 6);
        assert_eq!(
            two.slots
                .iter()
                .filter(|d| **d == ComputeDevice::Cuda(2))
                .count(),
            3
        );
        assert_eq!(two.per_device, Some(3));
        assert_eq!(two.stack, 1, "auto: no stacks on a shared GPU");
        let one_each = layout(&spec, &gpus, None, None, None);
        assert_eq!(one_each.slots, gpus.to_vec());
        assert_eq!(
            one_each.stack,
            Stack::AUTO_CUDA,
            "auto: stacks on a GPU of its own"
        );
        assert_eq!(cpu.stack, 1);
        let forced = layout(&spec, &gpus, None, None, Some(Stack::Count(2)));
        assert_eq!(forced.stack, 2);
    }

    /// `auto` never packs more Burn workers per GPU than the host's cores can feed (CI's two
    /// cores: one per GPU), while an explicit count is taken as given.
    #[test]
    fn auto_packing_respects_the_core_cap() {
        let spec = parse(
            &SWEEP.replace("train:", "execution: {per_device: auto}\ntrain:"),
            "p.yaml",
        )
        .unwrap();
        assert_eq!(spec.per_device, PerDevice::Auto);
        let gpus = [ComputeDevice::Cuda(0), ComputeDevice::Cuda(1)];
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let auto = layout(&spec, &gpus, None, None, None);
        let k = auto.per_device.unwrap();
        assert!(
            k >= 1 && k <= cpu_cap(cores, gpus.len()),
            "{k} per GPU on {cores} cores"
        );
        assert_eq!(auto.slots.len(), 2 * k);
        let forced = layout(&spec, &gpus, None, Some(PerDevice::Count(7)), None);
        assert_eq!(forced.per_device, Some(7));
    }
}
