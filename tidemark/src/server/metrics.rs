//! `/metrics`: Prometheus text exposition through the `prometheus` crate.
//!
//! The pipeline counts in plain atomics ([`PipelineStats`]) so the hot path never touches a
//! metrics library; at each scrape those counts are carried into registered counters (by the
//! difference since the last scrape, so they stay monotonic counters). Histograms and gauges
//! owned by the live sink and the WebSocket server are observed where things happen.

use super::time::now_ms;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use tidemark_dataflows::PipelineStats;
use tidemark_schemas::DeadLetterReason;
use tidemark_sinks::live::LiveMetrics;

/// The WebSocket instruments.
#[derive(Clone)]
pub struct WsMetrics {
    /// Connected clients.
    pub clients: IntGauge,
    /// Clients dropped, by reason.
    pub dropped: IntCounterVec,
    /// Events sent to clients.
    pub events_sent: IntCounter,
}

struct Carried {
    events_in: IntCounter,
    bytes_in: IntCounter,
    observations: IntCounter,
    rows: IntCounterVec,
    late_corrections: IntCounter,
    dead_letters: IntCounterVec,
    watermark_delay: prometheus::Gauge,
    last: Vec<u64>,
}

/// The registry and the pipeline counters carried into it.
pub struct Metrics {
    registry: Registry,
    stats: Arc<PipelineStats>,
    lateness_ms: i64,
    carried: Mutex<Carried>,
    /// WebSocket instruments.
    pub ws: WsMetrics,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("valid counter options")
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter options")
}

impl Metrics {
    /// A registry with every tidemark instrument; `source` labels the input counters.
    pub fn new(
        stats: Arc<PipelineStats>,
        live: &LiveMetrics,
        source: &str,
        lateness_ms: i64,
    ) -> prometheus::Result<Self> {
        let registry = Registry::new();
        let events = counter_vec(
            "tidemark_events_in_total",
            "Input lines read (good and bad), per source and partition.",
            &["source", "partition"],
        );
        let bytes = counter_vec(
            "tidemark_input_bytes_total",
            "Input bytes read, per source and partition.",
            &["source", "partition"],
        );
        let carried = Carried {
            events_in: events.with_label_values(&[source, ""]),
            bytes_in: bytes.with_label_values(&[source, ""]),
            observations: counter("tidemark_observations_total", "Observations decoded from input lines."),
            rows: counter_vec("tidemark_window_rows_total", "Window rows emitted, by kind.", &["kind"]),
            late_corrections: counter(
                "tidemark_late_corrections_total",
                "Late observations folded into closed windows.",
            ),
            dead_letters: counter_vec(
                "tidemark_dead_letters_total",
                "Dead-lettered inputs, by reason.",
                &["reason"],
            ),
            watermark_delay: prometheus::Gauge::new(
                "tidemark_watermark_delay_seconds",
                "Wall clock minus the watermark (newest event time minus the allowed lateness).",
            )?,
            last: vec![0; 6 + DeadLetterReason::ALL.len()],
        };
        for reason in DeadLetterReason::ALL {
            carried.dead_letters.with_label_values(&[reason.as_str()]);
        }
        registry.register(Box::new(events))?;
        registry.register(Box::new(bytes))?;
        registry.register(Box::new(carried.observations.clone()))?;
        registry.register(Box::new(carried.rows.clone()))?;
        registry.register(Box::new(carried.late_corrections.clone()))?;
        registry.register(Box::new(carried.dead_letters.clone()))?;
        registry.register(Box::new(carried.watermark_delay.clone()))?;
        live.register(&registry)?;
        let ws = WsMetrics {
            clients: IntGauge::new("tidemark_ws_clients", "Connected WebSocket clients.")?,
            dropped: counter_vec(
                "tidemark_ws_dropped_total",
                "WebSocket clients dropped by the server, by reason.",
                &["reason"],
            ),
            events_sent: counter("tidemark_ws_events_sent_total", "Events sent to WebSocket clients."),
        };
        registry.register(Box::new(ws.clients.clone()))?;
        registry.register(Box::new(ws.dropped.clone()))?;
        registry.register(Box::new(ws.events_sent.clone()))?;
        Ok(Metrics {
            registry,
            stats,
            lateness_ms,
            carried: Mutex::new(carried),
            ws,
        })
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.carry();
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }

    fn carry(&self) {
        let stats = &self.stats;
        let mut carried = self.carried.lock().unwrap_or_else(PoisonError::into_inner);
        let mut now: Vec<u64> = vec![
            stats.lines.load(Relaxed),
            stats.bytes.load(Relaxed),
            stats.observations.load(Relaxed),
            stats.final_rows.load(Relaxed),
            stats.corrected_rows.load(Relaxed),
            stats.late_corrections.load(Relaxed),
        ];
        now.extend(DeadLetterReason::ALL.map(|r| stats.dead_letters(r)));
        let deltas: Vec<u64> = now
            .iter()
            .zip(&carried.last)
            .map(|(n, l)| n.saturating_sub(*l))
            .collect();
        carried.events_in.inc_by(deltas[0]);
        carried.bytes_in.inc_by(deltas[1]);
        carried.observations.inc_by(deltas[2]);
        carried.rows.with_label_values(&["final"]).inc_by(deltas[3]);
        carried.rows.with_label_values(&["correction"]).inc_by(deltas[4]);
        carried.late_corrections.inc_by(deltas[5]);
        for (reason, delta) in DeadLetterReason::ALL.iter().zip(&deltas[6..]) {
            carried
                .dead_letters
                .with_label_values(&[reason.as_str()])
                .inc_by(*delta);
        }
        let newest = stats.max_event_ms.load(Relaxed);
        if newest > 0 {
            let delay_ms = now_ms() - (newest - self.lateness_ms);
            carried.watermark_delay.set(delay_ms as f64 / 1000.0);
        }
        carried.last = now;
    }
}
