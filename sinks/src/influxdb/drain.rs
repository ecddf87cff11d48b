//! The drain thread: replays the spool, oldest record first, whenever the server answers.
//!
//! One record at a time, retried with backoff while the server fails; the record is deleted
//! from the spool only after the server took it (or refused it with a 400, which sends it to
//! the rejected file like any refused batch). One request at a time keeps the spool's order —
//! the order in which the pipeline produced the points — which upserts need.
//!
//! At `finish` the drain goes on while the server answers, so a run that ends after an outage
//! leaves the server complete; if the server still fails for `spool_after`, the rest stays on
//! disk for the next start, which replays it before anything new.

use super::delivery::{Answer, Endpoint, fix_for, now_ms};
use super::frame::Record;
use super::rejected::Rejection;
use super::shared::Shared;
use super::stats::ErrorClass;
use crate::backoff::Backoff;
use crossbeam_channel::{Receiver, TryRecvError};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// See the module documentation.
pub struct Drain {
    /// The server.
    pub endpoint: Arc<Endpoint>,
    /// Shared state.
    pub shared: Arc<Shared>,
    /// First retry delay.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// At `finish`: how long the server may fail before the rest is left for the next start.
    pub give_up_after: Duration,
}

/// How one record's replay ended.
enum Replayed {
    /// Written (or refused into the rejected file): move on.
    Done,
    /// Stop draining, the record stays in the spool.
    Stop,
}

fn closed(receiver: &Receiver<()>) -> bool {
    matches!(receiver.try_recv(), Err(TryRecvError::Disconnected))
}

impl Drain {
    /// Replays until `stop` closes (the sink is dropped), or `finishing` has closed (every
    /// writer is done) and the spool is empty or the server keeps failing.
    pub fn run(self, stop: Receiver<()>, finishing: Receiver<()>) {
        let spool = &self.shared.spool;
        let mut replaying = false;
        loop {
            if closed(&stop) || self.shared.failure().is_some() {
                return;
            }
            if !spool.wait_for_record(Duration::from_millis(100)) {
                if replaying {
                    replaying = false;
                    info!("the spool is empty: writing to InfluxDB directly again");
                }
                if closed(&finishing) {
                    return;
                }
                continue;
            }
            let record = match spool.peek() {
                Ok(Some(record)) => record,
                Ok(None) => continue,
                Err(e) => {
                    self.shared.fail(format!("reading the spool failed: {e}"));
                    return;
                }
            };
            replaying = true;
            match self.replay(&record, &stop, &finishing) {
                Replayed::Done => {
                    if let Err(e) = spool.ack(&record) {
                        self.shared.fail(format!(
                            "deleting a replayed spool segment in {} failed: {e}",
                            spool.dir().display()
                        ));
                        return;
                    }
                }
                Replayed::Stop => return,
            }
        }
    }

    fn replay(&self, record: &Record, stop: &Receiver<()>, finishing: &Receiver<()>) -> Replayed {
        let stats = &self.shared.stats;
        let mut backoff = Backoff::new(self.initial_backoff, self.max_backoff, 0.5, now_ms() as u64);
        let mut failing_since: Option<Instant> = None;
        loop {
            if self.shared.failure().is_some() {
                return Replayed::Stop;
            }
            stats.requests.add(1);
            match self.endpoint.post(&record.body, record.gzip) {
                Answer::Written => {
                    stats.points_written.add(u64::from(record.points));
                    stats.batches_replayed.add(1);
                    stats.points_replayed.add(u64::from(record.points));
                    return Replayed::Done;
                }
                Answer::Refused { status: 400, message } => {
                    stats.failed(ErrorClass::Refused);
                    warn!(%message, points = record.points, file = %self.shared.rejected_path(),
                        "the server refused a spooled batch; kept it in the rejected file");
                    self.reject(record, &message);
                    return Replayed::Done;
                }
                Answer::Refused { status, message } => {
                    // A configuration problem: the record stays in the spool, to be replayed
                    // once the configuration is fixed.
                    stats.failed(ErrorClass::Refused);
                    self.shared.fail(format!(
                        "{} answered HTTP {status} to a spooled batch: {message}; {} (the spool in {} is kept \
                         and replayed at the next start)",
                        self.endpoint.url(),
                        fix_for(status),
                        self.shared.spool.dir().display()
                    ));
                    return Replayed::Stop;
                }
                Answer::Transient {
                    class,
                    reason,
                    retry_after,
                } => {
                    stats.failed(class);
                    stats.retries.add(1);
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if closed(finishing) && since.elapsed() >= self.give_up_after {
                        warn!(batches = self.shared.spool.records(), spool = %self.shared.spool.dir().display(), %reason,
                            "the run ends while InfluxDB fails: the spooled batches stay on disk and are replayed at the next start");
                        return Replayed::Stop;
                    }
                    let delay = backoff.delay(retry_after);
                    if stop.recv_timeout(delay).is_err_and(|e| e.is_disconnected()) {
                        return Replayed::Stop;
                    }
                }
            }
        }
    }

    fn reject(&self, record: &Record, message: &str) {
        let mut lines = Vec::new();
        let text = if record.gzip {
            match flate2::read::GzDecoder::new(&record.body[..]).read_to_end(&mut lines) {
                Ok(_) => &lines[..],
                Err(_) => &record.body[..],
            }
        } else {
            &record.body[..]
        };
        self.shared.reject(&Rejection {
            time_ms: now_ms(),
            url: self.endpoint.url(),
            status: Some(400),
            message,
            points: record.points,
            lines: text,
        });
        self.shared.stats.batches_rejected.add(1);
        self.shared.stats.points_rejected.add(u64::from(record.points));
    }
}
