//! Delivery counters, for `/metrics` and the end-of-run summary.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What happened to accepted alerts so far, summed over contact points (one alert sent to
/// Slack and email counts twice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NotifyStats {
    /// Notifications the receiver took (HTTP 2xx, SMTP 250).
    pub delivered: u64,
    /// Attempts that failed transiently and were retried.
    pub retries: u64,
    /// Notifications refused for good and moved to `failed/`.
    pub failed: u64,
    /// Notifications waiting in the outbox, including those left by an earlier run.
    pub pending: u64,
}

/// The counters of one contact point, shared by `accept` and its delivery thread.
#[derive(Default)]
pub struct Counters {
    delivered: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
    pending: AtomicU64,
}

impl Counters {
    /// `n` more notifications wait (found in the outbox at start, or about to be written by
    /// `accept`: counted before the file exists, so the delivery thread never settles a file
    /// that is not counted yet).
    pub fn queued(&self, n: u64) {
        self.pending.fetch_add(n, Relaxed);
    }

    /// A notification counted by `queued` was not written after all.
    pub fn withdrawn(&self) {
        self.settled();
    }

    /// One was delivered.
    pub fn delivered(&self) {
        self.delivered.fetch_add(1, Relaxed);
        self.settled();
    }

    /// One was refused for good.
    pub fn failed(&self) {
        self.failed.fetch_add(1, Relaxed);
        self.settled();
    }

    /// An attempt will be retried.
    pub fn retried(&self) {
        self.retries.fetch_add(1, Relaxed);
    }

    /// A file left the outbox. Saturating: a file dropped into the outbox by hand was never counted.
    fn settled(&self) {
        let _ = self
            .pending
            .fetch_update(Relaxed, Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Adds these counters to `total`.
    pub fn add_to(&self, total: &mut NotifyStats) {
        total.delivered += self.delivered.load(Relaxed);
        total.retries += self.retries.load(Relaxed);
        total.failed += self.failed.load(Relaxed);
        total.pending += self.pending.load(Relaxed);
    }
}
