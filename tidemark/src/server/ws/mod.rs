//! `/ws/live`: live window updates, anomaly scores, forecasts and alert changes.
//!
//! Each connection is one task with its own cursor into the journal. It wakes when the live
//! sink appends, reads what is new, filters it by the subscription, applies the update
//! interval ([`throttle`]) and sends. The per-event work shared by every client — the JSON
//! text and finding the events of a metric — is done once per journal chunk
//! ([`tidemark_sinks::live::Encoded`]): a client visits only its metrics' events and sends
//! by copying their text, so 200 clients cost little more than one.
//!
//! Backpressure is per client and never reaches the pipeline: a client whose socket does not
//! drain within [`SEND_TIMEOUT`], or whose cursor falls out of the journal's retained range, is
//! dropped with a close frame saying why — and can reconnect with its last resume token (or
//! take a fresh snapshot).

mod protocol;
mod throttle;

use super::auth::Auth;
use super::error::ApiError;
use super::metrics::WsMetrics;
use super::query::window;
use super::select::Selector;
use super::time::now_ms;
use futures_util::{SinkExt, StreamExt};
use protocol::{ClientMessage, ResumeToken, ServerMessage, SnapshotWindow, Subscribe, events_message, interval_ms};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use throttle::{Throttle, WindowKey};
use tidemark_sinks::live::{Chunk, Live, LiveEvent, Read};
use tracing::debug;
use warp::Filter;
use warp::filters::ws::{Message, WebSocket};

/// Longest a single send may take before the client counts as stuck.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a dropped client gets to read what is buffered and the close frame with the
/// reason (its socket may be full: the reason queues behind the data).
const CLOSE_GRACE: Duration = Duration::from_secs(10);
/// Most events per `events` message.
const EVENTS_PER_MESSAGE: usize = 2000;
/// Journal chunks read per step.
const CHUNKS_PER_READ: usize = 16;
/// Most series and windows in a snapshot.
const SNAPSHOT_SERIES: usize = 500;
const SNAPSHOT_WINDOWS: usize = 20_000;
/// Largest message accepted from a client.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// What every connection shares.
pub struct WsContext {
    /// The live state.
    pub live: Arc<Live>,
    /// The instruments.
    pub metrics: WsMetrics,
    /// This server process' identity in resume tokens.
    pub instance: u64,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Configured window sizes, base first.
    pub sizes_ms: Vec<u64>,
    /// Most clients at once.
    pub max_clients: usize,
}

/// The `/ws/live` route.
pub fn route(
    ctx: Arc<WsContext>,
    auth: Arc<Auth>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path!("ws" / "live")
        .and(warp::ws())
        .and(super::auth::presented_key())
        .and(warp::query::<HashMap<String, String>>())
        .and_then(
            move |ws: warp::ws::Ws, key: Option<String>, query: HashMap<String, String>| {
                let (ctx, auth) = (ctx.clone(), auth.clone());
                async move {
                    let key = key.or_else(|| query.get("access_token").cloned());
                    auth.check(key.as_deref(), super::auth::Role::Read)
                        .map_err(warp::reject::custom)?;
                    if ctx.metrics.clients.get() >= ctx.max_clients as i64 {
                        ctx.metrics.dropped.with_label_values(&["too_many_clients"]).inc();
                        return Err(warp::reject::custom(ApiError::unavailable(format!(
                            "{} WebSocket clients are connected (server.max_ws_clients); try again later",
                            ctx.max_clients
                        ))));
                    }
                    let reply = ws
                        .max_message_size(MAX_CLIENT_MESSAGE)
                        .on_upgrade(move |socket| serve(socket, ctx));
                    Ok::<_, warp::Rejection>(warp::reply::Reply::into_response(reply))
                }
            },
        )
}

/// Why a connection ended on the server's initiative.
enum Ending {
    /// The client went away (or sent close).
    Gone,
    /// The client's socket did not drain.
    SendTimeout,
    /// The client fell behind the retained journal.
    Lagged(u64),
}

