//! The read model in PostgreSQL: what the fetch API reads and the projector writes.
//!
//! It is a projection of the topic, never the source of truth: every write is an event applied at most
//! once (keyed by event id, in the same transaction as its effect), so a redelivery, a replay after a
//! crash or a full rebuild from offset zero all end in the same rows.

use std::{collections::BTreeMap, str::FromStr, time::Duration};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{
    PgPool, Postgres, Transaction,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgConnectOptions, PgPoolOptions},
};
use uuid::Uuid;

use crate::{
    cursor::Cursor,
    event::{Envelope, EventBody, RoomMode, User},
    settings,
};

/// The schema, applied by whichever server starts first (sqlx serialises concurrent runs with an
/// advisory lock).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The most messages one fetch may return.
pub const MAX_PAGE: i64 = 200;

/// A room as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Room {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A message as the API and the SSE stream show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: Uuid,
    pub room_id: Uuid,
    pub user: User,
    pub text: String,
    pub at: DateTime<Utc>,
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
pub struct ReadModel {
    pool: PgPool,
}

impl ReadModel {
    /// Connects to `url`, creating the database if it does not exist yet, and migrates it.
    ///
    /// `DATABASE_MAX_CONNECTIONS` (default 10) sizes the pool; a request waits at most
    /// `DATABASE_ACQUIRE_TIMEOUT_MS` (default 3000) for a connection, then fails fast.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url).context("DATABASE_URL is not a valid URL")?;
        if !sqlx::Postgres::database_exists(url).await.unwrap_or(true)
            && let Err(e) = sqlx::Postgres::create_database(url).await
            // Another server may have created it at the same moment.
            && !sqlx::Postgres::database_exists(url).await.unwrap_or(false)
        {
            return Err(e).context("creating the database");
        }
        let pool = PgPoolOptions::new()
            .max_connections(settings::parse_or("DATABASE_MAX_CONNECTIONS", 10)?)
            .acquire_timeout(settings::millis_or(
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                Duration::from_secs(3),
            )?)
            .connect_with(options)
            .await
            .context("connecting to PostgreSQL")?;
        MIGRATOR
            .run(&pool)
            .await
            .context("migrating the read model")?;
        Ok(Self { pool })
    }

    /// Checks that the database answers (readiness).
    pub async fn ping(&self) -> Result<(), ReadModelError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Applies events in one transaction, skipping those already applied. Returns how many were new.
    pub async fn apply_batch(
        &self,
        events: &[(Cursor, Envelope)],
    ) -> Result<usize, ReadModelError> {
        let mut tx = self.pool.begin().await?;
        let mut applied = 0;
        for (cursor, event) in events {
            if apply(&mut tx, *cursor, event).await? {
                applied += 1;
            }
        }
        tx.commit().await?;
        Ok(applied)
    }

    pub async fn room(&self, id: Uuid) -> Result<Option<Room>, ReadModelError> {
        Ok(
            sqlx::query_as("SELECT id, name, created_at FROM rooms WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The room's mode as last announced in the topic, if the room exists.
    pub async fn room_mode(&self, id: Uuid) -> Result<Option<RoomMode>, ReadModelError> {
        let mode: Option<String> = sqlx::query_scalar("SELECT mode FROM rooms WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(mode.map(|m| {
            if m == RoomMode::Throttled.as_str() {
                RoomMode::Throttled
            } else {
                RoomMode::Normal
            }
        }))
    }

    /// All rooms, oldest first.
    pub async fn rooms(&self) -> Result<Vec<Room>, ReadModelError> {
        Ok(
            sqlx::query_as("SELECT id, name, created_at FROM rooms ORDER BY created_at, id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Up to `limit` messages of `room` before the message `before` (or the newest), oldest first.
    pub async fn messages(
        &self,
        room: Uuid,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Message>, ReadModelError> {
        let before_seq = match before {
            None => i64::MAX,
            Some(id) => {
                sqlx::query_scalar("SELECT seq FROM messages WHERE id = $1 AND room_id = $2")
                    .bind(id)
                    .bind(room)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(ReadModelError::UnknownCursor(id))?
            }
        };
        let mut rows: Vec<MessageRow> = sqlx::query_as(
            "SELECT id, room_id, user_id, user_name, text, at FROM messages \
             WHERE room_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        )
        .bind(room)
        .bind(before_seq)
        .bind(limit.clamp(1, MAX_PAGE))
        .fetch_all(&self.pool)
        .await?;
        rows.reverse();
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let counts: Vec<(Uuid, String, i64)> = sqlx::query_as(
            "SELECT message_id, emoji, count(*) FROM reactions \
             WHERE message_id = ANY($1) GROUP BY message_id, emoji",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        let mut by_message: BTreeMap<Uuid, BTreeMap<String, i64>> = BTreeMap::new();
        for (message_id, emoji, count) in counts {
            by_message
                .entry(message_id)
                .or_default()
                .insert(emoji, count);
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
            })
            .collect())
    }

    /// Whether `message` was posted in `room`.
    pub async fn message_in_room(&self, room: Uuid, message: Uuid) -> Result<bool, ReadModelError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1 AND room_id = $2)",
        )
        .bind(message)
        .bind(room)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Every (emoji, user) reaction on `message`.
    pub async fn reactions(&self, message: Uuid) -> Result<Vec<(String, Uuid)>, ReadModelError> {
        Ok(
            sqlx::query_as("SELECT emoji, user_id FROM reactions WHERE message_id = $1")
                .bind(message)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

/// Applies one event unless its id was applied before; returns whether it was new.
async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    cursor: Cursor,
    event: &Envelope,
) -> Result<bool, sqlx::Error> {
    let first_time =
        sqlx::query("INSERT INTO applied_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING")
            .bind(event.event_id)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1;
    if !first_time {
        return Ok(false);
    }
    match &event.body {
        EventBody::RoomCreated { name } => {
            sqlx::query(
                "INSERT INTO rooms (id, name, created_by, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(event.room_id)
            .bind(name)
            .bind(event.user.id)
            .bind(event.at)
            .execute(&mut **tx)
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
            .execute(&mut **tx)
            .await?;
        }
        EventBody::ReactionAdded { message_id, emoji } => {
            sqlx::query(
                "INSERT INTO reactions (message_id, emoji, user_id) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(message_id)
            .bind(emoji)
            .bind(event.user.id)
            .execute(&mut **tx)
            .await?;
        }
        EventBody::RoomModeChanged { mode } => {
            sqlx::query("UPDATE rooms SET mode = $2 WHERE id = $1")
                .bind(event.room_id)
                .bind(mode.as_str())
                .execute(&mut **tx)
                .await?;
        }
        EventBody::ReactionRemoved { message_id, emoji } => {
            sqlx::query(
                "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
            )
            .bind(message_id)
            .bind(emoji)
            .bind(event.user.id)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(true)
}
