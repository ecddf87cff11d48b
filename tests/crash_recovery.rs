//! `kill -9` at random moments, five times, against a real broker (tansu) and a real InfluxDB:
//! after the last restart has caught up, every window point in InfluxDB equals the point of a
//! run that never crashed — none lost, none double-counted — and both equal the independent
//! batch computation.
//!
//! Why this holds (docs/delivery.md): offsets are committed only for input whose windows have
//! settled and whose results every sink acknowledged, so a restart replays exactly the input
//! of the windows that may be incomplete, recomputes them from scratch, and overwrites their
//! points (InfluxDB points are upserts keyed by series, window and start).

mod influx_support;
mod support;

use influx_support::{Influx, window_points};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::kafka::{
    OwnBroker, broker, committed_and_end, create_topic, produce_lines, produce_to, source_section, unique,
};
use support::*;

const KILLS: usize = 5;

/// Produces `lines` to `topic` (line i to partition i % 4, the order kept within each).
fn config(dir: &Path, broker: &str, topic: &str, group: &str, db: &Influx) -> PathBuf {
    let path = dir.join(format!("{group}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"
{source}
[pipeline]
rollups = ["5m"]
correction_horizon = "1m"

[sinks.influxdb]
url = "{url}"
database = "{db}"
flush_interval = "100ms"
rejected_path = {rejected:?}
spool_dir = {spool:?}
"#,
            source = source_section(broker, topic, group, "5s", &dir.join(format!("{group}-state"))),
            url = db.base,
            db = db.db,
            rejected = dir.join(format!("{group}-rejected.ndjson")),
            spool = dir.join(format!("{group}-spool")),
        ),
    )
    .unwrap();
    path
}

/// A running tidemark, killed when dropped, so a failing test leaves no process behind.
struct Job(Child);

