//! `[sinks.kafka]`.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Where results go in Kafka.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// Topic for window results (one record per window update).
    pub windows_topic: String,
    /// Topic for anomaly scores (optional).
    #[serde(default)]
    pub scores_topic: Option<String>,
    /// Topic for forecasts (optional).
    #[serde(default)]
    pub forecasts_topic: Option<String>,
    /// Topic for alert events, firing and resolved (optional).
    #[serde(default)]
    pub alerts_topic: Option<String>,
    /// Topic for dead letters: the original key and bytes, the reason in headers (optional).
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// How result records are encoded.
    #[serde(default)]
    pub format: OutputFormat,
    /// The schema registry's URL; required with `format = "avro"`.
    #[serde(default)]
    pub schema_registry: Option<String>,
    /// Which registry subject each output schema is registered under.
    #[serde(default)]
    pub subject_name_strategy: SubjectNameStrategy,
    /// Use the idempotent producer (default true; turn off for brokers without it).
    #[serde(default = "yes")]
    pub idempotent: bool,
    /// Extra librdkafka producer properties.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// The encoding of result records (dead letters always keep their original bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// One JSON object per record.
    #[default]
    Json,
    /// Avro binary in the Confluent wire format, with schemas registered in a schema registry.
    Avro,
}

/// Confluent's subject name strategies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectNameStrategy {
    /// `<topic>-value`: one record type per topic (Confluent's default).
    #[default]
    TopicName,
    /// The record's full name, e.g. `io.tidemark.WindowUpdate`, shared by all topics.
    RecordName,
    /// `<topic>-<record full name>`: several record types on one topic.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// The subject of the record `fullname` written to `topic`.
    pub fn subject(self, topic: &str, fullname: &str) -> String {
        match self {
            SubjectNameStrategy::TopicName => format!("{topic}-value"),
            SubjectNameStrategy::RecordName => fullname.to_owned(),
            SubjectNameStrategy::TopicRecordName => format!("{topic}-{fullname}"),
        }
    }
}

fn yes() -> bool {
    true
}

impl KafkaSinkConfig {
    /// The configured topics of result records, with their config keys.
    pub fn result_topics(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("windows_topic", Some(&self.windows_topic)),
            ("scores_topic", self.scores_topic.as_ref()),
            ("forecasts_topic", self.forecasts_topic.as_ref()),
            ("alerts_topic", self.alerts_topic.as_ref()),
        ]
        .into_iter()
        .filter_map(|(key, topic)| Some((key, topic?.as_str())))
    }

    /// Checks what serde cannot; the message names the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("sinks.kafka.brokers is empty; set it to host:port of a broker".into());
        }
        let dead_letters = self.dead_letter_topic.as_deref().map(|t| ("dead_letter_topic", t));
        for (_, topic) in self.result_topics().chain(dead_letters) {
            if topic.is_empty()
                || topic.len() > 249
                || !topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(format!(
                    "sinks.kafka: topic name \"{topic}\" is invalid; use 1-249 characters from A-Z a-z 0-9 . _ -"
                ));
            }
        }
        match (self.format, self.schema_registry.as_deref()) {
            (OutputFormat::Avro, None) => Err(
                "sinks.kafka.schema_registry is required with format = \"avro\"; set it to the registry's URL, \
                 e.g. schema_registry = \"http://127.0.0.1:8081\""
                    .into(),
            ),
            (OutputFormat::Avro, Some(url)) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                Err(format!(
                    "sinks.kafka.schema_registry = \"{url}\" is not an http:// or https:// URL; \
                     e.g. schema_registry = \"http://127.0.0.1:8081\""
                ))
            }
            (OutputFormat::Json, Some(_)) => Err(
                "sinks.kafka.schema_registry is set but format = \"json\"; set format = \"avro\" to write Avro, \
                 or remove schema_registry"
                    .into(),
            ),
            (OutputFormat::Avro, Some(_)) if self.subject_name_strategy == SubjectNameStrategy::TopicName => {
                self.one_record_type_per_topic()
            }
            _ => Ok(()),
        }
    }

    /// With `<topic>-value` subjects, two record types on one topic would need two schemas under
    /// one subject, which a registry refuses as incompatible.
    fn one_record_type_per_topic(&self) -> Result<(), String> {
        let topics: Vec<_> = self.result_topics().collect();
        for (i, (key, topic)) in topics.iter().enumerate() {
            if let Some((other, _)) = topics[..i].iter().find(|(_, t)| t == topic) {
                return Err(format!(
                    "sinks.kafka.{key} and sinks.kafka.{other} are both \"{topic}\", but the subject \
                     \"{topic}-value\" can hold one record type; use separate topics or \
                     subject_name_strategy = \"topic_record_name\""
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<KafkaSinkConfig, String> {
        let text = format!("brokers = \"127.0.0.1:9092\"\nwindows_topic = \"windows\"\n{extra}");
        let config: KafkaSinkConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.validate().map(|()| config)
    }

    #[test]
    fn json_is_the_default_and_needs_no_registry() {
        let config = config("").unwrap();
        assert_eq!(config.format, OutputFormat::Json);
        assert_eq!(config.subject_name_strategy, SubjectNameStrategy::TopicName);
    }

    #[test]
    fn avro_needs_a_registry_url() {
        let error = config("format = \"avro\"").unwrap_err();
        assert!(error.contains("sinks.kafka.schema_registry is required"), "{error}");
        let error = config("format = \"avro\"\nschema_registry = \"127.0.0.1:8081\"").unwrap_err();
        assert!(error.contains("not an http:// or https:// URL"), "{error}");
        let error = config("schema_registry = \"http://r:8081\"").unwrap_err();
        assert!(error.contains("set format = \"avro\""), "{error}");
        config("format = \"avro\"\nschema_registry = \"http://r:8081\"\nalerts_topic = \"alerts\"").unwrap();
    }

    #[test]
    fn topic_name_subjects_need_one_record_type_per_topic() {
        let shared = "format = \"avro\"\nschema_registry = \"http://r:8081\"\nalerts_topic = \"windows\"";
        let error = config(shared).unwrap_err();
        assert!(
            error.contains("sinks.kafka.alerts_topic and sinks.kafka.windows_topic"),
            "{error}"
        );
        config(&format!("{shared}\nsubject_name_strategy = \"topic_record_name\"")).unwrap();
    }

    #[test]
    fn subjects_follow_the_strategy() {
        let name = "io.tidemark.WindowUpdate";
        assert_eq!(SubjectNameStrategy::TopicName.subject("w", name), "w-value");
        assert_eq!(SubjectNameStrategy::RecordName.subject("w", name), name);
        assert_eq!(
            SubjectNameStrategy::TopicRecordName.subject("w", name),
            "w-io.tidemark.WindowUpdate"
        );
    }
}
