//! The configuration file: TOML, every section typed, unknown keys rejected.
//!
//! ```toml
//! [source]                 # type = "generator" | "file" | "stdin"
//! type = "generator"
//! pace = "realtime"
//!
//! [pipeline]               # windows, lateness, corrections (dataflows::WindowSettings)
//! allowed_lateness = "2s"
//!
//! [runtime]
//! workers = 2
//!
//! [[metrics]]              # extra metric definitions, added to the built-in ones
//! name = "checkout.amount"
//! event = "sale"
//! value = "amount"
//!
//! [sinks.files]
//! dir = "tidemark-out"
//!
//! [server]                 # HTTP API, /ws/live and the live page (server::config)
//! addr = "127.0.0.1:8080"
//! ```
//!
//! Errors name the file, the key and the fix: a typo must stop the start-up, not silently
//! produce nothing.

use crate::server::config::ServerConfig;
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tidemark_connectors::cardinality::SeriesLimits;
use tidemark_connectors::privacy::PrivacyConfig;
use tidemark_connectors::source::GeneratorConfig;
use tidemark_connectors::{SourceConfig, TimestampRange};
use tidemark_dataflows::{AnalyticsSettings, WindowSettings};
use tidemark_schemas::{MetricDefinition, MetricDefinitions};
use tidemark_sinks::alerting::AlertsConfig;
use tidemark_sinks::influxdb::InfluxDbConfig;
use tidemark_sinks::kafka::KafkaSinkConfig;
use tidemark_sinks::notify::NotifyConfig;

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where events come from (default: the generator, in real time).
    #[serde(default = "default_source")]
    pub source: SourceConfig,
    /// Windowing.
    #[serde(default)]
    pub pipeline: WindowSettings,
    /// Threads and limits.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Series limits (the cardinality guard).
    #[serde(default)]
    pub limits: SeriesLimits,
    /// Personal fields hashed or dropped before any sink (on by default).
    #[serde(default)]
    pub privacy: PrivacyConfig,
    /// Whether the built-in metric definitions apply (default true).
    #[serde(default = "yes")]
    pub builtin_metrics: bool,
    /// Extra metric definitions.
    #[serde(default)]
    pub metrics: Vec<MetricDefinition>,
    /// Sinks.
    #[serde(default)]
    pub sinks: SinksConfig,
    /// Anomaly scores and forecasts.
    #[serde(default)]
    pub analytics: AnalyticsSettings,
    /// Alert rules and silences.
    #[serde(default)]
    pub alerts: AlertsConfig,
    /// Where alert notifications go (Slack, webhook, email).
    #[serde(default)]
    pub notify: Option<NotifyConfig>,
    /// The HTTP API, WebSocket stream and live page (`tidemark run` only).
    #[serde(default)]
    pub server: ServerConfig,
}

/// `[runtime]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Worker threads (default 1).
    pub workers: usize,
    /// Longest accepted input line in bytes (default 1 MiB); longer lines are dead-lettered.
    pub max_line_bytes: usize,
    /// Earliest accepted event time, epoch ms (default 2000-01-01).
    pub min_event_time_ms: i64,
    /// Latest accepted event time, epoch ms (default 2100-01-01).
    pub max_event_time_ms: i64,
    /// Timely cluster mode: a file with one `host:port` per line, one line per process.
    pub hostfile: Option<PathBuf>,
    /// This process' index in the hostfile (0-based).
    pub process: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let range = TimestampRange::default();
        RuntimeConfig {
            workers: 1,
            max_line_bytes: 1 << 20,
            min_event_time_ms: range.min_ms,
            max_event_time_ms: range.max_ms,
            hostfile: None,
            process: 0,
        }
    }
}

/// `[sinks]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    /// Local files.
    pub files: Option<FileSinksConfig>,
    /// Kafka output topics.
    pub kafka: Option<KafkaSinkConfig>,
    /// An InfluxDB server.
    pub influxdb: Option<InfluxDbConfig>,
}

/// `[sinks.files]`: what the embedded default writes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSinksConfig {
    /// Directory for every file (default `tidemark-out`).
    pub dir: PathBuf,
    /// Write `windows.ndjson` (every window update).
    pub ndjson: bool,
    /// Write `windows.lp` (InfluxDB line protocol, precision ms).
    pub line_protocol: bool,
    /// Write `windows.csv` (base windows, sorted, at the end of the run).
    pub csv: bool,
    /// Write `dead-letters.ndjson`.
    pub dead_letters: bool,
}

impl Default for FileSinksConfig {
    fn default() -> Self {
        FileSinksConfig {
            dir: PathBuf::from("tidemark-out"),
            ndjson: true,
            line_protocol: true,
            csv: true,
            dead_letters: true,
        }
    }
}

fn yes() -> bool {
    true
}

