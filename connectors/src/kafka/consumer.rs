//! One worker's consumer: its partitions, their idleness, and offset commits.

use super::config::{KafkaSourceConfig, StartPosition};
use crate::avro::AvroDecoder;
use crate::lines::Line;
use crate::source::{LineSource, Origin, SourceStatus};
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long metadata and offset look-ups may take at start-up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The partitions of one topic owned by one worker.
pub struct KafkaSource {
    consumer: BaseConsumer<LagContext>,
    topic: String,
    /// Partition number of each slot.
    partitions: Vec<i32>,
    /// Slot of each partition number (`usize::MAX` for partitions of other workers).
    slot_of: Vec<usize>,
    last_message: Vec<Instant>,
    /// One past the last offset each slot delivered in this run.
    next_offset: Vec<Option<i64>>,
    /// Where each slot started reading (see [`start_offsets`]).
    start_offset: Vec<Option<i64>>,
    idle_timeout: Duration,
    max_message_bytes: usize,
    error_logged: Option<Instant>,
    /// The newest settled time stored with any partition's committed offset by earlier runs
    /// (see [`previously_settled`]).
    settled_before: u64,
    /// Decodes Avro messages to JSON, when the topic carries Avro.
    avro: Option<(AvroDecoder, Vec<u8>)>,
    /// Where settled marks are also kept, per partition.
    marks: Option<PathBuf>,
}

/// Commit metadata carrying the settled time, so the next run knows which windows are final.
const SETTLED_PREFIX: &str = "tidemark:settled=";

fn kafka_error(what: &str, error: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("{what}: {error}"))
}

impl KafkaSource {
    /// Opens worker `index` of `workers`' share of the topic's partitions.
    pub fn open(
        config: &KafkaSourceConfig,
        index: usize,
        workers: usize,
        max_message_bytes: usize,
    ) -> io::Result<Self> {
        config.validate().map_err(io::Error::other)?;
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("group.id", &config.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest");
        for (key, value) in &config.options {
            client.set(key, value);
        }
        // Statistics every second carry each partition's end offset, which tells idle from slow.
        client.set("statistics.interval.ms", "1000");
        let consumer: BaseConsumer<LagContext> = client
            .create_with_context(LagContext::default())
            .map_err(|e| kafka_error("creating the Kafka consumer", e))?;
        let metadata = consumer
            .fetch_metadata(Some(&config.topic), STARTUP_TIMEOUT)
            .map_err(|e| {
                kafka_error(
                    &format!("reading metadata of topic {} from {}", config.topic, config.brokers),
                    e,
                )
            })?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == config.topic)
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "topic {} does not exist on {} (or has no partitions); create it first",
                    config.topic, config.brokers
                ))
            })?;
        let mut all: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
        all.sort_unstable();
        let partitions: Vec<i32> = all.iter().copied().filter(|p| *p as usize % workers == index).collect();
        let mut slot_of = vec![usize::MAX; all.iter().copied().max().map_or(0, |m| m as usize + 1)];
        for (slot, p) in partitions.iter().enumerate() {
            slot_of[*p as usize] = slot;
        }
        let mut assignment = TopicPartitionList::new();
        for p in &partitions {
            let offset = match config.start {
                StartPosition::Committed => Offset::Stored,
                StartPosition::Earliest => Offset::Beginning,
                StartPosition::Latest => Offset::End,
                StartPosition::Timestamp => Offset::Beginning,
            };
            assignment
                .add_partition_offset(&config.topic, *p, offset)
                .map_err(|e| kafka_error("building the assignment", e))?;
        }
        if let (StartPosition::Timestamp, Some(ms)) = (config.start, config.start_timestamp_ms) {
            assignment = consumer
                .offsets_for_times(timestamps(&config.topic, &partitions, ms), STARTUP_TIMEOUT)
                .map_err(|e| kafka_error("looking up offsets for start_timestamp_ms", e))?;
        }
        let marks = config
            .state_dir
            .as_ref()
            .map(|dir| dir.join(&config.group_id).join(&config.topic));
        if let Some(marks) = &marks {
            std::fs::create_dir_all(marks)?;
        }
        let (settled_before, committed) =
            previously_settled(&consumer, &config.topic, &all, &partitions, marks.as_deref())?;
        let start_offset = start_offsets(&consumer, &config.topic, &partitions, &assignment, &committed)?;
        consumer
            .assign(&assignment)
            .map_err(|e| kafka_error("assigning partitions", e))?;
        info!(topic = %config.topic, worker = index, partitions = ?partitions, "kafka source assigned");
        let now = Instant::now();
        Ok(KafkaSource {
            consumer,
            topic: config.topic.clone(),
            last_message: vec![now; partitions.len()],
            next_offset: vec![None; partitions.len()],
            start_offset,
            partitions,
            slot_of,
            idle_timeout: config.idle_timeout,
            max_message_bytes,
            error_logged: None,
            settled_before,
            marks,
            avro: match &config.avro {
                Some(format) => Some((AvroDecoder::new(format)?, Vec::with_capacity(1024))),
                None => None,
            },
        })
    }
}

