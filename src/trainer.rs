//! The Burn adapter: slaw's own trainer (`slaw-train`) behind the library's
//! [`slaw_core::Trainer`] trait, so that the orchestrator library never links Burn.
//!
//! It keeps the data sets it loaded, by data configuration, for the worker's later trials (a
//! sweep's trials share one data set).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use slaw_core::{ComputeDevice, Outcome, Reporter, Trainer, TrainerError, TrialConfig};
use slaw_train::train::data::{self, DataPlaces, Dataset};
use slaw_train::train::options::{set_options, TrainerOptions};

/// The trainer's options from the environment (benchmarks and bisection switch slaw's own
/// operations off with `SLAW_LAYER_NORM_KERNEL=0`, `SLAW_SOFTMAX_KERNEL=0`,
/// `SLAW_HEADS_KERNEL=0`, `SLAW_ADAMW_KERNEL=0`, and set `SLAW_LINEAR_ROWS=N`,
/// `SLAW_STACK_ROWS=N`); fixed for the process before anything trains.
pub fn configure_from_env() {
    let on = |name: &str| std::env::var(name).map_or(true, |v| v != "0");
    let set = |name: &str| std::env::var(name).is_ok_and(|v| v == "1");
    let rows = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    let defaults = TrainerOptions::default();
    set_options(TrainerOptions {
        layer_norm_op: on("SLAW_LAYER_NORM_KERNEL"),
        softmax_op: on("SLAW_SOFTMAX_KERNEL"),
        heads_op: on("SLAW_HEADS_KERNEL"),
        adamw_op: on("SLAW_ADAMW_KERNEL"),
        linear_rows_cuda: rows("SLAW_LINEAR_ROWS").unwrap_or(defaults.linear_rows_cuda),
        stack_rows: rows("SLAW_STACK_ROWS"),
        // Opt-in until the cuBLASLt path has run on a GPU (issue 24).
        cublas_bf16: set("SLAW_CUBLAS"),
        cublas_f32: set("SLAW_CUBLAS_F32"),
    });
}

/// slaw's Burn trainer, with the data sets it has loaded and the cache images are read from.
pub struct BurnTrainer {
    datasets: Mutex<HashMap<String, Arc<Dataset>>>,
    cache: PathBuf,
}

impl BurnTrainer {
    /// A shareable trainer for the executors; image data sets are mapped from `cache`.
    pub fn shared(cache: PathBuf) -> Arc<dyn Trainer> {
        Arc::new(BurnTrainer {
            datasets: Mutex::default(),
            cache,
        })
    }

    /// The data set of `config`, loaded once.
    fn dataset(
        &self,
        config: &slaw_core::config::DataConfig,
        path: Option<&Path>,
    ) -> Result<Arc<Dataset>, TrainerError> {
        let failed = |e: &dyn std::fmt::Display| TrainerError(e.to_string());
        let key = serde_json::to_string(config).unwrap_or_default();
        if let Some(d) = self.datasets.lock().map_err(|e| failed(&e))?.get(&key) {
            return Ok(d.clone());
        }
        let places = DataPlaces {
            path,
            cache: Some(&self.cache),
            resident_bytes: None,
        };
        let loaded = Arc::new(data::load(config, &places).map_err(|e| failed(&e))?);
        self.datasets
            .lock()
            .map_err(|e| failed(&e))?
            .insert(key, loaded.clone());
        Ok(loaded)
    }
}

impl Trainer for BurnTrainer {
    fn cuda_built(&self) -> bool {
        slaw_train::train::trainer::CUDA_BUILT
    }

    fn stackable(&self, a: &TrialConfig, b: &TrialConfig) -> bool {
        slaw_train::stackable(a, b)
    }

    fn train_stack(
        &self,
        configs: &[TrialConfig],
        data_path: Option<&Path>,
        device: &ComputeDevice,
        reporters: &mut [&mut dyn Reporter],
    ) -> Result<Vec<Outcome>, TrainerError> {
        let Some(first) = configs.first() else {
            return Ok(Vec::new());
        };
        let data = self.dataset(&first.data, data_path)?;
        slaw_train::train_stack(configs, &data, device, reporters)
            .map_err(|e| TrainerError(e.to_string()))
    }
}
