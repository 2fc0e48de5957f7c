//! Errors, and where they become answers.
//!
//! The API's error type is shared with publish-server, so both answer `{"error": {"code",
//! "message"}}` ([`ApiError`]). The write path ([`crate::commands`]) and what it calls (limits,
//! slow mode, idempotency records) speak the domain's language instead: a [`Refused`] says why a
//! write was not taken. It becomes an API error here, in one place, at the edge; a dependency
//! that failed is logged once, where its 503 is made.

use std::time::Duration;

use axum::http::StatusCode;
use shared::readmodel::Ban;

pub use shared::http::{ApiError, ApiJson};

use crate::rate_limit::{retry_secs, too_many_requests};

/// Why a write was not taken.
#[derive(Debug)]
pub enum Refused {
    /// No such room (or not a room id).
    UnknownRoom,
    /// No such message in the room, or it was deleted (or not a message id).
    UnknownMessage,
    /// The path does not name a user id.
    InvalidUser,
    /// The writer is banned from the room.
    Banned(Ban),
    /// The writer may not do this: the message says who may.
    Forbidden(String),
    /// Slow mode: the writer may post again after this long.
    SlowMode(Duration),
    /// The writer writes too fast: again after this long.
    TooFast(Duration),
    /// The writer changes reactions on one message too fast: again after this long.
    ReactingTooFast(Duration),
    /// The same `Idempotency-Key` came with another request.
    KeyReused,
    /// A dependency (the broker, the read model) did not do its part.
    Unavailable { what: &'static str, cause: String },
}

impl Refused {
    pub fn unavailable(what: &'static str, cause: impl std::fmt::Display) -> Self {
        Refused::Unavailable {
            what,
            cause: cause.to_string(),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::UnknownRoom => ApiError::not_found("room"),
            Refused::UnknownMessage => ApiError::not_found("message"),
            Refused::InvalidUser => {
                ApiError::bad_request("invalid_user", "the path must name a user id")
            }
            Refused::Banned(ban) => {
                let message = match ban.until {
                    Some(until) => {
                        format!("you are banned from this room until {}", until.to_rfc3339())
                    }
                    None => {
                        "you are banned from this room until a moderator lifts the ban".to_owned()
                    }
                };
                ApiError::forbidden("banned", message)
                    .with_field("until", serde_json::json!(ban.until))
            }
            Refused::Forbidden(message) => ApiError::forbidden("forbidden", message),
            Refused::SlowMode(wait) => {
                let secs = retry_secs(wait);
                let mut error = too_many_requests(
                    secs,
                    format!("slow mode is on: you can post again in {secs} s"),
                );
                error.code = "slow_mode";
                error
            }
            Refused::TooFast(wait) => {
                let secs = retry_secs(wait);
                too_many_requests(
                    secs,
                    format!("you are writing too fast; try again in {secs} s"),
                )
            }
            Refused::ReactingTooFast(wait) => {
                let secs = retry_secs(wait);
                too_many_requests(
                    secs,
                    format!(
                        "you are changing reactions on this message too fast; try again in {secs} s"
                    ),
                )
            }
            Refused::KeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request in the last 24 hours",
            ),
            Refused::Unavailable { what, cause } => ApiError::unavailable(what, cause),
        }
    }
}
