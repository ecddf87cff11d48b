//! Older windows from InfluxDB: what the live store no longer holds.
//!
//! The live store keeps a bounded number of recent windows per series; the InfluxDB sink keeps
//! everything. When a query reaches further back than the live store, the older part is read
//! back with one InfluxQL statement over the v1 `/query` endpoint (InfluxDB 1.x natively, 2.x
//! through its DBRP mapping), with the sink's URL, database or bucket and token, and returns
//! the same per-window aggregates the live store holds, so both parts combine the same way.
//!
//! The statement asks for every series of the metric and window size in the range
//! (`GROUP BY *`), pushing non-empty tag equalities down; other filters, grouping and combining
//! are the caller's, exactly as for live windows. A tag that is empty in tidemark is absent in
//! InfluxDB (line protocol has no empty tag values), so such series come back without it.

use crate::influxdb::{ApiVersion, InfluxDbConfig};
use serde::Deserialize;
use thiserror::Error;
use tidemark_schemas::Aggregates;

/// Reading from InfluxDB failed.
#[derive(Debug, Error)]
pub enum HistoryError {
    /// The token's environment variable is not set.
    #[error("sinks.influxdb.token_env: the variable {0} is not set")]
    Token(String),
    /// No answer, or not a success.
    #[error("InfluxDB query failed: {0}")]
    Request(String),
    /// The answer is an InfluxQL error or not the expected JSON.
    #[error("InfluxDB answered with an error: {0}")]
    Answer(String),
}

/// One series' stored windows.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSeries {
    /// Its tags (without `window`), sorted by key.
    pub tags: Vec<(String, String)>,
    /// `(window start, aggregates)`, oldest first.
    pub rows: Vec<(i64, Aggregates)>,
}

/// A reader of the InfluxDB sink's window measurements.
#[derive(Clone, Debug)]
pub struct History {
    agent: ureq::Agent,
    url: String,
    database: String,
    retention_policy: Option<String>,
    authorization: Option<String>,
}

const FIELDS: [&str; 9] = ["count", "sum", "min", "max", "avg", "p50", "p95", "p99", "distinct"];

impl History {
    /// A reader for the database (v1) or bucket (v2) the sink writes to.
    pub fn new(config: &InfluxDbConfig) -> Result<Self, HistoryError> {
        let authorization = config
            .token_env
            .as_ref()
            .map(|name| std::env::var(name).map_err(|_| HistoryError::Token(name.clone())))
            .transpose()?
            .map(|token| format!("Token {token}"));
        let database = match config.api {
            ApiVersion::V1 => config.database.clone(),
            ApiVersion::V2 => config.bucket.clone().unwrap_or_default(),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(config.timeout))
            .build()
            .into();
        Ok(History {
            agent,
            url: format!("{}/query", config.url.trim_end_matches('/')),
            database,
            retention_policy: config.retention_policy.clone(),
            authorization,
        })
    }

    /// The InfluxQL statement for [`windows`](Self::windows).
    pub fn statement(metric: &str, window: &str, range: (i64, i64), equal: &[(&str, &str)]) -> String {
        let fields: Vec<String> = FIELDS.iter().map(|f| identifier(f)).collect();
        let mut statement = format!(
            "SELECT {} FROM {} WHERE \"window\" = {} AND time >= {}ms AND time < {}ms",
            fields.join(","),
            identifier(metric),
            literal(window),
            range.0,
            range.1
        );
        for (tag, value) in equal
            .iter()
            .filter(|(tag, value)| !value.is_empty() && *tag != "window")
        {
            statement.push_str(&format!(" AND {} = {}", identifier(tag), literal(value)));
        }
        statement.push_str(" GROUP BY *");
        statement
    }

    /// The stored windows of `metric` at size `window` (a label such as `1m`) whose start lies
    /// in `[range.0, range.1)`, for series whose tags equal `equal` (empty values ignored).
    pub fn windows(
        &self,
        metric: &str,
        window: &str,
        range: (i64, i64),
        equal: &[(&str, &str)],
    ) -> Result<Vec<StoredSeries>, HistoryError> {
        let statement = Self::statement(metric, window, range, equal);
        let mut request = self
            .agent
            .get(&self.url)
            .query("db", &self.database)
            .query("epoch", "ms")
            .query("q", &statement);
        if let Some(rp) = &self.retention_policy {
            request = request.query("rp", rp);
        }
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        let mut response = request.call().map_err(|e| HistoryError::Request(e.to_string()))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .map_err(|e| HistoryError::Request(e.to_string()))?;
        if !status.is_success() {
            return Err(HistoryError::Request(format!("HTTP {status}: {}", first_line(&body))));
        }
        parse(&body)
    }
}

