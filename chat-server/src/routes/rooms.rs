//! Rooms: create, list, show.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use serde::{Deserialize, Serialize};
use shared::{
    event::{Envelope, EventBody, RoomMode},
    http::ApiPath,
    openapi::{
        BadRequest, Forbidden, IdempotencyHeader, InvalidBody, KeyedBody, NotFound, RateLimited,
        Unauthorized, Unavailable,
    },
    readmodel::Room,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{append_once, append_settled, current_room, not_banned};
use crate::{
    auth::AuthUser,
    error::{ApiError, ApiJson},
    idempotency::{Fingerprint, IdempotencyKey, Keyed},
    moderation::{forbidden, runs_room},
    rate_limit::{self, AddressLimit},
    state::AppState,
    validate,
};

/// `limit` is the per-address room-creation limit, enforced on `POST /api/rooms` before the body
/// is read.
pub fn router(limit: &AddressLimit) -> OpenApiRouter<AppState> {
    let create = OpenApiRouter::new()
        .routes(routes!(create))
        .route_layer(rate_limit::room_layer(limit));
    OpenApiRouter::new()
        .routes(routes!(list))
        .merge(create)
        .routes(routes!(show, update))
}

#[derive(Deserialize, ToSchema)]
struct NewRoom {
    /// 1 to 80 characters once trimmed, no control characters.
    #[schema(
        min_length = 1,
        max_length = 80,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
}

/// A room in the list: hot rooms are served in the throttled mode.
#[derive(Serialize, ToSchema)]
struct ListedRoom {
    #[serde(flatten)]
    room: Room,
    hot: bool,
    /// Distinct viewers across every publish-server; `null` when unknown (no Redis to count in).
    online: Option<u64>,
}

#[derive(Serialize, ToSchema)]
struct RoomList {
    rooms: Vec<ListedRoom>,
}

/// A room and the mode its history is served in.
#[derive(Serialize, ToSchema)]
struct RoomDetail {
    #[serde(flatten)]
    room: Room,
    mode: RoomMode,
    /// Distinct viewers across every publish-server; `null` when unknown (no Redis to count in).
    online: Option<u64>,
}

/// Creates a room; the creator can post to it at once.
#[utoipa::path(post, path = "/api/rooms", operation_id = "create_room", tag = "rooms", request_body = NewRoom,
    params(IdempotencyHeader),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The room, once the broker acknowledged its creation (a retry \
            with the same Idempotency-Key: the first attempt's room)", body = Room),
        KeyedBody,
        Unauthorized,
        RateLimited,
        Unavailable,
    ))]
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
    let (event, appended) = append_once(
        &state,
        keyed.as_ref(),
        Envelope::new(room_id, user, body),
        None,
    )
    .await?;
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
        owner: event.user.clone(),
        slow_mode_secs: 0,
    };
    // Known from now on even if the database is unreachable: posting to it needs no query.
    state.rooms.insert(room.id, room.clone()).await;
    Ok((StatusCode::CREATED, Json(room)))
}

/// Every room.
#[utoipa::path(get, path = "/api/rooms", operation_id = "list_rooms", tag = "rooms",
    responses((status = 200, description = "Every room", body = RoomList), Unavailable))]
async fn list(State(state): State<AppState>) -> Result<Json<RoomList>, ApiError> {
    let rooms = state.read_model.rooms().await?;
    let ids: Vec<Uuid> = rooms.iter().map(|room| room.id).collect();
    let online = state.online.counts(&ids).await;
    let rooms: Vec<ListedRoom> = rooms
        .into_iter()
        .map(|room| ListedRoom {
            hot: state.hot.is_hot(room.id),
            online: online.get(&room.id).copied(),
            room,
        })
        .collect();
    Ok(Json(RoomList { rooms }))
}

/// One room, with the mode its history is served in.
#[utoipa::path(get, path = "/api/rooms/{room}", operation_id = "show_room", tag = "rooms",
    params(("room" = Uuid, Path, description = "The room's id")),
    responses(
        (status = 200, description = "The room", body = RoomDetail),
        BadRequest,
        NotFound,
        Unavailable,
    ))]
async fn show(
    State(state): State<AppState>,
    ApiPath(room): ApiPath<String>,
) -> Result<Json<RoomDetail>, ApiError> {
    let room = current_room(&state, &room).await?;
    let mode = state.hot.mode(room.id);
    let online = state.online.counts(&[room.id]).await.get(&room.id).copied();
    Ok(Json(RoomDetail { room, mode, online }))
}

#[derive(Deserialize, ToSchema)]
struct RoomSettings {
    /// Each user may post once per this many seconds (owner and moderators exempt); 0 turns it off.
    #[schema(minimum = 0, maximum = 3600)]
    slow_mode_secs: i64,
}

/// Changes the room's settings (slow mode): its owner and moderators may.
///
/// Answers once the read model has the change, so the next post anywhere is held to it. The
/// room's subscribers get `event: room`.
#[utoipa::path(patch, path = "/api/rooms/{room}", operation_id = "update_room", tag = "rooms",
    params(("room" = Uuid, Path, description = "The room's id")),
    request_body = RoomSettings,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The room with its new settings", body = Room),
        InvalidBody,
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn update(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(room): ApiPath<String>,
    ApiJson(body): ApiJson<RoomSettings>,
) -> Result<Json<Room>, ApiError> {
    let slow_mode_secs = validate::slow_mode_secs(body.slow_mode_secs)
        .map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let mut room = current_room(&state, &room).await?;
    let standing = not_banned(&state, &room, user.id).await?;
    if !runs_room(&standing, user.id) {
        return Err(forbidden(
            "only the room's owner or a moderator can change its settings",
        ));
    }
    if room.slow_mode_secs != slow_mode_secs {
        room.slow_mode_secs = slow_mode_secs;
        let body = EventBody::RoomUpdated {
            name: room.name.clone(),
            owner: room.owner.clone(),
            created_at: room.created_at,
            slow_mode_secs,
        };
        append_settled(&state, &Envelope::new(room.id, user, body)).await?;
        state.rooms.insert(room.id, room.clone()).await;
    }
    Ok(Json(room))
}
