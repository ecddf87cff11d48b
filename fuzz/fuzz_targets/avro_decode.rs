//! The Avro decoder (`tidemark_connectors::avro::AvroDecoder::to_json`) with the schema-files
//! format (single-object encoding: `0xC3 0x01`, an 8-byte CRC-64-AVRO fingerprint, the body),
//! then the JSON it produced through the event decoder, as the Kafka source does.
//!
//! Reaching the body decoder needs a known fingerprint, which a fuzzer would take long to
//! guess, so an input whose first byte has the high bit set is "schema selector + body": the
//! target frames the body with the fingerprint of the selected bundled schema (the writer
//! schema) itself. Other inputs are passed as they are, which covers the framing checks.
//!
//! Checked: no panic and no unbounded allocation (libFuzzer's malloc limit); a message either
//! becomes exactly one JSON object on one line (NDJSON) that `serde_json` reads back, or a
//! dead-letter reason with a detail; and the JSON decoder accepts or rejects that object
//! without panicking.
#![no_main]

use apache_avro::rabin::Rabin;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::OnceLock;
use tidemark_connectors::avro::{AvroDecoder, AvroFormat, bundled_schemas};
use tidemark_connectors::{Decoder, Observation, ObservationSink, SeriesInfo, TimestampRange};
use tidemark_schemas::MetricDefinitions;

/// The single-object header of every bundled schema.
fn headers() -> &'static Vec<Vec<u8>> {
    static HEADERS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    HEADERS.get_or_init(|| {
        bundled_schemas()
            .into_iter()
            .map(|(_, schema)| {
                let mut header = vec![0xC3, 0x01];
                header.extend_from_slice(&schema.fingerprint::<Rabin>().bytes[..8]);
                header
            })
            .collect()
    })
}

thread_local! {
    /// The schema-files decoder over the repository's `schemas/avro/` (what a deployment
    /// points `avro = { files = { dir = … } }` at), built once: reading schemas is slow.
    static AVRO: RefCell<AvroDecoder> = RefCell::new(
        AvroDecoder::new(&AvroFormat::Files {
            dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/avro")),
        })
        .expect("the bundled schema files load"),
    );
    static JSON: RefCell<Decoder> =
        RefCell::new(Decoder::new(&MetricDefinitions::builtin(), TimestampRange::default()));
}

struct Discard;

impl ObservationSink for Discard {
    fn series(&mut self, _: SeriesInfo) {}
    fn observation(&mut self, o: Observation) {
        assert!(o.value.is_finite(), "non-finite value from Avro {o:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let message = match data {
        [selector, body @ ..] if selector & 0x80 != 0 => {
            let headers = headers();
            let mut framed = headers[usize::from(selector & 0x7f) % headers.len()].clone();
            framed.extend_from_slice(body);
            framed
        }
        _ => data.to_vec(),
    };
    let mut json = Vec::new();
    let outcome = AVRO.with(|avro| avro.borrow_mut().to_json(&message, &mut json));
    match outcome {
        Ok(()) => {
            assert!(!json.contains(&b'\n'), "decoded JSON spans lines");
            let value: serde_json::Value = serde_json::from_slice(&json).expect("decoded Avro is valid JSON");
            assert!(value.is_object(), "decoded Avro is not an object: {value}");
            JSON.with(|decoder| {
                let _ = decoder.borrow_mut().decode(&json, &mut Discard);
            });
        }
        Err((_, detail)) => assert!(!detail.is_empty(), "a dead letter without detail"),
    }
});
