//! Rooms: create, list, show.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::{
    event::RoomMode,
    http::{ApiPath, ApiQuery},
    openapi::{
        BadRequest, Forbidden, IdempotencyHeader, InvalidBody, KeyedBody, NotFound, RateLimited,
        Unauthorized, Unavailable,
    },
    readmodel::Room,
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    commands::{self, synced_room},
    error::{ApiError, ApiJson},
    idempotency::{Fingerprint, IdempotencyKey, Keyed},
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

/// A page of rooms, in creation order.
#[derive(Serialize, ToSchema)]
struct RoomList {
    rooms: Vec<ListedRoom>,
    /// Pass it as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Rooms per page when `limit` is not given.
const DEFAULT_ROOM_PAGE: i64 = 50;
/// The largest `limit`.
const MAX_ROOM_PAGE: i64 = 100;

#[derive(Deserialize)]
struct RoomPageQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

impl RoomPageQuery {
    fn limit(&self) -> Result<i64, ApiError> {
        let Some(raw) = self.limit.as_deref() else {
            return Ok(DEFAULT_ROOM_PAGE);
        };
        match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_ROOM_PAGE).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit must be a whole number from 1 to {MAX_ROOM_PAGE}"),
            )),
        }
    }

    fn cursor(&self) -> Result<Option<(DateTime<Utc>, Uuid)>, ApiError> {
        match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => Ok(None),
            Some(raw) => parse_room_cursor(raw).map(Some).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "cursor must be a next_cursor this API gave",
                )
            }),
        }
    }
}

/// The cursor after `room`: its creation time (nanoseconds since the epoch, hex) and id. Clients
/// treat it as opaque; the server reads it back with [`parse_room_cursor`].
fn room_cursor(room: &Room) -> String {
    let nanos = room.created_at.timestamp_nanos_opt().unwrap_or(i64::MAX);
    format!("{nanos:x}.{}", room.id.simple())
}

fn parse_room_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (nanos, id) = raw.split_once('.')?;
    let nanos = i64::from_str_radix(nanos, 16).ok()?;
    if nanos < 0 || id.len() != 32 {
        return None;
    }
    Some((
        DateTime::from_timestamp_nanos(nanos),
        Uuid::try_parse(id).ok()?,
    ))
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
    let room = commands::create_room(&state, user, name, keyed).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// A page of rooms, oldest first.
///
/// Keyset pages: `next_cursor` names the last room of this page, and the next page starts after
/// it, so rooms created meanwhile never shift a page (they come at the end). Served from memory
/// (the write model's rooms), not the database.
#[utoipa::path(get, path = "/api/rooms", operation_id = "list_rooms", tag = "rooms",
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100,
            description = "Rooms per page (default 50)"),
        ("cursor" = Option<String>, Query,
            description = "The previous page's `next_cursor`: this page starts after it"),
    ),
    responses(
        (status = 200, description = "A page of rooms", body = RoomList),
        BadRequest,
        Unavailable,
    ))]
async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<RoomPageQuery>,
) -> Result<Json<RoomList>, ApiError> {
    let (limit, after) = (query.limit()?, query.cursor()?);
    // From the write model: every room, in memory, in creation order. One more than asked tells
    // whether there is a next page.
    let mut rooms = state
        .write
        .read(|facts| facts.rooms_after(after, limit as usize + 1));
    let next_cursor = if rooms.len() as i64 > limit {
        rooms.truncate(limit as usize);
        rooms.last().map(room_cursor)
    } else {
        None
    };
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
    Ok(Json(RoomList { rooms, next_cursor }))
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
    let room = synced_room(&state, &room).await?;
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
/// Answers once this chat-server has applied the change; every chat-server catches up with the log
/// before deciding a post, so the next post anywhere is held to it. The
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
    let room = commands::update_room(&state, user, &room, slow_mode_secs).await?;
    Ok(Json(room))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(nanos: i64) -> Room {
        Room {
            id: Uuid::now_v7(),
            name: "r".to_owned(),
            created_at: DateTime::from_timestamp_nanos(nanos),
            owner: shared::event::User {
                id: Uuid::nil(),
                name: "o".to_owned(),
            },
            slow_mode_secs: 0,
        }
    }

    #[test]
    fn a_room_cursor_reads_back_as_the_room_it_names() {
        let room = room(1_796_611_868_123_456_789);
        let cursor = room_cursor(&room);
        assert_eq!(parse_room_cursor(&cursor), Some((room.created_at, room.id)));
    }

    #[test]
    fn a_made_up_cursor_is_refused() {
        for raw in [
            "",
            "x",
            "12.nope",
            "-1.00000000000000000000000000000000",
            "ff",
            "ff.",
            ".ff",
        ] {
            assert_eq!(parse_room_cursor(raw), None, "{raw:?}");
        }
        let query = RoomPageQuery {
            limit: Some("101".to_owned()),
            cursor: Some("garbage".to_owned()),
        };
        assert_eq!(query.limit().unwrap_err().code, "invalid_limit");
        assert_eq!(query.cursor().unwrap_err().code, "invalid_cursor");
    }
}
