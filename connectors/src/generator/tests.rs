//! Whole-generator properties: determinism, worker-count independence, the
//! wire schema, bounded disorder, seasonality, anomalies and validation.
//! (Unit tests of the parts live beside them.)

use super::*;
use serde_json::{Map, Value};
use std::collections::HashMap;

fn settings(total: u64) -> GeneratorSettings {
    GeneratorSettings {
        total_events: Some(total),
        ..GeneratorSettings::default()
    }
}

/// All lines of one worker, with their arrival times.
fn run(s: &GeneratorSettings, worker: usize, workers: usize) -> Vec<(i64, String)> {
    let mut g = Generator::new(s, worker, workers);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        let peeked = g.peek_arrival();
        buf.clear();
        let Some(arrival) = g.next_line(&mut buf) else {
            assert_eq!(peeked, None);
            break;
        };
        assert_eq!(peeked, Some(arrival));
        assert!(!buf.contains(&b'\n'), "a line never contains a newline");
        lines.push((arrival, String::from_utf8(buf.clone()).unwrap()));
    }
    assert_eq!(g.next_line(&mut buf), None, "stays exhausted");
    lines
}

/// `ts` of a well-formed line, without a full JSON parse.
fn ts_of(line: &str) -> i64 {
    let from = line.find("\"ts\":").expect("ts") + 5;
    let digits: String = line[from..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

#[test]
fn same_settings_give_identical_bytes() {
    let s = GeneratorSettings {
        malformed_ratio: 0.05,
        ..settings(20_000)
    };
    let a = run(&s, 0, 1);
    assert_eq!(a.len(), 20_000);
    assert_eq!(a, run(&s, 0, 1));
    let other = run(&GeneratorSettings { seed: 7, ..s }, 0, 1);
    assert_ne!(a, other);
}

#[test]
fn union_of_workers_is_independent_of_worker_count() {
    let s = settings(30_000);
    let mut one = run(&s, 0, 1);
    for n in [2, 3] {
        let mut union: Vec<(i64, String)> = (0..n).flat_map(|w| run(&s, w, n)).collect();
        assert_eq!(union.len(), one.len());
        union.sort();
        one.sort();
        assert_eq!(union, one, "n = {n}");
    }
    // More workers than shards: the surplus workers get nothing.
    assert!(run(&s, 64, 65).is_empty());
    assert_eq!(run(&s, 63, 65).len(), 30_000 / 64);
}

#[test]
fn arrivals_are_non_decreasing_and_rate_matches_settings() {
    // One simulated week at 0.5 events/s: ~302 400 events.
    let s = GeneratorSettings {
        events_per_second: 0.5,
        ..GeneratorSettings::default()
    };
    let week = 7 * 24 * 3_600_000;
    let mut g = Generator::new(&s, 0, 1);
    let mut buf = Vec::new();
    let (mut count, mut last) = (0u64, i64::MIN);
    while let Some(arrival) = g.next_line(&mut buf) {
        buf.clear();
        assert!(arrival >= last);
        last = arrival;
        if arrival >= s.start_ms + week {
            break;
        }
        count += 1;
    }
    let expected = 0.5 * week as f64 / 1000.0;
    let ratio = count as f64 / expected;
    assert!((0.97..1.05).contains(&ratio), "rate ratio {ratio}");
}

#[derive(Clone, Copy, Debug)]
enum Ty {
    Int,
    Float,
    Str,
    StrOrNull,
    Tags,
}

fn spec(kind: &str) -> Option<&'static [(&'static str, Ty)]> {
    use Ty::*;
    Some(match kind {
        "metric" => &[
            ("kind", Str),
            ("ts", Int),
            ("metric", Str),
            ("tags", Tags),
            ("value", Float),
        ],
        "task_execution" => &[
            ("kind", Str),
            ("ts", Int),
            ("task_id", Str),
            ("task_type", Str),
            ("queue", Str),
            ("start_ts", Int),
            ("end_ts", Int),
            ("duration_ms", Float),
            ("status", Str),
            ("cpu_pct", Float),
            ("memory_mb", Float),
            ("error", StrOrNull),
        ],
        "api_request" => &[
            ("kind", Str),
            ("ts", Int),
            ("service", Str),
            ("route", Str),
            ("method", Str),
            ("region", Str),
            ("status_code", Int),
            ("latency_ms", Float),
            ("bytes", Int),
        ],
        "system_sample" => &[
            ("kind", Str),
            ("ts", Int),
            ("host", Str),
            ("region", Str),
            ("cpu_pct", Float),
            ("mem_pct", Float),
            ("disk_pct", Float),
            ("net_in_bytes", Int),
            ("net_out_bytes", Int),
        ],
        "user_activity" => &[
            ("kind", Str),
            ("ts", Int),
            ("user_id", Str),
            ("org", Str),
            ("session_id", Str),
            ("event", Str),
            ("feature", Str),
            ("duration_ms", Int),
        ],
        "sale" => &[
            ("kind", Str),
            ("ts", Int),
            ("order_id", Str),
            ("seller", Str),
            ("product", Str),
            ("amount", Float),
            ("currency", Str),
            ("quantity", Int),
        ],
        "security_signal" => &[
            ("kind", Str),
            ("ts", Int),
            ("signal", Str),
            ("severity", Str),
            ("score", Float),
            ("source_ip", Str),
            ("user_id", Str),
        ],
        _ => return None,
    })
}

