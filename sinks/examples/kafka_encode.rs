//! How fast the Kafka sink encodes results, and (given a broker) how fast it delivers them.
//!
//! ```sh
//! cargo run --release -p tidemark-sinks --example kafka_encode -- [rows] [brokers topic registry_url]
//! ```
//!
//! Encodes `rows` window updates (default 2 000 000) over 10 000 series into one reused buffer,
//! as JSON and as Avro in the Confluent wire format, and prints one line per format:
//! `format=… rows=… seconds=… rows_per_s=… bytes_per_row=…`. With a broker, a topic and a
//! schema registry it also writes the rows through `KafkaSink` (1000 rows per `write`, as the
//! sink thread receives them) once per format and waits for every delivery report (`finish`):
//! `sink=… rows=… seconds=… rows_per_s=…`.

use std::sync::Arc;
use std::time::Instant;
use tidemark_schemas::{Aggregates, OutputBatch, SeriesId, UpdateKind, WindowUpdate};
use tidemark_sinks::Sink;
use tidemark_sinks::kafka::avro::encode_framed;
use tidemark_sinks::kafka::{KafkaSink, KafkaSinkConfig};

const SERIES: u64 = 10_000;
const ROWS_PER_WRITE: u64 = 1000;

fn row(i: u64, series: &[Arc<str>]) -> WindowUpdate {
    let key = &series[(i % SERIES) as usize];
    let value = (i % 997) as f64 * 0.25;
    WindowUpdate {
        series: key.clone(),
        series_id: SeriesId::of_key(key),
        window_ms: 60_000,
        window_start: 1_732_233_600_000 + (i / SERIES) as i64 * 60_000,
        kind: UpdateKind::Final,
        aggregates: Aggregates {
            count: 40 + i % 13,
            sum: value * 40.0,
            min: value / 2.0,
            max: value * 2.0,
            avg: value,
            p50: Some(value),
            p95: Some(value * 1.5),
            p99: Some(value * 1.9),
            distinct: None,
        },
    }
}

fn encode(format: &str, rows: &[WindowUpdate], mut encode: impl FnMut(&WindowUpdate, &mut Vec<u8>)) {
    let mut buffer = Vec::with_capacity(512);
    let mut bytes = 0;
    let started = Instant::now();
    for row in rows {
        encode(row, &mut buffer);
        bytes += buffer.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "format={format} rows={} seconds={seconds:.3} rows_per_s={:.0} bytes_per_row={:.1}",
        rows.len(),
        rows.len() as f64 / seconds,
        bytes as f64 / rows.len() as f64
    );
}

fn deliver(name: &str, config: &KafkaSinkConfig, rows: &[WindowUpdate]) {
    let started = Instant::now();
    let mut sink = KafkaSink::create(config).expect("creating the sink");
    for chunk in rows.chunks(ROWS_PER_WRITE as usize) {
        let batch = OutputBatch {
            windows: chunk.to_vec(),
            ..OutputBatch::default()
        };
        sink.write(&batch).expect("writing");
    }
    sink.finish().expect("delivering");
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "sink={name} rows={} seconds={seconds:.3} rows_per_s={:.0}",
        rows.len(),
        rows.len() as f64 / seconds
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: u64 = args.first().map_or(2_000_000, |n| n.parse().expect("rows is a number"));
    let series: Vec<Arc<str>> = (0..SERIES)
        .map(|s| Arc::from(format!("api.request.latency_ms|region=r{}|service=s{s}", s % 7)))
        .collect();
    let rows: Vec<WindowUpdate> = (0..count).map(|i| row(i, &series)).collect();
    encode("json", &rows, |row, out| {
        out.clear();
        serde_json::to_writer(&mut *out, row).expect("encoding JSON");
    });
    encode("avro", &rows, |row, out| encode_framed(row, 1, out));
    if let [_, brokers, topic, registry] = &args[..] {
        let json = format!("brokers = \"{brokers}\"\nwindows_topic = \"{topic}\"\nidempotent = false");
        let json: KafkaSinkConfig = toml::from_str(&json).expect("config");
        let avro = KafkaSinkConfig {
            format: tidemark_sinks::kafka::OutputFormat::Avro,
            schema_registry: Some(registry.clone()),
            ..json.clone()
        };
        deliver("json", &json, &rows);
        deliver("avro", &avro, &rows);
    }
}
