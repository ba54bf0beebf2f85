//! NumPy arrays: `x_train.npy` (N, H, W) or (N, H, W, C) of `uint8` or `float32` (C 1 or 3,
//! floats in [0, 1] or [0, 255]), `y_train.npy` (N) of integers, and optionally `x_val.npy`,
//! `y_val.npy`. The arrays are memory-mapped and read row by row, so that their size is
//! bounded by the disk, not the memory.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::cache::{CacheWriter, SplitWriter};
use crate::pixels::{Stored, Target};
use crate::{DataError, Progress};

/// An element type slaw reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
}

impl Dtype {
    fn parse(descr: &str) -> Option<Dtype> {
        let (order, code) = descr.split_at(1.min(descr.len()));
        if !matches!(order, "<" | "|" | "=") {
            return None;
        }
        Some(match code {
            "u1" => Dtype::U8,
            "i1" => Dtype::I8,
            "i2" => Dtype::I16,
            "u2" => Dtype::U16,
            "i4" => Dtype::I32,
            "u4" => Dtype::U32,
            "i8" => Dtype::I64,
            "u8" => Dtype::U64,
            "f4" => Dtype::F32,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 => 8,
        }
    }
}

/// A mapped `.npy` array.
struct Array {
    path: PathBuf,
    map: Mmap,
    offset: usize,
    dtype: Dtype,
    descr: String,
    shape: Vec<usize>,
}

fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}'"))? + key.len() + 2;
    Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
}

impl Array {
    fn open(path: &Path) -> Result<Array, DataError> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        // SAFETY: the array is only read; a file changed while slaw reads it gives wrong pixels
        // (caught by the content hash on the next plan), not undefined behaviour in safe code
        // that holds no references across the change.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(|e| DataError::io(path, e))?;
        let bad = |reason: &str| DataError::invalid(path, format!("not a .npy array: {reason}"));
        if map.len() < 10 || &map[..6] != b"\x93NUMPY" {
            return Err(bad("no \\x93NUMPY magic"));
        }
        let (len, start) = match map[6] {
            1 => (u16::from_le_bytes([map[8], map[9]]) as usize, 10),
            2 | 3 if map.len() >= 12 => (
                u32::from_le_bytes([map[8], map[9], map[10], map[11]]) as usize,
                12,
            ),
            v => return Err(bad(&format!("format version {v}"))),
        };
        let header = map
            .get(start..start + len)
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or_else(|| bad("truncated header"))?;
        let descr = field(header, "descr")
            .and_then(|d| d.strip_prefix('\''))
            .and_then(|d| d.split('\'').next())
            .ok_or_else(|| bad("no 'descr'"))?;
        let dtype = Dtype::parse(descr).ok_or_else(|| {
            DataError::invalid(
                path,
                format!(
                    "element type '{descr}' is not one slaw reads (uint8 or float32 images, \
                     little-endian integer labels)"
                ),
            )
        })?;
        if field(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
            return Err(DataError::invalid(
                path,
                "is in Fortran order; save it with np.ascontiguousarray first",
            ));
        }
        let shape_text = field(header, "shape")
            .and_then(|s| s.strip_prefix('('))
            .and_then(|s| s.split(')').next())
            .ok_or_else(|| bad("no 'shape'"))?;
        let shape = shape_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse::<usize>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("unreadable 'shape'"))?;
        let descr = descr.to_string();
        let offset = start + len;
        let need = shape.iter().product::<usize>() * dtype.size();
        if map.len() - offset != need {
            return Err(DataError::invalid(
                path,
                format!(
                    "shape {shape:?} needs {need} bytes of data, the file has {}",
                    map.len() - offset
                ),
            ));
        }
        Ok(Array {
            path: path.to_path_buf(),
            map,
            offset,
            dtype,
            descr,
            shape,
        })
    }

    fn data(&self) -> &[u8] {
        &self.map[self.offset..]
    }

    /// The array's values as labels.
    fn labels(&self) -> Result<Vec<u32>, DataError> {
        let flat = matches!(self.shape.as_slice(), [_] | [_, 1]);
        if !flat {
            return Err(DataError::invalid(
                &self.path,
                format!("labels must have shape (N,), found {:?}", self.shape),
            ));
        }
        let d = self.data();
        let size = self.dtype.size();
        let value = |b: &[u8]| -> i128 {
            match self.dtype {
                Dtype::U8 => b[0] as i128,
                Dtype::I8 => b[0] as i8 as i128,
                Dtype::I16 => i16::from_le_bytes([b[0], b[1]]) as i128,
                Dtype::U16 => u16::from_le_bytes([b[0], b[1]]) as i128,
                Dtype::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i128,
                Dtype::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i128,
                Dtype::I64 => i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as i128,
                Dtype::U64 => u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as i128,
                Dtype::F32 => -1,
            }
        };
        if self.dtype == Dtype::F32 {
            return Err(DataError::invalid(
                &self.path,
                format!("labels must be integers, found '{}'", self.descr),
            ));
        }
        d.chunks_exact(size)
            .enumerate()
            .map(|(i, b)| {
                let v = value(b);
                u32::try_from(v)
                    .ok()
                    .filter(|&l| l < 1 << 20)
                    .ok_or_else(|| {
                        DataError::invalid(
                            &self.path,
                            format!("label {v} at index {i} is not a class number in 0..2^20"),
                        )
                    })
            })
            .collect()
    }

    /// (height, width, channels) of the images, after checking the element type.
    fn image_shape(&self) -> Result<(usize, usize, usize), DataError> {
        if !matches!(self.dtype, Dtype::U8 | Dtype::F32) {
            return Err(DataError::invalid(
                &self.path,
                format!("images must be uint8 or float32, found '{}'", self.descr),
            ));
        }
        match self.shape.as_slice() {
            [_, h, w] => Ok((*h, *w, 1)),
            [_, h, w, c @ (1 | 3)] => Ok((*h, *w, *c)),
            s => Err(DataError::invalid(
                &self.path,
                format!(
                    "images must have shape (N, H, W) or (N, H, W, C) with C 1 or 3, found {s:?}"
                ),
            )),
        }
    }

    /// The factor that brings float pixels to [0, 255]: 255 for [0, 1], 1 for [0, 255].
    fn float_scale(&self) -> Result<f32, DataError> {
        let mut max = 0f32;
        for b in self.data().chunks_exact(4) {
            let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            if v.is_nan() || !(0.0..=255.0).contains(&v) {
                return Err(DataError::invalid(
                    &self.path,
                    format!("float32 pixel {v} is outside [0, 1] and [0, 255]"),
                ));
            }
            max = max.max(v);
        }
        Ok(if max <= 1.0 { 255.0 } else { 1.0 })
    }
}

