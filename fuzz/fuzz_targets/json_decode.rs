//! The strict JSON scanner and the event decoder (`tidemark_connectors::Decoder::decode`) on
//! arbitrary bytes, one line per `\n`-separated part, with one decoder reused across the lines
//! as a worker does.
//!
//! Beyond "never panics" (the decoder's documented promise: every unusable line maps to a
//! dead-letter reason), it checks what the dataflow relies on:
//! * an accepted line's observations have finite values and timestamps inside the range, and
//!   every series was announced (with a key whose id is the series id) before it is observed;
//! * a rejected line produced **no** observation — a dead-lettered line must not also be
//!   counted in part;
//! * decoding is a function of the line: decoding it again gives the same outcome and the same
//!   observations, and announces nothing new.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::sync::OnceLock;
use tidemark_connectors::{Decoder, Observation, ObservationSink, SeriesInfo, TimestampRange};
use tidemark_schemas::{MetricDefinition, MetricDefinitions, SeriesId};

/// Built-in definitions plus configured ones that use every feature (conditions of each kind,
/// distinct counts, integer and optional tags), so all decoder paths are reachable.
fn definitions() -> &'static MetricDefinitions {
    static DEFS: OnceLock<MetricDefinitions> = OnceLock::new();
    DEFS.get_or_init(|| {
        let extra: Vec<MetricDefinition> = toml::from_str::<Extra>(EXTRA).expect("valid extra definitions").metrics;
        let mut all: Vec<MetricDefinition> = MetricDefinitions::builtin().iter().cloned().collect();
        all.extend(extra);
        MetricDefinitions::new(all, "metrics").expect("valid definitions")
    })
}

#[derive(serde::Deserialize)]
struct Extra {
    metrics: Vec<MetricDefinition>,
}

const EXTRA: &str = r#"
[[metrics]]
name = "fuzz.checkout.usd"
event = "sale"
value = "amount"
tags = ["seller", "currency"]
when = { field = "currency", equals = "usd" }
aggregations = ["count", "sum", "p95", "distinct"]
distinct = "order_id"

[[metrics]]
name = "fuzz.api.slow"
event = "api_request"
tags = ["service", "status_code"]
when = { field = "latency_ms", at_least = 1000.0 }

[[metrics]]
name = "fuzz.tasks.not_ok"
event = "task_execution"
value = "duration_ms"
tags = ["queue", "error"]
when = { field = "status", not_equals = "success" }
"#;

/// What one line produced.
#[derive(Default, Debug, PartialEq)]
struct Collected {
    announced: Vec<SeriesInfo>,
    observations: Vec<Observation>,
}

impl ObservationSink for Collected {
    fn series(&mut self, info: SeriesInfo) {
        self.announced.push(info);
    }
    fn observation(&mut self, observation: Observation) {
        self.observations.push(observation);
    }
}

fuzz_target!(|data: &[u8]| {
    let range = TimestampRange::default();
    let mut decoder = Decoder::new(definitions(), range);
    let mut known: HashSet<SeriesId> = HashSet::new();
    for line in data.split(|b| *b == b'\n') {
        let mut first = Collected::default();
        let outcome = decoder.decode(line, &mut first);
        match &outcome {
            Ok(()) => {
                for info in &first.announced {
                    assert_eq!(
                        SeriesId::of_key(&info.key),
                        info.series,
                        "announced id is not the key's"
                    );
                    assert!(known.insert(info.series), "series {} announced twice", info.key);
                }
                for o in &first.observations {
                    assert!(o.value.is_finite(), "non-finite value {o:?}");
                    assert!((range.min_ms..range.max_ms).contains(&o.ts), "ts out of range {o:?}");
                    assert!(known.contains(&o.series), "observation of an unannounced series {o:?}");
                }
            }
            Err(e) => {
                assert!(
                    first.observations.is_empty(),
                    "a dead-lettered line ({:?}: {}) also produced {} observation(s)",
                    e.reason,
                    e.detail,
                    first.observations.len()
                );
                assert!(!e.detail.is_empty() && e.detail.len() < 1024, "detail: {:?}", e.detail);
                // Series announced by a rejected line are still known to the decoder.
                known.extend(first.announced.iter().map(|i| i.series));
            }
        }
        let mut again = Collected::default();
        let repeat = decoder.decode(line, &mut again);
        assert_eq!(outcome, repeat, "decoding the same line twice differs");
        assert!(
            again.announced.is_empty(),
            "a second decode announced {:?}",
            again.announced
        );
        assert_eq!(
            first.observations, again.observations,
            "observations differ on a second decode"
        );
    }
});
