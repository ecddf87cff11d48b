//! Evaluating rules on the results of each batch.

use super::config::{AlertRule, AlertsConfig, Condition, Field, Silence};
use super::instance::{Instance, Timing, Transition};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use tidemark_schemas::series::split_key;
use tidemark_schemas::{Aggregates, AlertEvent, AlertState, OutputBatch};

/// The firing alerts, shared with the HTTP API.
pub type ActiveAlerts = Arc<RwLock<BTreeMap<String, AlertEvent>>>;

/// How far back forecasts are kept for the `outside_forecast` condition, ms.
const FORECAST_MEMORY_MS: i64 = 7 * 86_400_000;

struct CompiledRule {
    rule: AlertRule,
    timing: Timing,
    window_ms: u64,
}

impl CompiledRule {
    /// The group labels of `series` if the rule watches it.
    fn matches(&self, series: &str, window_ms: u64) -> Option<BTreeMap<String, String>> {
        if window_ms != self.window_ms {
            return None;
        }
        let (metric, tags) = split_key(series);
        if metric != self.rule.metric {
            return None;
        }
        let tags: BTreeMap<&str, &str> = tags.collect();
        if !self
            .rule
            .filters
            .iter()
            .all(|(k, v)| tags.get(k.as_str()) == Some(&v.as_str()))
        {
            return None;
        }
        Some(
            self.rule
                .group_by
                .iter()
                .map(|k| (k.clone(), tags.get(k.as_str()).copied().unwrap_or_default().to_owned()))
                .collect(),
        )
    }

    fn fingerprint(&self, labels: &BTreeMap<String, String>) -> String {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}{{{}}}", self.rule.name, labels.join(","))
    }
}

fn field_value(field: Field, a: &Aggregates) -> Option<f64> {
    match field {
        Field::Count => Some(a.count as f64),
        Field::Sum => Some(a.sum),
        Field::Min => Some(a.min),
        Field::Max => Some(a.max),
        Field::Avg => Some(a.avg),
        Field::P50 => a.p50,
        Field::P95 => a.p95,
        Field::P99 => a.p99,
        Field::Distinct => a.distinct.map(|d| d as f64),
    }
    .filter(|v| v.is_finite())
}

/// Forecast bands of one future window.
#[derive(Clone, Copy)]
struct Band {
    lower80: f64,
    upper80: f64,
    lower95: f64,
    upper95: f64,
}

/// The rule engine: state per alert instance, fed batch by batch.
pub struct AlertEngine {
    rules: Vec<CompiledRule>,
    instances: HashMap<String, Instance>,
    previous: HashMap<(usize, Arc<str>), f64>,
    last_seen: HashMap<(usize, Arc<str>), i64>,
    forecasts: HashMap<(Arc<str>, u64, i64), Band>,
    clock: i64,
    silences: Arc<Mutex<Vec<Silence>>>,
    active: ActiveAlerts,
}

/// One observation to evaluate: (rule, series, truth, value, window time).
type Verdict = (usize, Arc<str>, BTreeMap<String, String>, bool, f64, i64);

impl AlertEngine {
    /// An engine for the configured rules (validated by the caller).
    pub fn new(config: &AlertsConfig) -> Self {
        let rules = config
            .rules
            .iter()
            .map(|rule| CompiledRule {
                timing: Timing {
                    window: rule.window.as_millis() as i64,
                    hold: rule.for_duration.as_millis() as i64,
                    keep: rule.keep_firing_for.as_millis() as i64,
                },
                window_ms: rule.window.as_millis() as u64,
                rule: rule.clone(),
            })
            .collect();
        AlertEngine {
            rules,
            instances: HashMap::new(),
            previous: HashMap::new(),
            last_seen: HashMap::new(),
            forecasts: HashMap::new(),
            clock: i64::MIN,
            silences: Arc::new(Mutex::new(config.silences.clone())),
            active: ActiveAlerts::default(),
        }
    }

    /// The firing alerts, for the API.
    pub fn active(&self) -> ActiveAlerts {
        self.active.clone()
    }

    /// The silences, settable at run time (the API).
    pub fn silences(&self) -> Arc<Mutex<Vec<Silence>>> {
        self.silences.clone()
    }

