//! The integration tests, as one binary (one link of the crate instead of one
//! per file, as ripgrep does): one module per area, each file in `tests/`.
//! `support` is what they share: where the test brokers are, producing and
//! reading records, running the bridge.
//!
//! Run one area with `cargo test --test tests -- verify::`.

mod support;

mod bad_configs;
mod bridge;
mod broker_restart;
mod check;
mod clients;
mod compacted;
mod config_errors;
mod config_never_panics;
mod console;
mod credentials;
mod daily_verify;
mod deploy_manifests;
mod dual_read;
mod exactly_once;
mod grafana_dashboard;
mod health;
mod kafka_cluster;
mod kafka_restart;
mod kafka_sink;
mod limits;
mod mapping_roundtrip;
mod message_ids;
mod metrics;
mod namesrv_restart;
mod network_faults;
mod policies;
mod prometheus;
mod queue_change;
mod regex_mappings;
mod rocketmq_cluster;
mod rocketmq_source;
mod rollback;
mod scale_out;
mod secrets;
mod service;
mod start_position;
mod transactions;
mod translate_offsets;
mod verify;
mod verify_back;
mod way_back;
mod write_refusal;
