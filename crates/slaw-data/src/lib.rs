//! Image data sets for slaw's trainer: folders of PNG/JPEG/WebP images, CIFAR's binary batches
//! and NumPy arrays, decoded once (in parallel, resized and converted to the sweep's channel
//! count) into a uint8 cache that every trial and worker memory-maps.
//!
//! The planner calls [`prepare`]: it lists the inputs, reuses the cache when their names, sizes
//! and modification times are unchanged, or decodes them otherwise, and returns the cache's
//! [`CacheMeta`] with the content hash that goes into every trial key. The trainer calls
//! [`open`] with that hash. Errors name the file or folder at fault ([`DataError`]).

pub mod cache;
mod cifar;
mod error;
mod folder;
mod npy;
mod pixels;
pub mod synth;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
pub use slaw_core::config::ImageFormat;

pub use cache::{CacheMeta, ImageCache, MappedSplit, SplitMeta};
pub use error::DataError;
pub use folder::decode;
use pixels::Target;

/// Reports decoding progress: (images done, images in all).
pub type Progress<'a> = dyn Fn(u64, u64) + Sync + 'a;

/// Environment variable naming the cache directory (default: `slaw-cache` beside the
/// database).
pub const CACHE_ENV: &str = "SLAW_CACHE";

/// What a sweep file says about an image data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How the data set is stored.
    pub format: ImageFormat,
    /// Where.
    pub path: PathBuf,
    /// Square side every image is resized to (shorter side, then a centre crop).
    pub image_size: Option<usize>,
    /// Channels every image is converted to (1 or 3).
    pub channels: Option<usize>,
    /// Leave out images that cannot be decoded (counted) instead of stopping.
    pub skip_bad: bool,
}

/// The cache directory: `$SLAW_CACHE`, else `slaw-cache` beside the database file `beside`,
/// else `~/.cache/slaw`.
pub fn cache_root(beside: Option<&Path>) -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(parent) = beside.and_then(Path::parent) {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        return parent.join("slaw-cache");
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".cache")
        .join("slaw")
}

/// The files of a data set in one of the three formats.
enum Inputs {
    Folder(folder::FolderFiles),
    Cifar(cifar::CifarFiles),
    Npy(npy::NpyFiles),
}

impl Inputs {
    fn find(settings: &Settings) -> Result<Self, DataError> {
        let path = &settings.path;
        Ok(match settings.format {
            ImageFormat::Folder => Inputs::Folder(folder::FolderFiles::find(path)?),
            ImageFormat::Cifar => Inputs::Cifar(cifar::CifarFiles::find(path)?),
            ImageFormat::Npy => Inputs::Npy(npy::NpyFiles::find(path)?),
        })
    }

    fn files(&self) -> Vec<PathBuf> {
        match self {
            Inputs::Folder(f) => f.inputs(),
            Inputs::Cifar(c) => c.inputs(),
            Inputs::Npy(n) => n.inputs(),
        }
    }

    /// (height, width, channels) as stored (a folder's: its first image's).
    fn stored_shape(&self, skip_bad: bool) -> Result<(usize, usize, usize), DataError> {
        match self {
            Inputs::Folder(f) => f.first_shape(skip_bad),
            Inputs::Cifar(_) => Ok((32, 32, 3)),
            Inputs::Npy(n) => n.stored_shape(),
        }
    }
}

/// The key of the inputs: the settings and every file's name, size and modification time.
fn input_key(settings: &Settings, files: &[PathBuf]) -> Result<String, DataError> {
    let mut h = Sha256::new();
    let root = settings
        .path
        .canonicalize()
        .map_err(|e| DataError::io(&settings.path, e))?;
    h.update(format!(
        "{}|{:?}|{}|{:?}|{:?}|{}\n",
        "slaw-images-v1",
        settings.format,
        root.display(),
        settings.image_size,
        settings.channels,
        settings.skip_bad
    ));
    for f in files {
        let m = std::fs::metadata(f).map_err(|e| DataError::io(f, e))?;
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let rel = f.strip_prefix(&settings.path).unwrap_or(f);
        h.update(format!("{}|{}|{mtime}\n", rel.display(), m.len()));
    }
    Ok(cache::hex(&h.finalize()))
}

