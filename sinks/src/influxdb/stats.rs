//! The sink's counters and its self-metrics.
//!
//! The sink sees everything the pipeline emits, so it can report the pipeline's health as
//! well as its own: rows, corrections and dead letters by reason, how long after a window's
//! end its result reached the sink (the watermark delay as seen from outside), and, for its
//! own part, points written and refused, retries, points waiting, and the latency from a row
//! entering the sink to the server acknowledging it. Each self-metric point carries the
//! *increase* over its interval (not a running total), so a single point is already a
//! meaningful rate and panels sum them, with no `derivative` that needs two points.

use crate::line_protocol::Line;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;
use tidemark_schemas::DeadLetterReason;

/// A count with a running total (for the end-of-run report) and an interval part (for
/// self-metrics), both lock-free.
#[derive(Default)]
pub struct Counter {
    total: AtomicU64,
    interval: AtomicU64,
}

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.total.fetch_add(n, Relaxed);
        self.interval.fetch_add(n, Relaxed);
    }

    /// The running total.
    pub fn total(&self) -> u64 {
        self.total.load(Relaxed)
    }

    /// The increase since the last call.
    fn take_interval(&self) -> u64 {
        self.interval.swap(0, Relaxed)
    }
}

/// Why a write failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// No connection (refused, reset, DNS).
    Connection,
    /// No answer within `timeout`.
    Timeout,
    /// HTTP 429.
    Throttled,
    /// HTTP 5xx.
    Server,
    /// Any other 4xx or a redirect: never retried.
    Refused,
}

impl ErrorClass {
    /// Every class, in label order.
    pub const ALL: [ErrorClass; 5] = [
        ErrorClass::Connection,
        ErrorClass::Timeout,
        ErrorClass::Throttled,
        ErrorClass::Server,
        ErrorClass::Refused,
    ];

    /// The `class` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connection => "connection",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Throttled => "throttled",
            ErrorClass::Server => "server",
            ErrorClass::Refused => "refused",
        }
    }
}

/// Latencies in log-spaced buckets 5 % wide, from 0 ms to about two days: quantiles within
/// 5 %, fixed memory, one increment per sample.
pub struct LatencyHistogram {
    buckets: Vec<u64>,
    max_ms: f64,
}

const GROWTH: f64 = 1.05;
const BUCKETS: usize = 400;

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: vec![0; BUCKETS],
            max_ms: 0.0,
        }
    }
}

impl LatencyHistogram {
    /// Records `weight` samples of `latency`.
    pub fn record(&mut self, latency: Duration, weight: u64) {
        let ms = latency.as_secs_f64() * 1000.0;
        let index = ((ms + 1.0).ln() / GROWTH.ln()) as usize;
        self.buckets[index.min(BUCKETS - 1)] += weight;
        self.max_ms = self.max_ms.max(ms);
    }

    /// The `q` quantile in ms (the upper edge of its bucket, capped at the largest sample),
    /// or `None` without samples.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some((GROWTH.powi(index as i32 + 1) - 1.0).min(self.max_ms));
            }
        }
        Some(self.max_ms)
    }

    /// The largest sample in ms.
    pub fn max(&self) -> f64 {
        self.max_ms
    }
}

/// Everything the sink counts, shared by the sink thread, the batcher and the writers.
#[derive(Default)]
pub struct SinkStats {
    /// Window rows received.
    pub window_rows: Counter,
    /// Of those, final rows (a window closed).
    pub final_rows: Counter,
    /// Of those, corrections.
    pub corrections: Counter,
    /// Anomaly scores received.
    pub scores: Counter,
    /// Forecast points received.
    pub forecasts: Counter,
    /// Dead letters received, by reason.
    dead_letters: [Counter; DeadLetterReason::ALL.len()],
    /// Rows, tags or fields the encoder had to leave out.
    pub encoder_losses: Counter,
    /// Points the server acknowledged (self-metrics included).
    pub points_written: Counter,
    /// Points in batches the server refused (kept in the rejected file).
    pub points_rejected: Counter,
    /// Batches the server refused.
    pub batches_rejected: Counter,
    /// HTTP requests sent.
    pub requests: Counter,
    /// Requests that failed and were retried.
    pub retries: Counter,
    /// Failed requests, by [`ErrorClass`].
    errors: [Counter; ErrorClass::ALL.len()],
    /// Writers retrying a batch in memory right now.
    pub retrying: AtomicUsize,
    /// Batches appended to the spool.
    pub batches_spooled: Counter,
    /// Points in them.
    pub points_spooled: Counter,
    /// Spooled batches the server took on replay.
    pub batches_replayed: Counter,
    /// Points in them.
    pub points_replayed: Counter,
    /// Largest wall-clock delay after a window's end at which its final row arrived this
    /// interval, ms (`i64::MIN`: none).
    watermark_delay_ms: AtomicI64,
    interval_latency: Mutex<LatencyHistogram>,
    total_latency: Mutex<LatencyHistogram>,
}

impl SinkStats {
    /// Fresh counters with no watermark delay recorded.
    pub fn new() -> Self {
        let stats = SinkStats::default();
        stats.watermark_delay_ms.store(i64::MIN, Relaxed);
        stats
    }

    /// Counts `n` dead letters of `reason`.
    pub fn dead_lettered(&self, reason: DeadLetterReason, n: u64) {
        self.dead_letters[reason as usize].add(n);
    }

