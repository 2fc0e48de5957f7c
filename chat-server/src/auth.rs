//! Who is calling: the `AuthUser` extractor over [`shared::tokens`].
//!
//! Tokens are JWTs checked by the shared [`TokenVerifier`] (built-in HS256 session tokens, and the
//! operator's RS256/ES256/EdDSA tokens when `AUTH_JWKS` is set). The user an event is attributed to
//! always comes from a verified token, never from the request body.

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
};
use shared::{event::User, tokens::TokenError};

pub use shared::tokens::TokenVerifier;

use crate::{error::ApiError, state::AppState};

/// The authenticated caller: a handler taking this answers 401 to anyone without a valid token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

pub use shared::http::bearer;

/// The API's answer to a refused token: 401 with a code saying why (503 when the operator's key
/// set could never be loaded). The message never quotes the token or a key.
pub fn token_refused(error: &TokenError) -> ApiError {
    match error {
        TokenError::KeysUnavailable => {
            ApiError::unavailable("the identity service's key set", error)
        }
        _ => ApiError::new(StatusCode::UNAUTHORIZED, error.code(), error.to_string()),
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            return Err(ApiError::unauthorized(
                "missing Authorization: Bearer <token> header",
            ));
        }
        let token = bearer(&parts.headers).ok_or_else(|| {
            ApiError::unauthorized("Authorization header must be \"Bearer <token>\"")
        })?;
        state
            .tokens
            .verify(token)
            .await
            .map(AuthUser)
            .map_err(|e| token_refused(&e))
    }
}
