//! The InfluxDB sink against a real InfluxDB 1.6 (started by `scripts/test`, found through
//! `TIDEMARK_TEST_INFLUXDB`): the pipeline's points read back with InfluxQL equal its window
//! results, corrections overwrite points instead of adding them, and nothing acknowledged is
//! lost while the server is stopped.

mod influx_support;
mod support;

use influx_support::{Influx, OwnServer, SIZES, assert_points_are_final_updates, window_points};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};
use support::*;
use tidemark_schemas::{Aggregates, OutputBatch, SeriesId, UpdateKind, WindowUpdate};
use tidemark_sinks::Sink;
use tidemark_sinks::influxdb::{InfluxDbConfig, InfluxDbSink};

fn config_text(input: &Path, out: &Path, db: &Influx, extra_pipeline: &str) -> String {
    format!(
        "[source]\ntype = \"file\"\npath = {input:?}\n\n[pipeline]\n{extra_pipeline}\n\n[sinks.files]\ndir = {out:?}\ncsv = false\nline_protocol = false\n\n\
         [sinks.influxdb]\nurl = \"{}\"\ndatabase = \"{}\"\nflush_interval = \"100ms\"\nself_metrics_interval = \"1s\"\nrejected_path = {:?}\n",
        db.base,
        db.db,
        out.join("influxdb-rejected.ndjson")
    )
}

