//! Session tokens: who is calling.
//!
//! A token is `base64url(claims) "." base64url(HMAC-SHA256(claims))`, where the claims are the user's
//! id, name and expiry. Any chat-server holding `AUTH_SECRET` can check it without shared state, the
//! signature is compared in constant time (`Mac::verify_slice`), and the user an event is attributed to
//! always comes from a verified token, never from the request body.

use std::time::Duration;

use axum::{extract::FromRequestParts, http::request::Parts};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use shared::event::User;
use uuid::Uuid;

use crate::{error::ApiError, state::AppState};

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    name: String,
    /// Expiry, seconds since the Unix epoch.
    exp: i64,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad token signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
}

/// Issues and verifies session tokens.
#[derive(Clone)]
pub struct TokenSigner {
    key: Vec<u8>,
    ttl: Duration,
}

impl TokenSigner {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self {
            key: secret.to_vec(),
            ttl,
        }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length")
    }

    /// A token for `user`, valid for the configured time from `now`.
    pub fn issue(&self, user: &User, now: DateTime<Utc>) -> String {
        let claims = Claims {
            sub: user.id,
            name: user.name.clone(),
            exp: now.timestamp() + self.ttl.as_secs() as i64,
        };
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The user a token was issued to, if it is authentic and not expired at `now`.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<User, TokenError> {
        let (payload, signature) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp <= now.timestamp() {
            return Err(TokenError::Expired);
        }
        Ok(User {
            id: claims.sub,
            name: claims.name,
        })
    }
}

/// The authenticated caller: a handler taking this answers 401 to anyone without a valid token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| {
                ApiError::unauthorized("missing Authorization: Bearer <token> header")
            })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("Authorization header must be \"Bearer <token>\"")
            })?;
        state
            .signer
            .verify(token, Utc::now())
            .map(AuthUser)
            .map_err(|e| ApiError::unauthorized(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(b"0123456789abcdef-test", Duration::from_secs(60))
    }

    fn bob() -> User {
        User {
            id: Uuid::now_v7(),
            name: "bob".into(),
        }
    }

    #[test]
    fn issued_token_verifies_to_the_same_user() {
        let user = bob();
        let token = signer().issue(&user, Utc::now());
        assert_eq!(signer().verify(&token, Utc::now()), Ok(user));
    }

    #[test]
    fn token_is_rejected_after_expiry() {
        let now = Utc::now();
        let token = signer().issue(&bob(), now);
        let later = now + chrono::Duration::seconds(61);
        assert_eq!(signer().verify(&token, later), Err(TokenError::Expired));
    }

    #[test]
    fn token_signed_with_another_key_is_rejected() {
        let other = TokenSigner::new(b"another-secret-of-16+", Duration::from_secs(60));
        let token = other.issue(&bob(), Utc::now());
        assert_eq!(
            signer().verify(&token, Utc::now()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampered_claims_are_rejected() {
        let token = signer().issue(&bob(), Utc::now());
        let (_, signature) = token.split_once('.').unwrap();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                sub: Uuid::nil(),
                name: "mallory".into(),
                exp: i64::MAX,
            })
            .unwrap(),
        );
        assert_eq!(
            signer().verify(&format!("{forged}.{signature}"), Utc::now()),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            signer().verify("garbage", Utc::now()),
            Err(TokenError::Malformed)
        );
    }
}
