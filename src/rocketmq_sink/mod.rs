//! The RocketMQ sink: the client runtime, the producer, one in-order sender
//! per target queue, and the admin calls used by `check` and `create-topics`.

mod admin;
mod client;
pub mod fence;
mod producer;
pub mod queue_sender;

pub use admin::{RocketMqAdmin, RocketMqAdminError, with_admin};
pub use client::{RocketMqRuntime, error_text, failure_text};
pub use producer::{ProducerError, fetch_queues, start_producer};
