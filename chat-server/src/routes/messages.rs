//! Messages: post one, fetch a page of history.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::json;
use shared::{
    event::{Envelope, EventBody},
    http::ROOM_MODE,
    readmodel::{MAX_PAGE, Message},
};
use uuid::Uuid;

use super::{append, existing_room};
use crate::{
    auth::AuthUser,
    error::{ApiError, ApiJson},
    metrics::ModeLabel,
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
) -> Result<Response, ApiError> {
    let (limit, before) = (query.limit()?, query.before()?);
    let room = existing_room(&state, &room).await?;
    let mode = "normal";
    state
        .metrics
        .fetches
        .get_or_create(&ModeLabel { mode })
        .inc();
    state
        .metrics
        .fetch_db_queries
        .get_or_create(&ModeLabel { mode })
        .inc();
    let messages = state.read_model.messages(room.id, before, limit).await?;
    let mut response = Json(json!({"messages": messages, "mode": mode})).into_response();
    response
        .headers_mut()
        .insert(ROOM_MODE.clone(), HeaderValue::from_static("normal"));
    Ok(response)
}
