//! `slaw bench-data`: the images data path alone against the training step (issue 25). It
//! writes a generated uint8 cache of `--images` images (once; 1.28 M of 64×64×3 by default, an
//! ImageNet-64-sized set), streams it as a trial would (mapped cache → gather and normalise on
//! a host thread → upload → crop and flip → patches on the device) and prints examples per
//! second of each half as JSON, to compare with `slaw bench`'s step time.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use slaw_core::config::{
    Augment, DataConfig, EvalConfig, ImageFormat, ModelConfig, OptimConfig, Optimizer, Pool,
    Precision, Schedule, Spacing, VitConfig,
};
use slaw_core::TrialConfig;
use slaw_data::cache::{self, CacheMeta, CacheWriter, SplitMeta};
use slaw_train::train::data::{self, DataPlaces};

use super::exit::invalid;
use super::out::{errln, outln};
use slaw::exec::parse_devices;

#[derive(Debug, Args)]
pub(crate) struct DataBenchArgs {
    /// Images in the generated cache.
    #[arg(long, default_value_t = 1_280_000)]
    images: usize,
    /// Their side.
    #[arg(long, default_value_t = 64)]
    side: usize,
    /// Examples per batch.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Batches measured.
    #[arg(long, default_value_t = 300)]
    batches: usize,
    /// Where the generated cache is kept (default: $SLAW_CACHE, else /tmp/slaw-bench-cache).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// The generated cache: written once, found again by its key.
fn generated(root: &std::path::Path, n: usize, side: usize) -> Result<CacheMeta> {
    let key = format!("bench-{n}-{side}-3");
    if let Some(meta) = cache::lookup_key(root, &key) {
        return Ok(meta);
    }
    errln!(
        "writing a generated cache of {n} {side}×{side}×3 images under {}",
        root.display()
    );
    let mut writer = CacheWriter::create(root, 3, side, side)?;
    let f = 3 * side * side;
    let mut image = vec![0u8; f];
    for i in 0..n {
        for (j, b) in image.iter_mut().enumerate() {
            *b = (i.wrapping_mul(131) ^ j.wrapping_mul(7)) as u8;
        }
        writer.train.push(&image, (i % 1000) as u32)?;
    }
    let meta = CacheMeta {
        layout: String::new(),
        format: "npy".into(),
        source: root.to_path_buf(),
        content_hash: String::new(),
        channels: 0,
        height: 0,
        width: 0,
        classes: (0..1000).map(|c| c.to_string()).collect(),
        train: SplitMeta::default(),
        validation: None,
        skipped: 0,
        skipped_examples: Vec::new(),
    };
    let meta = writer.finish(root, meta)?;
    cache::record_key(root, &key, &meta.content_hash)?;
    Ok(meta)
}

pub(crate) fn bench_data(args: DataBenchArgs) -> Result<ExitCode> {
    if args.images <= 20_000 || args.side % 4 != 0 || args.batch == 0 {
        invalid!(
            "--images must exceed 20 000, --side divide by 4 (the patch), --batch be positive"
        );
    }
    let devices = parse_devices(&args.device)?;
    let [device] = devices.as_slice() else {
        invalid!("one device");
    };
    let root = args.cache.clone().unwrap_or_else(|| {
        std::env::var_os(slaw_data::CACHE_ENV)
            .map_or_else(|| PathBuf::from("/tmp/slaw-bench-cache"), PathBuf::from)
    });
    let started = std::time::Instant::now();
    let meta = generated(&root, args.images, args.side)?;
    let generate_seconds = started.elapsed().as_secs_f64();
    let validation = 10_000;
    let config = TrialConfig {
        data: DataConfig::Images {
            format: ImageFormat::Npy,
            content_hash: meta.content_hash.clone(),
            channels: 3,
            height: args.side,
            width: args.side,
            classes: 1000,
            resized: false,
            converted: false,
            skip_bad: false,
            held_out: true,
            train: args.images - validation,
            validation,
            split_seed: 0,
            augment: Some(Augment {
                crop: 4,
                flip: true,
            }),
        },
        model: ModelConfig::Vit(VitConfig {
            patch: 4,
            width: 64,
            depth: 1,
            heads: 1,
            mlp_dim: 64,
            pool: Pool::Mean,
            qk_norm: false,
            parallel_block: false,
            bias: true,
        }),
        optim: OptimConfig {
            optimizer: Optimizer::AdamW {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            lr: 1e-3,
            weight_decay: 0.0,
            warmup: 0.0,
            schedule: Schedule::Cosine,
            grad_clip: None,
            agc: None,
        },
        epochs: 1.0,
        batch_size: args.batch,
        seed: 0,
        precision: Precision::F32,
        eval: EvalConfig {
            points: 1,
            spacing: Spacing::Linear,
            max_examples: Some(1),
        },
    };
    let places = DataPlaces {
        path: None,
        cache: Some(&root),
        resident_bytes: Some(0),
    };
    let loaded = std::time::Instant::now();
    let data = data::load(&config.data, &places)?;
    let load_seconds = loaded.elapsed().as_secs_f64();
    let speed =
        slaw_train::train::data_bench::measure_data_path(&config, &data, device, args.batches)?;
    outln!(
        "{}",
        serde_json::json!({
            "images": args.images, "side": args.side, "channels": 3, "batch": args.batch,
            "batches": args.batches, "device": args.device,
            "cache_gib": (args.images * 3 * args.side * args.side) as f64 / (1u64 << 30) as f64,
            "generate_or_find_seconds": generate_seconds, "load_seconds": load_seconds,
            "host_examples_per_second": speed.host_examples_per_second,
            "data_path_examples_per_second": speed.device_examples_per_second,
        })
    );
    Ok(ExitCode::SUCCESS)
}
