//! `dataset: images`: the researcher's images (folder, CIFAR or NumPy). Resolving the section
//! prepares the data set (slaw-data decodes it into its cache, or finds the cache of unchanged
//! inputs), so that the shape, class count, split sizes and content hash are known before a
//! trial is planned, and every problem with the files is a validation error at `data.path`.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use slaw_core::config::DataConfig;

use super::file::DataSection;
use super::resolve::Findings;

/// Where image data sets are decoded to, and who hears of the progress.
#[derive(Clone, Default)]
pub struct DataOptions {
    /// The cache directory (`None`: [`slaw_data::cache_root`] without a database).
    pub cache: Option<PathBuf>,
    /// Told (images done, images in all) while a data set is decoded.
    pub progress: Option<Arc<dyn Fn(u64, u64) + Send + Sync>>,
}

impl std::fmt::Debug for DataOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataOptions")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// What a sweep's image data set is: stored with the sweep, shown by `slaw show` and the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// `folder`, `cifar` or `npy`.
    pub format: String,
    /// Where it was read from.
    pub path: PathBuf,
    /// SHA-256 of the decoded images and labels.
    pub content_hash: String,
    /// Training examples.
    pub train: usize,
    /// Validation examples.
    pub validation: usize,
    /// Whether they are held out of the training files (no validation split of its own).
    pub held_out: bool,
    /// Class names in label order (the label map).
    pub classes: Vec<String>,
    /// Channels, rows, columns after decoding.
    pub shape: [usize; 3],
    /// Images left out as undecodable (`skip_bad`).
    pub skipped: usize,
    /// Per-channel mean and standard deviation of the training split in [0, 1] units, the
    /// normalisation the trainer applies.
    pub channel_mean: Vec<f64>,
    /// See `channel_mean`.
    pub channel_std: Vec<f64>,
}

impl DataIdentity {
    /// One line: format, path, counts, shape, classes, hash.
    pub fn summary(&self) -> String {
        let [c, h, w] = self.shape;
        format!(
            "{} {} — {} train / {} validation{}, {c}×{h}×{w}, {} classes, content {}{}",
            self.format,
            self.path.display(),
            self.train,
            self.validation,
            if self.held_out { " (held out)" } else { "" },
            self.classes.len(),
            &self.content_hash[..self.content_hash.len().min(12)],
            if self.skipped > 0 {
                format!(", {} unreadable images skipped", self.skipped)
            } else {
                String::new()
            }
        )
    }
}

/// The data set's configuration, its path and identity; `None` (with findings) when it cannot
/// be read.
pub(super) fn resolve_images(
    d: &DataSection,
    options: &DataOptions,
    f: &mut Findings,
) -> Option<(DataConfig, PathBuf, DataIdentity)> {
    for (field, present) in [
        ("source", d.source.is_some()),
        ("train_limit", d.train_limit.is_some()),
        ("side", d.side.is_some()),
        ("classes", d.classes.is_some()),
        ("train", d.train.is_some()),
        ("teacher_width", d.teacher_width.is_some()),
        ("seed", d.seed.is_some()),
    ] {
        if present {
            f.add(
                format!("data.{field}"),
                "not a setting of the images data set",
            );
        }
    }
    let Some(format) = d.format else {
        f.add(
            "data",
            "the images data set needs format: folder, cifar or npy",
        );
        return None;
    };
    let Some(path) = d.path.as_deref().map(expand_home) else {
        f.add(
            "data",
            "the images data set needs path: the folder holding it",
        );
        return None;
    };
    if let Some(c) = d.channels.filter(|c| !matches!(c, 1 | 3)) {
        f.add("data.channels", format!("1 (grey) or 3 (RGB), got {c}"));
    }
    if d.image_size == Some(0) {
        f.add("data.image_size", "must be at least 1");
    }
    let augment = d.augment.filter(|a| a.is_active());
    if let (Some(a), Some(side)) = (augment, d.image_size) {
        if a.crop >= side {
            f.add(
                "data.augment.crop",
                format!("the padding {} is not below the image side {side}", a.crop),
            );
        }
    }
    if !f.0.is_empty() {
        return None;
    }
    let settings = slaw_data::Settings {
        format,
        path: path.clone(),
        image_size: d.image_size,
        channels: d.channels,
        skip_bad: d.skip_bad.unwrap_or(false),
    };
    let root = options
        .cache
        .clone()
        .unwrap_or_else(|| slaw_data::cache_root(None));
    let quiet = |_: u64, _: u64| {};
    let progress: &(dyn Fn(u64, u64) + Sync) = match &options.progress {
        Some(p) => p.as_ref(),
        None => &quiet,
    };
    let meta = match slaw_data::prepare(&settings, &root, progress) {
        Ok(m) => m,
        Err(e) => {
            f.add("data.path", e.to_string());
            return None;
        }
    };
    // Absolute, so that workers started elsewhere find the same files.
    let path = path.canonicalize().unwrap_or(path);
    let split_seed = d.split_seed.unwrap_or(0);
    let (held_out, train, validation) = match &meta.validation {
        Some(v) => {
            let n = d.validation.unwrap_or(v.count);
            if n == 0 || n > v.count {
                f.add(
                    "data.validation",
                    format!(
                        "the data set's validation split has {} examples; use 1 to {} of them",
                        v.count, v.count
                    ),
                );
            }
            (false, meta.train.count, n.min(v.count))
        }
        None => {
            let total = meta.train.count;
            let n = d.validation.unwrap_or((total / 10).clamp(1, 10_000));
            if n == 0 || n >= total {
                f.add(
                    "data.validation",
                    format!(
                        "hold out between 1 and {} of the {total} images, got {n}",
                        total.saturating_sub(1)
                    ),
                );
            }
            (true, total.saturating_sub(n), n)
        }
    };
    if let Some(a) = augment {
        if a.crop >= meta.height.min(meta.width) {
            f.add(
                "data.augment.crop",
                format!("the padding {} is not below the image side", a.crop),
            );
        }
    }
    let (mean, std) = meta.train.mean_std(meta.height * meta.width);
    let identity = DataIdentity {
        format: meta.format.clone(),
        path: path.clone(),
        content_hash: meta.content_hash.clone(),
        train,
        validation,
        held_out,
        classes: meta.classes.clone(),
        shape: [meta.channels, meta.height, meta.width],
        skipped: meta.skipped,
        channel_mean: mean,
        channel_std: std,
    };
    let config = DataConfig::Images {
        format,
        content_hash: meta.content_hash,
        channels: meta.channels,
        height: meta.height,
        width: meta.width,
        classes: meta.classes.len(),
        resized: d.image_size.is_some(),
        converted: d.channels.is_some(),
        skip_bad: settings.skip_bad,
        held_out,
        train,
        validation,
        split_seed,
        augment,
    };
    Some((config, path, identity))
}

/// `path` with a leading `~/` replaced by `$HOME`.
fn expand_home(path: &std::path::Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}
