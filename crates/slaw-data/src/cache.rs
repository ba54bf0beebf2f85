//! The decoded cache: every image of a data set as uint8 (channel, row, column) rows in one
//! file per split, the labels beside them, and `meta.json` with the shape, the class names, the
//! per-channel sums (for normalisation) and the content hash. A cache is written once, into a
//! temporary folder renamed into place, and then memory-mapped by every trial and worker.
//!
//! Layout under the cache directory:
//! - `images-<hash>/`: `meta.json`, `train.u8`, `train.labels` and, when the data set has its
//!   own validation split, `val.u8`, `val.labels` (labels little-endian `u32`);
//! - `keys/<key>`: the content hash of the cache built from the inputs whose file list, sizes,
//!   modification times and settings hash to `key`, so that an unchanged data set is not
//!   decoded again.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::DataError;

/// Version of the cache layout; part of every key and hash.
const LAYOUT: &str = "slaw-images-v1";

/// Counts and per-channel statistics of one split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitMeta {
    /// Examples.
    pub count: usize,
    /// Sum of every pixel value, per channel.
    pub channel_sum: Vec<u64>,
    /// Sum of every squared pixel value, per channel.
    pub channel_sq_sum: Vec<u64>,
}

impl SplitMeta {
    /// Per-channel mean and standard deviation in [0, 1] units, over images of `plane` pixels
    /// per channel.
    pub fn mean_std(&self, plane: usize) -> (Vec<f64>, Vec<f64>) {
        let n = (self.count * plane).max(1) as f64;
        self.channel_sum
            .iter()
            .zip(&self.channel_sq_sum)
            .map(|(&s, &q)| {
                let mean = s as f64 / n / 255.0;
                let var = q as f64 / n / (255.0 * 255.0) - mean * mean;
                (mean, var.max(0.0).sqrt())
            })
            .unzip()
    }
}

/// What a cache holds, stored as its `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheMeta {
    /// The layout version.
    pub layout: String,
    /// `folder`, `cifar` or `npy`.
    pub format: String,
    /// Where the data set was read from.
    pub source: PathBuf,
    /// SHA-256 of the shape, labels and pixels (hex): equal for equal tensors, whatever the
    /// format, file or class names.
    pub content_hash: String,
    /// Channels (1 or 3).
    pub channels: usize,
    /// Image rows.
    pub height: usize,
    /// Image columns.
    pub width: usize,
    /// Class names in label order (folder names, CIFAR's class numbers, NumPy's label values).
    pub classes: Vec<String>,
    /// The training split (all examples when the data set has no validation split).
    pub train: SplitMeta,
    /// The data set's own validation split, when it has one.
    pub validation: Option<SplitMeta>,
    /// Images left out because they could not be decoded (`skip_bad: true`).
    pub skipped: usize,
    /// The first few of them.
    pub skipped_examples: Vec<PathBuf>,
}

impl CacheMeta {
    /// Bytes per image.
    pub fn features(&self) -> usize {
        self.channels * self.height * self.width
    }
}

/// Writes one split: pixels streamed to disk, labels kept, hashes and channel sums updated.
pub struct SplitWriter {
    file: BufWriter<File>,
    path: PathBuf,
    pixels: Sha256,
    labels: Vec<u32>,
    sum: Vec<u64>,
    sq_sum: Vec<u64>,
    features: usize,
}

impl SplitWriter {
    fn create(path: PathBuf, channels: usize, features: usize) -> Result<Self, DataError> {
        let file = File::create(&path).map_err(|e| DataError::io(&path, e))?;
        Ok(Self {
            file: BufWriter::with_capacity(1 << 22, file),
            path,
            pixels: Sha256::new(),
            labels: Vec::new(),
            sum: vec![0; channels],
            sq_sum: vec![0; channels],
            features,
        })
    }

