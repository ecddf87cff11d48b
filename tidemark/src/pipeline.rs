//! `tidemark run` and `tidemark replay`: wiring a source, the dataflow and the sinks.

use crate::config::{Config, FileSinksConfig};
use crate::{DEFAULT_OUT_DIR, shown};
use anyhow::{Context, Result, anyhow};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tidemark_connectors::SourceConfig;
use tidemark_connectors::cardinality::CardinalityGuard;
use tidemark_connectors::privacy::KEY_ENV;
use tidemark_dataflows::job::Cluster;
use tidemark_dataflows::{JobSettings, PipelineStats, run_job};
use tidemark_sinks::alerting::{AlertEngine, AlertStage};
use tidemark_sinks::files::{CsvExport, DeadLetterFile, LineProtocolFile, NdjsonStream};
use tidemark_sinks::influxdb::{InfluxDbSink, InfluxDbStatus};
use tidemark_sinks::kafka::KafkaSink;
use tidemark_sinks::live::AlertBoard;
use tidemark_sinks::notify::Notifier;
use tidemark_sinks::{Sink, SinkReport, Stage, spawn_sinks};
use tracing::info;

/// Batches in flight between the workers and the sink thread: the backpressure bound.
const SINK_QUEUE_BATCHES: usize = 256;

/// Arguments of `tidemark run`.
#[derive(Args)]
pub struct RunArgs {
    /// Configuration file (TOML); without one, the embedded default runs.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Worker threads (overrides `runtime.workers`).
    #[arg(long)]
    workers: Option<usize>,
    /// Output directory for the file sinks (overrides `sinks.files.dir`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Stop after this long (e.g. `30s`, `5m`); default: run until the source ends or Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Timely cluster mode: file with one `host:port` per process (overrides `runtime.hostfile`).
    #[arg(long)]
    hostfile: Option<PathBuf>,
    /// This process' index in the hostfile (overrides `runtime.process`).
    #[arg(long)]
    process: Option<usize>,
    /// Number of processes; checked against the hostfile.
    #[arg(long)]
    processes: Option<usize>,
    /// Address of the HTTP API and live page (overrides `server.addr`; port 0 picks a free one).
    #[arg(long, env = "TIDEMARK_HTTP_ADDR")]
    http_addr: Option<std::net::SocketAddr>,
}

/// Arguments of `tidemark replay`.
#[derive(Args)]
pub struct ReplayArgs {
    /// NDJSON events to process.
    input: PathBuf,
    /// Where to write the 1-minute windows as CSV.
    #[arg(long)]
    export_csv: PathBuf,
    /// Where to write dead letters (default: next to the CSV, `*.dead-letters.ndjson`).
    #[arg(long)]
    dead_letters: Option<PathBuf>,
    /// Worker threads (overrides `runtime.workers`).
    #[arg(long)]
    workers: Option<usize>,
    /// Configuration file for windows, metrics and limits (its source is ignored).
    #[arg(long)]
    config: Option<PathBuf>,
}

/// Runs `tidemark run`.
pub fn run(args: RunArgs) -> Result<()> {
    let embedded = args.config.is_none();
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(workers) = args.workers {
        config.runtime.workers = workers;
    }
    if let Some(dir) = args.out {
        config.sinks.files.get_or_insert_with(FileSinksConfig::default).dir = dir;
    }
    if let Some(hostfile) = args.hostfile {
        config.runtime.hostfile = Some(hostfile);
    }
    if let Some(process) = args.process {
        config.runtime.process = process;
    }
    if let Some(processes) = args.processes {
        let hosts = config.cluster_addresses()?.len();
        if hosts != processes {
            anyhow::bail!("--processes {processes} but the hostfile lists {hosts} processes; make them agree");
        }
    }
    if let Some(addr) = args.http_addr {
        config.server.addr = addr;
    }
    config.validate()?;
    let (sinks, influxdb) = configured_sinks(&config)?;
    let stats = Arc::new(PipelineStats::default());
    let crate::server::Attached { sinks, server, board } =
        crate::server::attach(&config, sinks, stats.clone(), influxdb)?;
    if embedded {
        info!(
            "running the embedded default: built-in generator ({} events/s, real time) → files in {}/ \
             (windows.ndjson, windows.lp, dead-letters.ndjson; windows.csv at exit). Ctrl-C stops and flushes.",
            match &config.source {
                SourceConfig::Generator(g) => g.events_per_second,
                _ => 0.0,
            },
            shown(
                &config
                    .sinks
                    .files
                    .as_ref()
                    .map_or_else(|| PathBuf::from(DEFAULT_OUT_DIR), |f| f.dir.clone())
            )
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    install_ctrl_c(stop.clone())?;
    if let Some(duration) = args.duration {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(duration);
            stop.store(true, Relaxed);
        });
    }
    let mut last_report = Instant::now();
    let outcome = execute(&config, alert_stage(&config, board)?, sinks, stats, stop, |stats| {
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            info!(
                lines = stats.lines.load(Relaxed),
                rows = stats.final_rows.load(Relaxed),
                corrections = stats.corrected_rows.load(Relaxed),
                dead_letters = stats.total_dead_letters(),
                "progress"
            );
        }
    })?;
    if let Some(server) = server {
        server.stop();
    }
    for (_, _, description) in &outcome.report.outputs {
        report_line(format_args!("wrote {description}"));
    }
    report_line(format_args!("{}", outcome.summary_line(None)));
    Ok(())
}