    /// Counts a failed request.
    pub fn failed(&self, class: ErrorClass) {
        self.errors[class as usize].add(1);
    }

    /// Failed requests of `class` so far.
    pub fn errors(&self, class: ErrorClass) -> u64 {
        self.errors[class as usize].total()
    }

    /// Notes that a final row of a window ending at `window_end_ms` arrived at `now_ms`.
    pub fn window_closed(&self, window_end_ms: i64, now_ms: i64) {
        self.watermark_delay_ms.fetch_max(now_ms - window_end_ms, Relaxed);
    }

    /// Records that `points` points waited `latency` from entering the sink to being
    /// acknowledged.
    pub fn acknowledged(&self, latency: Duration, points: u64) {
        for histogram in [&self.interval_latency, &self.total_latency] {
            histogram.lock().expect("latency histogram").record(latency, points);
        }
    }

    /// p50 and p99 of the acknowledgement latency over the whole run, ms.
    pub fn latency_quantiles(&self) -> Option<(f64, f64)> {
        let histogram = self.total_latency.lock().expect("latency histogram");
        Some((histogram.quantile(0.5)?, histogram.quantile(0.99)?))
    }

    /// Appends the self-metric points for the interval ending at `now_ms` and starts a new
    /// interval. `queued` is the number of points accepted but not yet settled.
    pub fn encode_interval(&self, instance: &str, queued: u64, now_ms: i64, out: &mut Vec<u8>) -> u32 {
        let mut lines = 0;
        let mut sink = Line::new(out, "tidemark_sink");
        sink.tag("instance", instance).tag("sink", "influxdb");
        sink.count("points_written", self.points_written.take_interval())
            .count("points_rejected", self.points_rejected.take_interval())
            .count("batches_rejected", self.batches_rejected.take_interval())
            .count("requests", self.requests.take_interval())
            .count("retries", self.retries.take_interval())
            .count("queued_points", queued);
        let latency = std::mem::take(&mut *self.interval_latency.lock().expect("latency histogram"));
        if let (Some(p50), Some(p99)) = (latency.quantile(0.5), latency.quantile(0.99)) {
            sink.float("ack_latency_p50_ms", p50)
                .float("ack_latency_p99_ms", p99)
                .float("ack_latency_max_ms", latency.max());
        }
        sink.end(now_ms);
        lines += 1;

        let mut pipeline = Line::new(out, "tidemark_pipeline");
        pipeline.tag("instance", instance);
        let mut dead_letters = 0;
        let by_reason: Vec<(DeadLetterReason, u64)> = DeadLetterReason::ALL
            .iter()
            .map(|reason| (*reason, self.dead_letters[*reason as usize].take_interval()))
            .collect();
        for (_, n) in &by_reason {
            dead_letters += n;
        }
        pipeline
            .count("window_rows", self.window_rows.take_interval())
            .count("final_rows", self.final_rows.take_interval())
            .count("corrections", self.corrections.take_interval())
            .count("scores", self.scores.take_interval())
            .count("forecasts", self.forecasts.take_interval())
            .count("dead_letters", dead_letters)
            .count("encoder_losses", self.encoder_losses.take_interval());
        let delay = self.watermark_delay_ms.swap(i64::MIN, Relaxed);
        if delay != i64::MIN {
            pipeline.int("watermark_delay_ms", delay);
        }
        pipeline.end(now_ms);
        lines += 1;

        for (reason, n) in by_reason.into_iter().filter(|(_, n)| *n > 0) {
            let mut line = Line::new(out, "tidemark_dead_letters");
            line.tag("instance", instance).tag("reason", reason.as_str());
            line.count("count", n);
            line.end(now_ms);
            lines += 1;
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_five_percent() {
        let mut histogram = LatencyHistogram::default();
        for ms in 1..=1000u64 {
            histogram.record(Duration::from_millis(ms), 1);
        }
        let p50 = histogram.quantile(0.5).unwrap();
        let p99 = histogram.quantile(0.99).unwrap();
        assert!((500.0..=525.0).contains(&p50), "{p50}");
        assert!((990.0..=1000.0).contains(&p99), "{p99}");
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn an_interval_reports_increases_then_starts_over() {
        let stats = SinkStats::new();
        stats.window_rows.add(10);
        stats.points_written.add(7);
        stats.dead_lettered(DeadLetterReason::InvalidJson, 2);
        stats.window_closed(1_000, 3_500);
        stats.acknowledged(Duration::from_millis(40), 7);
        let mut out = Vec::new();
        assert_eq!(stats.encode_interval("t0", 3, 9_000, &mut out), 3);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("tidemark_sink,instance=t0,sink=influxdb points_written=7i,"),
            "{text}"
        );
        assert!(lines[0].contains("queued_points=3i,ack_latency_p50_ms="), "{text}");
        assert!(lines[1].contains("window_rows=10i") && lines[1].contains("watermark_delay_ms=2500i"));
        assert_eq!(
            lines[2],
            "tidemark_dead_letters,instance=t0,reason=invalid_json count=2i 9000"
        );

        let mut out = Vec::new();
        assert_eq!(stats.encode_interval("t0", 0, 19_000, &mut out), 2);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("points_written=0i") && !text.contains("watermark_delay_ms"),
            "{text}"
        );
        assert_eq!(stats.points_written.total(), 7);
    }
}
