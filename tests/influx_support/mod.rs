//! Shared pieces of the tests that need a real InfluxDB: finding the server the test script
//! started, a throwaway database per test, InfluxQL queries, and a second server of a test's
//! own that it can stop and start.
//!
//! Queries use a few lines of HTTP/1.0 over `std::net` rather than a client crate: a 1.0
//! request makes the server answer with a plain body and close the connection, which is all a
//! test needs, and it keeps the tests independent of the sink's own HTTP client.

#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tidemark_sinks::line_protocol::{ANOMALY_MEASUREMENT, FORECAST_MEASUREMENT};

/// The server started by `scripts/test` (`TIDEMARK_TEST_INFLUXDB`). Without it the test is
/// skipped with a message — unless `TIDEMARK_REQUIRE_SERVERS=1`, where it fails.
pub fn server() -> Option<String> {
    match std::env::var("TIDEMARK_TEST_INFLUXDB") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_string()),
        _ => {
            assert!(
                std::env::var("TIDEMARK_REQUIRE_SERVERS").as_deref() != Ok("1"),
                "TIDEMARK_REQUIRE_SERVERS=1 but TIDEMARK_TEST_INFLUXDB is not set: run the tests through scripts/test, \
                 which starts InfluxDB on 127.0.0.1"
            );
            eprintln!("skipped: TIDEMARK_TEST_INFLUXDB is not set (scripts/test starts a server and sets it)");
            None
        }
    }
}

/// Percent-encodes a query-string value.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One HTTP/1.0 request to `base` (`http://host:port`); returns the status and the body.
pub fn http(base: &str, method: &str, path_and_query: &str, body: &[u8]) -> (u16, String) {
    let host = base.strip_prefix("http://").expect("an http:// URL");
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connecting to {base}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path_and_query} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"));
    (status, body.to_string())
}

/// One series of an InfluxQL result.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub tags: BTreeMap<String, String>,
    pub columns: Vec<String>,
    pub values: Vec<Vec<Value>>,
}

impl Series {
    /// The rows as column → value maps.
    pub fn rows(&self) -> Vec<BTreeMap<&str, &Value>> {
        self.values
            .iter()
            .map(|row| self.columns.iter().map(String::as_str).zip(row.iter()).collect())
            .collect()
    }

    /// Whether any value other than the time column is non-null.
    pub fn has_values(&self) -> bool {
        self.values
            .iter()
            .any(|row| row.iter().zip(&self.columns).any(|(v, c)| c != "time" && !v.is_null()))
    }
}

/// A database on a server.
pub struct Influx {
    pub base: String,
    pub db: String,
}

impl Influx {
    /// A new, empty database `tidemark_test_{name}_{pid}` (dropped first if a previous run
    /// left it behind).
    pub fn fresh(base: &str, name: &str) -> Influx {
        let db = format!("tidemark_test_{name}_{}", std::process::id());
        let influx = Influx {
            base: base.to_string(),
            db: db.clone(),
        };
        influx.admin(&format!("DROP DATABASE \"{db}\""));
        influx.admin(&format!("CREATE DATABASE \"{db}\""));
        influx
    }

    /// Runs a statement that changes the server (POST /query).
    pub fn admin(&self, statement: &str) {
        let (status, body) = http(
            &self.base,
            "POST",
            "/query",
            format!("q={}", encode(statement)).as_bytes(),
        );
        assert_eq!(status, 200, "{statement}: {body}");
        assert!(!body.contains("\"error\""), "{statement}: {body}");
    }

    /// Runs an InfluxQL query (timestamps as epoch ms): the series, or the server's error.
    pub fn try_query(&self, query: &str) -> Result<Vec<Series>, String> {
        let path = format!("/query?db={}&epoch=ms&q={}", encode(&self.db), encode(query));
        let (status, body) = http(&self.base, "GET", &path, b"");
        let json: Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if let Some(error) = json.get("error") {
            return Err(format!("HTTP {status}: {error}"));
        }
        let result = &json["results"][0];
        if let Some(error) = result.get("error") {
            return Err(error.as_str().unwrap_or_default().to_string());
        }
        Ok(result["series"]
            .as_array()
            .map(|all| all.iter().map(series).collect())
            .unwrap_or_default())
    }

