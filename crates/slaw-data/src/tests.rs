//! The readers and the cache on generated data sets: the three formats of the same images give
//! the same tensors (and content hash), the cache is reused until an input changes, and every
//! kind of bad input is an error naming the file.

use std::path::Path;

use crate::synth::{write_npy_array, Planted};
use crate::{open, prepare, DataError, ImageFormat, Settings};

fn settings(format: ImageFormat, path: &Path) -> Settings {
    Settings {
        format,
        path: path.to_path_buf(),
        image_size: None,
        channels: None,
        skip_bad: false,
    }
}

/// Planted images ordered by class, as a folder lists them.
fn by_class(n: usize, seed: u64) -> Planted {
    let p = Planted::generate(n, 32, seed);
    let f = 32 * 32 * 3;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| p.labels[i]);
    Planted {
        side: 32,
        hwc: order
            .iter()
            .flat_map(|&i| p.hwc[i * f..(i + 1) * f].to_vec())
            .collect(),
        labels: order.iter().map(|&i| p.labels[i]).collect(),
    }
}

#[test]
fn three_formats_of_the_same_images_give_the_same_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let (train, val) = (by_class(60, 1), by_class(24, 2));
    let folder = dir.path().join("folder");
    train.write_folder(&folder, "train", "png").unwrap();
    val.write_folder(&folder, "val", "png").unwrap();
    let cifar = dir.path().join("cifar");
    train.write_cifar(&cifar, Some(&val)).unwrap();
    let npy = dir.path().join("npy");
    train.write_npy(&npy, "train").unwrap();
    val.write_npy(&npy, "val").unwrap();

    let root = dir.path().join("cache");
    let metas: Vec<_> = [
        (ImageFormat::Folder, &folder),
        (ImageFormat::Cifar, &cifar),
        (ImageFormat::Npy, &npy),
    ]
    .into_iter()
    .map(|(f, p)| prepare(&settings(f, p), &root, &|_, _| {}).unwrap())
    .collect();
    let hashes: Vec<&str> = metas.iter().map(|m| m.content_hash.as_str()).collect();
    // The folder's classes are named, CIFAR-10's fixed at 10, NumPy's counted: the hash covers
    // the tensors, not the class names or count.
    assert_eq!(hashes[0], hashes[1]);
    assert_eq!(hashes[1], hashes[2]);
    let m = &metas[0];
    assert_eq!((m.channels, m.height, m.width), (3, 32, 32));
    assert_eq!(m.train.count, 60);
    assert_eq!(m.validation.as_ref().map(|v| v.count), Some(24));
    let cache = open(&settings(ImageFormat::Npy, &npy), &root, hashes[0]).unwrap();
    assert_eq!(cache.train.labels, train.labels);
    // (channel, row, column): the first byte of the green plane is pixel (0, 0)'s green.
    assert_eq!(cache.train.pixels()[1024], train.hwc[1]);
    assert_eq!(cache.train.pixels().len(), 60 * 3072);
}

#[test]
fn the_cache_is_reused_until_an_input_changes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("npy");
    Planted::generate(40, 16, 3)
        .write_npy(&data, "train")
        .unwrap();
    let root = dir.path().join("cache");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let count = |_: u64, _: u64| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let s = settings(ImageFormat::Npy, &data);
    let a = prepare(&s, &root, &count).unwrap();
    let decoded = calls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(decoded > 0);
    let b = prepare(&s, &root, &count).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        decoded,
        "decoded again"
    );
    // Other images: a new key, decoded again, another content hash.
    std::thread::sleep(std::time::Duration::from_millis(20));
    Planted::generate(40, 16, 4)
        .write_npy(&data, "train")
        .unwrap();
    let c = prepare(&s, &root, &count).unwrap();
    assert_ne!(c.content_hash, a.content_hash);
    // Resized and grey: another shape.
    let small = Settings {
        image_size: Some(8),
        channels: Some(1),
        ..s.clone()
    };
    let d = prepare(&small, &root, &|_, _| {}).unwrap();
    assert_eq!((d.channels, d.height, d.width), (1, 8, 8));
    assert_eq!(d.train.channel_sum.len(), 1);
}

