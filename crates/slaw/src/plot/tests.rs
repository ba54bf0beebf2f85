//! Every figure drawn from a planted sweep in both formats (size, not blank, axis titles), and
//! the figures' tolerance of missing pieces.

use super::*;
use crate::analysis::laws::{fit_all, FitConfig};
use crate::analysis::observations::{ParamsCount, Run};

/// A planted sweep, after the one in `analysis::laws`: L(N, D) = 1.5 + 40/N^0.3 + 60/D^0.35
/// plus an LR penalty around η*(N, D) = 0.5·N^−0.4·D^0.1, times 0.2 % seeded noise;
/// C = 6·N·D; curves follow the same law along D. Each cell also has a run at 16× its optimal
/// rate that diverged (its curve ends in NaN).
fn planted() -> Observations {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut noise = move || 1.0 + 0.002 * (rng.random::<f64>() - 0.5) * 3.46;
    let mut runs = Vec::new();
    let sizes = [1e4, 3e4, 1e5, 3e5, 1e6];
    let budgets = [1e4, 3e4, 1e5, 3e5];
    for &n in &sizes {
        for &d in &budgets {
            let eta = 0.5 * f64::powf(n, -0.4) * f64::powf(d, 0.1);
            let base = |d: f64| 1.5 + 40.0 / n.powf(0.3) + 60.0 / d.powf(0.35);
            for k in -2..=2 {
                let lr = eta * 2f64.powi(k) * 1.1;
                let penalty = 0.02 * (lr / eta).log2().powi(2);
                let curve = (1..=8)
                    .map(|i| {
                        let di = d * i as f64 / 8.0;
                        (6.0 * n * di, base(di) + penalty)
                    })
                    .collect();
                runs.push(Run {
                    id: format!("{n}-{d}-{k}"),
                    size: format!("n{n}"),
                    params: n,
                    examples: d,
                    epochs: Some(d / 1e4),
                    flops: 6.0 * n * d,
                    lr: Some(lr),
                    loss: Some((base(d) + penalty) * noise()),
                    curve,
                    weight: None,
                });
            }
            runs.push(Run {
                id: format!("{n}-{d}-diverged"),
                size: format!("n{n}"),
                params: n,
                examples: d,
                epochs: Some(d / 1e4),
                flops: 6.0 * n * d,
                lr: Some(eta * 16.0 * 1.1),
                loss: None,
                curve: vec![
                    (6.0 * n * d / 8.0, base(d / 8.0) * 1.5),
                    (6.0 * n * d / 4.0, f64::NAN),
                ],
                weight: None,
            });
        }
    }
    Observations {
        source: "sweep:planted".into(),
        sweep_id: None,
        params_count: ParamsCount::Total,
        examples_per_epoch: Some(1e4),
        loss_name: Some("cross-entropy, nats".into()),
        runs,
        source_hash: None,
        notes: Vec::new(),
    }
}

/// Evaluation points of one planted trial.
fn planted_rows(n: f64, d: f64) -> Vec<MetricRow> {
    (0..=10)
        .map(|i| {
            let seen = d * i as f64 / 10.0;
            let loss = 1.5 + 40.0 / n.powf(0.3) + 60.0 / seen.max(1.0).powf(0.35);
            MetricRow {
                step: i,
                examples: seen as i64,
                flops: 6.0 * n * seen,
                lr: 1e-3,
                train_loss: Some(loss * 0.97),
                val_loss: (i > 0).then_some(loss),
                val_accuracy: None,
                wall_seconds: i as f64,
            }
        })
        .collect()
}

fn planted_curves() -> Vec<(String, Vec<MetricRow>)> {
    [1e4, 1e5, 1e6]
        .iter()
        .map(|&n| (format!("n{n} · best rate"), planted_rows(n, 3e5)))
        .collect()
}

fn quick() -> FitConfig {
    FitConfig {
        bootstrap: 50,
        ..FitConfig::default()
    }
}

