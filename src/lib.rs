//! kafka-rocketmq-bridge: mirrors Apache Kafka topics into Apache RocketMQ so
//! a company can migrate without changing its producers.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library. Data flows one
//! way: Kafka source -> record mapping -> queue routing -> RocketMQ sink ->
//! checkpoint. See `docs/architecture.md`.

#![recursion_limit = "256"]

pub mod already_stored;
pub mod bridge;
pub mod checkpoint;
pub mod config;
pub mod console;
pub mod count_match;
pub mod daily_verify;
pub mod dead_letter;
pub mod dual_read;
pub mod health;
pub mod in_flight;
pub mod kafka_sink;
pub mod kafka_source;
pub mod mapping;
pub mod message_id;
pub mod metrics;
pub mod offset_translation;
pub mod plan;
pub mod rate_limit;
pub mod results_match;
pub mod rocketmq_reader;
pub mod rocketmq_sink;
pub mod rocketmq_source;
pub mod router;
pub mod service;
pub mod sink;
pub mod source;
pub mod status;
pub mod topics;
