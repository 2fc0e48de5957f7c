//! Who is calling: the `AuthUser` extractor over [`shared::tokens`].
//!
//! Tokens are JWTs checked by the shared [`TokenVerifier`] (built-in HS256 session tokens, and the
//! operator's RS256/ES256/EdDSA tokens when `AUTH_JWKS` is set). The user an event is attributed to
//! always comes from a verified token, never from the request body.

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use shared::{event::User, tokens::TokenError};

pub use shared::tokens::TokenVerifier;

use crate::{error::ApiError, state::AppState};

/// The authenticated caller: a handler taking this answers 401 to anyone without a valid token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

/// The bearer token of a request, if its `Authorization` header has one. The scheme's name is
/// case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are `Bearer` too.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_needs_a_token() {
        for value in ["Bearer abc", "bearer abc", "BEARER  abc ", " Bearer abc"] {
            assert_eq!(bearer(&with(value)), Some("abc"), "{value:?}");
        }
        for value in ["Basic abc", "Bearer", "Bearer   ", "Bearerabc", "Token abc"] {
            assert_eq!(bearer(&with(value)), None, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
