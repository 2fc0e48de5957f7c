//! The embedded event log: what Kafka is in the distributed mode, in one SQLite file.
//!
//! Used when `KAFKA_BROKERS` is unset. It has one partition (0); offsets count up from 0 like a
//! Kafka partition's, and records hold the same key (the room id) and value (the JSON envelope), so
//! cursors and the read model behave exactly as with Kafka. One writer task appends: it takes every
//! request waiting, writes them in one transaction (group commit), and only then answers each caller
//! — so, as with `acks=all`, a 2xx means the event is on disk (`synchronous=FULL`).
//!
//! Readers never wait on the writer: the end of the log is a `watch` they sleep on, and the last
//! [`RECENT`] records stay in memory, so a tail that keeps up (the fan-out, the projector) reads no
//! file at all; one further behind reads the file. Consumer groups keep their committed positions in
//! the same file (`group_offsets`).

use std::{
    collections::VecDeque,
    path::Path,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use sqlx::{
    QueryBuilder, Row, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::sync::{mpsc, oneshot, watch};

use super::{AppendError, GROUP_WAIT, Record};
use crate::{cursor::Cursor, event::Envelope};

/// The only partition of the embedded log.
pub const PARTITION: i32 = 0;
/// Most appends written in one transaction.
const MAX_GROUP: usize = 256;
/// Records kept in memory for tails that keep up.
const RECENT: usize = 4096;

struct Append {
    key: String,
    value: Vec<u8>,
    event: Envelope,
    reply: oneshot::Sender<Result<Cursor, Arc<sqlx::Error>>>,
}

/// What the writer shares with readers.
struct Shared {
    pool: SqlitePool,
    /// Writes consumer groups' positions without waiting for the disk (`synchronous=NORMAL`): a
    /// position lost in a crash only replays records, which the projector recognises by event
    /// id, and the next append's sync makes it durable anyway. Saves a sync per projected batch.
    offsets: SqlitePool,
    /// The last [`RECENT`] records, oldest first, with their offsets.
    recent: Mutex<VecDeque<(i64, Envelope)>>,
}

pub struct EmbeddedLog {
    shared: Arc<Shared>,
    appends: mpsc::Sender<Append>,
    /// The offset the next record gets; readers wait on its changes.
    end: watch::Receiver<i64>,
}

impl EmbeddedLog {
    /// Opens (or creates) the log in `file` and starts its writer.
    pub async fn open(file: &Path) -> anyhow::Result<Self> {
        crate::private_files::file(file)
            .with_context(|| format!("creating {} (owner only)", file.display()))?;
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // A file does not go stale like a server connection: no ping before each use.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening the event log {}", file.display()))?;
        for statement in [
            "CREATE TABLE IF NOT EXISTS events (\
                 offset INTEGER PRIMARY KEY, key TEXT NOT NULL, value BLOB NOT NULL)",
            "CREATE TABLE IF NOT EXISTS group_offsets (\
                 group_id TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL, \
                 PRIMARY KEY (group_id, partition))",
        ] {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .context("creating the event log tables")?;
        }
        let end: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(offset) + 1, 0) FROM events")
            .fetch_one(&pool)
            .await
            .context("reading the end of the event log")?;
        let offsets = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await
            .with_context(|| format!("opening the event log {}", file.display()))?;
        let shared = Arc::new(Shared {
            pool,
            offsets,
            recent: Mutex::new(VecDeque::new()),
        });
        let (end_tx, end_rx) = watch::channel(end);
        let (appends, requests) = mpsc::channel(MAX_GROUP * 4);
        tokio::spawn(write(shared.clone(), requests, end_tx));
        Ok(Self {
            shared,
            appends,
            end: end_rx,
        })
    }

    /// Appends `event`; resolves once it is durably written.
    pub async fn append(&self, event: &Envelope) -> Result<Cursor, AppendError> {
        let (reply, answer) = oneshot::channel();
        let append = Append {
            key: event.key(),
            value: event.encode(),
            event: event.clone(),
            reply,
        };
        self.appends
            .send(append)
            .await
            .map_err(|_| AppendError::Closed)?;
        match answer.await {
            Ok(Ok(cursor)) => Ok(cursor),
            Ok(Err(e)) => Err(AppendError::Write(e.to_string())),
            Err(_) => Err(AppendError::Closed),
        }
    }

    /// The offset the next record will get.
    pub fn end(&self) -> i64 {
        *self.end.borrow()
    }

    /// A reader from `from`'s offset for partition 0 (other partitions do not exist here).
    pub fn tail(&self, from: &[(i32, i64)]) -> EmbeddedTail {
        let next = from
            .iter()
            .find(|(p, _)| *p == PARTITION)
            .map_or(0, |(_, offset)| (*offset).max(0));
        EmbeddedTail {
            shared: self.shared.clone(),
            end: self.end.clone(),
            next,
        }
    }

    /// The only member of `group` (one process owns the embedded log), from its committed position.
    pub async fn join_group(&self, group: &str) -> anyhow::Result<EmbeddedGroup> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT next_offset FROM group_offsets WHERE group_id = $1 AND partition = $2",
        )
        .bind(group)
        .bind(PARTITION)
        .fetch_optional(&self.shared.pool)
        .await
        .context("reading a group's committed position")?;
        Ok(EmbeddedGroup {
            tail: self.tail(&[(PARTITION, next.unwrap_or(0))]),
            group: group.to_owned(),
        })
    }

    /// Checks that the log's file answers (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.shared.pool).await?;
        Ok(())
    }
}

