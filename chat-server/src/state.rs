//! What every handler can reach.

use std::{ops::Deref, sync::Arc};

use shared::{event_log::EventLog, readmodel::ReadModel, supervise::TaskHealth};

use crate::{
    audience::Online,
    auth::TokenVerifier,
    hot::{HotView, RoomCounter, throttle::Throttle},
    idempotency::KeyStore,
    limits::{PostLimiter, ReactionLimiter},
    metrics::Metrics,
    moderation::SlowMode,
    rate_limit::{AddressLimit, SessionLimit},
    write_model::WriteModel,
};

/// Shared by every handler; a clone is one reference count (axum clones the state per request).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

pub struct Services {
    pub log: Arc<EventLog>,
    pub read_model: ReadModel,
    /// What every write is decided on: rooms, roles, bans and recent messages, kept from the log.
    pub write: Arc<WriteModel>,
    /// Slow-mode slots per room and user.
    pub slow_mode: Arc<SlowMode>,
    /// Where the rooms' audience counts come from.
    pub online: Online,
    /// Issues session tokens and verifies every bearer token.
    pub tokens: Arc<TokenVerifier>,
    pub metrics: Arc<Metrics>,
    pub hot: Arc<HotView>,
    /// History fetches per room, counted toward hot-room detection.
    pub counter: Arc<RoomCounter>,
    /// Events written per room, counted toward hot-room detection (× open streams: deliveries).
    pub written: Arc<RoomCounter>,
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
    /// Whether every critical background task still runs (readiness).
    pub health: TaskHealth,
}
