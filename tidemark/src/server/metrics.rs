//! `/metrics`: Prometheus text exposition through the `prometheus` crate.
//!
//! The pipeline counts in plain atomics ([`PipelineStats`]) so the hot path never touches a
//! metrics library; at each scrape those counts are carried into registered counters (by the
//! difference since the last scrape, so they stay monotonic counters). Histograms and gauges
//! owned by the live sink and the WebSocket server are observed where things happen. The
//! InfluxDB sink's delivery state and spool are read from its [`InfluxDbStatus`] at scrape.

use super::time::now_ms;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use tidemark_dataflows::PipelineStats;
use tidemark_schemas::DeadLetterReason;
use tidemark_sinks::influxdb::{DeliveryState, InfluxDbStatus};
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
    events: IntCounterVec,
    source: String,
    partition_dead_letters: IntCounterVec,
    consumer_lag: IntGaugeVec,
    partition_watermark: prometheus::GaugeVec,
    series: IntGauge,
    /// Per partition: events and dead letters carried so far.
    partitions_last: std::collections::BTreeMap<i32, (u64, u64)>,
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
    influxdb: Option<InfluxDbMetrics>,
}

/// The InfluxDB sink's instruments, set from its status at each scrape.
struct InfluxDbMetrics {
    status: InfluxDbStatus,
    state: IntGaugeVec,
    spool_bytes: IntGauge,
    spool_max_bytes: IntGauge,
    spool_batches: IntGauge,
    spooled: IntCounter,
    spooled_points: IntCounter,
    replayed: IntCounter,
    replayed_points: IntCounter,
    points: IntCounter,
    errors: IntCounterVec,
    last: Mutex<Vec<u64>>,
}

