//! The server against its contract, `docs/openapi.yaml`: every documented operation is sent
//! to a running `tidemark run` with the documented example request, and must answer with a
//! documented status whose JSON body validates against the documented schema (JSON Schema
//! 2020-12, as OpenAPI 3.1 uses). Secured operations must answer 401 with an `Error` body
//! without a key, operations with a body must answer 400 with an `Error` body to malformed
//! JSON, and the WebSocket messages must validate against `WsServerMessage`.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::running::{Answer, Running, sha256_hex};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "openapi-admin-key";

fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).expect("docs/openapi.yaml is YAML")
}

/// Resolves a local `$ref` such as `#/components/parameters/metric`.
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => spec
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {pointer}")),
        None => value,
    }
}

/// Validates `instance` against `schema`, resolving references into the spec's components.
fn validate(spec: &Value, schema: &Value, instance: &Value, what: &str) {
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": spec["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{what}: bad schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{instance}");
}

/// Checks an answer against the operation's documented responses.
fn check(spec: &Value, operation: &Value, answer: &Answer, what: &str) {
    let status = answer.status.to_string();
    let documented = operation["responses"]
        .get(&status)
        .unwrap_or_else(|| panic!("{what}: status {status} is not documented ({})", answer.body));
    let response = resolve(spec, documented);
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return;
    };
    let media = answer.content_type.split(';').next().unwrap().trim().to_string();
    let entry = content
        .get(&media)
        .unwrap_or_else(|| panic!("{what}: content type {media} is not documented for {status}"));
    match media.as_str() {
        "application/json" => validate(spec, &entry["schema"], &answer.json(), what),
        "application/x-ndjson" => {
            for line in answer.body.lines() {
                validate(spec, &entry["schema"], &serde_json::from_str(line).unwrap(), what);
            }
        }
        _ => assert!(!answer.body.is_empty(), "{what}: empty {media} body"),
    }
}

/// The query string from the operation's parameters that have examples.
fn query_string(spec: &Value, operation: &Value) -> String {
    let mut pairs = Vec::new();
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        let parameter = resolve(spec, parameter);
        if parameter["required"] == true {
            assert!(
                parameter.get("example").is_some(),
                "required parameter {parameter} needs an example"
            );
        }
        if let Some(example) = parameter.get("example") {
            let value = example.as_str().map_or_else(|| example.to_string(), String::from);
            pairs.push(format!("{}={value}", parameter["name"].as_str().unwrap()));
        }
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

fn secured(spec: &Value, operation: &Value) -> bool {
    let security = operation.get("security").unwrap_or(&spec["security"]);
    security.as_array().is_some_and(|s| !s.is_empty())
}

fn upgrade_status(server: &Running, path: &str, key: Option<&str>) -> u16 {
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{auth}\r\n",
        server.addr
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

#[test]
fn every_documented_operation_answers_as_documented() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let server = Running::start(&format!(
        r#"
[source]
type = "generator"
pace = "realtime"
events_per_second = 2000.0

[pipeline]
base = "1s"
rollups = ["5s", "1m"]
allowed_lateness = "500ms"

[[server.api_keys]]
name = "openapi"
sha256 = "{}"
role = "admin"
"#,
        sha256_hex(KEY)
    ));
    server.wait_for("series", Duration::from_secs(30), || {
        (server.get("/api/v1/series?limit=1", Some(KEY)).json()["total"].as_u64()? > 0).then_some(())
    });

    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let what = format!("{} {path}", method.to_uppercase());
            operations += 1;
            let key = secured(&spec, operation).then_some(KEY);
            if path == "/ws/live" {
                let status = upgrade_status(&server, path, key);
                assert!(
                    operation["responses"].get(status.to_string()).is_some(),
                    "{what}: {status}"
                );
                assert_eq!(status, 101, "{what}");
                assert_eq!(upgrade_status(&server, path, None), 401, "{what} without a key");
                continue;
            }
            let url = format!("{path}{}", query_string(&spec, operation));
            let body = operation
                .pointer("/requestBody/content/application~1json/example")
                .map(Value::to_string);
            let send = |key: Option<&str>, body: Option<&str>| match method.as_str() {
                "get" => server.get(&url, key),
                "post" => server.post(&url, body.expect("a documented example body"), key),
                other => panic!("{what}: method {other} is not exercised by this test"),
            };
            let answer = send(key, body.as_deref());
            assert!(answer.status < 300, "{what}: {} {}", answer.status, answer.body);
            check(&spec, operation, &answer, &what);
            if key.is_some() {
                let refused = send(None, body.as_deref());
                assert_eq!(refused.status, 401, "{what} without a key");
                check(&spec, operation, &refused, &format!("{what} without a key"));
            }
            if body.is_some() {
                let malformed = send(key, Some("{\"unterminated"));
                assert_eq!(malformed.status, 400, "{what} with malformed JSON");
                check(&spec, operation, &malformed, &format!("{what} with malformed JSON"));
            }
        }
    }
    assert!(operations >= 10, "{operations} operations documented");

    let error_schema = json!({"$ref": "#/components/schemas/Error"});
    validate(
        &spec,
        &error_schema,
        &server.get("/api/v1/unknown", Some(KEY)).json(),
        "404",
    );

    websocket_messages_match_the_schema(&spec, &server);
}

fn websocket_messages_match_the_schema(spec: &Value, server: &Running) {
    let schema = json!({"$ref": "#/components/schemas/WsServerMessage"});
    let client_schema = json!({"$ref": "#/components/schemas/WsClientMessage"});
    let subscribe =
        json!({"type": "subscribe", "metrics": ["api.request.latency_ms"], "window": "1s", "interval": "1s"});
    validate(spec, &client_schema, &subscribe, "the subscribe message");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let url = format!("ws://{}/ws/live?access_token={KEY}", server.addr);
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        socket.send(Message::text(subscribe.to_string())).await.unwrap();
        socket.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while seen.len() < 4 && tokio::time::Instant::now() < deadline {
            let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(Duration::from_secs(20), socket.next()).await
            else {
                continue;
            };
            let message: Value = serde_json::from_str(&text).unwrap();
            validate(spec, &schema, &message, &format!("a {} message", message["type"]));
            seen.insert(message["type"].as_str().unwrap().to_string());
        }
        for kind in ["subscribed", "snapshot", "events", "pong"] {
            assert!(seen.contains(kind), "no {kind} message among {seen:?}");
        }
    });
}
