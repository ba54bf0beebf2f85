//! Folders of images: `<path>/train/<class>/*.{png,jpg,jpeg,webp}` and optionally
//! `<path>/val/<class>/…`. Class folders are sorted by name for stable labels; images are
//! decoded with the `image` crate in parallel (rayon), chunk by chunk, so that memory holds one
//! chunk of decoded images, not the data set.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::cache::{CacheWriter, SplitWriter};
use crate::pixels::{Stored, Target};
use crate::{DataError, Progress};

/// Image file extensions slaw decodes (case-insensitive).
const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "webp"];

/// Images decoded at once: enough to keep every core busy, few enough to bound memory.
const CHUNK: usize = 2048;

/// The images of one split, with their labels.
#[derive(Debug, Clone, Default)]
pub struct SplitFiles {
    /// Every image, class by class.
    pub files: Vec<(PathBuf, u32)>,
}

/// The images of a folder data set.
#[derive(Debug, Clone)]
pub struct FolderFiles {
    /// Class names, sorted; a label is an index into them.
    pub classes: Vec<String>,
    /// `train/`.
    pub train: SplitFiles,
    /// `val/`, when present.
    pub val: Option<SplitFiles>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut v = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|err| DataError::io(dir, err)))
        .collect::<Result<Vec<_>, _>>()?;
    v.sort();
    Ok(v)
}

fn class_dirs(split: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let dirs: Vec<(String, PathBuf)> = sorted_entries(split)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
        .filter(|(name, _)| !name.starts_with('.'))
        .collect();
    if dirs.is_empty() {
        return Err(DataError::invalid(
            split,
            "has no class subfolders (expected <class>/<image>.png, .jpg, .jpeg or .webp)",
        ));
    }
    Ok(dirs)
}

fn images_of(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let files: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_file() && is_image(p))
        .collect();
    if files.is_empty() {
        return Err(DataError::invalid(
            dir,
            "class folder holds no .png, .jpg, .jpeg or .webp image",
        ));
    }
    Ok(files)
}

impl FolderFiles {
    /// Lists the classes and images under `path`.
    pub fn find(path: &Path) -> Result<Self, DataError> {
        if !path.is_dir() {
            return Err(DataError::invalid(path, "no such folder"));
        }
        let train_dir = path.join("train");
        if !train_dir.is_dir() {
            return Err(DataError::invalid(
                path,
                "has no train/ folder (expected train/<class>/<image> and optionally val/<class>/<image>)",
            ));
        }
        let dirs = class_dirs(&train_dir)?;
        let classes: Vec<String> = dirs.iter().map(|(n, _)| n.clone()).collect();
        let mut train = SplitFiles::default();
        for (label, (_, dir)) in dirs.iter().enumerate() {
            train
                .files
                .extend(images_of(dir)?.into_iter().map(|p| (p, label as u32)));
        }
        let val_dir = path.join("val");
        let val = if val_dir.is_dir() {
            let mut val = SplitFiles::default();
            for (name, dir) in class_dirs(&val_dir)? {
                let label = classes.iter().position(|c| *c == name).ok_or_else(|| {
                    DataError::invalid(
                        &dir,
                        "is a validation class without a train/ folder of that name",
                    )
                })?;
                val.files
                    .extend(images_of(&dir)?.into_iter().map(|p| (p, label as u32)));
            }
            Some(val)
        } else {
            None
        };
        Ok(Self {
            classes,
            train,
            val,
        })
    }

