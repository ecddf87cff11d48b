//! `[sinks.influxdb]`: where to write and how hard to try.
//!
//! ```toml
//! [sinks.influxdb]
//! url = "http://127.0.0.1:8086"
//! api = "v1"                     # "v1": /write (1.x, 2.x via DBRP, 3.x) | "v2": /api/v2/write
//! database = "tidemark"          # v1
//! # retention_policy = "detailed"  # v1, default: the database's default policy
//! # org = "acme"                 # v2
//! # bucket = "tidemark"          # v2
//! # token_env = "INFLUX_TOKEN"   # the variable holding the token (required for v2)
//! batch_points = 5000            # points per request
//! flush_interval = "1s"          # longest a point waits for its batch to fill
//! max_in_flight = 4              # concurrent requests
//! gzip = true
//! timeout = "10s"                # per request
//! initial_backoff = "100ms"      # first retry delay, doubled per attempt, with jitter
//! max_backoff = "30s"
//! rejected_path = "influxdb-rejected.ndjson"   # batches the server refused (HTTP 4xx)
//! # spool_dir = "spool"          # batches kept on disk while the server is down; default:
//!                                # influxdb-spool in [sinks.files] dir, else tidemark-out/influxdb-spool
//! spool_max_bytes = 1073741824   # 1 GiB; when full, the sink stops accepting (backpressure)
//! spool_after = "5s"             # how long a batch is retried in memory before it is spooled
//! self_metrics = true            # tidemark_sink / tidemark_pipeline / tidemark_dead_letters
//! self_metrics_interval = "10s"
//! instance = "tidemark"          # the `instance` tag of the self-metrics
//! ```
//!
//! Secrets never live in the file: `token_env` names an environment variable, read at start-up.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Which write endpoint to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// `POST /write?db=&rp=&precision=ms`: InfluxDB 1.x natively, 2.x through a DBRP mapping,
    /// 3.x through its compatibility API — the one endpoint every version serves.
    #[default]
    V1,
    /// `POST /api/v2/write?org=&bucket=&precision=ms`: InfluxDB 2.x and 3.x.
    V2,
}

/// The typed `[sinks.influxdb]` section.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InfluxDbConfig {
    /// Base URL of the server, e.g. `http://127.0.0.1:8086`.
    pub url: String,
    /// Write endpoint.
    pub api: ApiVersion,
    /// v1: the database.
    pub database: String,
    /// v1: the retention policy (default: the database's default).
    pub retention_policy: Option<String>,
    /// v2: the organisation.
    pub org: Option<String>,
    /// v2: the bucket.
    pub bucket: Option<String>,
    /// Name of the environment variable holding the API token (`Authorization: Token …`).
    pub token_env: Option<String>,
    /// Points per request.
    pub batch_points: usize,
    /// Longest a point waits for its batch to fill before the batch is sent anyway.
    #[serde(with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Compress request bodies.
    pub gzip: bool,
    /// Timeout of one request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Delay before the first retry; doubled per attempt up to `max_backoff`, with jitter.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// Longest delay between retries.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Where batches the server refused are kept (NDJSON, appended).
    pub rejected_path: PathBuf,
    /// The spool's directory: batches the server could not take, replayed in order when it
    /// answers again, and at the next start (default: [`DEFAULT_SPOOL_DIR`], or
    /// `influxdb-spool` in the file sinks' directory — `tidemark run` fills that in).
    pub spool_dir: Option<PathBuf>,
    /// The spool's capacity in bytes; when full, the sink stops accepting results.
    pub spool_max_bytes: u64,
    /// How long a batch is retried in memory before it goes to the spool.
    #[serde(with = "humantime_serde")]
    pub spool_after: Duration,
    /// Write tidemark's own metrics too.
    pub self_metrics: bool,
    /// How often self-metrics are written.
    #[serde(with = "humantime_serde")]
    pub self_metrics_interval: Duration,
    /// The `instance` tag of self-metrics, to tell several tidemark processes apart.
    pub instance: String,
}

impl Default for InfluxDbConfig {
    fn default() -> Self {
        InfluxDbConfig {
            url: "http://127.0.0.1:8086".into(),
            api: ApiVersion::V1,
            database: "tidemark".into(),
            retention_policy: None,
            org: None,
            bucket: None,
            token_env: None,
            batch_points: 5000,
            flush_interval: Duration::from_secs(1),
            max_in_flight: 4,
            gzip: true,
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            rejected_path: PathBuf::from("influxdb-rejected.ndjson"),
            spool_dir: None,
            spool_max_bytes: 1 << 30,
            spool_after: Duration::from_secs(5),
            self_metrics: true,
            self_metrics_interval: Duration::from_secs(10),
            instance: "tidemark".into(),
        }
    }
}

