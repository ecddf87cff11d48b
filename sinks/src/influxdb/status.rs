//! What the HTTP server shows of the sink: its delivery state for `/readyz` and its counters
//! and gauges for `/metrics`, read from the shared state with a few atomic loads.

use super::shared::Shared;
use super::stats::ErrorClass;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Where delivery stands, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Batches are written as they come.
    Healthy,
    /// Some batch failed and is being retried in memory (within `spool_after`).
    Retrying,
    /// The server is down or failing: batches go to the on-disk spool and are replayed, in
    /// order, when it answers. Nothing is lost and the pipeline keeps consuming.
    Spooling,
    /// The spool is full: the sink stops accepting, so the sources stop reading.
    Full,
}

impl DeliveryState {
    /// Every state, in order.
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Healthy,
        DeliveryState::Retrying,
        DeliveryState::Spooling,
        DeliveryState::Full,
    ];

    /// The state's name (`healthy`, `retrying`, `spooling`, `full`).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Healthy => "healthy",
            DeliveryState::Retrying => "retrying",
            DeliveryState::Spooling => "spooling",
            DeliveryState::Full => "full",
        }
    }
}

/// A handle on a running sink's state; cheap to clone, valid after the sink is gone.
#[derive(Clone)]
pub struct InfluxDbStatus(pub(super) Arc<Shared>);

/// Everything `/metrics` exports, read at once.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusSnapshot {
    /// The delivery state.
    pub state: DeliveryState,
    /// Bytes in the spool.
    pub spool_bytes: u64,
    /// The spool's capacity.
    pub spool_max_bytes: u64,
    /// Batches in the spool, waiting for the server.
    pub spool_batches: u64,
    /// Batches ever appended to the spool.
    pub spooled_batches_total: u64,
    /// Points in them.
    pub spooled_points_total: u64,
    /// Of those batches, written to the server on replay.
    pub replayed_batches_total: u64,
    /// Points in them.
    pub replayed_points_total: u64,
    /// Points the server acknowledged (self-metrics included).
    pub points_written_total: u64,
    /// Failed requests by class.
    pub errors_total: Vec<(&'static str, u64)>,
}

impl InfluxDbStatus {
    /// The delivery state now.
    pub fn state(&self) -> DeliveryState {
        let spool = &self.0.spool;
        if spool.is_full() {
            DeliveryState::Full
        } else if !spool.is_empty() {
            DeliveryState::Spooling
        } else if self.0.stats.retrying.load(Relaxed) > 0 {
            DeliveryState::Retrying
        } else {
            DeliveryState::Healthy
        }
    }

    /// A one-line account of the state, for `/readyz`.
    pub fn detail(&self) -> String {
        let spool = &self.0.spool;
        let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        let spooled = format!(
            "{} batches, {:.1} of {:.0} MiB in {}",
            spool.records(),
            mib(spool.bytes()),
            mib(spool.max_bytes()),
            spool.dir().display()
        );
        match self.state() {
            DeliveryState::Healthy => "writing".into(),
            DeliveryState::Retrying => "retrying a failed write".into(),
            DeliveryState::Spooling => format!("server failing, spooling ({spooled}); replayed when it answers"),
            DeliveryState::Full => format!("spool full ({spooled}): consumption paused until the server answers"),
        }
    }

    /// The counters and gauges.
    pub fn snapshot(&self) -> StatusSnapshot {
        let (stats, spool) = (&self.0.stats, &self.0.spool);
        StatusSnapshot {
            state: self.state(),
            spool_bytes: spool.bytes(),
            spool_max_bytes: spool.max_bytes(),
            spool_batches: spool.records(),
            spooled_batches_total: stats.batches_spooled.total(),
            spooled_points_total: stats.points_spooled.total(),
            replayed_batches_total: stats.batches_replayed.total(),
            replayed_points_total: stats.points_replayed.total(),
            points_written_total: stats.points_written.total(),
            errors_total: ErrorClass::ALL.iter().map(|c| (c.as_str(), stats.errors(*c))).collect(),
        }
    }
}
