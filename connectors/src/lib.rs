//! tidemark's sources and the event decoder.
//!
//! * [`json`]: a strict zero-copy scanner for one JSON object per line;
//! * [`avro`]: Avro messages (schema registry or schema files) turned into JSON events;
//! * [`decode`]: lines to [`Observation`]s according to the metric definitions;
//! * [`lines`]: NDJSON files (split into per-worker byte ranges) and stdin;
//! * [`generator`]: realistic synthetic events of every kind, deterministic with a seed;
//! * [`kafka`]: a Kafka topic, partitions spread over all workers, offsets committed after
//!   the sinks acknowledged;
//! * [`source`]: the configured source, opened once per worker;
//! * [`privacy`]: personal fields hashed (keyed) or dropped before anything leaves the decoder;
//! * [`cardinality`]: the per-metric and per-process series limits.

pub mod avro;
pub mod cardinality;
pub mod decode;
pub mod generator;
pub mod json;
pub mod kafka;
pub mod lines;
pub mod observation;
pub mod privacy;
pub mod source;
pub mod stdin;

pub use decode::{DecodeError, Decoder, IdBuildHasher, TimestampRange};
pub use observation::{Observation, ObservationSink, SeriesInfo, Tracking};
pub use source::{LineSource, Origin, SourceConfig, SourceStatus};
