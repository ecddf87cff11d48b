//! `[sinks.kafka]`.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Where results go in Kafka.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topic for window results (JSON, one record per window update).
    pub windows_topic: String,
    /// Topic for anomaly scores (optional).
    #[serde(default)]
    pub scores_topic: Option<String>,
    /// Topic for forecasts (optional).
    #[serde(default)]
    pub forecasts_topic: Option<String>,
    /// Topic for dead letters: the original key and bytes, the reason in headers (optional).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Use the idempotent producer (default true; turn off for brokers without it).
    #[serde(default = "yes")]
    pub idempotent: bool,
    /// Extra librdkafka producer properties.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl KafkaSinkConfig {
    /// Checks what serde cannot; the message names the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("sinks.kafka.brokers is empty; set it to host:port of a broker".into());
        }
        let topics = [
            Some(&self.windows_topic),
            self.scores_topic.as_ref(),
            self.forecasts_topic.as_ref(),
            self.dead_letter_topic.as_ref(),
        ];
        for topic in topics.into_iter().flatten() {
            if topic.is_empty()
                || topic.len() > 249
                || !topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(format!(
                    "sinks.kafka: topic name \"{topic}\" is invalid; use 1-249 characters from A-Z a-z 0-9 . _ -"
                ));
            }
        }
        Ok(())
    }
}