impl InfluxDbMetrics {
    fn new(registry: &Registry, status: InfluxDbStatus) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help);
        let metrics = InfluxDbMetrics {
            state: IntGaugeVec::new(
                Opts::new(
                    "tidemark_influxdb_state",
                    "InfluxDB delivery state: 1 for the current one (healthy, retrying, spooling, full).",
                ),
                &["state"],
            )?,
            spool_bytes: gauge("tidemark_influxdb_spool_bytes", "Bytes in the InfluxDB spool.")?,
            spool_max_bytes: gauge("tidemark_influxdb_spool_max_bytes", "Capacity of the InfluxDB spool.")?,
            spool_batches: gauge(
                "tidemark_influxdb_spool_batches",
                "Batches in the InfluxDB spool, waiting for the server.",
            )?,
            spooled: counter(
                "tidemark_influxdb_spooled_batches_total",
                "Batches written to the InfluxDB spool.",
            ),
            spooled_points: counter(
                "tidemark_influxdb_spooled_points_total",
                "Points in the batches written to the InfluxDB spool.",
            ),
            replayed: counter(
                "tidemark_influxdb_replayed_batches_total",
                "Spooled batches written to InfluxDB on replay.",
            ),
            replayed_points: counter(
                "tidemark_influxdb_replayed_points_total",
                "Points in the spooled batches written to InfluxDB on replay.",
            ),
            points: counter(
                "tidemark_influxdb_points_written_total",
                "Points InfluxDB acknowledged (self-metrics included).",
            ),
            errors: counter_vec(
                "tidemark_influxdb_write_errors_total",
                "Failed InfluxDB writes, by class (connection, timeout, throttled, server, refused).",
                &["class"],
            ),
            last: Mutex::new(Vec::new()),
            status,
        };
        registry.register(Box::new(metrics.state.clone()))?;
        registry.register(Box::new(metrics.spool_bytes.clone()))?;
        registry.register(Box::new(metrics.spool_max_bytes.clone()))?;
        registry.register(Box::new(metrics.spool_batches.clone()))?;
        registry.register(Box::new(metrics.spooled.clone()))?;
        registry.register(Box::new(metrics.spooled_points.clone()))?;
        registry.register(Box::new(metrics.replayed.clone()))?;
        registry.register(Box::new(metrics.replayed_points.clone()))?;
        registry.register(Box::new(metrics.points.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        Ok(metrics)
    }

    fn carry(&self) {
        let now = self.status.snapshot();
        for state in DeliveryState::ALL {
            self.state
                .with_label_values(&[state.as_str()])
                .set(i64::from(state == now.state));
        }
        self.spool_bytes.set(now.spool_bytes as i64);
        self.spool_max_bytes.set(now.spool_max_bytes as i64);
        self.spool_batches.set(now.spool_batches as i64);
        let mut totals = vec![
            now.spooled_batches_total,
            now.spooled_points_total,
            now.replayed_batches_total,
            now.replayed_points_total,
            now.points_written_total,
        ];
        totals.extend(now.errors_total.iter().map(|(_, n)| *n));
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.resize(totals.len(), 0);
        let delta = |i: usize| totals[i].saturating_sub(last[i]);
        self.spooled.inc_by(delta(0));
        self.spooled_points.inc_by(delta(1));
        self.replayed.inc_by(delta(2));
        self.replayed_points.inc_by(delta(3));
        self.points.inc_by(delta(4));
        for (i, (class, _)) in now.errors_total.iter().enumerate() {
            self.errors.with_label_values(&[class]).inc_by(delta(5 + i));
        }
        *last = totals;
    }
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
            events: events.clone(),
            source: source.to_owned(),
            partition_dead_letters: counter_vec(
                "tidemark_partition_dead_letters_total",
                "Inputs dead-lettered at the source, per Kafka partition (by reason: tidemark_dead_letters_total).",
                &["source", "partition"],
            ),
            consumer_lag: IntGaugeVec::new(
                Opts::new(
                    "tidemark_kafka_consumer_lag",
                    "Messages in a partition not read yet: the broker's end offset minus the next offset to read.",
                ),
                &["source", "partition"],
            )?,
            partition_watermark: prometheus::GaugeVec::new(
                Opts::new(
                    "tidemark_partition_watermark_seconds",
                    "A partition's own watermark (its newest event time minus the allowed lateness), Unix seconds.",
                ),
                &["source", "partition"],
            )?,
            series: IntGauge::new(
                "tidemark_series",
                "Series admitted by the cardinality guard in this process (lines beyond limits.* are dead-lettered with reason cardinality_limit).",
            )?,
            partitions_last: std::collections::BTreeMap::new(),
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
        registry.register(Box::new(carried.partition_dead_letters.clone()))?;
        registry.register(Box::new(carried.consumer_lag.clone()))?;
        registry.register(Box::new(carried.partition_watermark.clone()))?;
        registry.register(Box::new(carried.series.clone()))?;
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
            influxdb: None,
        })
    }

    /// Exports the InfluxDB sink's delivery state and spool.
    pub fn watch_influxdb(&mut self, status: InfluxDbStatus) -> prometheus::Result<()> {
        self.influxdb = Some(InfluxDbMetrics::new(&self.registry, status)?);
        Ok(())
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.carry();
        if let Some(influxdb) = &self.influxdb {
            influxdb.carry();
        }
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
        let partitions = stats.partitions();
        if partitions.is_empty() {
            carried.events_in.inc_by(deltas[0]);
        }
        carry_partitions(&mut carried, &partitions);
        carried.series.set(stats.series() as i64);
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

/// Per-partition counters and gauges. A partitioned source reports its input per partition
/// only (not also under `partition=""`), so summing `tidemark_events_in_total` never counts twice.
fn carry_partitions(carried: &mut Carried, partitions: &[(i32, tidemark_dataflows::PartitionProgress)]) {
    for (partition, progress) in partitions {
        let label = partition.to_string();
        let labels = [carried.source.as_str(), label.as_str()];
        let (events, dead) = carried.partitions_last.get(partition).copied().unwrap_or_default();
        carried
            .events
            .with_label_values(&labels)
            .inc_by(progress.events.saturating_sub(events));
        carried
            .partition_dead_letters
            .with_label_values(&labels)
            .inc_by(progress.dead_letters.saturating_sub(dead));
        carried.partitions_last.insert(
            *partition,
            (progress.events.max(events), progress.dead_letters.max(dead)),
        );
        if let Some(lag) = progress.lag() {
            carried.consumer_lag.with_label_values(&labels).set(lag as i64);
        }
        if let Some(watermark) = progress.watermark_ms {
            carried
                .partition_watermark
                .with_label_values(&labels)
                .set(watermark as f64 / 1000.0);
        }
    }
}
