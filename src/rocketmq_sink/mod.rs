//! The RocketMQ sink: the client runtime, the producer, one in-order sender
//! per target queue, and the admin calls used by `check` and `create-topics`.
//!
//! A sender's parts: `encode` (a record as its batch entry, once), `send`
//! (one send, and its typed failure), `queue_sender` (batching and the retry
//! loop) and `stored_check` (what of a failed send is stored anyway).

mod admin;
mod client;
pub mod encode;
pub mod fence;
mod producer;
pub mod queue_sender;
pub mod send;
pub mod stored_check;

pub use admin::{RocketMqAdmin, RocketMqAdminError, with_admin};
pub use client::{RocketMqRuntime, error_text, failure_text};
pub use producer::{ProducerError, fetch_queues, start_producer};
