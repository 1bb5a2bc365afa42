//! The RocketMQ sink: the client runtime, the producer, one in-order sender
//! per target queue, and the admin calls used by `check` and `create-topics`.
//!
//! A queue is a lane of the shared sender (`sink::sender`, which batches and
//! retries); its parts here: `encode` (a record as its batch entry, once),
//! `send` (one send, and its typed failure), `queue_lane` (the lane) and
//! `stored_check` (what of a failed send is stored anyway).

mod admin;
mod client;
pub mod encode;
pub mod fence;
mod producer;
pub mod queue_lane;
pub mod send;
pub mod stored_check;

pub use admin::{RocketMqAdmin, RocketMqAdminError, with_admin};
pub use client::{RocketMqRuntime, error_text, failure_text};
pub use producer::{ProducerError, fetch_queues, start_producer};
