//! Data sets: Fashion-MNIST from IDX files, a seeded synthetic teacher task, and the fixed
//! train/validation split.
//!
//! Everything here runs on the host and yields normalised `f32` pixels in row-major
//! (channel, height, width) order; the trainer moves them to the device once per trial.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::images::Streamed;
use crate::config::{Augment, DataConfig, FashionSource, InputShape};

/// The vendored t10k split (MIT licence, see `data/fashion-mnist/README.md`).
const T10K_IMAGES: &[u8] =
    include_bytes!("../../../../data/fashion-mnist/t10k-images-idx3-ubyte.gz");
const T10K_LABELS: &[u8] =
    include_bytes!("../../../../data/fashion-mnist/t10k-labels-idx1-ubyte.gz");

/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const DEBIAN_FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Environment variable naming a directory with the Fashion-MNIST IDX files.
pub const DATA_ENV: &str = "SLAW_DATA";

/// Mean and standard deviation of Fashion-MNIST pixels scaled to [0, 1].
const FASHION_MEAN: f32 = 0.2860;
const FASHION_STD: f32 = 0.3530;

/// Errors while locating or decoding data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not a valid IDX file of the expected kind.
    #[error("{what} is not a valid IDX file: {reason}")]
    Format {
        /// The file or buffer.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The Fashion-MNIST train split is nowhere to be found.
    #[error(
        "the Fashion-MNIST train split (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz) \
         was not found in {searched}; set data.path in the sweep, or SLAW_DATA, to the directory \
         holding it (Debian: apt-get install dataset-fashion-mnist)"
    )]
    NotFound {
        /// The directories looked in.
        searched: String,
    },
    /// An images data set could not be opened or does not match the sweep.
    #[error("{0}")]
    Images(String),
    /// The split asks for more examples than the data set has.
    #[error("the data set has {available} examples; {requested} were asked for")]
    TooFew {
        /// Examples available.
        available: usize,
        /// Examples the configuration needs.
        requested: usize,
    },
}

/// Examples of one split: `len` rows of `features` normalised pixels and a class label each.
#[derive(Debug, Clone)]
pub struct Examples {
    /// Row-major pixels, `len × shape.features()`.
    pub pixels: Vec<f32>,
    /// Class of each example.
    pub labels: Vec<u32>,
}

impl Examples {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn subset(&self, indices: &[usize], features: usize) -> Examples {
        let mut pixels = Vec::with_capacity(indices.len() * features);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(&self.pixels[i * features..(i + 1) * features]);
            labels.push(self.labels[i]);
        }
        Examples { pixels, labels }
    }
}

/// A data set split into training and validation examples.
pub struct Dataset {
    /// Shape of every example.
    pub shape: InputShape,
    /// Training examples (only their labels when the images are streamed).
    pub train: Examples,
    /// Validation examples.
    pub validation: Examples,
    /// Where the training images come from when they are streamed from the mapped cache.
    pub streamed: Option<Streamed>,
}

impl Dataset {
    /// Augmentation of training images, when the data set asks for one.
    pub fn augment(config: &DataConfig) -> Option<Augment> {
        match config {
            DataConfig::Images { augment, .. } => augment.filter(Augment::is_active),
            _ => None,
        }
    }
}

/// Where a trial's data sets are read from beside its configuration.
#[derive(Debug, Clone, Default)]
pub struct DataPlaces<'a> {
    /// The directory the sweep names (`data.path`).
    pub path: Option<&'a Path>,
    /// The image cache directory (slaw-data's).
    pub cache: Option<&'a Path>,
    /// Training images larger than this as f32 are streamed (default: `SLAW_RESIDENT_BYTES`,
    /// else [`RESIDENT_BYTES`]).
    pub resident_bytes: Option<usize>,
}

/// Training images that fit in this many bytes as f32 are copied to the device once; larger
/// ones are streamed from the mapped cache (`SLAW_RESIDENT_BYTES` overrides it).
pub const RESIDENT_BYTES: usize = 2 << 30;

