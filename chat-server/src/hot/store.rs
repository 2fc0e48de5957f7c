//! Where fetch counts, the hot map and the scheduler's leader lock live.
//!
//! With `REDIS_URL` set they are in Redis and shared by every chat-server; without it they are in
//! this process (the embedded mode, one chat-server). Redis keys, all under `REDIS_KEY_PREFIX`:
//! - `{prefix}:fetches:{quarter}`: hash room → fetches counted during that 250 ms quarter (expires
//!   after 10 s). The last four complete quarters are the last second's rate.
//! - `{prefix}:events:{quarter}`: the same for events written to each room (posts, reactions...).
//! - `{prefix}:hot`: hash room → last time (Unix ms) its rate was above the threshold.
//! - `{prefix}:leader`: the instance id of the scheduler's leader, with a short expiry.

use std::{
    collections::{BTreeMap, HashMap},
    ops::Range,
    sync::{Arc, Mutex},
    time::Duration,
};

use redis::{AsyncCommands, Script, aio::ConnectionManager};
use uuid::Uuid;

use super::detector::HotMap;
use shared::redis_client::RedisClient;

/// How long a fetch-count bucket is kept.
const BUCKET_TTL_SECS: i64 = 10;

pub use shared::redis_client::StoreError;

/// What is counted per room and quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Counted {
    /// History fetches.
    Fetches,
    /// Events written (each one goes to every viewer of the room).
    Events,
}

impl Counted {
    fn as_str(self) -> &'static str {
        match self {
            Counted::Fetches => "fetches",
            Counted::Events => "events",
        }
    }
}

pub enum HotStore {
    Redis(RedisStore),
    Local(LocalStore),
}

impl HotStore {
    /// Adds this instance's counts of `what` for one quarter.
    pub async fn add(
        &self,
        what: Counted,
        quarter: i64,
        counts: &HashMap<Uuid, u64>,
    ) -> Result<(), StoreError> {
        match self {
            HotStore::Redis(r) => r.add(what, quarter, counts).await,
            HotStore::Local(l) => {
                l.add(what, quarter, counts);
                Ok(())
            }
        }
    }

    /// Counts of `what` per room summed over `quarters`, across all instances.
    pub async fn sums(
        &self,
        what: Counted,
        quarters: Range<i64>,
    ) -> Result<HashMap<Uuid, u64>, StoreError> {
        match self {
            HotStore::Redis(r) => r.sums(what, quarters).await,
            HotStore::Local(l) => Ok(l.sums(what, quarters)),
        }
    }

    pub async fn hot_map(&self) -> Result<HotMap, StoreError> {
        match self {
            HotStore::Redis(r) => r.hot_map().await,
            HotStore::Local(l) => Ok(l.hot.lock().expect("hot lock").clone()),
        }
    }

    /// Replaces the hot map (leader only).
    pub async fn set_hot_map(&self, previous: &HotMap, next: &HotMap) -> Result<(), StoreError> {
        match self {
            HotStore::Redis(r) => r.set_hot_map(previous, next).await,
            HotStore::Local(l) => {
                *l.hot.lock().expect("hot lock") = next.clone();
                Ok(())
            }
        }
    }

    /// Takes or keeps the leader lock for `ttl`; true when this instance leads.
    pub async fn lead(&self, instance: Uuid, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            HotStore::Redis(r) => r.lead(instance, ttl).await,
            HotStore::Local(_) => Ok(true),
        }
    }

    /// Gives the lock up (at shutdown), so another instance takes over at once.
    pub async fn resign(&self, instance: Uuid) -> Result<(), StoreError> {
        match self {
            HotStore::Redis(r) => r.resign(instance).await,
            HotStore::Local(_) => Ok(()),
        }
    }
}

/// Counts per quarter, then per room.
type Buckets = BTreeMap<i64, HashMap<Uuid, u64>>;

/// The in-process store of the embedded mode.
#[derive(Default)]
pub struct LocalStore {
    buckets: Mutex<HashMap<Counted, Buckets>>,
    hot: Mutex<HotMap>,
}

impl LocalStore {
    fn add(&self, what: Counted, quarter: i64, counts: &HashMap<Uuid, u64>) {
        let mut all = self.buckets.lock().expect("bucket lock");
        let buckets = all.entry(what).or_default();
        let bucket = buckets.entry(quarter).or_default();
        for (room, n) in counts {
            *bucket.entry(*room).or_default() += n;
        }
        // Keep the same ten seconds Redis keeps.
        let oldest = quarter - BUCKET_TTL_SECS * 4;
        *buckets = buckets.split_off(&oldest);
    }

