//! `dataset: images` end to end: generated data sets (slaw's planted figures) written as a PNG
//! folder, CIFAR-10 batches and NumPy arrays are decoded into the cache and trained on; a
//! changed data set runs again; every kind of bad input is a validation error (exit 2) that
//! names the path and writes nothing to the database.

use std::path::Path;

use crate::common::{slaw, text, Sandbox};

fn generate(sb: &Sandbox, dir: &str, args: &[&str]) {
    let out = slaw()
        .arg("generate-images")
        .arg(sb.path(dir))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

fn sweep(name: &str, data: &str, model: &str, epochs: &str) -> String {
    format!(
        "name: {name}
data:
{data}
model:
{model}
train:
  epochs: {epochs}
  lr: {{values: [0.003]}}
  batch_size: 64
  grad_clip: 1.0
eval: {{points: 2}}
"
    )
}

const VIT: &str =
    "  family: vit\n  patch: 4\n  depth: 1\n  heads: 2\n  sizes: [{name: v32, width: 32}]";

/// `slaw run` with the cache in the sandbox.
fn run(sb: &Sandbox, file: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = slaw();
    cmd.args([
        "run",
        file.to_str().unwrap(),
        "--db",
        &sb.db(),
        "--no-progress",
        "--no-fit",
    ])
    .env("SLAW_CACHE", sb.path("cache"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn show(sb: &Sandbox, sweep: &str) -> (String, serde_json::Value) {
    let out = slaw()
        .args(["query", "--db", &sb.db(), "--format", "json"])
        .arg(format!(
            "SELECT t.key, t.state, t.final_val_accuracy AS acc FROM trials t JOIN sweeps s ON s.id = t.sweep_id WHERE s.name = '{sweep}'"
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = rows[0]["key"].as_str().unwrap().to_string();
    (key, rows[0].clone())
}

#[test]
fn each_format_trains_on_the_planted_images_and_shows_its_identity() {
    let sb = Sandbox::new();
    generate(&sb, "png", &["--train", "1500", "--val", "300"]);
    generate(
        &sb,
        "cifar",
        &["--format", "cifar", "--train", "1500", "--val", "300"],
    );
    generate(
        &sb,
        "npy",
        &["--format", "npy", "--train", "1800", "--val", "0"],
    );
    let cases = [
        ("png", "folder", "  image_size: 16"),
        (
            "cifar",
            "cifar",
            "  image_size: 16\n  augment: {crop: 2, flip: true}",
        ),
        (
            "npy",
            "npy",
            "  image_size: 16\n  channels: 1\n  validation: 300",
        ),
    ];
    for (dir, format, extra) in cases {
        let data = format!(
            "  dataset: images\n  format: {format}\n  path: {}\n{extra}",
            sb.path(dir).display()
        );
        let name = format!("img-{dir}");
        let file = sb.write(&format!("{name}.yaml"), &sweep(&name, &data, VIT, "[6]"));
        let out = run(&sb, &file, &[]);
        assert!(out.status.success(), "{format}: {}", text(&out));
        let (key, row) = show(&sb, &name);
        assert_eq!(row["state"], "completed", "{format}: {row}");
        // Six classes: chance is 0.17.
        let acc = row["acc"].as_f64().unwrap();
        assert!(acc > 0.5, "{format}: validation accuracy {acc}");
        let out = slaw()
            .args(["show", &key, "--db", &sb.db()])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        let channels = if format == "npy" {
            "1×16×16"
        } else {
            "3×16×16"
        };
        // CIFAR-10's batches always have 10 classes (the planted images use 6 of them).
        let classes = if format == "cifar" {
            "10 classes"
        } else {
            "6 classes"
        };
        assert!(
            shown.contains(&format!("data: {format} "))
                && shown.contains(channels)
                && shown.contains(classes),
            "{shown}"
        );
    }
    // The held-out split of the NumPy set: 1 500 train, 300 validation.
    let out = slaw()
        .args(["show", "--json", &show(&sb, "img-npy").0, "--db", &sb.db()])
        .output()
        .unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["data"]["train"], 1500);
    assert_eq!(shown["data"]["held_out"], true);
}

#[test]
fn streamed_batches_train_and_a_changed_data_set_runs_again() {
    let sb = Sandbox::new();
    generate(
        &sb,
        "png",
        &["--train", "1200", "--val", "200", "--side", "16"],
    );
    let data = format!(
        "  dataset: images\n  format: folder\n  path: {}\n  augment: {{flip: true}}",
        sb.path("png").display()
    );
    let file = sb.write("s.yaml", &sweep("streamed", &data, VIT, "[5]"));
    // Every training set is larger than one byte: the batches stream from the mapped cache.
    let out = run(&sb, &file, &[("SLAW_RESIDENT_BYTES", "1")]);
    assert!(out.status.success(), "{}", text(&out));
    let (first_key, row) = show(&sb, "streamed");
    assert!(row["acc"].as_f64().unwrap() > 0.5, "{row}");
    // Run again: nothing left to do.
    let out = run(&sb, &file, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 to run"),
        "{}",
        text(&out)
    );
    // Other images under the same path: a new content hash, a new trial key.
    std::fs::remove_dir_all(sb.path("png")).unwrap();
    generate(
        &sb,
        "png",
        &[
            "--train", "1200", "--val", "200", "--side", "16", "--seed", "9",
        ],
    );
    let out = run(&sb, &file, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let out = slaw()
        .args([
            "query",
            "--db",
            &sb.db(),
            "--format",
            "json",
            "SELECT key FROM trials",
        ])
        .output()
        .unwrap();
    let keys: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["key"].as_str())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.contains(&first_key.as_str()));
}

#[test]
fn bad_image_data_sets_exit_2_name_the_path_and_write_nothing() {
    let sb = Sandbox::new();
    generate(
        &sb,
        "npy",
        &[
            "--format", "npy", "--train", "50", "--val", "0", "--side", "8",
        ],
    );
    // Mismatched lengths: 50 images, 10 labels.
    let short = sb.path("short");
    std::fs::create_dir_all(&short).unwrap();
    std::fs::copy(sb.path("npy/x_train.npy"), short.join("x_train.npy")).unwrap();
    slaw_data::synth::write_npy_array(&short.join("y_train.npy"), "<i8", "(10,)", &[0u8; 80])
        .unwrap();
    // A wrong element type.
    let wrong = sb.path("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    slaw_data::synth::write_npy_array(&wrong.join("x_train.npy"), "<i4", "(2, 8, 8)", &[0u8; 512])
        .unwrap();
    std::fs::copy(sb.path("npy/y_train.npy"), wrong.join("y_train.npy")).unwrap();
    // A folder without class subfolders, and one with images of mixed channel counts.
    std::fs::create_dir_all(sb.path("flat/train")).unwrap();
    generate(
        &sb,
        "mixed",
        &["--train", "20", "--val", "0", "--side", "8"],
    );
    image::GrayImage::new(8, 8)
        .save(sb.path("mixed/train/class0/grey.png"))
        .unwrap();

    let cases = [
        ("npy", "nowhere", "nowhere"),
        ("npy", "short", "10 labels"),
        ("npy", "wrong", "'<i4'"),
        ("folder", "flat", "no class subfolders"),
        ("folder", "mixed", "grey.png"),
    ];
    for (format, dir, says) in cases {
        let data = format!(
            "  dataset: images\n  format: {format}\n  path: {}",
            sb.path(dir).display()
        );
        let file = sb.write("bad.yaml", &sweep("bad", &data, VIT, "[1]"));
        let out = run(&sb, &file, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dir}: {}", text(&out));
        assert!(
            err.contains("data.path") && err.contains(dir) && err.contains(says),
            "{dir}: {err}"
        );
        assert!(
            !sb.path("slaw.db").exists(),
            "{dir}: the database was created"
        );
    }
}