    /// Appends one image (`features` bytes in (channel, row, column) order) and its label.
    pub fn push(&mut self, chw: &[u8], label: u32) -> Result<(), DataError> {
        debug_assert_eq!(chw.len(), self.features);
        let plane = self.features / self.sum.len();
        for (c, values) in chw.chunks_exact(plane).enumerate() {
            let (s, q) = values.iter().fold((0u64, 0u64), |(s, q), &v| {
                (s + v as u64, q + (v as u64) * (v as u64))
            });
            self.sum[c] += s;
            self.sq_sum[c] += q;
        }
        self.pixels.update(chw);
        self.file
            .write_all(chw)
            .map_err(|e| DataError::io(&self.path, e))?;
        self.labels.push(label);
        Ok(())
    }

    /// Examples written so far.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True before the first example.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Flushes the pixels, writes the labels; returns the split's statistics and its hash.
    fn finish(mut self) -> Result<(SplitMeta, [u8; 32]), DataError> {
        self.file
            .flush()
            .map_err(|e| DataError::io(&self.path, e))?;
        self.file
            .get_ref()
            .sync_all()
            .map_err(|e| DataError::io(&self.path, e))?;
        let labels: Vec<u8> = self.labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        let labels_path = self.path.with_extension("labels");
        std::fs::write(&labels_path, &labels).map_err(|e| DataError::io(&labels_path, e))?;
        let mut h = Sha256::new();
        h.update((self.labels.len() as u64).to_le_bytes());
        h.update(Sha256::digest(&labels));
        h.update(self.pixels.finalize());
        Ok((
            SplitMeta {
                count: self.labels.len(),
                channel_sum: self.sum,
                channel_sq_sum: self.sq_sum,
            },
            h.finalize().into(),
        ))
    }
}

/// A cache being written, in a temporary folder until [`CacheWriter::finish`].
pub struct CacheWriter {
    dir: PathBuf,
    channels: usize,
    height: usize,
    width: usize,
    /// The training split.
    pub train: SplitWriter,
    /// The validation split, once [`CacheWriter::begin_validation`] is called.
    pub validation: Option<SplitWriter>,
}

