//! Registering the output schemas at start-up, so every record can carry its schema id.

use super::avro::AvroRecord;
use super::config::SubjectNameStrategy;
use crate::SinkError;
use tidemark_connectors::avro::{BUNDLED, SchemaRegistry};

/// Registers the schema of `R` under the subject `strategy` gives for `topic` and returns the id.
///
/// Registration is idempotent in the registry (the same schema under the same subject keeps its
/// id), so every start registers again rather than trusting a remembered id; a registry that
/// holds an incompatible schema under the subject refuses, and the sink does not start.
pub(super) fn register<R: AvroRecord>(
    registry: &mut SchemaRegistry,
    strategy: SubjectNameStrategy,
    topic: &str,
) -> Result<u32, SinkError> {
    let (_, schema) = BUNDLED
        .iter()
        .find(|(name, _)| *name == R::SCHEMA)
        .expect("every output record has a bundled schema");
    let subject = strategy.subject(topic, R::FULLNAME);
    registry.register(&subject, schema).map_err(|e| SinkError::Kafka {
        what: "registering the Avro schemas",
        error: format!("subject {subject}: {e}"),
    })
}
