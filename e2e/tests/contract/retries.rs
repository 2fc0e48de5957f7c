//! Retry-safe writes (`Idempotency-Key`): a post retried with its key is answered as the first time
//! and shows up once, live, in history and after a rebuild, whichever chat-server takes the retry.

use std::time::Duration;

use e2e::{SseClient, Stack, database, eventually, in_both_modes, sse::SseEvent, stack::Mode};
use reqwest::{Response, StatusCode};
use serde_json::Value;

use crate::faults::stored_texts;

const WAIT: Duration = Duration::from_secs(20);

async fn json(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "{}", response.url());
    response.json().await.unwrap()
}

/// The `message` events of `stream` up to and including the one with text `last`.
async fn messages_until(stream: &mut SseClient, last: &str) -> Vec<Value> {
    let mut messages = Vec::new();
    loop {
        let event: SseEvent = stream.next_of("message", WAIT).await;
        let message = event.json();
        let done = message["text"] == last;
        messages.push(message);
        if done {
            return messages;
        }
    }
}

fn texts(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}

async fn a_post_retried_with_its_key_is_answered_the_same_and_shown_once(mode: Mode) {
    let mut stack = Stack::empty_in(mode).await;
    stack.add_chat_server().await;
    if mode == Mode::Distributed {
        // The retry goes to another chat-server.
        stack.add_chat_server().await;
    }
    stack.add_default_publish_server().await;
    let first = stack.chat(0).clone();
    let other = stack.chat(stack.chats.len() - 1).clone();
    let alice = first.sign_in("alice").await;
    let bob = first.sign_in("bob").await;
    let room = first.create_room(&alice, "retries").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = SseClient::connect(&stack.events_url(0, &room), None).await;

    let original = json(
        first
            .try_post_with_key(&alice, &room, "hello", b"key-1")
            .await,
        StatusCode::CREATED,
    )
    .await;
    let retried = json(
        other
            .try_post_with_key(&alice, &room, "hello", b"key-1")
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(retried, original, "the retry gets the original answer");

    let reused = json(
        other
            .try_post_with_key(&alice, &room, "changed", b"key-1")
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(reused["error"]["code"], "idempotency_key_reused");
    for bad in [&b""[..], &[b'k'; 65], b"caf\xc3\xa9"] {
        let refused = json(
            first.try_post_with_key(&alice, &room, "bad key", bad).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(
            refused["error"]["code"], "invalid_idempotency_key",
            "{bad:?}"
        );
    }
    // Keys are per user.
    let bobs = json(
        first
            .try_post_with_key(&bob, &room, "hello", b"key-1")
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_ne!(bobs["id"], original["id"]);
    first.post(&alice, &room, "last").await;

    let streamed = messages_until(&mut stream, "last").await;
    assert_eq!(texts(&streamed), ["hello", "hello", "last"]);
    assert_eq!(streamed[0]["id"], original["id"]);
    let history = eventually(WAIT, "history to hold the last post", || async {
        let history = first.messages(&room).await;
        history
            .iter()
            .any(|m| m["text"] == "last")
            .then_some(history)
    })
    .await;
    assert_eq!(texts(&history), ["hello", "hello", "last"]);
    assert_eq!(history[0]["id"], original["id"]);
    assert_eq!(history[0]["at"], original["at"]);

    // Rooms too.
    let created = json(
        first
            .try_create_room_with_key(&alice, "keyed", "room-key")
            .await,
        StatusCode::CREATED,
    )
    .await;
    let again = json(
        other
            .try_create_room_with_key(&alice, "keyed", "room-key")
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(again, created);
    let reused = json(
        other
            .try_create_room_with_key(&alice, "renamed", "room-key")
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(reused["error"]["code"], "idempotency_key_reused");
    let listed = eventually(WAIT, "the keyed room to be listed", || async {
        let body: Value = reqwest::get(first.url("/api/rooms"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let rooms = body["rooms"].as_array()?.clone();
        rooms
            .iter()
            .any(|r| r["id"] == created["id"])
            .then_some(rooms)
    })
    .await;
    let names: Vec<&str> = listed.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "keyed").count(),
        1,
        "{names:?}"
    );
    assert!(!names.contains(&"renamed"), "{names:?}");
}
in_both_modes!(a_post_retried_with_its_key_is_answered_the_same_and_shown_once);

/// Acceptance 2: the broker is frozen past the produce timeout, so the first attempt gets a 503,
/// but it had the record on its socket and writes it once thawed. The retry, with the same key on
/// the other chat-server, appends the same event again: the log holds it twice, and every reader
/// shows it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_answered_503_after_the_broker_took_it_is_one_message_after_a_retry_elsewhere() {
    let broker = e2e::broker::own().await;
    let mut stack = Stack::empty_on(broker.bootstrap()).await;
    stack.produce_timeout = Duration::from_millis(1500);
    stack.add_chat_server().await;
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    let (first, other) = (stack.chat(0).clone(), stack.chat(1).clone());
    let alice = first.sign_in("alice").await;
    let room = first.create_room(&alice, "lost answer").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = SseClient::connect(&stack.events_url(0, &room), None).await;
    first.post(&alice, &room, "before").await;

    broker.pause(1);
    let lost = first
        .try_post_with_key(&alice, &room, "ambiguous", b"retry-1")
        .await;
    broker.resume(1);
    assert_eq!(lost.status(), StatusCode::SERVICE_UNAVAILABLE);
    let landed = eventually(WAIT, "the first attempt's record to land anyway", || async {
        let records = stack.records().await;
        records
            .iter()
            .map(|r| r.event())
            .find(|e| matches!(&e.body, shared::event::EventBody::MessagePosted { text, .. } if text == "ambiguous"))
    })
    .await;

    let retried = eventually(WAIT, "the retry to be taken", || async {
        let response = other
            .try_post_with_key(&alice, &room, "ambiguous", b"retry-1")
            .await;
        (response.status() == StatusCode::CREATED).then_some(response)
    })
    .await;
    let retried: Value = retried.json().await.unwrap();
    let shared::event::EventBody::MessagePosted { message_id, .. } = landed.body else {
        unreachable!()
    };
    assert_eq!(
        retried["id"],
        message_id.to_string(),
        "the retry answers for the first attempt"
    );
    other.post(&alice, &room, "after").await;
    let copies = stack
        .records()
        .await
        .iter()
        .filter(|r| r.event().event_id == landed.event_id)
        .count();
    assert_eq!(copies, 2, "the log holds the first attempt and the retry");

    let streamed = messages_until(&mut stream, "after").await;
    assert_eq!(texts(&streamed), ["before", "ambiguous", "after"]);
    let stored = eventually(WAIT, "the projector to catch up", || async {
        let texts = stored_texts(&stack.database_url, &room).await;
        texts.contains(&"after".to_owned()).then_some(texts)
    })
    .await;
    assert_eq!(stored, ["before", "ambiguous", "after"]);

    // A rebuild from offset 0 into an empty database: still once.
    let rebuilt = database::fresh().await;
    stack
        .add_publish_server(&rebuilt, &format!("rebuild-{}", uuid::Uuid::now_v7()))
        .await;
    let stored = eventually(WAIT, "the rebuild to catch up", || async {
        let texts = stored_texts(&rebuilt, &room).await;
        texts.contains(&"after".to_owned()).then_some(texts)
    })
    .await;
    assert_eq!(stored, ["before", "ambiguous", "after"]);
}
