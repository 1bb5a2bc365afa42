//! Kafka's consumer group as the pipeline's [`Source`]: partitions are its
//! lanes, and a record is a [`SourceRecord`].

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};

use super::consumer::{self, BridgeConsumer};
use super::fetch_wake;
use crate::checkpoint::PartitionId;
use crate::mapping::SourceRecord;
use crate::source::{Committed, Incoming, Source};

impl Incoming for SourceRecord {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn lane(&self) -> PartitionId {
        PartitionId::new(Arc::clone(&self.topic), self.partition)
    }

    fn offset(&self) -> i64 {
        self.offset
    }

    fn limited_bytes(&self) -> u64 {
        self.content_bytes() as u64
    }

    fn value_bytes(&self) -> u64 {
        self.value().map_or(0, <[u8]>::len) as u64
    }

    fn into_dead_letter(self) -> SourceRecord {
        self
    }
}

impl Source for BridgeConsumer {
    type Record = SourceRecord;

    fn reads(&self, lane: &PartitionId) -> bool {
        lane.broker.is_none()
    }

    async fn recv(&self) -> Result<SourceRecord, String> {
        match StreamConsumer::recv(self).await {
            // The one copy of the record out of librdkafka's buffer.
            Ok(message) => Ok(consumer::source_record(
                &message,
                &self.context().topic_names,
            )),
            Err(error) => Err(format!("Kafka consume error: {error}")),
        }
    }

    fn take_revoked(&self) -> Vec<PartitionId> {
        self.context().take_revoked()
    }

    fn assigned(&self) -> Vec<PartitionId> {
        consumer::assigned(self)
    }

    fn set_paused_where(&self, paused: bool, selected: &dyn Fn(&PartitionId) -> bool) {
        consumer::set_paused_where(self, paused, |topic, partition| {
            selected(&PartitionId::new(topic, partition))
        });
    }

    fn set_lanes_paused(&self, lanes: &[PartitionId], paused: bool) {
        consumer::set_partitions_paused(self, lanes, paused);
    }

    fn wake_resumed(self: Arc<Self>) {
        if self.context().fetch_wake.request() {
            tokio::task::spawn_blocking(move || fetch_wake::serve(&self));
        }
    }

    fn seek(&self, lane: &PartitionId, offset: i64) -> Result<(), String> {
        consumer::seek(self, lane, offset).map_err(|error| {
            format!("cannot move Kafka partition {lane} to offset {offset}: {error}")
        })
    }

    fn committed_offsets(
        &self,
        lanes: &[PartitionId],
        timeout: Duration,
    ) -> Result<Vec<(PartitionId, Option<i64>)>, String> {
        consumer::committed_offsets(self, lanes, timeout).map_err(|error| error.to_string())
    }

    /// Without `wait`, Kafka's commit callback tells the checkpoints.
    async fn commit(
        &self,
        offsets: &[(PartitionId, i64)],
        wait: bool,
    ) -> Result<Committed, String> {
        let mode = if wait {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        consumer::commit(self, offsets, mode)
            .map_err(|error| format!("Kafka offset commit failed: {error}"))?;
        Ok(if wait {
            Committed::Stored
        } else {
            Committed::Started
        })
    }

    async fn close(&self) {
        self.context().closing();
        self.unsubscribe();
    }
}
