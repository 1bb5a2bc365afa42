//! `deploy/kubernetes.yaml` parses, holds what `deploy/README.md` promises,
//! and its ConfigMap is a config the bridge loads, with the Secret's values
//! read through the `*_file` keys.

use kafka_rocketmq_bridge::config;
use serde::Deserialize;
use serde_yaml::Value;

const MANIFEST: &str = include_str!("../deploy/kubernetes.yaml");
const SECRET_MOUNT: &str = "/run/secrets/kafka-rocketmq-bridge";

fn documents() -> Vec<Value> {
    serde_yaml::Deserializer::from_str(MANIFEST)
        .map(|document| Value::deserialize(document).expect("every document parses"))
        .filter(|document| !document.is_null())
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in deploy/kubernetes.yaml"))
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not text: {value:?}"))
}

#[test]
fn the_manifest_has_the_promised_objects_and_settings() {
    let documents = documents();
    let kinds: Vec<&str> = documents.iter().map(|d| text(&d["kind"], "kind")).collect();
    assert_eq!(
        kinds,
        ["Secret", "ConfigMap", "Deployment", "PodDisruptionBudget"]
    );

    let deployment = of_kind(&documents, "Deployment");
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(3));
    let pod = &deployment["spec"]["template"];
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("9464"));
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));

    let spec = &pod["spec"];
    assert_eq!(
        spec["securityContext"]["runAsNonRoot"].as_bool(),
        Some(true)
    );
    assert_eq!(spec["securityContext"]["runAsUser"].as_u64(), Some(10001));
    assert!(spec["terminationGracePeriodSeconds"].as_u64() > Some(30));

    let container = &spec["containers"][0];
    let port = &container["ports"][0];
    assert_eq!(port["containerPort"].as_u64(), Some(9464));
    let port_name = text(&port["name"], "port name");
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some(port_name), "{probe}");
    }
    let security = &container["securityContext"];
    assert_eq!(security["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(security["readOnlyRootFilesystem"].as_bool(), Some(true));

    // The limit must hold the default 64 MiB in-flight cap several times over.
    let mebibytes = |value: &Value| -> u64 {
        let quantity = text(value, "memory quantity");
        quantity
            .strip_suffix("Mi")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("write memory in Mi: {quantity}"))
    };
    let resources = &container["resources"];
    let request = mebibytes(&resources["requests"]["memory"]);
    let limit = mebibytes(&resources["limits"]["memory"]);
    assert!(
        request >= 3 * 64 && limit >= request,
        "{request}Mi / {limit}Mi"
    );

    let mounts = container["volumeMounts"]
        .as_sequence()
        .expect("volume mounts");
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"].as_str() == Some(SECRET_MOUNT)
                && m["readOnly"].as_bool() == Some(true)),
        "the Secret must be mounted read-only at {SECRET_MOUNT}"
    );
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| text(a, "arg"))
        .collect();
    assert_eq!(
        &args[..3],
        ["run", "--config", "/etc/kafka-rocketmq-bridge/bridge.yaml"]
    );
}

#[test]
fn the_config_map_loads_with_the_secret_read_from_files() {
    let documents = documents();
    let secrets = of_kind(&documents, "Secret")["stringData"]
        .as_mapping()
        .expect("Secret stringData");
    // Stand in for the Secret volume: one file per key, as Kubernetes writes them.
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, value) in secrets {
        std::fs::write(
            dir.path().join(text(name, "secret name")),
            text(value, "secret value"),
        )
        .expect("write secret file");
    }
    let bridge_yaml = text(
        &of_kind(&documents, "ConfigMap")["data"]["bridge.yaml"],
        "bridge.yaml",
    );
    assert!(bridge_yaml.contains(SECRET_MOUNT));
    let local = bridge_yaml.replace(SECRET_MOUNT, &dir.path().display().to_string());
    let loaded =
        config::load_str(&local, "bridge.yaml", |_| None).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(loaded.kafka.group_id, "kafka-rocketmq-bridge");
    assert_eq!(loaded.metrics.listen.0.port(), 9464);
    assert_eq!(loaded.bridge.max_in_flight_bytes.0, 64 << 20);
    let value_of = |name: &str| text(&secrets[name], name).to_string();
    assert_eq!(
        loaded.kafka.properties["sasl.password"].as_librdkafka_value(),
        value_of("kafka-password")
    );
    assert_eq!(
        loaded
            .rocketmq
            .access_key
            .as_ref()
            .map(|s| s.expose().to_string()),
        Some(value_of("rocketmq-access-key"))
    );
    assert_eq!(
        loaded
            .rocketmq
            .secret_key
            .as_ref()
            .map(|s| s.expose().to_string()),
        Some(value_of("rocketmq-secret-key"))
    );
    // No credential is written into the ConfigMap itself.
    for name in [
        "kafka-password",
        "rocketmq-access-key",
        "rocketmq-secret-key",
    ] {
        assert!(
            !bridge_yaml.contains(&value_of(name)),
            "{name} is in the ConfigMap"
        );
    }
}
