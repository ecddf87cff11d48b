//! `tidemark produce`: publish an NDJSON file to a Kafka topic, one message per line.
//!
//! Useful to users (replay a capture into a topic) and to the tests; Debian's kcat is too old
//! for current brokers.

use anyhow::{Context, Result, bail};
use apache_avro::Schema;
use clap::Args;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Duration;
use tidemark_connectors::avro::{AvroEncoder, SchemaRegistry};

/// Arguments of `tidemark produce`.
#[derive(Args)]
pub struct ProduceArgs {
    /// The NDJSON file (`-` for stdin).
    file: PathBuf,
    /// Topic to publish to (must exist).
    #[arg(long)]
    topic: String,
    /// Bootstrap brokers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Spread lines over partitions round-robin starting here, instead of leaving it to the
    /// partitioner (useful to fill every partition of a small test topic).
    #[arg(long)]
    partitions: Option<i32>,
    /// Encode each line as Avro with the schema of its kind (tidemark's `schemas/avro/`), as
    /// single objects, or in the Confluent wire format with `--registry`.
    #[arg(long)]
    avro: bool,
    /// Schema registry URL: register the schemas under `<topic>-value` and frame messages with
    /// their ids (implies `--avro`).
    #[arg(long)]
    registry: Option<String>,
    /// Use this writer schema (`.avsc`) for every line instead of the one of its kind.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// Extra librdkafka producer property, `key=value` (repeatable).
    #[arg(long = "option", value_parser = parse_option)]
    options: Vec<(String, String)>,
}

fn parse_option(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("\"{text}\" is not key=value"))
}

/// Runs `tidemark produce`.
pub fn produce(args: ProduceArgs) -> Result<()> {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &args.brokers).set("linger.ms", "20");
    for (key, value) in &args.options {
        client.set(key, value);
    }
    let producer: BaseProducer = client.create().context("creating the Kafka producer")?;
    let input: Box<dyn std::io::Read> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?)
    };
    let mut encoder = (args.avro || args.registry.is_some() || args.schema.is_some())
        .then(|| -> Result<AvroEncoder> {
            let schema = match &args.schema {
                Some(path) => Some(
                    Schema::parse_str(
                        &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
                    )
                    .with_context(|| format!("parsing {}", path.display()))?,
                ),
                None => None,
            };
            let registry = args
                .registry
                .as_ref()
                .map(|url| (SchemaRegistry::new(url), format!("{}-value", args.topic)));
            Ok(AvroEncoder::new(schema, registry))
        })
        .transpose()?;
    let mut sent = 0u64;
    for (number, line) in BufReader::with_capacity(1 << 20, input).split(b'\n').enumerate() {
        let line = line.context("reading the input")?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let payload = match encoder.as_mut() {
            Some(encoder) => encoder
                .encode(&line)
                .map_err(|e| anyhow::anyhow!("line {}: {e}", number + 1))?,
            None => line,
        };
        let mut record = BaseRecord::<(), [u8]>::to(&args.topic).payload(&payload[..]);
        if let Some(partitions) = args.partitions {
            record = record.partition((sent % partitions as u64) as i32);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    producer.poll(Duration::from_millis(50));
                    record = returned;
                }
                Err((error, _)) => bail!("producing to {}: {error}", args.topic),
            }
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(120))
        .context("waiting for the broker to acknowledge")?;
    println!("produced {sent} messages to {}", args.topic);
    Ok(())
}
