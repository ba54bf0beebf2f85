//! The data path's speed alone, for `slaw bench-data`: how many examples per second the
//! streaming thread reads and normalises from the mapped cache, and how many the training loop
//! receives on the device (upload, augmentation, model layout), with no model in the way. A
//! data path slower than the training step would leave the GPU waiting.

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use slaw_core::{ComputeDevice, TrialConfig};

use super::batches::{BatchOrder, TrainBatches};
use super::clipping::NormReduction;
use super::data::Dataset;
use super::trainer::{on_backend, OnBackend, TrainError};

/// Examples per second of the two halves of the data path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DataPathSpeed {
    /// The streaming thread alone: gather and normalise on the host (0 for a resident set).
    pub host_examples_per_second: f64,
    /// What the training loop receives: the host thread overlapped with the upload, the
    /// augmentation and the model layout on the device.
    pub device_examples_per_second: f64,
}

/// Measures `batches` batches of `config`'s data path on `device` (after 5 warm-up batches).
pub fn measure_data_path(
    config: &TrialConfig,
    data: &Dataset,
    device: &ComputeDevice,
    batches: usize,
) -> Result<DataPathSpeed, TrainError> {
    let batch = config.batch_size;
    let host = match &data.streamed {
        Some(s) => {
            let rx = s.batches(
                BatchOrder::new(config.seed, data.train.len(), batch),
                data.shape.features(),
            );
            for _ in 0..5 {
                let _ = rx.recv();
            }
            let start = Instant::now();
            for _ in 0..batches {
                let _ = rx.recv();
            }
            (batches * batch) as f64 / start.elapsed().as_secs_f64()
        }
        None => 0.0,
    };
    struct Loop<'a> {
        config: &'a TrialConfig,
        data: &'a Dataset,
        batches: usize,
    }
    impl OnBackend for Loop<'_> {
        type Output = f64;
        fn run<B: AutodiffBackend>(self, device: &B::Device, _: String, _: NormReduction) -> f64 {
            let data =
                super::trainer::DeviceData::<B::InnerBackend>::load(self.config, self.data, device);
            let mut loop_batches = TrainBatches::<B::InnerBackend>::new(
                self.config,
                self.data,
                self.config.batch_size,
            );
            let mut sum = None;
            let mut step = |sum: &mut Option<_>| {
                let (x, _) = loop_batches.next(&data.train_x, &data.train_y, device);
                let s = x.sum();
                *sum = Some(match sum.take() {
                    Some(t) => t + s,
                    None => s,
                });
            };
            for _ in 0..5 {
                step(&mut sum);
            }
            if let Some(s) = sum.take() {
                let _ = s.into_scalar();
            }
            let start = Instant::now();
            for _ in 0..self.batches {
                step(&mut sum);
            }
            if let Some(s) = sum.take() {
                let _ = s.into_scalar();
            }
            (self.batches * self.config.batch_size) as f64 / start.elapsed().as_secs_f64()
        }
    }
    let device_rate = on_backend(
        device,
        config.precision,
        Loop {
            config,
            data,
            batches,
        },
    )?;
    Ok(DataPathSpeed {
        host_examples_per_second: host,
        device_examples_per_second: device_rate,
    })
}
