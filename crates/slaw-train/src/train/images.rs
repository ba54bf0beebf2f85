//! The researcher's images in training: the mapped uint8 cache (slaw-data) split into training
//! and validation examples, normalised per channel with the training split's statistics, and
//! either copied to the device once (small data sets, as before) or streamed batch by batch
//! from the mapped cache by a thread that prepares the next batch while the current one trains.

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use slaw_data::ImageCache;

use super::batches::BatchOrder;
use super::data::{DataError, Dataset, Examples};
use crate::config::{Augment, DataConfig, InputShape};

/// A data set whose training images stay in the mapped cache and are read per batch.
pub struct Streamed {
    cache: Arc<ImageCache>,
    /// The cache row of each training example.
    rows: Arc<Vec<usize>>,
    norm: Arc<Normalise>,
    /// Augmentation to apply on the device.
    pub augment: Option<Augment>,
}

/// Per-channel normalisation: `(v / 255 − mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalise {
    /// Mean per channel, [0, 1] units.
    pub mean: Vec<f32>,
    /// Standard deviation per channel.
    pub std: Vec<f32>,
}

impl Normalise {
    /// Appends the normalised pixels of one (channel, row, column) image.
    pub fn append(&self, chw: &[u8], out: &mut Vec<f32>) {
        let plane = chw.len() / self.mean.len();
        for (c, values) in chw.chunks_exact(plane).enumerate() {
            let (m, s) = (self.mean[c], self.std[c]);
            out.extend(values.iter().map(|&v| (v as f32 / 255.0 - m) / s));
        }
    }
}

/// The training split's statistics: the sums of every cached training image, less the
/// held-out validation images'.
fn statistics(cache: &ImageCache, held_out: &[usize], plane: usize) -> Normalise {
    let mut split = cache.meta.train.clone();
    let f = cache.meta.features();
    let pixels = cache.train.pixels();
    for &i in held_out {
        for (c, values) in pixels[i * f..(i + 1) * f].chunks_exact(plane).enumerate() {
            for &v in values {
                split.channel_sum[c] -= v as u64;
                split.channel_sq_sum[c] -= (v as u64) * (v as u64);
            }
        }
    }
    split.count -= held_out.len();
    let (mean, std) = split.mean_std(plane);
    Normalise {
        mean: mean.iter().map(|&m| m as f32).collect(),
        std: std.iter().map(|&s| (s as f32).max(1e-3)).collect(),
    }
}

fn gather(
    pixels: &[u8],
    labels: &[u32],
    rows: &[usize],
    features: usize,
    norm: &Normalise,
) -> Examples {
    let mut out = Vec::with_capacity(rows.len() * features);
    for &r in rows {
        norm.append(&pixels[r * features..(r + 1) * features], &mut out);
    }
    Examples {
        pixels: out,
        labels: rows.iter().map(|&r| labels[r]).collect(),
    }
}

/// Loads an images data set from the cache under `cache_root` (decoding `path` again when the
/// cache is missing, e.g. a worker on another machine). Training images larger than
/// `resident_bytes` as f32 are streamed.
pub(super) fn load(
    config: &DataConfig,
    path: Option<&Path>,
    cache_root: &Path,
    resident_bytes: usize,
) -> Result<Dataset, DataError> {
    let DataConfig::Images {
        format,
        content_hash,
        height,
        channels,
        resized,
        converted,
        skip_bad,
        held_out,
        train,
        validation,
        split_seed,
        augment,
        ..
    } = config
    else {
        return Err(DataError::Images(
            "not an images data set (dataset: images)".into(),
        ));
    };
    let shape = config.input_shape();
    let settings = slaw_data::Settings {
        format: *format,
        path: path.map(Path::to_path_buf).unwrap_or_default(),
        image_size: resized.then_some(*height),
        channels: converted.then_some(*channels),
        skip_bad: *skip_bad,
    };
    let cache = slaw_data::open(&settings, cache_root, content_hash)
        .map_err(|e| DataError::Images(e.to_string()))?;
    let f = shape.features();
    let plane = shape.height * shape.width;
    let mut rng = ChaCha8Rng::seed_from_u64(*split_seed);
    let (train_rows, val_rows, val_from_train) = if *held_out {
        let mut order: Vec<usize> = (0..cache.train.len()).collect();
        order.shuffle(&mut rng);
        let (val, rest) = order.split_at((*validation).min(order.len()));
        (
            rest[..(*train).min(rest.len())].to_vec(),
            val.to_vec(),
            true,
        )
    } else {
        let v = cache.validation.as_ref().map_or(0, |v| v.len());
        let mut order: Vec<usize> = (0..v).collect();
        if *validation < v {
            order.shuffle(&mut rng);
            order.truncate(*validation);
        }
        ((0..cache.train.len()).collect(), order, false)
    };
    if train_rows.len() != *train || val_rows.len() != *validation {
        return Err(DataError::Images(format!(
            "the cache holds {} training and {} validation images, the sweep planned {train} and {validation}",
            train_rows.len(),
            val_rows.len()
        )));
    }
    let norm = statistics(&cache, if val_from_train { &val_rows } else { &[] }, plane);
    let validation_examples = match (&cache.validation, val_from_train) {
        (Some(v), false) => gather(v.pixels(), &v.labels, &val_rows, f, &norm),
        _ => gather(
            cache.train.pixels(),
            &cache.train.labels,
            &val_rows,
            f,
            &norm,
        ),
    };
    let stream = train_rows.len() * f * 4 > resident_bytes;
    let (train_examples, images) = if stream {
        let labels = train_rows.iter().map(|&r| cache.train.labels[r]).collect();
        let streamed = Streamed {
            cache: Arc::new(cache),
            rows: Arc::new(train_rows),
            norm: Arc::new(norm),
            augment: *augment,
        };
        (
            Examples {
                pixels: Vec::new(),
                labels,
            },
            Some(streamed),
        )
    } else {
        let examples = gather(
            cache.train.pixels(),
            &cache.train.labels,
            &train_rows,
            f,
            &norm,
        );
        (examples, None)
    };
    Ok(Dataset {
        shape,
        train: train_examples,
        validation: validation_examples,
        streamed: images,
    })
}

