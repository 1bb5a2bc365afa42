//! The Kafka sink, for the way back (RocketMQ to Kafka): each target
//! partition is one lane of the shared sender (`sink::sender`).
//!
//! - `encode`: a mapped record as a lane carries it ([`KafkaEntry`]).
//! - `partition_lane`: the idempotent producer and the lane that sends a
//!   batch to its partition, never to another.
//! - `read_back`: what a partition holds after a failed send, found by the
//!   provenance headers each copy carries.

pub mod encode;
pub mod partition_lane;
pub mod read_back;

pub use encode::{KafkaEntry, KafkaRecord};
pub use partition_lane::{KafkaSendFailure, PartitionLane, PartitionLanes};