    /// Whether `event` is muted by a silence at wall-clock `now_ms`.
    pub fn is_silenced(&self, event: &AlertEvent, now_ms: i64) -> bool {
        let silences = self.silences.lock().expect("silences lock");
        silences.iter().any(|s| s.mutes(&event.rule, &event.labels, now_ms))
    }

    /// Evaluates every rule on the batch; returns the alerts that fired or resolved.
    pub fn evaluate(&mut self, batch: &OutputBatch) -> Vec<AlertEvent> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        for point in &batch.forecasts {
            let band = Band {
                lower80: point.lower80,
                upper80: point.upper80,
                lower95: point.lower95,
                upper95: point.upper95,
            };
            self.forecasts
                .insert((point.series.clone(), point.window_ms, point.window_start), band);
        }
        let mut verdicts: Vec<Verdict> = Vec::new();
        for row in &batch.windows {
            self.clock = self.clock.max(row.window_start);
            for (index, compiled) in self.rules.iter().enumerate() {
                let Some(labels) = compiled.matches(&row.series, row.window_ms) else {
                    continue;
                };
                let Some(value) = field_value(compiled.rule.field, &row.aggregates) else {
                    continue;
                };
                let key = (index, row.series.clone());
                let truth = match &compiled.rule.condition {
                    Condition::Above(x) => value > *x,
                    Condition::Below(x) => value < *x,
                    Condition::RateOfChangeAbove(x) => self
                        .previous
                        .insert(key.clone(), value)
                        .is_some_and(|prev| (value - prev).abs() > x * prev.abs().max(f64::MIN_POSITIVE)),
                    Condition::OutsideForecast(band) => {
                        match self
                            .forecasts
                            .get(&(row.series.clone(), row.window_ms, row.window_start))
                        {
                            Some(b) if *band == 80 => value < b.lower80 || value > b.upper80,
                            Some(b) => value < b.lower95 || value > b.upper95,
                            None => continue,
                        }
                    }
                    Condition::AbsentFor(_) => {
                        self.last_seen.insert(key, row.window_start);
                        false
                    }
                    Condition::AnomalyAbove(_) => continue,
                };
                verdicts.push((index, row.series.clone(), labels, truth, value, row.window_start));
            }
        }
        for score in &batch.scores {
            for (index, compiled) in self.rules.iter().enumerate() {
                let Condition::AnomalyAbove(threshold) = compiled.rule.condition else {
                    continue;
                };
                let Some(labels) = compiled.matches(&score.series, score.window_ms) else {
                    continue;
                };
                verdicts.push((
                    index,
                    score.series.clone(),
                    labels,
                    score.score > threshold,
                    score.score,
                    score.window_start,
                ));
            }
        }
        self.absences(&mut verdicts);
        verdicts.sort_by_key(|v| v.5);
        let mut events = Vec::new();
        for (index, series, labels, truth, value, time) in verdicts {
            let compiled = &self.rules[index];
            let fingerprint = compiled.fingerprint(&labels);
            let instance = self
                .instances
                .entry(fingerprint.clone())
                .or_insert_with(|| Instance::new(labels));
            if let Some(transition) = instance.observe(&series, truth, value, time, compiled.timing) {
                events.push(event(compiled, &fingerprint, instance, transition, value));
            }
            if instance.is_idle() {
                self.instances.remove(&fingerprint);
            }
        }
        let horizon = self.clock.saturating_sub(FORECAST_MEMORY_MS);
        self.forecasts.retain(|(_, _, start), _| *start >= horizon);
        let mut active = self.active.write().expect("active alerts lock");
        for event in &events {
            match event.state {
                AlertState::Firing => active.insert(event.fingerprint.clone(), event.clone()),
                AlertState::Resolved => active.remove(&event.fingerprint),
            };
        }
        events
    }

    /// Verdicts for `absent_for` rules at the current clock.
    fn absences(&self, verdicts: &mut Vec<Verdict>) {
        for ((index, series), seen) in &self.last_seen {
            let compiled = &self.rules[*index];
            let Condition::AbsentFor(limit) = compiled.rule.condition else {
                continue;
            };
            let Some(labels) = compiled.matches(series, compiled.window_ms) else {
                continue;
            };
            let missing = self.clock - seen;
            if missing > 0 {
                let truth = missing >= limit.as_millis() as i64;
                verdicts.push((*index, series.clone(), labels, truth, missing as f64, self.clock));
            }
        }
    }
}

