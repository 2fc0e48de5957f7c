//! Reactions: add or remove one emoji on a message, as the signed-in user.
//!
//! Both answer 202: the event is in the log, and counts change once it is projected. A reaction is a
//! set membership (message, emoji, user), so repeating a PUT or a DELETE changes nothing further.

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use shared::{
    event::{Envelope, EventBody},
    http::ApiPath,
    openapi::{BadRequest, Forbidden, NotFound, RateLimited, Unauthorized, Unavailable},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{append, existing_room, live_message, not_banned};
use crate::{auth::AuthUser, error::ApiError, state::AppState, validate};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(add, remove))
}

/// What was asked; counts change once the event is projected.
#[derive(Serialize, ToSchema)]
struct ReactionAccepted {
    message_id: Uuid,
    emoji: String,
    /// `added` or `removed`.
    #[schema(pattern = "^(added|removed)$")]
    op: &'static str,
}

type Reaction = (StatusCode, Json<ReactionAccepted>);

/// Reacts to a message with an emoji, as the signed-in user (idempotent).
#[utoipa::path(put, path = "/api/rooms/{room}/messages/{message}/reactions/{emoji}", operation_id = "add_reaction",
    tag = "reactions",
    params(
        ("room" = Uuid, Path, description = "The room's id"),
        ("message" = Uuid, Path, description = "A message of that room"),
        ("emoji" = String, Path, description = "Exactly one emoji", example = "👍"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The reaction is in the log", body = ReactionAccepted),
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn add(
    state: State<AppState>,
    user: AuthUser,
    path: ApiPath<(String, String, String)>,
) -> Result<Reaction, ApiError> {
    react(state, user, path, true).await
}

/// Takes the signed-in user's reaction back (idempotent).
#[utoipa::path(delete, path = "/api/rooms/{room}/messages/{message}/reactions/{emoji}", operation_id = "remove_reaction",
    tag = "reactions",
    params(
        ("room" = Uuid, Path, description = "The room's id"),
        ("message" = Uuid, Path, description = "A message of that room"),
        ("emoji" = String, Path, description = "Exactly one emoji", example = "👍"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The removal is in the log", body = ReactionAccepted),
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn remove(
    state: State<AppState>,
    user: AuthUser,
    path: ApiPath<(String, String, String)>,
) -> Result<Reaction, ApiError> {
    react(state, user, path, false).await
}

async fn react(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath((room, message, emoji)): ApiPath<(String, String, String)>,
    added: bool,
) -> Result<Reaction, ApiError> {
    let emoji = validate::emoji(&emoji).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let room = existing_room(&state, &room).await?;
    let message_id: Uuid = message
        .parse()
        .map_err(|_| ApiError::not_found("message"))?;
    live_message(&state, user.id, room.id, &message).await?;
    not_banned(&state, &room, user.id).await?;
    state.reaction_limiter.admit(user.id, message_id)?;
    let emoji = emoji.to_owned();
    let body = if added {
        EventBody::ReactionAdded {
            message_id,
            emoji: emoji.clone(),
        }
    } else {
        EventBody::ReactionRemoved {
            message_id,
            emoji: emoji.clone(),
        }
    };
    append(&state, &Envelope::new(room.id, user, body)).await?;
    let op = if added { "added" } else { "removed" };
    Ok((
        StatusCode::ACCEPTED,
        Json(ReactionAccepted {
            message_id,
            emoji,
            op,
        }),
    ))
}
