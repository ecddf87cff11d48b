//! `POST /api/v1/metrics/query` over a time range longer than the live store holds, with the
//! InfluxDB sink writing to a real InfluxDB 1.6 (`TIDEMARK_TEST_INFLUXDB`): the older windows
//! are read back from InfluxDB and joined with the live ones, the answer says which part came
//! from where, and every point equals an independent computation from the input events.
//!
//! The events come through a real Kafka topic (`TIDEMARK_TEST_KAFKA`), so the process keeps
//! serving after reading them; their times lie a day ahead, so the watermark follows them.

mod influx_support;
mod support;

use influx_support::Influx;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use support::kafka::{broker, create_topic, produce_raw, source_section, unique};
use support::running::{Running, now_ms};
use support::{Expected, Rng, batch_windows, close, observations};

const MINUTE: i64 = 60_000;
/// Minutes of events; the last one stays open (no later event closes it).
const MINUTES: i64 = 30;
/// Windows the live store keeps per series.
const RETAINED: i64 = 5;

/// Three events per host and minute from `start`; hosts h0…h5 in zones z0 and z1.
fn events(start: i64) -> Vec<String> {
    let mut rng = Rng(11);
    let mut lines = Vec::new();
    for minute in 0..MINUTES {
        for k in 0..3 {
            for host in 0..6 {
                let ts = start + minute * MINUTE + (k * 17_000 + host * 1_000);
                let value = (rng.below(100_000) as f64) / 100.0;
                lines.push(format!(
                    r#"{{"ts":{ts},"metric":"lat","tags":{{"host":"h{host}","zone":"z{}"}},"value":{value}}}"#,
                    host % 2
                ));
            }
        }
    }
    lines
}

fn tag<'k>(key: &'k str, name: &str) -> &'k str {
    key.split('|')
        .skip(1)
        .find_map(|part| part.strip_prefix(name)?.strip_prefix('='))
        .unwrap_or("")
}

/// The expected points of one query, from the events: per group (by `zone` or all) and window
/// start, the windows of the selected series combined.
fn expected(
    windows: &BTreeMap<(String, i64, i64), Expected>,
    range: (i64, i64),
    by_zone: bool,
    select: impl Fn(&str) -> bool,
    value: impl Fn(&[&Expected]) -> f64,
) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut members: BTreeMap<(String, i64), Vec<&Expected>> = BTreeMap::new();
    for ((key, _, start), window) in windows {
        if (range.0..range.1).contains(start) && select(key) {
            let group = if by_zone {
                tag(key, "zone").to_string()
            } else {
                String::new()
            };
            members.entry((group, *start)).or_default().push(window);
        }
    }
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for ((group, start), windows) in members {
        out.entry(group).or_default().push((start, value(&windows)));
    }
    out
}

fn points(answer: &Value, by_zone: bool) -> BTreeMap<String, Vec<(i64, f64)>> {
    answer["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            let name = if by_zone {
                group["group"]["zone"].as_str().unwrap().to_string()
            } else {
                String::new()
            };
            let points = group["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["ts"].as_i64().unwrap(), p["value"].as_f64().unwrap()))
                .collect();
            (name, points)
        })
        .collect()
}

fn assert_close(got: &BTreeMap<String, Vec<(i64, f64)>>, want: &BTreeMap<String, Vec<(i64, f64)>>, what: &str) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{what}: groups"
    );
    for (group, want) in want {
        let got = &got[group];
        let starts = |p: &[(i64, f64)]| p.iter().map(|(t, _)| *t).collect::<Vec<_>>();
        assert_eq!(starts(got), starts(want), "{what}: window starts of {group:?}");
        for ((ts, g), (_, w)) in got.iter().zip(want) {
            assert!(close(*g, *w, 1e-12), "{what}: {group:?} at {ts}: {g} != {w}");
        }
    }
}