/// A reader of the embedded log.
pub struct EmbeddedTail {
    shared: Arc<Shared>,
    end: watch::Receiver<i64>,
    /// The next offset to return.
    next: i64,
}

impl EmbeddedTail {
    /// Waits until the log has a record at the next offset, then returns up to `max` records.
    pub async fn next_batch(&mut self, max: usize) -> anyhow::Result<Vec<Record>> {
        let max = max.max(1);
        loop {
            let end = *self.end.borrow_and_update();
            if self.next < end {
                let records = match self.shared.recent_from(self.next, max) {
                    Some(records) => records,
                    None => self.shared.read(self.next, max).await?,
                };
                if let Some(last) = records.last() {
                    self.next = last.cursor.offset + 1;
                }
                return Ok(records);
            }
            self.end
                .changed()
                .await
                .context("the embedded event log is closed")?;
        }
    }
}

/// The one member of a consumer group of the embedded log.
pub struct EmbeddedGroup {
    tail: EmbeddedTail,
    group: String,
}

impl EmbeddedGroup {
    /// As the Kafka group's fetches do, waits up to [`GROUP_WAIT`] after the first record for
    /// `max` of them: a group is off the live path, and a batch is one transaction for the
    /// projector, not one per event.
    pub async fn next_batch(&mut self, max: usize) -> anyhow::Result<Vec<Record>> {
        let wanted = self.tail.next + max.max(1) as i64;
        let mut end = self.tail.end.clone();
        end.wait_for(|end| *end > self.tail.next)
            .await
            .context("the embedded event log is closed")?;
        let _ = tokio::time::timeout(GROUP_WAIT, end.wait_for(|end| *end >= wanted)).await;
        self.tail.next_batch(max).await
    }

    /// Stores the group's positions; a failure is logged (the records are then read again).
    pub async fn commit(&self, positions: &[(i32, i64)]) {
        for (partition, next) in positions {
            let stored = sqlx::query(
                "INSERT INTO group_offsets (group_id, partition, next_offset) VALUES ($1, $2, $3) \
                 ON CONFLICT (group_id, partition) DO UPDATE SET next_offset = excluded.next_offset",
            )
            .bind(&self.group)
            .bind(partition)
            .bind(next)
            .execute(&self.tail.shared.offsets)
            .await;
            if let Err(e) = stored {
                tracing::warn!(group = %self.group, error = %e, "cannot commit a position; the records may be read again");
            }
        }
    }
}

