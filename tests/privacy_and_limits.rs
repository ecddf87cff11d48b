//! Personal data never reaches a sink, and a tag explosion cannot grow the job without bound:
//! the real binary over a file, every output file read back.

mod support;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use support::*;

const KEY: &str = "an end-to-end test key, 16+ bytes";
const T0: i64 = 1_732_233_600_000;

/// The pseudonym the docs promise: `pii:` + the first 8 bytes of HMAC-SHA-256(key, value) in hex.
fn pseudonym(value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(value.as_bytes());
    let digest = mac.finalize().into_bytes();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("pii:{hex}")
}

fn run_on(dir: &std::path::Path, lines: &[String], extra_config: &str) -> std::process::Output {
    let input = dir.join("events.ndjson");
    write_lines(&input, lines);
    let out = dir.join("out");
    let config = dir.join("tidemark.toml");
    std::fs::write(
        &config,
        format!("[source]\ntype = \"file\"\npath = {input:?}\n\n[sinks.files]\ndir = {out:?}\n\n{extra_config}"),
    )
    .unwrap();
    succeed(
        tidemark()
            .env("TIDEMARK_PII_KEY", KEY)
            .args(["run", "--config"])
            .arg(&config),
    )
}

#[test]
fn personal_fields_are_pseudonymised_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let users = ["alice@example.com", "bob@example.org", "carol@example.net"];
    let ips = ["10.1.2.3", "192.168.7.9"];
    let mut lines = Vec::new();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..600usize {
        let (user, ip) = (users[i % 3], ips[i % 2]);
        lines.push(format!(
            r#"{{"ts":{},"metric":"logins","tags":{{"email":"{user}","ip":"{ip}","region":"eu"}},"value":1}}"#,
            T0 + i as i64 * 50
        ));
        let key = format!("logins|email={}|ip={}|region=eu", pseudonym(user), pseudonym(ip));
        *expected.entry(key).or_default() += 1;
        // Typed events: user_id is the distinct field of built-in metrics, never a tag; the
        // generic user_id tag below is.
        lines.push(format!(
            r#"{{"ts":{},"metric":"clicks","tags":{{"user_id":"u-{}"}},"value":2}}"#,
            T0 + i as i64 * 50,
            i % 4
        ));
        *expected
            .entry(format!("clicks|user_id={}", pseudonym(&format!("u-{}", i % 4))))
            .or_default() += 1;
    }
    // Bad lines carrying personal data: their dead letters must not carry it either.
    lines.push(r#"{"ts":1732233600000,"metric":"logins","tags":{"email":"dave@example.com"},"value":"x"}"#.into());
    lines
        .push(r#"{"ts":1732233600000,"metric":"logins","tags":{"ip" : "172.16.0.1","email":"erin@example.com""#.into());
    run_on(dir.path(), &lines, "");

    let out = dir.path().join("out");
    let mut seen_files = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        seen_files += 1;
        for secret in
            users
                .iter()
                .chain(&ips)
                .chain(&["dave@example.com", "erin@example.com", "172.16.0.1", "u-0", "u-3"])
        {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} leaked into {}",
                path.display()
            );
        }
    }
    assert!(
        seen_files >= 4,
        "windows.ndjson, windows.lp, windows.csv, dead-letters.ndjson"
    );

    let rows = read_csv(&out.join("windows.csv"));
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for ((series, _), fields) in &rows {
        *counted.entry(series.clone()).or_default() += fields[2].parse::<u64>().unwrap();
    }
    assert_eq!(counted, expected, "per-user counts survive pseudonymisation exactly");

    let letters = dead_letters(&out.join("dead-letters.ndjson"));
    assert_eq!(letters.len(), 2, "{letters:?}");
    let first = letters[0]["original"].as_str().unwrap();
    assert!(first.contains(&pseudonym("dave@example.com")), "{first}");
    assert_eq!(letters[0]["reason"], "wrong_type");
    assert_eq!(letters[1]["reason"], "invalid_json");
}

#[test]
fn privacy_can_drop_fields_or_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (0..100)
        .map(|i| {
            format!(
                r#"{{"ts":{},"metric":"m","tags":{{"email":"u{}@x.io","host":"h"}},"value":1}}"#,
                T0 + i,
                i % 7
            )
        })
        .collect();
    run_on(dir.path(), &lines, "[privacy]\naction = \"drop\"\n");
    let rows = read_csv(&dir.path().join("out/windows.csv"));
    let series: Vec<&String> = rows.keys().map(|(s, _)| s).collect();
    assert_eq!(series, ["m|host=h"], "the dropped tag merges the users' series");
    assert_eq!(rows[&("m|host=h".to_string(), T0)][2], "100");

    let dir = tempfile::tempdir().unwrap();
    run_on(dir.path(), &lines, "[privacy]\nenabled = false\n");
    let rows = read_csv(&dir.path().join("out/windows.csv"));
    assert_eq!(rows.len(), 7);
    assert!(rows.contains_key(&("m|email=u3@x.io|host=h".to_string(), T0)));
}

#[test]
fn a_tag_explosion_is_capped_per_metric_and_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    for i in 0..2000i64 {
        // A producer that puts a request id into a tag: every line a new series.
        lines.push(format!(
            r#"{{"ts":{},"metric":"api.latency","tags":{{"request":"r{i}"}},"value":{i}}}"#,
            T0 + i * 10
        ));
        lines.push(format!(
            r#"{{"ts":{},"metric":"cpu","tags":{{"host":"h{}"}},"value":1}}"#,
            T0 + i * 10,
            i % 20
        ));
    }
    let output = run_on(dir.path(), &lines, "[limits]\nmax_series_per_metric = 150\n");
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains("dead_lettered=1850"), "{summary}");

    let rows = read_csv(&dir.path().join("out/windows.csv"));
    let explosion: Vec<&String> = rows
        .keys()
        .map(|(s, _)| s)
        .filter(|s| s.starts_with("api.latency|"))
        .collect();
    assert_eq!(explosion.len(), 150, "exactly the limit of series is kept");
    let cpu_events: u64 = rows
        .iter()
        .filter(|((s, _), _)| s.starts_with("cpu|"))
        .map(|(_, f)| f[2].parse::<u64>().unwrap())
        .sum();
    assert_eq!(cpu_events, 2000, "other metrics are untouched");

    let letters = dead_letters(&dir.path().join("out/dead-letters.ndjson"));
    assert_eq!(letters.len(), 1850);
    assert!(letters.iter().all(|l| l["reason"] == "cardinality_limit"));
    let detail = letters[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("limits.max_series_per_metric") && detail.contains("api.latency"),
        "{detail}"
    );
    // The kept series are the first 150 request ids, each with its one value.
    for i in 0..150 {
        assert!(explosion.contains(&&format!("api.latency|request=r{i}")), "r{i}");
    }
}
