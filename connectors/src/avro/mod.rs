//! Avro input: the Confluent wire format through a schema registry, or single-object encoding
//! against `.avsc` files (no registry).
//!
//! An Avro message is decoded with its *writer* schema (from the registry by id, or from the
//! schema files by fingerprint) and resolved to tidemark's *reader* schema of the same record
//! (`schemas/avro/*.avsc`, built into the binary), which is what lets producers evolve their
//! schemas compatibly: fields added with defaults, fields tidemark does not read, reordering.
//! The resolved record is handed to the JSON decoder as JSON, so Avro and JSON events share one
//! set of validations and dead-letter reasons.
//!
//! The same bundled files hold the output records' schemas, which the Kafka sink registers for
//! its Avro output ([`BUNDLED`]).

mod decode;
mod encode;
mod registry;
mod schemas;

pub use decode::{AvroDecoder, AvroFormat};
pub use encode::AvroEncoder;
pub use registry::{RegistryError, SchemaRegistry};
pub use schemas::{BUNDLED, bundled_schemas};
