//! Who may write in a room, and how often: roles, bans and slow mode, as the write side checks them.
//!
//! Roles, bans and a room's slow mode are projected from the log into the read model, and every
//! write reads the writer's [`Standing`] there (one statement). A moderation operation answers only
//! once the read model has projected it ([`settle`]), so the next write on any chat-server sees it.
//!
//! The write path must not fall over with the database: when the read fails, the last standing
//! this instance read for that user and room is used, else the room as this instance knows it (no
//! role, no ban). That is the documented degraded mode: a ban made while the database is out takes
//! effect when it returns.
//!
//! Slow mode is one key per (room, user) in Redis, set only if absent with the interval as its
//! lifetime, so it holds across chat-servers; without Redis (the embedded mode), or while Redis
//! fails, the same in process.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::{future::Cache, ops::compute::Op};
use shared::{
    cursor::Cursor,
    event_log::EventLog,
    readmodel::{Ban, ReadModel, Room, Standing},
    redis_client::RedisClient,
};
use uuid::Uuid;

use crate::{
    error::ApiError,
    rate_limit::{retry_secs, too_many_requests},
};

/// How long a write waits for the read model before using what this instance last read.
const STANDING_DEADLINE: Duration = Duration::from_millis(800);
/// How long a moderation operation waits for its event to be projected before answering anyway.
const SETTLE_DEADLINE: Duration = Duration::from_secs(5);

/// A message posted through this instance: an edit, a delete or a reaction on it is accepted even
/// before the projector has written it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PostedHere {
    pub room: Uuid,
    pub author: Uuid,
    pub at: DateTime<Utc>,
}

/// The standings this instance read last, for when the database does not answer.
pub type LastStandings = Cache<(Uuid, Uuid), Standing>;

pub fn last_standings() -> LastStandings {
    Cache::builder()
        .max_capacity(100_000)
        .time_to_live(Duration::from_secs(3600))
        .build()
}

/// `user`'s standing in `room` (known to exist), read now or, if the database fails, as last read.
pub async fn standing(
    read_model: &ReadModel,
    last: &LastStandings,
    room: &Room,
    user: Uuid,
) -> Standing {
    let read = tokio::time::timeout(STANDING_DEADLINE, read_model.standing(room.id, user)).await;
    match read {
        Ok(Ok(Some(standing))) => {
            last.insert((room.id, user), standing.clone()).await;
            standing
        }
        // A room created through this instance that the projector has not written yet.
        Ok(Ok(None)) => of_room(room),
        Ok(Err(e)) => {
            tracing::warn!(room_id = %room.id, error = %e, "standing read failed; using the last one");
            last.get(&(room.id, user))
                .await
                .unwrap_or_else(|| of_room(room))
        }
        Err(_) => {
            tracing::warn!(room_id = %room.id, "standing read timed out; using the last one");
            last.get(&(room.id, user))
                .await
                .unwrap_or_else(|| of_room(room))
        }
    }
}

fn of_room(room: &Room) -> Standing {
    Standing {
        owner: room.owner.id,
        moderator: false,
        ban: None,
        slow_mode_secs: room.slow_mode_secs,
    }
}

/// The owner and moderators: they run the room.
pub fn runs_room(standing: &Standing, user: Uuid) -> bool {
    standing.owner == user || standing.moderator
}

/// 403 `banned` if `standing` holds a ban in force now.
pub fn not_banned(standing: &Standing) -> Result<(), ApiError> {
    match &standing.ban {
        Some(ban) if ban.active(Utc::now()) => Err(banned(ban)),
        _ => Ok(()),
    }
}

fn banned(ban: &Ban) -> ApiError {
    let message = match ban.until {
        Some(until) => format!("you are banned from this room until {}", until.to_rfc3339()),
        None => "you are banned from this room until a moderator lifts the ban".to_owned(),
    };
    ApiError::forbidden("banned", message).with_field("until", serde_json::json!(ban.until))
}

/// 403 `forbidden`: `who` may not do this in the room.
pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::forbidden("forbidden", message)
}

