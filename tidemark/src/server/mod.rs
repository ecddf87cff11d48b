//! The HTTP server: REST API, `/metrics`, `/ws/live` and the live page, on warp.
//!
//! One server per process, on its own thread with its own small tokio runtime, so neither
//! its load nor a slow client can take time from the timely workers or the sink thread; it
//! only reads the shared live state ([`Live`]) and the pipeline counters. `tidemark run`
//! starts it before the job and stops it after.
//!
//! * `/healthz`, `/readyz` in [`health`], `/metrics` (Prometheus) in [`metrics`];
//! * `/api/v1/…` in [`query`] (its inner loop in [`groups`], older windows in [`history`]),
//!   [`series`], [`export`] and [`alerts`];
//! * `/ws/live` in [`ws`], the live page and the OpenAPI description in [`page`];
//! * shared request handling in [`auth`], [`body`], [`error`], [`params`], [`select`], [`time`].

pub mod alerts;
pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod export;
pub mod groups;
pub mod health;
pub mod history;
pub mod metrics;
pub mod page;
pub mod params;
pub mod query;
pub mod select;
pub mod series;
pub mod time;
pub mod ws;

use crate::config::Config;
use anyhow::{Context, Result, anyhow};
use auth::{Auth, Caller, Role, require};
use config::ServerConfig;
use health::Progress;
use metrics::Metrics;
use params::SeriesParams;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tidemark_dataflows::PipelineStats;
use tidemark_sinks::Sink;
use tidemark_sinks::influxdb::InfluxDbStatus;
use tidemark_sinks::live::{AlertBoard, History, Live};
use tokio::sync::oneshot;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::http::header::CONTENT_TYPE;
use warp::reply::{Reply, Response};

/// What the server needs to know about the pipeline.
pub struct PipelineInfo {
    /// The source's name, for metric labels.
    pub source: String,
    /// Allowed lateness, for the watermark delay.
    pub lateness_ms: i64,
    /// Window sizes computed, base first.
    pub sizes_ms: Vec<u64>,
    /// The InfluxDB sink's status, for `/readyz` and `/metrics`.
    pub influxdb: Option<InfluxDbStatus>,
    /// Where older windows are read back from (the InfluxDB sink's database), if configured.
    pub history: Option<History>,
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl Server {
    /// The address it listens on (the real port when 0 was configured).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving (open WebSocket connections are closed) and waits for the thread.
    pub fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.thread.join();
    }
}

/// Everything the handlers share.
struct State {
    live: Arc<Live>,
    metrics: Metrics,
    progress: Arc<Progress>,
    sizes_ms: Vec<u64>,
    max_body: usize,
    history: Option<History>,
}

