//! The write side decides from the log (PRODUCT.md, "The write side"): with PostgreSQL and Redis
//! hung, writes are answered in milliseconds and still obey every ban; a moderation change on one
//! chat-server holds for the very next write on another, with no projector running; a chat-server
//! started with its database down builds what it decides on from the log.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use e2e::{Api, SseClient, Stack, api::Session, proxy::TcpProxy};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
/// The longest a write may take with PostgreSQL and Redis hung (issue target: 250 ms).
const HUNG_WRITE: Duration = Duration::from_millis(250);

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

fn user_id(session: &Session) -> String {
    id(&session.user)
}

fn addr_of(url: &str) -> SocketAddr {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    host_port.parse().expect("host:port")
}

/// A stack whose PostgreSQL and Redis are reached through proxies the test controls.
async fn proxied_stack(chats: usize, publishers: usize) -> (Stack, TcpProxy, TcpProxy) {
    let mut stack = Stack::empty().await;
    let database = TcpProxy::start(addr_of(&stack.database_url)).await;
    stack.database_url = database.rewrite_url(&stack.database_url);
    let redis_url = stack.hot.redis_url.clone().expect("the stack's Redis");
    let redis = TcpProxy::start(addr_of(&redis_url)).await;
    stack.hot.redis_url = Some(redis.rewrite_url(&redis_url));
    for _ in 0..chats {
        stack.add_chat_server().await;
    }
    for _ in 0..publishers {
        stack.add_default_publish_server().await;
    }
    (stack, database, redis)
}

async fn ban(api: &Api, by: &Session, room: &str, user: &Session) -> StatusCode {
    let path = format!("/api/rooms/{room}/bans/{}", user_id(user));
    let body = json!({ "seconds": null, "reason": "spam" });
    api.call(Method::PUT, &path, Some(by), Some(body)).await.0
}