    /// Every file the cache depends on.
    pub fn inputs(&self) -> Vec<PathBuf> {
        let val = self.val.iter().flat_map(|v| v.files.iter());
        self.train
            .files
            .iter()
            .chain(val)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// (height, width, channels) of the first image that decodes (`skip_bad`: skipping those
    /// that do not), which fixes the shape when the sweep does not.
    pub fn first_shape(&self, skip_bad: bool) -> Result<(usize, usize, usize), DataError> {
        for (path, _) in &self.train.files {
            match decode(path) {
                Ok(img) => return Ok((img.height, img.width, img.channels)),
                Err(e) if !skip_bad => return Err(e),
                Err(_) => {}
            }
        }
        Err(DataError::invalid(
            self.train.files.first().map_or(Path::new(""), |f| &f.0),
            "no training image could be decoded",
        ))
    }

    /// Decodes every image into `cache`; returns the images skipped as undecodable.
    pub fn write(
        &self,
        target: &Target,
        stored: (usize, usize, usize),
        convert: bool,
        skip_bad: bool,
        cache: &mut CacheWriter,
        progress: &Progress,
    ) -> Result<Vec<PathBuf>, DataError> {
        let total = self.inputs().len() as u64;
        let mut skipped = Vec::new();
        let mut done = 0u64;
        let job = Job {
            target,
            stored,
            convert,
            skip_bad,
            total,
            progress,
        };
        job.split(&self.train, &mut cache.train, &mut done, &mut skipped)?;
        if let Some(val) = &self.val {
            let split = cache.begin_validation()?;
            job.split(val, split, &mut done, &mut skipped)?;
        }
        Ok(skipped)
    }
}

struct Job<'a> {
    target: &'a Target,
    stored: (usize, usize, usize),
    /// The sweep names the channel count: every image is converted to it.
    convert: bool,
    skip_bad: bool,
    total: u64,
    progress: &'a Progress<'a>,
}

impl Job<'_> {
    fn split(
        &self,
        files: &SplitFiles,
        out: &mut SplitWriter,
        done: &mut u64,
        skipped: &mut Vec<PathBuf>,
    ) -> Result<(), DataError> {
        for chunk in files.files.chunks(CHUNK) {
            let decoded: Vec<Result<Vec<u8>, DataError>> =
                chunk.par_iter().map(|(path, _)| self.one(path)).collect();
            for ((path, label), result) in chunk.iter().zip(decoded) {
                match result {
                    Ok(chw) => out.push(&chw, *label)?,
                    Err(DataError::Decode { .. }) if self.skip_bad => skipped.push(path.clone()),
                    Err(e) => return Err(e),
                }
            }
            *done += chunk.len() as u64;
            (self.progress)(*done, self.total);
        }
        Ok(())
    }

    /// One image in the cache's layout; an image of another shape or channel count than the
    /// data set's is an error unless the sweep resizes or converts.
    fn one(&self, path: &Path) -> Result<Vec<u8>, DataError> {
        let img = decode(path)?;
        let (h, w, c) = self.stored;
        if self.target.side.is_none() && (img.height, img.width) != (h, w) {
            return Err(DataError::invalid(
                path,
                format!(
                    "is {}×{}, the data set's first image {h}×{w}: set data.image_size to resize every image",
                    img.height, img.width
                ),
            ));
        }
        if img.channels != c && !self.convert {
            return Err(DataError::invalid(
                path,
                format!(
                    "has {} channel(s), the data set's first image {c}: set data.channels (1 or 3) to convert every image",
                    img.channels
                ),
            ));
        }
        let mut chw = Vec::with_capacity(self.target.channels * h * w);
        img.append_chw(self.target, &mut chw);
        Ok(chw)
    }
}

/// Decodes one file into 1 (grey) or 3 (colour) channels; alpha is dropped, 16-bit reduced.
pub fn decode(path: &Path) -> Result<Stored, DataError> {
    let img = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .decode()
        .map_err(|e| DataError::Decode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    let grey = matches!(
        img.color(),
        image::ColorType::L8
            | image::ColorType::La8
            | image::ColorType::L16
            | image::ColorType::La16
    );
    let (hwc, channels) = if grey {
        (img.into_luma8().into_raw(), 1)
    } else {
        (img.into_rgb8().into_raw(), 3)
    };
    Ok(Stored {
        hwc,
        height,
        width,
        channels,
    })
}