/// Binds `config.addr` and serves on a thread of its own; fails at once if it cannot bind.
pub fn start(
    config: &ServerConfig,
    live: Arc<Live>,
    stats: Arc<PipelineStats>,
    pipeline: PipelineInfo,
) -> Result<Server> {
    let mut metrics = Metrics::new(stats.clone(), live.metrics(), &pipeline.source, pipeline.lateness_ms)
        .context("registering the metrics")?;
    if let Some(influxdb) = &pipeline.influxdb {
        metrics
            .watch_influxdb(influxdb.clone())
            .context("registering the InfluxDB metrics")?;
    }
    let ws_context = Arc::new(ws::WsContext {
        live: live.clone(),
        metrics: metrics.ws.clone(),
        instance: instance_id(),
        heartbeat: config.heartbeat,
        sizes_ms: pipeline.sizes_ms.clone(),
        max_clients: config.max_ws_clients,
    });
    let state = Arc::new(State {
        live,
        metrics,
        progress: Progress::new(stats, pipeline.influxdb),
        sizes_ms: pipeline.sizes_ms,
        max_body: config.max_body_bytes,
        history: pipeline.history,
    });
    let auth = Arc::new(Auth::new(
        &config.api_keys,
        config.rate_limit_per_second,
        config.rate_limit_burst,
    ));
    let routes = routes(state.clone(), auth, ws_context);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tidemark-http")
        .enable_io()
        .enable_time()
        .build()
        .context("starting the HTTP server's runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.addr))
        .with_context(|| {
            format!(
                "server.addr: cannot listen on {}; choose another address with --http-addr \
                 (127.0.0.1:0 picks a free port) or set [server] enabled = false",
                config.addr
            )
        })?;
    let addr = listener.local_addr().context("reading the server's address")?;
    let (shutdown, stopped) = oneshot::channel::<()>();
    let progress = state.progress.clone();
    let thread = std::thread::Builder::new()
        .name("tidemark-http".into())
        .spawn(move || {
            runtime.spawn(progress.watch());
            runtime.block_on(async move {
                let server = warp::serve(routes).incoming(listener).run();
                tokio::select! {
                    () = server => {}
                    _ = stopped => {}
                }
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(|e| anyhow!("starting the HTTP server thread: {e}"))?;
    Ok(Server { addr, shutdown, thread })
}

/// The sinks to run and the server serving their live state.
pub struct Attached {
    /// Every sink, the live sink last, each timed.
    pub sinks: Vec<Box<dyn Sink>>,
    /// The server, unless `[server] enabled = false`.
    pub server: Option<Server>,
    /// The alert board whose API silences the alert engine must honour (with the server).
    pub board: Option<Arc<AlertBoard>>,
}

/// For `tidemark run`: creates the live state, adds its sink to `sinks` (timing every sink's
/// writes), starts the server and prints where it listens; with `[server] enabled = false`
/// the sinks stay as they are.
/// `influxdb` is the InfluxDB sink's status, shown in `/readyz` and `/metrics`.
pub fn attach(
    config: &Config,
    sinks: Vec<Box<dyn Sink>>,
    stats: Arc<PipelineStats>,
    influxdb: Option<InfluxDbStatus>,
) -> Result<Attached> {
    let server_config = &config.server;
    if !server_config.enabled {
        return Ok(Attached {
            sinks,
            server: None,
            board: None,
        });
    }
    let live = Live::new(server_config.live_settings());
    let mut sinks: Vec<Box<dyn Sink>> = sinks.into_iter().map(|sink| live.timed(sink)).collect();
    sinks.push(live.timed(Box::new(live.sink())));
    let pipeline = PipelineInfo {
        source: config.source.name(),
        lateness_ms: config.pipeline.allowed_lateness.as_millis() as i64,
        sizes_ms: config.pipeline.sizes_ms(),
        influxdb,
        history: config
            .sinks
            .influxdb
            .as_ref()
            .map(History::new)
            .transpose()
            .context("reading older windows back from InfluxDB")?,
    };
    let board = live.alert_board();
    let server = start(server_config, live, stats, pipeline)?;
    let access = if server_config.is_open() {
        "open: no API keys are configured, so it listens on loopback only"
    } else {
        "API keys required"
    };
    println!("live page and HTTP API on http://{}/ ({access})", server.addr());
    Ok(Attached {
        sinks,
        server: Some(server),
        board: Some(board),
    })
}

/// A per-process id for resume tokens: positions from another process mean nothing.
fn instance_id() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

fn json(value: &impl serde::Serialize, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn with_state(state: Arc<State>) -> impl Filter<Extract = (Arc<State>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

fn routes(state: Arc<State>, auth: Arc<Auth>, ws_context: Arc<ws::WsContext>) -> BoxedFilter<(Response,)> {
    let read = || require(auth.clone(), Role::Read);
    let max_body = state.max_body;
    let state = || with_state(state.clone());

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .and(state())
        .map(|s: Arc<State>| json(&s.progress.health(), StatusCode::OK))
        .boxed();
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(state())
        .map(|s: Arc<State>| {
            let readiness = s.progress.readiness(&s.live);
            let status = if readiness.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(&readiness, status)
        })
        .boxed();
    let prometheus = warp::path!("metrics")
        .and(warp::get())
        .and(read())
        .and(state())
        .map(|_: Caller, s: Arc<State>| {
            let mut response = Response::new(s.metrics.render().into());
            response.headers_mut().insert(
                CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8"
                    .parse()
                    .expect("valid header"),
            );
            response
        })
        .boxed();
    let query = warp::path!("api" / "v1" / "metrics" / "query")
        .and(warp::post())
        .and(read())
        .and(body::json::<query::QueryRequest>(max_body))
        .and(state())
        .and_then(|_: Caller, request, s: Arc<State>| async move {
            let plan = query::Plan::new(request, &s.sizes_ms)?;
            let live = plan.live(&s.live.store().read())?;
            let answer = match (plan.older_range(&live), s.history.clone()) {
                (Some(range), Some(history)) => {
                    let (plan, older) = tokio::task::spawn_blocking(move || {
                        let older = plan.read_older(&history, range);
                        (plan, older)
                    })
                    .await
                    .map_err(|e| error::ApiError::unavailable(format!("reading older windows: {e}")))?;
                    plan.answer(live, Some(older?))
                }
                _ => plan.answer(live, None),
            };
            Ok::<_, warp::Rejection>(json(&answer, StatusCode::OK))
        })
        .boxed();
    let series = warp::path!("api" / "v1" / "series")
        .and(warp::get())
        .and(read())
        .and(warp::query::<Vec<(String, String)>>())
        .and(state())
        .and_then(|_: Caller, pairs, s: Arc<State>| async move {
            let params = SeriesParams::parse(pairs, &s.sizes_ms, &[])?;
            let list = series::list(&s.live.store().read(), &params)?;
            Ok::<_, warp::Rejection>(json(&list, StatusCode::OK))
        })
        .boxed();
    let export = warp::path!("api" / "v1" / "export")
        .and(warp::get())
        .and(read())
        .and(warp::query::<Vec<(String, String)>>())
        .and(state())
        .and_then(|_: Caller, pairs, s: Arc<State>| async move {
            let params = SeriesParams::parse(pairs, &s.sizes_ms, &["format"])?;
            let format = export::Format::parse(params.extra("format"))?;
            let body = export::Export::new(s.live.clone(), params, format);
            let mut response = warp::reply::stream(futures_util::stream::iter(body)).into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, format.content_type().parse().expect("valid header"));
            Ok::<_, warp::Rejection>(response)
        })
        .boxed();
    let alerts_get = warp::path!("api" / "v1" / "alerts")
        .and(warp::get())
        .and(read())
        .and(state())
        .map(|_: Caller, s: Arc<State>| json(&alerts::list(s.live.alerts()), StatusCode::OK))
        .boxed();
    let alerts_post = warp::path!("api" / "v1" / "alerts")
        .and(warp::post())
        .and(require(auth.clone(), Role::Admin))
        .and(body::json::<alerts::AlertAction>(max_body))
        .and(state())
        .and_then(|caller: Caller, action, s: Arc<State>| async move {
            let (status, result) = alerts::act(s.live.alerts(), &caller, action)?;
            Ok::<_, warp::Rejection>(json(&result, status))
        })
        .boxed();
    let live = ws::route(ws_context, auth.clone()).boxed();
    healthz
        .or(readyz)
        .unify()
        .or(prometheus)
        .unify()
        .or(query)
        .unify()
        .or(series)
        .unify()
        .or(export)
        .unify()
        .or(alerts_get)
        .unify()
        .or(alerts_post)
        .unify()
        .or(live)
        .unify()
        .or(page::routes())
        .unify()
        .recover(error::recover)
        .unify()
        .map(|mut response: Response| {
            response
                .headers_mut()
                .insert("x-content-type-options", "nosniff".parse().expect("valid header"));
            response
        })
        .boxed()
}
