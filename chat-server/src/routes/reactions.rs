//! Reactions: add or remove one emoji on a message, as the signed-in user.
//!
//! Both answer 202: the event is in the log, and counts change once it is projected. A reaction is a
//! set membership (message, emoji, user), so repeating a PUT or a DELETE changes nothing further.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    routing::put,
};
use serde_json::{Value, json};
use shared::event::{Envelope, EventBody};
use uuid::Uuid;

use super::{append, existing_room};
use crate::{auth::AuthUser, error::ApiError, state::AppState, validate};

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/rooms/{room}/messages/{message}/reactions/{emoji}",
        put(add).delete(remove),
    )
}

async fn add(
    state: State<AppState>,
    user: AuthUser,
    path: Path<(String, String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    react(state, user, path, true).await
}

async fn remove(
    state: State<AppState>,
    user: AuthUser,
    path: Path<(String, String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    react(state, user, path, false).await
}

async fn react(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path((room, message, emoji)): Path<(String, String, String)>,
    added: bool,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let emoji = validate::emoji(&emoji).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let room = existing_room(&state, &room).await?;
    let message_id: Uuid = message
        .parse()
        .map_err(|_| ApiError::not_found("message"))?;
    let posted_here = state.posted.get(&message_id).await == Some(room.id);
    if !posted_here
        && !state
            .read_model
            .message_in_room(room.id, message_id)
            .await?
    {
        return Err(ApiError::not_found("message"));
    }
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
        Json(json!({"message_id": message_id, "emoji": emoji, "op": op})),
    ))
}