/// Waits until the read model has projected the event at `cursor`, so that the next read of any
/// chat-server sees it. Gives up after [`SETTLE_DEADLINE`] (the event is in the log either way;
/// it takes effect once projected) and says whether it settled.
pub async fn settle(read_model: &ReadModel, cursor: Cursor) -> bool {
    let deadline = Instant::now() + SETTLE_DEADLINE;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Ok(Some(next)) = read_model.projected(cursor.partition).await
            && next > cursor.offset
        {
            return true;
        }
        if Instant::now() >= deadline {
            tracing::warn!(%cursor, "the read model did not project a moderation event in time");
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// How young a message id must be for a miss in the read model to be worth waiting for.
const RECENT: Duration = Duration::from_secs(60);

/// Whether `id` is a UUIDv7 made in the last minute: a message the projector may not have written
/// yet (posted through another chat-server a moment ago). Older ids, and ids of no time, are not
/// waited for.
pub fn recent(id: Uuid) -> bool {
    let Some(ts) = id.get_timestamp() else {
        return false;
    };
    let (secs, nanos) = ts.to_unix();
    let made = std::time::UNIX_EPOCH + Duration::new(secs, nanos);
    std::time::SystemTime::now()
        .duration_since(made)
        .is_ok_and(|age| age < RECENT)
}

/// Waits until the read model has projected everything the log held when this was called, on
/// every partition: a read after it sees every write acknowledged before it, wherever it was made.
pub async fn catch_up(log: &EventLog, read_model: &ReadModel) {
    for partition in 0..log.partitions() {
        let Ok((_, end)) = log.bounds(partition).await else {
            continue;
        };
        if end > 0 {
            let last = Cursor {
                partition,
                offset: end - 1,
            };
            settle(read_model, last).await;
        }
    }
}

/// Posts per user and room under slow mode: each post claims the (room, user) slot for the
/// room's interval.
pub struct SlowMode {
    redis: Option<std::sync::Arc<RedisClient>>,
    local: Cache<(Uuid, Uuid), Instant>,
}

impl SlowMode {
    /// Shared through `redis` when given, else in this process.
    pub fn new(redis: Option<std::sync::Arc<RedisClient>>) -> Self {
        Self {
            redis,
            local: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(
                    crate::validate::MAX_SLOW_MODE_SECS as u64,
                ))
                .build(),
        }
    }

    /// Claims `user`'s next post in `room` under an interval of `secs`, or answers 429
    /// `slow_mode` with how long to wait.
    pub async fn claim(&self, room: Uuid, user: Uuid, secs: u32) -> Result<(), ApiError> {
        let interval = Duration::from_secs(secs.into());
        let wait = match &self.redis {
            Some(redis) => match claim_in_redis(redis, room, user, interval).await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "slow mode: redis failed; holding it in this process");
                    self.claim_here(room, user, interval).await
                }
            },
            None => self.claim_here(room, user, interval).await,
        };
        match wait {
            None => Ok(()),
            Some(wait) => {
                let secs = retry_secs(wait);
                Err(slow_mode(too_many_requests(
                    secs,
                    format!("slow mode is on: you can post again in {secs} s"),
                )))
            }
        }
    }

    /// Gives the slot back (the post it was claimed for did not make it into the log).
    pub async fn release(&self, room: Uuid, user: Uuid) {
        self.local.invalidate(&(room, user)).await;
        if let Some(redis) = &self.redis
            && let Ok(mut connection) = redis.connection().await
        {
            let key = slot_key(redis, room, user);
            let _: Result<(), _> = redis
                .run(redis::AsyncCommands::del(&mut connection, key))
                .await;
        }
    }

    async fn claim_here(&self, room: Uuid, user: Uuid, interval: Duration) -> Option<Duration> {
        let now = Instant::now();
        let mut wait = None;
        self.local
            .entry((room, user))
            .and_compute_with(|entry| {
                let op = match entry.map(|e| e.into_value()) {
                    Some(until) if until > now => {
                        wait = Some(until - now);
                        Op::Nop
                    }
                    _ => Op::Put(now + interval),
                };
                std::future::ready(op)
            })
            .await;
        wait
    }
}

fn slow_mode(mut error: ApiError) -> ApiError {
    error.code = "slow_mode";
    error
}

fn slot_key(redis: &RedisClient, room: Uuid, user: Uuid) -> String {
    redis.key(&format!("slow:{room}:{user}"))
}

/// `SET NX PX`; when the slot is taken, how long it still is.
async fn claim_in_redis(
    redis: &RedisClient,
    room: Uuid,
    user: Uuid,
    interval: Duration,
) -> Result<Option<Duration>, shared::redis_client::StoreError> {
    use redis::AsyncCommands;
    let key = slot_key(redis, room, user);
    let mut connection = redis.connection().await?;
    let options = redis::SetOptions::default()
        .conditional_set(redis::ExistenceCheck::NX)
        .with_expiration(redis::SetExpiry::PX(interval.as_millis() as u64));
    let set: Option<String> = redis.run(connection.set_options(&key, 1, options)).await?;
    if set.is_some() {
        return Ok(None);
    }
    let left: i64 = redis.run(connection.pttl(&key)).await?;
    // -2: it expired in between; -1 cannot happen (always set with a lifetime).
    Ok(Some(Duration::from_millis(left.max(1) as u64)))
}
