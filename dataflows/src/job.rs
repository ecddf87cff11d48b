//! The job: one dataflow per worker, run to completion (or until stopped).

use crate::aggregate::{AggregateContext, SeriesNames, aggregate};
use crate::analytics::AnalyticsSettings;
use crate::corrections::{CorrectionContext, corrections};
use crate::partial::QuantilePolicy;
use crate::source::{SourceContext, source};
use crate::stats::PipelineStats;
use crate::windows::{LatePolicy, WindowSettings};
use crossbeam_channel::Sender;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use thiserror::Error;
use tidemark_connectors::cardinality::CardinalityGuard;
use tidemark_connectors::privacy::Pii;
use tidemark_connectors::source::now_ms;
use tidemark_connectors::{Decoder, SourceConfig, TimestampRange};
use tidemark_schemas::{Acknowledgement, MetricDefinitions, OutputBatch};
use timely::dataflow::ProbeHandle;
use timely::dataflow::operators::Probe;

/// Where the workers run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cluster {
    /// Worker threads in this process only.
    Local,
    /// Timely's cluster mode: this process is `process` of `addresses.len()`.
    Processes {
        /// This process' index.
        process: usize,
        /// `host:port` of every process, in order.
        addresses: Vec<String>,
    },
}

/// Everything the job needs to know.
#[derive(Clone, Debug)]
pub struct JobSettings {
    /// Where events come from.
    pub source: SourceConfig,
    /// Which metrics typed events yield.
    pub definitions: MetricDefinitions,
    /// Windowing.
    pub windows: WindowSettings,
    /// Longest accepted input line.
    pub max_line_bytes: usize,
    /// Accepted event times.
    pub timestamps: TimestampRange,
    /// Worker threads per process.
    pub workers: usize,
    /// Single process or cluster.
    pub cluster: Cluster,
    /// Anomaly scores and forecasts (`None`: off).
    pub analytics: Option<AnalyticsSettings>,
    /// Personal fields to hash or drop (`None`: privacy off).
    pub pii: Option<Pii>,
    /// The series limits, shared by every worker of this process.
    pub guard: Arc<CardinalityGuard>,
}

/// The job failed to start or a worker failed.
#[derive(Debug, Error)]
pub enum JobError {
    /// Timely could not start (e.g. a cluster peer is unreachable).
    #[error("could not start the workers: {0}")]
    Start(String),
    /// A worker could not open its share of the source.
    #[error("could not open the source {source_name}: {error}")]
    Source {
        /// The source.
        source_name: String,
        /// Why.
        error: std::io::Error,
    },
    /// The sink thread stopped (a sink failed; its error is reported by the sinks).
    #[error("the sinks stopped before the job finished")]
    SinksStopped,
    /// A worker panicked.
    #[error("a worker failed: {0}")]
    Worker(String),
}

/// What a finished job did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobSummary {
    /// Worker threads in this process.
    pub workers: usize,
}

/// Runs the job until its sources are exhausted or `stop` is set, sending every result and
/// dead letter to `output`. Returns when all windows have been flushed.
pub fn run_job(
    settings: JobSettings,
    output: Sender<OutputBatch>,
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
) -> Result<JobSummary, JobError> {
    let config = match &settings.cluster {
        Cluster::Local if settings.workers <= 1 => timely::Config::thread(),
        Cluster::Local => timely::Config::process(settings.workers),
        Cluster::Processes { process, addresses } => timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads: settings.workers,
                process: *process,
                addresses: addresses.clone(),
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        },
    };
    let workers = settings.workers;
    let settings = Arc::new(settings);
    let started_ms = now_ms();
    let guards = timely::execute(config, move |worker| -> Result<(), JobError> {
        let index = worker.index();
        let peers = worker.peers();
        let source_name: Arc<str> = Arc::from(settings.source.name());
        let input = settings
            .source
            .open(index, peers, settings.max_line_bytes, started_ms)
            .map_err(|error| JobError::Source {
                source_name: source_name.to_string(),
                error,
            })?;
        let decoder = Decoder::new(&settings.definitions, settings.timestamps)
            .with_privacy(settings.pii.clone())
            .with_guard(settings.guard.clone());
        let windows = &settings.windows;
        let quantiles = QuantilePolicy {
            exact_limit: windows.exact_quantile_limit,
            ..QuantilePolicy::default()
        };
        let names = Rc::new(RefCell::new(SeriesNames::default()));
        let horizon_ms = windows.correction_horizon.as_millis() as u64;
        let probe = ProbeHandle::new();
        let durable = Arc::new(AtomicU64::new(0));
        let finished = Arc::new(AtomicBool::new(false));
        worker.dataflow::<u64, _, _>(|scope| {
            let (observations, catalog) = source(
                scope,
                input,
                decoder,
                SourceContext {
                    name: source_name.clone(),
                    base_ms: windows.base.as_millis() as u64,
                    lateness_ms: windows.allowed_lateness.as_millis() as u64,
                    max_line_bytes: settings.max_line_bytes,
                    output: output.clone(),
                    stats: stats.clone(),
                    stop: stop.clone(),
                    durable: durable.clone(),
                    finished: finished.clone(),
                    largest_window_ms: windows.sizes_ms().into_iter().max().unwrap_or_default(),
                    correction_horizon_ms: match windows.late_policy {
                        LatePolicy::Correct => horizon_ms,
                        LatePolicy::DeadLetter => 0,
                    },
                    pii: settings.pii.clone(),
                },
            );
            let updates = aggregate(
                observations,
                catalog,
                AggregateContext {
                    sizes_ms: windows.sizes_ms(),
                    late_policy: windows.late_policy,
                    horizon_ms,
                    quantiles,
                    output: output.clone(),
                    stats: stats.clone(),
                    names: names.clone(),
                    source_name,
                    analytics: settings.analytics.clone(),
                },
            );
            corrections(
                updates,
                CorrectionContext {
                    horizon_ms,
                    quantiles,
                    output: output.clone(),
                    names,
                    stats: stats.clone(),
                },
            )
            .probe_with(&probe);
        });
        // Each time the frontier passes a new time, ask the sink thread to acknowledge once
        // everything sent so far is durable; the source then acknowledges its input up to it.
        let mut requested = 0u64;
        loop {
            let frontier = probe.with_frontier(|f| f.iter().copied().min().unwrap_or(u64::MAX));
            if frontier > requested {
                requested = frontier;
                let durable = durable.clone();
                let acknowledgement = Acknowledgement::new(move || {
                    durable.fetch_max(frontier, Relaxed);
                });
                let batch = OutputBatch {
                    acknowledgement: Some(acknowledgement),
                    ..OutputBatch::default()
                };
                if output.send(batch).is_err() {
                    return Err(JobError::SinksStopped);
                }
            }
            if probe.done() && finished.load(Relaxed) {
                return Ok(());
            }
            worker.step_or_park(Some(Duration::from_millis(50)));
        }
    })
    .map_err(JobError::Start)?;
    for result in guards.join() {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(panic) => return Err(JobError::Worker(panic)),
        }
    }
    Ok(JobSummary { workers })
}