    /// Runs a query that must succeed.
    pub fn query(&self, query: &str) -> Vec<Series> {
        self.try_query(query).unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// The number of points of a measurement, counted on an integer field every point has.
    pub fn count(&self, measurement: &str, field: &str) -> u64 {
        self.query(&format!("SELECT count(\"{field}\") FROM \"{measurement}\""))
            .first()
            .map_or(0, |s| s.values[0][1].as_u64().expect("a count"))
    }
}

fn series(value: &Value) -> Series {
    Series {
        name: value["name"].as_str().unwrap_or_default().to_string(),
        tags: value["tags"]
            .as_object()
            .map(|tags| {
                tags.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        columns: value["columns"]
            .as_array()
            .map(|c| c.iter().map(|c| c.as_str().unwrap_or_default().to_string()).collect())
            .unwrap_or_default(),
        values: value["values"]
            .as_array()
            .map(|rows| rows.iter().map(|r| r.as_array().cloned().unwrap_or_default()).collect())
            .unwrap_or_default(),
    }
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// A server of the test's own (same package, same script as the shared one), which it can
/// stop and start again on the same port and data directory. Stopped when dropped.
pub struct OwnServer {
    pub dir: PathBuf,
    pub port: u16,
}

impl OwnServer {
    fn script(&self, call: &str) -> bool {
        Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {}/scripts/lib/influxdb.sh && {call}",
                repo_root().display()
            ))
            .status()
            .expect("running bash")
            .success()
    }

    /// Starts a server with its data in `dir`, on a free port. A port found free can be taken
    /// by a test running in parallel before influxd binds it, so a few ports are tried.
    pub fn start(dir: &Path) -> OwnServer {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let server = OwnServer {
                dir: dir.to_path_buf(),
                port,
            };
            if server.script(&format!("influxdb_start {} {port}", dir.display())) {
                return server;
            }
        }
        panic!(
            "starting influxd on any of 5 free ports (is Debian's influxdb package installed? scripts/test installs it)"
        )
    }

    /// Starts it (again).
    pub fn restart(&self) {
        assert!(
            self.script(&format!("influxdb_start {} {}", self.dir.display(), self.port)),
            "starting influxd (is Debian's influxdb package installed? scripts/test installs it)"
        );
    }

    /// Stops it.
    pub fn stop(&self) {
        assert!(self.script(&format!("influxdb_stop {}", self.dir.display())));
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.script(&format!("influxdb_stop {}", self.dir.display()));
    }
}

/// Window sizes by the `window` tag the sink writes.
pub const SIZES: [(&str, i64); 5] = [
    ("1m", 60_000),
    ("5m", 300_000),
    ("15m", 900_000),
    ("1h", 3_600_000),
    ("1d", 86_400_000),
];

/// Every window point of the database, keyed like `windows.ndjson`: (series key, window ms,
/// window start) → the point's fields.
pub fn window_points(db: &Influx) -> BTreeMap<(String, i64, i64), BTreeMap<String, Value>> {
    let mut points = BTreeMap::new();
    let measurements = db.query("SHOW MEASUREMENTS");
    let names: Vec<String> = measurements
        .iter()
        .flat_map(|s| s.values.iter().map(|v| v[0].as_str().unwrap().to_string()))
        .filter(|name| !name.starts_with("tidemark_") && name != ANOMALY_MEASUREMENT && name != FORECAST_MEASUREMENT)
        .collect();
    assert!(!names.is_empty(), "no measurements were written");
    for name in names {
        for series in db.query(&format!("SELECT * FROM \"{name}\" GROUP BY *")) {
            add_points(&mut points, &series);
        }
    }
    points
}

/// Asserts that the window points in InfluxDB (`got`, from [`window_points`]) are exactly the
/// last update of every window in `windows.ndjson` (`expected`, keyed alike), field for field.
pub fn assert_points_are_final_updates(
    got: &BTreeMap<(String, i64, i64), BTreeMap<String, Value>>,
    expected: &BTreeMap<(String, i64, i64), Value>,
) {
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).take(5).collect();
    let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && got.len() == expected.len(),
        "{} points in InfluxDB for {} windows in windows.ndjson; missing {missing:?}, extra {extra:?}",
        got.len(),
        expected.len()
    );
    for (key, row) in expected {
        let point = &got[key];
        for field in ["count", "distinct"] {
            assert_eq!(
                point.get(field).and_then(Value::as_u64),
                row[field].as_u64(),
                "{field} of {key:?}"
            );
        }
        for field in ["sum", "min", "max", "avg", "p50", "p95", "p99"] {
            assert_eq!(
                point.get(field).and_then(Value::as_f64),
                row[field].as_f64(),
                "{field} of {key:?}: a stale value?"
            );
        }
    }
}

fn add_points(points: &mut BTreeMap<(String, i64, i64), BTreeMap<String, Value>>, series: &Series) {
    let mut key = series.name.clone();
    for (k, v) in series.tags.iter().filter(|(k, _)| *k != "window") {
        key.push_str(&format!("|{k}={v}"));
    }
    let label = &series.tags["window"];
    let size = SIZES
        .iter()
        .find(|(l, _)| l == label)
        .unwrap_or_else(|| panic!("window tag {label}"))
        .1;
    for row in series.rows() {
        let time = row["time"].as_i64().unwrap();
        let fields = row
            .into_iter()
            .filter(|(c, v)| *c != "time" && !v.is_null())
            .map(|(c, v)| (c.to_string(), v.clone()))
            .collect();
        assert!(
            points.insert((key.clone(), size, time), fields).is_none(),
            "two points for {key} {label} {time}"
        );
    }
}
