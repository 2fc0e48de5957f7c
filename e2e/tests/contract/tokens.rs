//! Tokens: built-in JWTs across a secret rotation, the operator's tokens checked through a JWK set
//! served over HTTP (issuer, audience, expiry, rotation, `alg: none`, algorithm confusion), and the
//! sign-in rate limit.
//!
//! These run in the embedded mode only: verifying a token does not depend on the event log, and the
//! embedded chat-server is the same binary and router as the distributed one.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use e2e::{Api, Stack, api::Session, stack::Mode};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use reqwest::StatusCode;
use serde_json::{Value, json};
use shared::tokens::{kid_of, operator_user_id};

const ISSUER: &str = "https://id.hotchat.test";
const AUDIENCE: &str = "hotchat";
const SUBJECT: &str = "operator|alice";

/// A key of the test identity service (fixtures made with `openssl`, see `fixtures/tokens`).
struct TestKey {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/tokens/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

impl TestKey {
    fn load(kid: &'static str, alg: Algorithm, file: &str) -> Self {
        let pem = fixture(file);
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            other => panic!("no fixture for {other:?}"),
        }
        .unwrap();
        Self { kid, alg, encoding }
    }

    /// Its public half as a JWK, the way an identity service publishes it.
    fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.to_owned());
        serde_json::to_value(jwk).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

