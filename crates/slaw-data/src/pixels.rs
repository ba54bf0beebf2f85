//! One image into the cache's layout: channel conversion (grey ↔ colour), resizing (the shorter
//! side to `image_size`, then a centre crop) and the (channel, row, column) byte order. Every
//! format goes through these functions, so that the same pixels give the same bytes whatever
//! file they came from.

use image::imageops::{self, FilterType};
use image::{ImageBuffer, Luma, Rgb};

/// The shape every image of a data set is brought to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Channels: 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// Square side to resize to; `None`: as stored (every image must then have one size).
    pub side: Option<usize>,
}

/// An image as decoded: interleaved (row, column, channel) bytes, 1 or 3 channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// `height × width × channels` bytes.
    pub hwc: Vec<u8>,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// 1 or 3.
    pub channels: usize,
}

/// Grey from RGB with ITU-R BT.601's weights (what PIL's `convert("L")` uses), rounded.
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((299 * r as u32 + 587 * g as u32 + 114 * b as u32 + 500) / 1000) as u8
}

impl Stored {
    /// The image with `channels` channels (grey replicated, or colour averaged to grey).
    fn with_channels(self, channels: usize) -> Stored {
        if self.channels == channels {
            return self;
        }
        let hwc = if channels == 3 {
            self.hwc.iter().flat_map(|&v| [v, v, v]).collect()
        } else {
            self.hwc
                .chunks_exact(3)
                .map(|p| luma(p[0], p[1], p[2]))
                .collect()
        };
        Stored {
            hwc,
            channels,
            ..self
        }
    }

    /// The image with its shorter side scaled to `side` (antialiased bilinear, as PIL's
    /// `BILINEAR` resize) and the longer one centre-cropped to it.
    fn resized(self, side: usize) -> Stored {
        if self.height == side && self.width == side {
            return self;
        }
        let (h, w) = (self.height as f64, self.width as f64);
        let scale = side as f64 / h.min(w);
        let (nh, nw) = (
            ((h * scale).round() as u32).max(side as u32),
            ((w * scale).round() as u32).max(side as u32),
        );
        let (top, left) = ((nh - side as u32) / 2, (nw - side as u32) / 2);
        let s = side as u32;
        let hwc = if self.channels == 1 {
            let img: ImageBuffer<Luma<u8>, _> =
                ImageBuffer::from_raw(self.width as u32, self.height as u32, self.hwc)
                    .expect("height × width bytes");
            let big = imageops::resize(&img, nw, nh, FilterType::Triangle);
            imageops::crop_imm(&big, left, top, s, s)
                .to_image()
                .into_raw()
        } else {
            let img: ImageBuffer<Rgb<u8>, _> =
                ImageBuffer::from_raw(self.width as u32, self.height as u32, self.hwc)
                    .expect("height × width × 3 bytes");
            let big = imageops::resize(&img, nw, nh, FilterType::Triangle);
            imageops::crop_imm(&big, left, top, s, s)
                .to_image()
                .into_raw()
        };
        Stored {
            hwc,
            height: side,
            width: side,
            channels: self.channels,
        }
    }

    /// The image brought to `target`, as (channel, row, column) bytes appended to `out`.
    pub fn append_chw(self, target: &Target, out: &mut Vec<u8>) {
        let mut img = self.with_channels(target.channels);
        if let Some(side) = target.side {
            img = img.resized(side);
        }
        let (hw, c) = (img.height * img.width, img.channels);
        out.reserve(hw * c);
        for ch in 0..c {
            out.extend(img.hwc.iter().skip(ch).step_by(c).take(hw));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(h: usize, w: usize, c: usize) -> Stored {
        Stored {
            hwc: (0..h * w * c).map(|i| (i * 7 % 256) as u8).collect(),
            height: h,
            width: w,
            channels: c,
        }
    }

    #[test]
    fn chw_order_splits_the_channels() {
        let img = Stored {
            hwc: vec![1, 2, 3, 4, 5, 6],
            height: 1,
            width: 2,
            channels: 3,
        };
        let mut out = Vec::new();
        img.append_chw(
            &Target {
                channels: 3,
                side: None,
            },
            &mut out,
        );
        assert_eq!(out, vec![1, 4, 2, 5, 3, 6]);
    }

    #[test]
    fn grey_and_colour_convert() {
        let mut out = Vec::new();
        stored(2, 2, 1).append_chw(
            &Target {
                channels: 3,
                side: None,
            },
            &mut out,
        );
        assert_eq!(&out[0..4], &out[4..8]);
        let white = Stored {
            hwc: vec![255, 255, 255, 255, 0, 0],
            height: 1,
            width: 2,
            channels: 3,
        };
        let mut grey = Vec::new();
        white.append_chw(
            &Target {
                channels: 1,
                side: None,
            },
            &mut grey,
        );
        assert_eq!(grey, vec![255, 76]);
    }

    #[test]
    fn resizing_makes_a_centred_square() {
        let mut out = Vec::new();
        stored(40, 60, 3).append_chw(
            &Target {
                channels: 3,
                side: Some(20),
            },
            &mut out,
        );
        assert_eq!(out.len(), 20 * 20 * 3);
        // A constant image stays constant through the filter and the crop.
        let flat = Stored {
            hwc: vec![90; 30 * 50],
            height: 30,
            width: 50,
            channels: 1,
        };
        let mut out = Vec::new();
        flat.append_chw(
            &Target {
                channels: 1,
                side: Some(16),
            },
            &mut out,
        );
        assert_eq!(out, vec![90; 256]);
    }
}