fn clean(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/_.-".contains(&b))
}

fn type_ok(v: &Value, ty: Ty, key: &str) -> bool {
    match ty {
        Ty::Int => v.is_i64(),
        Ty::Float => v.is_f64(),
        Ty::Str if key == "method" => v.as_str().is_some_and(|m| ["GET", "POST", "PUT"].contains(&m)),
        Ty::Str => v.as_str().is_some_and(clean),
        Ty::StrOrNull => v.is_null() || v.as_str().is_some_and(clean),
        Ty::Tags => v
            .as_object()
            .is_some_and(|t| t.len() == 2 && t.iter().all(|(k, v)| clean(k) && v.as_str().is_some_and(clean))),
    }
}

fn f(o: &Map<String, Value>, k: &str) -> f64 {
    o[k].as_f64().unwrap()
}
fn s<'a>(o: &'a Map<String, Value>, k: &str) -> &'a str {
    o[k].as_str().unwrap()
}

/// Checks one line against the wire schema (names, order, types) and the
/// documented value invariants. Returns the kind.
fn check(line: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let o = v.as_object().ok_or("not an object")?;
    let kind = o.get("kind").and_then(Value::as_str).ok_or("no kind")?;
    let fields = spec(kind).ok_or("unknown kind")?;
    if o.len() != fields.len() {
        return Err(format!("{} fields, expected {}", o.len(), fields.len()));
    }
    let mut last_pos = 0;
    for (key, ty) in fields {
        let value = o.get(*key).ok_or(format!("missing {key}"))?;
        if !type_ok(value, *ty, key) {
            return Err(format!("{key} has the wrong type: {value}"));
        }
        let pos = line.find(&format!("\"{key}\":")).unwrap();
        if pos < last_pos {
            return Err(format!("{key} out of order"));
        }
        last_pos = pos;
    }
    let pct = |k: &str| (0.0..=100.0).contains(&f(o, k));
    let ok = match kind {
        "task_execution" => {
            let (start, end) = (o["start_ts"].as_i64(), o["end_ts"].as_i64());
            let consistent = end == o["ts"].as_i64() && f(o, "duration_ms") == (end.unwrap() - start.unwrap()) as f64;
            let status = s(o, "status");
            consistent
                && ["success", "failed", "timeout"].contains(&status)
                && (status == "success") == o["error"].is_null()
                && pct("cpu_pct")
                && f(o, "memory_mb") > 0.0
        }
        "security_signal" => {
            ["login_failure", "impossible_travel", "card_testing", "port_scan"].contains(&s(o, "signal"))
                && ["low", "medium", "high", "critical"].contains(&s(o, "severity"))
                && (0.0..=1.0).contains(&f(o, "score"))
                && s(o, "source_ip").split('.').count() == 4
        }
        "user_activity" => {
            ["login", "page_view", "click", "logout", "feature_use"].contains(&s(o, "event"))
                && s(o, "session_id").len() == 8
                && o["duration_ms"].as_i64().unwrap() > 0
        }
        "system_sample" => pct("cpu_pct") && pct("mem_pct") && pct("disk_pct"),
        "api_request" => (200..600).contains(&o["status_code"].as_i64().unwrap()) && f(o, "latency_ms") >= 0.0,
        "sale" => f(o, "amount") > 0.0 && o["quantity"].as_i64().unwrap() >= 1,
        _ => f(o, "value") >= 0.0,
    };
    if ok {
        Ok(kind.to_string())
    } else {
        Err("value invariant violated".into())
    }
}