impl std::ops::Deref for Job {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Job {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &Path, log: &Path) -> Job {
    Job(tidemark()
        .env("TIDEMARK_LOG", "info")
        .args(["run", "--workers", "2", "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("starting tidemark"))
}

/// Waits until the group has committed every partition up to its end: everything read,
/// settled and acknowledged by InfluxDB.
fn wait_caught_up(broker: &str, topic: &str, group: &str, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let offsets = committed_and_end(broker, topic, group);
        if offsets.iter().all(|(committed, end)| committed == end && *end > 0) {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "tidemark exited early ({status}): {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "not caught up after 120 s: {offsets:?}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// SIGTERM, the graceful stop; it must exit successfully.
fn stop(mut child: Job, log: &Path) {
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "{status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tidemark did not stop within 60 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kill_9_five_times_then_influxdb_equals_an_uncrashed_run() {
    let (Some(broker), Some(influx)) = (broker(), influx_support::server()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // ~80 minutes of event time over 24 series. With 5-minute rollups and a 1-minute
    // correction horizon, a live stream has its offsets committed many times during a run.
    let events = metric_events_spaced(80_000, 24, 0.02, 0.0, 17, 120);

    // The reference reads the whole stream from a backlog, uninterrupted.
    let reference_topic = unique("crash-reference");
    create_topic(&broker, &reference_topic, 4);
    produce_lines(dir.path(), &broker, &reference_topic, &events);
    let reference_db = Influx::fresh(&influx, "crash_reference");
    let group = unique("reference");
    let reference_config = config(dir.path(), &broker, &reference_topic, &group, &reference_db);
    let log = dir.path().join("reference.log");
    let mut child = start(&reference_config, &log);
    wait_caught_up(&broker, &reference_topic, &group, &mut child, &log);
    stop(child, &log);

    // The crashed run reads the same events as they are produced, in 40 chunks, and is killed
    // 1–4 s after each of its first five starts: while reading, between commits, while the
    // sink writes.
    let topic = unique("crash-live");
    create_topic(&broker, &topic, 4);
    let producer = {
        let (broker, topic, events) = (broker.clone(), topic.clone(), events.clone());
        let dir = dir.path().to_path_buf();
        std::thread::spawn(move || {
            for chunk in events.chunks(2_000) {
                produce_lines(&dir, &broker, &topic, chunk);
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let crashed_db = Influx::fresh(&influx, "crash_crashed");
    let group = unique("crashed");
    let crashed_config = config(dir.path(), &broker, &topic, &group, &crashed_db);
    let mut rng = Rng(2026);
    let mut committed_at_kills = Vec::new();
    for kill in 0..KILLS {
        let log = dir.path().join(format!("crashed-{kill}.log"));
        let mut child = start(&crashed_config, &log);
        std::thread::sleep(Duration::from_millis(1_000 + rng.below(3_000)));
        child.kill().expect("kill -9");
        child.wait().unwrap();
        let committed: i64 = committed_and_end(&broker, &topic, &group)
            .iter()
            .map(|(c, _)| (*c).max(0))
            .sum();
        committed_at_kills.push(committed);
    }
    producer.join().expect("the producer");
    let log = dir.path().join("crashed-final.log");
    let mut child = start(&crashed_config, &log);
    wait_caught_up(&broker, &topic, &group, &mut child, &log);
    stop(child, &log);
    eprintln!(
        "committed offsets (of {}) at the {KILLS} kills: {committed_at_kills:?}",
        events.len()
    );

    let reference = window_points(&reference_db);
    let crashed = window_points(&crashed_db);
    assert_eq!(reference.len(), crashed.len(), "the same windows");
    for (key, fields) in &reference {
        assert_eq!(crashed.get(key), Some(fields), "window {key:?}");
    }

    // And the reference is right: every 1-minute window against the batch computation.
    let expected = batch_windows(&observations(&events), &[60_000]);
    let minutes = reference.keys().filter(|(_, size, _)| *size == 60_000).count();
    assert_eq!(minutes, expected.len());
    for ((series, _, start), want) in &expected {
        let got = &reference[&(series.clone(), 60_000, *start)];
        assert_eq!(got["count"].as_f64().unwrap(), want.count as f64, "{series} {start}");
        assert!(close(got["sum"].as_f64().unwrap(), want.sum, 1e-9), "{series} {start}");
        assert_eq!(got["max"].as_f64().unwrap(), want.max, "{series} {start}");
    }
}

/// The broker is killed mid-run and restarted 5 s later on the same port and data: tidemark
/// reconnects, reads what is produced afterwards, and InfluxDB ends equal to the batch
/// computation. Event times lie in the last hour and the correction horizon is two hours, so
/// windows that closed while the broker was away (idle partitions follow the wall clock) are
/// corrected, not lost, when the rest of their events arrive.
#[test]
fn a_broker_restart_mid_run_loses_nothing() {
    let (Some(_), Some(influx)) = (broker(), influx_support::server()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut own = OwnBroker::start(dir.path());
    let broker = own.address();
    let topic = unique("restart");
    create_topic(&broker, &topic, 4);
    let base = support::running::now_ms() / 60_000 * 60_000 - 50 * 60_000;
    let events: Vec<String> = (0..20_000i64)
        .map(|i| {
            let series = i % 12;
            let value = (i * 7919 % 1000) as f64 / 10.0;
            format!(
                r#"{{"ts":{},"metric":"restart.value","tags":{{"host":"h{series}"}},"value":{value}}}"#,
                base + i * 120
            )
        })
        .collect();
    let (first, second) = events.split_at(events.len() / 2);
    produce_lines(dir.path(), &broker, &topic, first);

    let db = Influx::fresh(&influx, "broker_restart");
    let config = dir.path().join("restart.toml");
    std::fs::write(
        &config,
        format!(
            "{source}\n[pipeline]\nrollups = [\"5m\"]\ncorrection_horizon = \"2h\"\n\n[sinks.influxdb]\nurl = \"{url}\"\n\
             database = \"{db}\"\nflush_interval = \"100ms\"\nrejected_path = {rejected:?}\nspool_dir = {spool:?}\n",
            source = source_section(&broker, &topic, &unique("restart"), "2s", &dir.path().join("state")),
            url = db.base,
            db = db.db,
            rejected = dir.path().join("rejected.ndjson"),
            spool = dir.path().join("spool"),
        ),
    )
    .unwrap();
    let log = dir.path().join("restart.log");
    let child = start(&config, &log);
    std::thread::sleep(Duration::from_secs(6));
    own.stop();
    std::thread::sleep(Duration::from_secs(5));
    own.restart();
    produce_lines(dir.path(), &broker, &topic, second);

    let expected = batch_windows(&observations(&events), &[60_000]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let matches = |points: &std::collections::BTreeMap<(String, i64, i64), _>| {
        expected.iter().all(|((series, _, start), want)| {
            let got: Option<&std::collections::BTreeMap<String, serde_json::Value>> =
                points.get(&(series.clone(), 60_000, *start));
            got.is_some_and(|got| {
                got["count"].as_f64() == Some(want.count as f64)
                    && got["sum"].as_f64().is_some_and(|sum| close(sum, want.sum, 1e-9))
                    && got["max"].as_f64() == Some(want.max)
            })
        })
    };
    loop {
        let written = db
            .try_query("SHOW MEASUREMENTS")
            .is_ok_and(|series| series.iter().any(|s| s.values.iter().any(|v| v[0] == "restart.value")));
        let points = written.then(|| window_points(&db));
        if points.as_ref().is_some_and(&matches) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "InfluxDB did not converge on the batch result after the broker restart; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    stop(child, &log);
}

/// Messages read so far, over every partition.
fn events_in(job: &running::Running) -> f64 {
    job.get("/metrics", None)
        .body
        .lines()
        .filter(|l| l.starts_with("tidemark_events_in_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A partition whose offset cannot advance — its first message belongs to a window still open —
/// re-reads, after a crash, messages of windows that were final long ago. They must not reopen
/// those windows: a reopened window would be recomputed from them alone and replace the
/// complete result in the sinks.
#[test]
fn re_read_messages_of_final_windows_do_not_reopen_them_after_a_crash() {
    const MINUTE: i64 = 60_000;
    let Some(broker) = broker() else {
        return;
    };
    let topic = unique("crash-settled");
    create_topic(&broker, &topic, 2);
    let group = unique("settled");
    let state = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[pipeline]\nrollups = [\"5m\"]\ncorrection_horizon = \"1m\"\nallowed_lateness = \"0s\"\n",
        source_section(&broker, &topic, &group, "5s", state.path())
    );
    let t0: i64 = 1_732_233_600_000;
    let line = |ts: i64, metric: &str, value: i64| format!(r#"{{"ts":{ts},"metric":"{metric}","value":{value}}}"#);
    // Partition 0: a message half an hour ahead, then one of window W = [t0 + 1m, t0 + 2m).
    let reread = line(t0 + MINUTE + 10_000, "m", 100);
    produce_to(
        &broker,
        &topic,
        0,
        &[line(t0 + 30 * MINUTE, "ahead", 1), reread.clone()],
    );
    // Partition 1: the other ten messages of W.
    let rest: Vec<String> = (0..10).map(|i| line(t0 + MINUTE + i * 5_000, "m", i)).collect();
    produce_to(&broker, &topic, 1, &rest);
    let window = ("m".to_string(), MINUTE, t0 + MINUTE);

    let first = running::Running::start(&config);
    first.wait_for("all twelve messages read", Duration::from_secs(60), || {
        (events_in(&first) >= 12.0).then_some(())
    });
    // Time moves on in partition 1, which then goes quiet (idle after 5 s, so partition 0's
    // message half an hour ahead drives the watermark): every window of partition 1 becomes
    // final and it is committed to its end, while partition 0 cannot be committed at all (the
    // window of its first message stays open). A restart then re-reads only partition 0.
    // Partition 0 is kept busy with more messages half an hour ahead, so that it never idles.
    let later: Vec<String> = (2..=20).map(|m| line(t0 + m * MINUTE, "m", m)).collect();
    produce_to(&broker, &topic, 1, &later);
    let ahead = vec![line(t0 + 30 * MINUTE, "ahead", 2)];
    let committed = first.wait_for("partition 1 committed to its end", Duration::from_secs(60), || {
        produce_to(&broker, &topic, 0, &ahead);
        let offsets = committed_and_end(&broker, &topic, &group);
        (offsets[1].0 == offsets[1].1).then_some(offsets)
    });
    assert!(committed[0].0 <= 0, "partition 0 must stay uncommitted: {committed:?}");
    let first_windows = final_updates(&first.dir.path().join("out/windows.ndjson"));
    assert_eq!(first_windows[&window]["count"], 11, "W is complete before the crash");
    drop(first);

    let second = running::Running::start(&config);
    let letters = second.dir.path().join("out/dead-letters.ndjson");
    second.wait_for(
        "the re-read message of W dead-lettered as too late",
        Duration::from_secs(60),
        || {
            letters
                .exists()
                .then(|| dead_letters(&letters))?
                .iter()
                .any(|l| l["reason"] == "too_late" && l["original"] == reread.as_str())
                .then_some(())
        },
    );
    let windows = second.dir.path().join("out/windows.ndjson");
    let reopened = windows
        .exists()
        .then(|| final_updates(&windows).remove(&window))
        .flatten();
    assert!(reopened.is_none(), "W was reopened after the crash: {reopened:?}");
}

/// A restarted run's frontier starts low, and its first commits store the same offsets again:
/// the settled time stored with them must not go back, or the run after it would let re-read
/// messages reopen windows that are final (the kill test above once ended with a 1-minute window
/// of count 1 where the uncrashed run had 36, after two starts that committed the same offsets).
#[test]
fn a_restart_never_stores_an_older_settled_time() {
    use tidemark_connectors::kafka::{KafkaSource, KafkaSourceConfig, StartPosition};
    use tidemark_connectors::source::LineSource;
    let Some(broker) = broker() else {
        return;
    };
    let topic = unique("settled-mark");
    create_topic(&broker, &topic, 1);
    produce_to(
        &broker,
        &topic,
        0,
        &[r#"{"ts":1732233600000,"metric":"m","value":1}"#.to_string()],
    );
    let state = tempfile::tempdir().unwrap();
    let config = KafkaSourceConfig {
        brokers: broker.clone(),
        topic,
        group_id: unique("settled-mark"),
        start: StartPosition::Committed,
        start_timestamp_ms: None,
        idle_timeout: Duration::from_secs(5),
        state_dir: Some(state.path().to_path_buf()),
        avro: None,
        options: Default::default(),
    };
    let open = || KafkaSource::open(&config, 0, 1, 1 << 20).expect("opening the Kafka source");
    let mut first = open();
    assert_eq!(first.settled_before(0), 0, "nothing settled before the first run");
    first.commit(&[Some(1)], 5_000, true).unwrap();
    drop(first);
    let mut second = open();
    assert_eq!(second.settled_before(0), 5_000);
    second.commit(&[Some(1)], 1_000, true).unwrap();
    drop(second);
    assert_eq!(
        open().settled_before(0),
        5_000,
        "the second run's low frontier went back"
    );
}
