//! The read model: what the fetch API reads and the projector writes.
//!
//! It is a projection of the event log, never the source of truth: every write is an event applied at
//! most once (keyed by event id, in the same transaction as its effect), so a redelivery, a replay
//! after a crash or a full rebuild from offset zero all end in the same rows.
//!
//! Two engines hold it: PostgreSQL (`DATABASE_URL=postgres://…`, the distributed mode) and SQLite (a
//! file under the data directory, the embedded default). The SQL is the same text for both; each query
//! is written once and run on whichever pool this is ([`on_pool!`]).

use std::{collections::BTreeMap, path::Path, str::FromStr, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{
    PgPool, QueryBuilder, SqlitePool,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use uuid::Uuid;

use crate::{
    cursor::Cursor,
    event::{Envelope, EventBody, RoomMode, User},
    settings::{DEFAULT_POSTGRES_POOL, DEFAULT_SQLITE_POOL, DatabaseSettings},
};

/// The PostgreSQL schema, applied by whichever server starts first (sqlx serialises concurrent runs
/// with an advisory lock).
pub static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");
/// The same schema for SQLite.
pub static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// The most messages one fetch may return.
pub const MAX_PAGE: i64 = 200;

/// A room as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Room {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// The room's creator: appoints moderators, and nobody can act on them.
    pub owner: User,
    /// Each user may post once per this many seconds (moderators exempt); 0 is off.
    pub slow_mode_secs: u32,
}

#[derive(sqlx::FromRow)]
struct RoomRow {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
    created_by: Uuid,
    owner_name: String,
    slow_mode_secs: i64,
}

impl From<RoomRow> for Room {
    fn from(r: RoomRow) -> Self {
        Room {
            id: r.id,
            name: r.name,
            created_at: r.created_at,
            owner: User {
                id: r.created_by,
                name: r.owner_name,
            },
            slow_mode_secs: u32::try_from(r.slow_mode_secs).unwrap_or(0),
        }
    }
}

const ROOM_COLUMNS: &str = "id, name, created_at, created_by, owner_name, \
                            CAST(slow_mode_secs AS BIGINT) AS slow_mode_secs";

/// What the write side needs to know about one user in one room to admit a write.
#[derive(Debug, Clone, PartialEq)]
pub struct Standing {
    pub owner: Uuid,
    pub moderator: bool,
    /// The user's ban in this room, if there is one (it may have expired: see [`Ban::active`]).
    pub ban: Option<Ban>,
    pub slow_mode_secs: u32,
}

/// A user banned from writing in a room.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Ban {
    pub user_id: Uuid,
    /// When the ban ends; `null`: until lifted.
    pub until: Option<DateTime<Utc>>,
    pub reason: String,
    /// Who banned them.
    pub by: User,
    pub at: DateTime<Utc>,
}

impl Ban {
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

#[derive(sqlx::FromRow)]
struct BanRow {
    user_id: Uuid,
    until: Option<DateTime<Utc>>,
    reason: String,
    by_id: Uuid,
    by_name: String,
    at: DateTime<Utc>,
}

impl From<BanRow> for Ban {
    fn from(b: BanRow) -> Self {
        Ban {
            user_id: b.user_id,
            until: b.until,
            reason: b.reason,
            by: User {
                id: b.by_id,
                name: b.by_name,
            },
            at: b.at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct RoomBanRow {
    room_id: Uuid,
    #[sqlx(flatten)]
    ban: BanRow,
}

#[derive(sqlx::FromRow)]
struct RecentRow {
    id: Uuid,
    room_id: Uuid,
    user_id: Uuid,
    at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

/// A moderator of a room.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Moderator {
    pub user_id: Uuid,
    pub since: DateTime<Utc>,
}

/// A message's author and time, and whether it was deleted: what an edit or a delete checks.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageFacts {
    pub author: Uuid,
    pub at: DateTime<Utc>,
    pub deleted: bool,
}

/// A message as the write side remembers it: enough to check a reaction, an edit or a delete.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecentMessage {
    pub id: Uuid,
    pub room_id: Uuid,
    pub author: Uuid,
    pub at: DateTime<Utc>,
    pub deleted: bool,
}

/// The read model's rows the write side starts from ([`ReadModel::write_snapshot`]).
#[derive(Debug, Default)]
pub struct WriteSnapshot {
    pub rooms: Vec<Room>,
    pub moderators: Vec<(Uuid, Moderator)>,
    pub bans: Vec<(Uuid, Ban)>,
    /// The newest messages, oldest first.
    pub messages: Vec<RecentMessage>,
    /// (partition, next offset): every record before it is in the rows above.
    pub positions: Vec<(i32, i64)>,
}

/// A message as the API and the SSE stream show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Message {
    pub id: Uuid,
    pub room_id: Uuid,
    pub user: User,
    pub text: String,
    pub at: DateTime<Utc>,
    /// When the author last changed the text; absent if they never did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<DateTime<Utc>>,
    /// Emoji → number of users who reacted with it; emojis nobody uses are left out.
    pub reactions: BTreeMap<String, i64>,
}

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: Uuid,
    room_id: Uuid,
    user_id: Uuid,
    user_name: String,
    text: String,
    at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
}