    fn sums(&self, what: Counted, quarters: Range<i64>) -> HashMap<Uuid, u64> {
        let all = self.buckets.lock().expect("bucket lock");
        let mut sums = HashMap::new();
        let Some(buckets) = all.get(&what) else {
            return sums;
        };
        for (_, bucket) in buckets.range(quarters) {
            for (room, n) in bucket {
                *sums.entry(*room).or_default() += n;
            }
        }
        sums
    }
}

/// The Redis store (every command under [`RedisClient`]'s deadline).
pub struct RedisStore {
    redis: Arc<RedisClient>,
}

impl RedisStore {
    pub fn new(redis: Arc<RedisClient>) -> Self {
        Self { redis }
    }

    fn key(&self, name: &str) -> String {
        self.redis.key(name)
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        self.redis.connection().await
    }

    async fn run<T>(
        &self,
        op: impl Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, StoreError> {
        self.redis.run(op).await
    }

    async fn add(
        &self,
        what: Counted,
        quarter: i64,
        counts: &HashMap<Uuid, u64>,
    ) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let key = self.key(&format!("{}:{quarter}", what.as_str()));
        let mut pipe = redis::pipe();
        for (room, n) in counts {
            pipe.hincr(&key, room.to_string(), *n).ignore();
        }
        pipe.expire(&key, BUCKET_TTL_SECS).ignore();
        let mut connection = self.connection().await?;
        self.run(pipe.query_async::<()>(&mut connection)).await
    }

    async fn sums(
        &self,
        what: Counted,
        quarters: Range<i64>,
    ) -> Result<HashMap<Uuid, u64>, StoreError> {
        let mut pipe = redis::pipe();
        for quarter in quarters {
            pipe.hgetall(self.key(&format!("{}:{quarter}", what.as_str())));
        }
        let mut connection = self.connection().await?;
        let buckets: Vec<HashMap<String, u64>> =
            self.run(pipe.query_async(&mut connection)).await?;
        let mut sums = HashMap::new();
        for bucket in buckets {
            for (room, n) in bucket {
                if let Ok(room) = room.parse::<Uuid>() {
                    *sums.entry(room).or_default() += n;
                }
            }
        }
        Ok(sums)
    }

    async fn hot_map(&self) -> Result<HotMap, StoreError> {
        let mut connection = self.connection().await?;
        let raw: HashMap<String, i64> = self.run(connection.hgetall(self.key("hot"))).await?;
        Ok(raw
            .into_iter()
            .filter_map(|(room, at)| room.parse().ok().map(|room| (room, at)))
            .collect())
    }

    async fn set_hot_map(&self, previous: &HotMap, next: &HotMap) -> Result<(), StoreError> {
        let key = self.key("hot");
        let mut pipe = redis::pipe();
        pipe.atomic();
        for room in previous.keys().filter(|room| !next.contains_key(room)) {
            pipe.hdel(&key, room.to_string()).ignore();
        }
        for (room, at) in next {
            pipe.hset(&key, room.to_string(), *at).ignore();
        }
        let mut connection = self.connection().await?;
        self.run(pipe.query_async::<()>(&mut connection)).await
    }

    async fn lead(&self, instance: Uuid, ttl: Duration) -> Result<bool, StoreError> {
        // Keep the lock if it is ours, otherwise take it if it is free; one round trip either way.
        let script = Script::new(
            r"local holder = redis.call('GET', KEYS[1])
              if holder == ARGV[1] then
                redis.call('PEXPIRE', KEYS[1], ARGV[2])
                return 1
              elseif not holder then
                redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
                return 1
              end
              return 0",
        );
        let mut connection = self.connection().await?;
        let mut invocation = script.key(self.key("leader"));
        invocation
            .arg(instance.to_string())
            .arg(ttl.as_millis() as u64);
        let led: i64 = self.run(invocation.invoke_async(&mut connection)).await?;
        Ok(led == 1)
    }

    async fn resign(&self, instance: Uuid) -> Result<(), StoreError> {
        let script = Script::new(
            r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
              return 0",
        );
        let mut connection = self.connection().await?;
        let mut invocation = script.key(self.key("leader"));
        invocation.arg(instance.to_string());
        self.run(invocation.invoke_async::<i64>(&mut connection))
            .await
            .map(|_| ())
    }
}
