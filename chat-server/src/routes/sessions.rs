//! `POST /api/sessions`: sign in with a name, get a token.

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::event::User;
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiJson},
    rate_limit::{self, SessionLimit},
    state::AppState,
    validate,
};

/// `limit` is the per-address sign-in limit, enforced before the body is read.
pub fn router(limit: &SessionLimit) -> Router<AppState> {
    Router::new()
        .route("/api/sessions", post(create))
        .route_layer(rate_limit::session_layer(limit))
}

#[derive(Deserialize)]
struct NewSession {
    name: String,
}

/// Every sign-in is a new user id: names are display names, not accounts.
async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewSession>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = validate::name("name", &body.name, validate::MAX_USER_NAME_CHARS)
        .map_err(|e| ApiError::bad_request(e.code, e.message))?;
    let user = User {
        id: Uuid::now_v7(),
        name: name.to_owned(),
    };
    let token = state.tokens.issue(&user, Utc::now());
    Ok((
        StatusCode::CREATED,
        Json(json!({"token": token, "user": user})),
    ))
}
