//! `slaw generate-images`: writes a generated, labelled image data set (slaw-data's planted
//! figures: colour × shape is the class) as a folder of PNG/JPEG files, CIFAR-10 binary batches
//! or NumPy arrays, so that `dataset: images` can be tried without a download.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};
use slaw_data::synth::{Planted, CLASSES};

use super::exit::invalid;
use super::out::outln;

/// The format to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum GeneratedFormat {
    /// `train/<class>/*.png` and `val/<class>/*.png`.
    Folder,
    /// The same as JPEG files (lossy).
    FolderJpeg,
    /// CIFAR-10 binary batches (32×32 only).
    Cifar,
    /// `x_train.npy`, `y_train.npy`, `x_val.npy`, `y_val.npy`.
    Npy,
}

#[derive(Debug, Args)]
pub(super) struct GenerateImagesArgs {
    /// The folder to write into.
    dir: PathBuf,
    /// How to store the images.
    #[arg(long, value_enum, default_value = "folder")]
    format: GeneratedFormat,
    /// Training images.
    #[arg(long, default_value_t = 6000)]
    train: usize,
    /// Validation images (0: none; slaw then holds out `validation` training images).
    #[arg(long, default_value_t = 1000)]
    val: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = 32)]
    side: usize,
    /// Seed of the images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(super) fn generate(args: GenerateImagesArgs) -> Result<ExitCode> {
    if args.side < 8 || args.train == 0 {
        invalid!("--side must be at least 8 and --train at least 1");
    }
    if args.format == GeneratedFormat::Cifar && args.side != 32 {
        invalid!("CIFAR batches hold 32×32 images: use --side 32");
    }
    let train = Planted::generate(args.train, args.side, args.seed);
    let val = (args.val > 0).then(|| Planted::generate(args.val, args.side, args.seed + 1));
    match args.format {
        GeneratedFormat::Folder | GeneratedFormat::FolderJpeg => {
            let ext = if args.format == GeneratedFormat::Folder {
                "png"
            } else {
                "jpg"
            };
            train.write_folder(&args.dir, "train", ext)?;
            if let Some(v) = &val {
                v.write_folder(&args.dir, "val", ext)?;
            }
        }
        GeneratedFormat::Cifar => train.write_cifar(&args.dir, val.as_ref())?,
        GeneratedFormat::Npy => {
            train.write_npy(&args.dir, "train")?;
            if let Some(v) = &val {
                v.write_npy(&args.dir, "val")?;
            }
        }
    }
    outln!(
        "{}: {} training and {} validation images, {s}×{s} RGB, {CLASSES} classes (colour × shape)",
        args.dir.display(),
        args.train,
        args.val,
        s = args.side
    );
    Ok(ExitCode::SUCCESS)
}
