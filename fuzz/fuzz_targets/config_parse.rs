//! The configuration loader on arbitrary text: TOML → the typed sections that live in the
//! libraries (the `Config` struct itself is in the binary crate and only composes these), then
//! each section's own validation, as `tidemark run` and `tidemark check-config` apply them.
//!
//! Sections: `[source]` (`tidemark_connectors::SourceConfig`, Kafka and generator checks),
//! `[pipeline]` (`tidemark_dataflows::WindowSettings`), `[[metrics]]` through
//! `tidemark_schemas::MetricDefinitions::new` (with the built-in definitions, as the binary
//! does), `[analytics]`, `[alerts]`, `[notify]`, `[sinks.influxdb]`, `[sinks.kafka]`.
//!
//! Checked: nothing panics on any text; and what the dataflow assumes of an accepted
//! `[pipeline]` holds — window sizes in whole milliseconds that are positive, strictly
//! increasing and each a multiple of the previous (`window_start` divides by them), which
//! `validate` promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use tidemark_connectors::SourceConfig;
use tidemark_dataflows::{AnalyticsSettings, WindowSettings};
use tidemark_schemas::{MetricDefinition, MetricDefinitions};
use tidemark_sinks::alerting::AlertsConfig;
use tidemark_sinks::influxdb::InfluxDbConfig;
use tidemark_sinks::kafka::KafkaSinkConfig;
use tidemark_sinks::notify::NotifyConfig;

/// The library sections of the configuration file; unknown top-level keys (`runtime`,
/// `server`, …, which belong to the binary) are ignored so real config files parse.
#[derive(Deserialize)]
struct Sections {
    source: Option<SourceConfig>,
    pipeline: Option<WindowSettings>,
    metrics: Option<Vec<MetricDefinition>>,
    analytics: Option<AnalyticsSettings>,
    alerts: Option<AlertsConfig>,
    notify: Option<NotifyConfig>,
    sinks: Option<Sinks>,
}

#[derive(Deserialize)]
struct Sinks {
    influxdb: Option<InfluxDbConfig>,
    kafka: Option<KafkaSinkConfig>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(sections) = toml::from_str::<Sections>(text) else {
        return;
    };
    match &sections.source {
        Some(SourceConfig::Kafka(kafka)) => {
            let _ = kafka.validate();
        }
        Some(SourceConfig::Generator(generator)) => {
            let _ = generator.settings(1_732_233_600_000).validate();
        }
        _ => {}
    }
    if let Some(pipeline) = &sections.pipeline
        && pipeline.validate().is_ok()
    {
        let sizes = pipeline.sizes_ms();
        assert!(sizes[0] > 0, "accepted base size of 0 ms: {pipeline:?}");
        for pair in sizes.windows(2) {
            assert!(
                pair[1] > pair[0] && pair[1] % pair[0] == 0,
                "accepted window sizes that do not nest in milliseconds: {sizes:?} from {pipeline:?}"
            );
        }
    }
    if let Some(metrics) = sections.metrics {
        let mut all: Vec<MetricDefinition> = MetricDefinitions::builtin().iter().cloned().collect();
        all.extend(metrics);
        let _ = MetricDefinitions::new(all, "metrics");
    }
    if let Some(analytics) = &sections.analytics {
        let _ = analytics.validate();
    }
    if let Some(alerts) = &sections.alerts {
        let _ = alerts.validate();
    }
    if let Some(notify) = &sections.notify {
        let _ = notify.validate();
    }
    if let Some(sinks) = &sections.sinks {
        if let Some(influxdb) = &sinks.influxdb {
            let _ = influxdb.validate();
        }
        if let Some(kafka) = &sinks.kafka {
            let _ = kafka.validate();
        }
    }
});
