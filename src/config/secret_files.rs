//! Credentials read from files: `rocketmq.access_key_file`,
//! `rocketmq.secret_key_file` and `kafka.property_files`, the way Docker and
//! Kubernetes hand secrets to a container (one file per secret).
//!
//! Each file's text, without its trailing newline, becomes the value of the
//! matching key, held as a [`Secret`] so it never shows in Debug output, logs
//! or errors. Problems name the key and the path, never what the file holds.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::load::Problems;
use super::locate::Segment;
use super::{KafkaConfig, PropertyValue, RocketMqConfig, Secret};

/// Bigger than any password or key, small enough that a path pointing at
/// the wrong file cannot fill memory. A CA bundle (`ssl.ca.pem`) fits.
const MAX_SECRET_FILE_BYTES: u64 = 1 << 20;

/// Reads every `*_file` key of the sections that deserialized into the value
/// it stands for. Relative paths are taken from `base_dir` (the config
/// file's folder), or from the working directory when there is none.
pub(super) fn resolve(
    kafka: Option<&mut KafkaConfig>,
    rocketmq: Option<&mut RocketMqConfig>,
    base_dir: Option<&Path>,
    problems: &mut Problems,
) {
    if let Some(rocketmq) = rocketmq {
        resolve_rocketmq(rocketmq, base_dir, problems);
    }
    if let Some(kafka) = kafka {
        resolve_kafka(kafka, base_dir, problems);
    }
}

fn resolve_rocketmq(
    rocketmq: &mut RocketMqConfig,
    base_dir: Option<&Path>,
    problems: &mut Problems,
) {
    for (name, value, file) in [
        (
            "access_key",
            &mut rocketmq.access_key,
            &rocketmq.access_key_file,
        ),
        (
            "secret_key",
            &mut rocketmq.secret_key,
            &rocketmq.secret_key_file,
        ),
    ] {
        let Some(path) = file else { continue };
        let at = [key("rocketmq"), key(&format!("{name}_file"))];
        if value.is_some() {
            problems.push(
                &at,
                format!("is set together with `{name}`: keep one of the two (the file is for Docker and Kubernetes secrets)"),
            );
            continue;
        }
        match read_secret(path, base_dir) {
            Ok(secret) => *value = Some(secret),
            Err(reason) => problems.push(&at, reason),
        }
    }
}

fn resolve_kafka(kafka: &mut KafkaConfig, base_dir: Option<&Path>, problems: &mut Problems) {
    for (name, path) in &kafka.property_files {
        let at = [key("kafka"), key("property_files"), key(name)];
        if kafka.properties.contains_key(name) {
            problems.push(
                &at,
                format!("`{name}` is also set in kafka.properties: keep one of the two"),
            );
            continue;
        }
        match read_secret(path, base_dir) {
            Ok(secret) => {
                kafka
                    .properties
                    .insert(name.clone(), PropertyValue::Secret(secret));
            }
            Err(reason) => problems.push(&at, reason),
        }
    }
}

fn key(name: &str) -> Segment {
    Segment::Key(name.to_string())
}