/// Keeps each partition's end offset from librdkafka's periodic statistics. (Its
/// `consumer_lag` is measured from the *committed* offset, which tidemark holds back on
/// purpose, so the end offset is compared with what was read instead.)
#[derive(Default)]
pub struct LagContext {
    ends: Mutex<HashMap<i32, i64>>,
}

impl LagContext {
    fn end_offset(&self, partition: i32) -> Option<i64> {
        self.ends
            .lock()
            .expect("end offsets lock")
            .get(&partition)
            .copied()
            .filter(|end| *end >= 0)
    }
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        let mut ends = self.ends.lock().expect("end offsets lock");
        for topic in statistics.topics.values() {
            for (partition, stats) in &topic.partitions {
                ends.insert(*partition, stats.hi_offset);
            }
        }
    }
}

impl ConsumerContext for LagContext {}

fn mark_file(dir: &Path, partition: i32) -> PathBuf {
    dir.join(format!("{partition}.settled"))
}

/// What earlier runs left: the newest settled time stored with any partition's commit (or
/// mark file) of the topic, and the committed offset of each of `partitions` (this worker's).
///
/// Settled times are statements about the whole job — every window that ends, plus the
/// correction horizon, by then was final in every sink — so the newest one found on *any*
/// partition holds for all of them. Taking each partition's own would be wrong: a partition
/// whose offset could not advance (an earlier message of it belonged to a window still open)
/// keeps an old settled time in its commit, and after a restart its re-read messages of windows
/// that had long been final would reopen those windows with only themselves in them, replacing
/// the complete results in the sinks.
fn previously_settled(
    consumer: &BaseConsumer<LagContext>,
    topic: &str,
    all: &[i32],
    partitions: &[i32],
    marks: Option<&Path>,
) -> io::Result<(u64, Vec<Option<i64>>)> {
    let mut list = TopicPartitionList::new();
    for p in all {
        list.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(list, STARTUP_TIMEOUT)
        .map_err(|e| kafka_error("reading committed offsets", e))?;
    let settled = all
        .iter()
        .flat_map(|p| {
            let from_metadata = committed
                .find_partition(topic, *p)
                .and_then(|e| e.metadata().strip_prefix(SETTLED_PREFIX).and_then(|v| v.parse().ok()));
            let from_file = marks
                .and_then(|dir| std::fs::read_to_string(mark_file(dir, *p)).ok())
                .and_then(|text| text.trim().parse().ok());
            from_metadata.into_iter().chain(from_file)
        })
        .max()
        .unwrap_or(0);
    let offsets = partitions
        .iter()
        .map(|p| match committed.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) if o >= 0 => Some(o),
            _ => None,
        })
        .collect();
    Ok((settled, offsets))
}

/// Where reading starts in each partition: the next offset before anything is read. A
/// partition with nothing after it is caught up from the start — without knowing this, a
/// restart whose other partitions are all committed to their end would wait for messages
/// that never come, and hold the watermark for ever.
fn start_offsets(
    consumer: &BaseConsumer<LagContext>,
    topic: &str,
    partitions: &[i32],
    assignment: &TopicPartitionList,
    committed: &[Option<i64>],
) -> io::Result<Vec<Option<i64>>> {
    let watermarks = |p: i32| {
        consumer
            .fetch_watermarks(topic, p, STARTUP_TIMEOUT)
            .map_err(|e| kafka_error("reading partition offsets", e))
    };
    partitions
        .iter()
        .zip(committed)
        .map(|(p, committed)| {
            let requested = assignment.find_partition(topic, *p).map(|e| e.offset());
            Ok(match (requested, committed) {
                (Some(Offset::Offset(o)), _) if o >= 0 => Some(o),
                (Some(Offset::Stored), Some(o)) => Some(*o),
                (Some(Offset::End), _) => Some(watermarks(*p)?.1),
                // Stored without a commit falls back to auto.offset.reset = earliest.
                (Some(Offset::Stored | Offset::Beginning), _) => Some(watermarks(*p)?.0),
                _ => None,
            })
        })
        .collect()
}

fn timestamps(topic: &str, partitions: &[i32], ms: i64) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition_offset(topic, *p, Offset::Offset(ms))
            .expect("a valid partition offset");
    }
    list
}