/// The pixel size of each figure `draw_all` may draw, from the figure itself.
fn expected_size(
    name: &str,
    obs: &Observations,
    report: &FitReport,
    curves: &[(String, Vec<MetricRow>)],
) -> (u32, u32) {
    match name {
        loss_compute::NAME => loss_compute::LossVsCompute::new(obs, report).map(|f| f.size()),
        lr_sensitivity::NAME => lr_sensitivity::LrSensitivity::new(obs, report).map(|f| f.size()),
        lr_size::NAME => lr_size::LrVsSize::new(report).map(|f| f.size()),
        isoflop::NAME => isoflop::IsoFlop::new(obs, report).map(|f| f.size()),
        curves::NAME => curves::TrainingCurves::new(curves).map(|f| f.size()),
        other => panic!("unknown figure {other}"),
    }
    .expect("a drawn figure can be built again")
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let word = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (word(16), word(20))
}

/// Width and height from the root `<svg>` element's attributes.
fn svg_size(text: &str) -> (u32, u32) {
    let start = text.find("<svg").expect("an <svg> element");
    let tag = &text[start..start + text[start..].find('>').expect("a closed tag")];
    let attribute = |name: &str| -> u32 {
        let key = format!(" {name}=\"");
        let from = tag
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {tag}"))
            + key.len();
        let value = &tag[from..from + tag[from..].find('"').expect("closing quote")];
        value.parse().unwrap_or_else(|_| panic!("{name}={value:?}"))
    };
    (attribute("width"), attribute("height"))
}

/// Distinct colours of a figure rendered into memory.
fn distinct_colours(figure: &impl Render) -> usize {
    register_font().unwrap();
    let (w, h) = figure.size();
    let mut buffer = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
        draw_on(root, figure).unwrap();
    }
    let mut colours: Vec<[u8; 3]> = buffer.chunks(3).map(|c| [c[0], c[1], c[2]]).collect();
    colours.sort_unstable();
    colours.dedup();
    colours.len()
}

/// The size of a blank PNG of `size` drawn by the same encoder.
fn blank_png_len(dir: &Path, size: (u32, u32)) -> u64 {
    let path = dir.join(format!("blank-{}x{}.png", size.0, size.1));
    let root = BitMapBackend::new(&path, size).into_drawing_area();
    root.fill(&WHITE).unwrap();
    root.present().unwrap();
    drop(root);
    std::fs::metadata(&path).unwrap().len()
}

/// Axis titles each figure's SVG must carry.
fn axis_titles(name: &str) -> &'static [&'static str] {
    match name {
        loss_compute::NAME => &["Training compute C (FLOPs)", "Validation loss"],
        lr_sensitivity::NAME => &["Peak learning rate η", "Final validation loss"],
        lr_size::NAME => &["Parameters N", "Optimal peak learning rate η*"],
        isoflop::NAME => &["Parameters N", "Best validation loss", "Optimal size N*"],
        curves::NAME => &["Examples seen D", "Loss"],
        _ => &[],
    }
}

#[test]
fn every_figure_is_drawn_in_both_formats() {
    let obs = planted();
    let report = fit_all(&obs, &[], &quick());
    assert!(report.isoflop.as_ref().unwrap().fitted().is_some());
    let curves = planted_curves();
    let dir = tempfile::tempdir().unwrap();
    let blank_dir = tempfile::tempdir().unwrap();
    for format in [Format::Png, Format::Svg] {
        let out = dir.path().join(format.extension());
        let figures = draw_all(&obs, &report, &curves, &out, format).unwrap();
        let names: Vec<&str> = figures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "loss_vs_compute",
                "lr_sensitivity",
                "lr_vs_size",
                "isoflop",
                "training_curves"
            ]
        );
        for f in &figures {
            assert_eq!(
                f.path,
                out.join(format!("{}.{}", f.name, format.extension()))
            );
            assert!(!f.title.is_empty());
            let bytes = std::fs::read(&f.path).unwrap();
            let expected = expected_size(&f.name, &obs, &report, &curves);
            match format {
                Format::Png => {
                    assert_eq!(png_size(&bytes), expected, "{}", f.name);
                    let blank = blank_png_len(blank_dir.path(), expected);
                    assert!(
                        bytes.len() as u64 > 4 * blank,
                        "{}: {} bytes, a blank image has {blank}",
                        f.name,
                        bytes.len()
                    );
                }
                Format::Svg => {
                    let text = String::from_utf8(bytes).unwrap();
                    assert_eq!(svg_size(&text), expected, "{}", f.name);
                    assert!(text.matches("<text").count() > 10, "{}", f.name);
                    for title in axis_titles(&f.name) {
                        assert!(text.contains(title), "{}: no axis title {title:?}", f.name);
                    }
                    assert!(text.contains(&f.title), "{}: no title", f.name);
                }
            }
        }
    }
}

