//! Real receivers for the alert-delivery tests: an HTTP server written here on
//! `std::net::TcpListener` that parses real requests and records them, and access to the real
//! SMTP server (`aiosmtpd`) that `scripts/test` starts, whose Maildir holds what it received.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request the HTTP receiver got.
#[derive(Clone, Debug)]
pub struct Posted {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Posted {
    /// A header's value (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Decides the answer (status, body) to a request.
pub type Responder = Arc<dyn Fn(&Posted) -> (u16, String) + Send + Sync>;

/// Answers every request with 200.
pub fn always_ok() -> Responder {
    Arc::new(|_| (200, "ok".into()))
}

/// An HTTP/1.1 server on 127.0.0.1 recording every request; the port closes on `stop`.
pub struct HttpReceiver {
    port: u16,
    posts: Arc<Mutex<Vec<Posted>>>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A port that was free a moment ago (for a receiver that starts later).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("binding 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

impl HttpReceiver {
    /// Listens on `port` (0: any free port) and answers with `responder`.
    pub fn start(port: u16, responder: Responder) -> HttpReceiver {
        let listener =
            TcpListener::bind(("127.0.0.1", port)).unwrap_or_else(|e| panic!("binding 127.0.0.1:{port}: {e}"));
        let port = listener.local_addr().unwrap().port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (recorded, stop) = (posts.clone(), stopping.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                if let Some(posted) = serve(stream, &responder) {
                    recorded.lock().unwrap().push(posted);
                }
            }
        });
        HttpReceiver {
            port,
            posts,
            stopping,
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests so far, in arrival order.
    pub fn posts(&self) -> Vec<Posted> {
        self.posts.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived, then returns all of them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Posted> {
        wait_until(timeout, &format!("{n} requests at 127.0.0.1:{}", self.port), || {
            self.posts().len() >= n
        });
        self.posts()
    }

    /// Closes the port (connections are refused from now on) and returns what was received.
    pub fn stop(mut self) -> Vec<Posted> {
        self.stopping.store(true, SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.thread.take().unwrap().join().expect("the receiver thread");
        self.posts()
    }
}

/// Reads one request, answers it and closes the connection.
fn serve(stream: TcpStream, responder: &Responder) -> Option<Posted> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut posted = Posted {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if posted
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            posted.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        let length: usize = posted.header("content-length").map_or(Some(0), |v| v.parse().ok())?;
        posted.body = vec![0; length];
        reader.read_exact(&mut posted.body).ok()?;
    }
    let (status, body) = responder(&posted);
    let answer = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        if status < 300 { "OK" } else { "Error" },
        body.len()
    );
    (&stream).write_all(answer.as_bytes()).ok()?;
    Some(posted)
}

/// Polls `done` every 20 ms until it holds, failing the test after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The SMTP server `scripts/test` started: `(host, port, maildir)`, or `None` (after saying
/// why) when the test should be skipped. With `TIDEMARK_REQUIRE_SERVERS=1` a missing server
/// fails the test instead.
pub fn smtp_server() -> Option<(String, u16, PathBuf)> {
    match (
        std::env::var("TIDEMARK_TEST_SMTP"),
        std::env::var("TIDEMARK_TEST_SMTP_DIR"),
    ) {
        (Ok(address), Ok(dir)) => {
            let (host, port) = address.rsplit_once(':').expect("TIDEMARK_TEST_SMTP is HOST:PORT");
            Some((
                host.to_string(),
                port.parse().expect("an SMTP port"),
                PathBuf::from(dir),
            ))
        }
        _ if std::env::var("TIDEMARK_REQUIRE_SERVERS").as_deref() == Ok("1") => panic!(
            "TIDEMARK_TEST_SMTP or TIDEMARK_TEST_SMTP_DIR is not set but TIDEMARK_REQUIRE_SERVERS=1: \
             scripts/test starts the SMTP server"
        ),
        _ => {
            eprintln!("skipping: no SMTP server (run scripts/test, which starts aiosmtpd)");
            None
        }
    }
}

/// A received mail: unfolded headers and the body.
#[derive(Debug)]
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    /// Parses a message as stored in a Maildir (`\n` or `\r\n` line ends).
    fn parse(text: &str) -> Mail {
        let text = text.replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("a continuation line after a header");
                last.1.push(' ');
                last.1.push_str(line.trim());
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
        }
        Mail {
            headers,
            body: body.to_string(),
        }
    }

    /// Every value of a header (names are case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A header that must be there exactly once.
    pub fn header(&self, name: &str) -> &str {
        match self.all(name).as_slice() {
            [value] => value,
            values => panic!("expected one {name} header, found {values:?} in {self:?}"),
        }
    }
}

/// Every mail in `maildir` whose `X-Tidemark-Alert-Id` is `id`.
pub fn mails_with_alert_id(maildir: &Path, id: &str) -> Vec<Mail> {
    let mut mails = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let mail = Mail::parse(&text);
            if mail.all("X-Tidemark-Alert-Id").contains(&id) {
                mails.push(mail);
            }
        }
    }
    mails
}