/// An event a client will be sent: its chunk and position there (whose encoded JSON goes out).
struct Picked {
    chunk: Arc<Chunk>,
    position: u32,
}

impl Picked {
    fn json(&self) -> &str {
        self.chunk.encoded().json(self.position as usize)
    }
}

struct Subscription {
    selector: Selector,
    window_ms: Option<u64>,
    cursor: u64,
    interval_ms: u64,
    throttle: Throttle<Picked>,
    /// Scratch for the positions of a chunk's events of the subscribed metrics.
    positions: Vec<u32>,
}

impl Subscription {
    /// Whether an event of a selected metric (or an alert change) is wanted.
    fn wants(&self, event: &LiveEvent) -> bool {
        match event {
            LiveEvent::Alert(_) => true,
            LiveEvent::Window(w) => {
                self.window_ms.is_none_or(|ms| ms == w.window_ms) && self.selector.matches_within_metric(&w.series)
            }
            other => other.series().is_some_and(|s| self.selector.matches_within_metric(s)),
        }
    }

    /// Offers the chunk's events from the cursor on to the throttle and moves the cursor past
    /// the chunk; what may go out now is appended to `out`.
    fn take(&mut self, chunk: &Arc<Chunk>, now: Instant, out: &mut Vec<(u64, Picked)>) {
        let from = self.cursor.saturating_sub(chunk.first) as u32;
        let mut positions = std::mem::take(&mut self.positions);
        if self.selector.metrics().is_empty() {
            positions.clear();
            positions.extend(from..chunk.events.len() as u32);
        } else {
            chunk.encoded().positions_of(self.selector.metrics(), &mut positions);
        }
        for &position in positions.iter().filter(|&&p| p >= from) {
            let event = &chunk.events[position as usize];
            if !self.wants(event) {
                continue;
            }
            let window = match event {
                LiveEvent::Window(w) => Some(WindowKey {
                    series: w.series_id,
                    window_ms: w.window_ms,
                    window_start: w.window_start,
                }),
                _ => None,
            };
            let seq = chunk.first + u64::from(position);
            let picked = Picked {
                chunk: chunk.clone(),
                position,
            };
            if let Some(picked) = self.throttle.offer(window, seq, picked, now) {
                out.push((seq, picked));
            }
        }
        self.positions = positions;
        self.cursor = chunk.end();
    }

    fn resume_seq(&self) -> u64 {
        self.throttle
            .oldest_held()
            .map_or(self.cursor, |held| held.min(self.cursor))
    }
}

struct Connection {
    ctx: Arc<WsContext>,
    socket: WebSocket,
    subscription: Option<Subscription>,
}

async fn serve(socket: WebSocket, ctx: Arc<WsContext>) {
    ctx.metrics.clients.inc();
    let metrics = ctx.metrics.clone();
    let mut connection = Connection {
        ctx,
        socket,
        subscription: None,
    };
    let outcome = connection.run().await;
    let reason = match outcome {
        Ending::Gone => None,
        Ending::SendTimeout => Some((
            "send_timeout",
            format!("slow client: a send took over {}s", SEND_TIMEOUT.as_secs()),
        )),
        Ending::Lagged(missed) => Some((
            "lagged",
            format!("slow client: fell {missed} events behind the replay buffer; reconnect"),
        )),
    };
    if let Some((label, text)) = reason {
        debug!(reason = label, "dropping a WebSocket client");
        metrics.dropped.with_label_values(&[label]).inc();
        let close = Message::close_with(1013u16, text);
        let _ = tokio::time::timeout(CLOSE_GRACE, connection.socket.send(close)).await;
    }
    metrics.clients.dec();
}

