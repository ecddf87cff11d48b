//! The producer behind the Kafka sink.

use super::Sink;
use super::config::KafkaSinkConfig;
use crate::SinkError;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use std::sync::Mutex;
use std::time::Duration;
use tidemark_schemas::OutputBatch;

/// How long `flush` waits for outstanding deliveries before failing the run.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Remembers the first delivery failure; librdkafka has already retried it.
#[derive(Default)]
struct Deliveries {
    failure: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result {
            let mut failure = self.failure.lock().expect("delivery failure lock");
            failure.get_or_insert_with(|| error.to_string());
        }
    }
}

/// Produces results and dead letters to Kafka.
pub struct KafkaSink {
    producer: BaseProducer<Deliveries>,
    config: KafkaSinkConfig,
    records: u64,
    value: Vec<u8>,
}

impl KafkaSink {
    /// Connects a producer.
    pub fn create(config: &KafkaSinkConfig) -> Result<Self, SinkError> {
        config.validate().map_err(|error| SinkError::Kafka {
            what: "configuration",
            error,
        })?;
        let mut client = ClientConfig::new();
        client
            .set("bootstrap.servers", &config.brokers)
            .set("enable.idempotence", if config.idempotent { "true" } else { "false" })
            .set("linger.ms", "20")
            .set("compression.type", "lz4");
        for (key, value) in &config.options {
            client.set(key, value);
        }
        let producer = client
            .create_with_context(Deliveries::default())
            .map_err(|e| SinkError::Kafka {
                what: "creating the producer",
                error: e.to_string(),
            })?;
        Ok(KafkaSink {
            producer,
            config: config.clone(),
            records: 0,
            value: Vec::with_capacity(512),
        })
    }

    /// Sends one record, waiting while the local queue is full (that wait is the backpressure).
    fn send(&mut self, topic: &str, key: &[u8], headers: OwnedHeaders) -> Result<(), SinkError> {
        let mut record = BaseRecord::to(topic).key(key).payload(&self.value[..]).headers(headers);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.records += 1;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    self.producer.poll(Duration::from_millis(100));
                    record = returned;
                }
                Err((error, _)) => {
                    return Err(SinkError::Kafka {
                        what: "producing",
                        error: error.to_string(),
                    });
                }
            }
        }
    }

    fn json(&mut self, value: &impl serde::Serialize) -> Result<(), SinkError> {
        self.value.clear();
        serde_json::to_writer(&mut self.value, value).map_err(|e| SinkError::Kafka {
            what: "encoding",
            error: e.to_string(),
        })
    }
}

fn upsert_key(series: &str, window_ms: u64, window_start: i64, field: Option<&str>) -> OwnedHeaders {
    let mut key = format!("{series}|{window_ms}|{window_start}");
    if let Some(field) = field {
        key.push('|');
        key.push_str(field);
    }
    OwnedHeaders::new().insert(Header {
        key: "upsert-key",
        value: Some(key.as_bytes()),
    })
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError> {
        let topic = self.config.windows_topic.clone();
        for row in &batch.windows {
            self.json(row)?;
            self.send(
                &topic,
                row.series.as_bytes(),
                upsert_key(&row.series, row.window_ms, row.window_start, None),
            )?;
        }
        if let Some(topic) = self.config.scores_topic.clone() {
            for score in &batch.scores {
                self.json(score)?;
                let headers = upsert_key(&score.series, score.window_ms, score.window_start, Some(score.field));
                self.send(&topic, score.series.as_bytes(), headers)?;
            }
        }
        if let Some(topic) = self.config.forecasts_topic.clone() {
            for point in &batch.forecasts {
                self.json(point)?;
                let headers = upsert_key(&point.series, point.window_ms, point.window_start, Some(point.field));
                self.send(&topic, point.series.as_bytes(), headers)?;
            }
        }
        if let Some(topic) = self.config.dead_letter_topic.clone() {
            for letter in &batch.dead_letters {
                self.value.clear();
                self.value.extend_from_slice(&letter.original);
                let position = letter.position.to_string();
                let partition = letter.partition.map(|p| p.to_string());
                let mut headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "reason",
                        value: Some(letter.reason.as_str()),
                    })
                    .insert(Header {
                        key: "detail",
                        value: Some(&letter.detail),
                    })
                    .insert(Header {
                        key: "source",
                        value: Some(&*letter.source),
                    })
                    .insert(Header {
                        key: "offset",
                        value: Some(&position),
                    });
                if let Some(partition) = &partition {
                    headers = headers.insert(Header {
                        key: "partition",
                        value: Some(partition),
                    });
                }
                if letter.truncated {
                    headers = headers.insert(Header {
                        key: "truncated",
                        value: Some("true"),
                    });
                }
                let key = letter.key.clone().unwrap_or_default();
                self.send(&topic, &key, headers)?;
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.producer.flush(FLUSH_TIMEOUT).map_err(|e| SinkError::Kafka {
            what: "waiting for deliveries",
            error: e.to_string(),
        })?;
        let failure = self
            .producer
            .context()
            .failure
            .lock()
            .expect("delivery failure lock")
            .take();
        match failure {
            Some(error) => Err(SinkError::Kafka {
                what: "delivering",
                error,
            }),
            None => Ok(()),
        }
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.flush()
    }

    fn written(&self) -> u64 {
        self.records
    }

    fn describe(&self) -> String {
        format!(
            "kafka ({} records): topic {} on {}",
            self.records, self.config.windows_topic, self.config.brokers
        )
    }
}