/// `(source, start, end)` of an answer's parts.
type Parts = Vec<(&'static str, i64, i64)>;

fn parts(answer: &Value) -> Vec<(String, i64, i64)> {
    answer["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert!(p.get("error").is_none(), "{p}");
            (
                p["source"].as_str().unwrap().to_string(),
                p["start"].as_i64().unwrap(),
                p["end"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn older_windows_come_from_influxdb_and_join_the_live_ones() {
    let Some(base) = influx_support::server() else { return };
    let Some(broker) = broker() else { return };
    let topic = unique("history");
    create_topic(&broker, &topic, 1);
    let db = Influx::fresh(&base, "query_history");
    let spool = tempfile::tempdir().unwrap();
    let start = (now_ms() / MINUTE + 24 * 60) * MINUTE;
    let config = format!(
        r#"
{source}
[pipeline]
base = "1m"
rollups = []

[server]
retention = {{ "1m" = "{RETAINED}m" }}

[sinks.influxdb]
url = "{base}"
database = "{db}"
flush_interval = "100ms"
self_metrics = false
rejected_path = {rejected:?}
spool_dir = {spool:?}
"#,
        source = source_section(&broker, &topic, &unique("tidemark"), "1s", &spool.path().join("state")),
        db = db.db,
        rejected = spool.path().join("rejected.ndjson").display().to_string(),
        spool = spool.path().join("spool").display().to_string()
    );
    let server = Running::start(&config);
    let lines = events(start);
    produce_raw(
        &broker,
        &topic,
        &lines.iter().map(|l| l.clone().into_bytes()).collect::<Vec<_>>(),
    );

    let windows = batch_windows(&observations(&lines), &[MINUTE]);
    let end = start + (MINUTES - 1) * MINUTE;
    let closed_events: u64 = windows
        .iter()
        .filter(|((_, _, start), _)| *start < end)
        .map(|(_, w)| w.count)
        .sum();
    // A window's point is rewritten on every update; the counts add up once every closed
    // window's final update is stored.
    let statement = format!("SELECT sum(\"count\") FROM \"lat\" WHERE time < {end}ms");
    server.wait_for("every closed window in InfluxDB", Duration::from_secs(60), || {
        let stored = db.query(&statement).first()?.values.first()?.get(1)?.as_u64()?;
        (stored == closed_events).then_some(())
    });
    // Each series keeps its newest RETAINED windows: the live part starts there (the newest
    // window may still be open, so the oldest held is the 24th or 25th minute).
    let cutoff = server.wait_for("the live store to drop older windows", Duration::from_secs(30), || {
        let request = json!({"metric_name": "lat", "time_range": {"start": end - MINUTE, "end": end}});
        let answer = server.post("/api/v1/metrics/query", &request.to_string(), None).json();
        answer["live_from"]
            .as_i64()
            .filter(|from| *from >= start + (MINUTES - RETAINED - 1) * MINUTE)
    });

    let avg = |w: &[&Expected]| w.iter().map(|e| e.sum).sum::<f64>() / w.iter().map(|e| e.count).sum::<u64>() as f64;
    let max = |w: &[&Expected]| w.iter().map(|e| e.max).fold(f64::NEG_INFINITY, f64::max);
    let count = |w: &[&Expected]| w.iter().map(|e| e.count).sum::<u64>() as f64;
    let cases: Vec<(Value, &str, Parts)> = vec![
        (
            json!({"metric_name": "lat", "aggregation": "avg", "group_by": ["zone"],
                   "time_range": {"start": start, "end": end}}),
            "mixed",
            vec![("influxdb", start, cutoff), ("live", cutoff, end)],
        ),
        (
            json!({"metric_name": "lat", "aggregation": "max",
                   "filters": [{"tag": "zone", "value": "z1"}, {"tag": "host", "op": "regex", "value": "h[13]"}],
                   "time_range": {"start": start + 3 * MINUTE, "end": end}}),
            "mixed",
            vec![("influxdb", start + 3 * MINUTE, cutoff), ("live", cutoff, end)],
        ),
        (
            json!({"metric_name": "lat", "aggregation": "count", "group_by": ["zone"],
                   "filters": [{"tag": "host", "op": "ne", "value": "h0"}],
                   "time_range": {"start": start, "end": start + 10 * MINUTE}}),
            "influxdb",
            vec![("influxdb", start, start + 10 * MINUTE)],
        ),
        (
            json!({"metric_name": "lat", "aggregation": "avg", "group_by": ["zone"],
                   "time_range": {"start": cutoff, "end": end}}),
            "live",
            vec![("live", cutoff, end)],
        ),
    ];
    for (request, source, want_parts) in cases {
        let answer = server.post("/api/v1/metrics/query", &request.to_string(), None);
        assert_eq!(answer.status, 200, "{}", answer.body);
        let answer = answer.json();
        assert_eq!(answer["source"], source, "{request}");
        let want_parts: Vec<(String, i64, i64)> = want_parts.into_iter().map(|(s, a, b)| (s.into(), a, b)).collect();
        assert_eq!(parts(&answer), want_parts, "{request}");
        let range = (
            request["time_range"]["start"].as_i64().unwrap(),
            request["time_range"]["end"].as_i64().unwrap(),
        );
        let by_zone = request.get("group_by").is_some();
        let want = match request["aggregation"].as_str().unwrap() {
            "avg" => expected(&windows, range, by_zone, |_| true, avg),
            "max" => expected(
                &windows,
                range,
                by_zone,
                |k| tag(k, "zone") == "z1" && ["h1", "h3"].contains(&tag(k, "host")),
                max,
            ),
            _ => expected(&windows, range, by_zone, |k| tag(k, "host") != "h0", count),
        };
        assert_close(&points(&answer, by_zone), &want, &request.to_string());
    }
}
