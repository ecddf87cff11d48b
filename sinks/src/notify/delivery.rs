//! The delivery thread of one contact point: oldest file first, retried until the receiver
//! takes it or refuses it for good.
//!
//! Files go out in acceptance order, one at a time, and a transient failure holds back the
//! ones behind it: a receiver that is down is down for all of them, and an alert's resolve
//! must not overtake its firing. A refusal (the receiver will never take *this* request) moves
//! only that file aside, to `failed/`, and the next one goes.
//!
//! Deleting the file is the last step after a delivery, so a crash between the receiver's
//! answer and the deletion sends that one notification again after the restart — receivers
//! deduplicate on the alert id.

use super::contact_point::ContactPoint;
use super::outbox::Outbox;
use super::record::{self, Failure};
use super::signal::Signal;
use super::stats::Counters;
use super::transport::{Outcome, Transport};
use crate::backoff::Backoff;
use std::io;
use std::sync::Arc;
use std::time::Instant;
use tracing::{debug, error, warn};

/// Files read per directory scan: a bounded batch, so a backlog of any size costs the same
/// memory, while a scan per file would cost quadratic time on a large backlog.
const BATCH: usize = 64;

/// Delivers one contact point's outbox.
pub struct Courier {
    /// Which directory, for logs and the failed file's name.
    pub contact_point: ContactPoint,
    /// How to send.
    pub transport: Box<dyn Transport>,
    /// The outbox.
    pub outbox: Arc<Outbox>,
    /// This contact point's counters.
    pub counters: Arc<Counters>,
    /// Nudges from `accept`, the stop from `shutdown`.
    pub signal: Arc<Signal>,
    /// Delays between attempts at this receiver.
    pub backoff: Backoff,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Courier {
    /// Delivers until stopped: when the outbox is empty after a stop, or at the stop's deadline.
    pub fn run(mut self) {
        loop {
            let batch = match self.outbox.oldest(self.contact_point, BATCH) {
                Ok(batch) => batch,
                Err(e) => {
                    if !self.trouble("listing", &e) {
                        return;
                    }
                    continue;
                }
            };
            if batch.is_empty() {
                if self.signal.stopping() {
                    return;
                }
                self.signal.wait_for_work();
                continue;
            }
            for seq in batch {
                if !self.deliver(seq) {
                    return;
                }
            }
        }
    }

    /// Sends one file until it is settled. Returns `false` when the stop deadline passed.
    fn deliver(&mut self, seq: u64) -> bool {
        let cp = self.contact_point;
        let bytes = match self.outbox.read(cp, seq) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return true,
            Err(e) => return self.trouble("reading", &e),
        };
        let record = match record::decode(&bytes) {
            Ok(record) => record,
            Err(unreadable) => {
                let failure = Failure {
                    contact_point: cp,
                    accepted_at_ms: None,
                    failed_at_ms: now_ms(),
                    attempts: 0,
                    status: None,
                    response: &unreadable.reason,
                    event: unreadable.contents,
                };
                return self.give_up(seq, &failure);
            }
        };
        let event = &record.event;
        let mut attempts = 0;
        loop {
            if self.signal.expired() {
                return false;
            }
            attempts += 1;
            match self.transport.send(event) {
                Outcome::Delivered => {
                    debug!(contact_point = %cp, id = %event.id, attempts, "alert delivered");
                    self.backoff.reset();
                    if !self.settle(|outbox| outbox.remove(cp, seq)) {
                        return false;
                    }
                    self.counters.delivered();
                    return true;
                }
                Outcome::Refused { status, response } => {
                    let failure = Failure {
                        contact_point: cp,
                        accepted_at_ms: Some(record.accepted_at_ms),
                        failed_at_ms: now_ms(),
                        attempts,
                        status,
                        response: &response,
                        event: serde_json::to_value(event).unwrap_or_default(),
                    };
                    return self.give_up(seq, &failure);
                }
                Outcome::Transient { reason, retry_after } => {
                    self.counters.retried();
                    let delay = self.backoff.delay(retry_after);
                    warn!(contact_point = %cp, target = self.transport.target(), id = %event.id, attempts,
                        delay_ms = delay.as_millis() as u64, %reason, "alert delivery failed; retrying");
                    if !self.signal.pause(Instant::now() + delay) {
                        return false;
                    }
                }
            }
        }
    }

    /// Moves a file to `failed/` with why.
    fn give_up(&mut self, seq: u64, failure: &Failure<'_>) -> bool {
        let cp = self.contact_point;
        let record = serde_json::to_vec_pretty(failure).expect("JSON values serialize");
        let mut kept = None;
        if !self.settle(|outbox| {
            kept = Some(outbox.fail(cp, seq, &record)?);
            Ok(())
        }) {
            return false;
        }
        self.counters.failed();
        error!(contact_point = %cp, target = self.transport.target(), id = %failure.event["id"],
            status = ?failure.status, response = failure.response,
            kept = %kept.unwrap_or_default().display(), "alert refused for good; kept it in the failed directory");
        true
    }

    /// Runs an outbox change until it works: it must not be skipped (a delivered file left in
    /// place would be sent forever) nor the notification sent again meanwhile.
    fn settle(&mut self, mut change: impl FnMut(&Outbox) -> io::Result<()>) -> bool {
        loop {
            match change(&self.outbox) {
                Ok(()) => return true,
                Err(e) => {
                    if !self.trouble("updating", &e) {
                        return false;
                    }
                }
            }
        }
    }

    /// Logs a filesystem problem and waits a backoff step. Returns `false` when the stop
    /// deadline passed meanwhile.
    fn trouble(&mut self, what: &str, e: &io::Error) -> bool {
        let delay = self.backoff.delay(None);
        error!(contact_point = %self.contact_point, dir = %self.outbox.dir(self.contact_point).display(),
            error = %e, delay_ms = delay.as_millis() as u64, "{what} the alert outbox failed; retrying");
        self.signal.pause(Instant::now() + delay)
    }
}
