//! The job: one dataflow per worker, run to completion (or until stopped).

use crate::aggregate::{AggregateContext, SeriesNames, aggregate};
use crate::corrections::{CorrectionContext, corrections};
use crate::partial::QuantilePolicy;
use crate::source::{SourceContext, source};
use crate::stats::PipelineStats;
use crate::windows::WindowSettings;
use crossbeam_channel::Sender;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use thiserror::Error;
use tidemark_connectors::source::now_ms;
use tidemark_connectors::{Decoder, SourceConfig, TimestampRange};
use tidemark_schemas::{MetricDefinitions, OutputBatch};
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
        let decoder = Decoder::new(&settings.definitions, settings.timestamps);
        let windows = &settings.windows;
        let quantiles = QuantilePolicy {
            exact_limit: windows.exact_quantile_limit,
            ..QuantilePolicy::default()
        };
        let names = Rc::new(RefCell::new(SeriesNames::default()));
        let horizon_ms = windows.correction_horizon.as_millis() as u64;
        let probe = ProbeHandle::new();
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
        while !probe.done() {
            worker.step_or_park(None);
        }
        Ok(())
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