fn rsa1() -> TestKey {
    TestKey::load("rsa-1", Algorithm::RS256, "rsa-1.pem")
}
fn rsa2() -> TestKey {
    TestKey::load("rsa-2", Algorithm::RS256, "rsa-2.pem")
}
fn ec1() -> TestKey {
    TestKey::load("ec-1", Algorithm::ES256, "ec-1.pem")
}
fn ed1() -> TestKey {
    TestKey::load("ed-1", Algorithm::EdDSA, "ed-1.pem")
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims of a valid operator token for alice.
fn claims() -> Value {
    json!({
        "sub": SUBJECT,
        "preferred_username": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now(),
        "exp": now() + 600,
    })
}

fn with(mut claims: Value, field: &str, value: Value) -> Value {
    claims[field] = value;
    claims
}

/// The operator's identity service: serves a JWK set that the test can change, counting fetches.
struct IdentityService {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl IdentityService {
    async fn start(keys: &[&TestKey]) -> Self {
        let keys = Arc::new(Mutex::new(keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let router = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get({
                let (keys, fetches) = (keys.clone(), fetches.clone());
                move || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let keys = keys.lock().unwrap().clone();
                    axum::Json(json!({ "keys": keys }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self {
            url,
            keys,
            fetches,
            server,
        }
    }

    fn publish(&self, keys: &[&TestKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk()).collect();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for IdentityService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An embedded chat-server accepting the operator's tokens from `jwks`.
async fn stack_with_jwks(jwks: &str, refresh_secs: u64) -> Stack {
    let mut stack = Stack::empty_in(Mode::Embedded).await;
    stack.chat_vars = vec![
        ("AUTH_JWKS", jwks.to_owned()),
        ("AUTH_JWKS_REFRESH_SECS", refresh_secs.to_string()),
        ("AUTH_ISSUER", ISSUER.to_owned()),
        ("AUTH_AUDIENCE", AUDIENCE.to_owned()),
    ];
    stack.add_chat_server().await;
    stack
}

/// A room made by a built-in user, for posting into.
async fn new_room(api: &Api) -> String {
    let owner = api.sign_in("owner").await;
    api.create_room(&owner, "tokens").await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn session(token: String) -> Session {
    Session {
        token,
        user: Value::Null,
    }
}

/// Posts with `token` and returns the status and body.
async fn post(api: &Api, room: &str, token: &str) -> (StatusCode, Value) {
    let response = api.try_post(&session(token.to_owned()), room, "hi").await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asserts that posting with `token` is refused with `status` and `code`.
async fn refused(api: &Api, room: &str, token: &str, status: u16, code: &str, what: &str) {
    let (got, body) = post(api, room, token).await;
    assert_eq!(got.as_u16(), status, "{what}: {body}");
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_tokens_are_checked_against_the_jwks_issuer_and_audience() {
    let (rsa1, rsa2, ec1, ed1) = (rsa1(), rsa2(), ec1(), ed1());
    let identity = IdentityService::start(&[&rsa1, &ec1, &ed1]).await;
    let stack = stack_with_jwks(&identity.url, 0).await;
    let api = stack.chat(0);
    let room = new_room(api).await;

    for key in [&rsa1, &ec1, &ed1] {
        let (status, message) = post(api, &room, &key.sign(&claims())).await;
        assert_eq!(status, StatusCode::CREATED, "{:?}: {message}", key.alg);
        assert_eq!(
            message["user"]["name"], "alice",
            "name from preferred_username"
        );
        assert_eq!(
            message["user"]["id"],
            operator_user_id(SUBJECT).to_string(),
            "a non-UUID sub maps to its UUIDv5"
        );
    }

    let wrong_issuer = with(claims(), "iss", json!("https://evil.example"));
    refused(
        api,
        &room,
        &rsa1.sign(&wrong_issuer),
        401,
        "token_issuer",
        "wrong issuer",
    )
    .await;
    let wrong_audience = with(claims(), "aud", json!("another-app"));
    refused(
        api,
        &room,
        &ec1.sign(&wrong_audience),
        401,
        "token_audience",
        "wrong audience",
    )
    .await;
    let expired = with(claims(), "exp", json!(now() - 600));
    refused(
        api,
        &room,
        &ed1.sign(&expired),
        401,
        "token_expired",
        "expired",
    )
    .await;

    // `alg: none`: the claims of a valid token, unsigned.
    let valid = rsa1.sign(&claims());
    let payload = valid.split('.').nth(1).unwrap();
    for header in [
        json!({"alg": "none", "kid": "rsa-1"}),
        json!({"alg": "none"}),
    ] {
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        let unsigned = format!("{header}.{payload}.");
        refused(api, &room, &unsigned, 401, "token_invalid", "alg none").await;
    }

    // Algorithm confusion: HS256 "signed" with the RSA public key the JWKS publishes.
    let public_pem = fixture("rsa-1.pub.pem");
    for kid in ["rsa-1", "ec-1"] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        let confused = jsonwebtoken::encode(
            &header,
            &claims(),
            &EncodingKey::from_secret(&public_pem).unwrap(),
        )
        .unwrap();
        refused(
            api,
            &room,
            &confused,
            401,
            "token_invalid",
            "HS256 with the public key",
        )
        .await;
    }
    // A kid of ours over another key's signature.
    let mut forged = Header::new(Algorithm::RS256);
    forged.kid = Some("rsa-1".to_owned());
    let forged = jsonwebtoken::encode(&forged, &claims(), &rsa2.encoding).unwrap();
    refused(
        api,
        &room,
        &forged,
        401,
        "token_invalid",
        "signed by another key",
    )
    .await;

    // Rotation: rsa-2 replaces rsa-1; the unknown kid makes the server fetch the set again.
    identity.publish(&[&rsa2, &ec1, &ed1]);
    let (status, body) = post(api, &room, &rsa2.sign(&claims())).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a key added to the JWKS: {body}"
    );
    refused(
        api,
        &room,
        &rsa1.sign(&claims()),
        401,
        "token_invalid",
        "rotated out",
    )
    .await;

    let messages = stack.records().await.len();
    assert_eq!(
        messages,
        1 + 3 + 1,
        "a room and the four accepted posts, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_token_not_valid_yet_or_issued_in_the_future_is_refused() {
    let ec1 = ec1();
    let identity = IdentityService::start(&[&ec1]).await;
    let stack = stack_with_jwks(&identity.url, 0).await;
    let api = stack.chat(0);
    let room = new_room(api).await;

    let later = with(claims(), "nbf", json!(now() + 3600));
    refused(
        api,
        &room,
        &ec1.sign(&later),
        401,
        "token_invalid",
        "nbf an hour ahead",
    )
    .await;
    let from_the_future = with(claims(), "iat", json!(now() + 3600));
    refused(
        api,
        &room,
        &ec1.sign(&from_the_future),
        401,
        "token_invalid",
        "iat an hour ahead",
    )
    .await;

    // Within the clocks' leeway, and the ordinary token, still work.
    let slightly_ahead = with(
        with(claims(), "iat", json!(now() + 20)),
        "nbf",
        json!(now() + 20),
    );
    let (status, body) = post(api, &room, &ec1.sign(&slightly_ahead)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "iat and nbf 20 s ahead: {body}"
    );
    let (status, body) = post(api, &room, &ec1.sign(&claims())).await;
    assert_eq!(status, StatusCode::CREATED, "a normal token: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_jwks_is_fetched_again_at_most_once_per_interval() {
    let (rsa1, rsa2) = (rsa1(), rsa2());
    let identity = IdentityService::start(&[&rsa1]).await;
    let stack = stack_with_jwks(&identity.url, 3600).await;
    let api = stack.chat(0);
    let room = new_room(api).await;
    assert_eq!(identity.fetches(), 1, "loaded once at start-up");
    let (status, body) = post(api, &room, &rsa1.sign(&claims())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    identity.publish(&[&rsa2]);
    for _ in 0..5 {
        refused(
            api,
            &room,
            &rsa2.sign(&claims()),
            401,
            "token_invalid",
            "unknown kid",
        )
        .await;
    }
    assert_eq!(
        identity.fetches(),
        1,
        "unknown kids within AUTH_JWKS_REFRESH_SECS do not fetch again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_jwks_keeps_known_keys_working() {
    let (rsa1, ec1) = (rsa1(), ec1());
    let identity = IdentityService::start(&[&rsa1]).await;
    let stack = stack_with_jwks(&identity.url, 0).await;
    let api = stack.chat(0);
    let room = new_room(api).await;
    drop(identity);

    // The unknown kid makes the server try the (now unreachable) JWKS again; that failure must not
    // cost the keys it already knows.
    refused(
        api,
        &room,
        &ec1.sign(&claims()),
        401,
        "token_invalid",
        "an unknown kid",
    )
    .await;
    let (status, body) = post(api, &room, &rsa1.sign(&claims())).await;
    assert_eq!(status, StatusCode::CREATED, "a known kid: {body}");

    // A JWKS that was never loaded: its tokens answer 503, built-in ones still work.
    let nobody = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/jwks.json", nobody.local_addr().unwrap());
    drop(nobody);
    let stack = stack_with_jwks(&dead, 0).await;
    let api = stack.chat(0);
    let room = new_room(api).await;
    refused(
        api,
        &room,
        &rsa1.sign(&claims()),
        503,
        "unavailable",
        "never loaded",
    )
    .await;
    let alice = api.sign_in("alice").await;
    api.post(&alice, &room, "built-in tokens do not need the JWKS")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn built_in_tokens_survive_a_secret_rotation() {
    let before = Stack::single(Mode::Embedded).await;
    let old = before.chat(0).sign_in("alice").await;

    let mut after = Stack::empty_in(Mode::Embedded).await;
    after.chat_vars = vec![("AUTH_SECRET_PREVIOUS", before.secret.clone())];
    after.add_chat_server().await;
    let api = after.chat(0);
    let room = new_room(api).await;
    let message = api.post(&old, &room, "signed before the rotation").await;
    assert_eq!(message["user"]["id"], old.user["id"]);

    let new = api.sign_in("bob").await;
    let header = new.token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    assert_eq!(header["alg"], "HS256");
    assert_eq!(
        header["kid"],
        kid_of(after.secret.as_bytes()),
        "issued with the current secret"
    );

    let stranger = Stack::single(Mode::Embedded).await;
    let unrelated = stranger.chat(0).sign_in("mallory").await;
    refused(
        api,
        &room,
        &unrelated.token,
        401,
        "token_invalid",
        "an unrelated secret",
    )
    .await;
    let missing = api
        .http
        .post(api.url(&format!("/api/rooms/{room}/messages")))
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_sign_ins_from_one_address_gets_429_with_retry_after() {
    let mut stack = Stack::empty_in(Mode::Embedded).await;
    stack.session_limits.rate = 1;
    stack.session_limits.burst = 3;
    stack.add_chat_server().await;
    let api = stack.chat(0);
    for i in 0..3 {
        api.sign_in(&format!("user-{i}")).await;
    }
    let response = api
        .http
        .post(api.url("/api/sessions"))
        .json(&json!({"name": "one-too-many"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");

    let rooms = api.http.get(api.url("/api/rooms")).send().await.unwrap();
    assert_eq!(rooms.status(), StatusCode::OK, "only sign-ins are limited");
}
