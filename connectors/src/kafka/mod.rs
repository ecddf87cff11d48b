//! The Kafka source.
//!
//! Partitions are assigned statically: partition `p` belongs to the worker with global index
//! `p % workers`, across all processes of a timely cluster. Static assignment keeps every
//! partition on exactly one worker for the life of the job, so there is no rebalance in which
//! a partition's events could be counted twice or skipped; the consumer group (`group_id`) is
//! where offsets are stored, so a restart — with any number of workers — resumes from them.
//!
//! Offsets are committed only for events whose results every sink has acknowledged (the
//! dataflow computes which offsets those are; see `docs/delivery.md`), so the source is
//! at-least-once and, because every sink write is an upsert, the results are exactly-once in
//! effect.

mod config;
mod consumer;

pub use config::{KafkaSourceConfig, StartPosition};
pub use consumer::KafkaSource;
