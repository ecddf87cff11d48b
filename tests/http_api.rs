//! The HTTP API over real HTTP, against a `tidemark run` whose generator runs at full speed:
//! every endpoint answers, answers agree with each other, and every kind of bad request —
//! missing or wrong keys, wrong roles, oversized or malformed bodies, bad parameters, unknown
//! paths and methods, exhausted rate limits — gets a clear 4xx with a JSON error body.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::running::{Running, sha256_hex};

const READ_KEY: &str = "reader-secret-1";
const ADMIN_KEY: &str = "admin-secret-2";

fn config_with_keys(extra: &str) -> String {
    format!(
        r#"
[source]
type = "generator"
pace = "unlimited"
events_per_second = 2000.0

[server]
max_body_bytes = 4096
{extra}

[[server.api_keys]]
name = "reader"
sha256 = "{}"
role = "read"

[[server.api_keys]]
name = "ops"
sha256 = "{}"
role = "admin"
"#,
        sha256_hex(READ_KEY),
        sha256_hex(ADMIN_KEY)
    )
}

fn assert_error(answer: &support::running::Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert!(answer.content_type.starts_with("application/json"), "{answer:?}");
    let body = answer.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.len() > 10), "{body}");
}

#[test]
fn the_api_answers_over_http_while_the_pipeline_runs_at_full_speed() {
    let server = Running::start(&config_with_keys(
        "rate_limit_per_second = 100000.0\nrate_limit_burst = 100000",
    ));
    let key = Some(READ_KEY);

    let health = server.get("/healthz", None);
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    server.wait_for("readiness", Duration::from_secs(60), || {
        let ready = server.get("/readyz", None);
        (ready.status == 200 && ready.json()["ready"] == true).then_some(())
    });
    let latest = server.wait_for("closed windows", Duration::from_secs(90), || {
        let list = server
            .get("/api/v1/series?metric=api.request.latency_ms&window=1m", key)
            .json();
        let latest = list["series"]
            .as_array()?
            .iter()
            .filter_map(|s| s["latest"]["1m"].as_i64())
            .max()?;
        let oldest_window_count = 5;
        (list["total"].as_u64()? > 0 && latest >= 1_732_233_600_000 + oldest_window_count * 60_000).then_some(latest)
    });

    series_discovery(&server, key);
    queries_agree_with_the_export(&server, key, latest);
    alerts_and_silences(&server);
    page_and_openapi(&server);
    prometheus_metrics(&server, key);
    auth_failures(&server);
    body_failures(&server);
    parameter_failures(&server);
    answers_stay_fast_under_load(&server, key, latest);
}