impl Shared {
    /// Up to `max` records from `from` on, if memory still holds `from`.
    fn recent_from(&self, from: i64, max: usize) -> Option<Vec<Record>> {
        let recent = self.recent.lock().expect("recent records lock");
        let first = recent.front()?.0;
        if from < first {
            return None;
        }
        let skip = usize::try_from(from - first).ok()?;
        Some(
            recent
                .iter()
                .skip(skip)
                .take(max)
                .map(|(offset, event)| Record {
                    cursor: Cursor {
                        partition: PARTITION,
                        offset: *offset,
                    },
                    event: Ok(event.clone()),
                })
                .collect(),
        )
    }

    /// Up to `max` records from `from` on, read from the file.
    async fn read(&self, from: i64, max: usize) -> anyhow::Result<Vec<Record>> {
        let rows = sqlx::query(
            "SELECT offset, key, value FROM events WHERE offset >= $1 ORDER BY offset LIMIT $2",
        )
        .bind(from)
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await
        .context("reading the event log")?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let key: String = row.get(1);
                let value: Vec<u8> = row.get(2);
                Record {
                    cursor: Cursor {
                        partition: PARTITION,
                        offset: row.get(0),
                    },
                    event: Envelope::decode(Some(key.as_bytes()), Some(&value)),
                }
            })
            .collect())
    }
}

