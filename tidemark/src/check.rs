//! `tidemark check-config FILE`: load and validate a configuration exactly as `tidemark run`
//! does, open nothing, and print what it would run.
//!
//! Why it exists: the deployment files (`deploy/compose/tidemark.toml`, the Kubernetes
//! ConfigMap) ship configurations that cannot be tried where they are written — there is no
//! broker or InfluxDB at hand in CI or on an operator's laptop. Without this command a wrong
//! key is found by a container that crash-loops. It uses the real loader ([`Config::load`],
//! the same parse and [`Config::validate`] as `run`) and then makes the checks that the
//! sources and sinks otherwise make only when they open (Kafka names and start position,
//! Kafka topic names, alert rules, notification targets, analytics settings), so a file that
//! passes here fails at start-up only for reasons of the environment (a host that does not
//! answer, a token the server refuses).
//!
//! Secrets are never in the file: sections that name an environment variable (`token_env`,
//! `url_env`, …) need it set here as well, exactly as `run` does.

use crate::config::Config;
use crate::shown;
use anyhow::{Result, anyhow, bail};
use clap::Args;
use humantime::format_duration;
use std::path::PathBuf;
use tidemark_connectors::SourceConfig;
use tidemark_connectors::kafka::StartPosition;
use tidemark_dataflows::LatePolicy;
use tidemark_sinks::influxdb::ApiVersion;

/// Arguments of `tidemark check-config`.
#[derive(Args)]
pub struct CheckArgs {
    /// The configuration file (TOML) to check.
    config: PathBuf,
}

/// Runs `tidemark check-config`: prints a summary and succeeds, or fails with the first error.
pub fn check(args: CheckArgs) -> Result<()> {
    let config = Config::load(&args.config)?;
    let file = shown(&args.config);
    let in_file = |e: String| anyhow!("config file {file}: {e}");
    if let SourceConfig::Kafka(kafka) = &config.source {
        kafka.validate().map_err(in_file)?;
    }
    if let Some(kafka) = &config.sinks.kafka {
        kafka.validate().map_err(in_file)?;
    }
    config.alerts.validate().map_err(in_file)?;
    config.analytics.validate().map_err(|e| in_file(e.to_string()))?;
    if let Some(notify) = &config.notify {
        notify.validate().map_err(|e| in_file(e.to_string()))?;
    }
    let sinks = sink_summary(&config);
    if sinks.is_empty() {
        // The same refusal as `tidemark run`: a job that writes nowhere is a mistake.
        bail!("config file {file}: no sinks are configured; add [sinks.files], [sinks.kafka] or [sinks.influxdb]");
    }
    println!("config file {file}: valid");
    for line in summary(&config, &sinks)? {
        println!("{line}");
    }
    Ok(())
}

/// One line per sink `run` would open.
fn sink_summary(config: &Config) -> Vec<String> {
    let mut sinks = Vec::new();
    if let Some(files) = &config.sinks.files {
        let names: Vec<&str> = [
            (files.ndjson, "windows.ndjson"),
            (files.line_protocol, "windows.lp"),
            (files.csv, "windows.csv"),
            (files.dead_letters, "dead-letters.ndjson"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        if !names.is_empty() {
            sinks.push(format!("files {} in {}", names.join(", "), shown(&files.dir)));
        }
    }
    if let Some(influx) = &config.sinks.influxdb {
        let target = match influx.api {
            ApiVersion::V1 => format!(
                "v1 /write db={}{}",
                influx.database,
                influx
                    .retention_policy
                    .as_deref()
                    .map(|rp| format!(" rp={rp}"))
                    .unwrap_or_default()
            ),
            ApiVersion::V2 => format!(
                "v2 /api/v2/write org={} bucket={}",
                influx.org.as_deref().unwrap_or_default(),
                influx.bucket.as_deref().unwrap_or_default()
            ),
        };
        let token = influx
            .token_env
            .as_deref()
            .map_or_else(|| "no token".to_string(), |name| format!("token from ${name}"));
        sinks.push(format!("influxdb {} {target} ({token})", influx.url));
    }
    if let Some(kafka) = &config.sinks.kafka {
        let topics: Vec<&str> = [
            Some(kafka.windows_topic.as_str()),
            kafka.scores_topic.as_deref(),
            kafka.forecasts_topic.as_deref(),
            kafka.dead_letter_topic.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        sinks.push(format!("kafka {} topics {}", kafka.brokers, topics.join(", ")));
    }
    sinks
}

/// What `run` would do, section by section.
fn summary(config: &Config, sinks: &[String]) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let source = match &config.source {
        SourceConfig::Kafka(kafka) => format!(
            "{} (brokers {}, group {}, start {}, {})",
            config.source.name(),
            kafka.brokers,
            kafka.group_id,
            match kafka.start {
                StartPosition::Committed => "committed",
                StartPosition::Earliest => "earliest",
                StartPosition::Latest => "latest",
                StartPosition::Timestamp => "timestamp",
            },
            match &kafka.avro {
                None => "JSON".to_string(),
                Some(format) => format!("Avro {format:?}"),
            }
        ),
        other => other.name(),
    };
    lines.push(format!("source: {source}"));
    let windows = &config.pipeline;
    let rollups: Vec<String> = windows
        .rollups
        .iter()
        .map(|d| format_duration(*d).to_string())
        .collect();
    lines.push(format!(
        "pipeline: base {}, rollups [{}], allowed lateness {}, late policy {}, correction horizon {}",
        format_duration(windows.base),
        rollups.join(", "),
        format_duration(windows.allowed_lateness),
        match windows.late_policy {
            LatePolicy::Correct => "correct",
            LatePolicy::DeadLetter => "dead_letter",
        },
        format_duration(windows.correction_horizon)
    ));
    let processes = config.cluster_addresses()?.len();
    lines.push(if processes == 0 {
        format!("runtime: {} worker(s) in one process", config.runtime.workers)
    } else {
        format!(
            "runtime: {} worker(s) per process, process {} of a {processes}-process timely cluster",
            config.runtime.workers, config.runtime.process
        )
    });
    let definitions = config.definitions()?;
    lines.push(format!(
        "metrics: {} definitions ({} configured, built-in {})",
        definitions.iter().count(),
        config.metrics.len(),
        if config.builtin_metrics { "on" } else { "off" }
    ));
    for sink in sinks {
        lines.push(format!("sink: {sink}"));
    }
    let server = &config.server;
    lines.push(if server.enabled {
        format!(
            "server: http://{} ({})",
            server.addr,
            if server.is_open() {
                "open, loopback only".to_string()
            } else {
                format!("{} API key(s)", server.api_keys.len())
            }
        )
    } else {
        "server: off".into()
    });
    lines.push(format!(
        "analytics: {}; alert rules: {}; notifications: {}",
        if config.analytics.enabled { "on" } else { "off" },
        config.alerts.rules.len(),
        if config.notify.is_some() { "configured" } else { "none" }
    ));
    Ok(lines)
}
