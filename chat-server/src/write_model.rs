//! The write side's own view of the log: every write is decided here, never by asking the database.
//!
//! Each chat-server keeps [`Facts`] in memory (rooms, roles, bans, slow mode, recent messages),
//! built from the log itself: at start-up from the read model's rows and the log positions they
//! reflect ([`ReadModel::write_snapshot`]), then by tailing every partition from there (from the
//! start of the log when the database does not answer). A hung or dead database costs a write
//! nothing.
//!
//! Order across chat-servers without the database: before deciding a write in a room,
//! [`WriteModel::sync`] asks for the end of the room's partition *after* the request arrived and
//! waits until the tail has applied everything before it. So every write acknowledged before this
//! one arrived (a ban on another chat-server, say) is applied before it is decided. The end is
//! asked once per round for every write waiting on the same partition ([`ends`]), not once per
//! write. A moderation operation answers once its own event is applied here
//! ([`WriteModel::applied`]): milliseconds, not a projector's lag. In the embedded mode there is
//! one partition and one process: the same code, trivially ordered.

mod ends;
mod facts;

pub use facts::Facts;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock, RwLockReadGuard},
    time::Duration,
};

use anyhow::Context;
use shared::{
    cursor::Cursor,
    event_log::{EventLog, Tail},
    readmodel::ReadModel,
    shutdown::CancellationToken,
};
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::ApiError;

/// Messages remembered per chat-server: reactions, edits and deletes of older ones read the read
/// model.
pub const MESSAGE_WINDOW: usize = 100_000;
/// How long start-up waits for the read model's snapshot before reading the whole log instead.
const SNAPSHOT_DEADLINE: Duration = Duration::from_secs(5);
/// Most records applied at once.
const MAX_BATCH: usize = 1024;

/// How long a write waits for the broker to say where its room's partition ends.
const END_DEADLINE: Duration = Duration::from_secs(1);

/// Whether a write was decided with every earlier write applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synced {
    Yes,
    /// The broker did not say where the partition ends (see [`WriteModel::sync`]).
    Unknown,
}

/// Why a write could not be decided: the log did not say where it ends, or this chat-server's
/// tail is not there yet (the broker is out, or far behind).
#[derive(Debug, thiserror::Error)]
#[error("the write model cannot catch up with the event log: {0}")]
pub struct Behind(String);

impl From<Behind> for ApiError {
    fn from(e: Behind) -> Self {
        ApiError::unavailable("the event log", e)
    }
}

/// The facts, and how far into each partition they go.
pub struct WriteModel {
    facts: RwLock<Facts>,
    /// Per partition: the next offset to apply (every record before it is in `facts`).
    applied: Box<[watch::Sender<i64>]>,
    ends: ends::Ends,
    log: Arc<EventLog>,
    /// The longest a write waits for the tail to catch up before it is refused with 503.
    deadline: Duration,
}

/// The tail that keeps a [`WriteModel`] current; run it with [`WriteTail::run`].
pub struct WriteTail {
    tail: Tail,
    model: Arc<WriteModel>,
}

