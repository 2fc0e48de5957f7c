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

/// What is counted per room: distinct viewers (`online`), or the streams they hold open (push
/// load).
#[derive(Debug, Clone, Copy)]
enum Tally {
    Viewers,
    Streams,
}

impl Online {
    /// Each room's distinct viewers; rooms left out are unknown (Redis did not answer).
    pub async fn counts(&self, rooms: &[Uuid]) -> HashMap<Uuid, u64> {
        self.tally(rooms, Tally::Viewers).await
    }

    /// Each room's open streams, every instance's together; rooms left out are unknown.
    pub async fn streams(&self, rooms: &[Uuid]) -> HashMap<Uuid, u64> {
        self.tally(rooms, Tally::Streams).await
    }

    async fn tally(&self, rooms: &[Uuid], tally: Tally) -> HashMap<Uuid, u64> {
        match self {
            Online::Here(audience) => rooms
                .iter()
                .map(|room| match tally {
                    Tally::Viewers => (*room, audience.here(*room)),
                    Tally::Streams => (*room, audience.streams_here(*room)),
                })
                .collect(),
            Online::Shared(redis) => {
                let counted = match tally {
                    Tally::Viewers => presence::counts(redis, rooms).await,
                    Tally::Streams => presence::streams(redis, rooms).await,
                };
                counted.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, ?tally, "audience counts unavailable");
                    HashMap::new()
                })
            }
            Online::Unknown => HashMap::new(),
        }
    }
}