fn first_line(body: &str) -> &str {
    body.lines().next().unwrap_or_default()
}

fn identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<StatementResult>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct StatementResult {
    #[serde(default)]
    series: Vec<Series>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    partial: bool,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    tags: std::collections::BTreeMap<String, String>,
    columns: Vec<String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
    #[serde(default)]
    partial: bool,
}

fn parse(body: &str) -> Result<Vec<StoredSeries>, HistoryError> {
    let answer: Answer = serde_json::from_str(body).map_err(|e| HistoryError::Answer(e.to_string()))?;
    if let Some(error) = answer.error {
        return Err(HistoryError::Answer(error));
    }
    let mut out = Vec::new();
    for result in answer.results {
        if let Some(error) = result.error {
            return Err(HistoryError::Answer(error));
        }
        if result.partial || result.series.iter().any(|s| s.partial) {
            return Err(HistoryError::Answer(
                "the answer was truncated (max-row-limit); query a shorter time range".into(),
            ));
        }
        for series in result.series {
            out.push(stored(series)?);
        }
    }
    Ok(out)
}

fn stored(series: Series) -> Result<StoredSeries, HistoryError> {
    let column = |name: &str| series.columns.iter().position(|c| c == name);
    let time = column("time").ok_or_else(|| HistoryError::Answer("no time column".into()))?;
    let at: Vec<Option<usize>> = FIELDS.iter().map(|f| column(f)).collect();
    let mut rows = Vec::with_capacity(series.values.len());
    for values in &series.values {
        let float = |i: usize| at[i].and_then(|c| values.get(c)).and_then(serde_json::Value::as_f64);
        let Some(start) = values.get(time).and_then(serde_json::Value::as_i64) else {
            return Err(HistoryError::Answer("a row without a time".into()));
        };
        let Some(count) = at[0].and_then(|c| values.get(c)).and_then(serde_json::Value::as_u64) else {
            continue;
        };
        let sum = float(1).unwrap_or(f64::NAN);
        rows.push((
            start,
            Aggregates {
                count,
                sum,
                min: float(2).unwrap_or(f64::NAN),
                max: float(3).unwrap_or(f64::NAN),
                avg: float(4).unwrap_or(f64::NAN),
                p50: float(5),
                p95: float(6),
                p99: float(7),
                distinct: at[8].and_then(|c| values.get(c)).and_then(serde_json::Value::as_u64),
            },
        ));
    }
    Ok(StoredSeries {
        tags: series
            .tags
            .into_iter()
            .filter(|(k, v)| k != "window" && !v.is_empty())
            .collect(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_names_and_push_equalities_down() {
        let statement = History::statement("api.lat\"x", "1m", (0, 60_000), &[("host", "a'b"), ("zone", "")]);
        assert_eq!(
            statement,
            "SELECT \"count\",\"sum\",\"min\",\"max\",\"avg\",\"p50\",\"p95\",\"p99\",\"distinct\" \
             FROM \"api.lat\\\"x\" WHERE \"window\" = '1m' AND time >= 0ms AND time < 60000ms \
             AND \"host\" = 'a\\'b' GROUP BY *"
        );
    }

    #[test]
    fn answers_become_series_and_errors_are_errors() {
        let body = r#"{"results":[{"statement_id":0,"series":[
            {"name":"cpu","tags":{"host":"","window":"1m"},"columns":["time","count","sum","min","max","avg","p95"],
             "values":[[120000,1,7,7,7,7,null]]},
            {"name":"cpu","tags":{"host":"a","window":"1m"},"columns":["time","count","sum","min","max","avg","p95"],
             "values":[[60000,2,3,1,2,1.5,1.9]]}]}]}"#;
        let series = parse(body).unwrap();
        assert_eq!(series.len(), 2);
        assert!(series[0].tags.is_empty());
        assert_eq!(series[1].tags, [("host".to_string(), "a".to_string())]);
        let (start, aggregates) = &series[1].rows[0];
        assert_eq!(
            (*start, aggregates.count, aggregates.sum, aggregates.p95),
            (60_000, 2, 3.0, Some(1.9))
        );
        assert!(parse(r#"{"results":[{"statement_id":0}]}"#).unwrap().is_empty());
        let error = parse(r#"{"results":[{"statement_id":0,"error":"database not found: x"}]}"#);
        assert!(error.unwrap_err().to_string().contains("database not found"));
        assert!(parse(r#"{"results":[{"statement_id":0,"partial":true,"series":[]}]}"#).is_err());
    }
}