/// Loads the data set described by `config`. `places.path` is the directory the sweep names
/// (for the Fashion-MNIST train split: checked before `SLAW_DATA` and Debian's directory);
/// images are mapped from the cache under `places.cache` (see [`crate::train::images`]).
pub fn load(config: &DataConfig, places: &DataPlaces) -> Result<Dataset, DataError> {
    let shape = config.input_shape();
    let fashion_dir = places.path;
    match config {
        DataConfig::Images { .. } => {
            let resident = places.resident_bytes.unwrap_or_else(|| {
                std::env::var("SLAW_RESIDENT_BYTES")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(RESIDENT_BYTES)
            });
            let root = places
                .cache
                .map_or_else(|| slaw_data::cache_root(None), Path::to_path_buf);
            super::images::load(config, places.path, &root, resident)
        }
        DataConfig::FashionMnist {
            source,
            validation,
            train_limit,
            split_seed,
        } => {
            let all = match source {
                FashionSource::T10k => decode_fashion(
                    T10K_IMAGES,
                    T10K_LABELS,
                    "vendored t10k images",
                    "vendored t10k labels",
                )?,
                FashionSource::Train => {
                    let dir = locate_fashion_train(fashion_dir)?;
                    let images = dir.join("train-images-idx3-ubyte.gz");
                    let labels = dir.join("train-labels-idx1-ubyte.gz");
                    decode_fashion(
                        &read_file(&images)?,
                        &read_file(&labels)?,
                        &images.display().to_string(),
                        &labels.display().to_string(),
                    )?
                }
            };
            split(all, &shape, *validation, *train_limit, *split_seed)
        }
        DataConfig::Synthetic {
            side,
            classes,
            train,
            validation,
            teacher_width,
            seed,
        } => Ok(synthetic(
            *side,
            *classes,
            *train,
            *validation,
            *teacher_width,
            *seed,
        )),
    }
}