fn check_settings(settings: &Settings) -> Result<(), DataError> {
    if let Some(c) = settings.channels.filter(|c| !matches!(c, 1 | 3)) {
        return Err(DataError::invalid(
            &settings.path,
            format!("data.channels is {c}; slaw trains on 1 (grey) or 3 (RGB) channels"),
        ));
    }
    if settings.image_size == Some(0) {
        return Err(DataError::invalid(
            &settings.path,
            "data.image_size must be at least 1",
        ));
    }
    Ok(())
}

/// The cache of the data set `settings` describes, under `root`: reused when its inputs are
/// unchanged, decoded (with `progress`) otherwise.
pub fn prepare(
    settings: &Settings,
    root: &Path,
    progress: &Progress,
) -> Result<CacheMeta, DataError> {
    check_settings(settings)?;
    let inputs = Inputs::find(settings)?;
    let files = inputs.files();
    let key = input_key(settings, &files)?;
    if let Some(meta) = cache::lookup_key(root, &key) {
        return Ok(meta);
    }
    let stored = inputs.stored_shape(settings.skip_bad)?;
    let target = Target {
        channels: settings.channels.unwrap_or(stored.2),
        side: settings.image_size,
    };
    let (height, width) = settings.image_size.map_or((stored.0, stored.1), |s| (s, s));
    let mut writer = cache::CacheWriter::create(root, target.channels, height, width)?;
    let mut skipped = Vec::new();
    let classes = match &inputs {
        Inputs::Folder(f) => {
            skipped = f.write(
                &target,
                stored,
                settings.channels.is_some(),
                settings.skip_bad,
                &mut writer,
                progress,
            )?;
            f.classes.clone()
        }
        Inputs::Cifar(c) => c.write(&target, &mut writer, progress)?,
        Inputs::Npy(n) => n.write(&target, &mut writer, progress)?,
    };
    if writer.train.is_empty() {
        return Err(DataError::invalid(
            &settings.path,
            "no training image could be read",
        ));
    }
    if classes.len() < 2 {
        return Err(DataError::invalid(
            &settings.path,
            format!(
                "has {} class(es); a classifier needs at least 2",
                classes.len()
            ),
        ));
    }
    let meta = CacheMeta {
        layout: String::new(),
        format: format!("{:?}", settings.format).to_lowercase(),
        source: settings.path.clone(),
        content_hash: String::new(),
        channels: 0,
        height: 0,
        width: 0,
        classes,
        train: SplitMeta::default(),
        validation: None,
        skipped: skipped.len(),
        skipped_examples: skipped.into_iter().take(5).collect(),
    };
    let meta = writer.finish(root, meta)?;
    cache::record_key(root, &key, &meta.content_hash)?;
    Ok(meta)
}

/// Maps the cache of content `hash` under `root`; when it is not there (a worker on another
/// machine), decodes `settings`' data set again and checks that it still has that content.
pub fn open(settings: &Settings, root: &Path, hash: &str) -> Result<ImageCache, DataError> {
    if let Ok(cache) = ImageCache::open(root, hash) {
        return Ok(cache);
    }
    let meta = prepare(settings, root, &|_, _| {})?;
    if meta.content_hash != hash {
        return Err(DataError::invalid(
            &settings.path,
            format!(
                "has changed since the sweep was planned (content {}, planned {}): plan a new sweep",
                &meta.content_hash[..12],
                &hash[..hash.len().min(12)]
            ),
        ));
    }
    ImageCache::open(root, hash)
}

#[cfg(test)]
mod tests;
