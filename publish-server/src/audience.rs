//! Who is watching: the distinct viewers of each room on this instance, and the room's count across
//! every instance, told to the room's subscribers as `event: presence`.
//!
//! A viewer is the user of the token sent with the stream request (verified, so nobody inflates a
//! count with made-up users), else the client's address: three tabs of one user count once. Every
//! second ([`Audience::run`]) this instance writes its viewers of each room to Redis and reads the
//! merged counts back ([`shared::presence`]); a room's subscribers get `{"online": N}` when N
//! changed. Without Redis the count is this instance's own. That is the whole truth in the embedded
//! mode; otherwise it is labelled `"scope": "instance"` until Redis answers again.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::http::HeaderMap;
use serde::Serialize;
use shared::{
    http::client_ip,
    presence::{self, Seen},
    redis_client::RedisClient,
    shutdown::CancellationToken,
    tokens::TokenVerifier,
};
use uuid::Uuid;

use crate::{
    hub::{Hub, presence_frame},
    metrics::{AUDIENCE_BUCKETS, Metrics, SizeLabel},
};

/// How often counts are exchanged and told.
const ROUND: Duration = Duration::from_secs(1);

/// `event: presence` data, and a room's `online` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Online {
    /// Distinct viewers of the room.
    pub online: u64,
    /// `instance` when the count covers only the instance that sent it (Redis unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub scope: Option<&'static str>,
}

type Viewers = HashMap<Arc<str>, u32>;

/// The streams a room's viewers hold open (a viewer's tabs each count).
fn open_streams(viewers: &Viewers) -> u64 {
    viewers.values().map(|n| u64::from(*n)).sum()
}

pub struct Audience {
    instance: Uuid,
    redis: Option<Arc<RedisClient>>,
    /// Without Redis, whether this instance is the only one (the embedded mode).
    alone: bool,
    tokens: Option<Arc<TokenVerifier>>,
    /// `TRUST_FORWARDED_FOR`: an anonymous viewer is the first `X-Forwarded-For` address (behind
    /// the operator's own proxy, where every peer address is the proxy's).
    trust_forwarded_for: bool,
    /// Viewers per room on this instance, each with its number of open streams.
    rooms: Mutex<HashMap<Uuid, Viewers>>,
    /// What each room's subscribers were told last.
    told: Mutex<HashMap<Uuid, Online>>,
    redis_ok: AtomicBool,
}

/// A viewer's seat in a room, held by their stream; leaving is dropping it.
pub struct Seat {
    audience: Arc<Audience>,
    room: Uuid,
    viewer: Arc<str>,
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut rooms = self.audience.rooms.lock().expect("audience lock");
        if let Some(viewers) = rooms.get_mut(&self.room) {
            if let Some(streams) = viewers.get_mut(&self.viewer) {
                *streams -= 1;
                if *streams == 0 {
                    viewers.remove(&self.viewer);
                }
            }
            if viewers.is_empty() {
                rooms.remove(&self.room);
            }
        }
    }
}

impl Audience {
    /// Counts shared through `redis` when given; else this instance's own (the whole truth when
    /// it is `alone`).
    pub fn new(
        redis: Option<Arc<RedisClient>>,
        alone: bool,
        tokens: Option<Arc<TokenVerifier>>,
        trust_forwarded_for: bool,
    ) -> Self {
        Self {
            instance: Uuid::now_v7(),
            redis,
            alone,
            tokens,
            trust_forwarded_for,
            rooms: Mutex::default(),
            told: Mutex::default(),
            redis_ok: AtomicBool::new(true),
        }
    }

    /// Who a stream request comes from: the user of its token if it verifies, else its client
    /// address.
    pub async fn viewer(
        &self,
        token: Option<&str>,
        headers: &HeaderMap,
        peer: SocketAddr,
    ) -> Arc<str> {
        if let (Some(token), Some(tokens)) = (token, &self.tokens)
            && let Ok(user) = tokens.verify(token).await
        {
            return Arc::from(format!("u:{}", user.id));
        }
        Arc::from(format!("a:{}", self.client_addr(headers, peer)))
    }

    /// The client address of a request: its peer, or the first `X-Forwarded-For` address with
    /// `TRUST_FORWARDED_FOR` ([`client_ip`]).
    pub fn client_addr(&self, headers: &HeaderMap, peer: SocketAddr) -> std::net::IpAddr {
        client_ip(headers, Some(peer), self.trust_forwarded_for).unwrap_or(peer.ip())
    }

    /// Seats `viewer` in `room` until the returned seat drops.
    pub fn join(self: &Arc<Self>, room: Uuid, viewer: Arc<str>) -> Seat {
        let mut rooms = self.rooms.lock().expect("audience lock");
        *rooms
            .entry(room)
            .or_default()
            .entry(viewer.clone())
            .or_default() += 1;
        Seat {
            audience: self.clone(),
            room,
            viewer,
        }
    }

