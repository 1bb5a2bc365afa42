//! `translate-offsets`: a consumer group's position carried from one side
//! of the migration to the other, found by the provenance every copy
//! carries, so that the group continues with no gap.
//!
//! - [`to_rocketmq`], at cutover: a Kafka group's committed offsets as a
//!   RocketMQ group's consumer offsets, over the `kafka_to_rocketmq`
//!   mappings;
//! - [`to_kafka`], for a rollback (`--to-kafka`): a RocketMQ group's
//!   consumer offsets as a Kafka group's committed offsets, over the
//!   `rocketmq_to_kafka` mappings.
//!
//! Both apply one rule to each target lane (queue or partition), read in
//! order from a bound before which nothing can be unconsumed: the new
//! offset is the first copy of a message the group has not consumed, and
//! copies of consumed messages after it are counted as `redelivered`
//! ([`Boundary`]). This module holds that rule, the group-name check and
//! the table both print.

pub mod to_kafka;
pub mod to_rocketmq;

use std::fmt::Write as _;

pub use to_rocketmq::{OffsetTranslation, QueueOffset, apply, translate};

use crate::config::is_legal_rocketmq_topic;
use crate::count_match::VerifyError;

/// A lane is read from a time before the oldest unconsumed message's: a
/// copy is stored after its original, clocks of producers and brokers
/// differ, and time indexes are approximate.
pub(crate) const SLACK_MS: i64 = 3_600_000;

/// What one entry of a target lane is to the group being translated.
pub(crate) enum Seen<N> {
    /// A copy of a message the group consumed.
    Consumed,
    /// A copy of a message the group has not consumed, and what to name it by.
    Unconsumed(N),
    /// Not a copy of a mapped message: delivered after the boundary,
    /// passed over before it.
    Other,
}

/// The rule over one lane, fed its entries in offset order.
pub(crate) struct Boundary<N> {
    /// The first unconsumed copy: the new offset, and what it is a copy of.
    pub first: Option<(i64, N)>,
    /// Copies of consumed messages after `first`: read again.
    pub redelivered: u64,
    /// Entries after `first` that are no copy of a mapped message.
    pub others: u64,
    /// The offset of the first entry seen.
    pub first_seen: Option<i64>,
}

impl<N> Default for Boundary<N> {
    fn default() -> Self {
        Boundary {
            first: None,
            redelivered: 0,
            others: 0,
            first_seen: None,
        }
    }
}

impl<N> Boundary<N> {
    pub fn see(&mut self, offset: i64, seen: Seen<N>) {
        self.first_seen.get_or_insert(offset);
        match (&self.first, seen) {
            (None, Seen::Unconsumed(next)) => self.first = Some((offset, next)),
            (None, _) | (Some(_), Seen::Unconsumed(_)) => {}
            (Some(_), Seen::Consumed) => self.redelivered += 1,
            (Some(_), Seen::Other) => self.others += 1,
        }
    }

    pub fn offset(&self) -> Option<i64> {
        self.first.as_ref().map(|(offset, _)| *offset)
    }
}

/// Refuses a RocketMQ group name the brokers would refuse.
pub(crate) fn check_rocketmq_group(group: &str) -> Result<(), VerifyError> {
    if is_legal_rocketmq_topic(group) {
        Ok(())
    } else {
        Err(VerifyError(format!(
            "`{group}` is not a legal RocketMQ group name (letters, digits, `%`, `|`, `_`, `-`): \
             give one with --rocketmq-group"
        )))
    }
}

/// A column of the printed table. The last cell of a row, after the
/// columns, is printed as it is.
pub(crate) struct Column {
    title: &'static str,
    width: usize,
    left: bool,
}

impl Column {
    /// A column of names, left-aligned.
    pub const fn left(title: &'static str, width: usize) -> Self {
        Column {
            title,
            width,
            left: true,
        }
    }

    /// A column of numbers, right-aligned.
    pub const fn right(title: &'static str, width: usize) -> Self {
        Column {
            title,
            width,
            left: false,
        }
    }
}

/// The table both directions print: a title line, the rows, the notes, and
/// what `--apply` did or would do.
pub(crate) fn render_table(
    title: &str,
    columns: &[Column],
    last: &str,
    rows: &[Vec<String>],
    notes: &[String],
    footer: &str,
) -> String {
    let mut out = format!("{title}\n\n");
    let line = |out: &mut String, cells: &[String]| {
        for (index, column) in columns.iter().enumerate() {
            let cell = cells.get(index).map_or("", String::as_str);
            let width = column.width;
            let _ = if column.left {
                write!(out, "{cell:<width$} ")
            } else {
                write!(out, "{cell:>width$} ")
            };
        }
        let _ = writeln!(
            out,
            " {}",
            cells.get(columns.len()).map_or("", String::as_str)
        );
    };
    let titles: Vec<String> = columns
        .iter()
        .map(|column| column.title.to_string())
        .chain([last.to_string()])
        .collect();
    line(&mut out, &titles);
    for row in rows {
        line(&mut out, row);
    }
    for note in notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = writeln!(out, "\n{footer}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundary_is_the_first_unconsumed_copy_and_consumed_copies_after_it_are_redelivered() {
        let mut boundary = Boundary::default();
        for (offset, seen) in [
            (10, Seen::Consumed),
            (11, Seen::Other),
            (12, Seen::Unconsumed("a")),
            (13, Seen::Consumed),
            (14, Seen::Unconsumed("b")),
            (15, Seen::Other),
            (16, Seen::Consumed),
        ] {
            boundary.see(offset, seen);
        }
        assert_eq!(boundary.first, Some((12, "a")));
        assert_eq!(boundary.redelivered, 2);
        assert_eq!(boundary.others, 1);
        assert_eq!(boundary.first_seen, Some(10));
    }

    #[test]
    fn a_lane_of_consumed_copies_has_no_boundary() {
        let mut boundary: Boundary<()> = Boundary::default();
        boundary.see(0, Seen::Consumed);
        boundary.see(1, Seen::Other);
        assert_eq!(boundary.offset(), None);
        assert_eq!(boundary.redelivered, 0);
    }
}
