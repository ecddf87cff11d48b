//! State shared by the sink, its batcher, its writers and the spool's drain: counters, what is
//! still unsettled, the spool, the rejected-batch file, and the first fatal error.

use super::rejected::{RejectedFile, Rejection};
use super::spool::Spool;
use super::stats::SinkStats;
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use tracing::error;

/// Data points accepted by [`write`](crate::Sink::write) and settled (acknowledged by the
/// server, synced to the spool, or kept in the rejected file). Everything accepted is settled before `flush` or
/// `finish` return; that is the sink's acknowledgement.
#[derive(Default)]
struct Progress {
    accepted: u64,
    settled: u64,
}

/// See the module documentation.
pub struct Shared {
    /// Counters and self-metrics.
    pub stats: SinkStats,
    /// Batches waiting on disk for the server.
    pub spool: Spool,
    progress: Mutex<Progress>,
    changed: Condvar,
    fatal: Mutex<Option<String>>,
    rejected: Mutex<RejectedFile>,
}

impl Shared {
    /// Fresh state; refused batches go to `rejected`, failing ones to `spool`.
    pub fn new(rejected: RejectedFile, spool: Spool) -> Self {
        Shared {
            stats: SinkStats::new(),
            spool,
            progress: Mutex::default(),
            changed: Condvar::new(),
            fatal: Mutex::new(None),
            rejected: Mutex::new(rejected),
        }
    }

    /// Counts `points` data points as accepted; returns the total so far.
    pub fn accept(&self, points: u64) -> u64 {
        let mut progress = self.progress.lock().expect("progress");
        progress.accepted += points;
        progress.accepted
    }

    /// Counts `points` data points as settled.
    pub fn settle(&self, points: u64) {
        self.progress.lock().expect("progress").settled += points;
        self.changed.notify_all();
    }

    /// Points accepted and not yet settled.
    pub fn unsettled(&self) -> u64 {
        let progress = self.progress.lock().expect("progress");
        progress.accepted - progress.settled
    }

    /// Waits until `target` points are settled, or until a fatal error.
    pub fn wait_settled(&self, target: u64) -> Result<(), String> {
        let mut progress = self.progress.lock().expect("progress");
        loop {
            if let Some(reason) = self.failure() {
                return Err(reason);
            }
            if progress.settled >= target {
                return Ok(());
            }
            progress = self
                .changed
                .wait_timeout(progress, Duration::from_millis(200))
                .expect("progress")
                .0;
        }
    }

    /// Records the first fatal error; the sink fails its next call with it.
    pub fn fail(&self, reason: String) {
        error!(%reason, "the InfluxDB sink stops");
        self.fatal.lock().expect("fatal").get_or_insert(reason);
        self.changed.notify_all();
    }

    /// The fatal error, if any.
    pub fn failure(&self) -> Option<String> {
        self.fatal.lock().expect("fatal").clone()
    }

    /// Keeps a refused batch in the rejected file; failing to is fatal, since the batch
    /// would otherwise be lost.
    pub fn reject(&self, rejection: &Rejection<'_>) {
        let mut file = self.rejected.lock().expect("rejected file");
        if let Err(e) = file.append(rejection) {
            let path = file.path().display().to_string();
            drop(file);
            self.fail(format!("writing a refused batch to {path} failed: {e}"));
        }
    }

    /// Where refused batches go.
    pub fn rejected_path(&self) -> String {
        self.rejected
            .lock()
            .expect("rejected file")
            .path()
            .display()
            .to_string()
    }
}