/// Prints one line of a finished run's report. By then every output is written and flushed, so
/// a stdout that was closed early (`tidemark run | head -1` to read the live page's address) is
/// no reason for a panic and a failing exit status.
fn report_line(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// Runs `tidemark replay`.
pub fn replay(args: ReplayArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    config.source = SourceConfig::File {
        path: args.input.clone(),
    };
    if let Some(workers) = args.workers {
        config.runtime.workers = workers;
    }
    config.validate()?;
    let input_bytes = std::fs::metadata(&args.input)
        .with_context(|| format!("reading the input file {}", args.input.display()))?
        .len();
    let dead_letters = args
        .dead_letters
        .clone()
        .unwrap_or_else(|| args.export_csv.with_extension("dead-letters.ndjson"));
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(CsvExport::new(
            args.export_csv.clone(),
            config.pipeline.base.as_millis() as u64,
        )),
        Box::new(DeadLetterFile::create(dead_letters)?),
    ];
    let bar = ProgressBar::new(input_bytes).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        )
        .expect("a valid progress template"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    install_ctrl_c(stop.clone())?;
    let outcome = execute(
        &config,
        Vec::new(),
        sinks,
        Arc::new(PipelineStats::default()),
        stop,
        |stats| bar.set_position(stats.bytes.load(Relaxed)),
    )?;
    bar.finish_and_clear();
    let csv_rows = outcome
        .report
        .outputs
        .iter()
        .find(|(name, _, _)| *name == "csv")
        .map_or(0, |(_, rows, _)| *rows);
    for (_, _, description) in &outcome.report.outputs {
        eprintln!("wrote {description}");
    }
    report_line(format_args!("{}", outcome.summary_line(Some(csv_rows))));
    Ok(())
}

/// The alert rule engine, with its notifier, when rules are configured; it honours the API's
/// silences when the server runs (`board`).
fn alert_stage(config: &Config, board: Option<Arc<AlertBoard>>) -> Result<Vec<Box<dyn Stage>>> {
    if config.alerts.rules.is_empty() {
        return Ok(Vec::new());
    }
    let notifier = config.notify.as_ref().map(Notifier::start).transpose()?;
    if notifier.is_none() {
        info!("alert rules are configured but no [notify] section: alerts are recorded by the sinks, not sent");
    }
    let stage = AlertStage::new(AlertEngine::new(&config.alerts), notifier);
    Ok(vec![Box::new(match board {
        Some(board) => stage.with_board(board),
        None => stage,
    })])
}

/// The configured sinks, and the InfluxDB sink's status for the server.
type ConfiguredSinks = (Vec<Box<dyn Sink>>, Option<InfluxDbStatus>);

/// Every sink the configuration asks for (at least one is required), and the InfluxDB sink's
/// status for the server.
fn configured_sinks(config: &Config) -> Result<ConfiguredSinks> {
    let mut sinks = match &config.sinks.files {
        Some(files) => file_sinks(files, config.pipeline.base.as_millis() as u64)?,
        None => Vec::new(),
    };
    if let Some(kafka) = &config.sinks.kafka {
        sinks.push(Box::new(KafkaSink::create(kafka)?));
    }
    let mut status = None;
    if let Some(influxdb) = &config.sinks.influxdb {
        let mut influxdb = influxdb.clone();
        if let (None, Some(files)) = (&influxdb.spool_dir, &config.sinks.files) {
            influxdb.spool_dir = Some(files.dir.join("influxdb-spool"));
        }
        let sink = InfluxDbSink::start(&influxdb)?;
        status = Some(sink.status());
        sinks.push(Box::new(sink));
    }
    if sinks.is_empty() {
        return Err(anyhow!(
            "no sinks are configured: add a [sinks.files] section (e.g. dir = \"{DEFAULT_OUT_DIR}\") [sinks.kafka] or [sinks.influxdb] to the config"
        ));
    }
    Ok((sinks, status))
}

