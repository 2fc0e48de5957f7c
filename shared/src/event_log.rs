//! The event log: the one seam between hotchat and whatever holds its events.
//!
//! Everything above this module is written once, for both engines: chat-server appends, the fan-out
//! tails every partition from a position of its choosing, and the projector reads as a member of a
//! consumer group whose committed positions survive restarts. Two engines sit below it:
//!
//! - [`kafka`]: a Kafka topic (`KAFKA_BROKERS`), the distributed mode. An append resolves when every
//!   in-sync replica has the record (idempotent producer, `acks=all`).
//! - [`embedded`]: one SQLite file with one partition and Kafka-like offsets, the embedded default.
//!   An append resolves when its transaction is on disk (`synchronous=FULL`).
//!
//! [`EventLog::open`] is the only place that chooses between them. Records come back as [`Record`]:
//! a cursor and the decoded event, or why the record was not a hotchat event (another team may write
//! to the topic; consumers skip and count those).

pub mod embedded;
pub mod kafka;

use std::{path::Path, time::Duration};

use crate::{
    cursor::Cursor,
    event::{DecodeError, Envelope},
    kafka::KafkaSettings,
};

/// The longest a consumer group's read waits to fill a batch once a record is there: what the
/// projection may lag the log by when the log is quiet.
pub const GROUP_WAIT: Duration = Duration::from_millis(100);

/// One record read from the log.
#[derive(Debug)]
pub struct Record {
    pub cursor: Cursor,
    /// The event, or why the record is not one.
    pub event: Result<Envelope, DecodeError>,
}

/// Why an append did not make it into the log (the API answers 503).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the broker did not acknowledge the event within {0:?}")]
    Timeout(Duration),
    #[error("the broker refused the event: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the event log could not be written: {0}")]
    Write(String),
    #[error("the event log is shut down")]
    Closed,
}

/// The event log, in whichever engine the configuration names. Cheap to share behind an `Arc`.
pub enum EventLog {
    Kafka(kafka::KafkaLog),
    Embedded(embedded::EmbeddedLog),
}

impl EventLog {
    /// The Kafka topic when `kafka` is given (created if missing), else the embedded log in
    /// `data_dir/events.db`.
    pub async fn open(kafka: Option<&KafkaSettings>, data_dir: &Path) -> anyhow::Result<Self> {
        match kafka {
            Some(settings) => {
                let log = kafka::KafkaLog::open(settings.clone()).await?;
                tracing::info!(topic = %settings.topic, partitions = log.partitions(), "event topic ready");
                Ok(Self::Kafka(log))
            }
            None => {
                let file = data_dir.join("events.db");
                let log = embedded::EmbeddedLog::open(&file).await?;
                tracing::info!(file = %file.display(), records = log.end(), "embedded event log (KAFKA_BROKERS is unset)");
                Ok(Self::Embedded(log))
            }
        }
    }

    /// Gets ready to append: with Kafka, the producer connects and starts its idempotent session
    /// now rather than at the first append (which would then wait for it). Readers skip this.
    pub fn prepare_writer(&self) -> anyhow::Result<()> {
        match self {
            Self::Kafka(log) => log.prepare_writer(),
            Self::Embedded(_) => Ok(()),
        }
    }

    /// Appends `event` (key = its room id); resolves with its position once the log has it.
    pub async fn append(&self, event: &Envelope) -> Result<Cursor, AppendError> {
        match self {
            Self::Kafka(log) => log.append(event).await,
            Self::Embedded(log) => log.append(event).await,
        }
    }

    /// Whether only this process can read the log (the embedded one, a file): then this process
    /// must also serve the read side, since no publish-server can.
    pub fn is_private(&self) -> bool {
        matches!(self, Self::Embedded(_))
    }

    /// The number of partitions (numbered from 0).
    pub fn partitions(&self) -> i32 {
        match self {
            Self::Kafka(log) => log.partitions(),
            Self::Embedded(_) => 1,
        }
    }

    /// The partition `room`'s events go to (they all go to one, in order).
    pub fn partition_of(&self, room: uuid::Uuid) -> i32 {
        match self {
            Self::Kafka(log) => crate::kafka::partition_for_key(
                crate::event::partition_key(room).as_bytes(),
                log.partitions(),
            ),
            Self::Embedded(_) => embedded::PARTITION,
        }
    }

    /// The first offset still held in `partition` and the offset its next record will get.
    pub async fn bounds(&self, partition: i32) -> anyhow::Result<(i64, i64)> {
        match self {
            Self::Kafka(log) => log.bounds(partition).await,
            Self::Embedded(_) if partition != embedded::PARTITION => Ok((0, 0)),
            Self::Embedded(log) => Ok((0, log.end())),
        }
    }