/// One batch prepared on the host: normalised (channel, row, column) pixels and labels.
pub struct HostBatch {
    /// `batch × features` pixels.
    pub pixels: Vec<f32>,
    /// Labels.
    pub labels: Vec<u32>,
}

impl Streamed {
    /// Normalised pixels of the first `n` training examples (AIM's probe).
    pub fn first(&self, n: usize, shape: &InputShape) -> Vec<f32> {
        let rows = &self.rows[..n.min(self.rows.len())];
        let t = &self.cache.train;
        gather(t.pixels(), &t.labels, rows, shape.features(), &self.norm).pixels
    }

    /// Starts the thread that reads batches in `order`'s sequence from the mapped cache, two
    /// ahead of the training loop; it ends when the receiver is dropped.
    pub fn batches(&self, mut order: BatchOrder, features: usize) -> Receiver<HostBatch> {
        let (tx, rx) = sync_channel(2);
        let (cache, rows, norm) = (self.cache.clone(), self.rows.clone(), self.norm.clone());
        std::thread::spawn(move || loop {
            let idx = order.next_batch();
            let picked: Vec<usize> = idx.iter().map(|&i| rows[i as usize]).collect();
            let t = &cache.train;
            let e = gather(t.pixels(), &t.labels, &picked, features, &norm);
            let batch = HostBatch {
                pixels: e.pixels,
                labels: e.labels,
            };
            if tx.send(batch).is_err() {
                return;
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::*;
    use crate::train::trainer::tests::{tiny, Record};
    use slaw_core::{ComputeDevice, Outcome};
    use slaw_data::synth::Planted;

    /// A planted NumPy data set prepared into a cache, and its trial configuration.
    fn planted(dir: &Path, augment: Option<Augment>) -> TrialConfig {
        let data = dir.join("npy");
        Planted::generate(600, 8, 1)
            .write_npy(&data, "train")
            .unwrap();
        let settings = slaw_data::Settings {
            format: ImageFormat::Npy,
            path: data,
            image_size: None,
            channels: None,
            skip_bad: false,
        };
        let meta = slaw_data::prepare(&settings, &dir.join("cache"), &|_, _| {}).unwrap();
        let vit = ModelConfig::Vit(VitConfig {
            patch: 4,
            width: 16,
            depth: 1,
            heads: 2,
            mlp_dim: 32,
            pool: Pool::Mean,
            qk_norm: false,
            parallel_block: false,
            bias: true,
        });
        let mut config = tiny(
            0.003,
            Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            vit,
        );
        config.data = DataConfig::Images {
            format: ImageFormat::Npy,
            content_hash: meta.content_hash,
            channels: 3,
            height: 8,
            width: 8,
            classes: 6,
            resized: false,
            converted: false,
            skip_bad: false,
            held_out: true,
            train: 500,
            validation: 100,
            split_seed: 0,
            augment,
        };
        config
    }

    fn run(config: &TrialConfig, dir: &Path, resident: usize) -> (bool, Vec<f64>) {
        let data = load(
            &config.data,
            Some(&dir.join("npy")),
            &dir.join("cache"),
            resident,
        )
        .unwrap();
        let mut record = Record::default();
        let out =
            crate::train::trainer::train(config, &data, &ComputeDevice::Cpu, &mut record).unwrap();
        assert!(matches!(out, Outcome::Completed(_)));
        (
            data.streamed.is_some(),
            record.evals.iter().map(|e| e.val_loss).collect(),
        )
    }

    #[test]
    fn streamed_batches_train_as_the_resident_ones() {
        let dir = tempfile::tempdir().unwrap();
        let config = planted(dir.path(), None);
        let (streamed, from_stream) = run(&config, dir.path(), 1);
        let (resident, on_device) = run(&config, dir.path(), usize::MAX);
        assert!(streamed && !resident);
        // The same examples in the same order: patches made on the device equal the host's.
        for (a, b) in from_stream.iter().zip(&on_device) {
            assert!((a - b).abs() < 1e-4, "{from_stream:?} vs {on_device:?}");
        }
        assert!(on_device.last().unwrap() < &1.2, "{on_device:?}");
    }

    #[test]
    fn held_out_statistics_leave_the_validation_images_out() {
        let dir = tempfile::tempdir().unwrap();
        let config = planted(
            dir.path(),
            Some(Augment {
                crop: 1,
                flip: true,
            }),
        );
        let data = load(
            &config.data,
            Some(&dir.path().join("npy")),
            &dir.path().join("cache"),
            usize::MAX,
        )
        .unwrap();
        // Normalised with the training split's own mean and deviation: ≈ 0 and ≈ 1 per channel.
        let plane = 64;
        for c in 0..3 {
            let v: Vec<f32> = data
                .train
                .pixels
                .chunks(3 * plane)
                .flat_map(|img| img[c * plane..(c + 1) * plane].to_vec())
                .collect();
            let mean = v.iter().sum::<f32>() / v.len() as f32;
            let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
            assert!(
                mean.abs() < 1e-3 && (var.sqrt() - 1.0).abs() < 1e-3,
                "channel {c}: {mean} {var}"
            );
        }
        assert_eq!((data.train.len(), data.validation.len()), (500, 100));
        let (_, losses) = run(&config, dir.path(), usize::MAX);
        assert!(losses.iter().all(|l| l.is_finite()));
    }
}