fn series_discovery(server: &Running, key: Option<&str>) {
    let list = server
        .get(
            "/api/v1/series?metric=api.request.latency_ms&tag.region=us&tag_regex.service=c.*",
            key,
        )
        .json();
    let series = list["series"].as_array().unwrap();
    assert!(!series.is_empty(), "{list}");
    for s in series {
        assert_eq!(s["metric"], "api.request.latency_ms");
        assert_eq!(s["tags"]["region"], "us");
        assert!(s["tags"]["service"].as_str().unwrap().starts_with('c'), "{s}");
    }
    assert!(list["metrics"].as_array().unwrap().len() > 5);
    let page = server.get("/api/v1/series?limit=2", key).json();
    assert_eq!(page["series"].as_array().unwrap().len(), 2);
    assert_eq!(page["truncated"], true);
    let header_key = server.raw(
        format!(
            "GET /api/v1/series?limit=1 HTTP/1.1\r\nHost: {}\r\nX-API-Key: {READ_KEY}\r\nConnection: close\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    );
    assert_eq!(header_key.status, 200, "X-API-Key works as well as Authorization");
}

fn query(server: &Running, key: Option<&str>, body: Value) -> Value {
    let answer = server.post("/api/v1/metrics/query", &body.to_string(), key);
    assert_eq!(answer.status, 200, "{body}: {}", answer.body);
    answer.json()
}

fn queries_agree_with_the_export(server: &Running, key: Option<&str>, latest: i64) {
    let (start, end) = (latest - 4 * 60_000, latest + 60_000);
    let range = serde_json::json!({"start": start, "end": end});
    let total = query(
        server,
        key,
        serde_json::json!({"metric_name": "api.request.latency_ms", "aggregation": "count", "time_range": range, "window": "1m"}),
    );
    assert_eq!(total["series"].as_array().unwrap().len(), 1, "no group_by: one group");
    let total_points: BTreeMap<i64, f64> = points(&total["series"][0]);
    assert!(total_points.len() >= 4, "{total}");

    let by_region = query(
        server,
        key,
        serde_json::json!({"metric_name": "api.request.latency_ms", "aggregation": "count", "group_by": ["region"],
                           "time_range": {"start": start.to_string(), "end": end}}),
    );
    let groups = by_region["series"].as_array().unwrap();
    assert!(groups.len() >= 2, "{by_region}");
    let mut summed: BTreeMap<i64, f64> = BTreeMap::new();
    for group in groups {
        assert!(group["group"]["region"].is_string());
        for (ts, v) in points(group) {
            *summed.entry(ts).or_default() += v;
        }
    }
    assert_eq!(summed, total_points, "the groups partition the total");

    let export = server.get(
        &format!("/api/v1/export?format=ndjson&metric=api.request.latency_ms&window=1m&start={start}&end={end}"),
        key,
    );
    assert_eq!(export.status, 200);
    assert!(export.content_type.starts_with("application/x-ndjson"));
    assert_eq!(
        export.header("transfer-encoding"),
        Some("chunked"),
        "the export is streamed"
    );
    let mut exported: BTreeMap<i64, f64> = BTreeMap::new();
    for line in export.body.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        *exported.entry(row["window_start"].as_i64().unwrap()).or_default() += row["count"].as_f64().unwrap();
    }
    for (ts, count) in &total_points {
        assert_eq!(exported.get(ts), Some(count), "export and query agree at {ts}");
    }

    for aggregation in ["avg", "sum", "min", "max", "p95", "p99"] {
        let answer = query(
            server,
            key,
            serde_json::json!({"metric_name": "api.request.latency_ms", "aggregation": aggregation,
                               "filters": [{"tag": "region", "op": "regex", "value": "us|eu"}],
                               "time_range": range}),
        );
        assert_eq!(answer["aggregation"], aggregation);
        assert!(!points(&answer["series"][0]).is_empty(), "{aggregation}: {answer}");
    }

    let csv = server.get(
        &format!("/api/v1/export?format=csv&metric=api.request.latency_ms&window=1m&start={start}&end={end}"),
        key,
    );
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"));
    let mut lines = csv.body.lines();
    assert_eq!(
        lines.next(),
        Some("series,window,window_start,count,sum,min,max,avg,p50,p95,p99,distinct")
    );
    assert_eq!(
        lines.count(),
        export.body.lines().count(),
        "CSV and NDJSON hold the same rows"
    );
}

fn points(group: &Value) -> BTreeMap<i64, f64> {
    group["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["ts"].as_i64().unwrap(), p["value"].as_f64().unwrap()))
        .collect()
}

fn alerts_and_silences(server: &Running) {
    let empty = server.get("/api/v1/alerts", Some(READ_KEY)).json();
    assert_eq!(empty["alerts"], serde_json::json!([]));
    let created = server.post(
        "/api/v1/alerts",
        r#"{"action":"silence","rule":"cpu-high","duration":"1h","comment":"maintenance"}"#,
        Some(ADMIN_KEY),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let silence = created.json()["silence"].clone();
    assert_eq!(silence["created_by"], "ops");
    assert_eq!(silence["matcher"]["rule"], "cpu-high");
    let listed = server.get("/api/v1/alerts", Some(READ_KEY)).json();
    assert_eq!(listed["silences"][0]["id"], silence["id"]);
    let body = format!(r#"{{"action":"unsilence","silence_id":{}}}"#, silence["id"]);
    assert_eq!(server.post("/api/v1/alerts", &body, Some(ADMIN_KEY)).status, 200);
    assert_error(&server.post("/api/v1/alerts", &body, Some(ADMIN_KEY)), 404, "not_found");
    assert_error(
        &server.post(
            "/api/v1/alerts",
            r#"{"action":"silence","duration":"1h"}"#,
            Some(ADMIN_KEY),
        ),
        400,
        "bad_request",
    );
    assert_error(
        &server.post(
            "/api/v1/alerts",
            r#"{"action":"silence","rule":"x","duration":"soon"}"#,
            Some(ADMIN_KEY),
        ),
        400,
        "bad_request",
    );
}

fn page_and_openapi(server: &Running) {
    let page = server.get("/", None);
    assert_eq!(page.status, 200);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("/ws/live") || page.body.contains("app.js"));
    let script = server.get("/assets/app.js", None);
    assert!(script.content_type.starts_with("text/javascript") && script.body.contains("/ws/live"));
    let uplot = server.get("/assets/vendor/uplot/uPlot.iife.min.js", None);
    assert_eq!(uplot.status, 200);
    assert!(
        server
            .get("/assets/vendor/uplot/LICENSE", None)
            .body
            .contains("MIT License")
    );
    assert_error(&server.get("/assets/nothing.js", None), 404, "not_found");
    let spec = server.get("/api/v1/openapi.yaml", None);
    let file = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml")).unwrap();
    assert_eq!(spec.body, file, "the served OpenAPI description is docs/openapi.yaml");
}

fn prometheus_metrics(server: &Running, key: Option<&str>) {
    let scrape = server.get("/metrics", key);
    assert_eq!(scrape.status, 200);
    assert!(
        scrape.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        scrape.content_type
    );
    for family in [
        "tidemark_events_in_total",
        "tidemark_dead_letters_total",
        "tidemark_watermark_delay_seconds",
        "tidemark_window_emit_latency_seconds_bucket",
        "tidemark_sink_write_seconds_bucket",
        "tidemark_ws_clients",
        "tidemark_live_series",
    ] {
        assert!(scrape.body.contains(family), "{family} missing from /metrics");
    }
    let events = r#"tidemark_events_in_total{partition="",source="generator"}"#;
    let before = server.metric(key, events).expect("events counter");
    std::thread::sleep(Duration::from_millis(500));
    let after = server.metric(key, events).unwrap();
    assert!(after > before, "events keep flowing: {before} → {after}");
}

fn auth_failures(server: &Running) {
    assert_error(&server.get("/api/v1/series", None), 401, "unauthorized");
    assert_error(&server.get("/api/v1/series", Some("wrong-key")), 401, "unauthorized");
    assert_error(&server.get("/metrics", None), 401, "unauthorized");
    assert_error(
        &server.post("/api/v1/metrics/query", r#"{"metric_name":"x"}"#, None),
        401,
        "unauthorized",
    );
    assert_error(
        &server.post(
            "/api/v1/alerts",
            r#"{"action":"unsilence","silence_id":"s1"}"#,
            Some(READ_KEY),
        ),
        403,
        "forbidden",
    );
    let ws = server.raw(
        format!(
            "GET /ws/live HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    );
    assert_error(&ws, 401, "unauthorized");
}

fn body_failures(server: &Running) {
    let key = Some(READ_KEY);
    let big = format!(r#"{{"metric_name":"{}"}}"#, "x".repeat(5000));
    assert_error(
        &server.post("/api/v1/metrics/query", &big, key),
        413,
        "payload_too_large",
    );
    let announced = server.raw(
        format!(
            "POST /api/v1/metrics/query HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {READ_KEY}\r\n\
             Content-Type: application/json\r\nContent-Length: 10000000\r\nConnection: close\r\n\r\n{{",
            server.addr
        )
        .as_bytes(),
    );
    assert_error(&announced, 413, "payload_too_large");
    let mut chunked = format!(
        "POST /api/v1/metrics/query HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {READ_KEY}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.addr
    );
    for _ in 0..5 {
        chunked.push_str(&format!("3e8\r\n{}\r\n", " ".repeat(1000)));
    }
    chunked.push_str("0\r\n\r\n");
    assert_error(&server.raw(chunked.as_bytes()), 413, "payload_too_large");
    let cases = [
        (r#"{"metric_name": "#, "malformed_json"),
        ("", "malformed_json"),
        ("not json", "malformed_json"),
        (r#"{"metric_nam": "x"}"#, "bad_request"),
        (r#"{"metric_name": "x", "aggregation": "median"}"#, "bad_request"),
        (r#"{"metric_name": "x", "window": "7m"}"#, "bad_request"),
        (
            r#"{"metric_name": "x", "time_range": {"start": "yesterday"}}"#,
            "bad_request",
        ),
        (
            r#"{"metric_name": "x", "filters": [{"tag": "a", "op": "regex", "value": "("}]}"#,
            "bad_request",
        ),
    ];
    for (body, code) in cases {
        let answer = server.post("/api/v1/metrics/query", body, key);
        assert_error(&answer, 400, code);
    }
    assert_error(
        &server.post("/api/v1/alerts", r#"{"action":"snooze"}"#, Some(ADMIN_KEY)),
        400,
        "bad_request",
    );
}

fn parameter_failures(server: &Running) {
    let key = Some(READ_KEY);
    for path in [
        "/api/v1/series?bogus=1",
        "/api/v1/series?window=7m",
        "/api/v1/series?limit=0",
        "/api/v1/series?limit=1000000",
        "/api/v1/series?tag_regex.host=(",
        "/api/v1/series?start=20&end=10",
        "/api/v1/export",
        "/api/v1/export?format=xml",
        "/api/v1/export?format=csv&start=noon",
    ] {
        assert_error(&server.get(path, key), 400, "bad_request");
    }
    assert_error(&server.get("/api/v1/nothing", key), 404, "not_found");
    assert_error(&server.get("/api/v1/metrics/query", key), 405, "method_not_allowed");
    let delete = server.raw(
        format!(
            "DELETE /api/v1/alerts HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {ADMIN_KEY}\r\nConnection: close\r\n\r\n",
            server.addr
        )
        .as_bytes(),
    );
    assert_error(&delete, 405, "method_not_allowed");
}

fn answers_stay_fast_under_load(server: &Running, key: Option<&str>, latest: i64) {
    let events = r#"tidemark_events_in_total{partition="",source="generator"}"#;
    let before = server.metric(key, events).unwrap();
    let body =
        serde_json::json!({"metric_name": "api.request.latency_ms", "aggregation": "p95", "group_by": ["service"],
                                  "time_range": {"start": latest - 3_600_000, "end": latest + 60_000}})
        .to_string();
    let mut times = Vec::new();
    for _ in 0..40 {
        let started = Instant::now();
        assert_eq!(server.post("/api/v1/metrics/query", &body, key).status, 200);
        assert_eq!(server.get("/api/v1/series?limit=50", key).status, 200);
        times.push(started.elapsed());
    }
    times.sort();
    let after = server.metric(key, events).unwrap();
    eprintln!(
        "query+discovery round trips under full-speed ingest: p50 {:?}, max {:?}; {} events read meanwhile",
        times[times.len() / 2],
        times[times.len() - 1],
        after - before
    );
    assert!(after > before, "the pipeline kept running");
    assert!(times[times.len() * 95 / 100] < Duration::from_secs(2), "{times:?}");
}

#[test]
fn each_key_is_rate_limited_on_its_own() {
    let server = Running::start(
        &config_with_keys("rate_limit_per_second = 0.5\nrate_limit_burst = 3").replace("unlimited", "realtime"),
    );
    for _ in 0..3 {
        assert_eq!(server.get("/api/v1/alerts", Some(READ_KEY)).status, 200);
    }
    let limited = server.get("/api/v1/alerts", Some(READ_KEY));
    assert_error(&limited, 429, "rate_limited");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(
        server.get("/api/v1/alerts", Some(ADMIN_KEY)).status,
        200,
        "another key has its own budget"
    );
    assert_eq!(server.get("/healthz", None).status, 200, "probes are not rate-limited");
}

#[test]
fn without_keys_the_server_is_open_on_loopback_and_says_so() {
    let output = support::tidemark()
        .args(["run", "--duration", "2s", "--out"])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("http://127.0.0.1:") && stdout.contains("open") && stdout.contains("loopback"),
        "{stdout}"
    );
    let refused = support::tidemark()
        .args(["run", "--duration", "1s", "--http-addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("server.addr"));
}
