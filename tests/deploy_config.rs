//! The deployment files in `deploy/` agree with the code that will read them.
//!
//! They cannot be run here (no container engine, no cluster), so what can be checked is
//! checked against the real thing: each tidemark configuration they ship — the compose file's
//! `deploy/compose/tidemark.toml` and the one inside the Kubernetes ConfigMap — is loaded by
//! `tidemark check-config`, the real loader and validation of `tidemark run`; and the wiring
//! around it (secrets from the environment, the Grafana provisioning mount and the variables it
//! expects, the StatefulSet ↔ headless Service ↔ hostfile correspondence) is read from the
//! YAML and compared. `scripts/check-deploy` adds the schema checks (Kubernetes, compose spec)
//! and the linters.

use serde_yaml_ng::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// All documents of a multi-document YAML file.
fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{path}: {e}")))
        .collect()
}

/// The document of `kind` named `name` among `docs`.
fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn str_of<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

/// `tidemark check-config FILE` with `env` (and nothing inherited that names a secret).
fn check_config(file: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tidemark"));
    command
        .arg("check-config")
        .arg(file)
        .env("TIDEMARK_LOG", "warn")
        .env_remove("INFLUX_TOKEN")
        .env_remove("RUST_BACKTRACE");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("running tidemark check-config")
}

fn assert_valid(output: &Output, file: &Path) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{} is not a valid tidemark config:\n{stdout}\n{}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": valid"), "{stdout}");
    stdout
}

/// The tidemark configuration held by the Kubernetes ConfigMap, written to a file.
fn k8s_config(dir: &Path) -> PathBuf {
    let docs = documents("deploy/k8s/configmap.yaml");
    let map = find(&docs, "ConfigMap", "tidemark-config");
    let path = dir.join("tidemark.toml");
    std::fs::write(&path, str_of(&map["data"]["tidemark.toml"], "data.tidemark.toml")).unwrap();
    path
}

#[test]
fn the_compose_config_is_valid_and_runs_kafka_into_influxdb() {
    let file = repo().join("deploy/compose/tidemark.toml");
    let stdout = assert_valid(&check_config(&file, &[("INFLUX_TOKEN", "not-a-real-token")]), &file);
    for expected in [
        "source: kafka:events (brokers kafka:9092",
        "sink: influxdb http://influxdb:8086 v1 /write db=tidemark (token from $INFLUX_TOKEN)",
        "server: http://0.0.0.0:8080 (1 API key(s))",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
}

#[test]
fn the_kubernetes_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let file = k8s_config(dir.path());
    let stdout = assert_valid(&check_config(&file, &[("INFLUX_TOKEN", "not-a-real-token")]), &file);
    assert!(stdout.contains("source: kafka:events"), "{stdout}");
    assert!(stdout.contains("sink: influxdb"), "{stdout}");
}

