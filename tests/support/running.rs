//! A `tidemark run` in the background with its HTTP server on a free loopback port, and a
//! small HTTP client for talking to it as any client would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A running `tidemark run`; killed when dropped.
pub struct Running {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// Holds the config and the output files.
    pub dir: tempfile::TempDir,
    _stdout: Receiver<String>,
    agent: ureq::Agent,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Running {
    /// Starts `tidemark run` with `config` (TOML; a `[sinks.files]` section pointing into
    /// the temporary directory is added) and waits until the server is up.
    pub fn start(config: &str) -> Running {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = dir.path().join("out");
        let text = format!("{config}\n[sinks.files]\ndir = {:?}\n", out.display().to_string());
        let path = dir.path().join("tidemark.toml");
        std::fs::write(&path, text).expect("writing the config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .args(["run", "--config"])
            .arg(&path)
            .env("TIDEMARK_LOG", "warn")
            .env("TIDEMARK_HTTP_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning tidemark run");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, received) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = received
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("tidemark run did not print its URL within 60 s"));
            if let Some(at) = line.find("http://") {
                let url = line[at..].split_whitespace().next().unwrap().trim_end_matches('/');
                break url.to_string();
            }
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Running {
            child,
            addr: url.trim_start_matches("http://").to_string(),
            url,
            dir,
            _stdout: received,
            agent,
        }
    }

    /// `GET path` with an optional API key.
    pub fn get(&self, path: &str, key: Option<&str>) -> Answer {
        let mut request = self.agent.get(format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        answer(request.call().unwrap_or_else(|e| panic!("GET {path}: {e}")))
    }

    /// `POST path` with a body, sent as JSON.
    pub fn post(&self, path: &str, body: &str, key: Option<&str>) -> Answer {
        let mut request = self
            .agent
            .post(format!("{}{path}", self.url))
            .header("Content-Type", "application/json");
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        answer(request.send(body).unwrap_or_else(|e| panic!("POST {path}: {e}")))
    }

    /// Sends raw bytes on a fresh connection and reads the status line and body.
    pub fn raw(&self, request: &[u8]) -> Answer {
        let mut stream = TcpStream::connect(&self.addr).expect("connecting");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = stream.write_all(request);
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {text:?}"));
        let headers: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let content_type = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        Answer {
            status,
            content_type,
            headers,
            body: body.to_string(),
        }
    }

    /// Polls `check` until it returns `Some`, failing after `timeout` (see [`super::wait_for`]).
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
        super::wait_for(what, timeout, check)
    }

    /// The value of a Prometheus sample (`name{labels}` exactly as exposed, or a bare name).
    pub fn metric(&self, key: Option<&str>, sample: &str) -> Option<f64> {
        let text = self.get("/metrics", key).body;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn answer(mut response: ureq::http::Response<ureq::Body>) -> Answer {
    let status = response.status().as_u16();
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_string()
        .expect("reading the body");
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

/// The wall clock in epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The hex SHA-256 of a key, as `[[server.api_keys]]` stores it (via `sha256sum`, so the
/// test does not share the server's hashing code).
pub fn sha256_hex(key: &str) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(key.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout).unwrap()[..64].to_string()
}
