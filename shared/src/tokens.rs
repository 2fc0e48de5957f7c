//! Bearer tokens: issuing hotchat's own session JWTs and verifying those and the operator's.
//!
//! One seam for identity, so both servers check tokens the same way:
//! - **Built-in tokens**: HS256 JWTs signed with `AUTH_SECRET`, claims `sub` (the user id), `name`,
//!   `iat`, `exp`. The header's `kid` names the key (a hash prefix of the secret, never the secret),
//!   so a token signed with `AUTH_SECRET_PREVIOUS` is still accepted after a rotation; new tokens are
//!   always signed with the current secret. `AUTH_ISSUER` and `AUTH_AUDIENCE` are not checked on
//!   them: hotchat mints them itself without `iss`/`aud`, and the HMAC secret already proves it.
//! - **Operator tokens**: RS256, ES256 or EdDSA JWTs whose `kid` names a key of the JWK set at
//!   `AUTH_JWKS` (see [`Jwks`]), checked against `AUTH_ISSUER`/`AUTH_AUDIENCE` when those are set.
//!   Their user id is `sub` when it is a UUID, else the UUIDv5 of `sub` under [`OPERATOR_NAMESPACE`];
//!   their name is `name`, else `preferred_username`, else `sub`.
//!
//! The algorithm is never taken from the token alone: an HS256 token must name one of our HMAC
//! keys, and an asymmetric one must use the algorithm of the JWK its `kid` names, so an HS256 token
//! signed with a JWKS public key, or one with `alg: none`, is refused.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::{DateTime, Utc};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::event::User;

/// The namespace of the UUIDv5 an operator token's non-UUID `sub` maps to (fixed: changing it would
/// give every operator user a new id).
pub const OPERATOR_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b8e_4d0a_5e7f_9a3b_1c2d_3e4f_5a6b);

/// How long a token may be past its `exp` (or before its `nbf`) and still pass: clocks of the
/// issuer and ours differ.
const LEEWAY_SECS: u64 = 30;

/// How far in the future an operator token's `iat` may be: a token "issued" later than that was
/// not issued by a clock we can trust (or was minted to outlive a key's rotation), so it is refused.
pub const IAT_LEEWAY_SECS: i64 = 60;

/// Why a token was refused; [`TokenError::code`] is the API's error code.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    /// Malformed, bad signature, `alg: none`, an algorithm its key does not use, an unknown key.
    #[error("the token is not valid: {0}")]
    Invalid(&'static str),
    #[error("the token was issued by an issuer this server does not accept")]
    Issuer,
    #[error("the token is meant for another audience")]
    Audience,
    /// Its key may be in the JWK set, but that set could never be loaded.
    #[error("the operator's key set is unavailable")]
    KeysUnavailable,
}

impl TokenError {
    /// The `code` of the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Expired => "token_expired",
            TokenError::Invalid(_) => "token_invalid",
            TokenError::Issuer => "token_issuer",
            TokenError::Audience => "token_audience",
            TokenError::KeysUnavailable => "unavailable",
        }
    }
}

fn refusal(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::InvalidIssuer => TokenError::Issuer,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidSignature => TokenError::Invalid("bad signature"),
        ErrorKind::InvalidAlgorithm => TokenError::Invalid("algorithm not allowed for its key"),
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
            TokenError::Invalid("missing or malformed claims")
        }
        ErrorKind::ImmatureSignature => TokenError::Invalid("not valid yet"),
        _ => TokenError::Invalid("malformed token"),
    }
}

/// An HMAC secret and the `kid` that names it.
struct HmacKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl HmacKey {
    fn new(secret: &[u8]) -> anyhow::Result<Self> {
        Ok(Self {
            kid: kid_of(secret),
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
        })
    }
}

/// The `kid` of a secret: the first 8 bytes of SHA-256 over a fixed label and the secret, in hex.
/// It names the key without revealing it (a hash of a ≥ 16-character random secret).
pub fn kid_of(secret: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"hotchat-kid:")
        .chain_update(secret)
        .finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Serialize, Deserialize)]