/// The directory holding the Fashion-MNIST train split: `explicit`, then `$SLAW_DATA`, then
/// Debian's package directory.
pub fn locate_fashion_train(explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = explicit {
        candidates.push(p.to_path_buf());
    }
    if let Some(env) = std::env::var_os(DATA_ENV) {
        candidates.push(PathBuf::from(env));
    }
    candidates.push(PathBuf::from(DEBIAN_FASHION_DIR));
    for dir in &candidates {
        if dir.join("train-images-idx3-ubyte.gz").is_file()
            && dir.join("train-labels-idx1-ubyte.gz").is_file()
        {
            return Ok(dir.clone());
        }
    }
    Err(DataError::NotFound {
        searched: candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn gunzip(bytes: &[u8], what: &str) -> Result<Vec<u8>, DataError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| DataError::Format {
                what: what.to_string(),
                reason: format!("gzip: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Parses an IDX file (optionally gzipped) of unsigned bytes; returns its dimensions and data.
pub fn parse_idx(bytes: &[u8], what: &str) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let raw = gunzip(bytes, what)?;
    let bad = |reason: String| DataError::Format {
        what: what.to_string(),
        reason,
    };
    if raw.len() < 4 {
        return Err(bad("shorter than its 4-byte magic number".into()));
    }
    if raw[0] != 0 || raw[1] != 0 {
        return Err(bad(format!(
            "magic number starts {:#04x} {:#04x}, not 0 0",
            raw[0], raw[1]
        )));
    }
    if raw[2] != 0x08 {
        return Err(bad(format!(
            "element type {:#04x} is not unsigned byte (0x08)",
            raw[2]
        )));
    }
    let ndim = raw[3] as usize;
    let header = 4 + 4 * ndim;
    if raw.len() < header {
        return Err(bad("truncated header".into()));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let b = &raw[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let expected: usize = dims.iter().product();
    let data = &raw[header..];
    if data.len() != expected {
        return Err(bad(format!(
            "dimensions {dims:?} need {expected} bytes, the file has {}",
            data.len()
        )));
    }
    Ok((dims, data.to_vec()))
}

fn decode_fashion(
    images: &[u8],
    labels: &[u8],
    images_what: &str,
    labels_what: &str,
) -> Result<Examples, DataError> {
    let (idims, pixels) = parse_idx(images, images_what)?;
    let (ldims, label_bytes) = parse_idx(labels, labels_what)?;
    if idims.len() != 3 || idims[1] != 28 || idims[2] != 28 {
        return Err(DataError::Format {
            what: images_what.to_string(),
            reason: format!("expected N×28×28 images, found {idims:?}"),
        });
    }
    if ldims.len() != 1 || ldims[0] != idims[0] {
        return Err(DataError::Format {
            what: labels_what.to_string(),
            reason: format!("expected {} labels, found dimensions {ldims:?}", idims[0]),
        });
    }
    if let Some(bad) = label_bytes.iter().find(|&&l| l > 9) {
        return Err(DataError::Format {
            what: labels_what.to_string(),
            reason: format!("label {bad} is not a Fashion-MNIST class (0–9)"),
        });
    }
    Ok(Examples {
        pixels: pixels
            .iter()
            .map(|&p| (p as f32 / 255.0 - FASHION_MEAN) / FASHION_STD)
            .collect(),
        labels: label_bytes.iter().map(|&l| l as u32).collect(),
    })
}

/// The fixed split: a seeded permutation; the first `validation` examples validate, the rest
/// (at most `train_limit`) train.
fn split(
    all: Examples,
    shape: &InputShape,
    validation: usize,
    train_limit: Option<usize>,
    seed: u64,
) -> Result<Dataset, DataError> {
    let n = all.len();
    if validation >= n {
        return Err(DataError::TooFew {
            available: n,
            requested: validation + 1,
        });
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let (val_idx, rest) = order.split_at(validation);
    let train_idx = match train_limit {
        Some(l) => &rest[..l.min(rest.len())],
        None => rest,
    };
    let f = shape.features();
    Ok(Dataset {
        shape: *shape,
        train: all.subset(train_idx, f),
        validation: all.subset(val_idx, f),
        streamed: None,
    })
}

fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller; u1 in (0, 1] so that ln(u1) is finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// A seeded teacher task: Gaussian inputs labelled by the arg-max of a random tanh network.
pub fn synthetic(
    side: usize,
    classes: usize,
    train: usize,
    validation: usize,
    teacher_width: usize,
    seed: u64,
) -> Dataset {
    let f = side * side;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let w1: Vec<f32> = (0..f * teacher_width)
        .map(|_| standard_normal(&mut rng) / (f as f32).sqrt())
        .collect();
    let w2: Vec<f32> = (0..teacher_width * classes)
        .map(|_| standard_normal(&mut rng) / (teacher_width as f32).sqrt())
        .collect();
    let mut make = |n: usize| {
        let mut pixels = Vec::with_capacity(n * f);
        let mut labels = Vec::with_capacity(n);
        let mut hidden = vec![0f32; teacher_width];
        for _ in 0..n {
            let x: Vec<f32> = (0..f).map(|_| standard_normal(&mut rng)).collect();
            for (j, h) in hidden.iter_mut().enumerate() {
                let s: f32 = (0..f).map(|i| x[i] * w1[i * teacher_width + j]).sum();
                *h = (3.0 * s).tanh();
            }
            let label = (0..classes)
                .map(|k| {
                    let s: f32 = (0..teacher_width)
                        .map(|j| hidden[j] * w2[j * classes + k])
                        .sum();
                    (k, s)
                })
                .fold((0, f32::NEG_INFINITY), |best, (k, s)| {
                    if s > best.1 {
                        (k, s)
                    } else {
                        best
                    }
                })
                .0;
            pixels.extend_from_slice(&x);
            labels.push(label as u32);
        }
        Examples { pixels, labels }
    };
    let train = make(train);
    let validation = make(validation);
    Dataset {
        shape: InputShape {
            channels: 1,
            height: side,
            width: side,
            classes,
        },
        train,
        validation,
        streamed: None,
    }
}

/// Reorders each example's pixels from (channel, height, width) into non-overlapping
/// `patch × patch` patches in raster order, each patch flattened as (channel, row, column).
pub fn to_patches(pixels: &[f32], shape: &InputShape, patch: usize) -> Vec<f32> {
    let (c, h, w) = (shape.channels, shape.height, shape.width);
    let f = shape.features();
    let (ph, pw) = (h / patch, w / patch);
    let mut out = Vec::with_capacity(pixels.len());
    for example in pixels.chunks_exact(f) {
        for py in 0..ph {
            for px in 0..pw {
                for ch in 0..c {
                    for y in 0..patch {
                        let row = ch * h * w + (py * patch + y) * w + px * patch;
                        out.extend_from_slice(&example[row..row + patch]);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendored_t10k_decodes() {
        let all = decode_fashion(T10K_IMAGES, T10K_LABELS, "images", "labels").unwrap();
        assert_eq!(all.len(), 10_000);
        assert_eq!(all.pixels.len(), 10_000 * 784);
        // Every class appears 1000 times in t10k.
        let mut counts = [0usize; 10];
        for &l in &all.labels {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [1000; 10]);
        let mean: f32 = all.pixels.iter().sum::<f32>() / all.pixels.len() as f32;
        assert!(mean.abs() < 0.05, "normalised mean {mean}");
    }

    #[test]
    fn idx_errors_are_reported() {
        assert!(matches!(
            parse_idx(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0], "f"),
            Err(DataError::Format { .. })
        ));
        let short = [0u8, 0, 8, 1, 0, 0, 0, 5, 1, 2];
        let err = parse_idx(&short, "short").unwrap_err().to_string();
        assert!(err.contains("need 5 bytes"), "{err}");
        let ok = [0u8, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 1, 7, 9];
        assert_eq!(parse_idx(&ok, "ok").unwrap(), (vec![2, 1], vec![7, 9]));
    }

    #[test]
    fn split_is_fixed_disjoint_and_limited() {
        let cfg = DataConfig::FashionMnist {
            source: FashionSource::T10k,
            validation: 2000,
            train_limit: Some(3000),
            split_seed: 7,
        };
        let a = load(&cfg, &DataPlaces::default()).unwrap();
        let b = load(&cfg, &DataPlaces::default()).unwrap();
        assert_eq!(a.train.len(), 3000);
        assert_eq!(a.validation.len(), 2000);
        assert_eq!(a.train.labels, b.train.labels);
        assert_eq!(a.validation.pixels, b.validation.pixels);
        let other = DataConfig::FashionMnist {
            source: FashionSource::T10k,
            validation: 2000,
            train_limit: Some(3000),
            split_seed: 8,
        };
        let c = load(&other, &DataPlaces::default()).unwrap();
        assert_ne!(a.validation.labels, c.validation.labels);
    }

    #[test]
    fn missing_train_split_names_the_places_searched() {
        let err = locate_fashion_train(Some(Path::new("/nonexistent/slaw"))).map(|_| ());
        if let Err(e) = err {
            assert!(e.to_string().contains("/nonexistent/slaw"));
        }
    }

    #[test]
    fn synthetic_is_seeded_and_uses_every_class() {
        let a = synthetic(6, 4, 500, 100, 32, 3);
        let b = synthetic(6, 4, 500, 100, 32, 3);
        assert_eq!(a.train.labels, b.train.labels);
        assert_eq!(a.train.pixels.len(), 500 * 36);
        for k in 0..4 {
            assert!(a.train.labels.contains(&k), "class {k} missing");
        }
    }

    #[test]
    fn patches_are_raster_ordered() {
        let shape = InputShape {
            channels: 1,
            height: 4,
            width: 4,
            classes: 2,
        };
        let pixels: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let p = to_patches(&pixels, &shape, 2);
        assert_eq!(
            p,
            vec![0., 1., 4., 5., 2., 3., 6., 7., 8., 9., 12., 13., 10., 11., 14., 15.]
        );
    }
}
