//! Who may write in a room, and how often: roles, bans and slow mode, as the write side checks them.
//!
//! Roles, bans and a room's slow mode come from the write model ([`crate::write_model`]), which
//! every chat-server keeps from the log itself: no write asks the database.
//!
//! Slow mode is one key per (room, user) in Redis, set only if absent with the interval as its
//! lifetime, so it holds across chat-servers; without Redis (the embedded mode), or while Redis
//! fails or does not answer within 50 ms, the same in process (each chat-server then holds its
//! own slots: a user could post once per interval on each).

use std::time::{Duration, Instant};

use chrono::Utc;
use moka::{future::Cache, ops::compute::Op};
use shared::{
    readmodel::Standing,
    redis_client::{RedisClient, within_write_deadline},
};
use uuid::Uuid;

use crate::error::Refused;

/// The owner and moderators: they run the room.
pub fn runs_room(standing: &Standing, user: Uuid) -> bool {
    standing.owner == user || standing.moderator
}

/// Refused (403 `banned` at the edge) if `standing` holds a ban in force now.
pub fn not_banned(standing: &Standing) -> Result<(), Refused> {
    match &standing.ban {
        Some(ban) if ban.active(Utc::now()) => Err(Refused::Banned(ban.clone())),
        _ => Ok(()),
    }
}

/// Refused (403 `forbidden` at the edge): `message` says who may.
pub fn forbidden(message: impl Into<String>) -> Refused {
    Refused::Forbidden(message.into())
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

    /// Claims `user`'s next post in `room` under an interval of `secs`, or says how long to wait
    /// (429 `slow_mode` at the edge).
    pub async fn claim(&self, room: Uuid, user: Uuid, secs: u32) -> Result<(), Refused> {
        let interval = Duration::from_secs(secs.into());
        let wait = match &self.redis {
            Some(redis) => {
                match within_write_deadline(claim_in_redis(redis, room, user, interval)).await {
                    Ok(wait) => wait,
                    Err(e) => {
                        tracing::warn!(error = %e, "slow mode: redis failed; holding it in this process");
                        self.claim_here(room, user, interval).await
                    }
                }
            }
            None => self.claim_here(room, user, interval).await,
        };
        match wait {
            None => Ok(()),
            Some(wait) => Err(Refused::SlowMode(wait)),
        }
    }

    /// Gives the slot back (the post it was claimed for did not make it into the log).
    pub async fn release(&self, room: Uuid, user: Uuid) {
        self.local.invalidate(&(room, user)).await;
        if let Some(redis) = &self.redis {
            let key = slot_key(redis, room, user);
            let release = async {
                let mut connection = redis.connection().await?;
                redis
                    .run(redis::AsyncCommands::del(&mut connection, key))
                    .await
            };
            let _: Result<(), _> = within_write_deadline(release).await;
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
