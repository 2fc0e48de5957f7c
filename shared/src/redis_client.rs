//! The one door to Redis, for everything the servers share through it (chat-server's hot-room store,
//! idempotency records and slow mode; the audience counts of both): one lazily made connection per
//! process, every command under a deadline (a
//! hung Redis must answer as an error, never hang a request or the scheduler), and every key under
//! `REDIS_KEY_PREFIX`.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::Mutex as AsyncMutex;

/// The longest a write (a post's slow-mode slot, an idempotency record) waits on Redis before it
/// goes on in its documented degraded mode: a hung Redis costs a write at most this.
pub const WRITE_DEADLINE: Duration = Duration::from_millis(50);

/// Runs `op` (Redis calls on a write's path) under [`WRITE_DEADLINE`].
pub async fn within_write_deadline<T>(
    op: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(WRITE_DEADLINE, op)
        .await
        .map_err(|_| StoreError::Timeout(WRITE_DEADLINE))?
}

/// Why a Redis call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

pub struct RedisClient {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    /// Connected lazily and kept; `ConnectionManager` reconnects by itself after errors.
    connection: AsyncMutex<Option<ConnectionManager>>,
}

impl RedisClient {
    pub fn new(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            prefix: prefix.to_owned(),
            timeout: Duration::from_millis(500),
            connection: AsyncMutex::new(None),
        })
    }

    /// `name` under the configured prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.prefix)
    }

    /// The shared connection, made on first use.
    pub async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| StoreError::Timeout(self.timeout * 2))??;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs one command (or pipeline) under the deadline.
    pub async fn run<T>(
        &self,
        op: impl Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, op)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
            .map_err(StoreError::from)
    }
}
