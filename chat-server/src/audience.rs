//! How many watch each room (`online` in the room's JSON), and how many streams they hold open (a
//! room's push load, for hot-room detection): the publish-servers' merged counts in Redis, the
//! in-process read side's own in the embedded mode, or unknown (no Redis to meet in).

use std::{collections::HashMap, sync::Arc};

use publish_server::audience::Audience;
use shared::{presence, redis_client::RedisClient};
use uuid::Uuid;

#[derive(Clone)]
pub enum Online {
    /// This process serves every stream (the embedded mode).
    Here(Arc<Audience>),
    /// The publish-servers write their counts to Redis.
    Shared(Arc<RedisClient>),
    /// Publish-servers without Redis to meet in: nobody knows the whole count.
    Unknown,
}

impl Online {
    /// Each room's distinct viewers; rooms left out are unknown (Redis did not answer).
    pub async fn counts(&self, rooms: &[Uuid]) -> HashMap<Uuid, u64> {
        match self {
            Online::Here(audience) => rooms
                .iter()
                .map(|room| (*room, audience.here(*room)))
                .collect(),
            Online::Shared(redis) => match presence::counts(redis, rooms).await {
                Ok(counts) => counts,
                Err(e) => {
                    tracing::warn!(error = %e, "audience counts unavailable");
                    HashMap::new()
                }
            },
            Online::Unknown => HashMap::new(),
        }
    }

    /// Each room's open streams, every instance's together; rooms left out are unknown.
    pub async fn streams(&self, rooms: &[Uuid]) -> HashMap<Uuid, u64> {
        match self {
            Online::Here(audience) => rooms
                .iter()
                .map(|room| (*room, audience.streams_here(*room)))
                .collect(),
            Online::Shared(redis) => match presence::streams(redis, rooms).await {
                Ok(streams) => streams,
                Err(e) => {
                    tracing::warn!(error = %e, "stream counts unavailable");
                    HashMap::new()
                }
            },
            Online::Unknown => HashMap::new(),
        }
    }
}