#[test]
fn float_arrays_in_zero_one_match_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = Planted::generate(12, 8, 5);
    let bytes = dir.path().join("u8");
    p.write_npy(&bytes, "train").unwrap();
    let floats = dir.path().join("f32");
    std::fs::create_dir_all(&floats).unwrap();
    let x: Vec<u8> = p
        .hwc
        .iter()
        .flat_map(|&v| (v as f32 / 255.0).to_le_bytes())
        .collect();
    write_npy_array(&floats.join("x_train.npy"), "<f4", "(12, 8, 8, 3)", &x).unwrap();
    std::fs::copy(bytes.join("y_train.npy"), floats.join("y_train.npy")).unwrap();
    let root = dir.path().join("cache");
    let a = prepare(&settings(ImageFormat::Npy, &bytes), &root, &|_, _| {}).unwrap();
    let b = prepare(&settings(ImageFormat::Npy, &floats), &root, &|_, _| {}).unwrap();
    assert_eq!(a.content_hash, b.content_hash);
}

fn error_of(format: ImageFormat, path: &Path) -> String {
    let root = path.join("..").join("cache");
    match prepare(&settings(format, path), &root, &|_, _| {}) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_inputs_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    assert!(error_of(ImageFormat::Folder, &missing).contains("nowhere"));
    assert!(error_of(ImageFormat::Cifar, &missing).contains("no such folder"));

    let flat = dir.path().join("flat");
    std::fs::create_dir_all(flat.join("train")).unwrap();
    std::fs::write(flat.join("train").join("a.png"), b"x").unwrap();
    assert!(error_of(ImageFormat::Folder, &flat).contains("no class subfolders"));

    let npy = dir.path().join("npy");
    Planted::generate(10, 8, 1)
        .write_npy(&npy, "train")
        .unwrap();
    let y: Vec<u8> = (0..9i64).flat_map(|l| (l % 2).to_le_bytes()).collect();
    write_npy_array(&npy.join("y_train.npy"), "<i8", "(9,)", &y).unwrap();
    let e = error_of(ImageFormat::Npy, &npy);
    assert!(
        e.contains("x_train.npy") && e.contains("10 images") && e.contains("9 labels"),
        "{e}"
    );

    let wrong = dir.path().join("wrong");
    Planted::generate(4, 8, 1)
        .write_npy(&wrong, "train")
        .unwrap();
    write_npy_array(
        &wrong.join("x_train.npy"),
        "<f8",
        "(4, 8, 8, 3)",
        &vec![0u8; 4 * 192 * 8],
    )
    .unwrap();
    let e = error_of(ImageFormat::Npy, &wrong);
    assert!(e.contains("x_train.npy") && e.contains("'<f8'"), "{e}");
}

#[test]
fn mixed_channels_and_corrupt_images_are_named_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("imgs");
    Planted::generate(12, 8, 1)
        .write_folder(&data, "train", "png")
        .unwrap();
    let class0 = data.join("train").join("class0");
    std::fs::create_dir_all(&class0).unwrap();
    let grey = class0.join("zz-grey.png");
    image::GrayImage::new(8, 8).save(&grey).unwrap();
    let e = error_of(ImageFormat::Folder, &data);
    assert!(e.contains("zz-grey.png") && e.contains("channel"), "{e}");
    // With channels: 3 the grey image is converted.
    let root = dir.path().join("cache");
    let rgb = Settings {
        channels: Some(3),
        ..settings(ImageFormat::Folder, &data)
    };
    assert_eq!(prepare(&rgb, &root, &|_, _| {}).unwrap().train.count, 13);

    std::fs::write(class0.join("zz-broken.png"), b"not a png").unwrap();
    match prepare(&rgb, &root, &|_, _| {}) {
        Err(e @ DataError::Decode { .. }) => assert!(e.to_string().contains("zz-broken.png")),
        other => panic!(
            "expected a decode error, got {:?}",
            other.map(|m| m.train.count)
        ),
    }
    let skip = Settings {
        skip_bad: true,
        ..rgb
    };
    let meta = prepare(&skip, &root, &|_, _| {}).unwrap();
    assert_eq!((meta.train.count, meta.skipped), (13, 1));
    assert!(meta.skipped_examples[0].ends_with("zz-broken.png"));
}
