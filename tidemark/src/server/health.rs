//! `/healthz` (the process answers) and `/readyz` (the pipeline is doing its job: the live
//! sink is attached to a running sink thread, events have been read (or a Kafka source knows
//! its partitions' end offsets), the watermark — the newest event time — moved recently or the
//! source has read all there is (a quiet topic is not a stall), and, with an InfluxDB sink, its
//! spool is not full).
//!
//! An InfluxDB sink that is retrying or *spooling* (the server is down, batches go to the
//! on-disk spool) is degraded but ready: the pipeline still consumes, nothing is lost, and
//! restarting the pod would not bring the server back. A *full* spool is not ready: the sink
//! has stopped accepting and the sources have stopped reading.
//!
//! Progress is sampled once a second by [`Progress::watch`], so a readiness probe costs a few
//! atomic loads and never touches the pipeline.

use super::time::now_ms;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tidemark_dataflows::PipelineStats;
use tidemark_sinks::influxdb::{DeliveryState, InfluxDbStatus};
use tidemark_sinks::live::Live;

/// How long the watermark may stand still before the pipeline counts as stalled.
const STALL: Duration = Duration::from_secs(30);

/// The newest event time seen and when it last advanced.
pub struct Progress {
    stats: Arc<PipelineStats>,
    started: Instant,
    last_event_ms: AtomicI64,
    advanced_at_ms: AtomicI64,
    influxdb: Option<InfluxDbStatus>,
}

/// One readiness check.
#[derive(Serialize)]
pub struct Check {
    /// Whether it passes.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

/// The `/readyz` body.
#[derive(Serialize)]
pub struct Readiness {
    /// Whether every check passes.
    pub ready: bool,
    /// The checks by name.
    pub checks: std::collections::BTreeMap<&'static str, Check>,
}

/// The `/healthz` body.
#[derive(Serialize)]
pub struct Health {
    /// Always `ok`: answering is the check.
    pub status: &'static str,
    /// Seconds since the server started.
    pub uptime_s: u64,
}

impl Progress {
    /// Starts tracking; `influxdb` is the InfluxDB sink's status, when there is one.
    pub fn new(stats: Arc<PipelineStats>, influxdb: Option<InfluxDbStatus>) -> Arc<Self> {
        Arc::new(Progress {
            stats,
            started: Instant::now(),
            last_event_ms: AtomicI64::new(i64::MIN),
            advanced_at_ms: AtomicI64::new(i64::MIN),
            influxdb,
        })
    }

    /// Samples the watermark once a second, for ever (runs on the server's runtime).
    pub async fn watch(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            self.sample();
        }
    }

    fn sample(&self) {
        let newest = self.stats.max_event_ms.load(Relaxed);
        if newest > self.last_event_ms.swap(newest, Relaxed) {
            self.advanced_at_ms.store(now_ms(), Relaxed);
        }
    }

    /// The `/healthz` answer.
    pub fn health(&self) -> Health {
        Health {
            status: "ok",
            uptime_s: self.started.elapsed().as_secs(),
        }
    }

    /// The `/readyz` answer.
    pub fn readiness(&self, live: &Live) -> Readiness {
        self.sample();
        let mut checks = std::collections::BTreeMap::new();
        let attached = live.is_attached();
        checks.insert(
            "sinks",
            Check {
                ok: attached,
                detail: if attached {
                    "writing"
                } else {
                    "the sink thread has stopped"
                }
                .into(),
            },
        );
        let lines = self.stats.lines.load(Relaxed);
        // A Kafka source that knows every partition's end offset is connected, and one that has
        // read up to every end is caught up: a quiet topic is not a stalled pipeline.
        let partitions = self.stats.partitions();
        let connected = !partitions.is_empty() && partitions.iter().all(|(_, p)| p.end_offset.is_some());
        let caught_up = connected && partitions.iter().all(|(_, p)| p.lag() == Some(0));
        checks.insert(
            "source",
            Check {
                ok: lines > 0 || connected,
                detail: format!("{lines} lines read"),
            },
        );
        let advanced = self.advanced_at_ms.load(Relaxed);
        let idle_ms = now_ms().saturating_sub(advanced);
        let advancing = advanced != i64::MIN && idle_ms <= STALL.as_millis() as i64;
        checks.insert(
            "watermark",
            Check {
                ok: advancing || caught_up,
                detail: match (advanced == i64::MIN, caught_up) {
                    (true, true) => "caught up with the input; no event seen yet".into(),
                    (true, false) => "no event time seen yet".into(),
                    (false, true) => format!(
                        "caught up with the input; last advanced {:.1}s ago",
                        idle_ms as f64 / 1000.0
                    ),
                    (false, false) => format!("last advanced {:.1}s ago", idle_ms as f64 / 1000.0),
                },
            },
        );
        if let Some(influxdb) = &self.influxdb {
            checks.insert(
                "influxdb",
                Check {
                    ok: influxdb.state() != DeliveryState::Full,
                    detail: influxdb.detail(),
                },
            );
        }
        Readiness {
            ready: checks.values().all(|c| c.ok),
            checks,
        }
    }
}
