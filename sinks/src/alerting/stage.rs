//! The rule engine on the sink thread: evaluate, hand new alerts to the notifier, and add them
//! to the batch so every sink records them.

use super::engine::AlertEngine;
use crate::live::AlertBoard;
use crate::notify::Notifier;
use crate::{SinkError, Stage};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tidemark_schemas::OutputBatch;
use tracing::info;

/// Rules plus delivery.
pub struct AlertStage {
    engine: AlertEngine,
    notifier: Option<Notifier>,
    board: Option<Arc<AlertBoard>>,
}

impl AlertStage {
    /// Evaluates with `engine` and delivers through `notifier` (if any contact point is set).
    pub fn new(engine: AlertEngine, notifier: Option<Notifier>) -> Self {
        AlertStage {
            engine,
            notifier,
            board: None,
        }
    }

    /// Also honours the silences set through the HTTP API (kept by the live alert board).
    pub fn with_board(mut self, board: Arc<AlertBoard>) -> Self {
        self.board = Some(board);
        self
    }
}

impl Stage for AlertStage {
    fn process(&mut self, batch: &mut OutputBatch) -> Result<(), SinkError> {
        let events = self.engine.evaluate(batch);
        if events.is_empty() {
            return Ok(());
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for event in &events {
            let silenced = self.engine.is_silenced(event, now_ms)
                || self.board.as_ref().is_some_and(|board| board.mutes(event, now_ms));
            info!(rule = %event.rule, state = ?event.state, severity = ?event.severity, id = %event.id, silenced, "{}", event.summary);
            if let (Some(notifier), false) = (&self.notifier, silenced) {
                // Durable in the outbox before the batch is acknowledged: at-least-once delivery.
                notifier.accept(event).map_err(|e| SinkError::Notify(e.to_string()))?;
            }
        }
        batch.alerts.extend(events);
        Ok(())
    }
}