impl LineSource for KafkaSource {
    fn read(&mut self, budget: usize, visit: &mut dyn FnMut(Origin<'_>, Line<'_>)) -> io::Result<SourceStatus> {
        if self.partitions.is_empty() {
            return Ok(SourceStatus::Done);
        }
        let mut handed = 0;
        while handed < budget {
            match self.consumer.poll(Duration::ZERO) {
                None => break,
                Some(Err(error)) => {
                    if self
                        .error_logged
                        .is_none_or(|at| at.elapsed() > Duration::from_secs(30))
                    {
                        self.error_logged = Some(Instant::now());
                        warn!(topic = %self.topic, %error, "kafka consumer error (retrying; logged at most every 30 s)");
                    }
                    return Ok(SourceStatus::Idle(Duration::from_millis(100)));
                }
                Some(Ok(message)) => {
                    let Some(&slot) = self
                        .slot_of
                        .get(message.partition() as usize)
                        .filter(|s| **s != usize::MAX)
                    else {
                        continue;
                    };
                    self.last_message[slot] = Instant::now();
                    self.next_offset[slot] = Some(message.offset() + 1);
                    let origin = Origin {
                        slot,
                        position: message.offset() as u64,
                        key: message.key(),
                    };
                    let payload = message.payload().unwrap_or_default();
                    if payload.len() > self.max_message_bytes {
                        let prefix = &payload[..crate::lines::OVERSIZED_PREFIX_BYTES.min(payload.len())];
                        visit(
                            origin,
                            Line::Oversized {
                                prefix,
                                len: payload.len() as u64,
                            },
                        );
                    } else if let Some((decoder, json)) = self.avro.as_mut() {
                        json.clear();
                        match decoder.to_json(payload, json) {
                            Ok(()) => visit(origin, Line::Complete(json)),
                            Err((reason, detail)) => visit(
                                origin,
                                Line::Rejected {
                                    original: payload,
                                    reason,
                                    detail,
                                },
                            ),
                        }
                    } else {
                        visit(origin, Line::Complete(payload));
                    }
                    handed += 1;
                }
            }
        }
        Ok(if handed == 0 {
            SourceStatus::Idle(Duration::from_millis(5))
        } else {
            SourceStatus::Progress
        })
    }

    fn slots(&self) -> usize {
        self.partitions.len()
    }

    /// Idle means silent for the idle timeout and caught up. librdkafka's statistics report
    /// each partition's end offset where the broker tells it: reading up to it settles it, an
    /// end beyond what was read means the messages are merely slow (a cold start, a busy
    /// broker) and the partition keeps holding the watermark, or its events would all be late.
    /// Where the end is unknown, a partition that has delivered is idle after the timeout, and
    /// one that never has only after ten timeouts, so a slow first fetch is not silence.
    fn is_idle(&self, slot: usize) -> bool {
        let silent = self.last_message[slot].elapsed();
        if silent < self.idle_timeout {
            return false;
        }
        match (
            self.consumer.context().end_offset(self.partitions[slot]),
            self.next_offset[slot],
        ) {
            (Some(end), Some(next)) => next >= end,
            // Nothing delivered yet: idle if there was nothing to read from where it started.
            (Some(end), None) => self.start_offset[slot].is_some_and(|start| start >= end),
            (None, Some(_)) => true,
            (None, None) => silent >= self.idle_timeout * 10,
        }
    }

    fn commits(&self) -> bool {
        true
    }

    fn commit(&mut self, next: &[Option<u64>], settled: u64, last: bool) -> io::Result<()> {
        // What an earlier run settled stays settled: a restarted run's frontier starts low and
        // its first commits (of the same offsets) must not store a smaller settled time, or the
        // run after it would let re-read messages reopen windows that are final.
        let settled = settled.max(self.settled_before);
        let mut list = TopicPartitionList::new();
        let metadata = format!("{SETTLED_PREFIX}{settled}");
        for (slot, offset) in next.iter().enumerate() {
            if let Some(offset) = offset {
                let mut element = list.add_partition(&self.topic, self.partitions[slot]);
                element
                    .set_offset(Offset::Offset(*offset as i64))
                    .map_err(|e| kafka_error("building the commit", e))?;
                element.set_metadata(&metadata);
            }
        }
        if list.count() == 0 {
            return Ok(());
        }
        // The mark is written before the offset is committed: a mark ahead of its offset only
        // dead-letters events that were final anyway, an offset ahead of its mark would not.
        if let Some(dir) = &self.marks {
            for (slot, offset) in next.iter().enumerate() {
                if offset.is_some() {
                    let path = mark_file(dir, self.partitions[slot]);
                    let temporary = path.with_extension("tmp");
                    std::fs::write(&temporary, settled.to_string())?;
                    std::fs::rename(&temporary, &path)?;
                }
            }
        }
        let mode = if last { CommitMode::Sync } else { CommitMode::Async };
        self.consumer
            .commit(&list, mode)
            .map_err(|e| kafka_error("committing offsets", e))
    }

    fn settled_before(&self, _slot: usize) -> u64 {
        self.settled_before
    }

    fn start_position(&self, slot: usize) -> Option<u64> {
        u64::try_from(self.start_offset[slot]?).ok()
    }

    fn end_position(&self, slot: usize) -> Option<u64> {
        let end = self.consumer.context().end_offset(self.partitions[slot])?;
        u64::try_from(end).ok()
    }

    fn partition(&self, slot: usize) -> Option<i32> {
        self.partitions.get(slot).copied()
    }
}
