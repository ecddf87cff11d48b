//! Live state for the HTTP API, the WebSocket stream and the live page.
//!
//! [`LiveSink`] is one more sink on the sink thread. It applies every batch to the
//! [`LiveStore`] (recent windows per series, bounded) and appends it to the [`Journal`]
//! (a bounded, sequenced event log the WebSocket clients read at their own pace). The
//! [`AlertBoard`] holds active alerts (from the alert engine's events) and silences. The server
//! reads all of them through one shared [`Live`].
//!
//! The pipeline never waits for a client: the sink takes one short write lock per structure
//! per batch, and a client that cannot keep up loses its place in the journal and is dropped
//! by its connection, not buffered for.

pub mod alerts;
pub mod encoded;
pub mod event;
pub mod frame;
pub mod history;
pub mod index;
pub mod journal;
pub mod metrics;
pub mod sink;
pub mod store;
pub mod timed;

pub use alerts::{Alert, AlertBoard, AlertView, Silence, SilenceError, SilenceMatcher};
pub use encoded::Encoded;
pub use event::{AlertChange, LiveEvent};
pub use frame::{Column, Frame};
pub use history::{History, HistoryError, StoredSeries};
pub use index::{MetricIndex, TagColumn};
pub use journal::{Chunk, Journal, Read};
pub use metrics::LiveMetrics;
pub use sink::LiveSink;
pub use store::{LiveStore, MetricView, SeriesEntry, StoreLimits, StoreView, WindowRing};
pub use timed::Timed;

use crate::Sink;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// How much live state to keep.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSettings {
    /// Store bounds.
    pub store: StoreLimits,
    /// Events the journal retains for slow readers and resuming clients.
    pub replay_events: usize,
}

impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings {
            store: StoreLimits::default(),
            replay_events: 100_000,
        }
    }
}

/// The live state shared by the sink and the server.
#[derive(Debug)]
pub struct Live {
    store: LiveStore,
    journal: Journal,
    alerts: Arc<AlertBoard>,
    metrics: LiveMetrics,
    attached: AtomicBool,
}

impl Live {
    /// Empty live state.
    pub fn new(settings: LiveSettings) -> Arc<Live> {
        Arc::new(Live {
            store: LiveStore::new(settings.store),
            journal: Journal::new(settings.replay_events),
            alerts: Arc::default(),
            metrics: LiveMetrics::default(),
            attached: AtomicBool::new(false),
        })
    }

    /// The sink feeding this state.
    pub fn sink(self: &Arc<Self>) -> LiveSink {
        LiveSink::new(self.clone())
    }

    /// Wraps a sink so its write latency is recorded under its name.
    pub fn timed(&self, sink: Box<dyn Sink>) -> Box<dyn Sink> {
        let histogram = self.metrics.sink_write.with_label_values(&[sink.name()]);
        Box::new(Timed::new(sink, histogram))
    }

    /// Recent windows per series.
    pub fn store(&self) -> &LiveStore {
        &self.store
    }

    /// The event log.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Active alerts and silences.
    pub fn alerts(&self) -> &AlertBoard {
        &self.alerts
    }

    /// The alert board, shared with the alert engine's stage so API silences mute deliveries.
    pub fn alert_board(&self) -> Arc<AlertBoard> {
        self.alerts.clone()
    }

    /// The sink-side instruments.
    pub fn metrics(&self) -> &LiveMetrics {
        &self.metrics
    }

    /// Whether the live sink is attached to a running sink thread (it detaches when the
    /// pipeline ends or a sink fails).
    pub fn is_attached(&self) -> bool {
        self.attached.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_schemas::{
        Aggregates, AlertEvent, AlertState, OutputBatch, SeriesId, Severity, UpdateKind, WindowUpdate,
    };

    #[test]
    fn the_sink_feeds_store_and_journal_and_reports_attachment() {
        let live = Live::new(LiveSettings::default());
        assert!(!live.is_attached());
        let mut sink = live.timed(Box::new(live.sink()));
        assert!(live.is_attached());
        let row = WindowUpdate {
            series: "cpu|host=a".into(),
            series_id: SeriesId::of_key("cpu|host=a"),
            window_ms: 60_000,
            window_start: 0,
            kind: UpdateKind::Final,
            aggregates: Aggregates {
                count: 1,
                sum: 2.0,
                min: 2.0,
                max: 2.0,
                avg: 2.0,
                p50: None,
                p95: None,
                p99: None,
                distinct: None,
            },
        };
        let alert = AlertEvent {
            id: "cpu-high:host=a:firing:0".into(),
            fingerprint: "cpu-high:host=a".into(),
            rule: "cpu-high".into(),
            severity: Severity::Critical,
            state: AlertState::Firing,
            labels: [("host".to_string(), "a".to_string())].into(),
            series: vec!["cpu|host=a".into()],
            summary: "cpu 2 > 1".into(),
            value: 2.0,
            threshold: Some(1.0),
            started_at_ms: 0,
            ended_at_ms: None,
        };
        sink.write(&OutputBatch {
            windows: vec![row],
            alerts: vec![alert],
            ..OutputBatch::default()
        })
        .unwrap();
        assert_eq!(sink.written(), 2);
        assert_eq!(live.store().read().len(), 1);
        assert_eq!(live.journal().end(), 2, "the window and the alert are published");
        assert_eq!(live.alerts().active(0)[0].alert.id, "cpu-high:host=a");
        assert_eq!(live.metrics().emit_latency.get_sample_count(), 1);
        assert_eq!(
            live.metrics()
                .sink_write
                .with_label_values(&["live"])
                .get_sample_count(),
            1
        );
        drop(sink);
        assert!(!live.is_attached());
    }
}
