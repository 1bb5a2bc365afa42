//! What the shared pipeline asks of a sink, whichever system it writes to:
//! ordered lanes (a RocketMQ queue, a Kafka partition) that store batches of
//! records already encoded for them, and say why a send failed and whether
//! it may have been stored anyway.
//!
//! One sender task per lane (`sender`) does the rest the same way for every
//! sink: batching, one batch in flight, retries on the same lane, the
//! exactly-once read-back before a resend, acknowledgements into the
//! checkpoints, and the counters and metrics.

pub mod sender;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;

use crate::checkpoint::PartitionId;

/// A source record on its way to one lane, encoded for it once, however
/// often its batch is retried.
#[derive(Debug)]
pub struct Record<E> {
    /// Where it was read: its partition and offset there.
    pub partition: PartitionId,
    pub offset: i64,
    /// The source timestamp, for the end-to-end latency.
    pub timestamp_ms: Option<i64>,
    pub entry: E,
}

/// A record as a lane's sends carry it.
pub trait Entry: Send + Sync + 'static {
    /// Bytes it adds to a batch (what `max_batch_bytes` counts).
    fn size(&self) -> usize;
    /// Memory it holds from the hand-over until it is stored, copies made
    /// while sending included, as counted against the in-flight cap.
    fn footprint(&self) -> usize;
}

impl<E: Entry> Record<E> {
    pub fn size(&self) -> usize {
        self.entry.size()
    }

    /// [`Entry::footprint`] and the record's own size.
    pub fn footprint(&self) -> usize {
        std::mem::size_of::<Self>() + self.entry.footprint()
    }
}

/// Why a send failed, as the retry loop needs to know it.
pub trait SendError: fmt::Display + Send {
    /// A small fixed set of labels, for `bridge_send_errors_total{kind}`.
    fn kind(&self) -> &'static str;
    /// False only when the answer says the lane did not take the batch:
    /// otherwise exactly-once reads the lane back before sending again.
    fn may_have_been_stored(&self) -> bool;
}

/// What a read-back of a lane found: the (partition, offset) of the
/// records looked for that are stored, and the lane's end offset after the
/// read (for the log, should a duplicate show up later).
pub struct Stored {
    pub found: HashSet<(PartitionId, i64)>,
    pub end: i64,
}

/// One ordered lane of a sink.
pub trait Lane: Send + Sync + 'static {
    type Entry: Entry;
    type Error: SendError;
    /// The system written to, and what it calls a lane, for the logs:
    /// "send to RocketMQ failed; retrying on the same queue".
    const SINK: &'static str;
    const LANE: &'static str;

    /// The lane as logs name it, e.g. `orders@broker-a#3`.
    fn name(&self) -> String;

    /// Sends `batch`, in order, once.
    fn send(
        &self,
        batch: &[&Record<Self::Entry>],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Whether this lane can read back what a failed send stored
    /// (exactly-once on); if not, a failed batch is sent again whole.
    fn can_read_back(&self) -> bool;

    /// Which of `pending` the lane holds already. Only called when
    /// [`Self::can_read_back`]. The error says why the lane cannot be read.
    fn read_back(
        &self,
        pending: &[&Record<Self::Entry>],
    ) -> impl Future<Output = Result<Stored, String>> + Send;
}