struct BuiltinClaims {
    sub: Uuid,
    name: String,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct OperatorClaims {
    sub: String,
    /// Seconds since the epoch; a NumericDate may have a fraction.
    iat: Option<f64>,
    name: Option<String>,
    preferred_username: Option<String>,
}

/// Who may sign tokens this server accepts.
pub struct VerifierConfig<'a> {
    /// `AUTH_SECRET`: signs new tokens and verifies them.
    pub secret: &'a [u8],
    /// `AUTH_SECRET_PREVIOUS`: still verifies tokens it signed.
    pub previous_secret: Option<&'a [u8]>,
    /// `AUTH_TOKEN_TTL_SECS`.
    pub ttl: Duration,
    pub jwks: Option<Arc<Jwks>>,
    /// `AUTH_ISSUER`: the `iss` operator tokens must carry.
    pub issuer: Option<String>,
    /// `AUTH_AUDIENCE`: an `aud` operator tokens must carry.
    pub audience: Option<String>,
}

/// Issues built-in tokens and verifies built-in and operator tokens.
pub struct TokenVerifier {
    current: HmacKey,
    previous: Option<HmacKey>,
    ttl: Duration,
    jwks: Option<Arc<Jwks>>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl TokenVerifier {
    /// Fails on an empty secret.
    pub fn new(config: VerifierConfig<'_>) -> anyhow::Result<Self> {
        Ok(Self {
            current: HmacKey::new(config.secret)?,
            previous: config.previous_secret.map(HmacKey::new).transpose()?,
            ttl: config.ttl,
            jwks: config.jwks,
            issuer: config.issuer,
            audience: config.audience,
        })
    }

    /// A token for `user`, signed with the current secret, valid for the TTL from `now`.
    pub fn issue(&self, user: &User, now: DateTime<Utc>) -> String {
        let claims = BuiltinClaims {
            sub: user.id,
            name: user.name.clone(),
            iat: now.timestamp(),
            exp: now.timestamp() + self.ttl.as_secs() as i64,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.current.encoding)
            .expect("HS256 signing with a non-empty secret cannot fail")
    }

    /// The user a token names, if it is authentic, current and meant for us. May fetch the JWK set
    /// when the token names a key not seen yet.
    pub async fn verify(&self, token: &str) -> Result<User, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| refusal(e.kind()))?;
        match header.alg {
            Algorithm::HS256 => self.verify_builtin(token, header.kid.as_deref()),
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA => {
                let jwks = self
                    .jwks
                    .as_ref()
                    .ok_or(TokenError::Invalid("algorithm not accepted"))?;
                let kid = header
                    .kid
                    .as_deref()
                    .ok_or(TokenError::Invalid("no kid in the header"))?;
                let key = jwks.key(kid).await?;
                self.verify_operator(token, header.alg, &key)
            }
            _ => Err(TokenError::Invalid("algorithm not accepted")),
        }
    }

    /// The user of a token, without fetching anything: for callers that only want a hint (a rate
    /// limit key), never for authorisation decisions that need a refetch.
    pub fn verify_cached(&self, token: &str) -> Option<User> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        match header.alg {
            Algorithm::HS256 => self.verify_builtin(token, header.kid.as_deref()).ok(),
            _ => {
                let key = self.jwks.as_ref()?.cached(header.kid.as_deref()?)?;
                self.verify_operator(token, header.alg, &key).ok()
            }
        }
    }

    fn verify_builtin(&self, token: &str, kid: Option<&str>) -> Result<User, TokenError> {
        let key = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| Some(key.kid.as_str()) == kid)
            .ok_or(TokenError::Invalid("unknown kid"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<BuiltinClaims>(token, &key.decoding, &validation)
            .map_err(|e| refusal(e.kind()))?;
        Ok(User {
            id: data.claims.sub,
            name: data.claims.name,
        })
    }

    fn verify_operator(
        &self,
        token: &str,
        alg: Algorithm,
        key: &OperatorKey,
    ) -> Result<User, TokenError> {
        if alg != key.alg {
            return Err(TokenError::Invalid("algorithm not allowed for its key"));
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<OperatorClaims>(token, &key.decoding, &validation)
            .map_err(|e| refusal(e.kind()))?;
        let claims = data.claims;
        if claims
            .iat
            .is_some_and(|iat| iat > (Utc::now().timestamp() + IAT_LEEWAY_SECS) as f64)
        {
            return Err(TokenError::Invalid("issued in the future"));
        }
        Ok(User {
            id: operator_user_id(&claims.sub),
            name: claims
                .name
                .or(claims.preferred_username)
                .unwrap_or(claims.sub),
        })
    }
}

/// The user id of an operator token's `sub`: the UUID itself, else its UUIDv5 under
/// [`OPERATOR_NAMESPACE`], so the same subject is always the same user.
pub fn operator_user_id(sub: &str) -> Uuid {
    sub.parse()
        .unwrap_or_else(|_| Uuid::new_v5(&OPERATOR_NAMESPACE, sub.as_bytes()))
}

/// A public key of the JWK set, with the one algorithm it verifies.
#[derive(Clone)]
pub struct OperatorKey {
    alg: Algorithm,
    decoding: DecodingKey,
}

/// Where the operator's JWK set is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Url(String),
    File(PathBuf),
}

