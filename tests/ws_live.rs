//! `/ws/live` with a real WebSocket client: subscribe, receive window updates, disconnect,
//! reconnect with the resume token and receive exactly what was missed; heartbeats, protocol
//! errors, and a client that stops reading is dropped with a reason instead of being buffered.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::running::Running;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const FAST_WINDOWS: &str = r#"
[source]
type = "generator"
pace = "realtime"
events_per_second = 3000.0

[pipeline]
base = "1s"
rollups = ["5s"]
allowed_lateness = "500ms"

[server]
heartbeat = "1s"
"#;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(server: &Running) -> Socket {
    connect_async(format!("ws://{}/ws/live", server.addr))
        .await
        .expect("connecting")
        .0
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.unwrap();
}

/// The next JSON message, failing after `timeout`.
async fn next(socket: &mut Socket, timeout: Duration) -> Value {
    loop {
        let message = tokio::time::timeout(timeout, socket.next())
            .await
            .expect("a message in time")
            .expect("the connection is open")
            .expect("a valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Window events received over `duration`: (series, window_start), and the last token.
async fn collect(socket: &mut Socket, duration: Duration, seen: &mut BTreeSet<(String, i64)>) -> Option<String> {
    let deadline = Instant::now() + duration;
    let mut token = None;
    while Instant::now() < deadline {
        let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(deadline - Instant::now(), socket.next()).await
        else {
            continue;
        };
        let message: Value = serde_json::from_str(&text).unwrap();
        if message["type"] == "events" {
            for event in message["events"].as_array().unwrap() {
                if event["type"] == "window" {
                    assert_eq!(event["window_ms"], 1000, "the subscription asked for 1s windows");
                    let series = event["series"].as_str().unwrap().to_string();
                    assert!(series.starts_with("api.request.latency_ms|"), "{series}");
                    seen.insert((series, event["window_start"].as_i64().unwrap()));
                }
            }
        }
        if let Some(resume) = message["resume"].as_str() {
            token = Some(resume.to_string());
        }
    }
    token
}

fn subscription(resume: Option<&str>) -> Value {
    json!({"type": "subscribe", "metrics": ["api.request.latency_ms"], "window": "1s", "interval": "1s", "resume": resume})
}

#[test]
fn reconnecting_with_the_resume_token_replays_what_was_missed() {
    let server = Running::start(FAST_WINDOWS);
    runtime().block_on(async {
        let mut socket = connect(&server).await;
        send(&mut socket, subscription(None)).await;
        let subscribed = next(&mut socket, Duration::from_secs(10)).await;
        assert_eq!(subscribed["type"], "subscribed", "{subscribed}");
        assert_eq!(subscribed["resumed"], false);
        assert_eq!(subscribed["interval_ms"], 1000);
        let snapshot = next(&mut socket, Duration::from_secs(10)).await;
        assert_eq!(snapshot["type"], "snapshot", "{snapshot}");

        let mut first = BTreeSet::new();
        let token = collect(&mut socket, Duration::from_secs(4), &mut first)
            .await
            .expect("a resume token");
        assert!(!first.is_empty(), "window updates arrive");
        socket.close(None).await.unwrap();
        let last_before = first.iter().map(|(_, start)| *start).max().unwrap();

        tokio::time::sleep(Duration::from_secs(3)).await;
        let reconnected_ms = support::running::now_ms();
        let mut socket = connect(&server).await;
        send(&mut socket, subscription(Some(&token))).await;
        let resumed = next(&mut socket, Duration::from_secs(10)).await;
        assert_eq!(resumed["type"], "subscribed");
        assert_eq!(resumed["resumed"], true, "{resumed}");
        let mut second = BTreeSet::new();
        collect(&mut socket, Duration::from_secs(3), &mut second).await;
        let missed: Vec<_> = second
            .iter()
            .filter(|(_, start)| *start > last_before && start + 1500 < reconnected_ms - 500)
            .collect();
        assert!(
            !missed.is_empty(),
            "windows that closed while disconnected are replayed"
        );

        let from = first.iter().map(|(_, s)| *s).min().unwrap();
        let to = second.iter().map(|(_, s)| *s).max().unwrap();
        let export = server.get(
            &format!("/api/v1/export?format=ndjson&metric=api.request.latency_ms&window=1s&start={from}&end={to}"),
            None,
        );
        let stored: BTreeSet<(String, i64)> = export
            .body
            .lines()
            .map(|line| {
                let row: Value = serde_json::from_str(line).unwrap();
                (
                    row["series"].as_str().unwrap().to_string(),
                    row["window_start"].as_i64().unwrap(),
                )
            })
            .collect();
        // The newest window may still have been arriving when collecting stopped: compare the
        // ones before it, which were complete before anything of the newest was sent.
        let stored: BTreeSet<(String, i64)> = stored.into_iter().filter(|(_, start)| *start < to).collect();
        let received: BTreeSet<_> = first.union(&second).cloned().collect();
        let lost: Vec<_> = stored.difference(&received).collect();
        assert!(!stored.is_empty());
        assert!(
            lost.is_empty(),
            "every stored window was delivered across the reconnect; lost {lost:?}"
        );
    });
}

#[test]
fn heartbeats_pings_bad_messages_and_stale_tokens() {
    let server = Running::start(FAST_WINDOWS);
    runtime().block_on(async {
        let mut socket = connect(&server).await;
        let heartbeat = next(&mut socket, Duration::from_secs(5)).await;
        assert_eq!(heartbeat["type"], "heartbeat", "{heartbeat}");
        assert!(heartbeat["resume"].is_string());
        send(&mut socket, json!({"type": "ping"})).await;
        assert_eq!(skip_heartbeats(&mut socket).await["type"], "pong");
        send(&mut socket, json!({"type": "subscribe", "interval": "2s"})).await;
        let error = skip_heartbeats(&mut socket).await;
        assert_eq!(error["type"], "error");
        assert!(error["message"].as_str().unwrap().contains("interval"), "{error}");
        socket.send(Message::text("{not json")).await.unwrap();
        assert_eq!(skip_heartbeats(&mut socket).await["type"], "error");
        send(&mut socket, subscription(Some("0000000000000001-5"))).await;
        let refused = skip_heartbeats(&mut socket).await;
        assert_eq!(refused["resumed"], false);
        assert!(
            refused["resume_refused"].as_str().unwrap().contains("another server"),
            "{refused}"
        );
        assert_eq!(
            skip_heartbeats(&mut socket).await["type"],
            "snapshot",
            "a fresh snapshot replaces the replay"
        );
    });
}

async fn skip_heartbeats(socket: &mut Socket) -> Value {
    loop {
        let message = next(socket, Duration::from_secs(10)).await;
        if message["type"] != "heartbeat" {
            return message;
        }
    }
}

#[test]
fn a_client_that_stops_reading_is_dropped_with_a_reason() {
    let server = Running::start(
        r#"
[source]
type = "generator"
pace = "unlimited"
events_per_second = 20000.0

[pipeline]
base = "1s"
rollups = ["5s"]

[server]
replay_events = 1000
"#,
    );
    runtime().block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let stream = socket.connect(server.addr.parse().unwrap()).await.unwrap();
        let (mut ws, _) =
            tokio_tungstenite::client_async(format!("ws://{}/ws/live", server.addr), MaybeTlsStream::Plain(stream))
                .await
                .unwrap();
        send(&mut ws, json!({"type": "subscribe", "interval": "1s"})).await;
        let counted = Instant::now() + Duration::from_secs(60);
        while dropped(&server) < 1.0 {
            assert!(
                Instant::now() < counted,
                "the client that stopped reading was never dropped"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let reason = loop {
            assert!(Instant::now() < deadline, "the slow client was never dropped");
            match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(frame))))) => break frame.reason.to_string(),
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected a close frame with a reason, got {other:?}"),
            }
        };
        assert!(reason.contains("slow client"), "{reason}");
    });
    assert_eq!(server.get("/healthz", None).status, 200, "the server is unaffected");
}

/// Clients the server dropped for being slow, from `/metrics`.
fn dropped(server: &Running) -> f64 {
    ["send_timeout", "lagged"]
        .iter()
        .filter_map(|r| server.metric(None, &format!("tidemark_ws_dropped_total{{reason=\"{r}\"}}")))
        .sum()
}
