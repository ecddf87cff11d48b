//! The Kafka sink: results to output topics, dead letters to a dead-letter topic.
//!
//! Every record is keyed by its series, so one series' updates stay in order on one partition,
//! and carries an `upsert-key` header (`series|window_ms|window_start`, plus the field for
//! forecasts): consumers keep the last record per upsert key. Delivery is at-least-once — a
//! restart may re-send results the consumer already has — and idempotent in effect, because a
//! repeated record carries the same upsert key and the same values. The producer is idempotent
//! (`enable.idempotence`) where the broker supports it, so retries inside one run do not
//! duplicate. [`Sink::flush`] waits for every delivery report: the sink thread acknowledges
//! results (and so lets sources commit offsets) only after the broker has them.

mod config;
mod producer;

pub use config::KafkaSinkConfig;
pub use producer::KafkaSink;

use crate::Sink;