fn file_sinks(files: &FileSinksConfig, base_ms: u64) -> Result<Vec<Box<dyn Sink>>> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if files.ndjson {
        sinks.push(Box::new(NdjsonStream::create(files.dir.join("windows.ndjson"))?));
    }
    if files.line_protocol {
        sinks.push(Box::new(LineProtocolFile::create(files.dir.join("windows.lp"))?));
    }
    if files.csv {
        sinks.push(Box::new(CsvExport::new(files.dir.join("windows.csv"), base_ms)));
    }
    if files.dead_letters {
        sinks.push(Box::new(DeadLetterFile::create(files.dir.join("dead-letters.ndjson"))?));
    }
    Ok(sinks)
}

/// SIGINT (Ctrl-C), SIGTERM (Kubernetes, systemd, `docker stop`) and SIGHUP all stop the job
/// cleanly: the source closes, open windows flush, sinks drain, offsets are committed.
fn install_ctrl_c(stop: Arc<AtomicBool>) -> Result<()> {
    ctrlc::set_handler(move || {
        if stop.swap(true, Relaxed) {
            eprintln!("second stop signal: exiting without flushing");
            std::process::exit(130);
        }
        eprintln!("stopping: closing the source and flushing open windows (signal again to abort)");
    })
    .context("installing the SIGINT/SIGTERM handler")
}

struct Outcome {
    stats: Arc<PipelineStats>,
    report: SinkReport,
    elapsed: Duration,
}

impl Outcome {
    fn summary_line(&self, rows: Option<u64>) -> String {
        let events = self.stats.lines.load(Relaxed);
        let seconds = self.elapsed.as_secs_f64();
        let mut line = format!(
            "events={events} rows={} seconds={seconds:.3} events_per_s={:.0} dead_lettered={}",
            rows.unwrap_or(self.report.rows),
            events as f64 / seconds.max(1e-9),
            self.stats.total_dead_letters()
        );
        if rows.is_none() {
            // A streaming run's wall time includes waiting for input; this is the reading span.
            let read = self.stats.read_seconds();
            line.push_str(&format!(
                " read_seconds={read:.3} read_events_per_s={:.0}",
                events as f64 / read.max(1e-9)
            ));
        }
        line
    }
}

/// Runs the job with `sinks`, calling `progress` about ten times a second until it ends.
fn execute(
    config: &Config,
    stages: Vec<Box<dyn Stage>>,
    sinks: Vec<Box<dyn Sink>>,
    stats: Arc<PipelineStats>,
    stop: Arc<AtomicBool>,
    mut progress: impl FnMut(&PipelineStats),
) -> Result<Outcome> {
    let settings = JobSettings {
        source: config.source.clone(),
        definitions: config.definitions()?,
        windows: config.pipeline.clone(),
        max_line_bytes: config.runtime.max_line_bytes,
        timestamps: config.timestamps(),
        workers: config.runtime.workers,
        cluster: match &config.runtime.hostfile {
            None => Cluster::Local,
            Some(_) => Cluster::Processes {
                process: config.runtime.process,
                addresses: config.cluster_addresses()?,
            },
        },
        analytics: config.analytics.enabled.then(|| config.analytics.clone()),
        pii: config
            .privacy
            .open(std::env::var(KEY_ENV).ok(), config.runtime.hostfile.is_some())?,
        guard: stats
            .cardinality
            .get_or_init(|| Arc::new(CardinalityGuard::new(config.limits)))
            .clone(),
    };
    let (sender, receiver) = crossbeam_channel::bounded(SINK_QUEUE_BATCHES);
    let sink_runner = spawn_sinks(stages, sinks, receiver);
    let started = Instant::now();
    let job_stats = stats.clone();
    let main = std::thread::current();
    let job = std::thread::Builder::new()
        .name("tidemark-job".into())
        .spawn(move || {
            let result = run_job(settings, sender, job_stats, stop);
            main.unpark();
            result
        })
        .context("starting the job")?;
    while !job.is_finished() {
        progress(&stats);
        std::thread::park_timeout(Duration::from_millis(100));
    }
    progress(&stats);
    let job_result = job.join().map_err(|_| anyhow!("the job thread panicked"))?;
    let report = sink_runner.join()?;
    job_result?;
    Ok(Outcome {
        stats,
        report,
        elapsed: started.elapsed(),
    })
}
