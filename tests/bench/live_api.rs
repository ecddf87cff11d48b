//! Measurements of the HTTP API and the live stream (not a test: it prints numbers).
//!
//! `cargo bench -p tidemark --bench live_api` runs three phases against the release binary:
//!
//! 1. event → WebSocket latency at 100k events/s: a realtime generator with 1-second windows
//!    (configured at 180 000 events/s on average, since the generator follows a daily and weekly
//!    profile; the measured ingest rate is printed); one client subscribed to every metric. A window can close once an event
//!    at or past `window end + allowed lateness` has arrived (event time follows the wall clock),
//!    so the delivery latency of a final window update is `received − (end + lateness)`.
//! 2. the same with 200 concurrent clients (each on one metric; `WS_CLIENTS` sets another
//!    number), held for the whole phase.
//! 3. query latency on live state with 10^5 series: 1.1·10^6 events over 10^5 series fed
//!    through stdin; once reading has stopped, `POST /api/v1/metrics/query` timed over
//!    keep-alive HTTP.
//!
//! `-- stream` or `-- query` runs one part. Bounded: each phase runs a fixed time or request
//! count; children are killed at the end.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

const LATENESS_MS: i64 = 500;
const PHASE: Duration = Duration::from_secs(20);
/// Windows per series in each client's snapshot: a chart's worth, as a dashboard would ask
/// (the default 60 over a whole metric's hundreds of series is megabytes per client, whose
/// parsing would hold up the measuring clients rather than measure the server).
const SNAPSHOT_HISTORY: usize = 10;
/// Time the clients get to connect and read their snapshots before latencies count (the
/// snapshots of 200 clients are hundreds of megabytes of JSON to parse on the same cores).
const WARM_UP: Duration = Duration::from_secs(5);

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