/// Errors of the read model. `Unavailable` is the database being down or overloaded.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    #[error("message {0} is not in this room")]
    UnknownCursor(Uuid),
    #[error("read model unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
}

/// Handle on the read model; cheap to clone.
#[derive(Debug, Clone)]
pub enum ReadModel {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same code on whichever pool `$model` holds, binding it to `$pool`.
macro_rules! on_pool {
    ($model:expr, |$pool:ident| $body:expr) => {
        match $model {
            ReadModel::Postgres($pool) => $body,
            ReadModel::Sqlite($pool) => $body,
        }
    };
}

/// Applies one event on `$conn` unless its id was applied before; evaluates to whether it was new.
/// A macro rather than a function so the same statements run on either engine's connection.
macro_rules! apply_event {
    ($conn:expr, $cursor:expr, $event:expr) => {{
        let conn = $conn;
        let cursor: Cursor = $cursor;
        let event: &Envelope = $event;
        let first_time = sqlx::query("INSERT INTO applied_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(event.event_id)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1;
        if first_time {
            match &event.body {
                EventBody::RoomCreated { name } => {
                    sqlx::query(
                        "INSERT INTO rooms (id, name, created_by, owner_name, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(event.room_id)
                    .bind(name)
                    .bind(event.user.id)
                    .bind(&event.user.name)
                    .bind(event.at)
                    .execute(&mut *conn)
                    .await?;
                }
                EventBody::MessagePosted { message_id, text } => {
                    sqlx::query(
                        "INSERT INTO messages (id, room_id, user_id, user_name, text, at, seq) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(message_id)
                    .bind(event.room_id)
                    .bind(event.user.id)
                    .bind(&event.user.name)
                    .bind(text)
                    .bind(event.at)
                    .bind(cursor.offset)
                    .execute(&mut *conn)
                    .await?;
                }
                EventBody::ReactionAdded { message_id, emoji } => {
                    // A reaction that raced the message's deletion is dropped with it.
                    sqlx::query(
                        "INSERT INTO reactions (message_id, emoji, user_id) SELECT $1, $2, $3 \
                         WHERE EXISTS (SELECT 1 FROM messages WHERE id = $1 AND deleted_at IS NULL) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(message_id)
                    .bind(emoji)
                    .bind(event.user.id)
                    .execute(&mut *conn)
                    .await?;
                }
                EventBody::ReactionRemoved { message_id, emoji } => {
                    sqlx::query(
                        "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
                    )
                    .bind(message_id)
                    .bind(emoji)
                    .bind(event.user.id)
                    .execute(&mut *conn)
                    .await?;
                }
                EventBody::RoomModeChanged {
                    mode,
                    fetch_interval_ms,
                    ..
                } => {
                    sqlx::query("UPDATE rooms SET mode = $2, fetch_interval_ms = $3 WHERE id = $1")
                        .bind(event.room_id)
                        .bind(mode.as_str())
                        .bind(i64::from(*fetch_interval_ms))
                        .execute(&mut *conn)
                        .await?;
                }
                EventBody::MessageEdited { message_id, text, .. } => {
                    sqlx::query(
                        "UPDATE messages SET text = $3, edited_at = $4 \
                         WHERE id = $1 AND room_id = $2 AND deleted_at IS NULL",
                    )
                    .bind(message_id)
                    .bind(event.room_id)
                    .bind(text)
                    .bind(event.at)
                    .execute(&mut *conn)
                    .await?;
                }
                EventBody::MessageDeleted { message_id } => {
                    let deleted = sqlx::query(
                        "UPDATE messages SET deleted_at = $3 \
                         WHERE id = $1 AND room_id = $2 AND deleted_at IS NULL",
                    )
                    .bind(message_id)
                    .bind(event.room_id)
                    .bind(event.at)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if deleted > 0 {
                        sqlx::query("DELETE FROM reactions WHERE message_id = $1")
                            .bind(message_id)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                EventBody::RoomUpdated { slow_mode_secs, .. } => {
                    sqlx::query("UPDATE rooms SET slow_mode_secs = $2 WHERE id = $1")
                        .bind(event.room_id)
                        .bind(i64::from(*slow_mode_secs))
                        .execute(&mut *conn)
                        .await?;
                }
                EventBody::ModeratorAdded { user_id } => {
                    sqlx::query(
                        "INSERT INTO moderators (room_id, user_id, since) VALUES ($1, $2, $3) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(event.room_id)
                    .bind(user_id)
                    .bind(event.at)
                    .execute(&mut *conn)
                    .await?;
                }
                EventBody::ModeratorRemoved { user_id } => {
                    sqlx::query("DELETE FROM moderators WHERE room_id = $1 AND user_id = $2")
                        .bind(event.room_id)
                        .bind(user_id)
                        .execute(&mut *conn)
                        .await?;
                }
                EventBody::UserBanned { user_id, until, reason } => {
                    sqlx::query(
                        "INSERT INTO bans (room_id, user_id, until, reason, by_id, by_name, at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (room_id, user_id) \
                         DO UPDATE SET until = excluded.until, reason = excluded.reason, \
                         by_id = excluded.by_id, by_name = excluded.by_name, at = excluded.at",
                    )
                    .bind(event.room_id)
                    .bind(user_id)
                    .bind(until)
                    .bind(reason)
                    .bind(event.user.id)
                    .bind(&event.user.name)
                    .bind(event.at)
                    .execute(&mut *conn)
                    .await?;
                }
                EventBody::UserUnbanned { user_id } => {
                    sqlx::query("DELETE FROM bans WHERE room_id = $1 AND user_id = $2")
                        .bind(event.room_id)
                        .bind(user_id)
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
        first_time
    }};
}

impl ReadModel {
    /// Opens the read model `database` names: the database at its URL, else the SQLite file
    /// `hotchat.db` in `data_dir` (the embedded default). Creates and migrates it if needed.
    ///
    /// The pool has `database.max_connections` connections (default [`DEFAULT_POSTGRES_POOL`] or
    /// [`DEFAULT_SQLITE_POOL`]); a request waits at most `database.acquire_timeout` for one, then
    /// fails fast.
    pub async fn open(database: &DatabaseSettings, data_dir: &Path) -> anyhow::Result<Self> {
        match &database.url {
            Some(url) => Self::connect_with(url, database).await,
            None => Self::open_file_with(&data_dir.join("hotchat.db"), database).await,
        }
    }

    /// As [`ReadModel::open`], but a PostgreSQL that does not answer is not fatal: the pool then
    /// connects when it is first used (and the schema is left to whichever server migrates it
    /// first). For a server that can work without the read model for a while, as chat-server's
    /// writes do.
    pub async fn open_or_later(
        database: &DatabaseSettings,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        let Some(url) = database
            .url
            .as_deref()
            .filter(|url| !url.starts_with("sqlite:"))
        else {
            return Self::open(database, data_dir).await;
        };
        let wait = database.acquire_timeout.max(Duration::from_secs(1));
        match tokio::time::timeout(wait * 2, Self::connect_with(url, database)).await {
            Ok(Ok(model)) => Ok(model),
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => format!("{e:#}"),
                    _ => format!("no answer within {:?}", wait * 2),
                };
                tracing::warn!(%error, "the read model is not reachable; starting without it");
                let options =
                    PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid URL")?;
                let pool = PgPoolOptions::new()
                    .max_connections(database.max_connections.unwrap_or(DEFAULT_POSTGRES_POOL))
                    .acquire_timeout(database.acquire_timeout)
                    .connect_lazy_with(options);
                Ok(Self::Postgres(pool))
            }
        }
    }

    /// Connects to a `postgres://` or `sqlite://` URL with the default pool, creating the database
    /// if it does not exist yet, and migrates it.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, &DatabaseSettings::default()).await
    }

    /// The SQLite read model in `file` (created with its folder if missing), default pool.
    pub async fn open_file(file: &Path) -> anyhow::Result<Self> {
        Self::open_file_with(file, &DatabaseSettings::default()).await
    }

    async fn connect_with(url: &str, database: &DatabaseSettings) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            return Self::connect_sqlite(url, database).await;
        }
        let options = PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid URL")?;
        if !sqlx::Postgres::database_exists(url).await.unwrap_or(true)
            && let Err(e) = sqlx::Postgres::create_database(url).await
            // Another server may have created it at the same moment.
            && !sqlx::Postgres::database_exists(url).await.unwrap_or(false)
        {
            return Err(e).context("creating the database");
        }
        let pool = PgPoolOptions::new()
            .max_connections(database.max_connections.unwrap_or(DEFAULT_POSTGRES_POOL))
            .acquire_timeout(database.acquire_timeout)
            .connect_with(options)
            .await
            .context("connecting to PostgreSQL")?;
        POSTGRES_MIGRATOR
            .run(&pool)
            .await
            .context("migrating the read model")?;
        Ok(Self::Postgres(pool))
    }

    async fn open_file_with(file: &Path, database: &DatabaseSettings) -> anyhow::Result<Self> {
        crate::private_files::file(file)
            .with_context(|| format!("creating {} (owner only)", file.display()))?;
        Self::connect_sqlite(&format!("sqlite://{}", file.display()), database).await
    }

    async fn connect_sqlite(url: &str, database: &DatabaseSettings) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .context("not a valid sqlite:// URL")?
            .create_if_missing(true)
            // WAL lets the fetch API read while the projector writes; FULL makes a commit durable.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(database.max_connections.unwrap_or(DEFAULT_SQLITE_POOL))
            // A file does not go stale like a server connection: no ping before each use.
            .test_before_acquire(false)
            .acquire_timeout(database.acquire_timeout)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the SQLite read model {url}"))?;
        SQLITE_MIGRATOR
            .run(&pool)
            .await
            .context("migrating the read model")?;
        Ok(Self::Sqlite(pool))
    }

    /// Checks that the database answers (readiness).
    pub async fn ping(&self) -> Result<(), ReadModelError> {
        on_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Applies events in one transaction, skipping those already applied, and records in the same
    /// transaction that every record before `positions` (partition, next offset) is projected.
    /// Returns how many events were new.
    pub async fn apply_batch(
        &self,
        events: &[(Cursor, Envelope)],
        positions: &[(i32, i64)],
    ) -> Result<usize, ReadModelError> {
        let applied = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut applied = 0;
            for (cursor, event) in events {
                if apply_event!(&mut *tx, *cursor, event) {
                    applied += 1;
                }
            }
            for (partition, next) in positions {
                // Never backwards: after a rebalance the previous owner may still finish a batch.
                sqlx::query(
                    "INSERT INTO projected_positions (partition, next_offset) VALUES ($1, $2) \
                     ON CONFLICT (partition) DO UPDATE SET next_offset = excluded.next_offset \
                     WHERE excluded.next_offset > projected_positions.next_offset",
                )
                .bind(partition)
                .bind(next)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            applied
        });
        Ok(applied)
    }

    /// Every (emoji, user) reaction on `message`, and the position up to which `partition` was
    /// projected when they were read (one statement, so one snapshot): the reactions are exactly
    /// those of the log's records before that offset. `None` when nothing of the partition was
    /// projected yet.
    pub async fn reactions_as_of(
        &self,
        message: Uuid,
        partition: i32,
    ) -> Result<Option<(i64, Vec<(String, Uuid)>)>, ReadModelError> {
        let rows: Vec<(i64, Option<String>, Option<Uuid>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT p.next_offset, r.emoji, r.user_id \
                 FROM projected_positions p LEFT JOIN reactions r ON r.message_id = $1 \
                 WHERE p.partition = $2",
            )
            .bind(message)
            .bind(partition)
            .fetch_all(pool)
            .await?
        });
        let Some((next, _, _)) = rows.first() else {
            return Ok(None);
        };
        let next = *next;
        let reactions = rows
            .into_iter()
            .filter_map(|(_, emoji, user)| emoji.zip(user))
            .collect();
        Ok(Some((next, reactions)))
    }

    pub async fn room(&self, id: Uuid) -> Result<Option<Room>, ReadModelError> {
        let sql = format!("SELECT {ROOM_COLUMNS} FROM rooms WHERE id = $1");
        let row: Option<RoomRow> = on_pool!(self, |pool| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(Room::from))
    }

    /// How far `partition` has been projected: every record before this offset is in the tables.
    pub async fn projected(&self, partition: i32) -> Result<Option<i64>, ReadModelError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT next_offset FROM projected_positions WHERE partition = $1")
                .bind(partition)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// `user`'s role, ban and the slow mode in `room` (one statement), or `None` if there is no
    /// such room.
    pub async fn standing(
        &self,
        room: Uuid,
        user: Uuid,
    ) -> Result<Option<Standing>, ReadModelError> {
        type Row = (
            Uuid,
            i64,
            bool,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            Option<String>,
            Option<Uuid>,
            Option<String>,
        );
        let row: Option<Row> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT r.created_by, CAST(r.slow_mode_secs AS BIGINT), \
                 EXISTS (SELECT 1 FROM moderators m WHERE m.room_id = r.id AND m.user_id = $2), \
                 b.at, b.until, b.reason, b.by_id, b.by_name \
                 FROM rooms r LEFT JOIN bans b ON b.room_id = r.id AND b.user_id = $2 \
                 WHERE r.id = $1",
            )
            .bind(room)
            .bind(user)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(
            |(owner, slow, moderator, at, until, reason, by_id, by_name)| Standing {
                owner,
                moderator,
                slow_mode_secs: u32::try_from(slow).unwrap_or(0),
                ban: at.map(|at| Ban {
                    user_id: user,
                    until,
                    reason: reason.unwrap_or_default(),
                    by: User {
                        id: by_id.unwrap_or_default(),
                        name: by_name.unwrap_or_default(),
                    },
                    at,
                }),
            },
        ))
    }

    /// The author and time of `message` in `room`, and whether it was deleted.
    pub async fn message_facts(
        &self,
        room: Uuid,
        message: Uuid,
    ) -> Result<Option<MessageFacts>, ReadModelError> {
        let row: Option<(Uuid, DateTime<Utc>, Option<DateTime<Utc>>)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT user_id, at, deleted_at FROM messages WHERE id = $1 AND room_id = $2",
            )
            .bind(message)
            .bind(room)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(author, at, deleted_at)| MessageFacts {
            author,
            at,
            deleted: deleted_at.is_some(),
        }))
    }

    /// What the write side needs to decide writes, as of one moment: every room, moderator and ban,
    /// the newest `messages` messages, and the position of each partition the rows reflect (read in
    /// one transaction, so rows and positions agree). A reader that applies the log from those
    /// positions on has exactly what a reader of the whole log has.
    pub async fn write_snapshot(&self, messages: i64) -> Result<WriteSnapshot, ReadModelError> {
        let room_sql = format!("SELECT {ROOM_COLUMNS} FROM rooms");
        let snapshot = on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let isolation = match self {
                // One snapshot for every statement below (the default gives each its own).
                ReadModel::Postgres(_) => "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                // SQLite's read transaction is one snapshot already (WAL).
                ReadModel::Sqlite(_) => "SELECT 1",
            };
            sqlx::query(isolation).execute(&mut *tx).await?;
            let positions: Vec<(i32, i64)> =
                sqlx::query_as("SELECT partition, next_offset FROM projected_positions")
                    .fetch_all(&mut *tx)
                    .await?;
            let rooms: Vec<RoomRow> = sqlx::query_as(&room_sql).fetch_all(&mut *tx).await?;
            let moderators: Vec<(Uuid, Uuid, DateTime<Utc>)> =
                sqlx::query_as("SELECT room_id, user_id, since FROM moderators")
                    .fetch_all(&mut *tx)
                    .await?;
            let bans: Vec<RoomBanRow> = sqlx::query_as(
                "SELECT room_id, user_id, until, reason, by_id, by_name, at FROM bans",
            )
            .fetch_all(&mut *tx)
            .await?;
            let recent: Vec<RecentRow> = sqlx::query_as(
                "SELECT id, room_id, user_id, at, deleted_at FROM messages \
                     ORDER BY at DESC LIMIT $1",
            )
            .bind(messages)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            WriteSnapshot {
                rooms: rooms.into_iter().map(Room::from).collect(),
                moderators: moderators
                    .into_iter()
                    .map(|(room, user_id, since)| (room, Moderator { user_id, since }))
                    .collect(),
                bans: bans
                    .into_iter()
                    .map(|row| (row.room_id, Ban::from(row.ban)))
                    .collect(),
                messages: recent
                    .into_iter()
                    .rev()
                    .map(|row| RecentMessage {
                        id: row.id,
                        room_id: row.room_id,
                        author: row.user_id,
                        at: row.at,
                        deleted: row.deleted_at.is_some(),
                    })
                    .collect(),
                positions,
            }
        });
        Ok(snapshot)
    }

    /// The room's moderators, longest-serving first.
    pub async fn moderators(&self, room: Uuid) -> Result<Vec<Moderator>, ReadModelError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT user_id, since FROM moderators WHERE room_id = $1 ORDER BY since, user_id",
            )
            .bind(room)
            .fetch_all(pool)
            .await?
        }))
    }

    /// The room's bans that are still in force at `now`, newest first.
    pub async fn bans(&self, room: Uuid, now: DateTime<Utc>) -> Result<Vec<Ban>, ReadModelError> {
        let rows: Vec<BanRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT user_id, until, reason, by_id, by_name, at FROM bans \
                 WHERE room_id = $1 ORDER BY at DESC, user_id",
            )
            .bind(room)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(Ban::from)
            .filter(|ban| ban.active(now))
            .collect())
    }

    /// The room's mode and fetch interval (ms) as last announced in the log, if the room exists.
    pub async fn room_mode(&self, id: Uuid) -> Result<Option<(RoomMode, u32)>, ReadModelError> {
        let row: Option<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT mode, CAST(fetch_interval_ms AS BIGINT) FROM rooms WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.map(|(m, interval)| {
            let mode = if m == RoomMode::Throttled.as_str() {
                RoomMode::Throttled
            } else {
                RoomMode::Normal
            };
            (mode, u32::try_from(interval).unwrap_or(0))
        }))
    }

    /// Up to `limit` messages of `room` before the message `before` (or the newest), oldest first.
    pub async fn messages(
        &self,
        room: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Message>, ReadModelError> {
        let before_seq: i64 = match before {
            None => i64::MAX,
            Some(id) => on_pool!(self, |pool| {
                sqlx::query_scalar("SELECT seq FROM messages WHERE id = $1 AND room_id = $2")
                    .bind(id)
                    .bind(room)
                    .fetch_optional(pool)
                    .await?
            })
            .ok_or(ReadModelError::UnknownCursor(id))?,
        };
        let mut rows: Vec<MessageRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, room_id, user_id, user_name, text, at, edited_at FROM messages \
                 WHERE room_id = $1 AND seq < $2 AND deleted_at IS NULL \
                 ORDER BY seq DESC LIMIT $3",
            )
            .bind(room)
            .bind(before_seq)
            .bind(limit.clamp(1, MAX_PAGE))
            .fetch_all(pool)
            .await?
        });
        rows.reverse();
        let mut by_message: BTreeMap<Uuid, BTreeMap<String, i64>> = BTreeMap::new();
        if !rows.is_empty() {
            let counts: Vec<(Uuid, String, i64)> = on_pool!(self, |pool| {
                let mut query = QueryBuilder::new(
                    "SELECT message_id, emoji, count(*) FROM reactions WHERE message_id IN (",
                );
                let mut ids = query.separated(", ");
                for row in &rows {
                    ids.push_bind(row.id);
                }
                query.push(") GROUP BY message_id, emoji");
                query.build_query_as().fetch_all(pool).await?
            });
            for (message_id, emoji, count) in counts {
                by_message
                    .entry(message_id)
                    .or_default()
                    .insert(emoji, count);
            }
        }
        Ok(rows
            .into_iter()
            .map(|r| Message {
                reactions: by_message.remove(&r.id).unwrap_or_default(),
                id: r.id,
                room_id: r.room_id,
                user: User {
                    id: r.user_id,
                    name: r.user_name,
                },
                text: r.text,
                at: r.at,
                edited_at: r.edited_at,
            })
            .collect())
    }

    /// Whether `message` was posted in `room` and not deleted.
    pub async fn message_in_room(&self, room: Uuid, message: Uuid) -> Result<bool, ReadModelError> {
        // count(*) is a 64-bit integer in both engines.
        let found: i64 = on_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT count(*) FROM messages WHERE id = $1 AND room_id = $2 \
                 AND deleted_at IS NULL",
            )
            .bind(message)
            .bind(room)
            .fetch_one(pool)
            .await?
        });
        Ok(found > 0)
    }

    /// Every (emoji, user) reaction on `message`.
    pub async fn reactions(&self, message: Uuid) -> Result<Vec<(String, Uuid)>, ReadModelError> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as("SELECT emoji, user_id FROM reactions WHERE message_id = $1")
                .bind(message)
                .fetch_all(pool)
                .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    //! The projection of the moderation events, on the embedded engine (a real SQLite file).

    use super::*;

    fn user(name: &str) -> User {
        User {
            id: Uuid::now_v7(),
            name: name.into(),
        }
    }

    async fn model() -> ReadModel {
        let file = std::env::temp_dir()
            .join(format!("hotchat-readmodel-test-{}", Uuid::now_v7()))
            .join("hotchat.db");
        ReadModel::open_file(&file).await.unwrap()
    }

    /// `events` in log order, at offsets 0, 1, 2, … of partition 0.
    fn at_offsets(events: &[Envelope]) -> Vec<(Cursor, Envelope)> {
        (0..)
            .zip(events)
            .map(|(offset, e)| {
                let cursor = Cursor {
                    partition: 0,
                    offset,
                };
                (cursor, e.clone())
            })
            .collect()
    }

    #[tokio::test]
    async fn a_deleted_message_loses_its_reactions_and_takes_no_late_reaction_or_edit() {
        let model = model().await;
        let (alice, bob) = (user("alice"), user("bob"));
        let room = Uuid::now_v7();
        let message = Uuid::now_v7();
        let event = |who: &User, body| Envelope::new(room, who.clone(), body);
        let posted_at = Utc::now();
        let events = [
            event(&alice, EventBody::RoomCreated { name: "r".into() }),
            event(
                &alice,
                EventBody::MessagePosted {
                    message_id: message,
                    text: "hi".into(),
                },
            ),
            event(
                &bob,
                EventBody::ReactionAdded {
                    message_id: message,
                    emoji: "👍".into(),
                },
            ),
            event(
                &alice,
                EventBody::MessageDeleted {
                    message_id: message,
                },
            ),
            // Raced the deletion on other chat-servers: in the log after it.
            event(
                &bob,
                EventBody::ReactionAdded {
                    message_id: message,
                    emoji: "🔥".into(),
                },
            ),
            event(
                &alice,
                EventBody::MessageEdited {
                    message_id: message,
                    text: "changed".into(),
                    posted_at,
                },
            ),
        ];
        let batch = at_offsets(&events);
        assert_eq!(model.apply_batch(&batch, &[(0, 6)]).await.unwrap(), 6);
        assert_eq!(model.reactions(message).await.unwrap(), vec![]);
        assert!(model.messages(room, None, 50).await.unwrap().is_empty());
        let facts = model.message_facts(room, message).await.unwrap().unwrap();
        assert!(facts.deleted);
        assert!(!model.message_in_room(room, message).await.unwrap());
        // Applied again (a redelivery): nothing changes.
        assert_eq!(model.apply_batch(&batch, &[]).await.unwrap(), 0);
        assert_eq!(model.reactions(message).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn roles_bans_and_slow_mode_follow_the_log() {
        let model = model().await;
        let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
        let room = Uuid::now_v7();
        let event = |who: &User, body| Envelope::new(room, who.clone(), body);
        let created = event(&alice, EventBody::RoomCreated { name: "r".into() });
        let expired = Utc::now() - chrono::Duration::seconds(5);
        let events = [
            created.clone(),
            event(&alice, EventBody::ModeratorAdded { user_id: bob.id }),
            event(
                &bob,
                EventBody::UserBanned {
                    user_id: carol.id,
                    until: None,
                    reason: "spam".into(),
                },
            ),
            event(
                &alice,
                EventBody::RoomUpdated {
                    name: "r".into(),
                    owner: alice.clone(),
                    created_at: created.at,
                    slow_mode_secs: 30,
                },
            ),
        ];
        model.apply_batch(&at_offsets(&events), &[]).await.unwrap();
        let room_row = model.room(room).await.unwrap().unwrap();
        assert_eq!(room_row.owner, alice);
        assert_eq!(room_row.slow_mode_secs, 30);
        let bobs = model.standing(room, bob.id).await.unwrap().unwrap();
        assert!(bobs.moderator && bobs.ban.is_none());
        assert_eq!(bobs.owner, alice.id);
        let carols = model.standing(room, carol.id).await.unwrap().unwrap();
        let ban = carols.ban.expect("carol is banned");
        assert!(!carols.moderator && ban.active(Utc::now()) && ban.by == bob);
        assert_eq!(model.bans(room, Utc::now()).await.unwrap(), vec![ban]);
        assert!(
            model
                .standing(Uuid::now_v7(), bob.id)
                .await
                .unwrap()
                .is_none()
        );

        // A second ban replaces the first; an expired one no longer counts; lifting removes it.
        let later = [
            event(
                &alice,
                EventBody::UserBanned {
                    user_id: carol.id,
                    until: Some(expired),
                    reason: "timed".into(),
                },
            ),
            event(&alice, EventBody::ModeratorRemoved { user_id: bob.id }),
        ];
        model.apply_batch(&at_offsets(&later), &[]).await.unwrap();
        let carols = model.standing(room, carol.id).await.unwrap().unwrap();
        assert!(!carols.ban.unwrap().active(Utc::now()));
        assert!(model.bans(room, Utc::now()).await.unwrap().is_empty());
        assert!(model.moderators(room).await.unwrap().is_empty());
        let lifted = [event(&bob, EventBody::UserUnbanned { user_id: carol.id })];
        model.apply_batch(&at_offsets(&lifted), &[]).await.unwrap();
        assert!(
            model
                .standing(room, carol.id)
                .await
                .unwrap()
                .unwrap()
                .ban
                .is_none()
        );
    }
}