/// The check is the real one: the InfluxDB token must come from the environment, and a typo
/// in a key is refused with the key's name.
#[test]
fn check_config_refuses_a_missing_secret_and_a_typo() {
    let file = repo().join("deploy/compose/tidemark.toml");
    let output = check_config(&file, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("INFLUX_TOKEN is not set"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&typo, text.replace("idle_timeout =", "idle_timout =")).unwrap();
    let output = check_config(&typo, &[("INFLUX_TOKEN", "x")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("idle_timout"), "{stderr}");
}

/// Every `${VAR}` the Grafana provisioning files expand in `text` (comments left out).
fn variables(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| line.split("${").skip(1))
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn compose_wires_secrets_provisioning_and_config() {
    let compose = yaml("deploy/compose/compose.yaml");
    let services = &compose["services"];
    for name in [
        "kafka",
        "schema-registry",
        "influxdb",
        "influxdb-setup",
        "grafana",
        "tidemark",
    ] {
        assert!(services[name].is_mapping(), "service {name} is missing");
    }

    // tidemark: built from the container file, the checked config mounted, the token from the
    // environment under the name the config's token_env gives.
    let tidemark = &services["tidemark"];
    let containerfile = str_of(&tidemark["build"]["dockerfile"], "build.dockerfile");
    assert!(repo().join(containerfile).is_file(), "{containerfile}");
    let mounts: Vec<&str> = tidemark["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| str_of(v, "volume"))
        .collect();
    assert!(
        mounts.contains(&"./tidemark.toml:/etc/tidemark/tidemark.toml:ro"),
        "{mounts:?}"
    );
    let command: Vec<&str> = tidemark["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| str_of(v, "command"))
        .collect();
    assert_eq!(command, ["run", "--config", "/etc/tidemark/tidemark.toml"]);
    let token = str_of(&tidemark["environment"]["INFLUX_TOKEN"], "INFLUX_TOKEN");
    assert!(
        token.starts_with("${INFLUX_TOKEN:?"),
        "secrets come from the environment: {token}"
    );

    // Grafana: the provisioning tree mounted where its dashboards provider expects it, and
    // every variable the provisioning files expand is set.
    let grafana = &services["grafana"];
    let mount = "../../dashboards/grafana/provisioning:/etc/grafana/provisioning:ro";
    assert!(
        grafana["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v.as_str() == Some(mount)),
        "grafana must mount {mount}"
    );
    let provisioning = repo().join("dashboards/grafana/provisioning");
    let mut expected = BTreeSet::new();
    for sub in ["datasources", "alerting"] {
        for entry in std::fs::read_dir(provisioning.join(sub)).unwrap() {
            expected.extend(variables(&std::fs::read_to_string(entry.unwrap().path()).unwrap()));
        }
    }
    assert!(expected.contains("TIDEMARK_INFLUX_TOKEN"), "{expected:?}");
    for var in &expected {
        assert!(
            grafana["environment"][var.as_str()].is_string(),
            "grafana's environment lacks {var}, which the provisioning expands"
        );
    }

    // No secret value is written in the compose file: each is an interpolation.
    for (service, var) in [
        ("influxdb", "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"),
        ("influxdb", "DOCKER_INFLUXDB_INIT_PASSWORD"),
        ("influxdb-setup", "INFLUX_TOKEN"),
        ("grafana", "GF_SECURITY_ADMIN_PASSWORD"),
        ("grafana", "TIDEMARK_INFLUX_TOKEN"),
    ] {
        let value = str_of(&services[service]["environment"][var], var);
        assert!(
            value.starts_with("${") && value.contains(":?"),
            "{service}.{var} = {value}"
        );
    }
}

#[test]
fn the_statefulset_the_headless_service_and_the_hostfile_agree() {
    let sts = documents("deploy/k8s/statefulset.yaml");
    let sts = find(&sts, "StatefulSet", "tidemark");
    let services = documents("deploy/k8s/services.yaml");
    let config = documents("deploy/k8s/configmap.yaml");
    let config = find(&config, "ConfigMap", "tidemark-config");

    let peers = str_of(&sts["spec"]["serviceName"], "serviceName");
    let headless = find(&services, "Service", peers);
    assert_eq!(
        headless["spec"]["clusterIP"].as_str(),
        Some("None"),
        "{peers} must be headless"
    );
    assert_eq!(
        headless["spec"]["publishNotReadyAddresses"].as_bool(),
        Some(true),
        "peers must resolve before they are ready"
    );
    assert_eq!(sts["spec"]["podManagementPolicy"].as_str(), Some("Parallel"));

    let replicas = sts["spec"]["replicas"].as_u64().expect("replicas") as usize;
    let name = str_of(&sts["metadata"]["name"], "name");
    let hosts: Vec<&str> = str_of(&config["data"]["hostfile"], "hostfile")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let expected: Vec<String> = (0..replicas).map(|i| format!("{name}-{i}.{peers}:2101")).collect();
    assert_eq!(hosts, expected, "one hostfile line per replica, in ordinal order");

    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| str_of(v, "arg"))
        .collect();
    let after = |flag: &str| args.iter().position(|a| *a == flag).map(|i| args[i + 1]);
    assert_eq!(after("--processes"), Some(replicas.to_string().as_str()), "{args:?}");
    assert_eq!(after("--hostfile"), Some("/etc/tidemark/hostfile"), "{args:?}");
    assert_eq!(after("--process"), Some("$(TIDEMARK_PROCESS)"), "{args:?}");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"));
    assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"));
    let timely = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some("timely"))
        .expect("a timely port");
    assert_eq!(timely["containerPort"].as_u64(), Some(2101));
    let token = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str() == Some("INFLUX_TOKEN"))
        .expect("INFLUX_TOKEN in the environment");
    assert!(
        token["valueFrom"]["secretKeyRef"].is_mapping(),
        "the token comes from a Secret"
    );
}

/// The Job's copy of the InfluxDB setup script is the script the compose file runs.
#[test]
fn the_influxdb_setup_job_runs_the_shared_script() {
    let docs = documents("deploy/k8s/influxdb-setup.yaml");
    let map = find(&docs, "ConfigMap", "tidemark-influxdb-setup");
    let copy = str_of(&map["data"]["setup.sh"], "setup.sh");
    let script = std::fs::read_to_string(repo().join("deploy/influxdb/setup.sh")).unwrap();
    assert_eq!(
        copy, script,
        "deploy/k8s/influxdb-setup.yaml must hold deploy/influxdb/setup.sh unchanged"
    );
    find(&docs, "Job", "tidemark-influxdb-setup");
}
