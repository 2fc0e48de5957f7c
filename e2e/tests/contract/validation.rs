//! Acceptance 5: bad input answers a 4xx JSON error and produces nothing; a broker that does not
//! answer gives 503, never a false 201.

use std::time::{Duration, Instant};

use e2e::{Stack, in_both_modes, stack::Mode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// (method, path, token, body, expected status, expected error code)
type Case<'a> = (
    Method,
    String,
    Option<&'a str>,
    Option<String>,
    u16,
    &'static str,
);

in_both_modes!(every_invalid_request_gets_a_4xx_json_error_and_produces_no_record);
async fn every_invalid_request_gets_a_4xx_json_error_and_produces_no_record(mode: Mode) {
    let stack = Stack::single(mode).await;
    let api = stack.chat(0);
    let alice = api.sign_in("alice").await;
    let room = api.create_room(&alice, "strict").await;
    let room = room["id"].as_str().unwrap().to_owned();
    let message = api.post(&alice, &room, "the one real message").await;
    let message = message["id"].as_str().unwrap().to_owned();
    let before = stack.records().await.len();
    assert_eq!(before, 2, "a room and a message");

    let other_key = shared::tokens::TokenVerifier::new(shared::tokens::VerifierConfig {
        secret: b"some-other-secret-entirely",
        previous_secret: None,
        ttl: Duration::from_secs(60),
        jwks: None,
        issuer: None,
        audience: None,
    })
    .expect("a verifier")
    .issue(
        &shared::event::User {
            id: uuid::Uuid::now_v7(),
            name: "mallory".into(),
        },
        chrono::Utc::now(),
    );
    let messages = format!("/api/rooms/{room}/messages");
    let unknown_room = format!("/api/rooms/{}/messages", uuid::Uuid::now_v7());
    let reaction = |message: &str, emoji: &str| {
        format!("/api/rooms/{room}/messages/{message}/reactions/{emoji}")
    };
    let token = Some(alice.token.as_str());
    let json = |v: Value| Some(v.to_string());
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            messages.clone(),
            token,
            json(json!({"text": ""})),
            400,
            "empty_text",
        ),
        (
            Method::POST,
            messages.clone(),
            token,
            json(json!({"text": "  \n "})),
            400,
            "empty_text",
        ),
        (
            Method::POST,
            messages.clone(),
            token,
            json(json!({"text": "x".repeat(4001)})),
            400,
            "text_too_long",
        ),
        (
            Method::POST,
            messages.clone(),
            token,
            json(json!({"txt": "hi"})),
            422,
            "invalid_json",
        ),
        (
            Method::POST,
            messages.clone(),
            token,
            json(json!(["hi"])),
            422,
            "invalid_json",
        ),
        (
            Method::POST,
            messages.clone(),
            token,
            Some("{\"text\": ".into()),
            400,
            "invalid_json",
        ),
        (
            Method::POST,
            messages.clone(),
            token,
            Some("x".repeat(70_000)),
            413,
            "payload_too_large",
        ),
        (
            Method::POST,
            unknown_room.clone(),
            token,
            json(json!({"text": "hi"})),
            404,
            "not_found",
        ),
        (
            Method::POST,
            "/api/rooms/nope/messages".into(),
            token,
            json(json!({"text": "hi"})),
            404,
            "not_found",
        ),
        (
            Method::POST,
            messages.clone(),
            None,
            json(json!({"text": "hi"})),
            401,
            "unauthorized",
        ),
        (
            Method::POST,
            messages.clone(),
            Some("garbage"),
            json(json!({"text": "hi"})),
            401,
            "token_invalid",
        ),
        (
            Method::POST,
            messages.clone(),
            Some(&other_key),
            json(json!({"text": "hi"})),
            401,
            "token_invalid",
        ),
        (
            Method::POST,
            "/api/rooms".into(),
            None,
            json(json!({"name": "r"})),
            401,
            "unauthorized",
        ),
        (
            Method::POST,
            "/api/rooms".into(),
            token,
            json(json!({"name": " "})),
            400,
            "invalid_name",
        ),
        (
            Method::POST,
            "/api/rooms".into(),
            token,
            json(json!({"name": "x".repeat(81)})),
            400,
            "invalid_name",
        ),
        (
            Method::POST,
            "/api/sessions".into(),
            None,
            json(json!({"name": ""})),
            400,
            "invalid_name",
        ),
        (
            Method::PUT,
            reaction(&message, "thumbsup"),
            token,
            None,
            400,
            "invalid_emoji",
        ),
        (
            Method::PUT,
            reaction(&message, "%F0%9F%91%8D%F0%9F%91%8D"),
            token,
            None,
            400,
            "invalid_emoji",
        ),
        (
            Method::PUT,
            reaction(&uuid::Uuid::now_v7().to_string(), "%F0%9F%91%8D"),
            token,
            None,
            404,
            "not_found",
        ),
        (
            Method::PUT,
            reaction(&message, "%F0%9F%91%8D"),
            None,
            None,
            401,
            "unauthorized",
        ),
        (
            Method::DELETE,
            reaction(&message, "%F0%9F%91%8D"),
            Some("garbage"),
            None,
            401,
            "token_invalid",
        ),
    ];
    for (method, path, token, body, status, code) in cases {
        let mut request = api.http.request(method.clone(), api.url(&path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let response = api
        .http
        .post(api.url(&messages))
        .bearer_auth(&alice.token)
        .body("{\"text\": \"hi\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a body without a JSON content type"
    );

    assert_eq!(
        stack.records().await.len(),
        before,
        "no invalid request produced a record"
    );
}

in_both_modes!(a_user_can_never_post_as_someone_else);
async fn a_user_can_never_post_as_someone_else(mode: Mode) {
    let stack = Stack::single(mode).await;
    let api = stack.chat(0);
    let alice = api.sign_in("alice").await;
    let room = api.create_room(&alice, "who").await;
    let room = room["id"].as_str().unwrap();
    let response = api
        .http
        .post(api.url(&format!("/api/rooms/{room}/messages")))
        .bearer_auth(&alice.token)
        .json(&json!({"text": "hi", "user": {"id": uuid::Uuid::nil(), "name": "mallory"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["user"], alice.user);
    let records = stack.records().await;
    let event = records.last().unwrap().event();
    assert_eq!(serde_json::to_value(&event.user).unwrap(), alice.user);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_answers_503_within_the_produce_timeout_when_the_broker_does_not_answer() {
    let broker = e2e::broker::own().await;
    let mut stack = Stack::start_on(broker.bootstrap(), 0, 0).await;
    stack.produce_timeout = Duration::from_millis(1500);
    stack.add_chat_server().await;
    let api = stack.chat(0);
    let alice = api.sign_in("alice").await;
    let room = api.create_room(&alice, "outage").await;
    let room = room["id"].as_str().unwrap();
    api.post(&alice, room, "before the outage").await;

    broker.pause(1);
    let started = Instant::now();
    let response = api.try_post(&alice, room, "during the outage").await;
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(waited < Duration::from_secs(4), "answered after {waited:?}");
    broker.resume(1);
}
