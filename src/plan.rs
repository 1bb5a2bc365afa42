//! `check`: what the bridge would do with a config. It reaches both clusters
//! with a deadline, then lays out each mapping's partitions, queues and
//! ordering, with an actionable line for everything that is not ready.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::config::{BridgeConfig, Ordering};
use crate::kafka_source;
use crate::rocketmq_sink;

/// Topic name to its partition or queue count; `None` when it does not exist.
type Counts = BTreeMap<String, Option<usize>>;

/// What `check` found.
#[derive(Debug)]
pub struct CheckReport {
    pub kafka_bootstrap: String,
    pub name_server: String,
    /// Partition counts, or why Kafka could not be asked.
    pub kafka: Result<Counts, String>,
    /// Queue counts, or why RocketMQ could not be asked.
    pub rocketmq: Result<Counts, String>,
    pub rows: Vec<PlanRow>,
    /// The fence topic's name, when RocketMQ answered that it does not exist.
    pub missing_fence_topic: Option<String>,
    /// Dead-letter topics Kafka answered do not exist.
    pub missing_dead_letter_topics: Vec<String>,
    config_path: String,
}

/// One mapping as the bridge would run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub mapping: String,
    pub kafka_topic: String,
    pub partitions: Option<usize>,
    pub rocketmq_topic: String,
    pub queues: Option<usize>,
    pub ordering: Ordering,
}

impl CheckReport {
    /// Both clusters answered and every mapped topic exists on both sides.
    pub fn is_ready(&self) -> bool {
        self.kafka.is_ok()
            && self.rocketmq.is_ok()
            && self.missing_dead_letter_topics.is_empty()
            && self
                .rows
                .iter()
                .all(|row| row.partitions.is_some() && row.queues.is_some())
    }

    /// Every reason the bridge cannot start yet, each with what to do.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(error) = &self.kafka {
            problems.push(format!("Kafka: {error}"));
        }
        if let Err(error) = &self.rocketmq {
            problems.push(format!("RocketMQ: {error}"));
        }
        let create = format!(
            "kafka-rocketmq-bridge create-topics --config {}",
            self.config_path
        );
        for row in &self.rows {
            if self.kafka.is_ok() && row.partitions.is_none() {
                problems.push(format!(
                    "Kafka topic `{}` does not exist at {}: create it (kafka-topics.sh --create --topic {} \
                     --partitions N), or run `{create}`",
                    row.kafka_topic, self.kafka_bootstrap, row.kafka_topic
                ));
            }
            if self.rocketmq.is_ok() && row.queues.is_none() {
                problems.push(format!(
                    "RocketMQ topic `{}` does not exist at {}: create it (mqadmin updateTopic -n {} -c DefaultCluster \
                     -t {} -r 8 -w 8), or run `{create}`",
                    row.rocketmq_topic, self.name_server, self.name_server, row.rocketmq_topic
                ));
            }
        }
        for topic in &self.missing_dead_letter_topics {
            problems.push(format!(
                "Kafka dead-letter topic `{topic}` does not exist at {}: dead letters would be refused; \
                 create it, or run `{create}`",
                self.kafka_bootstrap
            ));
        }
        problems
    }

    /// Notes that do not stop the bridge but an operator should know.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(topic) = &self.missing_fence_topic {
            notes.push(format!(
                "RocketMQ fence topic `{topic}` does not exist: the bridge runs without write fences, and a \
                 copy stored by a send that failed may be sent again; run `kafka-rocketmq-bridge create-topics \
                 --config {}`",
                self.config_path
            ));
        }
        for row in &self.rows {
            let (Some(partitions), Some(queues)) = (row.partitions, row.queues) else {
                continue;
            };
            if row.ordering == Ordering::Partition && queues < partitions {
                notes.push(format!(
                    "{}: {partitions} partitions share {queues} queues (partition p -> queue p mod {queues}); \
                     order is kept, parallelism is {queues}",
                    row.mapping
                ));
            }
            if row.ordering == Ordering::Partition && queues > partitions {
                notes.push(format!(
                    "{}: only {partitions} of the {queues} queues will receive messages in partition mode",
                    row.mapping
                ));
            }
        }
        notes
    }

    /// The report as people read it: endpoints, the plan table, problems.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let state = |r: &Result<Counts, String>| {
            if r.is_ok() {
                "reachable"
            } else {
                "NOT reachable"
            }
        };
        let _ = writeln!(
            out,
            "Kafka     {:<24} {}",
            self.kafka_bootstrap,
            state(&self.kafka)
        );
        let _ = writeln!(
            out,
            "RocketMQ  {:<24} {}",
            self.name_server,
            state(&self.rocketmq)
        );
        out.push('\n');
        out.push_str(&self.render_table());
        for (title, lines) in [("Problems", self.problems()), ("Notes", self.notes())] {
            if !lines.is_empty() {
                let _ = writeln!(out, "\n{title}:");
                lines.iter().for_each(|line| {
                    let _ = writeln!(out, "  - {line}");
                });
            }
        }
        let verdict = if self.is_ready() {
            "ready: the bridge can start"
        } else {
            "NOT ready: fix the problems above"
        };
        let _ = writeln!(out, "\n{verdict}");
        out
    }

    fn render_table(&self) -> String {
        let header = [
            "MAPPING",
            "KAFKA TOPIC",
            "PARTITIONS",
            "ROCKETMQ TOPIC",
            "QUEUES",
            "ORDERING",
        ]
        .map(String::from);
        let count = |known: bool, n: Option<usize>| match (known, n) {
            (false, _) => "?".to_string(),
            (true, Some(n)) => n.to_string(),
            (true, None) => "missing".to_string(),
        };
        let mut rows = vec![header];
        for row in &self.rows {
            rows.push([
                row.mapping.clone(),
                row.kafka_topic.clone(),
                count(self.kafka.is_ok(), row.partitions),
                row.rocketmq_topic.clone(),
                count(self.rocketmq.is_ok(), row.queues),
                row.ordering.to_string(),
            ]);
        }
        let widths: Vec<usize> = (0..6)
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        out
    }
}

