//! Generated image data sets with a planted structure, for tests, examples and benchmarks
//! (nothing can be downloaded where slaw's tests run): each image is a noisy background with
//! one figure whose colour (red, green, blue) and shape (square, disk) make its class, at a
//! random place and size, so a model must find the figure to classify it. The same images can
//! be written as a PNG (or JPEG) folder, CIFAR-10 binary batches and NumPy arrays.

use std::io::Write;
use std::path::Path;

use image::{ImageBuffer, Rgb};

use crate::DataError;

/// Classes: 3 colours × 2 shapes.
pub const CLASSES: usize = 6;

/// A small PRNG (SplitMix64), so that the generator needs no dependency and is the same
/// everywhere.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Generated images: `side × side × 3` bytes each, (row, column, channel) order.
#[derive(Debug, Clone)]
pub struct Planted {
    /// Side of every image.
    pub side: usize,
    /// `len × side × side × 3` bytes.
    pub hwc: Vec<u8>,
    /// Class of each image, `colour * 2 + shape`.
    pub labels: Vec<u32>,
}

impl Planted {
    /// `n` images of `side × side` drawn from `seed`.
    pub fn generate(n: usize, side: usize, seed: u64) -> Planted {
        let mut rng = SplitMix(seed ^ 0x5eed_1a6e);
        let mut hwc = Vec::with_capacity(n * side * side * 3);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let class = rng.below(CLASSES);
            let (colour, disk) = (class / 2, class % 2 == 1);
            let r = (side / 6).max(2) + rng.below((side / 6).max(1));
            let cy = r + rng.below(side.saturating_sub(2 * r).max(1));
            let cx = r + rng.below(side.saturating_sub(2 * r).max(1));
            for y in 0..side {
                for x in 0..side {
                    let (dy, dx) = (y as i64 - cy as i64, x as i64 - cx as i64);
                    let inside = if disk {
                        dy * dy + dx * dx <= (r * r) as i64
                    } else {
                        dy.unsigned_abs() as usize <= r && dx.unsigned_abs() as usize <= r
                    };
                    for c in 0..3 {
                        let noise = (rng.next() % 48) as u8;
                        let v = if inside && c == colour {
                            200 + noise
                        } else {
                            40 + noise
                        };
                        hwc.push(v);
                    }
                }
            }
            labels.push(class as u32);
        }
        Planted { side, hwc, labels }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn image(&self, i: usize) -> &[u8] {
        let f = self.side * self.side * 3;
        &self.hwc[i * f..(i + 1) * f]
    }

    /// Writes `<dir>/<split>/<class>/<index>.<ext>` (`ext` png or jpg).
    pub fn write_folder(&self, dir: &Path, split: &str, ext: &str) -> Result<(), DataError> {
        for (i, &label) in self.labels.iter().enumerate() {
            let class_dir = dir.join(split).join(format!("class{label}"));
            std::fs::create_dir_all(&class_dir).map_err(|e| DataError::io(&class_dir, e))?;
            let path = class_dir.join(format!("{i:06}.{ext}"));
            let s = self.side as u32;
            let img: ImageBuffer<Rgb<u8>, _> = ImageBuffer::from_raw(s, s, self.image(i).to_vec())
                .ok_or_else(|| DataError::invalid(&path, "wrong buffer size"))?;
            img.save(&path)
                .map_err(|e| DataError::invalid(&path, e.to_string()))?;
        }
        Ok(())
    }

    /// Writes CIFAR-10 binary batches: the images split over `data_batch_1.bin` …
    /// `data_batch_5.bin` (side must be 32), `test` as `test_batch.bin`.
    pub fn write_cifar(&self, dir: &Path, test: Option<&Planted>) -> Result<(), DataError> {
        if self.side != 32 {
            return Err(DataError::invalid(dir, "CIFAR images are 32×32"));
        }
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let record = |p: &Planted, i: usize, out: &mut Vec<u8>| {
            out.push(p.labels[i] as u8);
            let img = p.image(i);
            for c in 0..3 {
                out.extend(img.iter().skip(c).step_by(3));
            }
        };
        let per = self.len().div_ceil(5);
        for b in 0..5 {
            let mut bytes = Vec::new();
            for i in (b * per)..((b + 1) * per).min(self.len()) {
                record(self, i, &mut bytes);
            }
            let path = dir.join(format!("data_batch_{}.bin", b + 1));
            std::fs::write(&path, bytes).map_err(|e| DataError::io(&path, e))?;
        }
        if let Some(t) = test {
            let mut bytes = Vec::new();
            for i in 0..t.len() {
                record(t, i, &mut bytes);
            }
            let path = dir.join("test_batch.bin");
            std::fs::write(&path, bytes).map_err(|e| DataError::io(&path, e))?;
        }
        Ok(())
    }

    /// Writes `x_<split>.npy` (N, side, side, 3) uint8 and `y_<split>.npy` (N,) int64.
    pub fn write_npy(&self, dir: &Path, split: &str) -> Result<(), DataError> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let s = self.side;
        write_npy_array(
            &dir.join(format!("x_{split}.npy")),
            "|u1",
            &format!("({}, {s}, {s}, 3)", self.len()),
            &self.hwc,
        )?;
        let y: Vec<u8> = self
            .labels
            .iter()
            .flat_map(|&l| (l as i64).to_le_bytes())
            .collect();
        write_npy_array(
            &dir.join(format!("y_{split}.npy")),
            "<i8",
            &format!("({},)", self.len()),
            &y,
        )
    }
}

/// Writes one `.npy` file (format 1.0) with the given element type, shape text and data.
pub fn write_npy_array(
    path: &Path,
    descr: &str,
    shape: &str,
    data: &[u8],
) -> Result<(), DataError> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    f.write_all(&bytes)
        .and_then(|_| f.write_all(data))
        .map_err(|e| DataError::io(path, e))
}
