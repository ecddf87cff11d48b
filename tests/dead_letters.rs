//! Every malformed line is dead-lettered with its reason and original bytes; the job never
//! panics and the good lines around them are still aggregated.

mod support;

use support::*;

#[test]
fn every_class_of_bad_input_is_dead_lettered_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"ts":1732233600000,"metric":"ok","value":1}"#;
    let huge = format!(
        r#"{{"ts":1732233600000,"metric":"big","value":1,"pad":"{}"}}"#,
        "x".repeat(2 << 20)
    );
    let deep = format!(
        r#"{{"ts":1732233600000,"metric":"deep","value":1,"x":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let bad: Vec<(Vec<u8>, &str)> = vec![
        (
            br#"{"ts":1732233600000,"metric":"m","value":1"#.to_vec(),
            "invalid_json",
        ),
        (b"not json at all".to_vec(), "invalid_json"),
        (
            b"{\"ts\":1732233600000,\"metric\":\"\xff\xfe\",\"value\":1}".to_vec(),
            "invalid_utf8",
        ),
        (br#"{"metric":"m","value":1}"#.to_vec(), "missing_field"),
        (br#"{"ts":1732233600000,"value":1}"#.to_vec(), "missing_field"),
        (
            br#"{"ts":1732233600000,"metric":"m","value":"12"}"#.to_vec(),
            "wrong_type",
        ),
        (br#"{"ts":"2024-11-22","metric":"m","value":1}"#.to_vec(), "wrong_type"),
        (
            br#"{"ts":1732233600000,"metric":"m","value":NaN}"#.to_vec(),
            "non_finite",
        ),
        (
            br#"{"ts":1732233600000,"metric":"m","value":Infinity}"#.to_vec(),
            "non_finite",
        ),
        (
            br#"{"ts":1732233600000,"metric":"m","value":1e999}"#.to_vec(),
            "non_finite",
        ),
        (br#"{"ts":-5,"metric":"m","value":1}"#.to_vec(), "invalid_timestamp"),
        (
            br#"{"ts":99999999999999,"metric":"m","value":1}"#.to_vec(),
            "invalid_timestamp",
        ),
        (
            br#"{"ts":1732233600000,"metric":"m","value":1,"value":2}"#.to_vec(),
            "duplicate_key",
        ),
        (
            br#"{"ts":1732233600000,"metric":"m","tags":{"a":""},"value":1}"#.to_vec(),
            "invalid_tag",
        ),
        (
            br#"{"ts":1732233600000,"metric":"no spaces","value":1}"#.to_vec(),
            "invalid_metric",
        ),
        (br#"{"kind":"teleport","ts":1732233600000}"#.to_vec(), "unknown_kind"),
        (deep.into_bytes(), "too_deep"),
        (huge.into_bytes(), "oversized"),
    ];
    let mut input = Vec::new();
    for (line, _) in &bad {
        input.extend_from_slice(good.as_bytes());
        input.push(b'\n');
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, &input).unwrap();
    let csv = dir.path().join("windows.csv");
    let letters_path = dir.path().join("dead.ndjson");
    let output = succeed(
        tidemark()
            .args(["replay"])
            .arg(&path)
            .arg("--export-csv")
            .arg(&csv)
            .arg("--dead-letters")
            .arg(&letters_path),
    );
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(summary.contains(&format!("dead_lettered={}", bad.len())), "{summary}");

    let letters = dead_letters(&letters_path);
    assert_eq!(letters.len(), bad.len());
    let mut positions: Vec<u64> = Vec::new();
    for (letter, (line, reason)) in letters.iter().zip(&bad) {
        assert_eq!(letter["reason"], *reason, "{letter}");
        assert!(!letter["detail"].as_str().unwrap().is_empty());
        let original = letter["original"].as_str().unwrap();
        if *reason == "oversized" {
            assert_eq!(letter["truncated"], true);
            assert!(line.starts_with(original.as_bytes()));
        } else if *reason == "invalid_utf8" {
            let hex: String = line.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(letter["original_hex"], hex.as_str());
        } else {
            assert_eq!(original.as_bytes(), &line[..]);
        }
        positions.push(letter["position"].as_u64().unwrap());
    }
    // Positions are byte offsets of the lines in the input.
    for (position, (line, _)) in positions.iter().zip(&bad) {
        assert!(input[*position as usize..].starts_with(&line[..line.len().min(64)]));
    }
    let rows = read_csv(&csv);
    assert_eq!(rows[&("ok".to_string(), 1_732_233_600_000)][2], bad.len().to_string());
}

#[test]
fn late_events_are_dead_lettered_or_counted_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let events = metric_events(30_000, 10, 0.05, 0.02, 3);
    let input = dir.path().join("events.ndjson");
    write_lines(&input, &events);
    let config = dir.path().join("tidemark.toml");
    std::fs::write(&config, "[pipeline]\nlate_policy = \"dead_letter\"\n").unwrap();
    let csv = dir.path().join("windows.csv");
    let letters = dir.path().join("dead.ndjson");
    succeed(
        tidemark()
            .args(["replay"])
            .arg(&input)
            .arg("--export-csv")
            .arg(&csv)
            .arg("--dead-letters")
            .arg(&letters)
            .arg("--config")
            .arg(&config),
    );
    let counted: u64 = read_csv(&csv).values().map(|row| row[2].parse::<u64>().unwrap()).sum();
    let late = dead_letters(&letters);
    assert!(late.iter().all(|l| l["reason"] == "late"));
    assert!(late.len() > 100, "expected late events, got {}", late.len());
    assert_eq!(
        counted + late.len() as u64,
        events.len() as u64,
        "every event is either counted or dead-lettered"
    );
}