    /// Where each of `partitions` ends (the offset its next record will get), read after this
    /// call began, in one request to the broker.
    pub async fn ends(&self, partitions: &[i32]) -> anyhow::Result<Vec<(i32, i64)>> {
        match self {
            Self::Kafka(log) => log.ends(partitions).await,
            Self::Embedded(log) => Ok(partitions
                .iter()
                .map(|&partition| {
                    let end = if partition == embedded::PARTITION {
                        log.end()
                    } else {
                        0
                    };
                    (partition, end)
                })
                .collect()),
        }
    }

    /// Every record of the given partitions from the given offsets on, in order per partition, as
    /// they are appended. Nothing is committed anywhere: each tail is its own reader.
    pub fn tail(&self, from: &[(i32, i64)]) -> anyhow::Result<Tail> {
        match self {
            Self::Kafka(log) => Ok(Tail::Kafka(log.tail(from)?)),
            Self::Embedded(log) => Ok(Tail::Embedded(log.tail(from))),
        }
    }

    /// Joins consumer group `group`: the members share the partitions, and each starts where the
    /// group last committed (from the beginning for a new group).
    pub async fn join_group(&self, group: &str) -> anyhow::Result<Group> {
        match self {
            Self::Kafka(log) => Ok(Group::Kafka(log.join_group(group)?)),
            Self::Embedded(log) => Ok(Group::Embedded(log.join_group(group).await?)),
        }
    }

    /// Checks that the log answers (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Self::Kafka(log) => log.ping().await,
            Self::Embedded(log) => log.ping().await,
        }
    }

    /// Waits up to `timeout` for appends still on their way (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Self::Kafka(log) = self {
            log.flush(timeout);
        }
    }
}

/// A reader of some partitions from chosen offsets.
pub enum Tail {
    Kafka(kafka::KafkaTail),
    Embedded(embedded::EmbeddedTail),
}

impl Tail {
    /// Waits for the next records and returns up to `max` of those ready, in order per partition.
    /// An error is transient (the broker is unreachable): the caller backs off and calls again.
    pub async fn next_batch(&mut self, max: usize) -> anyhow::Result<Vec<Record>> {
        match self {
            Self::Kafka(tail) => tail.next_batch(max).await,
            Self::Embedded(tail) => tail.next_batch(max).await,
        }
    }
}

/// A member of a consumer group.
pub enum Group {
    Kafka(kafka::KafkaGroup),
    Embedded(embedded::EmbeddedGroup),
}

impl Group {
    /// Waits for the next records of this member's partitions and returns up to `max` of those
    /// ready, in order per partition. An error is transient: back off and call again.
    pub async fn next_batch(&mut self, max: usize) -> anyhow::Result<Vec<Record>> {
        match self {
            Self::Kafka(group) => group.next_batch(max).await,
            Self::Embedded(group) => group.next_batch(max).await,
        }
    }

    /// Commits `positions` (partition, next offset to read): a member that starts later begins
    /// there. Best effort: a lost commit means records are read again, never skipped.
    pub async fn commit(&self, positions: &[(i32, i64)]) {
        match self {
            Self::Kafka(group) => group.commit(positions),
            Self::Embedded(group) => group.commit(positions).await,
        }
    }

    /// Leaves the group without holding up the caller (see [`crate::kafka::close_in_background`]).
    pub fn close(self) {
        match self {
            Self::Kafka(group) => group.close(),
            Self::Embedded(_) => {}
        }
    }
}

/// The positions after `records`: for each partition, the offset after its last record.
pub fn positions_after(records: &[Record]) -> Vec<(i32, i64)> {
    let mut positions: Vec<(i32, i64)> = Vec::new();
    for record in records {
        let next = record.cursor.offset + 1;
        match positions
            .iter_mut()
            .find(|(p, _)| *p == record.cursor.partition)
        {
            Some((_, at)) => *at = (*at).max(next),
            None => positions.push((record.cursor.partition, next)),
        }
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64) -> Record {
        Record {
            cursor: Cursor { partition, offset },
            event: Err(DecodeError::Empty),
        }
    }

    #[test]
    fn positions_after_name_the_offset_after_each_partitions_last_record() {
        let records = [record(0, 4), record(1, 9), record(0, 5), record(1, 10)];
        let mut positions = positions_after(&records);
        positions.sort();
        assert_eq!(positions, [(0, 6), (1, 11)]);
        assert!(positions_after(&[]).is_empty());
    }
}