#[test]
fn every_line_matches_the_wire_schema() {
    let lines = run(&settings(60_000), 0, 1);
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for (_, line) in &lines {
        match check(line) {
            Ok(kind) => *kinds.entry(kind).or_default() += 1,
            Err(e) => panic!("{e}: {line}"),
        }
    }
    assert_eq!(kinds.len(), 7, "all kinds appear: {kinds:?}");
    // The documented example of a metric line parses identically.
    let example = r#"{"kind":"metric","ts":1732233600004,"metric":"api.request.duration_ms","tags":{"service":"auth","region":"us"},"value":7.604}"#;
    assert_eq!(check(example).unwrap(), "metric");
}

#[test]
fn malformed_lines_appear_at_the_configured_ratio_and_stay_single_lines() {
    let s = GeneratorSettings {
        malformed_ratio: 0.1,
        ..settings(40_000)
    };
    let lines = run(&s, 0, 1);
    let bad: Vec<&str> = lines
        .iter()
        .map(|(_, l)| l.as_str())
        .filter(|l| check(l).is_err())
        .collect();
    let ratio = bad.len() as f64 / lines.len() as f64;
    assert!((ratio - 0.1).abs() < 0.01, "malformed ratio {ratio}");
    assert!(bad.iter().any(|l| l.contains("NaN")));
    assert!(bad.iter().any(|l| l.contains("\"ts\":\"")));
    assert!(bad.iter().any(|l| !l.contains("\"ts\"")));
    assert!(
        bad.iter()
            .any(|l| serde_json::from_str::<Value>(l).is_err() && !l.contains("NaN"))
    );
}

#[test]
fn disorder_has_the_configured_ratio_and_stays_bounded() {
    for (ratio, max) in [(0.03, 2000), (0.01, 50)] {
        let s = GeneratorSettings {
            out_of_order_ratio: ratio,
            max_disorder_ms: max,
            ..settings(200_000)
        };
        for workers in [1, 2] {
            for w in 0..workers {
                let lines = run(&s, w, workers);
                let mut max_arrival = i64::MIN;
                let mut late = 0;
                for (arrival, line) in &lines {
                    let ts = ts_of(line);
                    assert!(ts <= *arrival);
                    // Relative to every earlier arrival, not just this one.
                    assert!(ts > max_arrival.max(*arrival) - max, "{ts} vs {max_arrival}");
                    max_arrival = max_arrival.max(*arrival);
                    late += usize::from(ts < *arrival);
                }
                let measured = late as f64 / lines.len() as f64;
                // A delay drawn as 0 is not late: expect ratio * (1 - 1/max).
                let expected = ratio * (1.0 - 1.0 / max as f64);
                assert!((measured - expected).abs() < 0.01, "{measured} vs {ratio}");
            }
        }
    }
    let ordered = GeneratorSettings {
        out_of_order_ratio: 0.0,
        ..settings(5_000)
    };
    assert!(run(&ordered, 0, 1).iter().all(|(a, l)| ts_of(l) == *a));
}

#[test]
fn api_traffic_peaks_in_the_afternoon() {
    let s = GeneratorSettings {
        events_per_second: 5.0,
        ..GeneratorSettings::default()
    };
    let end = s.start_ms + 2 * 24 * 3_600_000;
    let mut per_hour = [0u32; 24];
    let mut g = Generator::new(&s, 0, 1);
    let mut buf = Vec::new();
    while let Some(arrival) = g.next_line(&mut buf) {
        if arrival >= end {
            break;
        }
        let line = std::str::from_utf8(&buf).unwrap();
        if line.starts_with("{\"kind\":\"api_request\"") {
            per_hour[((ts_of(line) / 3_600_000) % 24) as usize] += 1;
        }
        buf.clear();
    }
    let peak = *per_hour.iter().max().unwrap();
    let trough = *per_hour.iter().min().unwrap();
    let peak_hour = per_hour.iter().position(|&c| c == peak).unwrap();
    assert!(f64::from(peak) > 1.3 * f64::from(trough), "{per_hour:?}");
    assert!((12..=19).contains(&peak_hour), "peak at {peak_hour} UTC: {per_hour:?}");
}

