//! The real broker (tansu) the test script starts: topics, and reading what tidemark wrote.

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
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

/// Produces raw bytes to a topic (for messages `tidemark produce` would refuse to make).
pub fn produce_raw(broker: &str, topic: &str, payloads: &[Vec<u8>]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", broker).create().unwrap();
    for payload in payloads {
        producer
            .send(BaseRecord::<(), [u8]>::to(topic).payload(&payload[..]))
            .expect("queueing a message");
    }
    producer.flush(Duration::from_secs(30)).expect("flushing");
}
