//! How the InfluxDB sink meets a server that fails: a small real HTTP server in the test
//! answers 500/429/503 (retried until written), 400 (the batch is kept with the server's
//! message, the run goes on) and 404 (the run stops, naming the fix). It also checks what the
//! requests look like: the v2 endpoint, the token from the environment, gzip.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tidemark_schemas::{Aggregates, OutputBatch, SeriesId, UpdateKind, WindowUpdate};
use tidemark_sinks::Sink;
use tidemark_sinks::influxdb::{InfluxDbConfig, InfluxDbSink};

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Request {
    target: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    status: u16,
}

type Respond = dyn Fn(&Request) -> (u16, String) + Send + Sync;

/// A minimal HTTP/1.1 server on 127.0.0.1 (keep-alive, Content-Length bodies) that answers
/// with `respond` and records every request.
struct FakeServer {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl FakeServer {
    fn start(respond: impl Fn(&Request) -> (u16, String) + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let respond: Arc<Respond> = Arc::new(respond);
        let (log, stopped) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (log, respond) = (log.clone(), respond.clone());
                        std::thread::spawn(move || serve(stream, &log, &*respond));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeServer { url, requests, stop }
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Request>>, respond: &Respond) {
    stream.set_nonblocking(false).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or_default().to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap();
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
        let length: usize = headers.get("content-length").map_or(0, |l| l.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut request = Request {
            target,
            headers,
            body,
            status: 0,
        };
        let (status, text) = respond(&request);
        request.status = status;
        log.lock().unwrap().push(request);
        let response = format!(
            "HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

fn rows(metric: &str, n: u64) -> OutputBatch {
    OutputBatch {
        windows: (0..n)
            .map(|i| {
                let series = format!("{metric}|host=h{i}");
                WindowUpdate {
                    series_id: SeriesId::of_key(&series),
                    series: Arc::from(series.as_str()),
                    window_ms: 60_000,
                    window_start: 1_732_233_600_000,
                    kind: UpdateKind::Final,
                    aggregates: Aggregates {
                        count: 1,
                        sum: 1.0,
                        min: 1.0,
                        max: 1.0,
                        avg: 1.0,
                        p50: None,
                        p95: None,
                        p99: None,
                        distinct: None,
                    },
                }
            })
            .collect(),
        ..OutputBatch::default()
    }
}

const PARSE_ERROR: &str =
    "partial write: unable to parse 'poison.metric,host=h0 count=1i': invalid field format dropped=0";

/// 500, 429 and 503 are retried until the batch is written; a 400 batch is never retried
/// and lands in the rejected file with the server's message while the sink goes on; every
/// accepted point reaches the server exactly once or the rejected file.
#[test]
fn a_400_batch_is_kept_with_the_message_and_5xx_and_429_are_retried() {
    let failures = Arc::new(Mutex::new(vec![500u16, 429, 503]));
    let server = {
        let failures = failures.clone();
        FakeServer::start(move |request| {
            if String::from_utf8_lossy(&request.body).contains("poison.metric") {
                return (
                    400,
                    format!("{{\"error\":{}}}", serde_json::to_string(PARSE_ERROR).unwrap()),
                );
            }
            match failures.lock().unwrap().pop() {
                Some(status) => (status, "{\"error\":\"timeout\"}".into()),
                None => (204, String::new()),
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let rejected = dir.path().join("rejected.ndjson");
    let config = InfluxDbConfig {
        url: server.url.clone(),
        gzip: false,
        batch_points: 1000,
        flush_interval: Duration::from_millis(10),
        max_in_flight: 1,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        rejected_path: rejected.clone(),
        self_metrics: false,
        ..InfluxDbConfig::default()
    };
    let mut sink = InfluxDbSink::start(&config).unwrap();
    sink.write(&rows("good.first", 50)).unwrap();
    sink.flush().unwrap();
    sink.write(&rows("poison.metric", 30)).unwrap();
    sink.flush().unwrap();
    sink.write(&rows("good.second", 50)).unwrap();
    sink.finish().unwrap();
    let describe = sink.describe();
    assert!(
        describe.contains("3 retries") && describe.contains("30 points refused"),
        "{describe}"
    );

    let requests = server.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 429, 500, 204, 400, 204], "the 400 was sent once");
    let first = &requests[0];
    assert_eq!(first.target, "/write?db=tidemark&precision=ms");
    assert_eq!(first.headers["content-type"], "text/plain; charset=utf-8");
    assert!(!first.headers.contains_key("authorization"));
    let written: Vec<String> = requests
        .iter()
        .filter(|r| r.status == 204)
        .flat_map(|r| {
            String::from_utf8_lossy(&r.body)
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(written.len(), 100, "each good point written once");
    assert_eq!(written.iter().filter(|l| l.starts_with("good.first,")).count(), 50);
    assert_eq!(written.iter().filter(|l| l.starts_with("good.second,")).count(), 50);

    let records: Vec<serde_json::Value> = std::fs::read_to_string(&rejected)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["status"], 400);
    assert_eq!(records[0]["message"], PARSE_ERROR);
    assert_eq!(records[0]["points"], 30);
    let lines = records[0]["lines"].as_str().unwrap();
    assert_eq!(lines.lines().count(), 30);
    assert!(lines.lines().all(|l| l.starts_with("poison.metric,host=h")), "{lines}");
}

/// `tidemark run` with the v2 API: the request goes to /api/v2/write with org, bucket and
/// precision, the token from the environment variable, a gzip body. The server answers 404
/// (no such bucket): the run fails naming the fix, and the batch is kept.
#[test]
fn v2_writes_carry_the_token_from_the_environment_and_a_404_stops_the_run() {
    let server = FakeServer::start(|_| {
        (
            404,
            r#"{"code":"not found","message":"bucket \"metrics\" not found"}"#.into(),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    write_lines(&input, &metric_events(2_000, 4, 0.0, 0.0, 5));
    let rejected = dir.path().join("rejected.ndjson");
    let config = dir.path().join("tidemark.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntype = \"file\"\npath = {input:?}\n\n[sinks.influxdb]\nurl = \"{}\"\napi = \"v2\"\norg = \"acme corp\"\nbucket = \"metrics\"\n\
             token_env = \"TIDEMARK_TEST_TOKEN\"\nrejected_path = {rejected:?}\n",
            server.url
        ),
    )
    .unwrap();

    let missing = tidemark()
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("TIDEMARK_TEST_TOKEN")
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("sinks.influxdb.token_env") && stderr.contains("TIDEMARK_TEST_TOKEN is not set"),
        "{stderr}"
    );
    assert!(server.requests().is_empty());

    let output = tidemark()
        .args(["run", "--config"])
        .arg(&config)
        .env("TIDEMARK_TEST_TOKEN", "s3cret-token")
        .output()
        .unwrap();
    assert!(!output.status.success(), "a 404 must stop the run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HTTP 404") && stderr.contains("create the database"),
        "{stderr}"
    );
    let requests = server.requests();
    let first = &requests[0];
    assert_eq!(
        first.target,
        "/api/v2/write?org=acme%20corp&bucket=metrics&precision=ms"
    );
    assert_eq!(first.headers["authorization"], "Token s3cret-token");
    assert_eq!(first.headers["content-encoding"], "gzip");
    assert_eq!(&first.body[..2], &[0x1f, 0x8b], "a gzip body");
    let record: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&rejected).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(record["status"], 404);
    assert_eq!(record["message"], "bucket \"metrics\" not found");
}