/// The writer: group-commits waiting appends, makes them visible to readers, then answers them.
async fn write(shared: Arc<Shared>, mut requests: mpsc::Receiver<Append>, end: watch::Sender<i64>) {
    while let Some(first) = requests.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let start = *end.borrow();
        match insert(&shared.pool, start, &group).await {
            Ok(()) => {
                {
                    let mut recent = shared.recent.lock().expect("recent records lock");
                    for (i, append) in group.iter().enumerate() {
                        recent.push_back((start + i as i64, append.event.clone()));
                    }
                    while recent.len() > RECENT {
                        recent.pop_front();
                    }
                }
                end.send_replace(start + group.len() as i64);
                for (i, append) in group.into_iter().enumerate() {
                    let cursor = Cursor {
                        partition: PARTITION,
                        offset: start + i as i64,
                    };
                    let _ = append.reply.send(Ok(cursor));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event log write failed");
                let e = Arc::new(e);
                for append in group {
                    let _ = append.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Writes `group` from offset `start` in one statement: SQLite commits it atomically, and each
/// statement is a round trip to the connection's thread, so a group costs one whatever its size.
async fn insert(pool: &SqlitePool, start: i64, group: &[Append]) -> Result<(), sqlx::Error> {
    let mut insert = QueryBuilder::new("INSERT INTO events (offset, key, value) ");
    insert.push_values(group.iter().enumerate(), |mut row, (i, append)| {
        row.push_bind(start + i as i64)
            .push_bind(&append.key)
            .push_bind(&append.value);
    });
    insert.build().execute(pool).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventBody, User};
    use uuid::Uuid;

    fn temp_file() -> std::path::PathBuf {
        std::env::temp_dir()
            .join(format!("hotchat-log-test-{}", Uuid::now_v7()))
            .join("events.db")
    }

    fn message(room: Uuid, text: &str) -> Envelope {
        let user = User {
            id: Uuid::now_v7(),
            name: "u".into(),
        };
        Envelope::new(
            room,
            user,
            EventBody::MessagePosted {
                message_id: Uuid::now_v7(),
                text: text.into(),
            },
        )
    }

    fn texts(records: &[Record]) -> Vec<String> {
        records
            .iter()
            .map(|r| match &r.event {
                Ok(Envelope {
                    body: EventBody::MessagePosted { text, .. },
                    ..
                }) => text.clone(),
                other => panic!("not a message: {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn appends_get_consecutive_offsets_and_a_tail_reads_them_in_order() {
        let file = temp_file();
        let log = EmbeddedLog::open(&file).await.unwrap();
        let room = Uuid::now_v7();
        let mut tail = log.tail(&[(PARTITION, 0)]);
        for (i, text) in ["a", "b", "c"].into_iter().enumerate() {
            let cursor = log.append(&message(room, text)).await.unwrap();
            assert_eq!(
                cursor,
                Cursor {
                    partition: 0,
                    offset: i as i64
                }
            );
        }
        assert_eq!(log.end(), 3);
        let mut read = Vec::new();
        while read.len() < 3 {
            read.extend(tail.next_batch(2).await.unwrap());
        }
        assert_eq!(texts(&read), ["a", "b", "c"]);
        let offsets: Vec<i64> = read.iter().map(|r| r.cursor.offset).collect();
        assert_eq!(offsets, [0, 1, 2]);
    }

    #[tokio::test]
    async fn a_tail_waits_for_the_next_append() {
        let log = EmbeddedLog::open(&temp_file()).await.unwrap();
        let mut tail = log.tail(&[(PARTITION, 0)]);
        let waiting = tokio::spawn(async move { tail.next_batch(10).await.unwrap() });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "nothing to read yet");
        log.append(&message(Uuid::now_v7(), "late")).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the tail wakes up")
            .unwrap();
        assert_eq!(texts(&read), ["late"]);
    }

    #[tokio::test]
    async fn records_survive_a_reopen_and_are_read_from_the_file() {
        let file = temp_file();
        let room = Uuid::now_v7();
        {
            let log = EmbeddedLog::open(&file).await.unwrap();
            for text in ["x", "y"] {
                log.append(&message(room, text)).await.unwrap();
            }
        }
        let log = EmbeddedLog::open(&file).await.unwrap();
        assert_eq!(log.end(), 2);
        // Nothing in memory after a reopen: this reads the file.
        let mut tail = log.tail(&[(PARTITION, 1)]);
        assert_eq!(texts(&tail.next_batch(10).await.unwrap()), ["y"]);
        let cursor = log.append(&message(room, "z")).await.unwrap();
        assert_eq!(cursor.offset, 2);
        assert_eq!(texts(&tail.next_batch(10).await.unwrap()), ["z"]);
    }

    #[tokio::test]
    async fn a_group_resumes_from_its_last_commit() {
        let file = temp_file();
        let log = EmbeddedLog::open(&file).await.unwrap();
        let room = Uuid::now_v7();
        for text in ["1", "2", "3"] {
            log.append(&message(room, text)).await.unwrap();
        }
        let mut group = log.join_group("g").await.unwrap();
        assert_eq!(texts(&group.next_batch(2).await.unwrap()), ["1", "2"]);
        group.commit(&[(PARTITION, 2)]).await;
        drop(group);
        let mut again = log.join_group("g").await.unwrap();
        assert_eq!(texts(&again.next_batch(10).await.unwrap()), ["3"]);
        let mut other = log.join_group("another").await.unwrap();
        assert_eq!(
            texts(&other.next_batch(10).await.unwrap()),
            ["1", "2", "3"],
            "a new group starts at the beginning"
        );
    }

    #[tokio::test]
    async fn a_tail_far_behind_reads_the_file_beyond_what_memory_holds() {
        let log = EmbeddedLog::open(&temp_file()).await.unwrap();
        let room = Uuid::now_v7();
        let total = RECENT + 10;
        // Concurrent appends share transactions (group commit), so this takes a few fsyncs.
        let appends = (0..total).map(|i| {
            let event = message(room, &i.to_string());
            let log = &log;
            async move { (log.append(&event).await.unwrap().offset, i.to_string()) }
        });
        let mut written = futures::future::join_all(appends).await;
        written.sort();
        let mut tail = log.tail(&[(PARTITION, 0)]);
        let mut read = Vec::new();
        while read.len() < total {
            read.extend(tail.next_batch(1000).await.unwrap());
        }
        let read: Vec<(i64, String)> = read
            .iter()
            .map(|r| r.cursor.offset)
            .zip(texts(&read))
            .collect();
        assert_eq!(read, written);
        assert_eq!(
            read.last().map(|(offset, _)| *offset),
            Some(total as i64 - 1)
        );
    }
}
