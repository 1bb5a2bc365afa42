//! The RocketMQ sink: the client runtime, and the admin calls used by
//! `check` and `create-topics`. (The producer path arrives with the bridge.)

mod admin;
mod client;

pub use admin::{RocketMqAdmin, RocketMqAdminError};
pub use client::{RocketMqRuntime, error_text};