/// A generated stream of every event kind (with malformed lines) through `tidemark run`: the
/// points in InfluxDB are exactly the last update of every window in `windows.ndjson`, field
/// for field, bit for bit — no window missing, none extra, none twice.
#[test]
fn every_window_result_is_a_point_with_the_same_values() {
    let Some(server) = influx_support::server() else {
        return;
    };
    let db = Influx::fresh(&server, "windows");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    succeed(
        tidemark()
            .args([
                "generate",
                "--events",
                "20000",
                "--rate",
                "20",
                "--malformed",
                "0.01",
                "--out",
            ])
            .arg(&input),
    );
    let out = dir.path().join("out");
    let config = dir.path().join("tidemark.toml");
    std::fs::write(&config, config_text(&input, &out, &db, "")).unwrap();
    let output = succeed(tidemark().args(["run", "--config"]).arg(&config));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("wrote InfluxDB ("), "{stdout}");

    assert_points_are_final_updates(&window_points(&db), &final_updates(&out.join("windows.ndjson")));
    assert!(!std::path::Path::new(&out.join("influxdb-rejected.ndjson")).exists());

    let dead = dead_letters(&out.join("dead-letters.ndjson")).len() as u64;
    assert!(dead > 0, "the stream has malformed lines");
    let reported: u64 = db
        .query("SELECT sum(\"count\") FROM \"tidemark_dead_letters\"")
        .first()
        .map_or(0, |s| s.values[0][1].as_u64().unwrap());
    assert_eq!(reported, dead, "self-metrics count every dead letter");
    let rows: u64 = db.query("SELECT sum(\"window_rows\") FROM \"tidemark_pipeline\"")[0].values[0][1]
        .as_u64()
        .unwrap();
    let updates = std::fs::read_to_string(out.join("windows.ndjson"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(rows, updates, "self-metrics count every window update");
}

/// Events minutes late correct closed windows: InfluxDB holds one point per window (the
/// corrections rewrote them), and its values equal an independent batch computation over all
/// events.
#[test]
fn corrections_overwrite_points_and_converge_on_the_batch_result() {
    let Some(server) = influx_support::server() else {
        return;
    };
    let db = Influx::fresh(&server, "corrections");
    let dir = tempfile::tempdir().unwrap();
    let events = metric_events(30_000, 12, 0.05, 0.01, 3);
    let input = dir.path().join("events.ndjson");
    write_lines(&input, &events);
    let out = dir.path().join("out");
    let config = dir.path().join("tidemark.toml");
    let pipeline = "late_policy = \"correct\"\ncorrection_horizon = \"2h\"";
    std::fs::write(&config, config_text(&input, &out, &db, pipeline)).unwrap();
    succeed(tidemark().args(["run", "--workers", "1", "--config"]).arg(&config));

    let updates = std::fs::read_to_string(out.join("windows.ndjson")).unwrap();
    let corrections = updates
        .lines()
        .filter(|l| l.contains("\"kind\":\"correction\""))
        .count();
    assert!(corrections > 50, "expected many corrections, got {corrections}");

    let sizes: Vec<i64> = SIZES.iter().map(|(_, ms)| *ms).collect();
    let expected = batch_windows(&observations(&events), &sizes);
    let got = window_points(&db);
    assert_eq!(
        got.len(),
        expected.len(),
        "one point per window although {} updates were written",
        updates.lines().count()
    );
    for (key, want) in &expected {
        let point = got.get(key).unwrap_or_else(|| panic!("no point for {key:?}"));
        let f = |name: &str| point[name].as_f64().unwrap();
        assert_eq!(point["count"].as_u64().unwrap(), want.count, "{key:?}");
        assert_eq!((f("min"), f("max")), (want.min, want.max), "{key:?}");
        assert!(
            close(f("sum"), want.sum, 1e-12),
            "sum {key:?}: {} vs {}",
            f("sum"),
            want.sum
        );
        for (name, want) in [("p50", want.p50), ("p95", want.p95), ("p99", want.p99)] {
            assert!(close(f(name), want, 0.005), "{name} {key:?}: {} vs {want}", f(name));
        }
    }
}

fn row(i: u64) -> WindowUpdate {
    let series = format!("outage.test|host=h{}", i % 10);
    WindowUpdate {
        series_id: SeriesId::of_key(&series),
        series: Arc::from(series.as_str()),
        window_ms: 60_000,
        window_start: 1_732_233_600_000 + (i / 10) as i64 * 60_000,
        kind: UpdateKind::Final,
        aggregates: Aggregates {
            count: i + 1,
            sum: i as f64 * 0.5,
            min: 0.0,
            max: i as f64,
            avg: 0.25,
            p50: None,
            p95: None,
            p99: None,
            distinct: None,
        },
    }
}

fn batch_of(range: std::ops::Range<u64>) -> OutputBatch {
    OutputBatch {
        windows: range.map(row).collect(),
        ..OutputBatch::default()
    }
}

/// The server is stopped mid-stream and started again: while it is down, `write` blocks
/// after a bounded number of points (backpressure, not buffering), and once it is back every
/// point `write` accepted is in the database, with its value.
#[test]
fn nothing_acknowledged_is_lost_while_the_server_is_down() {
    if influx_support::server().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let own = OwnServer::start(&dir.path().join("influx"));
    let db = Influx::fresh(&own.url(), "outage");
    let config = InfluxDbConfig {
        url: own.url(),
        database: db.db.clone(),
        batch_points: 100,
        flush_interval: Duration::from_millis(20),
        max_in_flight: 2,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(300),
        timeout: Duration::from_secs(2),
        rejected_path: dir.path().join("rejected.ndjson"),
        self_metrics: false,
        // Retried in memory only: this test is about the in-memory bound (the spool has its
        // own, tests/influxdb_outage.rs).
        spool_after: Duration::from_secs(3600),
        spool_dir: Some(dir.path().join("spool")),
        ..InfluxDbConfig::default()
    };
    let mut sink = InfluxDbSink::start(&config).unwrap();
    const BATCH: u64 = 50;
    const BATCHES: u64 = 200;
    for b in 0..20 {
        sink.write(&batch_of(b * BATCH..(b + 1) * BATCH)).unwrap();
    }
    sink.flush().unwrap();
    assert_eq!(
        db.count("outage.test", "count"),
        20 * BATCH,
        "flushed points are in the database"
    );

    own.stop();
    let accepted = Arc::new(AtomicU64::new(20));
    let writer = {
        let accepted = accepted.clone();
        std::thread::spawn(move || {
            for b in 20..BATCHES {
                sink.write(&batch_of(b * BATCH..(b + 1) * BATCH)).unwrap();
                accepted.store(b + 1, SeqCst);
            }
            sink.finish().unwrap();
            sink.describe()
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let stalled = accepted.load(SeqCst);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(accepted.load(SeqCst), stalled, "write blocks while the server is down");
    let buffered = (stalled - 20) * BATCH;
    assert!(
        buffered <= 100 * (3 * 2 + 3) + 2 * BATCH,
        "at most (3 × max_in_flight + 3) batches and the chunks are held: {buffered} points"
    );
    assert!(stalled < BATCHES, "the writes did not all fit in memory");

    let restarted = Instant::now();
    own.restart();
    let describe = writer.join().unwrap();
    assert!(restarted.elapsed() < Duration::from_secs(30));
    assert!(
        describe.contains("retries") && !describe.contains(" 0 retries"),
        "{describe}"
    );
    assert_eq!(db.count("outage.test", "count"), BATCHES * BATCH, "{describe}");
    let max: f64 = db.query("SELECT max(\"max\") FROM \"outage.test\"")[0].values[0][1]
        .as_f64()
        .unwrap();
    assert_eq!(max, (BATCHES * BATCH - 1) as f64);
    assert!(!dir.path().join("rejected.ndjson").exists(), "no batch was refused");
}
