//! The Kafka sink: results to output topics, dead letters to a dead-letter topic.
//!
//! Every result is keyed by its series (alerts by their instance's fingerprint), so one series'
//! updates stay in order on one partition, and carries an `upsert-key` header
//! (`series|window_ms|window_start`, plus the field for scores and forecasts; the fingerprint
//! for alerts): consumers keep the last record per upsert key. Delivery is at-least-once — a
//! restart may re-send results the consumer already has — and idempotent in effect, because a
//! repeated record carries the same upsert key and the same values. The producer is idempotent
//! (`enable.idempotence`) where the broker supports it, so retries inside one run do not
//! duplicate. [`Sink::flush`] waits for every delivery report: the sink thread acknowledges
//! results (and so lets sources commit offsets) only after the broker has them.
//!
//! Results are JSON or Avro ([`avro`]): for Avro the sink registers the bundled output schemas
//! in the schema registry at start-up and frames every record in the Confluent wire format with
//! the id the registry gave.

pub mod avro;
mod config;
mod producer;
mod registration;

pub use config::{KafkaSinkConfig, OutputFormat, SubjectNameStrategy};
pub use producer::KafkaSink;

use crate::Sink;
