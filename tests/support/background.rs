//! A `tidemark run` in the background fed through its stdin, for tests that do things to the
//! world (stop a server, `kill -9` the process) while it runs: its HTTP address, its stdout,
//! and plain HTTP GETs to it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// A running `tidemark run --config CONFIG`.
pub struct Background {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Its stdout so far.
    pub stdout: Vec<String>,
    /// `http://127.0.0.1:PORT` of its HTTP server.
    pub url: String,
}

impl Background {
    /// Starts `tidemark run --config config` (its source should be `stdin`) and waits for the
    /// HTTP server's address.
    pub fn start(config: &Path) -> Background {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tidemark"))
            .args(["run", "--config"])
            .arg(config)
            .env("TIDEMARK_LOG", "warn")
            .env("TIDEMARK_HTTP_ADDR", "127.0.0.1:0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning tidemark run");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut run = Background {
            stdin: child.stdin.take(),
            child,
            lines,
            stdout: Vec::new(),
            url: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while run.url.is_empty() {
            let line = run
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("tidemark run did not print its HTTP address within 60 s");
            if let Some(at) = line.find("http://") {
                run.url = line[at..]
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .trim_end_matches('/')
                    .to_string();
            }
            run.stdout.push(line);
        }
        run
    }

    /// Writes input lines to its stdin.
    pub fn feed(&mut self, lines: &[String]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        let mut text = lines.join("\n");
        text.push('\n');
        stdin.write_all(text.as_bytes()).expect("writing to tidemark's stdin");
        stdin.flush().expect("flushing tidemark's stdin");
    }

    /// `GET path`: the status and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut response = agent.get(format!("{}{path}", self.url)).call().expect("GET");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("a text body"))
    }

    /// The value of the Prometheus sample `name` (with its labels, as exposed), if present.
    pub fn metric(&self, sample: &str) -> Option<f64> {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Polls `check` every 100 ms until it returns `Some`, for at most `timeout`.
    pub fn wait_for<T>(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = check() {
                return value;
            }
            assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Closes stdin (the end of the input) and waits for the exit; collects the stdout.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>) {
        self.stdin = None;
        let status = self.child.wait().expect("waiting for tidemark");
        self.stdout.extend(self.lines.iter());
        (status, std::mem::take(&mut self.stdout))
    }

    /// `kill -9`.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping tidemark");
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