impl WriteModel {
    /// Loads the read model's snapshot (or nothing, if the database does not answer in time), reads
    /// the log from there up to its end as of now, and returns the model with the tail that keeps
    /// it current. `deadline`: how long a write may wait for the tail.
    pub async fn build(
        log: Arc<EventLog>,
        read_model: &ReadModel,
        window: usize,
        deadline: Duration,
    ) -> anyhow::Result<(Arc<Self>, WriteTail)> {
        let mut facts = Facts::new(window);
        let snapshot =
            tokio::time::timeout(SNAPSHOT_DEADLINE, read_model.write_snapshot(window as i64)).await;
        let positions: HashMap<i32, i64> = match snapshot {
            Ok(Ok(snapshot)) => {
                let positions = snapshot.positions.iter().copied().collect();
                facts.load(snapshot);
                positions
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "no snapshot of the read model; reading the whole log");
                HashMap::new()
            }
            Err(_) => {
                tracing::warn!(
                    "the read model did not answer within {SNAPSHOT_DEADLINE:?}; reading the whole log"
                );
                HashMap::new()
            }
        };
        let mut from = Vec::new();
        let mut ends = HashMap::new();
        for partition in 0..log.partitions() {
            let (low, high) = log.bounds(partition).await?;
            let start = positions.get(&partition).copied().unwrap_or(low).max(low);
            from.push((partition, start));
            if start < high {
                ends.insert(partition, high);
            }
        }
        let applied = from
            .iter()
            .map(|(_, start)| watch::Sender::new(*start))
            .collect();
        let model = Arc::new(Self {
            facts: RwLock::new(facts),
            applied,
            ends: ends::Ends::default(),
            log: log.clone(),
            deadline,
        });
        let mut tail = WriteTail {
            tail: log
                .tail(&from)
                .context("tailing the log for the write model")?,
            model: model.clone(),
        };
        let records: i64 = ends
            .iter()
            .map(|(partition, end)| end - from[*partition as usize].1)
            .sum();
        let started = std::time::Instant::now();
        tail.read_up_to(ends).await?;
        let (rooms, messages) = model.facts().sizes();
        tracing::info!(
            records,
            rooms,
            messages,
            duration_ms = started.elapsed().as_millis() as u64,
            "write model ready"
        );
        Ok((model, tail))
    }

    fn facts(&self) -> RwLockReadGuard<'_, Facts> {
        self.facts.read().expect("write model lock")
    }

    /// Reads the facts: call [`WriteModel::sync`] first for a decision.
    pub fn read<T>(&self, read: impl FnOnce(&Facts) -> T) -> T {
        read(&self.facts())
    }

    /// Waits until every event appended to `room`'s partition before this call is applied here.
    ///
    /// Degraded mode: when the broker does not say where the partition ends within
    /// [`END_DEADLINE`] (an outage, a leader election), the write is decided on what this
    /// chat-server has applied so far and left to the broker, which answers it (a 503 if it does
    /// not take the event). A moderation change acknowledged elsewhere in the moments before such
    /// an outage may then not hold for it. Returns whether the write is in sync.
    pub async fn sync(&self, room: Uuid) -> Result<Synced, Behind> {
        let partition = self.log.partition_of(room);
        let end = match tokio::time::timeout(END_DEADLINE, self.ends.end(&self.log, partition))
            .await
        {
            Ok(Ok(end)) => end,
            Ok(Err(error)) => {
                tracing::warn!(partition, %error, "deciding a write without the partition's end");
                return Ok(Synced::Unknown);
            }
            Err(_) => {
                tracing::warn!(
                    partition,
                    "the broker did not say where the partition ends within {END_DEADLINE:?}; \
                     deciding a write without it"
                );
                return Ok(Synced::Unknown);
            }
        };
        self.reached(partition, end).await?;
        Ok(Synced::Yes)
    }

    /// Waits until the event at `cursor` is applied here.
    pub async fn applied(&self, cursor: Cursor) -> Result<(), Behind> {
        self.reached(cursor.partition, cursor.offset + 1).await
    }

    async fn reached(&self, partition: i32, end: i64) -> Result<(), Behind> {
        let Some(applied) = usize::try_from(partition)
            .ok()
            .and_then(|p| self.applied.get(p))
        else {
            return Err(Behind(format!("no partition {partition}")));
        };
        let mut position = applied.subscribe();
        match tokio::time::timeout(self.deadline, position.wait_for(|next| *next >= end)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Behind("the tail stopped".into())),
            Err(_) => Err(Behind(format!(
                "partition {partition} is not applied up to {end} within {:?}",
                self.deadline
            ))),
        }
    }
}

impl WriteTail {
    /// Applies records until every partition in `ends` has reached its end.
    async fn read_up_to(&mut self, mut ends: HashMap<i32, i64>) -> anyhow::Result<()> {
        while !ends.is_empty() {
            let batch = self.tail.next_batch(MAX_BATCH).await?;
            for (partition, next) in self.model_apply(batch) {
                if ends.get(&partition).is_some_and(|end| next >= *end) {
                    ends.remove(&partition);
                }
            }
        }
        Ok(())
    }

    /// Applies `batch` under one lock, then moves the positions on (so a waiter that sees a
    /// position sees the facts before it). Returns the new positions.
    fn model_apply(&self, batch: Vec<shared::event_log::Record>) -> HashMap<i32, i64> {
        let mut positions = HashMap::new();
        {
            let mut facts = self.model.facts.write().expect("write model lock");
            for record in batch {
                if let Ok(event) = &record.event {
                    facts.apply(event);
                }
                positions.insert(record.cursor.partition, record.cursor.offset + 1);
            }
        }
        for (partition, next) in &positions {
            if let Some(applied) = usize::try_from(*partition)
                .ok()
                .and_then(|p| self.model.applied.get(p))
            {
                applied.send_if_modified(|current| {
                    let moved = *next > *current;
                    *current = (*current).max(*next);
                    moved
                });
            }
        }
        positions
    }

    /// Keeps applying the log until `shutdown`; a read error is retried (writes wait meanwhile,
    /// and are refused with 503 past their deadline).
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            let batch = tokio::select! {
                () = shutdown.cancelled() => break,
                batch = self.tail.next_batch(MAX_BATCH) => batch,
            };
            match batch {
                Ok(batch) => {
                    self.model_apply(batch);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the write model cannot read the event log");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
        }
    }
}
