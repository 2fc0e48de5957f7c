//! `POST /api/sessions`: sign in with a name, get a token.

use axum::{Json, extract::State, http::StatusCode};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::{
    event::User,
    openapi::{InvalidBody, RateLimited},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiJson},
    rate_limit::{self, SessionLimit},
    state::AppState,
    validate,
};

/// `limit` is the per-address sign-in limit, enforced before the body is read.
pub fn router(limit: &SessionLimit) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .route_layer(rate_limit::session_layer(limit))
}

#[derive(Deserialize, ToSchema)]
struct NewSession {
    /// A display name: 1 to 32 characters once trimmed, no control characters.
    #[schema(
        min_length = 1,
        max_length = 32,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    name: String,
}

/// A signed-in session (the JSON `create` answers).
#[derive(ToSchema)]
#[allow(dead_code)]
struct Session {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    user: User,
}

/// Signs in with a display name.
///
/// Every sign-in is a new user id: names are display names, not accounts.
#[utoipa::path(post, path = "/api/sessions", operation_id = "create_session", tag = "sessions", request_body = NewSession,
    responses(
        (status = 201, description = "Signed in: a new user and its token", body = Session),
        InvalidBody,
        RateLimited,
    ))]
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
