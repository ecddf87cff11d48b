//! The real broker (tansu) the test script starts: topics, reading what tidemark wrote (JSON, or
//! Avro decoded independently of tidemark with `apache-avro` and the registry's schemas), and the
//! comparison of the windows topic with the independent computation.

use super::{batch_windows, close, observations};
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The broker's `host:port`, or `None` (after saying why) when the test should be skipped.
/// With `TIDEMARK_REQUIRE_SERVERS=1` a missing broker fails the test instead.
pub fn broker() -> Option<String> {
    match std::env::var("TIDEMARK_TEST_KAFKA") {
        Ok(address) => Some(address),
        Err(_) if std::env::var("TIDEMARK_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!("TIDEMARK_TEST_KAFKA is not set but TIDEMARK_REQUIRE_SERVERS=1: scripts/test starts the broker")
        }
        Err(_) => {
            eprintln!("skipping: no broker (run scripts/test, which starts tansu)");
            None
        }
    }
}

/// A tansu broker of the test's own (SQLite storage in `dir`), which it can stop and start
/// again on the same port and data; killed when dropped.
pub struct OwnBroker {
    dir: std::path::PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnBroker {
    /// Starts a broker on a free port.
    pub fn start(dir: &Path) -> OwnBroker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut broker = OwnBroker {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        broker.restart();
        broker
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts it (again) and waits until it answers.
    pub fn restart(&mut self) {
        let tansu = std::env::var("TIDEMARK_TANSU").expect("TIDEMARK_TANSU is set by scripts/test");
        let url = format!("tcp://{}", self.address());
        let log = std::fs::File::create(self.dir.join("broker.log")).expect("the broker log");
        self.child = Some(
            Command::new(&tansu)
                .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
                .args(["--storage-engine", "sqlite://tansu.db"])
                .current_dir(&self.dir)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting tansu"),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new(&tansu)
            .args(["topic", "list", "--broker", &url])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "tansu did not start on {url}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Kills it (the clients see the connection drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A topic name no other test uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// Creates a topic with the tansu CLI.
pub fn create_topic(broker: &str, name: &str, partitions: i32) {
    let tansu = std::env::var("TIDEMARK_TANSU").expect("TIDEMARK_TANSU is set by scripts/test");
    let status = Command::new(tansu)
        .args([
            "topic",
            "create",
            name,
            "--partitions",
            &partitions.to_string(),
            "--broker",
            &format!("tcp://{broker}"),
        ])
        .status()
        .expect("running tansu topic create");
    assert!(status.success(), "creating topic {name}");
}

/// One consumed record.
#[derive(Clone, Debug)]
pub struct Record {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

fn consumer(broker: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("creating a test consumer")
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Vec<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    metadata.topics()[0].partitions().iter().map(|p| p.id()).collect()
}

/// Reads every record of `topic` from the beginning until it has been quiet for two seconds
/// (or 60 s passed).
pub fn read_all(broker: &str, topic: &str) -> Vec<Record> {
    let consumer = consumer(broker, &unique("reader"));
    let mut assignment = TopicPartitionList::new();
    for p in partitions(&consumer, topic) {
        assignment.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).expect("assigning");
    let started = Instant::now();
    let mut last = Instant::now();
    let mut records = Vec::new();
    while last.elapsed() < Duration::from_secs(2) && started.elapsed() < Duration::from_secs(60) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                last = Instant::now();
                let headers = message
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|header| {
                                (
                                    header.key.to_string(),
                                    String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(Record {
                    partition: message.partition(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            None => {}
        }
    }
    records
}

/// The `[source]` section of a test reading `topic` as `group` from its committed offsets (the
/// earliest for a new group), with fast group timings and settled marks kept in `state_dir`.
pub fn source_section(broker: &str, topic: &str, group: &str, idle_timeout: &str, state_dir: &Path) -> String {
    format!(
        r#"[source]
type = "kafka"
brokers = "{broker}"
topic = "{topic}"
group_id = "{group}"
start = "committed"
idle_timeout = "{idle_timeout}"
state_dir = {state_dir:?}
options = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000" }}
"#
    )
}

/// `(committed offset of group, end offset)` per partition of `topic`.
pub fn committed_and_end(broker: &str, topic: &str, group: &str) -> Vec<(i64, i64)> {
    let consumer = consumer(broker, group);
    let mut list = TopicPartitionList::new();
    let ids = partitions(&consumer, topic);
    for p in &ids {
        list.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    ids.iter()
        .map(|p| {
            let offset = committed.find_partition(topic, *p).map(|e| e.offset());
            let committed = match offset {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            };
            let (_, high) = consumer
                .fetch_watermarks(topic, *p, Duration::from_secs(10))
                .expect("watermarks");
            (committed, high)
        })
        .collect()
}

/// The test schema registry (tests/support/schema_registry.py), killed on drop.
pub struct Registry {
    child: std::process::Child,
    /// Its base URL.
    pub url: String,
}

impl Registry {
    /// Starts the registry on a free 127.0.0.1 port.
    pub fn start() -> Registry {
        use std::io::BufRead;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/support/schema_registry.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting the test schema registry");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .expect("registry start-up line")
            .to_string();
        Registry {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Produces raw bytes to a topic (for messages `tidemark produce` would refuse to make), leaving
/// the partition to the partitioner.
pub fn produce_raw(broker: &str, topic: &str, payloads: &[Vec<u8>]) {
    send(broker, topic, None, payloads);
}

/// Produces each payload to `partition` of `topic`.
pub fn produce_to(broker: &str, topic: &str, partition: i32, payloads: &[impl AsRef<[u8]>]) {
    send(broker, topic, Some(partition), payloads);
}

fn send(broker: &str, topic: &str, partition: Option<i32>, payloads: &[impl AsRef<[u8]>]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", broker).create().unwrap();
    for payload in payloads {
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(payload.as_ref());
        record.partition = partition;
        producer.send(record).expect("queueing a message");
    }
    producer.flush(Duration::from_secs(30)).expect("flushing");
}

/// Produces NDJSON `lines` through `tidemark produce`, spread round-robin over 4 partitions.
pub fn produce_lines(dir: &Path, broker: &str, topic: &str, lines: &[String]) {
    let file = dir.join(format!("produce-{}.ndjson", unique("p")));
    super::write_lines(&file, lines);
    super::succeed(
        super::tidemark()
            .args(["produce", "--brokers", broker, "--topic", topic, "--partitions", "4"])
            .arg(&file),
    );
}

/// A JSON record value.
pub fn json_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("records are JSON")
}

/// Decodes Avro values in the Confluent wire format (`0x00`, 4-byte big-endian schema id, Avro
/// binary) with `apache-avro`, fetching each writer schema by id from the registry, to the JSON
/// form of the record (unions as their value, enums as their symbol).
pub struct AvroValues {
    url: String,
    schemas: HashMap<u32, Schema>,
}

impl AvroValues {
    /// A decoder fetching schemas from the registry at `url`.
    pub fn new(url: &str) -> Self {
        AvroValues {
            url: url.to_string(),
            schemas: HashMap::new(),
        }
    }

    /// The schema ids seen so far.
    pub fn ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.schemas.keys().copied().collect();
        ids.sort();
        ids
    }

    /// The record in `bytes`, as JSON.
    pub fn decode(&mut self, bytes: &[u8]) -> Value {
        let [0, a, b, c, d, body @ ..] = bytes else {
            panic!("not in the Confluent wire format: {bytes:?}")
        };
        let id = u32::from_be_bytes([*a, *b, *c, *d]);
        let url = &self.url;
        let schema = self.schemas.entry(id).or_insert_with(|| {
            let text = ureq::get(format!("{url}/schemas/ids/{id}"))
                .call()
                .unwrap_or_else(|e| panic!("fetching schema {id}: {e}"))
                .body_mut()
                .read_to_string()
                .unwrap();
            let response: Value = serde_json::from_str(&text).unwrap();
            Schema::parse_str(response["schema"].as_str().expect("a schema")).expect("the schema parses")
        });
        let mut body = body;
        let value = GenericDatumReader::builder(&*schema)
            .build()
            .and_then(|reader| reader.read_value(&mut body))
            .expect("the value decodes with its writer schema");
        assert!(body.is_empty(), "{} bytes after the record", body.len());
        Value::try_from(value).expect("representable as JSON")
    }
}

/// The last value per upsert key on the windows topic, for 1-minute windows, checking that every
/// record is keyed by its series and carries its upsert key.
pub fn final_windows(
    broker: &str,
    topic: &str,
    decode: &mut dyn FnMut(&[u8]) -> Value,
) -> BTreeMap<(String, i64), Value> {
    let mut last = BTreeMap::new();
    for record in read_all(broker, topic) {
        let row = decode(&record.value);
        let series = row["series"].as_str().unwrap().to_string();
        assert_eq!(
            record.key.as_deref(),
            Some(series.as_bytes()),
            "records are keyed by series"
        );
        let upsert = format!("{series}|{}|{}", row["window_ms"], row["window_start"]);
        assert_eq!(record.headers.get("upsert-key"), Some(&upsert));
        if row["window_ms"] == 60_000 {
            last.insert((series, row["window_start"].as_i64().unwrap()), row);
        }
    }
    last
}

/// Every 1-minute window of `events`, computed independently, equals the row `got` holds for it.
pub fn assert_matches_oracle(got: &BTreeMap<(String, i64), Value>, events: &[String]) {
    let expected = batch_windows(&observations(events), &[60_000]);
    assert_eq!(got.len(), expected.len(), "window sets differ");
    for ((series, _, start), want) in &expected {
        let row = &got[&(series.clone(), *start)];
        let f = |name: &str| row[name].as_f64().unwrap();
        assert_eq!(row["count"].as_u64().unwrap(), want.count, "{series} {start}");
        assert!(close(f("sum"), want.sum, 1e-12), "{series} {start}");
        assert_eq!(
            (f("min"), f("max"), f("p95"), f("p99")),
            (want.min, want.max, want.p95, want.p99),
            "{series} {start}"
        );
    }
}