/// Posts with an `Idempotency-Key` (so the idempotency store is on the path) and times it.
async fn timed_post(api: &Api, who: &Session, room: &str, text: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let status = api
        .http
        .post(api.url(&format!("/api/rooms/{room}/messages")))
        .bearer_auth(&who.token)
        .header("Idempotency-Key", format!("k-{text}"))
        .json(&json!({ "text": text }))
        .send()
        .await
        .expect("POST message")
        .status();
    (status, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgresql_and_redis_hung_writes_are_answered_at_once_and_bans_still_hold() {
    let (stack, database, redis) = proxied_stack(2, 1).await;
    let (a, b) = (stack.chat(0).clone(), stack.chat(1).clone());
    let alice = a.sign_in("alice").await;
    let bob = b.sign_in("bob").await;
    let mallory = a.sign_in("mallory").await;
    let room = id(&a.create_room(&alice, "hung").await);
    let mut stream = SseClient::connect(&stack.events_url(0, &room), None).await;
    let first = id(&b.post(&bob, &room, "before").await);
    assert_eq!(ban(&a, &alice, &room, &mallory).await, StatusCode::ACCEPTED);

    database.hang();
    redis.hang();
    let mut took = Vec::new();
    let mut posted = vec!["before".to_owned()];
    for i in 0..10 {
        let api = [&a, &b][i % 2];
        let text = format!("hung {i}");
        let (status, elapsed) = timed_post(api, &bob, &room, &text).await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        took.push(elapsed);
        posted.push(text);
        let emoji = ["👍", "🎉"][i % 2];
        let started = Instant::now();
        let reacted = api.react(&bob, &room, &first, emoji, i % 4 < 2).await;
        assert_eq!(reacted, StatusCode::ACCEPTED, "reaction {i}");
        took.push(started.elapsed());
    }
    for api in [&a, &b] {
        let (status, _) = timed_post(api, &mallory, &room, "banned").await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a ban from before the hang holds"
        );
    }
    // A room created while the database hangs can be posted to on the other chat-server.
    let started = Instant::now();
    let created = id(&a.create_room(&alice, "during").await);
    took.push(started.elapsed());
    let (status, elapsed) = timed_post(&b, &bob, &created, "in the new room").await;
    assert_eq!(status, StatusCode::CREATED);
    took.push(elapsed);

    let slowest = took.iter().max().copied().unwrap_or_default();
    eprintln!("writes with PostgreSQL and Redis hung: slowest {slowest:?} of {took:?}");
    assert!(
        slowest <= HUNG_WRITE,
        "a write took {slowest:?} with PostgreSQL and Redis hung"
    );
    let got: Vec<String> = stream
        .collect("message", posted.len(), WAIT)
        .await
        .iter()
        .map(|event| event.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(got, posted, "every acknowledged post reached the stream");
    database.restore();
    redis.restore();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_moderation_change_holds_for_the_next_write_on_the_other_chat_server_without_a_projector()
{
    // No publish-server: nothing projects the log into the read model at all.
    let stack = Stack::start(2, 0).await;
    let (a, b) = (stack.chat(0), stack.chat(1));
    let alice = a.sign_in("alice").await;
    let (bob, carol, mo) = (
        b.sign_in("bob").await,
        b.sign_in("carol").await,
        a.sign_in("mo").await,
    );
    let room = id(&a.create_room(&alice, "ordered").await);
    let path = |rest: &str| format!("/api/rooms/{room}{rest}");

    // A ban on one chat-server, then at once the banned user's post on the other.
    assert_eq!(ban(a, &alice, &room, &bob).await, StatusCode::ACCEPTED);
    let (status, body) = b
        .call(
            Method::POST,
            &path("/messages"),
            Some(&bob),
            Some(json!({"text": "still here?"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "banned");

    // Slow mode set on one, then two posts on the other.
    let (status, _) = a
        .call(
            Method::PATCH,
            &path(""),
            Some(&alice),
            Some(json!({"slow_mode_secs": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let post = |text: &str| json!({ "text": text });
    let first = b
        .call(
            Method::POST,
            &path("/messages"),
            Some(&carol),
            Some(post("one")),
        )
        .await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let second = b
        .call(
            Method::POST,
            &path("/messages"),
            Some(&carol),
            Some(post("two")),
        )
        .await;
    assert_eq!(second.0, StatusCode::TOO_MANY_REQUESTS, "{}", second.1);
    assert_eq!(second.1["error"]["code"], "slow_mode");

    // A moderator dismissed on one chat-server cannot delete on the other.
    let mod_path = path(&format!("/moderators/{}", user_id(&mo)));
    let appointed = a.call(Method::PUT, &mod_path, Some(&alice), None).await;
    assert_eq!(appointed.0, StatusCode::ACCEPTED);
    let message = id(&first.1);
    let dismissed = a.call(Method::DELETE, &mod_path, Some(&alice), None).await;
    assert_eq!(dismissed.0, StatusCode::ACCEPTED);
    let deleted = b
        .call(
            Method::DELETE,
            &path(&format!("/messages/{message}")),
            Some(&mo),
            None,
        )
        .await;
    assert_eq!(deleted.0, StatusCode::FORBIDDEN, "{}", deleted.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chat_server_started_with_its_database_down_builds_its_view_from_the_log() {
    let (mut stack, database, _redis) = proxied_stack(1, 0).await;
    let a = stack.chat(0).clone();
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    let carol = a.sign_in("carol").await;
    let room = id(&a.create_room(&alice, "restart").await);
    assert_eq!(ban(&a, &alice, &room, &bob).await, StatusCode::ACCEPTED);

    database.cut();
    // A new chat-server (the restart of the first) with the database down.
    let restarted = stack.add_chat_server().await.clone();
    let post = |text: &str| json!({ "text": text });
    let path = format!("/api/rooms/{room}/messages");
    let refused = restarted
        .call(Method::POST, &path, Some(&bob), Some(post("hello?")))
        .await;
    assert_eq!(refused.0, StatusCode::FORBIDDEN, "{}", refused.1);
    assert_eq!(refused.1["error"]["code"], "banned");
    let accepted = restarted
        .call(Method::POST, &path, Some(&carol), Some(post("hello")))
        .await;
    assert_eq!(accepted.0, StatusCode::CREATED, "{}", accepted.1);
    database.restore();
}
