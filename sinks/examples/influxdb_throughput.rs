//! How many points per second the InfluxDB sink sustains into a real server.
//!
//! ```sh
//! cargo run --release -p tidemark-sinks --example influxdb_throughput -- \
//!     http://127.0.0.1:18086 [points] [series] [batch_points] [max_in_flight]
//! ```
//!
//! Writes `points` window rows (default 1 000 000) over `series` series (default 10 000)
//! through `InfluxDbSink` as fast as `write` accepts them, waits until every point is
//! acknowledged (`finish`), then counts the points back with InfluxQL. Prints one line:
//! `points=… seconds=… points_per_s=… visible=… latency_p50_ms=… latency_p99_ms=…`.
//! `scripts/bench-influxdb` runs it against a throwaway server.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tidemark_schemas::{Aggregates, OutputBatch, SeriesId, UpdateKind, WindowUpdate};
use tidemark_sinks::Sink;
use tidemark_sinks::influxdb::{InfluxDbConfig, InfluxDbSink};

/// Rows per `write`, as the dataflow hands the sink thread a batch at a time.
const ROWS_PER_WRITE: u64 = 1000;

fn row(i: u64, series: &[(Arc<str>, SeriesId)]) -> WindowUpdate {
    let (key, id) = &series[(i % series.len() as u64) as usize];
    let minute = (i / series.len() as u64) as i64;
    let value = (i % 997) as f64 * 0.25;
    WindowUpdate {
        series: key.clone(),
        series_id: *id,
        window_ms: 60_000,
        window_start: 1_732_233_600_000 + minute * 60_000,
        kind: UpdateKind::Final,
        aggregates: Aggregates {
            count: 100 + i % 50,
            sum: value * 100.0,
            min: value / 2.0,
            max: value * 2.0,
            avg: value,
            p50: Some(value),
            p95: Some(value * 1.8),
            p99: Some(value * 1.95),
            distinct: None,
        },
    }
}

fn arg<T: std::str::FromStr>(args: &[String], index: usize, default: T) -> T {
    args.get(index).and_then(|a| a.parse().ok()).unwrap_or(default)
}

fn query(url: &str, db: &str, q: &str) -> String {
    let mut response = ureq::post(&format!("{url}/query"))
        .query("db", db)
        .query("q", q)
        .send_empty()
        .expect("querying InfluxDB");
    response.body_mut().read_to_string().expect("reading the answer")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).cloned().unwrap_or_else(|| "http://127.0.0.1:8086".into());
    let points: u64 = arg(&args, 2, 1_000_000);
    let series_count: u64 = arg(&args, 3, 10_000);
    let db = format!("tidemark_bench_{}", std::process::id());
    query(&url, "", &format!("CREATE DATABASE \"{db}\""));
    let config = InfluxDbConfig {
        url: url.clone(),
        database: db.clone(),
        batch_points: arg(&args, 4, 5000),
        max_in_flight: arg(&args, 5, 4),
        flush_interval: Duration::from_millis(100),
        self_metrics: false,
        rejected_path: std::env::temp_dir().join(format!("{db}-rejected.ndjson")),
        ..InfluxDbConfig::default()
    };
    let series: Vec<(Arc<str>, SeriesId)> = (0..series_count)
        .map(|s| {
            let key = format!(
                "bench.latency_ms|host=host-{:05}|region=r{}|service=svc-{}",
                s,
                s % 4,
                s % 20
            );
            (Arc::from(key.as_str()), SeriesId::of_key(&key))
        })
        .collect();
    let mut sink = InfluxDbSink::start(&config).expect("starting the sink");
    let started = Instant::now();
    let mut next = 0;
    while next < points {
        let end = (next + ROWS_PER_WRITE).min(points);
        let batch = OutputBatch {
            windows: (next..end).map(|i| row(i, &series)).collect(),
            ..OutputBatch::default()
        };
        sink.write(&batch).expect("writing");
        next = end;
    }
    sink.finish().expect("finishing");
    let seconds = started.elapsed().as_secs_f64();
    let answer = query(&url, &db, "SELECT count(\"count\") FROM \"bench.latency_ms\"");
    let json: serde_json::Value = serde_json::from_str(&answer).expect("InfluxDB answers JSON");
    let visible = json["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or_else(|| panic!("{answer}"));
    let describe = sink.describe();
    println!(
        "points={points} series={series_count} seconds={seconds:.2} points_per_s={:.0} visible={visible}\n{describe}",
        points as f64 / seconds
    );
    query(&url, "", &format!("DROP DATABASE \"{db}\""));
    assert_eq!(visible, points, "every point is visible after finish");
}