#[test]
fn figures_are_not_blank() {
    let obs = planted();
    let report = fit_all(&obs, &[], &quick());
    let curves = planted_curves();
    // Lines in several colours, anti-aliased text and bands: hundreds of colours.
    let counts = [
        distinct_colours(&loss_compute::LossVsCompute::new(&obs, &report).unwrap()),
        distinct_colours(&lr_sensitivity::LrSensitivity::new(&obs, &report).unwrap()),
        distinct_colours(&lr_size::LrVsSize::new(&report).unwrap()),
        distinct_colours(&isoflop::IsoFlop::new(&obs, &report).unwrap()),
        distinct_colours(&curves::TrainingCurves::new(&curves).unwrap()),
    ];
    for (name, n) in ["loss", "lr", "lr-size", "isoflop", "curves"]
        .iter()
        .zip(counts)
    {
        assert!(n >= 100, "{name}: only {n} colours");
    }
}

#[test]
fn missing_pieces_leave_figures_out_without_error() {
    let dir = tempfile::tempdir().unwrap();
    let obs = planted();

    // No method fitted: curves and LR sensitivity still drawn, no law figures.
    let none = FitConfig {
        lr: false,
        frontier: false,
        isoflop: false,
        parametric: false,
        bootstrap: 0,
        ..FitConfig::default()
    };
    let report = fit_all(&obs, &[], &none);
    let figures = draw_all(&obs, &report, &[], &dir.path().join("none"), Format::Png).unwrap();
    let names: Vec<&str> = figures.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["loss_vs_compute", "lr_sensitivity"]);

    // Fitted without bootstrap: laws without bands.
    let plain = FitConfig {
        bootstrap: 0,
        ..FitConfig::default()
    };
    let report = fit_all(&obs, &[], &plain);
    let figures = draw_all(&obs, &report, &[], &dir.path().join("plain"), Format::Svg).unwrap();
    assert_eq!(figures.len(), 4);

    // A single size: nothing to fit across sizes, no next size to predict.
    let mut one = obs.clone();
    one.runs.retain(|r| r.params == 1e5);
    let report = fit_all(&one, &[], &quick());
    let figures = draw_all(&one, &report, &[], &dir.path().join("one"), Format::Png).unwrap();
    assert!(figures.iter().any(|f| f.name == "loss_vs_compute"));
    assert!(figures.iter().all(|f| f.name != "isoflop"));

    // No diverged run, and NaN losses where finite ones are expected.
    let mut odd = obs.clone();
    odd.runs.retain(|r| r.loss.is_some());
    odd.runs[0].loss = Some(f64::NAN);
    odd.runs[1].curve.push((f64::NAN, 1.0));
    odd.runs[2].curve.push((1e12, f64::INFINITY));
    let report = fit_all(&odd, &[], &quick());
    draw_all(
        &odd,
        &report,
        &planted_curves(),
        &dir.path().join("odd"),
        Format::Svg,
    )
    .unwrap();

    // Every run of the largest budget diverged: that panel says so.
    let mut diverged = obs.clone();
    for r in diverged.runs.iter_mut().filter(|r| r.examples == 3e5) {
        r.loss = None;
    }
    let report = fit_all(&diverged, &[], &quick());
    let lr = lr_sensitivity(&diverged, &report, &dir.path().join("d.svg"), Format::Svg)
        .unwrap()
        .unwrap();
    let text = std::fs::read_to_string(lr.path).unwrap();
    assert!(text.contains("every run diverged"));
    assert!(text.contains("diverged"));

    // Nothing at all.
    let empty = Observations {
        runs: Vec::new(),
        ..obs.clone()
    };
    let report = fit_all(&empty, &[], &quick());
    let curves = vec![("empty".to_string(), Vec::new())];
    let figures = draw_all(
        &empty,
        &report,
        &curves,
        &dir.path().join("empty"),
        Format::Png,
    )
    .unwrap();
    assert!(figures.is_empty());
    assert!(dir.path().join("empty").is_dir());
}

#[test]
fn counts_agree_with_their_nouns() {
    assert_eq!(count(1, "size"), "1 size");
    assert_eq!(count(6, "size"), "6 sizes");
    assert_eq!(count(0, "run"), "0 runs");
    assert_eq!(count(3, "vertex"), "3 vertices");
}

