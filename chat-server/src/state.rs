//! What every handler can reach.

use std::sync::Arc;

use moka::future::Cache;
use shared::{
    event_log::EventLog,
    readmodel::{ReadModel, Room},
};
use uuid::Uuid;

use crate::{
    audience::Online,
    auth::TokenVerifier,
    hot::{FetchCounter, HotView, throttle::Throttle},
    idempotency::KeyStore,
    limits::{PostLimiter, ReactionLimiter},
    metrics::Metrics,
    moderation::{LastStandings, PostedHere, SlowMode},
    rate_limit::{AddressLimit, SessionLimit},
};

#[derive(Clone)]
pub struct AppState {
    pub log: Arc<EventLog>,
    pub read_model: ReadModel,
    /// Rooms already seen: rooms are never deleted, so a hit needs no database query (and a hot
    /// room's fetches do not query the database just to learn that the room exists).
    pub rooms: Cache<Uuid, Room>,
    /// Messages posted through this instance, with their room and author: a reaction, an edit or
    /// a delete of one is accepted even before the projector has written it (the client saw it on
    /// its stream and clicked at once).
    pub posted: Cache<Uuid, PostedHere>,
    /// Each user's standing per room as last read, for when the database does not answer.
    pub standings: LastStandings,
    /// Slow-mode slots per room and user.
    pub slow_mode: Arc<SlowMode>,
    /// Where the rooms' audience counts come from.
    pub online: Online,
    /// Issues session tokens and verifies every bearer token.
    pub tokens: Arc<TokenVerifier>,
    pub metrics: Arc<Metrics>,
    pub hot: Arc<HotView>,
    pub counter: Arc<FetchCounter>,
    pub throttle: Arc<Throttle>,
    /// `Idempotency-Key`s of the last 24 hours.
    pub idempotency: Arc<KeyStore>,
    /// Sign-ins per client address (the layer on `POST /api/sessions` enforces it).
    pub session_limit: SessionLimit,
    /// Rooms created per client address (the layer on `POST /api/rooms` enforces it).
    pub room_limit: AddressLimit,
    /// Per-user write limits.
    pub post_limiter: Arc<PostLimiter>,
    /// Reaction changes per user and message.
    pub reaction_limiter: Arc<ReactionLimiter>,
    /// Key anonymous clients by `X-Forwarded-For` (behind a trusted proxy).
    pub trust_forwarded_for: bool,
}
