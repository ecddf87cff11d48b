//! InfluxDB outages against a real InfluxDB 1.6 of the test's own (the shared server is never
//! stopped): a 60-second outage in the middle of a run, and a `kill -9` while batches wait in
//! the spool. Either way the database ends up holding exactly the last update of every window
//! the pipeline produced — nothing lost, nothing stale, nothing twice — and the values equal an
//! independent batch computation over all events.
//!
//! The 60-second outage is what the issue asks for; the test takes about 75 s in all.

#[path = "support/background.rs"]
mod background;
mod influx_support;
mod support;

use background::Background;
use influx_support::{Influx, OwnServer, SIZES, assert_points_are_final_updates, window_points};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

/// 120 000 events over 200 series and about 11 minutes of event time, 5 % slightly out of
/// order and 1 % minutes late (so closed windows are corrected).
fn events() -> Vec<String> {
    metric_events(120_000, 200, 0.05, 0.01, 11)
}

/// The database holds exactly the last update of every window in `windows.ndjson`, bit for
/// bit, and its counts, sums, minima and maxima equal the batch computation over `events`
/// (quantile accuracy is checked in tests/windows_oracle.rs; here the pipeline's own results
/// are the reference for them).
fn assert_exact(db: &Influx, windows: &Path, events: &[String]) {
    let got = window_points(db);
    assert_points_are_final_updates(&got, &final_updates(windows));
    let sizes: Vec<i64> = SIZES.iter().map(|(_, ms)| *ms).collect();
    let oracle = batch_windows(&observations(events), &sizes);
    assert_eq!(got.len(), oracle.len(), "one point per window of the batch computation");
    for (key, want) in &oracle {
        let point = got.get(key).unwrap_or_else(|| panic!("no point for {key:?}"));
        let f = |name: &str| point[name].as_f64().unwrap();
        assert_eq!(point["count"].as_u64().unwrap(), want.count, "{key:?}");
        assert_eq!((f("min"), f("max")), (want.min, want.max), "{key:?}");
        assert!(close(f("sum"), want.sum, 1e-12), "sum {key:?}");
    }
}

fn write_config(dir: &Path, source: &str, db: &Influx) -> std::path::PathBuf {
    let text = format!(
        "{source}\n[pipeline]\nlate_policy = \"correct\"\ncorrection_horizon = \"2h\"\n\n\
         [sinks.files]\ndir = {out:?}\ncsv = false\nline_protocol = false\n\n\
         [sinks.influxdb]\nurl = \"{url}\"\ndatabase = \"{db}\"\nbatch_points = 500\nflush_interval = \"100ms\"\n\
         max_in_flight = 2\ntimeout = \"2s\"\ninitial_backoff = \"50ms\"\nmax_backoff = \"500ms\"\nspool_after = \"1s\"\n\
         spool_dir = {spool:?}\nrejected_path = {rejected:?}\nself_metrics = false\n",
        out = dir.join("out"),
        url = db.base,
        db = db.db,
        spool = dir.parent().unwrap().join("spool"),
        rejected = dir.join("rejected.ndjson"),
    );
    let path = dir.join("tidemark.toml");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn spool_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.ends_with(".seg"))
                .collect()
        })
        .unwrap_or_default()
}

