//! The throttled mode's two tools: coalesced, cached page reads and a per-client rate limit.
//!
//! Hot path: a throttled page is read from the database once per `HOT_CACHE_TTL_MS` per instance,
//! however many clients ask. Concurrent misses for the same page wait on the one query in flight
//! (moka's `or_try_insert_with` coalesces them), and the answer is kept already serialised, so a hit
//! costs a hash lookup and a reference-count increment.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::body::Bytes;
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use moka::future::Cache;
use shared::readmodel::ReadModelError;
use uuid::Uuid;

use super::HotSettings;

/// A page of a room: (room, before, limit).
pub type PageKey = (Uuid, Option<Uuid>, i64);

pub struct Throttle {
    pages: Cache<PageKey, Bytes>,
    limiter: DefaultKeyedRateLimiter<String>,
}

/// How a throttled page was served.
pub struct Page {
    pub body: Bytes,
    /// True when this call ran the database query (a cache miss).
    pub queried: bool,
}

impl Throttle {
    pub fn new(settings: &HotSettings) -> Self {
        let rate = NonZeroU32::new(settings.client_rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.client_burst).unwrap_or(NonZeroU32::MIN);
        Self {
            pages: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(settings.cache_ttl)
                .build(),
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// `Err(wait)` when `client` is over its rate; `wait` is how long until it may fetch again.
    pub fn admit(&self, client: &str) -> Result<(), Duration> {
        self.limiter
            .check_key(&client.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// The page from the cache, or from `load` if it is not cached (shared with concurrent callers).
    pub async fn page<F>(&self, key: PageKey, load: F) -> Result<Page, Arc<ReadModelError>>
    where
        F: Future<Output = Result<Bytes, ReadModelError>>,
    {
        // Only the caller whose own `load` runs sees `ran` set; coalesced callers and hits do not.
        let ran = AtomicBool::new(false);
        let body = self
            .pages
            .try_get_with(key, async {
                ran.store(true, Ordering::Relaxed);
                load.await
            })
            .await?;
        Ok(Page {
            body,
            queried: ran.load(Ordering::Relaxed),
        })
    }

    /// Forgets idle clients so the limiter's memory follows the active ones.
    pub fn housekeeping(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}
