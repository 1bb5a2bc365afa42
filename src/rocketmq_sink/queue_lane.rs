//! A RocketMQ queue as a lane of the shared sender (`sink::sender`): a batch
//! goes to its queue with `send_to_queue`, never to another, and with
//! exactly-once on the queue's tail is read back behind a write fence.

use std::sync::Arc;
use std::time::Duration;

use rocketmq_client_rust::DefaultMQProducer;
use rocketmq_model::message::MessageQueue;

use super::encode::{BatchEntry, Envelope};
use super::send::{SendFailure, send_once};
use super::stored_check::{StoredCheck, stored_in_queue};
use crate::sink::{Lane, SendError, Stored};

/// What every queue lane of a run shares.
#[derive(Clone)]
pub struct QueueLanes {
    pub producer: Arc<DefaultMQProducer>,
    pub send_timeout: Duration,
    /// `None` when exactly-once is off: a failed batch is sent again whole.
    pub stored_check: Option<Arc<StoredCheck>>,
}

impl QueueLanes {
    pub fn lane(&self, queue: MessageQueue) -> QueueLane {
        QueueLane {
            lanes: self.clone(),
            queue,
        }
    }
}

/// One target queue.
pub struct QueueLane {
    lanes: QueueLanes,
    queue: MessageQueue,
}

impl Lane for QueueLane {
    type Entry = BatchEntry;
    type Error = SendFailure;
    const SINK: &'static str = "RocketMQ";
    const LANE: &'static str = "queue";

    fn name(&self) -> String {
        describe(&self.queue)
    }

    async fn send(&self, batch: &[&Envelope]) -> Result<(), SendFailure> {
        let lanes = &self.lanes;
        send_once(
            &lanes.producer,
            &self.queue,
            batch.iter().copied(),
            lanes.send_timeout,
        )
        .await
    }

    fn can_read_back(&self) -> bool {
        self.lanes.stored_check.is_some()
    }

    async fn read_back(&self, pending: &[&Envelope]) -> Result<Stored, String> {
        let Some(check) = &self.lanes.stored_check else {
            return Err("exactly-once is off: the queue is not read back".to_string());
        };
        stored_in_queue(check, &self.queue, pending)
            .await
            .map_err(|error| error.to_string())
    }
}

impl SendError for SendFailure {
    fn kind(&self) -> &'static str {
        self.error_kind().label()
    }

    fn may_have_been_stored(&self) -> bool {
        self.error_kind().may_have_been_stored()
    }
}

/// A queue as the logs name it: `topic@broker#id`.
pub fn describe(queue: &MessageQueue) -> String {
    format!(
        "{}@{}#{}",
        queue.topic_str(),
        queue.broker_name(),
        queue.queue_id()
    )
}