#[test]
fn a_latency_spike_is_visible_in_its_service() {
    let spike = injected_anomalies(42, 1_732_233_600_000, 1_732_233_600_000 + 30 * 86_400_000)
        .into_iter()
        .find(|a| a.kind == AnomalyKind::LatencySpike)
        .expect("a latency spike within 30 days");
    let s = GeneratorSettings {
        start_ms: spike.start_ms - 300_000,
        events_per_second: 300.0,
        out_of_order_ratio: 0.0,
        ..GeneratorSettings::default()
    };
    let (mut before, mut during) = (Vec::new(), Vec::new());
    let mut g = Generator::new(&s, 0, 1);
    let mut buf = Vec::new();
    while let Some(arrival) = g.next_line(&mut buf) {
        if arrival >= spike.start_ms + 300_000 {
            break;
        }
        let v: Value = serde_json::from_slice(&buf).unwrap();
        buf.clear();
        if v["kind"] == "api_request" && v["service"] == spike.target.as_str() {
            let bucket = if arrival < spike.start_ms {
                &mut before
            } else {
                &mut during
            };
            bucket.push(v["latency_ms"].as_f64().unwrap());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (b, d) = (median(&mut before), median(&mut during));
    assert!(d > 3.0 * b, "median latency {b} -> {d} during {spike:?}");
}

#[test]
fn validate_names_the_offending_field() {
    assert_eq!(GeneratorSettings::default().validate(), Ok(()));
    let cases = [
        (
            GeneratorSettings {
                out_of_order_ratio: 0.2,
                ..Default::default()
            },
            "out_of_order_ratio = 0.2 is outside 0.0..=0.05; use a value between 0.01 and 0.05",
        ),
        (
            GeneratorSettings {
                out_of_order_ratio: f64::NAN,
                ..Default::default()
            },
            "out_of_order_ratio",
        ),
        (
            GeneratorSettings {
                malformed_ratio: -0.1,
                ..Default::default()
            },
            "malformed_ratio",
        ),
        (
            GeneratorSettings {
                malformed_ratio: 1.5,
                ..Default::default()
            },
            "malformed_ratio",
        ),
        (
            GeneratorSettings {
                events_per_second: 0.0,
                ..Default::default()
            },
            "events_per_second",
        ),
        (
            GeneratorSettings {
                events_per_second: f64::INFINITY,
                ..Default::default()
            },
            "events_per_second",
        ),
        (
            GeneratorSettings {
                max_disorder_ms: 0,
                ..Default::default()
            },
            "max_disorder_ms",
        ),
        (
            GeneratorSettings {
                start_ms: -1,
                ..Default::default()
            },
            "start_ms",
        ),
    ];
    for (settings, expected) in cases {
        let err = settings.validate().unwrap_err();
        assert!(err.starts_with(expected), "{err}");
    }
}

#[test]
#[should_panic(expected = "out_of_order_ratio")]
fn new_refuses_invalid_settings() {
    let s = GeneratorSettings {
        out_of_order_ratio: 0.5,
        ..Default::default()
    };
    let _ = Generator::new(&s, 0, 1);
}

#[test]
fn low_rates_keep_host_samples_a_small_share() {
    assert_eq!(sample_interval_ms(1000.0), 10_000);
    assert_eq!(sample_interval_ms(10.0), 256_000);
    let s = GeneratorSettings {
        events_per_second: 10.0,
        ..settings(20_000)
    };
    let lines = run(&s, 0, 1);
    let samples = lines.iter().filter(|(_, l)| l.contains("system_sample")).count();
    assert!(samples < lines.len() / 15, "{samples}");
}
