//! Messages: post one, fetch a page of history.

use std::net::SocketAddr;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::json;
use shared::{
    event::{Envelope, EventBody, RoomMode},
    http::ROOM_MODE,
    readmodel::{MAX_PAGE, Message},
};
use uuid::Uuid;

use super::{append, existing_room};
use crate::{
    auth::AuthUser,
    error::{ApiError, ApiJson},
    metrics::ModeLabel,
    rate_limit::{client_ip, retry_secs, too_many_requests},
    state::AppState,
    validate,
};

/// Messages per page when `limit` is not given.
pub const DEFAULT_PAGE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/rooms/{room}/messages", get(fetch).post(post))
}

#[derive(Deserialize)]
struct NewMessage {
    text: String,
}

async fn post(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(room): Path<String>,
    ApiJson(body): ApiJson<NewMessage>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let text =
        validate::message_text(&body.text).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let room = existing_room(&state, &room).await?;
    let message_id = Uuid::now_v7();
    let event = Envelope::new(
        room.id,
        user.clone(),
        EventBody::MessagePosted {
            message_id,
            text: text.to_owned(),
        },
    );
    append(&state, &event).await?;
    state.posted.insert(message_id, room.id).await;
    Ok((
        StatusCode::CREATED,
        Json(Message {
            id: message_id,
            room_id: room.id,
            user,
            text: text.to_owned(),
            at: event.at,
            reactions: Default::default(),
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

async fn fetch(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<PageQuery>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (limit, before) = (query.limit()?, query.before()?);
    let room = existing_room(&state, &room).await?;
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

/// The answer's JSON, serialised once (a throttled page is shared by every caller).
fn page_body(messages: &[Message], mode: RoomMode) -> Bytes {
    let body = json!({"messages": messages, "mode": mode});
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
    let user = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|token| state.tokens.verify_cached(token.trim()));
    if let Some(user) = user {
        return format!("user:{}", user.id);
    }
    let ip = client_ip(headers, Some(peer), state.trust_forwarded_for).unwrap_or(peer.ip());
    format!("ip:{ip}")
}
