//! The deploy files, read as a person would check them before shipping (no Docker engine or
//! cluster runs here): every environment variable they set for the gateway is one it reads, the
//! Kubernetes manifests probe the health routes and name only the Secret keys the example
//! Secret has, the files they mount load as configuration, and every metric the dashboard and
//! alert rules query is one the gateway exports.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use npd_monday_gateway::config::Settings;
use npd_monday_gateway::domain::entity::Side;
use npd_monday_gateway::domain::state::{InboxOutcome, JobState};
use npd_monday_gateway::metrics::{LedgerGauge, Metrics};
use yaml_rust2::{Yaml, YamlLoader};

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn yaml(path: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `KEY=value` words: the keys.
fn assignments<'a>(words: impl Iterator<Item = &'a str>) -> Vec<String> {
    words
        .filter_map(|w| w.split_once('=').map(|(k, _)| k.trim().to_owned()))
        .filter(|k| !k.is_empty())
        .collect()
}

fn dockerfile_env() -> Vec<String> {
    let text = read("deploy/Dockerfile").replace("\\\n", " ");
    let lines = text.lines().filter_map(|l| l.trim().strip_prefix("ENV "));
    assignments(lines.flat_map(str::split_whitespace))
}

fn systemd_env() -> Vec<String> {
    let text = read("deploy/npd-monday-gateway.service");
    assignments(
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("Environment=")),
    )
}

fn env_example() -> Vec<String> {
    let text = read("deploy/env.example");
    let lines = text
        .lines()
        .map(|l| l.trim().trim_start_matches('#').trim());
    let keys = lines.filter(|l| {
        l.split('=')
            .next()
            .is_some_and(|k| is_name(k) && l.contains('='))
    });
    assignments(keys)
}

fn is_name(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The `environment` keys of every compose service that runs the gateway's image.
fn compose_env() -> Vec<String> {
    let doc = &yaml("deploy/compose.yaml")[0];
    let services = doc["services"].as_hash().expect("services");
    let mut keys = Vec::new();
    for service in services.values() {
        if service["image"].as_str() != Some("npd-monday-gateway:local") {
            continue;
        }
        match &service["environment"] {
            Yaml::Hash(map) => {
                keys.extend(map.keys().filter_map(|k| k.as_str()).map(str::to_owned))
            }
            Yaml::Array(list) => keys.extend(assignments(list.iter().filter_map(Yaml::as_str))),
            other => panic!("a gateway service without environment: {other:?}"),
        }
    }
    keys
}

/// Every document of the Kubernetes manifests.
fn k8s() -> Vec<Yaml> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/k8s")
        .flatten()
        .collect();
    files.sort_by_key(|f| f.path());
    files
        .iter()
        .filter(|f| f.path().extension().is_some_and(|e| e == "yaml"))
        .flat_map(|f| yaml(&format!("deploy/k8s/{}", f.file_name().to_string_lossy())))
        .collect()
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .collect()
}

fn deployment_containers(docs: &[Yaml]) -> Vec<Yaml> {
    let deployments = of_kind(docs, "Deployment");
    assert_eq!(deployments.len(), 1, "one Deployment");
    let containers = deployments[0]["spec"]["template"]["spec"]["containers"].as_vec();
    containers.cloned().expect("containers")
}

