//! Messages: post one, fetch a page of history.

use std::net::SocketAddr;

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use shared::{
    event::{EventBody, RoomMode, User},
    http::{ApiPath, ApiQuery, ROOM_MODE, client_ip},
    openapi::{
        BadRequest, Forbidden, IdempotencyHeader, InvalidBody, KeyedBody, NotFound, RateLimited,
        Unauthorized, Unavailable,
    },
    readmodel::{MAX_PAGE, Message},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    auth::AuthUser,
    commands::{self, known_room},
    error::{ApiError, ApiJson},
    idempotency::{Fingerprint, IdempotencyKey, Keyed},
    metrics::ModeLabel,
    rate_limit::{retry_secs, too_many_requests},
    state::AppState,
    validate,
};

/// Messages per page when `limit` is not given.
pub const DEFAULT_PAGE: i64 = 50;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(fetch, post))
        .routes(routes!(edit, delete))
}

#[derive(Deserialize, ToSchema)]
struct NewMessage {
    /// Not blank, at most 4000 characters; kept as written.
    #[schema(min_length = 1, max_length = 4000, pattern = "\\S")]
    text: String,
}

/// Posts a message as the signed-in user.
#[utoipa::path(post, path = "/api/rooms/{room}/messages", operation_id = "post_message", tag = "messages",
    params(("room" = Uuid, Path, description = "The room's id"), IdempotencyHeader),
    request_body = NewMessage,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The message, once the broker acknowledged it (a retry with \
            the same Idempotency-Key: the first attempt's message)", body = Message),
        KeyedBody,
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn post(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(room): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<NewMessage>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let key = IdempotencyKey::from_headers(&headers)?;
    let text =
        validate::message_text(&body.text).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let user_id = user.id;
    let keyed = |room: Uuid| {
        key.as_ref().map(|key| Keyed {
            user: user_id,
            key,
            fingerprint: Fingerprint::of(&[b"message", room.as_bytes(), text.as_bytes()]),
        })
    };
    let event = commands::post_message(&state, user, &room, text, keyed).await?;
    let EventBody::MessagePosted { message_id, text } = event.body else {
        unreachable!("a kept write has the body it was made with")
    };
    Ok((
        StatusCode::CREATED,
        Json(Message {
            id: message_id,
            room_id: event.room_id,
            user: event.user,
            text,
            at: event.at,
            edited_at: None,
            reactions: Default::default(),
        }),
    ))
}

/// Changes the text of one of the signed-in user's own messages.
///
/// Answers once this chat-server has applied the edit (the next write anywhere sees it) and the
/// read model shows it (so the next history fetch does; at most 1 s, then it answers anyway).
#[utoipa::path(patch, path = "/api/rooms/{room}/messages/{message}", operation_id = "edit_message",
    tag = "messages",
    params(
        ("room" = Uuid, Path, description = "The room's id"),
        ("message" = Uuid, Path, description = "A message of that room, not deleted"),
    ),
    request_body = NewMessage,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message with its new text and `edited_at`", body = Message),
        InvalidBody,
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn edit(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath((room, message)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<NewMessage>,
) -> Result<Json<Message>, ApiError> {
    let text =
        validate::message_text(&body.text).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let event = commands::edit_message(&state, user, (&room, &message), text).await?;
    let EventBody::MessageEdited {
        message_id,
        posted_at,
        ..
    } = event.body
    else {
        unreachable!("an edit's event")
    };
    // The counts are a courtesy: without the database in time, none (the stream has them).
    let read = state.read_model.reactions(message_id);
    let reactions = match tokio::time::timeout(REACTIONS_DEADLINE, read).await {
        Ok(Ok(reactions)) => counts(reactions),
        _ => Default::default(),
    };
    Ok(Json(Message {
        id: message_id,
        room_id: event.room_id,
        user: event.user,
        text: text.to_owned(),
        at: posted_at,
        edited_at: Some(event.at),
        reactions,
    }))
}

/// How long an edit's answer waits for the message's reaction counts.
const REACTIONS_DEADLINE: std::time::Duration = std::time::Duration::from_millis(100);

fn counts(reactions: Vec<(String, Uuid)>) -> std::collections::BTreeMap<String, i64> {
    let mut counts = std::collections::BTreeMap::new();
    for (emoji, _) in reactions {
        *counts.entry(emoji).or_insert(0) += 1;
    }
    counts
}

/// A message is gone: `by` deleted it.
#[derive(Serialize, ToSchema)]
struct Deleted {
    message_id: Uuid,
    by: User,
}

/// Deletes a message, with its reactions: its author, the room's owner or a moderator may (but
/// nobody else the owner's).
///
/// Answers once this chat-server has applied the deletion (the next write anywhere sees it) and the
/// read model leaves the message out (so the next history fetch does; at most 1 s).
#[utoipa::path(delete, path = "/api/rooms/{room}/messages/{message}", operation_id = "delete_message",
    tag = "messages",
    params(
        ("room" = Uuid, Path, description = "The room's id"),
        ("message" = Uuid, Path, description = "A message of that room, not deleted"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "The deletion is in the log", body = Deleted),
        Unauthorized,
        Forbidden,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath((room, message)): ApiPath<(String, String)>,
) -> Result<(StatusCode, Json<Deleted>), ApiError> {
    let event = commands::delete_message(&state, user, (&room, &message)).await?;
    let EventBody::MessageDeleted { message_id } = event.body else {
        unreachable!("a deletion's event")
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(Deleted {
            message_id,
            by: event.user,
        }),
    ))
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<String>,
    before: Option<String>,
}

impl PageQuery {
    fn limit(&self) -> Result<i64, ApiError> {
        let Some(raw) = self.limit.as_deref() else {
            return Ok(DEFAULT_PAGE);
        };
        match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit must be a whole number from 1 to {MAX_PAGE}"),
            )),
        }
    }

    fn before(&self) -> Result<Option<Uuid>, ApiError> {
        self.before
            .as_deref()
            .filter(|b| !b.is_empty())
            .map(|raw| {
                raw.parse().map_err(|_| {
                    ApiError::bad_request("invalid_cursor", "before must be a message id")
                })
            })
            .transpose()
    }
}