#[test]
fn formats_name_their_files() {
    assert_eq!(Format::Png.extension(), "png");
    assert_eq!(Format::Svg.extension(), "svg");
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/curves.svg");
    let f = training_curves(&planted_curves(), "Loss", &nested, Format::Svg)
        .unwrap()
        .unwrap();
    assert_eq!(f.path, nested);
    assert!(nested.exists());
}

/// Renders the figures of a real sweep (and of the planted one) for inspection:
/// `SLAW_PLOT_DB=copy.db SLAW_PLOT_SWEEP=quickstart SLAW_PLOT_OUT=/tmp/figures cargo test
/// --release -p slaw --lib plot::tests::render_a_stored_sweep -- --ignored`.
#[test]
#[ignore = "needs a store with a finished sweep (SLAW_PLOT_DB)"]
fn render_a_stored_sweep() {
    use crate::analysis::observations::from_sweep;
    let db = std::env::var("SLAW_PLOT_DB").expect("SLAW_PLOT_DB");
    let name = std::env::var("SLAW_PLOT_SWEEP").unwrap_or_else(|_| "quickstart".into());
    let out = PathBuf::from(
        std::env::var("SLAW_PLOT_OUT").unwrap_or_else(|_| "/tmp/slaw-figures".into()),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (obs, curves) = rt.block_on(async {
        let store = crate::store::Store::open(&db).await.unwrap();
        let sweep = store.sweep(&name).await.unwrap();
        let obs = from_sweep(&store, &sweep, ParamsCount::Total)
            .await
            .unwrap();
        let trials = store.trials(sweep.id).await.unwrap();
        let top = trials.iter().map(|t| t.epochs).fold(0.0, f64::max);
        let mut best: Vec<&crate::store::TrialRow> = Vec::new();
        for t in trials
            .iter()
            .filter(|t| t.epochs == top && t.final_val_loss.is_some())
        {
            match best.iter_mut().find(|b| b.size_name == t.size_name) {
                Some(b) if b.final_val_loss <= t.final_val_loss => {}
                Some(b) => *b = t,
                None => best.push(t),
            }
        }
        best.sort_by_key(|t| t.size_index);
        let mut curves = Vec::new();
        for t in best {
            let label = format!("{} · lr {}", t.size_name, t.lr);
            curves.push((label, store.metrics(t.id).await.unwrap()));
        }
        (obs, curves)
    });
    let report = fit_all(
        &obs,
        &[],
        &FitConfig {
            bootstrap: 200,
            ..FitConfig::default()
        },
    );
    let planted_obs = planted();
    let planted_report = fit_all(&planted_obs, &[], &quick());
    // Edge cases worth a look: a single size; a budget where every run diverged; no bootstrap.
    let mut one = planted_obs.clone();
    one.runs.retain(|r| r.params == 1e5);
    let one_report = fit_all(&one, &[], &quick());
    let mut diverged = planted_obs.clone();
    for r in diverged.runs.iter_mut().filter(|r| r.examples == 3e5) {
        r.loss = None;
    }
    let diverged_report = fit_all(&diverged, &[], &FitConfig::default());
    draw_all(&one, &one_report, &[], &out.join("one-size"), Format::Png).unwrap();
    // The largest size's grid stops at its optimum: edge cells, drawn hollow.
    let mut edge = planted_obs.clone();
    edge.runs
        .retain(|r| !(r.params == 1e6 && (r.id.ends_with("--1") || r.id.ends_with("--2"))));
    let edge_report = fit_all(&edge, &[], &quick());
    draw_all(&edge, &edge_report, &[], &out.join("edge"), Format::Png).unwrap();
    draw_all(
        &diverged,
        &diverged_report,
        &[],
        &out.join("diverged"),
        Format::Png,
    )
    .unwrap();
    for format in [Format::Png, Format::Svg] {
        for f in draw_all(&obs, &report, &curves, &out, format).unwrap() {
            eprintln!("{} {}", f.name, f.path.display());
        }
        let planted_out = out.join("planted");
        for f in draw_all(
            &planted_obs,
            &planted_report,
            &planted_curves(),
            &planted_out,
            format,
        )
        .unwrap()
        {
            eprintln!("{} {}", f.name, f.path.display());
        }
    }
}