impl JwksSource {
    /// `http://` and `https://` are URLs, anything else a file path.
    pub fn parse(raw: &str) -> Self {
        if raw.starts_with("http://") || raw.starts_with("https://") {
            JwksSource::Url(raw.to_owned())
        } else {
            JwksSource::File(PathBuf::from(raw))
        }
    }
}

/// The operator's JWK set, cached. It is loaded at start-up and reloaded when a token names an
/// unknown `kid`, at most once per `min_refresh`, so a stream of forged kids cannot hammer the
/// identity service. A failed reload keeps the keys already known: an unreachable JWKS URL costs
/// only the keys not seen yet (401), or, when it was never loaded, every operator token (503).
pub struct Jwks {
    source: JwksSource,
    client: reqwest::Client,
    min_refresh: Duration,
    /// `None` until a load succeeded.
    keys: RwLock<Option<Arc<HashMap<String, OperatorKey>>>>,
    /// When the last load was tried; held across the load so concurrent misses wait for it.
    last_load: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(source: JwksSource, min_refresh: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            source,
            client,
            min_refresh,
            keys: RwLock::new(None),
            last_load: tokio::sync::Mutex::new(None),
        })
    }

    /// Tries a load now (at start-up); a failure is logged, not fatal.
    pub async fn load(&self) {
        let mut last = self.last_load.lock().await;
        self.load_locked(&mut last).await;
    }

    fn cached(&self, kid: &str) -> Option<OperatorKey> {
        let keys = self.keys.read().expect("JWKS lock poisoned");
        keys.as_ref()?.get(kid).cloned()
    }

    fn loaded(&self) -> bool {
        self.keys.read().expect("JWKS lock poisoned").is_some()
    }

    /// The key named `kid`, reloading the set if it is unknown and the last load is old enough.
    async fn key(&self, kid: &str) -> Result<OperatorKey, TokenError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        {
            let mut last = self.last_load.lock().await;
            // Someone else may have loaded it while this call waited for the lock.
            if let Some(key) = self.cached(kid) {
                return Ok(key);
            }
            if last.is_none_or(|at| at.elapsed() >= self.min_refresh) {
                self.load_locked(&mut last).await;
            }
        }
        match self.cached(kid) {
            Some(key) => Ok(key),
            None if !self.loaded() => Err(TokenError::KeysUnavailable),
            None => Err(TokenError::Invalid("unknown kid")),
        }
    }

    async fn load_locked(&self, last: &mut Option<Instant>) {
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "loaded the operator's JWK set");
                *self.keys.write().expect("JWKS lock poisoned") = Some(Arc::new(keys));
            }
            Err(e) => {
                tracing::warn!(source = ?self.source, error = %e, "loading the JWK set failed; keeping the keys known");
            }
        }
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, OperatorKey>> {
        let bytes = match &self.source {
            JwksSource::Url(url) => self
                .client
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?
                .to_vec(),
            JwksSource::File(path) => tokio::fs::read(path).await?,
        };
        let set: JwkSet = serde_json::from_slice(&bytes)?;
        Ok(usable_keys(&set))
    }
}

