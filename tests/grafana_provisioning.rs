//! The Grafana provisioning in `dashboards/grafana/provisioning` is proven to show data:
//!
//! * offline, every file is consistent — data source uids, alert condition and expression
//!   refIds, contact points named by the policies, durations, variables, secrets only from the
//!   environment — and each kind of planted mistake is caught;
//! * the notification policies route `severity=critical` to Slack and everything else to
//!   email, checked by Alertmanager's own router (`amtool config routes test`, Debian's
//!   `prometheus-alertmanager`) on the same tree;
//! * after a pipeline run into a real InfluxDB, every panel query and every alert-rule query,
//!   with Grafana's macros and template variables substituted as Grafana does, runs without
//!   error and returns data. An InfluxQL typo returns no error and no series, so "returns
//!   data" is the assertion that catches it.

mod influx_support;
mod support;

use influx_support::{Influx, repo_root};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use support::*;
use tidemark_schemas::{AnomalyScore, ForecastPoint, OutputBatch};
use tidemark_sinks::Sink;
use tidemark_sinks::influxdb::{InfluxDbConfig, InfluxDbSink};

const DATASOURCE_UID: &str = "tidemark-influxdb";
/// The environment variables the provisioning files may use (documented in their headers).
const ENVIRONMENT: [&str; 5] = [
    "TIDEMARK_INFLUX_URL",
    "TIDEMARK_INFLUX_DATABASE",
    "TIDEMARK_INFLUX_TOKEN",
    "TIDEMARK_SLACK_WEBHOOK_URL",
    "TIDEMARK_ALERT_EMAILS",
];
/// Variables Grafana itself defines for InfluxQL queries.
const BUILTINS: [&str; 3] = ["timeFilter", "__interval", "__interval_ms"];

fn provisioning() -> PathBuf {
    repo_root().join("dashboards/grafana/provisioning")
}

