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
//! applies [`detector::decide`]: above `HOT_FETCH_THRESHOLD` turns a room hot, and it stays hot until it
//! has been at or below the threshold for `HOT_COOLDOWN_SECS`. Mode changes are appended to the topic
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

use shared::event::RoomMode;
use uuid::Uuid;

/// Hot-room settings (see the README's configuration table).
#[derive(Debug, Clone)]
pub struct HotSettings {
    /// `REDIS_URL`; unset keeps counts and the hot map in this process (one chat-server only).
    pub redis_url: Option<String>,
    /// `REDIS_KEY_PREFIX` (default `hotchat`): namespace of every key this service writes.
    pub key_prefix: String,
    /// `HOT_FETCH_THRESHOLD` (default 200): fetches per second, cluster-wide, that make a room hot.
    pub threshold: u64,
    /// `HOT_COOLDOWN_SECS` (default 10): how long a room stays hot after dropping below the threshold.
    pub cooldown: Duration,
    /// `HOT_CACHE_TTL_MS` (default 1000): how long a throttled page is served from the cache.
    pub cache_ttl: Duration,
    /// `HOT_CLIENT_RATE` (default 5): fetches per second one client may make of a hot room.
    pub client_rate: u32,
    /// `HOT_CLIENT_BURST` (default 10): how many fetches a client may make at once before the rate
    /// applies.
    pub client_burst: u32,
    /// `TRUST_FORWARDED_FOR` (default false): key anonymous clients by the first `X-Forwarded-For`
    /// address (set it behind a reverse proxy), instead of the peer address.
    pub trust_forwarded_for: bool,
}

impl HotSettings {
    pub fn from_env() -> anyhow::Result<Self> {
        use shared::settings::{parse_or, var};
        Ok(Self {
            redis_url: var("REDIS_URL"),
            key_prefix: var("REDIS_KEY_PREFIX").unwrap_or_else(|| "hotchat".to_owned()),
            threshold: parse_or("HOT_FETCH_THRESHOLD", 200)?,
            cooldown: Duration::from_secs(parse_or("HOT_COOLDOWN_SECS", 10)?),
            cache_ttl: shared::settings::millis_or("HOT_CACHE_TTL_MS", Duration::from_secs(1))?,
            client_rate: parse_or("HOT_CLIENT_RATE", 5u32)?.max(1),
            client_burst: parse_or("HOT_CLIENT_BURST", 10u32)?.max(1),
            trust_forwarded_for: parse_or("TRUST_FORWARDED_FOR", false)?,
        })
    }

    /// Defaults with counts in this process (for tests and the embedded mode).
    pub fn local() -> Self {
        Self {
            redis_url: None,
            key_prefix: "hotchat".to_owned(),
            threshold: 200,
            cooldown: Duration::from_secs(10),
            cache_ttl: Duration::from_secs(1),
            client_rate: 5,
            client_burst: 10,
            trust_forwarded_for: false,
        }
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

/// Fetches counted in this process since the last flush.
#[derive(Default)]
pub struct FetchCounter {
    counts: Mutex<HashMap<Uuid, u64>>,
}

impl FetchCounter {
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