    /// The count to show a new subscriber at once: what the room's subscribers were told last;
    /// for a room this instance has told nothing yet, the merged count read now (and kept as told).
    pub async fn current(&self, room: Uuid) -> Online {
        if let Some(told) = self.told.lock().expect("audience lock").get(&room) {
            return *told;
        }
        let here = self.here(room);
        let online = match &self.redis {
            None => Online {
                online: here,
                scope: self.scope_without_redis(),
            },
            Some(redis) => match presence::counts(redis, &[room]).await {
                Ok(counts) => Online {
                    online: counts.get(&room).copied().unwrap_or(0).max(here),
                    scope: None,
                },
                Err(_) => Online {
                    online: here,
                    scope: Some("instance"),
                },
            },
        };
        // Told now: the next round announces only a change.
        self.told
            .lock()
            .expect("audience lock")
            .insert(room, online);
        online
    }

    /// Distinct viewers of `room` on this instance.
    pub fn here(&self, room: Uuid) -> u64 {
        let rooms = self.rooms.lock().expect("audience lock");
        rooms.get(&room).map_or(0, |viewers| viewers.len() as u64)
    }

    /// Streams open to `room` on this instance (a viewer's tabs each count).
    pub fn streams_here(&self, room: Uuid) -> u64 {
        let rooms = self.rooms.lock().expect("audience lock");
        rooms.get(&room).map_or(0, open_streams)
    }

    /// The label of a count made here alone: none when this instance is the only one.
    fn scope_without_redis(&self) -> Option<&'static str> {
        (!self.alone || self.redis.is_some()).then_some("instance")
    }

    /// Every [`ROUND`]: exchanges counts and tells each room's subscribers when theirs changed.
    pub async fn run(
        self: Arc<Self>,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) {
        let mut every = tokio::time::interval(ROUND);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut published = HashSet::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = every.tick() => published = self.round(&hub, &metrics, published).await,
            }
        }
        // Leaving: this instance's summaries stop counting now rather than when they expire.
        if let Some(redis) = &self.redis {
            let gone: Vec<_> = published
                .into_iter()
                .map(|room| Seen {
                    room,
                    ..Seen::default()
                })
                .collect();
            let _ = presence::publish(redis, self.instance, &gone).await;
        }
    }

    /// One round; `published` are the rooms this instance wrote a summary of last round.
    async fn round(&self, hub: &Hub, metrics: &Metrics, published: HashSet<Uuid>) -> HashSet<Uuid> {
        let here: Vec<Seen> = {
            let rooms = self.rooms.lock().expect("audience lock");
            rooms
                .iter()
                .map(|(room, viewers)| Seen {
                    room: *room,
                    viewers: viewers.keys().map(|v| v.to_string()).collect(),
                    streams: open_streams(viewers),
                })
                .collect()
        };
        let now: HashSet<Uuid> = here.iter().map(|seen| seen.room).collect();
        let local = |seen: &Seen| (seen.room, seen.viewers.len() as u64);
        let counts: Vec<(Uuid, Online)> = match self.shared_counts(&here, &published).await {
            Some(counts) => here
                .iter()
                .map(|entry| {
                    let (room, own) = local(entry);
                    // HyperLogLog may come out a little under this instance's exact count.
                    let online = counts.get(&room).copied().unwrap_or(0).max(own);
                    (
                        room,
                        Online {
                            online,
                            scope: None,
                        },
                    )
                })
                .collect(),
            None => here
                .iter()
                .map(|entry| {
                    let (room, online) = local(entry);
                    let scope = self.scope_without_redis();
                    (room, Online { online, scope })
                })
                .collect(),
        };
        for (bound, le) in AUDIENCE_BUCKETS {
            let rooms = counts.iter().filter(|(_, o)| o.online <= bound).count();
            metrics
                .room_viewers
                .get_or_create(&SizeLabel { le })
                .set(rooms as i64);
        }
        let mut told = self.told.lock().expect("audience lock");
        told.retain(|room, _| now.contains(room));
        for (room, online) in counts {
            if told.get(&room) != Some(&online) {
                told.insert(room, online);
                hub.announce(room, presence_frame(online));
            }
        }
        hub.write_due();
        now
    }

    /// Writes this instance's viewers (and removes the summaries of rooms it no longer has) and
    /// reads every room's merged count; `None` without Redis or when it fails.
    async fn shared_counts(
        &self,
        here: &[Seen],
        published: &HashSet<Uuid>,
    ) -> Option<HashMap<Uuid, u64>> {
        let redis = self.redis.as_ref()?;
        let mut writes = here.to_vec();
        writes.extend(
            published
                .iter()
                .filter(|room| !here.iter().any(|seen| seen.room == **room))
                .map(|room| Seen {
                    room: *room,
                    ..Seen::default()
                }),
        );
        let rooms: Vec<Uuid> = here.iter().map(|seen| seen.room).collect();
        let result = match presence::publish(redis, self.instance, &writes).await {
            Ok(()) => presence::counts(redis, &rooms).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(counts) => {
                if !self.redis_ok.swap(true, Ordering::Relaxed) {
                    tracing::info!("audience counts: Redis answers again");
                }
                Some(counts)
            }
            Err(e) => {
                if self.redis_ok.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "audience counts: Redis failed; counting this instance only");
                }
                None
            }
        }
    }
}