/// `observed` is the value of the observation that caused the transition: a resolved instance
/// has no troubled series left, and its event still needs a finite value.
fn event(
    compiled: &CompiledRule,
    fingerprint: &str,
    instance: &Instance,
    transition: Transition,
    observed: f64,
) -> AlertEvent {
    let rule = &compiled.rule;
    let (state, started, ended) = match transition {
        Transition::Fire { started } => (AlertState::Firing, started, None),
        Transition::Resolve { started, ended } => (AlertState::Resolved, started, Some(ended)),
    };
    let (threshold, relation) = match &rule.condition {
        Condition::Above(x) => (Some(*x), format!("> {x}")),
        Condition::Below(x) => (Some(*x), format!("< {x}")),
        Condition::AnomalyAbove(x) => (Some(*x), format!("anomaly score > {x}")),
        Condition::OutsideForecast(band) => (None, format!("outside the {band} % forecast band")),
        Condition::RateOfChangeAbove(x) => (Some(*x), format!("changed by more than {:.0} %", x * 100.0)),
        Condition::AbsentFor(d) => (
            None,
            format!("absent for {}", humantime_serde::re::humantime::format_duration(*d)),
        ),
    };
    let troubled = instance.troubled();
    let value = troubled.values().copied().reduce(f64::max).unwrap_or(observed);
    let series: Vec<String> = troubled.keys().cloned().collect();
    let summary = match state {
        AlertState::Firing => format!(
            "{} of {} {} ({} series, e.g. {} = {value})",
            rule.field.as_str(),
            rule.metric,
            relation,
            series.len(),
            series.first().map_or("-", String::as_str)
        ),
        AlertState::Resolved => format!("{} of {} is back to normal", rule.field.as_str(), rule.metric),
    };
    let state_name = match state {
        AlertState::Firing => "firing",
        AlertState::Resolved => "resolved",
    };
    let id = format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(format!("{fingerprint}|{state_name}|{started}").as_bytes())
    );
    AlertEvent {
        id,
        fingerprint: fingerprint.to_owned(),
        rule: rule.name.clone(),
        severity: rule.severity,
        state,
        labels: instance.labels.clone(),
        series,
        summary,
        value,
        threshold,
        started_at_ms: started,
        ended_at_ms: ended,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_schemas::{AnomalyScore, SeriesId, UpdateKind, WindowUpdate};

    const MINUTE: i64 = 60_000;

    fn row(series: &str, minute: i64, avg: f64) -> WindowUpdate {
        WindowUpdate {
            series: Arc::from(series),
            series_id: SeriesId::of_key(series),
            window_ms: 60_000,
            window_start: minute * MINUTE,
            kind: UpdateKind::Final,
            aggregates: Aggregates {
                count: 1,
                sum: avg,
                min: avg,
                max: avg,
                avg,
                p50: Some(avg),
                p95: Some(avg),
                p99: Some(avg),
                distinct: None,
            },
        }
    }

    fn engine(rules: &str) -> AlertEngine {
        let config: AlertsConfig = toml::from_str(rules).expect("valid rules");
        config.validate().expect("valid rules");
        AlertEngine::new(&config)
    }

    fn batch(windows: Vec<WindowUpdate>) -> OutputBatch {
        OutputBatch {
            windows,
            ..OutputBatch::default()
        }
    }

    const LATENCY: &str = r#"
        [[rules]]
        name = "slow"
        metric = "lat"
        field = "avg"
        condition = { above = 100.0 }
        for = "2m"
        keep_firing_for = "2m"
        severity = "critical"
        group_by = ["service"]
    "#;

    #[test]
    fn a_threshold_rule_fires_holds_and_resolves() {
        let mut engine = engine(LATENCY);
        let values = [50.0, 150.0, 160.0, 170.0, 90.0, 95.0, 40.0];
        let mut events = Vec::new();
        for (minute, v) in values.iter().enumerate() {
            events.extend(engine.evaluate(&batch(vec![row("lat|service=auth", minute as i64, *v)])));
        }
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].state, AlertState::Firing);
        assert_eq!(events[0].started_at_ms, MINUTE);
        assert_eq!(events[0].labels.get("service").map(String::as_str), Some("auth"));
        assert_eq!(events[1].state, AlertState::Resolved);
        assert_eq!(events[1].ended_at_ms, Some(6 * MINUTE));
        assert_eq!(
            events[1].value, 95.0,
            "the value that resolved it (notifiers need a finite one)"
        );
        assert_ne!(events[0].id, events[1].id);
        assert!(engine.active().read().unwrap().is_empty());
    }

    #[test]
    fn groups_fire_separately_and_other_metrics_are_ignored() {
        let mut engine = engine(LATENCY);
        let mut events = Vec::new();
        for minute in 0..3 {
            events.extend(engine.evaluate(&batch(vec![
                row("lat|service=auth", minute, 500.0),
                row("lat|service=pay", minute, 10.0),
                row("other|service=pay", minute, 999.0),
            ])));
        }
        assert_eq!(events.len(), 1);
        assert_eq!(engine.active().read().unwrap().len(), 1);
    }

    #[test]
    fn replays_give_the_same_ids() {
        let run = || {
            let mut engine = engine(LATENCY);
            (0..5)
                .flat_map(|m| engine.evaluate(&batch(vec![row("lat|service=auth", m, 300.0)])))
                .collect::<Vec<_>>()
        };
        assert_eq!(run()[0].id, run()[0].id);
    }

    #[test]
    fn anomaly_and_absence_rules() {
        let mut engine = engine(
            r#"
            [[rules]]
            name = "odd"
            metric = "lat"
            condition = { anomaly_above = 0.9 }
            severity = "warning"
            [[rules]]
            name = "gone"
            metric = "lat"
            condition = { absent_for = "3m" }
            severity = "info"
            "#,
        );
        let score = |minute: i64, score: f64| AnomalyScore {
            series: Arc::from("lat|service=auth"),
            window_ms: 60_000,
            window_start: minute * MINUTE,
            field: "avg",
            value: 1.0,
            expected: 1.0,
            score,
        };
        let fired = engine.evaluate(&OutputBatch {
            scores: vec![score(0, 0.95)],
            ..OutputBatch::default()
        });
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].rule, "odd");
        engine.evaluate(&batch(vec![row("lat|service=auth", 1, 1.0)]));
        let mut absent = Vec::new();
        for minute in 2..6 {
            absent.extend(engine.evaluate(&batch(vec![row("lat|service=other", minute, 1.0)])));
        }
        assert!(
            absent.iter().any(|e| e.rule == "gone" && e.state == AlertState::Firing),
            "{absent:?}"
        );
    }

    #[test]
    fn silences_mute_matching_alerts_until_they_expire() {
        let mut engine = engine(LATENCY);
        engine.silences().lock().unwrap().push(Silence {
            rule: Some("slow".into()),
            labels: [("service".to_string(), "auth".to_string())].into(),
            until_ms: 1_000,
            comment: String::new(),
        });
        let fired: Vec<_> = (0..3)
            .flat_map(|m| engine.evaluate(&batch(vec![row("lat|service=auth", m, 300.0)])))
            .collect();
        assert!(engine.is_silenced(&fired[0], 999));
        assert!(!engine.is_silenced(&fired[0], 1_000));
    }

    #[test]
    fn bad_rules_name_the_key() {
        for (rule, key) in [
            ("condition = { anomaly_above = 3.0 }", "alerts.rules[0].condition"),
            ("condition = { outside_forecast = 90 }", "alerts.rules[0].condition"),
        ] {
            let text = format!("[[rules]]\nname = \"r\"\nmetric = \"m\"\nseverity = \"info\"\n{rule}\n");
            let config: AlertsConfig = toml::from_str(&text).unwrap();
            assert!(config.validate().unwrap_err().contains(key));
        }
    }
}
