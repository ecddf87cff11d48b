//! Avro message → JSON bytes for the event decoder.

use super::registry::{RegistryError, SchemaRegistry};
use super::schemas::bundled_schemas;
use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;
use tidemark_schemas::DeadLetterReason;

/// How Avro messages identify their writer schema.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AvroFormat {
    /// Confluent wire format (`0x00` + 4-byte big-endian schema id) with a schema registry.
    Registry {
        /// The registry's URL, e.g. `http://127.0.0.1:8081`.
        url: String,
    },
    /// Avro single-object encoding (`0xC3 0x01` + 8-byte CRC-64-AVRO fingerprint) against the
    /// `.avsc` files of a directory (and tidemark's own schemas).
    Files {
        /// Directory of `.avsc` files.
        dir: PathBuf,
    },
}

/// Decodes Avro messages to JSON, resolving each to tidemark's schema of the same record.
pub struct AvroDecoder {
    registry: Option<SchemaRegistry>,
    by_fingerprint: HashMap<[u8; 8], Schema>,
    readers: HashMap<String, Schema>,
}

fn fullname(schema: &Schema) -> Option<String> {
    schema.name().map(|n| n.fullname(None))
}

fn fingerprint(schema: &Schema) -> [u8; 8] {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[..8]);
    out
}

impl AvroDecoder {
    /// A decoder for `format`; reading the schema files may fail.
    pub fn new(format: &AvroFormat) -> std::io::Result<Self> {
        let bundled = bundled_schemas();
        let readers = bundled
            .iter()
            .filter_map(|(_, s)| Some((fullname(s)?, s.clone())))
            .collect();
        let mut by_fingerprint: HashMap<[u8; 8], Schema> =
            bundled.into_iter().map(|(_, s)| (fingerprint(&s), s)).collect();
        let registry = match format {
            AvroFormat::Registry { url } => Some(SchemaRegistry::new(url)),
            AvroFormat::Files { dir } => {
                for entry in std::fs::read_dir(dir)? {
                    let path = entry?.path();
                    if path.extension().is_some_and(|e| e == "avsc") {
                        let text = std::fs::read_to_string(&path)?;
                        let schema = Schema::parse_str(&text)
                            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
                        by_fingerprint.insert(fingerprint(&schema), schema);
                    }
                }
                None
            }
        };
        Ok(AvroDecoder {
            registry,
            by_fingerprint,
            readers,
        })
    }

    /// Decodes `message` and appends it as one JSON object to `out`.
    pub fn to_json(&mut self, message: &[u8], out: &mut Vec<u8>) -> Result<(), (DeadLetterReason, String)> {
        let (writer, body) = match message {
            [0, a, b, c, d, body @ ..] if self.registry.is_some() => {
                let id = u32::from_be_bytes([*a, *b, *c, *d]);
                let registry = self.registry.as_mut().expect("checked above");
                let schema = registry.schema(id).map_err(|e| match e {
                    RegistryError::UnknownId(_) => (DeadLetterReason::UnknownSchema, e.to_string()),
                    other => (DeadLetterReason::InvalidAvro, other.to_string()),
                })?;
                (schema.clone(), body)
            }
            [0xC3, 0x01, rest @ ..] if rest.len() >= 8 => {
                let mut key = [0u8; 8];
                key.copy_from_slice(&rest[..8]);
                let schema = self.by_fingerprint.get(&key).ok_or_else(|| {
                    (
                        DeadLetterReason::UnknownSchema,
                        format!("no schema file has fingerprint {}", hex(&key)),
                    )
                })?;
                (schema.clone(), &rest[8..])
            }
            _ => {
                let expected = if self.registry.is_some() {
                    "0x00 + schema id"
                } else {
                    "0xC3 0x01 + fingerprint"
                };
                return Err((
                    DeadLetterReason::InvalidAvro,
                    format!("not an Avro message: expected {expected}"),
                ));
            }
        };
        let reader = fullname(&writer).and_then(|name| self.readers.get(&name));
        let mut body = body;
        let value = GenericDatumReader::builder(&writer)
            .maybe_reader_schema(reader)
            .build()
            .and_then(|datum| datum.read_value(&mut body))
            .map_err(|e| (DeadLetterReason::InvalidAvro, format!("Avro decoding failed: {e}")))?;
        if !body.is_empty() {
            return Err((
                DeadLetterReason::InvalidAvro,
                format!("{} bytes left after the record", body.len()),
            ));
        }
        let json = serde_json::Value::try_from(unwrap_unions(value)).map_err(|e| {
            (
                DeadLetterReason::NonFinite,
                format!("Avro value not representable: {e}"),
            )
        })?;
        serde_json::to_writer(out, &json).map_err(|e| (DeadLetterReason::InvalidAvro, e.to_string()))
    }
}

/// Avro unions become their branch's value, as JSON producers would write them.
fn unwrap_unions(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => unwrap_unions(*inner),
        Value::Record(fields) => Value::Record(fields.into_iter().map(|(k, v)| (k, unwrap_unions(v))).collect()),
        Value::Map(map) => Value::Map(map.into_iter().map(|(k, v)| (k, unwrap_unions(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(unwrap_unions).collect()),
        other => other,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
