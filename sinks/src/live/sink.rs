//! The live sink: applies each batch to the live store and appends it to the journal.
//!
//! It runs on the sink thread like every other sink, and never waits for a client: the store
//! and the journal each take one short write lock per batch, and subscribers read the journal
//! on their own tasks.

use super::Live;
use super::alerts::Alert;
use super::event::{AlertChange, LiveEvent};
use crate::{Sink, SinkError};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};
use tidemark_schemas::{OutputBatch, UpdateKind};

/// Feeds the live store and stream.
pub struct LiveSink {
    live: Arc<Live>,
    written: u64,
}

impl LiveSink {
    pub(super) fn new(live: Arc<Live>) -> Self {
        live.attached.store(true, Relaxed);
        LiveSink { live, written: 0 }
    }
}

impl Drop for LiveSink {
    fn drop(&mut self) {
        self.live.attached.store(false, Relaxed);
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Sink for LiveSink {
    fn name(&self) -> &'static str {
        "live"
    }

    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError> {
        let rows = batch.windows.len() + batch.scores.len() + batch.forecasts.len() + batch.alerts.len();
        if rows == 0 {
            return Ok(());
        }
        let metrics = &self.live.metrics;
        let now = now_ms();
        for row in batch.windows.iter().filter(|r| r.kind == UpdateKind::Final) {
            let end = row.window_start + row.window_ms as i64;
            metrics.emit_latency.observe((now - end).max(0) as f64 / 1000.0);
        }
        let applied = self.live.store.apply(batch);
        self.live.alerts.apply(&batch.alerts);
        metrics.series.set(applied.series as i64);
        metrics.series_rejected.inc_by(applied.rejected);
        let mut events = Vec::with_capacity(rows);
        events.extend(batch.windows.iter().cloned().map(LiveEvent::Window));
        events.extend(batch.scores.iter().cloned().map(LiveEvent::Anomaly));
        events.extend(batch.forecasts.iter().cloned().map(LiveEvent::Forecast));
        events.extend(batch.alerts.iter().map(|event| {
            LiveEvent::Alert(AlertChange {
                state: event.state,
                alert: Alert::from_event(event),
            })
        }));
        self.live.journal.append(events);
        self.written += rows as u64;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.live.attached.store(false, Relaxed);
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn describe(&self) -> String {
        format!(
            "live state ({} records; {} series held)",
            self.written,
            self.live.store.read().len()
        )
    }
}