/// The arrays of a NumPy data set.
pub struct NpyFiles {
    train: (PathBuf, PathBuf),
    val: Option<(PathBuf, PathBuf)>,
}

impl NpyFiles {
    /// Finds `x_train.npy`, `y_train.npy` (and `x_val.npy`, `y_val.npy`) under `path`.
    pub fn find(path: &Path) -> Result<Self, DataError> {
        if !path.is_dir() {
            return Err(DataError::invalid(path, "no such folder"));
        }
        let pair = |split: &str| {
            (
                path.join(format!("x_{split}.npy")),
                path.join(format!("y_{split}.npy")),
            )
        };
        let train = pair("train");
        for p in [&train.0, &train.1] {
            if !p.is_file() {
                return Err(DataError::invalid(
                    p,
                    "missing (a NumPy data set needs x_train.npy and y_train.npy)",
                ));
            }
        }
        let val = pair("val");
        let val = match (val.0.is_file(), val.1.is_file()) {
            (true, true) => Some(val),
            (false, false) => None,
            (true, false) => {
                return Err(DataError::invalid(
                    &val.1,
                    "missing (x_val.npy has no labels)",
                ))
            }
            (false, true) => {
                return Err(DataError::invalid(
                    &val.0,
                    "missing (y_val.npy has no images)",
                ))
            }
        };
        Ok(Self { train, val })
    }

    /// Every file the cache depends on.
    pub fn inputs(&self) -> Vec<PathBuf> {
        let mut v = vec![self.train.0.clone(), self.train.1.clone()];
        if let Some((x, y)) = &self.val {
            v.extend([x.clone(), y.clone()]);
        }
        v
    }

    /// (height, width, channels) as stored, the same in both splits.
    pub fn stored_shape(&self) -> Result<(usize, usize, usize), DataError> {
        let train = Array::open(&self.train.0)?.image_shape()?;
        if let Some((x, _)) = &self.val {
            let val = Array::open(x)?.image_shape()?;
            if val != train {
                return Err(DataError::invalid(
                    x,
                    format!("images are {val:?} (H, W, C), the training images {train:?}"),
                ));
            }
        }
        Ok(train)
    }

    /// Writes both splits into `cache`; returns the class names ("0" … the largest label).
    pub fn write(
        &self,
        target: &Target,
        cache: &mut CacheWriter,
        progress: &Progress,
    ) -> Result<Vec<String>, DataError> {
        let train = (
            Array::open(&self.train.0)?,
            Array::open(&self.train.1)?.labels()?,
        );
        let val = match &self.val {
            Some((x, y)) => Some((Array::open(x)?, Array::open(y)?.labels()?)),
            None => None,
        };
        let total = (train.1.len() + val.as_ref().map_or(0, |v| v.1.len())) as u64;
        let classes = train
            .1
            .iter()
            .chain(val.iter().flat_map(|v| v.1.iter()))
            .max()
            .map_or(0, |m| *m as usize + 1);
        write_split(
            &train.0,
            &train.1,
            target,
            &mut cache.train,
            0,
            total,
            progress,
        )?;
        if let Some((x, y)) = &val {
            let split = cache.begin_validation()?;
            write_split(x, y, target, split, train.1.len() as u64, total, progress)?;
        }
        Ok((0..classes).map(|c| c.to_string()).collect())
    }
}

fn write_split(
    x: &Array,
    labels: &[u32],
    target: &Target,
    split: &mut SplitWriter,
    done: u64,
    total: u64,
    progress: &Progress,
) -> Result<(), DataError> {
    let (h, w, c) = x.image_shape()?;
    if x.shape[0] != labels.len() {
        return Err(DataError::invalid(
            &x.path,
            format!(
                "holds {} images but its labels file {} labels",
                x.shape[0],
                labels.len()
            ),
        ));
    }
    let scale = if x.dtype == Dtype::F32 {
        x.float_scale()?
    } else {
        1.0
    };
    let row = h * w * c * x.dtype.size();
    let mut chw = Vec::with_capacity(target.channels * h * w);
    for (i, (bytes, &label)) in x.data().chunks_exact(row).zip(labels).enumerate() {
        let hwc = match x.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|b| (f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * scale).round() as u8)
                .collect(),
            _ => bytes.to_vec(),
        };
        chw.clear();
        Stored {
            hwc,
            height: h,
            width: w,
            channels: c,
        }
        .append_chw(target, &mut chw);
        split.push(&chw, label)?;
        if i % 4096 == 4095 {
            progress(done + i as u64 + 1, total);
        }
    }
    progress(done + labels.len() as u64, total);
    Ok(())
}
