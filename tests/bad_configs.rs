//! The bad-config corpus: every `tests/bad-configs/NN-name.yaml` must fail to
//! load with exactly the text of its `NN-name.expected` (the path of the file
//! written as `{file}`), and never panic or echo a secret.
//!
//! `BRIDGE_BLESS=1 cargo test --test bad_configs` rewrites the `.expected`
//! files from what the loader prints now; review the diff before committing.

use std::path::{Path, PathBuf};

use kafka_rocketmq_bridge::config;

/// The corpus must keep at least this many cases.
const MIN_CASES: usize = 30;

/// Used by the missing-variable case; the test refuses to run if one is set.
const UNSET_VARIABLES: &[&str] = &["KRB_CORPUS_NEVER_SET_7F3A", "KRB_CORPUS_NEVER_SET_9B1C"];

/// Secret values written in the corpus; no error may show them.
const CORPUS_SECRETS: &[&str] = &[
    "corpus-secret",
    "corpus-password",
    "corpus-access-key",
    "31415926535",
    "0x5EC12E7",
    "5EC12E7",
    "2.250",
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-configs")
}

/// What the loader prints for `path`, with the path written as `{file}`.
fn error_text(path: &Path) -> Result<String, String> {
    let shown = path.display().to_string();
    let outcome = std::panic::catch_unwind(|| config::load_file(path));
    match outcome {
        Err(_) => Err("the loader panicked".to_string()),
        Ok(Ok(_)) => Err("the config was accepted".to_string()),
        Ok(Err(error)) => Ok(format!("{}\n", error.to_string().replace(&shown, "{file}"))),
    }
}

#[test]
fn every_bad_config_fails_with_its_expected_text() {
    for name in UNSET_VARIABLES {
        assert!(
            std::env::var_os(name).is_none(),
            "{name} is set; the missing-variable case needs it unset"
        );
    }
    let bless = std::env::var_os("BRIDGE_BLESS").is_some();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/bad-configs exists")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();

    let cases: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(
        cases.len() >= MIN_CASES,
        "only {} cases in tests/bad-configs; keep at least {MIN_CASES}",
        cases.len()
    );
    let mut failures = Vec::new();
    for orphan in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "expected"))
        .filter(|p| !p.with_extension("yaml").exists())
    {
        failures.push(format!("{}: no .yaml for this .expected", orphan.display()));
    }
    for case in cases {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let expected_path = case.with_extension("expected");
        let actual = match error_text(case) {
            Ok(text) => text,
            Err(problem) => {
                failures.push(format!("{name}: {problem}"));
                continue;
            }
        };
        for secret in CORPUS_SECRETS {
            if actual.contains(secret) {
                failures.push(format!(
                    "{name}: the error shows the secret `{secret}`:\n{actual}"
                ));
            }
        }
        if bless {
            std::fs::write(&expected_path, &actual).expect("write .expected");
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Err(_) => failures.push(format!(
                "{name}: no {} (BRIDGE_BLESS=1 writes it)",
                expected_path.display()
            )),
            Ok(expected) if expected != actual => failures.push(format!(
                "{name}: the error text differs\n--- expected\n{expected}--- actual\n{actual}"
            )),
            Ok(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the bad-config cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
