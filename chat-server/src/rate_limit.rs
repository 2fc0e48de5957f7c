//! Limits that apply to a whole route, as a tower layer (tower-governor), and the one 429 shape.
//!
//! `POST /api/sessions` and `POST /api/rooms` are limited per client address, before the handler
//! runs, so neither sign-ups nor rooms can be flooded from one address (whatever the number of
//! users it signs in). Limits that depend on what a request is about stay in the handlers with `governor`
//! itself: the throttled fetch limit applies only once the room is known to be hot, and the per-user
//! write limit ([`crate::limits`]) needs the verified user, which can take a JWKS fetch.
//!
//! Every 429, from a layer or a handler, is [`too_many_requests`]: the API's error body with code
//! `rate_limited` and `Retry-After`.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::ConnectInfo,
    http::{Request, StatusCode},
    response::IntoResponse,
};
use governor::middleware::NoOpMiddleware;
use shared::{http::client_ip, settings};
use tower_governor::{
    GovernorError, GovernorLayer,
    governor::{GovernorConfig, GovernorConfigBuilder},
    key_extractor::KeyExtractor,
};

use crate::error::ApiError;

/// How often one client address may sign in (`POST /api/sessions`), per chat-server; 429 beyond.
#[derive(Debug, Clone, Copy, clap::Args)]
#[command(next_help_heading = "Sign-in limits")]
pub struct SessionLimits {
    /// Sign-ins per minute from one client address (at least 1).
    #[arg(
        id = "session_rate",
        long = "session-rate",
        env = "SESSION_RATE",
        default_value = "30",
        value_parser = settings::at_least(1u32)
    )]
    pub rate: u32,
    /// Sign-ins one client address may make at once before the rate applies (at least 1).
    #[arg(
        id = "session_burst",
        long = "session-burst",
        env = "SESSION_BURST",
        default_value = "10",
        value_parser = settings::at_least(1u32)
    )]
    pub burst: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        settings::defaults()
    }
}

/// How often one client address may create rooms (`POST /api/rooms`), per chat-server; 429 beyond.
#[derive(Debug, Clone, Copy, clap::Args)]
#[command(next_help_heading = "Room creation limits")]
pub struct RoomLimits {
    /// Rooms per minute one client address may create (at least 1).
    #[arg(
        id = "room_rate",
        long = "room-rate",
        env = "ROOM_RATE",
        default_value = "10",
        value_parser = settings::at_least(1u32)
    )]
    pub rate: u32,
    /// Rooms one client address may create at once before the rate applies (at least 1).
    #[arg(
        id = "room_burst",
        long = "room-burst",
        env = "ROOM_BURST",
        default_value = "5",
        value_parser = settings::at_least(1u32)
    )]
    pub burst: u32,
}

impl Default for RoomLimits {
    fn default() -> Self {
        settings::defaults()
    }
}

/// 429 `rate_limited` with `Retry-After: secs` (at least 1).
pub fn too_many_requests(secs: u64, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        .with_retry_after(secs.max(1))
}

/// Seconds to tell a client to wait: `wait` rounded up, at least 1.
pub fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// tower-governor's key: the client address of [`client_ip`].
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress {
    pub trust_forwarded_for: bool,
}

impl KeyExtractor for ClientAddress {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        client_ip(req.headers(), peer, self.trust_forwarded_for)
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// A per-address limit's state (shared by its layer and the housekeeping that trims it).
pub type AddressLimit = Arc<GovernorConfig<ClientAddress, NoOpMiddleware>>;
pub type SessionLimit = AddressLimit;

/// The sign-in limit's state.
pub fn session_limit(limits: SessionLimits, trust_forwarded_for: bool) -> SessionLimit {
    address_limit(limits.rate, limits.burst, trust_forwarded_for)
}

/// The room-creation limit's state.
pub fn room_limit(limits: RoomLimits, trust_forwarded_for: bool) -> AddressLimit {
    address_limit(limits.rate, limits.burst, trust_forwarded_for)
}

/// `per_minute` requests a minute per client address, `burst` at once.
fn address_limit(per_minute: u32, burst: u32, trust_forwarded_for: bool) -> AddressLimit {
    let period = Duration::from_secs(60) / per_minute.max(1);
    Arc::new(
        GovernorConfigBuilder::default()
            .period(period)
            .burst_size(burst.max(1))
            .key_extractor(ClientAddress {
                trust_forwarded_for,
            })
            .finish()
            .expect("period and burst are at least 1"),
    )
}

/// The layer enforcing the sign-in limit, answering in the API's 429 shape.
pub fn session_layer(
    limit: &SessionLimit,
) -> GovernorLayer<ClientAddress, NoOpMiddleware, axum::body::Body> {
    address_layer(limit, "sign-ins")
}

/// The layer enforcing the room-creation limit, answering in the API's 429 shape.
pub fn room_layer(
    limit: &AddressLimit,
) -> GovernorLayer<ClientAddress, NoOpMiddleware, axum::body::Body> {
    address_layer(limit, "new rooms")
}

fn address_layer(
    limit: &AddressLimit,
    what: &'static str,
) -> GovernorLayer<ClientAddress, NoOpMiddleware, axum::body::Body> {
    GovernorLayer::new(limit.clone())
        .error_handler(move |error| governor_error(error, what).into_response())
}

fn governor_error(error: GovernorError, what: &str) -> ApiError {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => too_many_requests(
            wait_time,
            format!(
                "too many {what} from your address; try again in {} s",
                wait_time.max(1)
            ),
        ),
        GovernorError::UnableToExtractKey => {
            tracing::error!("no client address on a request (ConnectInfo missing)");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the client address is unknown",
            )
        }
        GovernorError::Other { code, msg, .. } => ApiError::new(
            code,
            "rate_limited",
            msg.unwrap_or_else(|| "request refused".to_owned()),
        ),
    }
}

/// Forgets addresses that have not been limited recently.
pub fn housekeeping(limit: &AddressLimit) {
    limit.limiter().retain_recent();
    limit.limiter().shrink_to_fit();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_governor_refusal_is_the_api_429() {
        let error = governor_error(
            GovernorError::TooManyRequests {
                wait_time: 0,
                headers: None,
            },
            "sign-ins",
        );
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.code, "rate_limited");
        assert_eq!(error.retry_after, Some(1));
    }
}
