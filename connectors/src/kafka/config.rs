//! `[source]` with `type = "kafka"`.

use crate::avro::AvroFormat;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where a partition starts when the job starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The group's committed offset; the earliest offset where there is none.
    #[default]
    Committed,
    /// The earliest retained offset.
    Earliest,
    /// Only messages produced after the start.
    Latest,
    /// The first offset at or after `start_timestamp_ms`.
    Timestamp,
}

/// The Kafka source's configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The topic to read.
    pub topic: String,
    /// Consumer group that stores the committed offsets (default `tidemark`).
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Where to start (default `committed`).
    #[serde(default)]
    pub start: StartPosition,
    /// With `start = "timestamp"`: epoch ms to start from.
    #[serde(default)]
    pub start_timestamp_ms: Option<i64>,
    /// A partition without messages for this long stops holding back the watermark (default 10s).
    #[serde(default = "default_idle", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Also keep each partition's settled mark (see docs/delivery.md) in files here, for brokers
    /// that drop commit metadata (tansu does; Apache Kafka keeps it).
    #[serde(default)]
    pub state_dir: Option<std::path::PathBuf>,
    /// Messages are Avro (registry or schema files) rather than JSON.
    #[serde(default)]
    pub avro: Option<AvroFormat>,
    /// Extra librdkafka consumer properties (e.g. `"session.timeout.ms" = "6000"`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

fn default_group() -> String {
    "tidemark".into()
}

fn default_idle() -> Duration {
    Duration::from_secs(10)
}

impl KafkaSourceConfig {
    /// Checks what serde cannot; the message names the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("source.brokers is empty; set it to host:port of a broker, e.g. \"127.0.0.1:9092\"".into());
        }
        if self.topic.trim().is_empty() {
            return Err("source.topic is empty; name the topic to read".into());
        }
        match (self.start, self.start_timestamp_ms) {
            (StartPosition::Timestamp, None) => {
                Err("source.start_timestamp_ms is missing; start = \"timestamp\" needs the epoch ms to start from".into())
            }
            (StartPosition::Timestamp, Some(_)) | (_, None) => Ok(()),
            (_, Some(_)) => Err("source.start_timestamp_ms is set but source.start is not \"timestamp\"; set start = \"timestamp\" or remove it".into()),
        }
    }
}