/// The signing keys of `set` this server accepts, by `kid`: RSA (RS256), P-256 (ES256) and Ed25519
/// (EdDSA) public keys. Symmetric keys, encryption keys, keys without a `kid` and keys whose `alg`
/// disagrees with their type are left out.
fn usable_keys(set: &JwkSet) -> HashMap<String, OperatorKey> {
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                Algorithm::ES256
            }
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                Algorithm::EdDSA
            }
            _ => continue,
        };
        if let Some(declared) = jwk.common.key_algorithm
            && Algorithm::try_from(declared).ok() != Some(alg)
        {
            continue;
        }
        match DecodingKey::from_jwk(jwk) {
            Ok(decoding) => {
                keys.insert(kid, OperatorKey { alg, decoding });
            }
            Err(e) => tracing::warn!(kid, error = %e, "skipping a JWK that does not load"),
        }
    }
    keys
}

/// The verifier `secret` (and `previous`, and the operator's key set when configured) make. Loads
/// the JWK set once before returning, so the first operator token does not wait for it.
pub async fn verifier(
    secret: &str,
    previous: Option<&str>,
    ttl: Duration,
    operator: &crate::settings::OperatorTokenSettings,
) -> anyhow::Result<TokenVerifier> {
    let jwks = match &operator.jwks {
        Some(raw) => {
            let jwks = Jwks::new(JwksSource::parse(raw), operator.jwks_refresh)
                .context("setting up the JWKS client")?;
            jwks.load().await;
            Some(Arc::new(jwks))
        }
        None => None,
    };
    TokenVerifier::new(VerifierConfig {
        secret: secret.as_bytes(),
        previous_secret: previous.map(str::as_bytes),
        ttl,
        jwks,
        issuer: operator.issuer.clone(),
        audience: operator.audience.clone(),
    })
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-test";
    const PREVIOUS: &[u8] = b"the-previous-secret-0";

    fn verifier(previous: Option<&[u8]>) -> TokenVerifier {
        TokenVerifier::new(VerifierConfig {
            secret: SECRET,
            previous_secret: previous,
            ttl: Duration::from_secs(600),
            jwks: None,
            issuer: Some("https://id.example".into()),
            audience: Some("hotchat".into()),
        })
        .unwrap()
    }

    fn signer(secret: &[u8]) -> TokenVerifier {
        TokenVerifier::new(VerifierConfig {
            secret,
            previous_secret: None,
            ttl: Duration::from_secs(600),
            jwks: None,
            issuer: None,
            audience: None,
        })
        .unwrap()
    }

    fn bob() -> User {
        User {
            id: Uuid::now_v7(),
            name: "bob".into(),
        }
    }

    fn part(token: &str, i: usize) -> serde_json::Value {
        let raw = token.split('.').nth(i).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn an_issued_token_is_a_jwt_that_verifies_to_the_same_user() {
        let user = bob();
        let now = Utc::now();
        let token = verifier(None).issue(&user, now);
        let header = part(&token, 0);
        assert_eq!(header["alg"], "HS256");
        assert_eq!(header["kid"], kid_of(SECRET));
        let claims = part(&token, 1);
        assert_eq!(claims["sub"], user.id.to_string());
        assert_eq!(claims["name"], "bob");
        assert_eq!(claims["iat"], now.timestamp());
        assert_eq!(claims["exp"], now.timestamp() + 600);
        assert_eq!(verifier(None).verify(&token).await, Ok(user));
    }

    #[test]
    fn the_kid_names_the_secret_without_revealing_it() {
        let kid = kid_of(SECRET);
        assert_eq!(kid.len(), 16);
        assert_ne!(kid, kid_of(PREVIOUS));
        assert!(!kid.contains("0123456789abcdef"));
    }

    #[tokio::test]
    async fn a_token_of_the_previous_secret_is_accepted_and_new_ones_use_the_current() {
        let user = bob();
        let old = signer(PREVIOUS).issue(&user, Utc::now());
        assert_eq!(
            verifier(Some(PREVIOUS)).verify(&old).await,
            Ok(user.clone())
        );
        assert_eq!(
            verifier(None).verify(&old).await,
            Err(TokenError::Invalid("unknown kid")),
            "without AUTH_SECRET_PREVIOUS it is refused"
        );
        let new = verifier(Some(PREVIOUS)).issue(&user, Utc::now());
        assert_eq!(part(&new, 0)["kid"], kid_of(SECRET));
    }

    #[tokio::test]
    async fn a_token_of_an_unknown_secret_is_refused_even_under_our_kid() {
        let other = signer(b"an-unrelated-secret!");
        let token = other.issue(&bob(), Utc::now());
        assert_eq!(
            verifier(None).verify(&token).await.unwrap_err().code(),
            "token_invalid"
        );
        // The same token with its header claiming our kid still fails on the signature.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid_of(SECRET));
        let claims = part(&token, 1);
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(b"an-unrelated-secret!").unwrap(),
        )
        .unwrap();
        assert_eq!(
            verifier(None).verify(&forged).await,
            Err(TokenError::Invalid("bad signature"))
        );
    }

    #[tokio::test]
    async fn an_expired_token_is_refused_as_expired() {
        let token = verifier(None).issue(&bob(), Utc::now() - chrono::Duration::seconds(3600));
        assert_eq!(
            verifier(None).verify(&token).await,
            Err(TokenError::Expired)
        );
        assert_eq!(TokenError::Expired.code(), "token_expired");
    }

    #[tokio::test]
    async fn alg_none_is_refused() {
        let token = verifier(None).issue(&bob(), Utc::now());
        let claims = token.split('.').nth(1).unwrap();
        for alg in ["none", "None", "NONE"] {
            let header = URL_SAFE_NO_PAD.encode(
                serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid_of(SECRET)}).to_string(),
            );
            for signature in ["", "e30"] {
                let unsigned = format!("{header}.{claims}.{signature}");
                assert_eq!(
                    verifier(None).verify(&unsigned).await.unwrap_err().code(),
                    "token_invalid",
                    "{alg} / {signature:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn tampered_claims_and_garbage_are_refused() {
        let token = verifier(None).issue(&bob(), Utc::now());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"sub": Uuid::nil(), "name": "mallory", "iat": 0, "exp": i64::MAX})
                .to_string(),
        );
        parts[1] = &forged;
        assert_eq!(
            verifier(None).verify(&parts.join(".")).await,
            Err(TokenError::Invalid("bad signature"))
        );
        for garbage in ["", "garbage", "a.b", "a.b.c", "eyJ9.e30.x"] {
            assert_eq!(
                verifier(None).verify(garbage).await.unwrap_err().code(),
                "token_invalid",
                "{garbage:?}"
            );
        }
    }

    #[tokio::test]
    async fn asymmetric_tokens_are_refused_without_a_jwks() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#);
        let token = format!("{header}.e30.c2ln");
        assert_eq!(
            verifier(None).verify(&token).await,
            Err(TokenError::Invalid("algorithm not accepted"))
        );
    }

    #[test]
    fn operator_subjects_map_to_stable_user_ids() {
        let id = Uuid::now_v7();
        assert_eq!(operator_user_id(&id.to_string()), id);
        let alice = operator_user_id("auth0|alice");
        assert_eq!(alice, operator_user_id("auth0|alice"));
        assert_ne!(alice, operator_user_id("auth0|bob"));
        assert_eq!(alice.get_version_num(), 5);
    }

    #[tokio::test]
    async fn an_unreadable_jwks_that_never_loaded_answers_unavailable() {
        let jwks = Jwks::new(
            JwksSource::parse("/nonexistent/jwks.json"),
            Duration::from_secs(60),
        )
        .unwrap();
        jwks.load().await;
        assert!(matches!(
            jwks.key("k1").await,
            Err(TokenError::KeysUnavailable)
        ));
    }

    #[test]
    fn jwks_sources_are_urls_or_files() {
        assert_eq!(
            JwksSource::parse("https://id.example/jwks"),
            JwksSource::Url("https://id.example/jwks".into())
        );
        assert_eq!(
            JwksSource::parse("/etc/hotchat/jwks.json"),
            JwksSource::File("/etc/hotchat/jwks.json".into())
        );
    }
}
