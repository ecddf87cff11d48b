//! JSON event → Avro message, for `tidemark produce --avro` (and tests).

use super::registry::SchemaRegistry;
use super::schemas::bundled_schemas;
use apache_avro::Schema;
use apache_avro::rabin::Rabin;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use std::collections::HashMap;

/// Encodes JSON events as Avro with the schema of their kind (or one given schema), framed for a
/// registry (Confluent wire format) or as single objects.
pub struct AvroEncoder {
    schemas: HashMap<String, Schema>,
    fixed: Option<Schema>,
    registry: Option<(SchemaRegistry, String)>,
    ids: HashMap<String, u32>,
}

impl AvroEncoder {
    /// An encoder. `schema` overrides the per-kind choice; `registry` is `(client, subject)`.
    pub fn new(schema: Option<Schema>, registry: Option<(SchemaRegistry, String)>) -> Self {
        let schemas = bundled_schemas()
            .into_iter()
            .map(|(name, s)| (name.to_string(), s))
            .collect();
        AvroEncoder {
            schemas,
            fixed: schema,
            registry,
            ids: HashMap::new(),
        }
    }

    /// Encodes one JSON event.
    pub fn encode(&mut self, line: &[u8]) -> Result<Vec<u8>, String> {
        let json: serde_json::Value = serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
        let kind = json
            .get("kind")
            .and_then(|k| k.as_str())
            .filter(|k| *k != "metric")
            .unwrap_or("metric_event");
        let schema = match &self.fixed {
            Some(schema) => schema,
            None => self
                .schemas
                .get(kind)
                .ok_or_else(|| format!("no Avro schema for kind \"{kind}\""))?,
        };
        let value = Value::try_from(json)
            .and_then(|v| v.resolve(schema))
            .map_err(|e| format!("does not fit the schema: {e}"))?;
        let body = GenericDatumWriter::builder(schema)
            .build()
            .and_then(|writer| writer.write_value_to_vec(value))
            .map_err(|e| e.to_string())?;
        let mut message = Vec::with_capacity(body.len() + 10);
        match &mut self.registry {
            Some((registry, subject)) => {
                let canonical = schema.canonical_form();
                let id = match self.ids.get(&canonical) {
                    Some(id) => *id,
                    None => {
                        let id = registry.register(subject, &canonical).map_err(|e| e.to_string())?;
                        self.ids.insert(canonical, id);
                        id
                    }
                };
                message.push(0);
                message.extend_from_slice(&id.to_be_bytes());
            }
            None => {
                message.extend_from_slice(&[0xC3, 0x01]);
                message.extend_from_slice(&schema.fingerprint::<Rabin>().bytes[..8]);
            }
        }
        message.extend_from_slice(&body);
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::{AvroDecoder, AvroFormat};
    use super::*;

    #[test]
    fn single_object_round_trip_through_the_bundled_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let mut encoder = AvroEncoder::new(None, None);
        let mut decoder = AvroDecoder::new(&AvroFormat::Files {
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
        for line in [
            r#"{"ts":1732233600000,"metric":"m","tags":{"a":"b"},"value":1.5}"#,
            r#"{"kind":"sale","ts":1732233600000,"order_id":"o","seller":"s","product":"p","amount":9.5,"currency":"usd","quantity":2}"#,
            r#"{"kind":"security_signal","ts":1732233600000,"signal":"port_scan","severity":"low","score":0.5,"source_ip":null,"user_id":"u"}"#,
        ] {
            let message = encoder.encode(line.as_bytes()).unwrap();
            let mut json = Vec::new();
            decoder.to_json(&message, &mut json).unwrap();
            let back: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let original: serde_json::Value = serde_json::from_str(line).unwrap();
            for (key, value) in original.as_object().unwrap() {
                assert_eq!(&back[key], value, "{key} in {line}");
            }
        }
    }

    #[test]
    fn garbage_and_unknown_fingerprints_are_rejected_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let mut decoder = AvroDecoder::new(&AvroFormat::Files {
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
        let mut out = Vec::new();
        let (reason, _) = decoder.to_json(b"{\"json\": true}", &mut out).unwrap_err();
        assert_eq!(reason, tidemark_schemas::DeadLetterReason::InvalidAvro);
        let (reason, _) = decoder
            .to_json(&[0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0], &mut out)
            .unwrap_err();
        assert_eq!(reason, tidemark_schemas::DeadLetterReason::UnknownSchema);
        let mut encoder = AvroEncoder::new(None, None);
        let mut message = encoder
            .encode(br#"{"ts":1732233600000,"metric":"m","value":1.5}"#)
            .unwrap();
        message.truncate(message.len() - 3);
        let (reason, _) = decoder.to_json(&message, &mut out).unwrap_err();
        assert_eq!(reason, tidemark_schemas::DeadLetterReason::InvalidAvro);
    }
}
