//! The pipeline's windows equal an independent batch computation, row for row.

mod support;

use support::*;

const SIZES_MS: [i64; 5] = [60_000, 300_000, 900_000, 3_600_000, 86_400_000];

/// On-time and slightly disordered events (all within the 2 s lateness): the CSV export equals
/// the batch oracle exactly — counts, min and max to the bit, sums to 1e-12, quantiles exact.
#[test]
fn replay_csv_equals_the_batch_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let events = metric_events(60_000, 40, 0.05, 0.0, 1);
    let input = dir.path().join("events.ndjson");
    write_lines(&input, &events);
    let expected = batch_windows(&observations(&events), &[60_000]);

    for workers in ["1", "2"] {
        let csv = dir.path().join(format!("windows-{workers}.csv"));
        let output = succeed(
            tidemark()
                .args(["replay"])
                .arg(&input)
                .arg("--export-csv")
                .arg(&csv)
                .args(["--workers", workers]),
        );
        let summary = String::from_utf8_lossy(&output.stdout);
        assert!(summary.contains("events=60000 "), "{summary}");
        assert!(summary.contains(&format!("rows={} ", expected.len())), "{summary}");
        assert!(summary.contains("dead_lettered=0"), "{summary}");

        let rows = read_csv(&csv);
        assert_eq!(rows.len(), expected.len(), "workers={workers}");
        for ((series, _, start), want) in &expected {
            let got = &rows[&(series.clone(), *start)];
            let field = |i: usize| got[i].parse::<f64>().unwrap();
            assert_eq!(got[2].parse::<u64>().unwrap(), want.count, "{series} {start}");
            assert!(
                close(field(3), want.sum, 1e-12),
                "sum {series} {start}: {} vs {}",
                field(3),
                want.sum
            );
            assert_eq!((field(4), field(5)), (want.min, want.max), "{series} {start}");
            assert!(
                close(field(6), want.sum / want.count as f64, 1e-12),
                "avg {series} {start}"
            );
            assert_eq!((field(7), field(8)), (want.p95, want.p99), "{series} {start}");
        }
    }
    let one = std::fs::read(dir.path().join("windows-1.csv")).unwrap();
    let two = std::fs::read(dir.path().join("windows-2.csv")).unwrap();
    assert_eq!(one, two, "1 and 2 workers must export the same CSV");
}

/// With events minutes late (past the lateness, within the correction horizon), closed windows
/// are corrected: the last upsert of every window of every size equals the batch oracle over
/// all events, and rollups agree with their 1-minute parts.
#[test]
fn late_events_correct_closed_windows_and_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let events = metric_events(40_000, 12, 0.05, 0.01, 2);
    let input = dir.path().join("events.ndjson");
    write_lines(&input, &events);
    let out = dir.path().join("out");
    let config = dir.path().join("tidemark.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntype = \"file\"\npath = {input:?}\n\n[pipeline]\nlate_policy = \"correct\"\ncorrection_horizon = \"2h\"\n\n[sinks.files]\ndir = {out:?}\n"
        ),
    )
    .unwrap();
    for workers in ["1", "2"] {
        succeed(
            tidemark()
                .args(["run", "--config"])
                .arg(&config)
                .args(["--workers", workers]),
        );
        let got = final_updates(&out.join("windows.ndjson"));
        let expected = batch_windows(&observations(&events), &SIZES_MS);
        assert_eq!(got.len(), expected.len(), "workers={workers}: window sets differ");
        let mut corrections = 0;
        for (key, want) in &expected {
            let row = got.get(key).unwrap_or_else(|| panic!("missing window {key:?}"));
            let f = |name: &str| row[name].as_f64().unwrap();
            assert_eq!(row["count"].as_u64().unwrap(), want.count, "{key:?}");
            assert!(
                close(f("sum"), want.sum, 1e-12),
                "sum {key:?}: {} vs {}",
                f("sum"),
                want.sum
            );
            assert_eq!((f("min"), f("max")), (want.min, want.max), "{key:?}");
            // Corrected windows merge sketches beyond 64 values: within the sketch's α = 0.5 %.
            for (name, want) in [("p50", want.p50), ("p95", want.p95), ("p99", want.p99)] {
                assert!(close(f(name), want, 0.005), "{name} {key:?}: {} vs {want}", f(name));
            }
            if row["kind"] == "correction" {
                corrections += 1;
            }
        }
        // One worker reads the file in order, so how many windows close before their late
        // events arrive is fixed; with two, it depends on how the workers' reading interleaves
        // (a worker that lags holds windows open and the late events land before they close:
        // 32 on a loaded machine where an idle one has over 50), so there it must merely happen.
        let floor = if workers == "1" { 50 } else { 1 };
        assert!(
            corrections >= floor,
            "workers={workers}: expected at least {floor} corrected windows, got {corrections}"
        );
    }
}