/// InfluxDB is stopped for 60 s in the middle of a run: batches go to the spool (`/readyz`
/// and `/metrics` say so), the pipeline keeps consuming, and once the server is back the
/// spool is replayed in order, so the database ends up exact.
#[test]
fn a_60_second_outage_loses_nothing_and_leaves_nothing_stale() {
    if influx_support::server().is_none() {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = OwnServer::start(&dir.path().join("influx"));
    let db = Influx::fresh(&server.url(), "outage");
    let events = events();
    let config = write_config(&dir.path().join("run"), "[source]\ntype = \"stdin\"\n", &db);
    let mut run = Background::start(&config);
    let parts: Vec<&[String]> = events.chunks(events.len() / 30 + 1).collect();

    for part in &parts[..10] {
        run.feed(part);
    }
    run.wait_for("the first points in InfluxDB", Duration::from_secs(60), || {
        (run.metric("tidemark_influxdb_points_written_total")? > 0.0).then_some(())
    });
    server.stop();
    let stopped = Instant::now();
    for part in &parts[10..20] {
        run.feed(part);
        std::thread::sleep(Duration::from_millis(200));
    }
    let spooled = run.wait_for("batches in the spool", Duration::from_secs(30), || {
        let batches = run.metric("tidemark_influxdb_spool_batches")?;
        (batches > 0.0).then_some(batches)
    });
    assert_eq!(run.metric("tidemark_influxdb_state{state=\"spooling\"}"), Some(1.0));
    assert!(
        run.metric("tidemark_influxdb_write_errors_total{class=\"connection\"}")
            .unwrap()
            > 0.0
    );
    let (_, readiness) = run.get("/readyz");
    let readiness: Value = serde_json::from_str(&readiness).unwrap();
    let check = &readiness["checks"]["influxdb"];
    assert_eq!(check["ok"], true, "spooling is degraded but ready: {readiness}");
    assert!(check["detail"].as_str().unwrap().contains("spooling"), "{readiness}");
    eprintln!("{spooled} batches spooled; the server stays down for 60 s");

    std::thread::sleep(Duration::from_secs(60).saturating_sub(stopped.elapsed()));
    server.restart();
    for part in &parts[20..] {
        run.feed(part);
    }
    let (status, stdout) = run.finish();
    assert!(status.success(), "{status}: {stdout:?}");
    let described = stdout.iter().find(|l| l.contains("wrote InfluxDB")).unwrap();
    assert!(
        described.contains("batches spooled") && described.contains("replayed"),
        "{described}"
    );
    assert!(!described.contains("left in"), "{described}");

    assert_exact(&db, &dir.path().join("run/out/windows.ndjson"), &events);
    assert!(
        spool_files(&dir.path().join("spool")).is_empty(),
        "the spool was emptied"
    );
    assert!(!dir.path().join("run/rejected.ndjson").exists());
    eprintln!("outage test: {:.1} s", started.elapsed().as_secs_f64());
}

/// `kill -9` while batches wait in the spool (the server is down); a new run with the same
/// spool replays them first, then writes its own results: the database ends up exact.
#[test]
fn a_kill_9_with_batches_in_the_spool_loses_nothing() {
    if influx_support::server().is_none() {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let server = OwnServer::start(&dir.path().join("influx"));
    let db = Influx::fresh(&server.url(), "killed");
    server.stop();
    let events = events();

    let first = write_config(&dir.path().join("first"), "[source]\ntype = \"stdin\"\n", &db);
    let mut run = Background::start(&first);
    for part in events[..events.len() / 2].chunks(5_000) {
        run.feed(part);
        std::thread::sleep(Duration::from_millis(100));
    }
    run.wait_for("batches in the spool", Duration::from_secs(30), || {
        (run.metric("tidemark_influxdb_spool_batches")? >= 3.0).then_some(())
    });
    run.kill();
    let segments = spool_files(&dir.path().join("spool"));
    assert!(!segments.is_empty(), "the killed run left its spool");

    server.restart();
    let input = dir.path().join("events.ndjson");
    write_lines(&input, &events);
    let second = write_config(
        &dir.path().join("second"),
        &format!("[source]\ntype = \"file\"\npath = {input:?}\n"),
        &db,
    );
    let output = succeed(tidemark().args(["run", "--config"]).arg(&second));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("replayed"), "{stdout}");

    assert_exact(&db, &dir.path().join("second/out/windows.ndjson"), &events);
    assert!(
        spool_files(&dir.path().join("spool")).is_empty(),
        "the spool was emptied"
    );
    eprintln!("kill -9 test: {:.1} s", started.elapsed().as_secs_f64());
}