fn k8s_env() -> Vec<String> {
    let containers = deployment_containers(&k8s());
    let env = containers
        .iter()
        .flat_map(|c| c["env"].as_vec().cloned().unwrap_or_default());
    env.filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn every_environment_variable_the_deploy_files_set_is_a_configuration_key() {
    let known: BTreeSet<String> = Settings::environment_variables().into_iter().collect();
    assert!(known.contains("GATEWAY_DATABASE_URL") && known.contains("GATEWAY_CONFIG"));
    type Source = (&'static str, fn() -> Vec<String>, usize);
    let sources: [Source; 5] = [
        ("deploy/Dockerfile", dockerfile_env, 2),
        ("deploy/compose.yaml", compose_env, 15),
        ("deploy/k8s", k8s_env, 15),
        ("deploy/npd-monday-gateway.service", systemd_env, 2),
        ("deploy/env.example", env_example, 10),
    ];
    for (file, keys, at_least) in sources {
        let keys = keys();
        assert!(keys.len() >= at_least, "{file}: only {keys:?} found");
        let unknown: Vec<&String> = keys.iter().filter(|k| !known.contains(*k)).collect();
        assert!(
            unknown.is_empty(),
            "{file} sets {unknown:?}, which the gateway does not read"
        );
    }
}

#[test]
fn the_deployment_probes_the_health_routes_and_names_only_keys_of_the_secret() {
    let docs = k8s();
    let container = &deployment_containers(&docs)[0];
    assert_eq!(
        container["readinessProbe"]["httpGet"]["path"].as_str(),
        Some("/readyz")
    );
    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
    let requests = &container["resources"]["requests"];
    assert!(requests["cpu"].as_str().is_some() && requests["memory"].as_str().is_some());
    let secret = yaml("deploy/k8s/secret.example.yaml").remove(0);
    let name = secret["metadata"]["name"].as_str().expect("secret name");
    let keys = secret["stringData"].as_hash().expect("stringData");
    let env = container["env"].as_vec().expect("env");
    let refs: Vec<&Yaml> = env
        .iter()
        .map(|e| &e["valueFrom"]["secretKeyRef"])
        .filter(|r| !r.is_badvalue())
        .collect();
    assert!(refs.len() >= 5, "secrets come from the Secret: {refs:?}");
    for r in refs {
        assert_eq!(r["name"].as_str(), Some(name));
        assert!(
            keys.contains_key(&r["key"]),
            "{:?} is not a key of the example Secret",
            r["key"]
        );
    }
    let pod_labels = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"];
    for kind in ["Service", "PodDisruptionBudget"] {
        let found = of_kind(&docs, kind);
        assert_eq!(found.len(), 1, "one {kind}");
        let selector = &found[0]["spec"]["selector"];
        let selector = if kind == "Service" {
            selector
        } else {
            &selector["matchLabels"]
        };
        for (k, v) in selector.as_hash().expect("selector") {
            assert_eq!(
                &pod_labels[k.as_str().expect("label")],
                v,
                "{kind} selects the pods"
            );
        }
    }
}

#[test]
fn the_configuration_files_the_deploy_files_mount_load() {
    let docs = k8s();
    let config_map = of_kind(&docs, "ConfigMap")[0];
    let toml = config_map["data"]["gateway.toml"]
        .as_str()
        .expect("gateway.toml");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).expect("write");
    Settings::load_with(Some(&path), |_| None).expect("the ConfigMap's TOML loads");
    let compose = read("deploy/compose.yaml");
    assert!(
        compose.contains("../fixtures/gateway.example.toml:/etc/npd-monday-gateway/gateway.toml")
    );
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/gateway.example.toml");
    Settings::load_with(Some(&example), |_| None).expect("the example loads");
    assert!(read("deploy/Caddyfile").contains("health_uri /readyz"));
}

/// The name of every metric family the gateway exports.
fn exported_metrics() -> BTreeSet<String> {
    let m = Metrics::new();
    m.http_request("/healthz", 200, Duration::ZERO);
    m.sync_latency(Side::Monday, Duration::ZERO);
    m.monday_request("me", "ok");
    m.set_budget_remaining(0.0, 0.0, 0.0);
    m.event_processed(Side::Npd, InboxOutcome::Echo);
    m.drift_repaired(Side::Npd);
    m.conflicts_opened(1);
    m.conflict_resolved();
    m.dead_lettered(Side::Npd);
    m.set_ledger(LedgerGauge::InboxUnprocessed, 0.0);
    m.set_ledger(LedgerGauge::OutboxJobs(JobState::Dead), 0.0);
    let text = m.render();
    let families = text.lines().filter_map(|l| l.strip_prefix("# TYPE "));
    families
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Every `gateway_…` name in `text`, histogram suffixes removed.
fn referenced_metrics(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("gateway_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s));
        names.insert(base.unwrap_or(name).to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_dashboard_and_the_alerts_query_only_metrics_the_gateway_exports() {
    let exported = exported_metrics();
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana-dashboard.json")).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    let rules = yaml("deploy/alerts.yaml").remove(0);
    let rules = rules["groups"][0]["rules"]
        .as_vec()
        .cloned()
        .expect("rules");
    assert!(rules.len() >= 5);
    let alert_exprs = rules
        .iter()
        .map(|r| r["expr"].as_str().expect("expr").to_owned());
    let all: Vec<String> = exprs.into_iter().chain(alert_exprs).collect();
    let referenced = referenced_metrics(&all.join("\n"));
    assert!(referenced.len() >= 8, "{referenced:?}");
    let unknown: Vec<&String> = referenced.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "not exported: {unknown:?} (exported: {exported:?})"
    );
}
