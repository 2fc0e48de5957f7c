//! The embedded event log: what Kafka is in the distributed mode, in one SQLite file.
//!
//! Used when `KAFKA_BROKERS` is unset. It has one partition (0); offsets count up from 0 like a
//! Kafka partition's, and records hold the same key (the room id) and value (the JSON envelope), so
//! cursors and the read model behave exactly as with Kafka. One writer task appends: it takes every
//! request waiting, writes them in one transaction (group commit), and only then answers each caller
//! — so, as with `acks=all`, a 2xx means the event is on disk (`synchronous=FULL`). Appended records
//! then go, in offset order, to the one consumer of [`LocalLog::take_feed`].

use std::{
    path::Path,
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use sqlx::{
    Row, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    cursor::Cursor,
    event::{DecodeError, Envelope},
};

/// The only partition of the embedded log.
pub const PARTITION: i32 = 0;
/// Most appends written in one transaction.
const MAX_GROUP: usize = 256;
/// Appended records waiting for the consumer; a full feed holds appends back.
const FEED_CAPACITY: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LocalLogError {
    #[error("the event log could not be written: {0}")]
    Write(String),
    #[error("the event log is shut down")]
    Closed,
}

struct Append {
    key: String,
    value: Vec<u8>,
    event: Envelope,
    reply: oneshot::Sender<Result<Cursor, Arc<sqlx::Error>>>,
}

pub struct LocalLog {
    pool: SqlitePool,
    appends: mpsc::Sender<Append>,
    feed: Mutex<Option<mpsc::Receiver<(Cursor, Envelope)>>>,
    /// The offset the next record gets.
    end: Arc<AtomicI64>,
}

impl LocalLog {
    /// Opens (or creates) the log in `file` and starts its writer.
    pub async fn open(file: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the data folder {}", dir.display()))?;
        }
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", file.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the event log {}", file.display()))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS events (\
                 offset INTEGER PRIMARY KEY, \
                 key TEXT NOT NULL, \
                 value BLOB NOT NULL)",
        )
        .execute(&pool)
        .await
        .context("creating the event log table")?;
        let end: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(offset) + 1, 0) FROM events")
            .fetch_one(&pool)
            .await
            .context("reading the end of the event log")?;
        let end = Arc::new(AtomicI64::new(end));
        let (appends, requests) = mpsc::channel(MAX_GROUP * 4);
        let (feed_tx, feed_rx) = mpsc::channel(FEED_CAPACITY);
        tokio::spawn(write(pool.clone(), requests, feed_tx, end.clone()));
        Ok(Self {
            pool,
            appends,
            feed: Mutex::new(Some(feed_rx)),
            end,
        })
    }

    /// Appends `event`; resolves once it is durably written.
    pub async fn append(&self, event: &Envelope) -> Result<Cursor, LocalLogError> {
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
            .map_err(|_| LocalLogError::Closed)?;
        match answer.await {
            Ok(Ok(cursor)) => Ok(cursor),
            Ok(Err(e)) => Err(LocalLogError::Write(e.to_string())),
            Err(_) => Err(LocalLogError::Closed),
        }
    }

    /// The records appended from now on, in order. There is one feed; the second call gets `None`.
    pub fn take_feed(&self) -> Option<mpsc::Receiver<(Cursor, Envelope)>> {
        self.feed.lock().expect("feed lock").take()
    }

    /// The offset the next record will get.
    pub fn end(&self) -> i64 {
        self.end.load(Ordering::Acquire)
    }

    /// Up to `limit` records from offset `from` on; a record that is not a hotchat event comes back
    /// as its decode error.
    pub async fn read(
        &self,
        from: i64,
        limit: i64,
    ) -> anyhow::Result<Vec<(Cursor, Result<Envelope, DecodeError>)>> {
        let rows = sqlx::query(
            "SELECT offset, key, value FROM events WHERE offset >= $1 ORDER BY offset LIMIT $2",
        )
        .bind(from)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("reading the event log")?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let cursor = Cursor {
                    partition: PARTITION,
                    offset: row.get(0),
                };
                let key: String = row.get(1);
                let value: Vec<u8> = row.get(2);
                (cursor, Envelope::decode(Some(key.as_bytes()), Some(&value)))
            })
            .collect())
    }

    /// Checks that the log's file answers (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// The writer: group-commits waiting appends, answers them, then feeds them on in order.
async fn write(
    pool: SqlitePool,
    mut requests: mpsc::Receiver<Append>,
    feed: mpsc::Sender<(Cursor, Envelope)>,
    end: Arc<AtomicI64>,
) {
    while let Some(first) = requests.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let start = end.load(Ordering::Acquire);
        match insert(&pool, start, &group).await {
            Ok(()) => {
                end.store(start + group.len() as i64, Ordering::Release);
                for (i, append) in group.into_iter().enumerate() {
                    let cursor = Cursor {
                        partition: PARTITION,
                        offset: start + i as i64,
                    };
                    let _ = append.reply.send(Ok(cursor));
                    if feed.send((cursor, append.event)).await.is_err() {
                        tracing::debug!("event log feed closed");
                    }
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

async fn insert(pool: &SqlitePool, start: i64, group: &[Append]) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (i, append) in group.iter().enumerate() {
        sqlx::query("INSERT INTO events (offset, key, value) VALUES ($1, $2, $3)")
            .bind(start + i as i64)
            .bind(&append.key)
            .bind(&append.value)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