/// The file's text without trailing line breaks, or why it cannot be used.
/// The reason quotes the path as written, never the contents.
fn read_secret(path: &Path, base_dir: Option<&Path>) -> Result<Secret, String> {
    let full: PathBuf = match base_dir {
        Some(base) if path.is_relative() => base.join(path),
        _ => path.to_path_buf(),
    };
    let shown = path.display();
    let cannot = |error: std::io::Error| {
        format!("cannot read `{shown}`: {error}: mount the secret there or correct the path")
    };
    // Follows symlinks, as Kubernetes mounts secrets through them. A device
    // (/dev/zero) or a FIFO would hang or never end, so only plain files.
    let metadata = std::fs::metadata(&full).map_err(cannot)?;
    if !metadata.is_file() {
        return Err(format!(
            "`{shown}` is not a regular file: point it at the file that holds the secret"
        ));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&full)
        .and_then(|file| file.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "`{shown}` is bigger than 1 MiB, too big for a credential: is it the right file?"
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        format!("`{shown}` is not UTF-8 text: a credential file holds the secret as text")
    })?;
    // `echo secret > file` and most editors end the file with a newline that
    // is not part of the secret.
    let trimmed = text.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(format!(
            "`{shown}` is empty: write the secret into it, or leave the key out"
        ));
    }
    Ok(Secret::new(trimmed))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::config::{BridgeConfig, ConfigError, PropertyValue, load_str};

    const BASE: &str = "kafka:\n  bootstrap_servers: \"k:9092\"\n";

    fn config_text(kafka_extra: &str, rocketmq_extra: &str) -> String {
        format!(
            "{BASE}{kafka_extra}rocketmq:\n  name_server: \"n:9876\"\n{rocketmq_extra}\
             mappings:\n  - kafka_topic: a\n    rocketmq_topic: a\n"
        )
    }

    fn load(text: &str) -> Result<BridgeConfig, ConfigError> {
        load_str(text, "bridge.yaml", |_| None)
    }

    fn secret_file(contents: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        file.write_all(contents).expect("write secret");
        file
    }

    fn path(file: &tempfile::NamedTempFile) -> String {
        file.path().display().to_string()
    }

    #[test]
    fn credentials_come_from_files_without_their_trailing_newline() {
        let access = secret_file(b"AK-from-file\n");
        let secret = secret_file(b"SK-from-file\r\n");
        let password = secret_file(b"pw-from-file");
        let text = config_text(
            &format!(
                "  property_files:\n    sasl.password: \"{}\"\n",
                path(&password)
            ),
            &format!(
                "  access_key_file: \"{}\"\n  secret_key_file: \"{}\"\n",
                path(&access),
                path(&secret)
            ),
        );
        let config = load(&text).unwrap_or_else(|e| panic!("{e}"));
        let rocketmq = &config.rocketmq;
        assert_eq!(
            rocketmq.access_key.as_ref().map(|s| s.expose()),
            Some("AK-from-file")
        );
        assert_eq!(
            rocketmq.secret_key.as_ref().map(|s| s.expose()),
            Some("SK-from-file")
        );
        let value = &config.kafka.properties["sasl.password"];
        assert!(matches!(value, PropertyValue::Secret(_)), "{value:?}");
        assert_eq!(value.as_librdkafka_value(), "pw-from-file");
        // Debug shows the paths, never what the files hold.
        let shown = format!("{config:?}");
        assert!(!shown.contains("from-file"), "{shown}");
        assert!(shown.contains(&path(&password)), "{shown}");
        assert!(shown.contains("\"sasl.password\": \"***\""), "{shown}");
    }

    #[test]
    fn a_secret_in_any_property_name_is_hidden_when_it_comes_from_a_file() {
        // `ssl.certificate.location` looks harmless by name; from a file, it is still hidden.
        let file = secret_file(b"not-shown-anywhere\n");
        let text = config_text(
            &format!("  property_files:\n    client.rack: \"{}\"\n", path(&file)),
            "",
        );
        let config = load(&text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!format!("{config:?}").contains("not-shown-anywhere"));
    }

    #[test]
    fn a_missing_file_names_key_line_and_path_but_not_contents() {
        let text = config_text(
            "",
            "  access_key: \"AK\"\n  secret_key_file: /nonexistent/rmq-secret\n",
        );
        let message = load(&text).expect_err("missing file").to_string();
        assert_eq!(
            message,
            "bridge.yaml: 1 problem in the configuration\n  bridge.yaml:6: rocketmq.secret_key_file: cannot read \
             `/nonexistent/rmq-secret`: No such file or directory (os error 2): mount the secret there or correct the path"
        );
    }

    #[test]
    fn a_value_and_a_file_for_the_same_secret_are_refused() {
        let file = secret_file(b"SK-in-file\n");
        let text = config_text(
            &format!(
                "  properties:\n    sasl.password: \"pw-inline\"\n  property_files:\n    sasl.password: \"{}\"\n",
                path(&file)
            ),
            &format!(
                "  access_key: \"AK\"\n  secret_key: \"SK-inline\"\n  secret_key_file: \"{}\"\n",
                path(&file)
            ),
        );
        let message = load(&text).expect_err("both").to_string();
        assert!(
            message.contains("bridge.yaml:6: kafka.property_files.sasl.password: `sasl.password` is also set in kafka.properties: keep one of the two"),
            "{message}"
        );
        assert!(
            message.contains("bridge.yaml:11: rocketmq.secret_key_file: is set together with `secret_key`: keep one"),
            "{message}"
        );
        for secret in ["pw-inline", "SK-in", "SK-inline"] {
            assert!(!message.contains(secret), "{message}");
        }
    }

    #[test]
    fn a_file_alone_counts_for_both_or_neither() {
        let file = secret_file(b"SK\n");
        let text = config_text("", &format!("  secret_key_file: \"{}\"\n", path(&file)));
        let message = load(&text).expect_err("half").to_string();
        assert!(
            message.contains("bridge.yaml:5: rocketmq.secret_key_file: is set but access_key is not: set both or neither"),
            "{message}"
        );
    }

    #[test]
    fn devices_directories_empty_binary_and_huge_files_are_refused() {
        let empty = secret_file(b"\n");
        let binary = secret_file(&[0xff, 0xfe, 0x00]);
        let huge = secret_file(&vec![b'x'; (1 << 20) + 1]);
        let cases = [
            ("/dev/zero".to_string(), "`/dev/zero` is not a regular file"),
            ("/".to_string(), "`/` is not a regular file"),
            (path(&empty), "is empty: write the secret into it"),
            (path(&binary), "is not UTF-8 text"),
            (path(&huge), "is bigger than 1 MiB"),
        ];
        for (file, expected) in cases {
            let text = config_text(
                &format!("  property_files:\n    sasl.password: \"{file}\"\n"),
                "",
            );
            let message = load(&text).expect_err(&file).to_string();
            assert!(
                message.contains("bridge.yaml:4: kafka.property_files.sasl.password: ")
                    && message.contains(expected),
                "{file}: {message}"
            );
        }
    }

    #[test]
    fn relative_paths_are_taken_from_the_config_files_folder() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("password"), "relative-pw\n").expect("write secret");
        let config_path = dir.path().join("bridge.yaml");
        std::fs::write(
            &config_path,
            config_text("  property_files:\n    sasl.password: password\n", ""),
        )
        .expect("write config");
        let config = crate::config::load_file(&config_path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.kafka.properties["sasl.password"].as_librdkafka_value(),
            "relative-pw"
        );
    }

    #[test]
    fn bridge_owned_properties_are_refused_from_files_too() {
        let file = secret_file(b"other-group\n");
        let text = config_text(
            &format!("  property_files:\n    group.id: \"{}\"\n", path(&file)),
            "",
        );
        let message = load(&text).expect_err("owned").to_string();
        assert!(
            message.contains("bridge.yaml:4: kafka.property_files.group.id: is set by the bridge and cannot be overridden: use kafka.group_id"),
            "{message}"
        );
    }
}