/// Whether a tool the test needs is missing: fails under `TIDEMARK_REQUIRE_SERVERS=1`
/// (`scripts/test` installs it), else skips with a message.
fn missing(tool: &str, works: bool) -> bool {
    if works {
        return false;
    }
    assert!(
        std::env::var("TIDEMARK_REQUIRE_SERVERS").as_deref() != Ok("1"),
        "{tool} is required (scripts/test installs it)"
    );
    eprintln!("skipped: {tool} is not installed (scripts/test installs it)");
    true
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

fn has_yaml() -> bool {
    Command::new(python())
        .args(["-c", "import yaml"])
        .status()
        .is_ok_and(|s| s.success())
}

/// A YAML file as JSON, read by PyYAML (Debian's python3-yaml).
fn yaml(path: &Path) -> Value {
    let output = Command::new(python())
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("running python3");
    assert!(
        output.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    found.retain(|p| {
        p.extension()
            .is_some_and(|e| e == extension || (extension == "yaml" && e == "yml"))
    });
    found.sort();
    found
}

/// Every file of a provisioning directory, parsed.
struct Provisioning {
    datasources: Vec<Value>,
    providers: Vec<Value>,
    dashboards: Vec<(String, Value)>,
    rule_groups: Vec<Value>,
    contact_points: Vec<Value>,
    policies: Vec<Value>,
    /// (file, text) of every YAML file, for the environment-variable checks.
    yaml_texts: Vec<(String, String)>,
}

fn list(doc: &Value, key: &str) -> Vec<Value> {
    doc[key].as_array().cloned().unwrap_or_default()
}

fn load(dir: &Path) -> Provisioning {
    let mut p = Provisioning {
        datasources: Vec::new(),
        providers: Vec::new(),
        dashboards: Vec::new(),
        rule_groups: Vec::new(),
        contact_points: Vec::new(),
        policies: Vec::new(),
        yaml_texts: Vec::new(),
    };
    for sub in ["datasources", "dashboards", "alerting"] {
        for file in files(&dir.join(sub), "yaml") {
            let doc = yaml(&file);
            p.yaml_texts
                .push((file.display().to_string(), std::fs::read_to_string(&file).unwrap()));
            p.datasources.extend(list(&doc, "datasources"));
            p.providers.extend(list(&doc, "providers"));
            p.rule_groups.extend(list(&doc, "groups"));
            p.contact_points.extend(list(&doc, "contactPoints"));
            p.policies.extend(list(&doc, "policies"));
        }
    }
    for provider in &p.providers {
        let path = provider["options"]["path"].as_str().unwrap_or_default();
        let local = dir
            .join("dashboards")
            .join(Path::new(path).file_name().unwrap_or_default());
        for file in files(&local, "json") {
            let text = std::fs::read_to_string(&file).unwrap();
            let dashboard = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            p.dashboards
                .push((file.file_name().unwrap().to_string_lossy().into_owned(), dashboard));
        }
    }
    p
}

/// A Grafana/Prometheus duration (`30s`, `5m`, `1h30m`, `0s`) in seconds.
fn duration(text: &str) -> Option<u64> {
    let mut total = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let seconds = match &rest[..unit] {
            "ms" => 0,
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            "y" => 31_536_000,
            _ => return None,
        };
        total += value * seconds;
        rest = &rest[unit..];
    }
    Some(total)
}

/// The `$name` / `${name}` references in `text` (a `$` before anything else, such as the
/// end-of-regex `$/`, is not one; `$$` is an escaped dollar).
fn references(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            if bytes.get(i + 1) == Some(&b'$') {
                i += 2;
                continue;
            }
            let braced = bytes.get(i + 1) == Some(&b'{');
            let start = i + 1 + usize::from(braced);
            let end = (start..bytes.len())
                .find(|&j| !(bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_'))
                .unwrap_or(bytes.len());
            if end > start {
                found.push(text[start..end].to_string());
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// Whether a panel target is a server-side expression (math over the panel's other queries).
fn is_expression(target: &Value) -> bool {
    target["datasource"]["uid"] == "__expr__"
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        all.push(panel.clone());
        all.extend(panel["panels"].as_array().into_iter().flatten().cloned());
    }
    all
}

fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

const MATCH_OPERATORS: [&str; 4] = ["=", "!=", "=~", "!~"];

/// Everything wrong with a provisioning directory, one message each.
fn problems(dir: &Path) -> Vec<String> {
    let p = load(dir);
    let mut problems = Vec::new();
    let mut report = |problem: String| problems.push(problem);

    let uids: BTreeSet<&str> = p.datasources.iter().filter_map(|d| d["uid"].as_str()).collect();
    if uids.len() != p.datasources.len() {
        report("a data source has no uid, or two share one".into());
    }
    for source in &p.datasources {
        if source["type"] != "influxdb" || source["jsonData"]["version"] != "InfluxQL" {
            report(format!(
                "data source {}: not an InfluxQL influxdb source",
                source["uid"]
            ));
        }
        let mut secrets = Vec::new();
        strings(&source["secureJsonData"], &mut secrets);
        strings(&source["url"], &mut secrets);
        for secret in secrets {
            if references(&secret).is_empty() {
                report(format!(
                    "data source {}: \"{secret}\" is written in the file; take it from the environment",
                    source["uid"]
                ));
            }
        }
    }
    // Grafana expands $VAR in every field of these files except rule query models and
    // annotations: anything else with a `$` must be a documented environment variable.
    let mut expanded: Vec<String> = Vec::new();
    for source in &p.datasources {
        strings(source, &mut expanded);
    }
    for item in p.providers.iter().chain(&p.contact_points).chain(&p.policies) {
        strings(item, &mut expanded);
    }
    for group in &p.rule_groups {
        for rule in list(group, "rules") {
            strings(&rule["labels"], &mut expanded);
            strings(&rule["title"], &mut expanded);
        }
    }
    for text in &expanded {
        for name in references(text) {
            if !ENVIRONMENT.contains(&name.as_str()) {
                report(format!(
                    "\"{text}\": ${name} is expanded from Grafana's environment but is not a documented variable (escape a literal $ as $$)"
                ));
            }
        }
    }

    for provider in &p.providers {
        let path = provider["options"]["path"].as_str().unwrap_or_default();
        if !path.starts_with("/etc/grafana/provisioning/dashboards/") {
            report(format!(
                "dashboard provider {}: path {path} is not under the mounted provisioning directory",
                provider["name"]
            ));
        }
    }
    if p.dashboards.len() < 7 {
        report(format!("{} dashboards found, 7 expected", p.dashboards.len()));
    }
    let mut dashboard_uids = BTreeSet::new();
    for (file, dashboard) in &p.dashboards {
        if !dashboard_uids.insert(dashboard["uid"].as_str().unwrap_or_default().to_string()) {
            report(format!("{file}: dashboard uid {} is taken", dashboard["uid"]));
        }
        let variables: Vec<Value> = list(&dashboard["templating"], "list");
        let names: BTreeSet<String> = variables
            .iter()
            .filter_map(|v| v["name"].as_str().map(String::from))
            .collect();
        for variable in &variables {
            if variable["type"] == "query" && !uids.contains(variable["datasource"]["uid"].as_str().unwrap_or_default())
            {
                report(format!(
                    "{file}: variable {} uses an unknown data source {}",
                    variable["name"], variable["datasource"]
                ));
            }
        }
        let mut ids = BTreeSet::new();
        for panel in panels(dashboard) {
            let title = panel["title"].as_str().unwrap_or_default().to_string();
            if !ids.insert(panel["id"].as_i64().unwrap_or(-1)) {
                report(format!("{file}: panel \"{title}\" has a missing or repeated id"));
            }
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            let panel_refs: BTreeSet<String> = targets
                .iter()
                .filter_map(|t| t["refId"].as_str().map(String::from))
                .collect();
            let mut refs = BTreeSet::new();
            for target in &targets {
                if is_expression(target) {
                    for input in references(target["expression"].as_str().unwrap_or_default()) {
                        if !panel_refs.contains(&input) {
                            report(format!(
                                "{file}: panel \"{title}\" expression reads ${input}, which is no query of the panel"
                            ));
                        }
                    }
                    continue;
                }
                let source = if target["datasource"].is_object() {
                    &target["datasource"]
                } else {
                    &panel["datasource"]
                };
                if !uids.contains(source["uid"].as_str().unwrap_or_default()) {
                    report(format!(
                        "{file}: panel \"{title}\" uses an unknown data source {source}"
                    ));
                }
                if target["rawQuery"] != true || target["query"].as_str().is_none_or(str::is_empty) {
                    report(format!(
                        "{file}: panel \"{title}\" has a target without a raw InfluxQL query"
                    ));
                }
                if !refs.insert(target["refId"].as_str().unwrap_or_default().to_string()) {
                    report(format!("{file}: panel \"{title}\" repeats refId {}", target["refId"]));
                }
                let query = target["query"].as_str().unwrap_or_default();
                for name in references(query) {
                    if !names.contains(&name) && !BUILTINS.contains(&name.as_str()) {
                        report(format!(
                            "{file}: panel \"{title}\" uses ${name}, which is no variable of the dashboard"
                        ));
                    }
                }
            }
            if let Some(shift) = panel["timeShift"].as_str() {
                let known = references(shift).iter().all(|n| names.contains(n));
                if !known || (references(shift).is_empty() && duration(shift).is_none()) {
                    report(format!("{file}: panel \"{title}\" has time shift {shift:?}"));
                }
            }
        }
    }

    let receivers: BTreeSet<String> = p
        .contact_points
        .iter()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    for point in &p.contact_points {
        for receiver in list(point, "receivers") {
            let needs = match receiver["type"].as_str() {
                Some("slack") => "url",
                Some("email") => "addresses",
                other => {
                    report(format!("contact point {}: unexpected type {other:?}", point["name"]));
                    continue;
                }
            };
            if receiver["settings"][needs].as_str().is_none_or(str::is_empty) {
                report(format!("contact point {}: settings.{needs} is missing", point["name"]));
            }
        }
    }
    if p.policies.is_empty() {
        report("no notification policy tree".into());
    }
    let mut routes: Vec<Value> = p.policies.clone();
    while let Some(route) = routes.pop() {
        let receiver = route["receiver"].as_str().unwrap_or_default();
        if !receivers.contains(receiver) {
            report(format!(
                "a notification policy routes to {receiver:?}, which is no contact point"
            ));
        }
        for key in ["group_wait", "group_interval", "repeat_interval"] {
            if let Some(text) = route[key].as_str()
                && duration(text).is_none()
            {
                report(format!(
                    "notification policy {receiver}: {key} {text:?} is not a duration"
                ));
            }
        }
        for matcher in route["object_matchers"].as_array().into_iter().flatten() {
            let parts: Vec<&str> = matcher
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if parts.len() != 3 || !MATCH_OPERATORS.contains(&parts[1]) {
                report(format!(
                    "notification policy {receiver}: matcher {matcher} is not [label, op, value]"
                ));
            }
        }
        routes.extend(list(&route, "routes"));
    }

    let mut rule_uids = BTreeSet::new();
    for group in &p.rule_groups {
        if group["interval"].as_str().and_then(duration).is_none() {
            report(format!(
                "rule group {}: interval {} is not a duration",
                group["name"], group["interval"]
            ));
        }
        for rule in list(group, "rules") {
            let uid = rule["uid"].as_str().unwrap_or_default().to_string();
            if !rule_uids.insert(uid.clone()) {
                report(format!("rule {uid}: uid missing or repeated"));
            }
            if rule["for"].as_str().and_then(duration).is_none() {
                report(format!("rule {uid}: for {} is not a duration", rule["for"]));
            }
            if !["critical", "warning", "info"].contains(&rule["labels"]["severity"].as_str().unwrap_or_default()) {
                report(format!("rule {uid}: severity label must be critical, warning or info"));
            }
            for (key, allowed) in [
                ("noDataState", &["OK", "NoData", "Alerting"][..]),
                ("execErrState", &["OK", "Error", "Alerting"][..]),
            ] {
                if !allowed.contains(&rule[key].as_str().unwrap_or_default()) {
                    report(format!("rule {uid}: {key} {} is not one of {allowed:?}", rule[key]));
                }
            }
            let data = list(&rule, "data");
            let refs: BTreeSet<String> = data
                .iter()
                .filter_map(|d| d["refId"].as_str().map(String::from))
                .collect();
            if refs.len() != data.len() {
                report(format!("rule {uid}: refIds missing or repeated"));
            }
            if !refs.contains(rule["condition"].as_str().unwrap_or_default()) {
                report(format!(
                    "rule {uid}: condition {} is no refId of its data",
                    rule["condition"]
                ));
            }
            for item in &data {
                let model = &item["model"];
                match item["datasourceUid"].as_str().unwrap_or_default() {
                    "__expr__" => {
                        let inputs = match model["type"].as_str() {
                            Some("math") => references(model["expression"].as_str().unwrap_or_default()),
                            Some("reduce" | "threshold" | "resample" | "classic_conditions") => {
                                vec![model["expression"].as_str().unwrap_or_default().to_string()]
                            }
                            other => {
                                report(format!("rule {uid}: expression type {other:?}"));
                                Vec::new()
                            }
                        };
                        for input in inputs {
                            if !refs.contains(&input) {
                                report(format!(
                                    "rule {uid}: expression {} reads {input}, which is no refId",
                                    item["refId"]
                                ));
                            }
                        }
                    }
                    source if uids.contains(source) => {
                        if item["relativeTimeRange"]["from"].as_u64().is_none_or(|s| s == 0) {
                            report(format!("rule {uid}: query {} has no relativeTimeRange", item["refId"]));
                        }
                        if model["rawQuery"] != true {
                            report(format!("rule {uid}: query {} is not raw InfluxQL", item["refId"]));
                        }
                        for name in references(model["query"].as_str().unwrap_or_default()) {
                            if name != "timeFilter" && name != "__interval" {
                                report(format!(
                                    "rule {uid}: query {} uses ${name}, which alert rules do not have",
                                    item["refId"]
                                ));
                            }
                        }
                    }
                    other => report(format!(
                        "rule {uid}: query {} uses an unknown data source {other:?}",
                        item["refId"]
                    )),
                }
            }
        }
    }
    problems
}

#[test]
fn the_provisioning_files_are_consistent() {
    if missing("python3-yaml", has_yaml()) {
        return;
    }
    let problems = problems(&provisioning());
    assert!(problems.is_empty(), "{problems:#?}");
    let p = load(&provisioning());
    let titles: BTreeSet<&str> = p.dashboards.iter().filter_map(|(_, d)| d["title"].as_str()).collect();
    for wanted in [
        "Overview",
        "Task execution",
        "API & system performance",
        "User activity",
        "Business",
        "Anomalies & alerts",
        "Pipeline health",
    ] {
        assert!(
            titles.iter().any(|t| t.ends_with(wanted)),
            "no {wanted} dashboard in {titles:?}"
        );
    }
    let business = &p
        .dashboards
        .iter()
        .find(|(_, d)| d["uid"] == "tidemark-business")
        .unwrap()
        .1;
    assert!(
        business["time"]["to"].as_str().unwrap().starts_with("now+"),
        "forecasts need a future range"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Each mistake, planted in a copy of the files, is reported.
#[test]
fn planted_mistakes_are_caught() {
    if missing("python3-yaml", has_yaml()) {
        return;
    }
    let mistakes = [
        (
            "datasources/tidemark-influxdb.yaml",
            "uid: tidemark-influxdb",
            "uid: tidemark-influx",
            "unknown data source",
        ),
        (
            "datasources/tidemark-influxdb.yaml",
            "Token ${TIDEMARK_INFLUX_TOKEN}",
            "Token abc123",
            "written in the file",
        ),
        (
            "alerting/rules.yaml",
            "condition: C",
            "condition: Z",
            "condition \"Z\" is no refId",
        ),
        (
            "alerting/rules.yaml",
            "expression: A",
            "expression: Q",
            "reads Q, which is no refId",
        ),
        ("alerting/rules.yaml", "for: 5m", "for: 5 min", "is not a duration"),
        (
            "alerting/rules.yaml",
            "severity: warning",
            "severity: $SEVERITY",
            "not a documented variable",
        ),
        (
            "alerting/notification-policies.yaml",
            "- receiver: tidemark-slack",
            "- receiver: tidemark-pager",
            "\"tidemark-pager\", which is no contact point",
        ),
        (
            "alerting/notification-policies.yaml",
            "group_wait: 30s",
            "group_wait: 30 seconds",
            "group_wait \"30 seconds\" is not a duration",
        ),
        (
            "alerting/contact-points.yaml",
            "${TIDEMARK_SLACK_WEBHOOK_URL}",
            "${SLACK_URL}",
            "$SLACK_URL is expanded",
        ),
        (
            "dashboards/tidemark/tasks.json",
            "\\\"task_type\\\" =~ /^$task_type$/",
            "\\\"task_type\\\" =~ /^$tasktype$/",
            "uses $tasktype",
        ),
        (
            "dashboards/tidemark/tasks.json",
            "\"expression\": \"100 * $A / $B\"",
            "\"expression\": \"100 * $A / $D\"",
            "reads $D, which is no query",
        ),
        (
            "dashboards/tidemark/overview.json",
            "\"refId\": \"A\",\n          \"datasource\": {\n            \"type\": \"influxdb\",\n            \"uid\": \"tidemark-influxdb\"",
            "\"refId\": \"A\",\n          \"datasource\": {\n            \"type\": \"influxdb\",\n            \"uid\": \"elsewhere\"",
            "unknown data source",
        ),
    ];
    for (file, from, to, expected) in mistakes {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&provisioning(), dir.path());
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?} to plant a mistake in");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let found = problems(dir.path());
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{file}: {from:?} → {to:?} was not reported as {expected:?}; found {found:#?}"
        );
    }
}

/// The Grafana policy tree as an Alertmanager configuration: Grafana's notification policies
/// are Alertmanager routes (`object_matchers` are `matchers`), so Alertmanager's own router
/// decides where each label set goes.
fn alertmanager_config(p: &Provisioning) -> Value {
    fn route(policy: &Value) -> Value {
        let mut node = json!({ "receiver": policy["receiver"] });
        for key in [
            "group_by",
            "group_wait",
            "group_interval",
            "repeat_interval",
            "continue",
        ] {
            if !policy[key].is_null() {
                node[key] = policy[key].clone();
            }
        }
        let matchers: Vec<String> = policy["object_matchers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                format!(
                    "{}{}{:?}",
                    m[0].as_str().unwrap(),
                    m[1].as_str().unwrap(),
                    m[2].as_str().unwrap()
                )
            })
            .collect();
        if !matchers.is_empty() {
            node["matchers"] = json!(matchers);
        }
        let children: Vec<Value> = list(policy, "routes").iter().map(route).collect();
        if !children.is_empty() {
            node["routes"] = json!(children);
        }
        node
    }
    let receivers: Vec<Value> = p
        .contact_points
        .iter()
        .map(|point| {
            let kind = point["receivers"][0]["type"].as_str().unwrap();
            let name = point["name"].clone();
            match kind {
                "slack" => json!({"name": name, "slack_configs": [{"api_url": "http://127.0.0.1:9/slack", "channel": "#alerts"}]}),
                _ => json!({"name": name, "email_configs": [{"to": "ops@example.invalid", "from": "tidemark@example.invalid", "smarthost": "127.0.0.1:25"}]}),
            }
        })
        .collect();
    json!({ "route": route(&p.policies[0]), "receivers": receivers })
}

fn route_of(config: &Path, labels: &[&str]) -> String {
    let output = Command::new("amtool")
        .args(["config", "routes", "test", "--config.file"])
        .arg(config)
        .args(labels)
        .output()
        .expect("running amtool");
    assert!(
        output.status.success(),
        "amtool: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn critical_alerts_route_to_slack_and_the_rest_to_email() {
    let amtool = Command::new("amtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if missing("python3-yaml", has_yaml()) || missing("amtool (prometheus-alertmanager)", amtool) {
        return;
    }
    let p = load(&provisioning());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, serde_json::to_string_pretty(&alertmanager_config(&p)).unwrap()).unwrap();
    let check = Command::new("amtool")
        .args(["check-config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    assert_eq!(
        route_of(&config, &["severity=critical", "alertname=x"]),
        "tidemark-slack"
    );
    assert_eq!(
        route_of(&config, &["severity=warning", "alertname=x"]),
        "tidemark-email"
    );
    assert_eq!(route_of(&config, &["severity=info"]), "tidemark-email");
    assert_eq!(route_of(&config, &["alertname=no-severity"]), "tidemark-email");
    for group in &p.rule_groups {
        for rule in list(group, "rules") {
            let severity = rule["labels"]["severity"].as_str().unwrap();
            let labels: Vec<String> = rule["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect();
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            let want = if severity == "critical" {
                "tidemark-slack"
            } else {
                "tidemark-email"
            };
            assert_eq!(route_of(&config, &labels), want, "rule {}", rule["uid"]);
        }
    }
}

/// Grafana's `now-6h` / `now+2h` / `now`, in epoch ms.
fn relative(text: &str, now: i64) -> i64 {
    let rest = text
        .strip_prefix("now")
        .unwrap_or_else(|| panic!("time {text:?} is not relative to now"));
    if rest.is_empty() {
        return now;
    }
    let seconds = duration(&rest[1..]).unwrap_or_else(|| panic!("time {text:?}")) as i64;
    if rest.starts_with('-') {
        now - seconds * 1000
    } else {
        now + seconds * 1000
    }
}

/// Grafana's interval for a range: range / max data points rounded up to a round step, never
/// finer than the data source's `timeInterval` (1m, the base window).
fn interval_ms(range_ms: i64, max_data_points: i64) -> i64 {
    const STEPS: [i64; 17] = [
        60_000,
        120_000,
        300_000,
        600_000,
        900_000,
        1_200_000,
        1_800_000,
        3_600_000,
        7_200_000,
        10_800_000,
        21_600_000,
        43_200_000,
        86_400_000,
        604_800_000,
        2_592_000_000,
        31_536_000_000,
        i64::MAX,
    ];
    let raw = range_ms / max_data_points.max(1);
    *STEPS.iter().find(|step| **step >= raw).unwrap()
}

fn influx_duration(ms: i64) -> String {
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)] {
        if ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Grafana's regex escaping of a multi-value variable's values for InfluxQL `=~ /^…$/`.
fn regex_escape(value: &str) -> String {
    value
        .chars()
        .flat_map(|c| {
            let special = "\\^$.|?*+()[]{}/".contains(c);
            special.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

/// Replaces `$name` / `${name}` by `values[name]`; unknown names stay for the caller to catch.
fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let braced = after.starts_with('{');
        let name_start = usize::from(braced);
        let name_len = after[name_start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len() - name_start);
        let name = &after[name_start..name_start + name_len];
        let consumed = name_start + name_len + usize::from(braced && after[name_start + name_len..].starts_with('}'));
        match values.get(name) {
            Some(value) if !name.is_empty() => out.push_str(value),
            _ => out.push_str(&rest[at..at + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

fn time_filter(from: i64, to: i64) -> String {
    format!("time >= {from}ms and time <= {to}ms")
}

fn assert_data(db: &Influx, context: &str, query: &str) {
    let unresolved = references(query);
    assert!(
        unresolved.is_empty(),
        "{context}: unresolved ${unresolved:?} in {query}"
    );
    match db.try_query(query) {
        Err(e) => panic!("{context}: the server answered an error: {e}\n{query}"),
        Ok(series) => assert!(
            series.iter().any(|s| s.has_values()),
            "{context}: no data (an InfluxQL typo looks exactly like this)\n{query}"
        ),
    }
}

/// The panels and rules that read `anomaly_score` and `forecast` need an anomaly in the last
/// hour and a 5-minute revenue forecast. Whether the generated stream has an anomaly there
/// depends on the minute the test runs, and which forecasts the forecaster makes is its own
/// setting; when the run wrote neither, the test derives them from the run's windows (a rolling
/// z-score of the window maximum, a rolling mean with its spread) and writes them through the
/// InfluxDB sink itself — the same encoder and writer the pipeline uses.
fn add_scores_and_forecasts_the_pipeline_did_not_write(db: &Influx, rejected: &Path, now: i64) {
    let has = |query: &str| db.query(query).iter().any(|s| s.has_values());
    let mut batch = OutputBatch::default();
    if !has("SELECT count(\"score\") FROM \"anomaly_score\" WHERE \"score\" >= 0.95 AND time > now() - 1h") {
        for series in db.query("SELECT \"max\" FROM \"api.request.latency_ms\" WHERE \"window\" = '1m' GROUP BY *") {
            let key = format!(
                "api.request.latency_ms|method={}|region={}|service={}",
                series.tags["method"], series.tags["region"], series.tags["service"]
            );
            let values: Vec<(i64, f64)> = series
                .values
                .iter()
                .map(|r| (r[0].as_i64().unwrap(), r[1].as_f64().unwrap()))
                .collect();
            // Scored on `max`, an aggregate the detector does not score, so none of its points
            // is overwritten.
            for i in 10..values.len() {
                let recent: Vec<f64> = values[i - 10..i].iter().map(|v| v.1).collect();
                let mean = recent.iter().sum::<f64>() / 10.0;
                let sd = (recent.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 9.0)
                    .sqrt()
                    .max(1e-9);
                let z = (values[i].1 - mean) / sd;
                batch.scores.push(AnomalyScore {
                    series: Arc::from(key.as_str()),
                    window_ms: 60_000,
                    window_start: values[i].0,
                    field: "max",
                    value: values[i].1,
                    expected: mean,
                    score: 1.0 - (-z * z / 2.0).exp(),
                });
            }
        }
        assert!(
            batch.scores.iter().any(|s| s.score >= 0.95),
            "the data has unusual windows"
        );
    }
    if !has(
        "SELECT count(\"mean\") FROM \"forecast\" WHERE \"metric\" = 'sales.revenue' AND \"field\" = 'sum' AND \"window\" = '5m'",
    ) {
        for series in db.query("SELECT \"sum\" FROM \"sales.revenue\" WHERE \"window\" = '5m' GROUP BY \"currency\"") {
            let key = format!("sales.revenue|currency={}", series.tags["currency"]);
            let values: Vec<(i64, f64)> = series
                .values
                .iter()
                .map(|r| (r[0].as_i64().unwrap(), r[1].as_f64().unwrap()))
                .collect();
            let last = values.last().unwrap().0;
            for i in 6..values.len() + 24 {
                let start = if i < values.len() {
                    values[i].0
                } else {
                    last + (i - values.len() + 1) as i64 * 300_000
                };
                let recent: Vec<f64> = values[(i.min(values.len())) - 6..i.min(values.len())]
                    .iter()
                    .map(|v| v.1)
                    .collect();
                let mean = recent.iter().sum::<f64>() / 6.0;
                let sd = (recent.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 5.0).sqrt();
                let horizon = i.saturating_sub(values.len() - 1).max(1) as u32;
                let spread = sd * f64::from(horizon).sqrt();
                batch.forecasts.push(ForecastPoint {
                    series: Arc::from(key.as_str()),
                    field: "sum",
                    window_ms: 300_000,
                    window_start: start,
                    horizon,
                    mean,
                    lower80: mean - 1.2816 * spread,
                    upper80: mean + 1.2816 * spread,
                    lower95: mean - 1.96 * spread,
                    upper95: mean + 1.96 * spread,
                });
            }
        }
        assert!(
            batch.forecasts.iter().any(|f| f.window_start > now),
            "forecasts reach into the future"
        );
    }
    if batch.is_empty() {
        return;
    }
    let config = InfluxDbConfig {
        url: db.base.clone(),
        database: db.db.clone(),
        self_metrics: false,
        rejected_path: rejected.to_path_buf(),
        ..InfluxDbConfig::default()
    };
    let mut sink = InfluxDbSink::start(&config).unwrap();
    sink.write(&batch).unwrap();
    sink.finish().unwrap();
}

/// Resolves a dashboard's variables as Grafana does: query variables by their own query
/// (all values, as a regex alternation, for multi-value ones), custom ones to their current
/// value.
fn resolve_variables(db: &Influx, file: &str, dashboard: &Value) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for variable in list(&dashboard["templating"], "list") {
        let name = variable["name"].as_str().unwrap().to_string();
        let value = match variable["type"].as_str() {
            Some("query") => {
                let query = substitute(variable["query"].as_str().unwrap(), &values);
                let options: Vec<String> = db
                    .try_query(&query)
                    .unwrap_or_else(|e| panic!("{file}: variable {name}: {e}"))
                    .iter()
                    .flat_map(|s| {
                        s.values
                            .iter()
                            .map(|row| row[1].as_str().unwrap_or_default().to_string())
                    })
                    .collect();
                assert!(
                    !options.is_empty(),
                    "{file}: variable {name} resolves to no value: {query}"
                );
                if variable["multi"] == true || variable["includeAll"] == true {
                    format!(
                        "({})",
                        options.iter().map(|o| regex_escape(o)).collect::<Vec<_>>().join("|")
                    )
                } else {
                    options[0].clone()
                }
            }
            Some("custom") => variable["current"]["value"].as_str().unwrap().to_string(),
            other => panic!("{file}: variable {name} of type {other:?}"),
        };
        values.insert(name, value);
    }
    values
}

/// The `ts` of an event line, when it has a readable one.
fn event_time(line: &str) -> Option<i64> {
    let rest = &line[line.find("\"ts\":")? + 5..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[test]
fn every_panel_and_alert_query_returns_data_after_a_pipeline_run() {
    let Some(server) = influx_support::server() else {
        return;
    };
    if missing("python3-yaml", has_yaml()) {
        return;
    }
    let db = Influx::fresh(&server, "grafana");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.ndjson");
    // Event time from 130 minutes ago to 3 minutes ago: the dashboards' ranges (last hour, the
    // hour before, last 6 hours) and the alert rules' (last 10 or 30 minutes) all hold data,
    // and nothing but forecasts lies in the future.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now_ms - now_ms % 60_000 - 130 * 60_000;
    // The rate is an average over the generator's daily shape, so how many events land before
    // the end depends on the time of day: raise the rate until the span is dense enough.
    let cutoff = now_ms - 3 * 60_000;
    let mut rate = 14.0;
    let kept = loop {
        succeed(
            tidemark()
                .args(["generate", "--events", &((rate * 130.0 * 60.0) as u64).to_string()])
                .args(["--rate", &rate.to_string(), "--malformed", "0.005"])
                .args(["--start-ms", &start.to_string(), "--out"])
                .arg(&input),
        );
        let text = std::fs::read_to_string(&input).unwrap();
        let kept: Vec<String> = text
            .lines()
            .filter(|line| event_time(line).is_none_or(|ts| ts <= cutoff))
            .map(String::from)
            .collect();
        if kept.len() > 60_000 || rate > 100.0 {
            break kept;
        }
        rate *= 70_000.0 / kept.len().max(1) as f64;
    };
    assert!(kept.len() > 60_000, "{} events before the cut", kept.len());
    write_lines(&input, &kept);
    let out = dir.path().join("out");
    let config = dir.path().join("tidemark.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntype = \"file\"\npath = {input:?}\n\n[sinks.influxdb]\nurl = \"{}\"\ndatabase = \"{}\"\n\
             flush_interval = \"100ms\"\nself_metrics_interval = \"1s\"\nrejected_path = {:?}\n",
            db.base,
            db.db,
            out.join("rejected.ndjson")
        ),
    )
    .unwrap();
    succeed(tidemark().args(["run", "--config"]).arg(&config));
    add_scores_and_forecasts_the_pipeline_did_not_write(&db, &out.join("rejected.ndjson"), now_ms);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let p = load(&provisioning());
    let mut queries = 0;
    for (file, dashboard) in &p.dashboards {
        let variables = resolve_variables(&db, file, dashboard);
        for panel in panels(dashboard) {
            let title = panel["title"].as_str().unwrap_or_default();
            let mut from = relative(dashboard["time"]["from"].as_str().unwrap(), now);
            let mut to = relative(dashboard["time"]["to"].as_str().unwrap(), now);
            if let Some(last) = panel["timeFrom"].as_str() {
                from = to - duration(last).unwrap() as i64 * 1000;
            }
            if let Some(shift) = panel["timeShift"].as_str() {
                let shift = duration(&substitute(shift, &variables)).unwrap() as i64 * 1000;
                (from, to) = (from - shift, to - shift);
            }
            let interval = interval_ms(to - from, panel["maxDataPoints"].as_i64().unwrap_or(1000));
            let mut values = variables.clone();
            values.insert("timeFilter".into(), time_filter(from, to));
            values.insert("__interval".into(), influx_duration(interval));
            values.insert("__interval_ms".into(), interval.to_string());
            for target in panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| !is_expression(t))
            {
                let query = substitute(target["query"].as_str().unwrap(), &values);
                assert_data(&db, &format!("{file}: panel \"{title}\" {}", target["refId"]), &query);
                queries += 1;
            }
        }
    }
    for group in &p.rule_groups {
        for rule in list(group, "rules") {
            for item in list(&rule, "data")
                .iter()
                .filter(|d| d["datasourceUid"] == DATASOURCE_UID)
            {
                let range = &item["relativeTimeRange"];
                let from = now - range["from"].as_i64().unwrap() * 1000;
                let to = now - range["to"].as_i64().unwrap() * 1000;
                let values = BTreeMap::from([
                    ("timeFilter".to_string(), time_filter(from, to)),
                    (
                        "__interval".to_string(),
                        influx_duration(item["model"]["intervalMs"].as_i64().unwrap_or(60_000)),
                    ),
                ]);
                let query = substitute(item["model"]["query"].as_str().unwrap(), &values);
                assert_data(
                    &db,
                    &format!("alert rule {} query {}", rule["uid"], item["refId"]),
                    &query,
                );
                queries += 1;
            }
        }
    }
    assert!(queries > 70, "only {queries} queries ran");
    eprintln!("{queries} panel and alert-rule queries returned data");
}
