//! CIFAR's binary batches (Krizhevsky 2009): CIFAR-10's `data_batch_1.bin` … `data_batch_5.bin`
//! and `test_batch.bin` (a label byte and 3 072 pixel bytes per record), CIFAR-100's
//! `train.bin` and `test.bin` (coarse and fine label bytes, then the pixels; slaw trains on the
//! 100 fine labels). The path may be the folder of the files or the folder the archive was
//! extracted into (holding `cifar-10-batches-bin/` or `cifar-100-binary/`).

use std::path::{Path, PathBuf};

use crate::cache::CacheWriter;
use crate::pixels::{Stored, Target};
use crate::{DataError, Progress};

/// Pixels per CIFAR image: 3 × 32 × 32, stored channel by channel.
const PIXELS: usize = 3 * 32 * 32;

/// Which of the two CIFAR data sets a folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ten,
    Hundred,
}

/// The files of a CIFAR folder.
#[derive(Debug, Clone)]
pub struct CifarFiles {
    kind: Kind,
    dir: PathBuf,
    train: Vec<PathBuf>,
    test: PathBuf,
}

impl CifarFiles {
    /// Finds the batches under `path`.
    pub fn find(path: &Path) -> Result<Self, DataError> {
        if !path.is_dir() {
            return Err(DataError::invalid(path, "no such folder"));
        }
        for dir in [
            path.to_path_buf(),
            path.join("cifar-10-batches-bin"),
            path.join("cifar-100-binary"),
        ] {
            let ten: Vec<PathBuf> = (1..=5)
                .map(|i| dir.join(format!("data_batch_{i}.bin")))
                .collect();
            if ten.iter().all(|p| p.is_file()) {
                return Ok(Self {
                    kind: Kind::Ten,
                    test: dir.join("test_batch.bin"),
                    dir,
                    train: ten,
                });
            }
            if dir.join("train.bin").is_file() {
                return Ok(Self {
                    kind: Kind::Hundred,
                    train: vec![dir.join("train.bin")],
                    test: dir.join("test.bin"),
                    dir,
                });
            }
        }
        Err(DataError::invalid(
            path,
            "holds neither CIFAR-10's data_batch_1.bin … data_batch_5.bin nor CIFAR-100's \
             train.bin (the binary versions, not the Python pickles)",
        ))
    }

    /// Every file the cache depends on.
    pub fn inputs(&self) -> Vec<PathBuf> {
        let mut files = self.train.clone();
        if self.test.is_file() {
            files.push(self.test.clone());
        }
        files
    }

    fn record(&self) -> usize {
        match self.kind {
            Kind::Ten => 1 + PIXELS,
            Kind::Hundred => 2 + PIXELS,
        }
    }

    fn classes(&self) -> Vec<String> {
        let (names_file, n) = match self.kind {
            Kind::Ten => ("batches.meta.txt", 10),
            Kind::Hundred => ("fine_label_names.txt", 100),
        };
        let names: Vec<String> = std::fs::read_to_string(self.dir.join(names_file))
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        if names.len() == n {
            names
        } else {
            (0..n).map(|i| i.to_string()).collect()
        }
    }

    /// Decodes every record into `cache` (the test batch as the validation split).
    pub fn write(
        &self,
        target: &Target,
        cache: &mut CacheWriter,
        progress: &Progress,
    ) -> Result<Vec<String>, DataError> {
        let classes = self.classes();
        let sizes: Vec<u64> = self
            .inputs()
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .collect();
        let total = sizes.iter().sum::<u64>() / self.record() as u64;
        let mut done = 0u64;
        for file in &self.train {
            done += self.write_file(file, target, &classes, &mut cache.train)?;
            progress(done, total);
        }
        if self.test.is_file() {
            let val = cache.begin_validation()?;
            done += self.write_file(&self.test, target, &classes, val)?;
            progress(done, total);
        }
        Ok(classes)
    }

    fn write_file(
        &self,
        file: &Path,
        target: &Target,
        classes: &[String],
        split: &mut crate::cache::SplitWriter,
    ) -> Result<u64, DataError> {
        let bytes = std::fs::read(file).map_err(|e| DataError::io(file, e))?;
        let record = self.record();
        if bytes.is_empty() || bytes.len() % record != 0 {
            return Err(DataError::invalid(
                file,
                format!(
                    "{} bytes is not a whole number of {record}-byte CIFAR records",
                    bytes.len()
                ),
            ));
        }
        let mut chw = Vec::with_capacity(target.channels * 32 * 32);
        for (i, r) in bytes.chunks_exact(record).enumerate() {
            let label = r[record - PIXELS - 1] as usize;
            if label >= classes.len() {
                return Err(DataError::invalid(
                    file,
                    format!("record {i} has label {label}, not below {}", classes.len()),
                ));
            }
            let planes = &r[record - PIXELS..];
            let hwc = (0..32 * 32)
                .flat_map(|p| [planes[p], planes[1024 + p], planes[2048 + p]])
                .collect();
            chw.clear();
            Stored {
                hwc,
                height: 32,
                width: 32,
                channels: 3,
            }
            .append_chw(target, &mut chw);
            split.push(&chw, label as u32)?;
        }
        Ok((bytes.len() / record) as u64)
    }
}
