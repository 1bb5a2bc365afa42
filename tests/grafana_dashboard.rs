//! `deploy/grafana/kafka-rocketmq-bridge.json` against Grafana's published
//! dashboard schema (deploy/grafana/check), and a broken copy refused.
//! tests/prometheus.rs runs every panel's query against a real Prometheus.

use std::path::Path;
use std::process::Command;

use crate::support::printed;

fn check(dashboard: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/check/check.sh");
    let output = Command::new(script)
        .arg(dashboard)
        .output()
        .expect("run deploy/grafana/check/check.sh (needs node and npm)");
    (output.status.success(), printed(&output))
}

#[test]
fn the_dashboard_matches_grafanas_schema_and_a_broken_one_does_not() {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/kafka-rocketmq-bridge.json");
    let (ok, text) = check(&shipped);
    assert!(ok, "{text}");
    assert!(text.contains("valid ("), "{text}");

    let original = std::fs::read_to_string(&shipped).expect("the dashboard");
    let breakages = [
        // A field the schema does not know.
        (
            "\"graphTooltip\": 1",
            "\"graphTooltipp\": 1",
            "graphTooltipp",
        ),
        // A value outside an enum.
        (
            "\"displayMode\": \"table\"",
            "\"displayMode\": \"tabel\"",
            "tabel",
        ),
        // A panel overlapping another.
        ("\"x\": 12,", "\"x\": 6,", "overlaps"),
        // A query on an undefined variable.
        ("$mapping", "$mappings", "$mappings, which is not defined"),
    ];
    for (from, to, reported) in breakages {
        assert!(original.contains(from), "{from}");
        let broken = tempfile::Builder::new()
            .suffix(".json")
            .tempfile()
            .expect("temp file");
        std::fs::write(broken.path(), original.replacen(from, to, 1)).expect("write");
        let (ok, text) = check(broken.path());
        assert!(
            !ok && text.contains(reported),
            "{from} -> {to} was not caught:\n{text}"
        );
    }
}