fn default_source() -> SourceConfig {
    SourceConfig::Generator(GeneratorConfig::default())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: default_source(),
            pipeline: WindowSettings::default(),
            runtime: RuntimeConfig::default(),
            limits: SeriesLimits::default(),
            privacy: PrivacyConfig::default(),
            builtin_metrics: true,
            metrics: Vec::new(),
            server: ServerConfig::default(),
            sinks: SinksConfig {
                files: Some(FileSinksConfig::default()),
                ..SinksConfig::default()
            },
            analytics: AnalyticsSettings::default(),
            alerts: AlertsConfig::default(),
            notify: None,
        }
    }
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
        config
            .validate()
            .with_context(|| format!("config file {}", path.display()))?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<()> {
        self.pipeline.validate()?;
        self.server.validate()?;
        self.definitions()?;
        let runtime = &self.runtime;
        if runtime.workers == 0 || runtime.workers > 1024 {
            bail!(
                "runtime.workers: {} is outside 1..=1024; use the number of cores to give tidemark",
                runtime.workers
            );
        }
        if runtime.max_line_bytes < 1024 || runtime.max_line_bytes > 1 << 30 {
            bail!(
                "runtime.max_line_bytes: {} is outside 1024..=1073741824; the default 1048576 (1 MiB) suits most inputs",
                runtime.max_line_bytes
            );
        }
        if let Some(hostfile) = &runtime.hostfile {
            let hosts = self.cluster_addresses()?;
            if runtime.process >= hosts.len() {
                bail!(
                    "runtime.process: {} is not a line of {} ({} processes); use 0..{}",
                    runtime.process,
                    hostfile.display(),
                    hosts.len(),
                    hosts.len()
                );
            }
        }
        if runtime.min_event_time_ms >= runtime.max_event_time_ms {
            bail!(
                "runtime.min_event_time_ms must be below runtime.max_event_time_ms; widen the range or use the defaults"
            );
        }
        self.limits.validate().map_err(anyhow::Error::msg)?;
        if let Some(influxdb) = &self.sinks.influxdb {
            influxdb.validate()?;
        }
        if let SourceConfig::Generator(generator) = &self.source {
            generator
                .settings(0)
                .validate()
                .map_err(|e| anyhow::anyhow!("source: {e}"))?;
        }
        Ok(())
    }

    /// The effective metric definitions: built-in ones (unless disabled) plus the configured.
    pub fn definitions(&self) -> Result<MetricDefinitions> {
        let mut all = if self.builtin_metrics {
            MetricDefinitions::builtin().iter().cloned().collect()
        } else {
            Vec::new()
        };
        let builtin_count = all.len();
        all.extend(self.metrics.iter().cloned());
        MetricDefinitions::new(all, "metrics").map_err(|mut e| {
            if let Some(index) = e
                .key
                .strip_prefix("metrics[")
                .and_then(|rest| rest.split(']').next()?.parse::<usize>().ok())
            {
                if index >= builtin_count {
                    e.key = e.key.replacen(
                        &format!("metrics[{index}]"),
                        &format!("metrics[{}]", index - builtin_count),
                        1,
                    );
                }
                let clashes = self.builtin_metrics
                    && self
                        .metrics
                        .get(index.saturating_sub(builtin_count))
                        .is_some_and(|user| {
                            MetricDefinitions::builtin()
                                .iter()
                                .any(|builtin| builtin.name == user.name)
                        });
                if clashes {
                    e.fix = "rename yours: it clashes with a built-in metric (or set builtin_metrics = false)".into();
                }
            }
            anyhow::Error::new(e)
        })
    }

    /// The `host:port` of every process of a timely cluster, from `runtime.hostfile`.
    pub fn cluster_addresses(&self) -> Result<Vec<String>> {
        let Some(path) = &self.runtime.hostfile else {
            return Ok(Vec::new());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("runtime.hostfile: reading {}", path.display()))?;
        let hosts: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(String::from)
            .collect();
        if hosts.is_empty() {
            bail!(
                "runtime.hostfile: {} lists no processes; write one host:port per line",
                path.display()
            );
        }
        Ok(hosts)
    }

    /// Accepted event times.
    pub fn timestamps(&self) -> TimestampRange {
        TimestampRange {
            min_ms: self.runtime.min_event_time_ms,
            max_ms: self.runtime.max_event_time_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("tidemark.toml");
        std::fs::write(&path, text)?;
        Config::load(&path)
    }

    #[test]
    fn an_empty_file_is_the_default() {
        let config = parse("").unwrap();
        assert!(matches!(config.source, SourceConfig::Generator(_)));
        assert_eq!(config.runtime.workers, 1);
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let cases = [
            ("[pipeline]\nalowed_lateness = \"2s\"\n", "alowed_lateness"),
            ("[pipeline]\nrollups = [\"5m\", \"7m\"]\n", "pipeline.rollups"),
            ("[runtime]\nworkers = 0\n", "runtime.workers"),
            ("[limits]\nmax_series = 0\n", "limits.max_series"),
            ("[privacy]\naction = \"shred\"\n", "shred"),
            ("[sinks.influxdb]\nbatch_points = 0\n", "sinks.influxdb.batch_points"),
            ("[sinks.influxdb]\ntoken = \"secret\"\n", "unknown field `token`"),
            ("[source]\ntype = \"mqtt\"\n", "mqtt"),
            (
                "[[metrics]]\nname = \"x\"\nevent = \"sale\"\nvalue = \"amout\"\n",
                "metrics[0].value",
            ),
            ("[[metrics]]\nname = \"sales.amount\"\nevent = \"sale\"\n", "built-in"),
            (
                "[source]\ntype = \"generator\"\nout_of_order_ratio = 0.5\n",
                "out_of_order_ratio",
            ),
        ];
        for (text, key) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains("tidemark.toml"), "{err}");
            assert!(err.contains(key), "{text}: {err}");
        }
    }
}