impl CacheWriter {
    /// A writer for images of `channels × height × width`, in a fresh folder under `root`.
    pub fn create(
        root: &Path,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Self, DataError> {
        std::fs::create_dir_all(root).map_err(|e| DataError::io(root, e))?;
        let dir = root.join(format!("tmp-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        let train = SplitWriter::create(dir.join("train.u8"), channels, channels * height * width)?;
        Ok(Self {
            dir,
            channels,
            height,
            width,
            train,
            validation: None,
        })
    }

    /// Starts the data set's own validation split.
    pub fn begin_validation(&mut self) -> Result<&mut SplitWriter, DataError> {
        let f = self.channels * self.height * self.width;
        let w = SplitWriter::create(self.dir.join("val.u8"), self.channels, f)?;
        Ok(self.validation.insert(w))
    }

    /// Writes `meta.json` and moves the cache into place as `images-<hash>` under `root`.
    pub fn finish(self, root: &Path, mut meta: CacheMeta) -> Result<CacheMeta, DataError> {
        let (train, train_hash) = self.train.finish()?;
        let validation = self.validation.map(SplitWriter::finish).transpose()?;
        let mut h = Sha256::new();
        h.update(LAYOUT);
        // The shape, labels and pixels; not the class names or count (CIFAR-10 always has 10),
        // which the trial configuration holds.
        for n in [self.channels, self.height, self.width] {
            h.update((n as u64).to_le_bytes());
        }
        h.update(train_hash);
        if let Some((_, v)) = &validation {
            h.update(v);
        }
        meta.layout = LAYOUT.to_string();
        meta.content_hash = hex(&h.finalize());
        meta.channels = self.channels;
        meta.height = self.height;
        meta.width = self.width;
        meta.train = train;
        meta.validation = validation.map(|(m, _)| m);
        let json = serde_json::to_vec_pretty(&meta)
            .map_err(|e| DataError::invalid(&self.dir, format!("cannot write meta.json: {e}")))?;
        let meta_path = self.dir.join("meta.json");
        std::fs::write(&meta_path, json).map_err(|e| DataError::io(&meta_path, e))?;
        let target = cache_folder(root, &meta.content_hash);
        if target.join("meta.json").is_file() {
            // The same content was cached before (another path or format): keep that one.
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            let _ = std::fs::remove_dir_all(&target);
            std::fs::rename(&self.dir, &target).map_err(|e| DataError::io(&target, e))?;
        }
        Ok(meta)
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The folder of the cache with content hash `hash` under `root`.
pub fn cache_folder(root: &Path, hash: &str) -> PathBuf {
    root.join(format!("images-{}", &hash[..hash.len().min(16)]))
}

/// The content hash recorded for input key `key`, when a cache for it exists.
pub fn lookup_key(root: &Path, key: &str) -> Option<CacheMeta> {
    let hash = std::fs::read_to_string(root.join("keys").join(key)).ok()?;
    read_meta(&cache_folder(root, hash.trim())).ok()
}

/// Records that input key `key` produced the cache of `hash` (written, then renamed).
pub fn record_key(root: &Path, key: &str, hash: &str) -> Result<(), DataError> {
    let keys = root.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| DataError::io(&keys, e))?;
    let tmp = keys.join(format!(".{key}.{}", std::process::id()));
    std::fs::write(&tmp, hash).map_err(|e| DataError::io(&tmp, e))?;
    let path = keys.join(key);
    std::fs::rename(&tmp, &path).map_err(|e| DataError::io(&path, e))
}

fn read_meta(folder: &Path) -> Result<CacheMeta, DataError> {
    let path = folder.join("meta.json");
    let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| DataError::invalid(&path, format!("not a slaw cache description: {e}")))
}

/// One split of an opened cache: the mapped pixels and the labels.
pub struct MappedSplit {
    pixels: Option<Mmap>,
    /// Label of each example.
    pub labels: Vec<u32>,
}

impl MappedSplit {
    fn open(path: &Path, count: usize, features: usize) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let pixels = if count == 0 {
            None
        } else {
            // SAFETY: the cache files are written once, into a temporary folder renamed into
            // place, and never modified afterwards; slaw maps them read-only.
            #[allow(unsafe_code)]
            let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
            Some(map)
        };
        let expected = count * features;
        let got = pixels.as_ref().map_or(0, |m| m.len());
        if got != expected {
            return Err(DataError::invalid(
                path,
                format!(
                    "holds {got} bytes, its meta.json says {expected}: delete the cache folder"
                ),
            ));
        }
        let labels_path = path.with_extension("labels");
        let raw = std::fs::read(&labels_path).map_err(|e| DataError::io(&labels_path, e))?;
        if raw.len() != 4 * count {
            return Err(DataError::invalid(
                &labels_path,
                format!("holds {} labels, {count} expected", raw.len() / 4),
            ));
        }
        let labels = raw
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Self { pixels, labels })
    }

    /// All pixels, `count × features` bytes.
    pub fn pixels(&self) -> &[u8] {
        self.pixels.as_deref().unwrap_or(&[])
    }

    /// Examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A cache opened for training: its description and its mapped splits.
pub struct ImageCache {
    /// What it holds.
    pub meta: CacheMeta,
    /// The training split.
    pub train: MappedSplit,
    /// The data set's own validation split.
    pub validation: Option<MappedSplit>,
}

impl ImageCache {
    /// Maps the cache with content hash `hash` under `root`.
    pub fn open(root: &Path, hash: &str) -> Result<Self, DataError> {
        let folder = cache_folder(root, hash);
        let meta = read_meta(&folder)?;
        if meta.content_hash != hash {
            return Err(DataError::invalid(
                &folder,
                format!("holds content {}, not {hash}", meta.content_hash),
            ));
        }
        let f = meta.features();
        let train = MappedSplit::open(&folder.join("train.u8"), meta.train.count, f)?;
        let validation = match &meta.validation {
            Some(v) => Some(MappedSplit::open(&folder.join("val.u8"), v.count, f)?),
            None => None,
        };
        Ok(Self {
            meta,
            train,
            validation,
        })
    }
}
