//! Hot-room detection and the throttled fetch mode (seed 003: LINE OpenChat's "hot chat").
//!
//! **Counting.** Each fetch of a room's messages increments a counter in this process — no network
//! round trip on the request path. Every 250 ms the scheduler loop adds the counts to the current
//! quarter-second bucket in the store (Redis, shared by every chat-server). Error bound: a fetch is
//! attributed to the quarter in which it was flushed, at most 250 ms after it happened; nothing is
//! double-counted, and counts are lost only while Redis is unreachable (then detection fails open).
//!
//! **Detection.** Once per second the leader (one instance, by a Redis lock with a 2 s expiry,
//! renewed every 250 ms) sums the last four complete quarters — the last second, cluster-wide — and
//! applies [`detector::decide`]: above `HOT_FETCH_THRESHOLD` fetches, or `HOT_DELIVERY_THRESHOLD`
//! deliveries (events written to the room, counted the same way, × its open streams as the
//! publish-servers count them), turns a room hot, and it stays hot until it has been at or below
//! both for `HOT_COOLDOWN_SECS`. The mode change says which (`reason`). Mode changes are appended to the topic
//! as `room.mode_changed`, so every publish-server tells the room's subscribers (`event: mode`).
//!
//! **Local copy.** Every instance reads the hot map every 250 ms into [`HotView`]; handlers consult
//! only that. If Redis is unreachable the view is emptied: every room is served in normal mode.
//!
//! **Throttled mode** ([`throttle`]): coalesced, cached page reads and a per-client rate limit.

pub mod detector;
pub mod scheduler;
pub mod store;
pub mod throttle;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use shared::{event::RoomMode, settings};
use uuid::Uuid;

/// Hot-room settings (see the README's configuration table).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Hot rooms")]
pub struct HotSettings {
    /// Redis, e.g. `redis://127.0.0.1:6379/0`: fetch counters, hot map and scheduler lock, shared by
    /// every chat-server. Unset: kept in this process (one chat-server only).
    #[arg(long = "redis-url", env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Namespace of every Redis key this service writes.
    #[arg(
        long = "redis-key-prefix",
        env = "REDIS_KEY_PREFIX",
        default_value = "hotchat"
    )]
    pub key_prefix: String,
    /// Fetches per second of one room, cluster-wide, that make it hot.
    #[arg(
        long = "hot-fetch-threshold",
        env = "HOT_FETCH_THRESHOLD",
        default_value_t = 200
    )]
    pub threshold: u64,
    /// Deliveries per second of one room (events written × open streams), cluster-wide, that make it
    /// hot: its stream then goes out in batches (`HOT_SSE_BATCH_MS`) and its history is throttled.
    #[arg(
        long = "hot-delivery-threshold",
        env = "HOT_DELIVERY_THRESHOLD",
        default_value_t = 20_000
    )]
    pub delivery_threshold: u64,
    /// Seconds a room stays hot after it drops to or below the thresholds.
    #[arg(
        long = "hot-cooldown-secs",
        env = "HOT_COOLDOWN_SECS",
        default_value = "10",
        value_parser = settings::secs
    )]
    pub cooldown: Duration,
    /// Milliseconds a throttled page is served from the cache.
    #[arg(
        long = "hot-cache-ttl-ms",
        env = "HOT_CACHE_TTL_MS",
        default_value = "1000",
        value_parser = settings::millis
    )]
    pub cache_ttl: Duration,
    /// Fetches per second one client may make of a hot room (at least 1).
    #[arg(
        long = "hot-client-rate",
        env = "HOT_CLIENT_RATE",
        default_value = "5",
        value_parser = settings::at_least(1u32)
    )]
    pub client_rate: u32,
    /// Fetches a client may make of a hot room at once before the rate applies (at least 1).
    #[arg(
        long = "hot-client-burst",
        env = "HOT_CLIENT_BURST",
        default_value = "10",
        value_parser = settings::at_least(1u32)
    )]
    pub client_burst: u32,
    /// Key anonymous clients by the first `X-Forwarded-For` address instead of the peer address
    /// (only behind your own reverse proxy).
    #[arg(
        long = "trust-forwarded-for",
        env = "TRUST_FORWARDED_FOR",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub trust_forwarded_for: bool,
}

impl HotSettings {
    /// Defaults with counts in this process (for tests and the embedded mode).
    pub fn local() -> Self {
        settings::defaults()
    }

    /// The least time between a client's fetches of a hot room that keeps it under
    /// `client_rate`: a client that waits this long between fetches never gets a 429.
    pub fn fetch_interval_ms(&self) -> u32 {
        1000u32.div_ceil(self.client_rate.max(1))
    }
}

/// This instance's copy of the hot set, refreshed by the scheduler loop.
pub struct HotView {
    rooms: RwLock<HashSet<Uuid>>,
    /// Whether the last round reached the store (readiness reports it).
    store_reachable: AtomicBool,
}

impl Default for HotView {
    fn default() -> Self {
        Self {
            rooms: RwLock::default(),
            store_reachable: AtomicBool::new(true),
        }
    }
}

impl HotView {
    pub fn mode(&self, room: Uuid) -> RoomMode {
        if self.rooms.read().expect("hot view lock").contains(&room) {
            RoomMode::Throttled
        } else {
            RoomMode::Normal
        }
    }

    pub fn is_hot(&self, room: Uuid) -> bool {
        self.mode(room) == RoomMode::Throttled
    }

    pub fn len(&self) -> usize {
        self.rooms.read().expect("hot view lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn store_reachable(&self) -> bool {
        self.store_reachable.load(Ordering::Relaxed)
    }

    fn set_store_reachable(&self, reachable: bool) {
        self.store_reachable.store(reachable, Ordering::Relaxed);
    }

    fn replace(&self, rooms: HashSet<Uuid>) {
        *self.rooms.write().expect("hot view lock") = rooms;
    }
}

/// Per-room counts in this process since the last flush: history fetches, or events written.
#[derive(Default)]
pub struct RoomCounter {
    counts: Mutex<HashMap<Uuid, u64>>,
}

impl RoomCounter {
    pub fn record(&self, room: Uuid) {
        *self
            .counts
            .lock()
            .expect("counter lock")
            .entry(room)
            .or_default() += 1;
    }

    fn take(&self) -> HashMap<Uuid, u64> {
        std::mem::take(&mut *self.counts.lock().expect("counter lock"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fetch_interval_keeps_a_client_at_or_under_its_rate() {
        let interval = |client_rate| {
            HotSettings {
                client_rate,
                ..HotSettings::local()
            }
            .fetch_interval_ms()
        };
        assert_eq!(interval(5), 200);
        assert_eq!(interval(1), 1000);
        // Rounded up: 333 ms would allow slightly more than 3 a second.
        assert_eq!(interval(3), 334);
        assert_eq!(interval(10_000), 1);
    }
}