impl Connection {
    async fn run(&mut self) -> Ending {
        let mut head = self.ctx.live.journal().watch();
        let mut heartbeat = tokio::time::interval(self.ctx.heartbeat);
        heartbeat.tick().await;
        loop {
            let due = self.subscription.as_ref().and_then(|s| s.throttle.next_due());
            let subscribed = self.subscription.is_some();
            let step = tokio::select! {
                incoming = self.socket.next() => match incoming {
                    Some(Ok(message)) if message.is_text() => {
                        let text = message.to_str().unwrap_or_default().to_string();
                        head.borrow_and_update();
                        self.handle(&text).await
                    }
                    Some(Ok(message)) if message.is_close() => Err(Ending::Gone),
                    Some(Ok(_)) => Ok(()),
                    _ => Err(Ending::Gone),
                },
                changed = head.changed(), if subscribed => match changed {
                    Ok(()) => self.drain().await,
                    Err(_) => Err(Ending::Gone),
                },
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()), if due.is_some() => {
                    self.flush_due().await
                }
                _ = heartbeat.tick() => self.heartbeat().await,
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    async fn send(&mut self, message: &ServerMessage<'_>) -> Result<(), Ending> {
        self.send_text(message.to_text()).await
    }

    async fn send_text(&mut self, text: String) -> Result<(), Ending> {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(Message::text(text))).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Ending::Gone),
            Err(_) => Err(Ending::SendTimeout),
        }
    }

    fn token(&self, seq: u64) -> String {
        ResumeToken {
            instance: self.ctx.instance,
            seq,
        }
        .encode()
    }

    async fn handle(&mut self, text: &str) -> Result<(), Ending> {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => message,
            Err(e) => {
                let message = format!("could not use the message: {e}");
                return self.send(&ServerMessage::Error { message }).await;
            }
        };
        match message {
            ClientMessage::Ping => self.send(&ServerMessage::Pong).await,
            ClientMessage::Unsubscribe => {
                self.subscription = None;
                Ok(())
            }
            ClientMessage::Subscribe(request) => match self.subscribe(request) {
                Ok((subscription, refused, snapshot_history)) => {
                    let resumed = snapshot_history.is_none();
                    let interval_ms = subscription.interval_ms;
                    self.subscription = Some(subscription);
                    self.send(&ServerMessage::Subscribed {
                        interval_ms,
                        resumed,
                        resume_refused: refused,
                        heartbeat_ms: self.ctx.heartbeat.as_millis() as u64,
                    })
                    .await?;
                    if let Some(history) = snapshot_history {
                        self.snapshot(history).await?;
                    }
                    self.drain().await
                }
                Err(message) => self.send(&ServerMessage::Error { message }).await,
            },
        }
    }

    /// Builds a subscription, with why a resume token was refused and the snapshot's
    /// history (`None` when the token was honoured and no snapshot is due).
    fn subscribe(&self, request: Subscribe) -> Result<(Subscription, Option<&'static str>, Option<usize>), String> {
        let interval = interval_ms(request.interval.as_deref())?;
        let window_ms = request
            .window
            .as_deref()
            .map(|label| window(Some(label), &self.ctx.sizes_ms))
            .transpose()
            .map_err(|e| e.message)?;
        let selector = Selector::new(request.metrics, request.series, &request.filters).map_err(|e| e.message)?;
        let history = request.history.unwrap_or(60).min(1000);
        let journal = self.ctx.live.journal();
        let (cursor, refused, snapshot) = match request.resume.as_deref().map(ResumeToken::decode) {
            None => (journal.end(), None, Some(history)),
            Some(None) => (journal.end(), Some("malformed"), Some(history)),
            Some(Some(token)) if token.instance != self.ctx.instance => {
                (journal.end(), Some("issued by another server process"), Some(history))
            }
            Some(Some(token)) if token.seq < journal.oldest() || token.seq > journal.end() => (
                journal.end(),
                Some("expired: the missed events are no longer retained"),
                Some(history),
            ),
            Some(Some(token)) => (token.seq, None, None),
        };
        let subscription = Subscription {
            selector,
            window_ms,
            cursor,
            interval_ms: interval,
            throttle: Throttle::new(Duration::from_millis(interval)),
            positions: Vec::new(),
        };
        Ok((subscription, refused, snapshot))
    }

    async fn snapshot(&mut self, history: usize) -> Result<(), Ending> {
        let Some(subscription) = &self.subscription else {
            return Ok(());
        };
        let live = self.ctx.live.clone();
        let text = {
            let view = live.store().read();
            let mut windows = Vec::new();
            let mut anomalies = Vec::new();
            let mut forecasts = Vec::new();
            let mut truncated = false;
            for (n, series) in subscription.selector.select(&view).enumerate() {
                if n >= SNAPSHOT_SERIES || windows.len() >= SNAPSHOT_WINDOWS {
                    truncated = true;
                    break;
                }
                let rings = series
                    .rings()
                    .iter()
                    .filter(|r| subscription.window_ms.is_none_or(|ms| ms == r.window_ms()));
                for ring in rings {
                    windows.extend(ring.latest(history).map(|(start, aggregates)| SnapshotWindow {
                        series: series.key(),
                        window_ms: ring.window_ms(),
                        window_start: *start,
                        aggregates,
                    }));
                }
                anomalies.extend(series.anomalies().iter());
                forecasts.extend(series.forecasts().iter());
            }
            ServerMessage::Snapshot {
                windows,
                anomalies,
                forecasts,
                alerts: live.alerts().active(now_ms()),
                truncated,
                resume: self.token(subscription.cursor),
            }
            .to_text()
        };
        self.send_text(text).await
    }

    /// Reads everything new from the journal and sends what the subscription wants.
    async fn drain(&mut self) -> Result<(), Ending> {
        let live = self.ctx.live.clone();
        let mut out = Vec::new();
        loop {
            let Some(subscription) = self.subscription.as_mut() else {
                return Ok(());
            };
            let chunks = match live.journal().read(subscription.cursor, CHUNKS_PER_READ) {
                Read::UpToDate => break,
                Read::Lagged { missed } => return Err(Ending::Lagged(missed)),
                Read::Events(chunks) => chunks,
            };
            let now = Instant::now();
            for chunk in &chunks {
                subscription.take(chunk, now, &mut out);
            }
            if out.len() >= EVENTS_PER_MESSAGE {
                self.send_events(&mut out).await?;
            }
        }
        self.send_events(&mut out).await
    }

    async fn flush_due(&mut self) -> Result<(), Ending> {
        let Some(subscription) = self.subscription.as_mut() else {
            return Ok(());
        };
        let mut out = subscription.throttle.due(Instant::now());
        self.send_events(&mut out).await
    }

    /// Sends `out` (events with their journal positions, ascending) in messages of at most
    /// [`EVENTS_PER_MESSAGE`]; each message's token resumes right after it.
    async fn send_events(&mut self, out: &mut Vec<(u64, Picked)>) -> Result<(), Ending> {
        let resume_seq = self.subscription.as_ref().map_or(0, |s| s.resume_seq());
        let mut start = 0;
        while start < out.len() {
            let end = (start + EVENTS_PER_MESSAGE).min(out.len());
            let next = out.get(end).map_or(resume_seq, |(seq, _)| (*seq).min(resume_seq));
            let resume = ResumeToken {
                instance: self.ctx.instance,
                seq: next,
            };
            let text = events_message(out[start..end].iter().map(|(_, picked)| picked.json()), resume);
            self.send_text(text).await?;
            self.ctx.metrics.events_sent.inc_by((end - start) as u64);
            start = end;
        }
        out.clear();
        Ok(())
    }

    async fn heartbeat(&mut self) -> Result<(), Ending> {
        let resume = self
            .subscription
            .as_ref()
            .map_or_else(|| self.ctx.live.journal().end(), |s| s.resume_seq());
        self.send(&ServerMessage::Heartbeat {
            ts: now_ms(),
            resume: self.token(resume),
        })
        .await
    }
}