/// A page of a room's history, oldest to newest.
///
/// The newest `limit` messages, or those just before `before`. In a hot room (`X-Room-Mode:
/// throttled`) pages are cached and shared, and each client may fetch only so often (429).
#[utoipa::path(get, path = "/api/rooms/{room}/messages", operation_id = "fetch_messages", tag = "messages",
    params(
        ("room" = Uuid, Path, description = "The room's id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200,
            description = "Messages per page (default 50)"),
        ("before" = Option<Uuid>, Query,
            description = "A message id of this room: the page ends just before it"),
    ),
    responses(
        (status = 200, description = "A page of history", body = MessagePage,
            headers(("X-Room-Mode" = String, description = "`normal` or `throttled`"))),
        BadRequest,
        NotFound,
        RateLimited,
        Unavailable,
    ))]
async fn fetch(
    State(state): State<AppState>,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (limit, before) = (query.limit()?, query.before()?);
    let room = known_room(&state, &room).await?;
    // Counted locally; the scheduler loop flushes the counts to the shared store.
    state.counter.record(room.id);
    state.metrics.fetches_counted.inc();
    let mode = state.hot.mode(room.id);
    let label = ModeLabel {
        mode: mode.as_str(),
    };
    state.metrics.fetches.get_or_create(&label).inc();
    let body = match mode {
        RoomMode::Normal => {
            state.metrics.fetch_db_queries.get_or_create(&label).inc();
            let messages = state.read_model.messages(room.id, before, limit).await?;
            page_body(&messages, mode)
        }
        RoomMode::Throttled => {
            let client = client_key(&state, &headers, peer);
            if let Err(wait) = state.throttle.admit(&client) {
                state.metrics.throttled_answers.inc();
                let secs = retry_secs(wait);
                let error =
                    too_many_requests(secs, format!("this room is busy; fetch again in {secs} s"));
                return Ok(with_mode(error.into_response(), mode));
            }
            let (read_model, metrics) = (state.read_model.clone(), state.metrics.clone());
            let page = state
                .throttle
                .page((room.id, before, limit), async move {
                    metrics.fetch_db_queries.get_or_create(&label).inc();
                    let messages = read_model.messages(room.id, before, limit).await?;
                    Ok(page_body(&messages, mode))
                })
                .await
                .map_err(|e| ApiError::from(&*e))?;
            if !page.queried {
                state.metrics.cache_hits.inc();
            }
            page.body
        }
    };
    let response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    Ok(with_mode(response, mode))
}

/// A page of history and the mode that served it.
#[derive(Serialize, ToSchema)]
struct MessagePage<'a> {
    /// Oldest to newest.
    #[schema(value_type = Vec<Message>)]
    messages: &'a [Message],
    mode: RoomMode,
}

/// The answer's JSON, serialised once (a throttled page is shared by every caller).
fn page_body(messages: &[Message], mode: RoomMode) -> Bytes {
    let body = MessagePage { messages, mode };
    Bytes::from(serde_json::to_vec(&body).expect("a page serialises"))
}

fn with_mode(mut response: Response, mode: RoomMode) -> Response {
    response
        .headers_mut()
        .insert(ROOM_MODE.clone(), HeaderValue::from_static(mode.as_str()));
    response
}

/// Whom a throttled fetch is charged to: the signed-in user, else the client's address. Only keys
/// already known verify a token here (no JWKS fetch on the hot path of a busy room).
fn client_key(state: &AppState, headers: &HeaderMap, peer: SocketAddr) -> String {
    let user = crate::auth::bearer(headers).and_then(|token| state.tokens.verify_cached(token));
    if let Some(user) = user {
        return format!("user:{}", user.id);
    }
    let ip = client_ip(headers, Some(peer), state.trust_forwarded_for).unwrap_or(peer.ip());
    format!("ip:{ip}")
}
