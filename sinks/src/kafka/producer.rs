//! The producer behind the Kafka sink.

use super::Sink;
use super::avro::{AvroRecord, encode_framed};
use super::config::{KafkaSinkConfig, OutputFormat};
use super::registration::register;
use crate::SinkError;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use std::sync::Mutex;
use std::time::Duration;
use tidemark_connectors::avro::SchemaRegistry;
use tidemark_schemas::{AlertEvent, AnomalyScore, DeadLetter, ForecastPoint, OutputBatch, WindowUpdate};

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

/// An output topic and how its records are encoded: JSON, or Avro under a registered schema id.
struct Target {
    topic: String,
    schema_id: Option<u32>,
}

impl Target {
    /// The target for records of type `R` on `topic`, registering their schema for Avro.
    fn new<R: AvroRecord>(
        topic: &str,
        config: &KafkaSinkConfig,
        registry: Option<&mut SchemaRegistry>,
    ) -> Result<Self, SinkError> {
        let schema_id = match registry {
            Some(registry) => Some(register::<R>(registry, config.subject_name_strategy, topic)?),
            None => None,
        };
        Ok(Target {
            topic: topic.to_owned(),
            schema_id,
        })
    }
}

/// Produces results and dead letters to Kafka.
pub struct KafkaSink {
    out: Output,
    config: KafkaSinkConfig,
    windows: Target,
    scores: Option<Target>,
    forecasts: Option<Target>,
    alerts: Option<Target>,
}

/// The producer and the buffers every record is encoded into, reused from record to record.
struct Output {
    producer: BaseProducer<Deliveries>,
    records: u64,
    /// The value being sent.
    value: Vec<u8>,
    /// The `upsert-key` header being sent.
    upsert: String,
}

impl KafkaSink {
    /// Registers the output schemas (for Avro) and connects a producer.
    pub fn create(config: &KafkaSinkConfig) -> Result<Self, SinkError> {
        config.validate().map_err(|error| SinkError::Kafka {
            what: "configuration",
            error,
        })?;
        let mut registry = match (config.format, &config.schema_registry) {
            (OutputFormat::Avro, Some(url)) => Some(SchemaRegistry::new(url)),
            _ => None,
        };
        let windows = Target::new::<WindowUpdate>(&config.windows_topic, config, registry.as_mut())?;
        let scores = config
            .scores_topic
            .as_deref()
            .map(|topic| Target::new::<AnomalyScore>(topic, config, registry.as_mut()))
            .transpose()?;
        let forecasts = config
            .forecasts_topic
            .as_deref()
            .map(|topic| Target::new::<ForecastPoint>(topic, config, registry.as_mut()))
            .transpose()?;
        let alerts = config
            .alerts_topic
            .as_deref()
            .map(|topic| Target::new::<AlertEvent>(topic, config, registry.as_mut()))
            .transpose()?;
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
            out: Output {
                producer,
                records: 0,
                value: Vec::with_capacity(512),
                upsert: String::with_capacity(128),
            },
            config: config.clone(),
            windows,
            scores,
            forecasts,
            alerts,
        })
    }
}

/// Sends one record, waiting while the local queue is full (that wait is the backpressure).
fn send(producer: &BaseProducer<Deliveries>, record: BaseRecord<'_, [u8], [u8]>) -> Result<(), SinkError> {
    let mut record = record;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                producer.poll(Duration::from_millis(100));
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

impl Output {
    /// Sets the `upsert-key` of a result: `series|window_ms|window_start[|field]`.
    fn upsert_key(&mut self, series: &str, window_ms: u64, window_start: i64, field: Option<&str>) {
        use std::fmt::Write;
        self.upsert.clear();
        write!(self.upsert, "{series}|{window_ms}|{window_start}").expect("writing to a String");
        if let Some(field) = field {
            self.upsert.push('|');
            self.upsert.push_str(field);
        }
    }

    /// Encodes `record` for `target` and sends it keyed by `key`, with the `upsert-key` header
    /// set before (and `extra`, if any).
    fn result<R: AvroRecord + serde::Serialize>(
        &mut self,
        target: &Target,
        record: &R,
        key: &str,
        extra: Option<Header<'_, &str>>,
    ) -> Result<(), SinkError> {
        match target.schema_id {
            Some(id) => encode_framed(record, id, &mut self.value),
            None => {
                self.value.clear();
                serde_json::to_writer(&mut self.value, record).map_err(|e| SinkError::Kafka {
                    what: "encoding",
                    error: e.to_string(),
                })?;
            }
        }
        let mut headers = OwnedHeaders::new_with_capacity(2).insert(Header {
            key: "upsert-key",
            value: Some(self.upsert.as_str()),
        });
        if let Some(header) = extra {
            headers = headers.insert(header);
        }
        let record = BaseRecord::to(&target.topic)
            .key(key.as_bytes())
            .payload(&self.value[..])
            .headers(headers);
        send(&self.producer, record)?;
        self.records += 1;
        Ok(())
    }

    /// Dead letters keep their original key and bytes; the reason and origin go in headers.
    fn dead_letter(&mut self, topic: &str, letter: &DeadLetter) -> Result<(), SinkError> {
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
        let key = letter.key.as_deref().unwrap_or_default();
        let record = BaseRecord::to(topic)
            .key(key)
            .payload(&letter.original[..])
            .headers(headers);
        send(&self.producer, record)?;
        self.records += 1;
        Ok(())
    }
}

impl Sink for KafkaSink {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn write(&mut self, batch: &OutputBatch) -> Result<(), SinkError> {
        let out = &mut self.out;
        for row in &batch.windows {
            out.upsert_key(&row.series, row.window_ms, row.window_start, None);
            out.result(&self.windows, row, &row.series, None)?;
        }
        if let Some(target) = &self.scores {
            for score in &batch.scores {
                out.upsert_key(&score.series, score.window_ms, score.window_start, Some(score.field));
                out.result(target, score, &score.series, None)?;
            }
        }
        if let Some(target) = &self.forecasts {
            for point in &batch.forecasts {
                out.upsert_key(&point.series, point.window_ms, point.window_start, Some(point.field));
                out.result(target, point, &point.series, None)?;
            }
        }
        if let Some(target) = &self.alerts {
            for alert in &batch.alerts {
                // Keyed and upserted by the alert instance, so its firing and resolved events
                // stay in order on one partition; `alert-id` is what receivers deduplicate on.
                out.upsert.clear();
                out.upsert.push_str(&alert.fingerprint);
                let id = Header {
                    key: "alert-id",
                    value: Some(alert.id.as_str()),
                };
                out.result(target, alert, &alert.fingerprint, Some(id))?;
            }
        }
        if let Some(topic) = &self.config.dead_letter_topic {
            for letter in &batch.dead_letters {
                out.dead_letter(topic, letter)?;
            }
        }
        out.producer.poll(Duration::ZERO);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.producer.flush(FLUSH_TIMEOUT).map_err(|e| SinkError::Kafka {
            what: "waiting for deliveries",
            error: e.to_string(),
        })?;
        let failure = self
            .out
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
        self.out.records
    }

    fn describe(&self) -> String {
        let format = match self.config.format {
            OutputFormat::Json => "JSON",
            OutputFormat::Avro => "Avro",
        };
        format!(
            "kafka ({} records, {format}): topic {} on {}",
            self.out.records, self.config.windows_topic, self.config.brokers
        )
    }
}
