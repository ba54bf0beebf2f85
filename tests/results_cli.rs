//! `slaw plot`, `query`, `export`, `show` and `report` end to end on a sweep trained by slaw,
//! and what `slaw run` leaves in <sweep>/ beside its database.

use crate::common::{synthetic_sweep, text, Sandbox};

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    (be(16), be(20))
}

#[test]
fn results_of_a_trained_sweep() {
    let sb = Sandbox::new();
    let sweep = synthetic_sweep("r", "[0.003, 0.01, 0.03, 0.1]", "[1, 2, 4]").replace(
        "sizes: [{name: a, width: 8}, {name: b, width: 24}]",
        "sizes: [{name: a, width: 4}, {name: b, width: 8}, {name: c, width: 16}, {name: d, width: 32}]",
    );
    let file = sb.write("r.yaml", &sweep);
    let out = sb.run(&["run", file.to_str().unwrap(), "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = sb.path("r");
    assert!(
        stdout.contains(&format!("figures and report in {}/", dir.display())),
        "{stdout}"
    );

    // `run` left PNG figures and the report in r/ beside the database (not under the working
    // directory's results/).
    assert!(!sb.path("results").exists());
    for name in [
        "loss_vs_compute.png",
        "lr_sensitivity.png",
        "lr_vs_size.png",
        "training_curves.png",
        "report.html",
    ] {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if name.ends_with(".png") {
            let (w, h) = png_size(&bytes);
            assert!(w >= 800 && h >= 500, "{name}: {w}×{h}");
            assert!(
                bytes.len() > 20_000,
                "{name} looks blank: {} bytes",
                bytes.len()
            );
        }
    }

    // plot --format svg into a chosen directory.
    let svg_dir = sb.path("svg");
    let out = sb.run(&[
        "plot",
        "--format",
        "svg",
        "--out",
        svg_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let svg = std::fs::read_to_string(svg_dir.join("loss_vs_compute.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("FLOPs"),
        "{}",
        &svg[..200.min(svg.len())]
    );

    // The report embeds every figure and the predictions.
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= 4, "figures missing");
    for needle in [
        "Predictions for the next model size",
        "Fitted laws",
        "Sweep definition",
        "<td class=\"l\"><code>",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    assert!(
        !html.contains("<script"),
        "the report must not need scripts"
    );

    // query: a readable table, CSV, JSON, Parquet.
    let out = sb.run(&["query", "SELECT size, count(*) AS n, min(val_loss) AS best FROM results GROUP BY size ORDER BY size"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("best") && table.contains("(4 rows)"),
        "{table}"
    );
    let out = sb.run(&[
        "query",
        "SELECT size, n FROM (SELECT size, count(*) AS n FROM results GROUP BY size) ORDER BY size",
        "--format",
        "csv",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "size,n\na,12\nb,12\nc,12\nd,12\n",
        "{}",
        text(&out)
    );
    let pq = sb.path("q.parquet");
    let out = sb.run(&[
        "query",
        "SELECT * FROM curves",
        "--format",
        "parquet",
        "--out",
        pq.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(&std::fs::read(&pq).unwrap()[..4], b"PAR1");

    // Writes are refused before they reach the database (invalid input); nothing changes.
    let out = sb.run(&["query", "DELETE FROM trials"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("only reads") && err.contains("use sqlite3 or psql"),
        "{err}"
    );
    let out = sb.run(&[
        "query",
        "SELECT count(*) AS n FROM trials",
        "--format",
        "csv",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n48\n");
    // A misspelt statement is named; SQL errors are the database's message, not a panic.
    let out = sb.run(&["query", "SELEC oops"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`SELEC` does not start a query"), "{err}");
    let out = sb.run(&["query", "SELECT FROM WHERE"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("syntax error") && !err.contains("panicked"),
        "{err}"
    );

    // export: the three tables.
    let ex = sb.path("export");
    let out = sb.run(&[
        "export",
        "--sweep",
        "r",
        "--format",
        "csv",
        "--out",
        ex.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let trials = std::fs::read_to_string(ex.join("trials.csv")).unwrap();
    assert_eq!(trials.lines().count(), 49, "header + 48 trials");
    let metrics = std::fs::read_to_string(ex.join("metrics.csv")).unwrap();
    assert!(metrics.lines().count() > 48 * 2);
    assert!(ex.join("fits.csv").exists());
    let out = sb.run(&[
        "export",
        "--format",
        "parquet",
        "--out",
        ex.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        &std::fs::read(ex.join("metrics.parquet")).unwrap()[..4],
        b"PAR1"
    );

    // show: one trial by key prefix.
    let out = sb.run(&[
        "query",
        "SELECT trial FROM results ORDER BY trial LIMIT 1",
        "--format",
        "csv",
    ]);
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let out = sb.run(&["show", &key[..8]]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "of sweep r: completed",
        "curve (3 evaluation points)",
        "claimed",
        "\"optimizer\"",
    ] {
        assert!(s.contains(needle), "{needle}: {s}");
    }
    let out = sb.run(&["show", "zzzz"]);
    assert!(!out.status.success());
}