/// Asks both clusters, at once, about every mapped topic.
pub async fn check(config: &BridgeConfig, config_path: &str, deadline: Duration) -> CheckReport {
    let resolved = kafka_source::resolve_regex_mappings(config, deadline).await;
    let (config, regex_problem) = match &resolved {
        Ok(resolved) => (resolved, None),
        Err(problem) => (config, Some(problem.clone())),
    };
    let dead_letter_topics = config.dead_letter_topics();
    let kafka_topics = config.kafka_topics_and_dead_letters();
    let mut rocketmq_topics: Vec<String> = config.rocketmq_topics();
    rocketmq_topics.push(config.rocketmq.fence_topic.clone());
    let (kafka, rocketmq) = tokio::join!(
        kafka_source::partition_counts(&config.kafka, &kafka_topics, deadline),
        rocketmq_queue_counts(config, &rocketmq_topics, deadline),
    );
    let kafka = match (kafka, regex_problem) {
        (Err(error), _) => Err(error.to_string()),
        (Ok(_), Some(problem)) => Err(problem),
        (Ok(counts), None) => Ok(counts),
    };
    let rows = config
        .mappings
        .iter()
        .map(|m| PlanRow {
            mapping: m.label().to_string(),
            kafka_topic: m.kafka_topic.clone(),
            partitions: kafka
                .as_ref()
                .ok()
                .and_then(|c| c.get(&m.kafka_topic).copied().flatten()),
            rocketmq_topic: m.rocketmq_topic.clone(),
            queues: rocketmq
                .as_ref()
                .ok()
                .and_then(|c| c.get(&m.rocketmq_topic).copied().flatten()),
            ordering: m.ordering,
        })
        .collect();
    let fence_topic = &config.rocketmq.fence_topic;
    let missing_fence_topic = rocketmq
        .as_ref()
        .is_ok_and(|c| c.get(fence_topic).copied().flatten().is_none())
        .then(|| fence_topic.clone());
    let missing_dead_letter_topics = match &kafka {
        Ok(counts) => dead_letter_topics
            .into_iter()
            .filter(|t| counts.get(t).copied().flatten().is_none())
            .collect(),
        Err(_) => Vec::new(),
    };
    CheckReport {
        missing_fence_topic,
        missing_dead_letter_topics,
        kafka_bootstrap: config.kafka.bootstrap_servers.clone(),
        name_server: config.rocketmq.name_server.clone(),
        kafka,
        rocketmq,
        rows,
        config_path: config_path.to_string(),
    }
}

async fn rocketmq_queue_counts(
    config: &BridgeConfig,
    topics: &[String],
    deadline: Duration,
) -> Result<Counts, String> {
    rocketmq_sink::with_admin(&config.rocketmq, deadline, async |admin| {
        admin.queue_counts(topics).await
    })
    .await
    .map_err(|e| e.to_string())
}