/// A mistake in `[sinks.influxdb]`, naming the key and the fix.
#[derive(Debug, Error, PartialEq)]
#[error("sinks.influxdb.{key}: {problem}; {fix}")]
pub struct InfluxDbConfigError {
    /// The key under `[sinks.influxdb]`.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

/// Where the spool goes when neither `spool_dir` nor a file sinks' directory says.
pub const DEFAULT_SPOOL_DIR: &str = "tidemark-out/influxdb-spool";

/// The spool's smallest capacity: a few batches (a gzipped batch of 5000 points is ~100 KiB).
const MIN_SPOOL_BYTES: u64 = 1 << 20;
/// Its largest: 1 TiB.
const MAX_SPOOL_BYTES: u64 = 1 << 40;

fn problem(key: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> InfluxDbConfigError {
    InfluxDbConfigError {
        key,
        problem: problem.into(),
        fix: fix.into(),
    }
}

fn within(key: &'static str, value: Duration, min: Duration, max: Duration) -> Result<(), InfluxDbConfigError> {
    if value < min || value > max {
        return Err(problem(
            key,
            format!("{} is outside {}..={}", show(value), show(min), show(max)),
            "use a duration such as \"500ms\", \"1s\" or \"30s\"",
        ));
    }
    Ok(())
}

fn show(d: Duration) -> String {
    humantime_serde::re::humantime::format_duration(d).to_string()
}

impl InfluxDbConfig {
    /// Checks what serde cannot, including that the token variable is set.
    pub fn validate(&self) -> Result<(), InfluxDbConfigError> {
        self.validate_url()?;
        match self.api {
            ApiVersion::V1 if self.database.is_empty() => {
                return Err(problem(
                    "database",
                    "is empty",
                    "name the database to write to (on 2.x: the database of a DBRP mapping)",
                ));
            }
            ApiVersion::V1 => {}
            ApiVersion::V2 => {
                for (key, value) in [("org", &self.org), ("bucket", &self.bucket)] {
                    if value.as_deref().is_none_or(str::is_empty) {
                        return Err(problem(
                            key,
                            "is required with api = \"v2\"",
                            format!("set {key}, or use api = \"v1\""),
                        ));
                    }
                }
                if self.token_env.is_none() {
                    return Err(problem(
                        "token_env",
                        "is required with api = \"v2\" (the v2 API always authenticates)",
                        "set token_env = \"INFLUX_TOKEN\" and export the token in that variable",
                    ));
                }
            }
        }
        self.token()?;
        if self.batch_points == 0 || self.batch_points > 100_000 {
            return Err(problem(
                "batch_points",
                format!("{} is outside 1..=100000", self.batch_points),
                "5000 suits most servers (InfluxData recommends 5000-10000 points per request)",
            ));
        }
        if self.max_in_flight == 0 || self.max_in_flight > 64 {
            return Err(problem(
                "max_in_flight",
                format!("{} is outside 1..=64", self.max_in_flight),
                "use a few requests, e.g. 4",
            ));
        }
        within(
            "flush_interval",
            self.flush_interval,
            Duration::from_millis(1),
            Duration::from_secs(3600),
        )?;
        within(
            "timeout",
            self.timeout,
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?;
        within(
            "initial_backoff",
            self.initial_backoff,
            Duration::from_millis(1),
            Duration::from_secs(60),
        )?;
        within(
            "max_backoff",
            self.max_backoff,
            self.initial_backoff,
            Duration::from_secs(3600),
        )?;
        within(
            "self_metrics_interval",
            self.self_metrics_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        if self.instance.is_empty() || self.instance.contains(['\n', '\r', '\\']) {
            return Err(problem(
                "instance",
                "must be non-empty, without newlines or backslashes",
                "use a host or pod name, e.g. \"tidemark-0\"",
            ));
        }
        if self.spool_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(problem(
                "spool_dir",
                "is empty",
                "name a directory on a persistent volume, e.g. \"tidemark-out/influxdb-spool\"",
            ));
        }
        if !(MIN_SPOOL_BYTES..=MAX_SPOOL_BYTES).contains(&self.spool_max_bytes) {
            return Err(problem(
                "spool_max_bytes",
                format!(
                    "{} is outside {MIN_SPOOL_BYTES}..={MAX_SPOOL_BYTES}",
                    self.spool_max_bytes
                ),
                "give the bytes the spool may use on disk, e.g. 1073741824 (1 GiB)",
            ));
        }
        within(
            "spool_after",
            self.spool_after,
            Duration::ZERO,
            Duration::from_secs(3600),
        )?;
        if self.rejected_path.as_os_str().is_empty() {
            return Err(problem(
                "rejected_path",
                "is empty",
                "name a file, e.g. \"influxdb-rejected.ndjson\"",
            ));
        }
        Ok(())
    }

    fn validate_url(&self) -> Result<(), InfluxDbConfigError> {
        let rest = if let Some(rest) = self.url.strip_prefix("http://") {
            rest
        } else if let Some(rest) = self.url.strip_prefix("https://") {
            if !cfg!(feature = "tls") {
                return Err(problem(
                    "url",
                    "https needs TLS support, which this build leaves out",
                    "build with `cargo build --release --features tidemark-sinks/tls`, or use http:// to a local server",
                ));
            }
            rest
        } else {
            return Err(problem(
                "url",
                format!("\"{}\" is not an http:// or https:// URL", self.url),
                "use the server's base URL, e.g. \"http://127.0.0.1:8086\"",
            ));
        };
        if rest.is_empty() || rest.contains(['?', '#', ' ']) {
            return Err(problem(
                "url",
                format!("\"{}\" has no host, or has a query or fragment", self.url),
                "give only scheme, host, port and an optional path prefix; database and bucket have their own keys",
            ));
        }
        Ok(())
    }

    /// The spool's directory.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR))
    }

    /// The token from the environment variable named by `token_env`, if any.
    pub fn token(&self) -> Result<Option<String>, InfluxDbConfigError> {
        let Some(name) = &self.token_env else {
            return Ok(None);
        };
        match std::env::var(name) {
            Ok(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_string())),
            _ => Err(problem(
                "token_env",
                format!("the environment variable {name} is not set or empty"),
                format!("export {name}=<your token> before starting tidemark (tokens never go in the config file)"),
            )),
        }
    }

    /// The write URL without its query (the query is added per request, percent-encoded).
    pub fn write_url(&self) -> String {
        let base = self.url.trim_end_matches('/');
        match self.api {
            ApiVersion::V1 => format!("{base}/write"),
            ApiVersion::V2 => format!("{base}/api/v2/write"),
        }
    }

    /// The query parameters of a write, `precision=ms` included.
    pub fn write_query(&self) -> Vec<(&'static str, String)> {
        let mut query = match self.api {
            ApiVersion::V1 => {
                let mut q = vec![("db", self.database.clone())];
                if let Some(rp) = &self.retention_policy {
                    q.push(("rp", rp.clone()));
                }
                q
            }
            ApiVersion::V2 => vec![
                ("org", self.org.clone().unwrap_or_default()),
                ("bucket", self.bucket.clone().unwrap_or_default()),
            ],
        };
        query.push(("precision", "ms".into()));
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> InfluxDbConfig {
        toml::from_str(text).expect("valid TOML")
    }

    #[test]
    fn defaults_are_valid_and_target_v1() {
        let config = InfluxDbConfig::default();
        config.validate().unwrap();
        assert_eq!(config.write_url(), "http://127.0.0.1:8086/write");
        assert_eq!(
            config.write_query(),
            vec![("db", "tidemark".to_string()), ("precision", "ms".to_string())]
        );
    }

    #[test]
    fn v2_needs_org_bucket_and_a_token_variable() {
        let config = parse("api = \"v2\"\nbucket = \"b\"\n");
        assert_eq!(config.validate().unwrap_err().key, "org");
        let config = parse("api = \"v2\"\norg = \"o\"\nbucket = \"b\"\n");
        assert_eq!(config.validate().unwrap_err().key, "token_env");
        let config = parse("api = \"v2\"\norg = \"o\"\nbucket = \"b\"\ntoken_env = \"TIDEMARK_TEST_UNSET_TOKEN\"\n");
        let err = config.validate().unwrap_err();
        assert!(
            err.to_string().contains("TIDEMARK_TEST_UNSET_TOKEN is not set"),
            "{err}"
        );
        assert_eq!(config.write_url(), "http://127.0.0.1:8086/api/v2/write");
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases = [
            ("url = \"127.0.0.1:8086\"", "url"),
            ("url = \"http://h:8086/?db=x\"", "url"),
            ("batch_points = 0", "batch_points"),
            ("max_in_flight = 1000", "max_in_flight"),
            ("flush_interval = \"0s\"", "flush_interval"),
            ("initial_backoff = \"10s\"\nmax_backoff = \"1s\"", "max_backoff"),
            ("database = \"\"", "database"),
            ("instance = \"\"", "instance"),
            ("spool_dir = \"\"", "spool_dir"),
            ("spool_max_bytes = 1000", "spool_max_bytes"),
            ("spool_after = \"2h\"", "spool_after"),
        ];
        for (text, key) in cases {
            let err = parse(text).validate().unwrap_err();
            assert_eq!(err.key, key, "{text}: {err}");
            assert!(err.to_string().starts_with(&format!("sinks.influxdb.{key}: ")), "{err}");
        }
    }

    #[test]
    fn a_token_in_the_file_is_refused() {
        let err = toml::from_str::<InfluxDbConfig>("token = \"secret\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `token`"), "{err}");
    }
}
