//! Instruments the sink side owns: how late windows are emitted, how long each sink takes to
//! write a batch, and how full the live store is. They are plain `prometheus` handles,
//! registered into the server's registry by [`LiveMetrics::register`].

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntGauge, Registry};

/// Buckets for latencies from a millisecond to a few minutes.
const LATENCY_BUCKETS: [f64; 16] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The sink-side instruments.
#[derive(Clone, Debug)]
pub struct LiveMetrics {
    /// Wall clock at emit minus window end, for final window rows.
    pub emit_latency: Histogram,
    /// Time one sink took to write one batch, by sink.
    pub sink_write: HistogramVec,
    /// Series held by the live store.
    pub series: IntGauge,
    /// Rows ignored because the live store's series cap was reached.
    pub series_rejected: IntCounter,
}

impl Default for LiveMetrics {
    fn default() -> Self {
        let buckets = LATENCY_BUCKETS.to_vec();
        LiveMetrics {
            emit_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "tidemark_window_emit_latency_seconds",
                    "Wall-clock time at emit minus the window's end, for final window rows.",
                )
                .buckets(buckets.clone()),
            )
            .expect("valid histogram options"),
            sink_write: HistogramVec::new(
                HistogramOpts::new("tidemark_sink_write_seconds", "Time one sink took to write one batch.")
                    .buckets(buckets),
                &["sink"],
            )
            .expect("valid histogram options"),
            series: IntGauge::new("tidemark_live_series", "Series held by the live store.")
                .expect("valid gauge options"),
            series_rejected: IntCounter::new(
                "tidemark_live_series_rejected_total",
                "Rows ignored because the live store held its maximum number of series.",
            )
            .expect("valid counter options"),
        }
    }
}

impl LiveMetrics {
    /// Registers every instrument.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.emit_latency.clone()))?;
        registry.register(Box::new(self.sink_write.clone()))?;
        registry.register(Box::new(self.series.clone()))?;
        registry.register(Box::new(self.series_rejected.clone()))
    }
}
