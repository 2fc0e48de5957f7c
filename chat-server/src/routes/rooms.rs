//! Rooms: create, list, show.

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shared::{
    event::{Envelope, EventBody},
    readmodel::Room,
};
use uuid::Uuid;

use super::{append_once, existing_room};
use crate::{
    auth::AuthUser,
    error::{ApiError, ApiJson},
    idempotency::{Fingerprint, IdempotencyKey, Keyed},
    state::AppState,
    validate,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/rooms", get(list).post(create))
        .route("/api/rooms/{room}", get(show))
}

#[derive(Deserialize)]
struct NewRoom {
    name: String,
}

#[derive(Serialize)]
struct ListedRoom {
    #[serde(flatten)]
    room: Room,
    hot: bool,
}

async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewRoom>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let name = validate::name("room name", &body.name, validate::MAX_ROOM_NAME_CHARS)
        .map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let keyed = key.as_ref().map(|key| Keyed {
        user: user.id,
        key,
        fingerprint: Fingerprint::of(&[b"room", name.as_bytes()]),
    });
    let room_id = keyed.as_ref().map_or_else(Uuid::now_v7, |k| k.id("room"));
    let body = EventBody::RoomCreated {
        name: name.to_owned(),
    };
    let (event, appended) =
        append_once(&state, keyed.as_ref(), Envelope::new(room_id, user, body)).await?;
    let EventBody::RoomCreated { name } = &event.body else {
        unreachable!("a kept write has the body it was made with")
    };
    // Write the room through to the read model as well, so the creator can post to it at once
    // instead of racing the projector. Applying is keyed by event id, so the projector's later copy
    // is a no-op; if this write fails the projector still brings the room in.
    if let Some(cursor) = appended
        && let Err(e) = state
            .read_model
            .apply_batch(&[(cursor, event.clone())], &[])
            .await
    {
        tracing::warn!(room_id = %event.room_id, error = %e, "room write-through failed; the projector will add it");
    }
    let room = Room {
        id: event.room_id,
        name: name.to_owned(),
        created_at: event.at,
    };
    // Known from now on even if the database is unreachable: posting to it needs no query.
    state.rooms.insert(room.id, room.clone()).await;
    Ok((StatusCode::CREATED, Json(room)))
}

async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let rooms: Vec<ListedRoom> = state
        .read_model
        .rooms()
        .await?
        .into_iter()
        .map(|room| ListedRoom {
            hot: state.hot.is_hot(room.id),
            room,
        })
        .collect();
    Ok(Json(json!({ "rooms": rooms })))
}

async fn show(
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let room = existing_room(&state, &room).await?;
    let room_id = room.id;
    let mut body =
        serde_json::to_value(room).map_err(|e| ApiError::unavailable("serialisation", e))?;
    body["mode"] = json!(state.hot.mode(room_id));
    Ok(Json(body))
}