struct Tidemark {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Tidemark {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(config: &str, stdin: bool) -> Tidemark {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.toml");
    let out = dir.path().join("out");
    std::fs::write(
        &path,
        format!(
            "{config}\n[sinks.files]\ndir = {:?}\ncsv = false\n",
            out.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
        .args(["run", "--config"])
        .arg(&path)
        .env("TIDEMARK_LOG", "warn")
        .env("TIDEMARK_HTTP_ADDR", "127.0.0.1:0")
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    while !line.contains("http://") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "tidemark exited");
    }
    std::thread::spawn(move || for _ in reader.lines() {});
    let addr = line[line.find("http://").unwrap() + 7..]
        .split('/')
        .next()
        .unwrap()
        .to_string();
    Tidemark { child, addr, _dir: dir }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn metric(agent: &ureq::Agent, addr: &str, sample: &str) -> f64 {
    let text = agent
        .get(format!("http://{addr}/metrics"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The parts of a server message the clients look at (parsed without building a tree, so the
/// measuring clients stay cheap beside the server on the same cores).
#[derive(serde::Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default, borrow)]
    events: Vec<IncomingEvent<'a>>,
}

#[derive(serde::Deserialize)]
struct IncomingEvent<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    kind: Option<&'a str>,
    window_start: Option<i64>,
    window_ms: Option<i64>,
}

/// One client: subscribes, then records the latency of every final window update.
async fn client(
    addr: String,
    subscribe: Value,
    latencies: Arc<Mutex<Vec<f64>>>,
    measure_from: tokio::time::Instant,
    until: tokio::time::Instant,
) -> bool {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/live"))
        .await
        .unwrap();
    socket.send(Message::text(subscribe.to_string())).await.unwrap();
    let mut local = Vec::new();
    let mut alive = true;
    while tokio::time::Instant::now() < until {
        match tokio::time::timeout_at(until, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let received = now_ms();
                let message: Incoming = serde_json::from_str(&text).unwrap();
                if message.kind != "events" || tokio::time::Instant::now() < measure_from {
                    continue;
                }
                for event in message.events {
                    if let ("window", Some("final"), Some(start), Some(size)) =
                        (event.event_type, event.kind, event.window_start, event.window_ms)
                    {
                        local.push((received - start - size - LATENESS_MS) as f64);
                    }
                }
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                alive = false;
                break;
            }
            _ => {}
        }
    }
    latencies.lock().unwrap().extend(local);
    alive
}

fn latency_phase(addr: &str, clients: usize, metrics: &[String]) -> (Vec<f64>, usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let alive = runtime.block_on(async {
        let measure_from = tokio::time::Instant::now() + WARM_UP;
        let until = measure_from + PHASE;
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                let subscribe = if clients == 1 {
                    json!({"type": "subscribe", "window": "1s", "interval": "1s", "history": SNAPSHOT_HISTORY})
                } else {
                    json!({"type": "subscribe", "metrics": [metrics[i % metrics.len()]], "window": "1s",
                           "interval": "1s", "history": SNAPSHOT_HISTORY})
                };
                tokio::spawn(client(
                    addr.to_string(),
                    subscribe,
                    latencies.clone(),
                    measure_from,
                    until,
                ))
            })
            .collect();
        let mut alive = 0;
        for task in tasks {
            alive += usize::from(task.await.unwrap());
        }
        alive
    });
    let mut all = latencies.lock().unwrap().clone();
    all.sort_by(f64::total_cmp);
    (all, alive)
}

fn report(label: &str, latencies: &[f64]) {
    println!(
        "{label}: {} final window updates; latency ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
        latencies.len(),
        percentile(latencies, 0.5),
        percentile(latencies, 0.9),
        percentile(latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
}

fn stream_phases() {
    let server = start(
        &format!(
            r#"
[source]
type = "generator"
pace = "realtime"
events_per_second = 180000.0
out_of_order_ratio = 0.0

[pipeline]
base = "1s"
rollups = ["5s", "1m"]
allowed_lateness = "{LATENESS_MS}ms"

[server]
max_ws_clients = 1000
rate_limit_per_second = 100000.0
rate_limit_burst = 100000
"#
        ),
        false,
    );
    let http = agent();
    std::thread::sleep(Duration::from_secs(3));
    let events = r#"tidemark_events_in_total{partition="",source="generator"}"#;
    let before = (metric(&http, &server.addr, events), Instant::now());
    let (latencies, _) = latency_phase(&server.addr, 1, &[]);
    let rate = (metric(&http, &server.addr, events) - before.0) / before.1.elapsed().as_secs_f64();
    println!("ingest during phase 1: {rate:.0} events/s (target ≥ 100000)");
    report("phase 1, 1 client, every metric, 1s windows", &latencies);

    let list: Value = serde_json::from_str(
        &http
            .get(format!("http://{}/api/v1/series?limit=1", server.addr))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let metrics: Vec<String> = list["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().into())
        .collect();
    let before = (metric(&http, &server.addr, events), Instant::now());
    let clients: usize = std::env::var("WS_CLIENTS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    let (latencies, alive) = latency_phase(&server.addr, clients, &metrics);
    let rate = (metric(&http, &server.addr, events) - before.0) / before.1.elapsed().as_secs_f64();
    let dropped: f64 = ["send_timeout", "lagged"]
        .iter()
        .map(|r| {
            metric(
                &http,
                &server.addr,
                &format!("tidemark_ws_dropped_total{{reason=\"{r}\"}}"),
            )
        })
        .sum();
    println!("ingest during phase 2: {rate:.0} events/s");
    println!(
        "phase 2: {alive} of {clients} clients connected for the whole {:?}; {dropped} dropped by the server",
        WARM_UP + PHASE
    );
    report(
        &format!("phase 2, {clients} clients, one metric each, 1s windows"),
        &latencies,
    );
}

fn query_phase() {
    const SERIES: usize = 100_000;
    const WINDOWS: i64 = 10;
    let server = start(
        r#"
[source]
type = "stdin"

[server]
max_series = 200000
rate_limit_per_second = 1000000.0
rate_limit_burst = 1000000

[limits]
max_series_per_metric = 200000
max_series = 200000
"#,
        true,
    );
    let mut stdin: &std::process::ChildStdin = server.child.stdin.as_ref().unwrap();
    let start_ms: i64 = 1_732_233_600_000;
    let fed = Instant::now();
    let mut buffer = String::with_capacity(1 << 20);
    for window in 0..=WINDOWS {
        for s in 0..SERIES {
            let metric = if s < 20_000 {
                "bench.big".to_string()
            } else {
                format!("bench.m{}", s % 80)
            };
            let ts = start_ms + window * 60_000 + (s as i64 % 59_000);
            buffer.push_str(&format!(
                "{{\"ts\":{ts},\"metric\":\"{metric}\",\"tags\":{{\"host\":\"h{s}\",\"zone\":\"z{}\"}},\"value\":{}}}\n",
                s % 16,
                (s * 7 + window as usize) % 1000
            ));
            if buffer.len() > 1 << 20 {
                stdin.write_all(buffer.as_bytes()).unwrap();
                buffer.clear();
            }
        }
    }
    stdin.write_all(buffer.as_bytes()).unwrap();
    stdin.flush().unwrap();
    let http = agent();
    let deadline = Instant::now() + Duration::from_secs(600);
    let events = r#"tidemark_events_in_total{partition="",source="stdin"}"#;
    let mut read = (0.0, Instant::now());
    while metric(&http, &server.addr, "tidemark_live_series") < SERIES as f64
        || read.1.elapsed() < Duration::from_secs(3)
    {
        assert!(
            Instant::now() < deadline,
            "the input was never read into 10^5 live series"
        );
        let now = metric(&http, &server.addr, events);
        if now > read.0 {
            read = (now, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "phase 3: {} events over {SERIES} series fed and held live in {:.1}s",
        (WINDOWS + 1) * SERIES as i64,
        fed.elapsed().as_secs_f64()
    );
    let range = json!({"start": start_ms, "end": start_ms + WINDOWS * 60_000});
    let queries = [
        (
            "1 000 series (bench.m7), avg, group_by zone",
            json!({"metric_name": "bench.m7", "aggregation": "avg", "group_by": ["zone"], "time_range": range}),
        ),
        (
            "1 000 series, p95, regex filter",
            json!({"metric_name": "bench.m7", "aggregation": "p95", "filters": [{"tag": "host", "op": "regex", "value": "h2.*"}], "time_range": range}),
        ),
        (
            "20 000 series (bench.big), sum, no grouping",
            json!({"metric_name": "bench.big", "aggregation": "sum", "time_range": range}),
        ),
        (
            "20 000 series (bench.big), avg, group_by zone",
            json!({"metric_name": "bench.big", "aggregation": "avg", "group_by": ["zone"], "time_range": range}),
        ),
    ];
    for (label, body) in queries {
        let text = body.to_string();
        let mut times = Vec::new();
        let mut points = 0;
        for _ in 0..200 {
            let started = Instant::now();
            let answer: Value = serde_json::from_str(
                &http
                    .post(format!("http://{}/api/v1/metrics/query", server.addr))
                    .header("Content-Type", "application/json")
                    .send(&text)
                    .unwrap()
                    .body_mut()
                    .read_to_string()
                    .unwrap(),
            )
            .unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            points = answer["series"]
                .as_array()
                .map_or(0, |s| s.iter().map(|g| g["points"].as_array().unwrap().len()).sum());
        }
        times.sort_by(f64::total_cmp);
        println!(
            "phase 3, query over 10^5 live series: {label}: {points} points; ms p50 {:.2} p95 {:.2} p99 {:.2}",
            percentile(&times, 0.5),
            percentile(&times, 0.95),
            percentile(&times, 0.99)
        );
    }
}

/// `-- stream` or `-- query` runs one part; no argument runs both.
fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if args.is_empty() || args.iter().any(|a| a == "stream") {
        stream_phases();
    }
    if args.is_empty() || args.iter().any(|a| a == "query") {
        query_phase();
    }
}
