//! Running a live event (PRODUCT.md, "Live-event operations"): edit and delete, moderators, bans
//! and slow mode. For each operation: who may and who may not, bad input answered 4xx with nothing
//! written, the SSE events on every place serving streams, and history. In the distributed mode
//! the stack has two chat-servers and two publish-servers, and operations alternate between them.

use std::{collections::BTreeMap, time::Duration};

use e2e::{SseClient, Stack, api::Session, eventually, in_both_modes, stack::Mode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Two of each server in the distributed mode; the one embedded server otherwise.
async fn stack(mode: Mode) -> Stack {
    let mut stack = Stack::empty_in(mode).await;
    let servers = if mode == Mode::Distributed { 2 } else { 1 };
    for _ in 0..servers {
        stack.add_chat_server().await;
        stack.add_default_publish_server().await;
    }
    stack
}

/// One stream per place serving them.
async fn streams(stack: &Stack, room: &str) -> Vec<SseClient> {
    let mut streams = Vec::new();
    for i in 0..stack.publishers.len() {
        streams.push(SseClient::connect(&stack.events_url(i, room), None).await);
    }
    streams
}

/// How many records of each event type the log holds.
async fn kinds(stack: &Stack) -> BTreeMap<&'static str, usize> {
    let mut kinds = BTreeMap::new();
    for record in stack.records().await {
        *kinds.entry(record.event().kind()).or_default() += 1;
    }
    kinds
}

fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

fn user_id(session: &Session) -> String {
    id(&session.user)
}

#[track_caller]
fn refused(answer: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
}

async fn history_texts(stack: &Stack, room: &str) -> Vec<Value> {
    stack.chat(0).messages(room).await
}

async fn edits_and_deletes_follow_the_roles_and_reach_every_stream(mode: Mode) {
    let stack = stack(mode).await;
    let (a, b) = (stack.chat(0), stack.chat(stack.chats.len() - 1));
    let alice = a.sign_in("alice").await;
    let bob = b.sign_in("bob").await;
    let carol = a.sign_in("carol").await;
    let room = a.create_room(&alice, "concert").await;
    assert_eq!(room["owner"]["id"], alice.user["id"], "{room}");
    assert_eq!(room["owner"]["name"], "alice");
    assert_eq!(room["slow_mode_secs"], 0);
    let room = id(&room);
    let mut streams = streams(&stack, &room).await;
    let first = id(&a.post(&bob, &room, "first").await);
    let second = id(&b.post(&bob, &room, "second").await);
    let third = id(&a.post(&carol, &room, "third").await);
    let message = |m: &str| format!("/api/rooms/{room}/messages/{m}");
    let before = kinds(&stack).await;

    // Edits: the author only, valid text only, existing messages only.
    let text = |t: &str| Some(json!({ "text": t }));
    refused(
        &a.call(
            Method::PATCH,
            &message(&first),
            Some(&alice),
            text("mine now"),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    refused(
        &a.call(Method::PATCH, &message(&first), Some(&bob), text("  "))
            .await,
        StatusCode::BAD_REQUEST,
        "empty_text",
    );
    refused(
        &a.call(Method::PATCH, &message(&first), None, text("anonymous"))
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    for missing in [unknown.as_str(), "not-a-message"] {
        refused(
            &a.call(Method::PATCH, &message(missing), Some(&bob), text("x"))
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        refused(
            &a.call(Method::DELETE, &message(missing), Some(&alice), None)
                .await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    let (status, edited) = b
        .call(
            Method::PATCH,
            &message(&first),
            Some(&bob),
            text("first, edited"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["id"], first.as_str());
    assert_eq!(edited["text"], "first, edited");
    assert!(edited["edited_at"].is_string(), "{edited}");

    // Deletes: the author, the owner or a moderator; not another user.
    refused(
        &a.call(Method::DELETE, &message(&second), Some(&carol), None)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_eq!(kinds(&stack).await.get("message.deleted"), None);
    let (status, deleted) = b
        .call(Method::DELETE, &message(&second), Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{deleted}");
    assert_eq!(deleted["message_id"], second.as_str());
    assert_eq!(deleted["by"]["id"], alice.user["id"]);
    let (status, _) = a
        .call(Method::DELETE, &message(&third), Some(&carol), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "the author deletes her own");

    // A deleted message takes no edit, reaction or second delete.
    refused(
        &a.call(Method::PATCH, &message(&second), Some(&bob), text("back"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_eq!(
        b.react(&bob, &room, &second, "👍", true).await,
        StatusCode::NOT_FOUND
    );
    refused(
        &b.call(Method::DELETE, &message(&second), Some(&alice), None)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Exactly the accepted operations are in the log.
    let after = kinds(&stack).await;
    assert_eq!(after.get("message.edited"), Some(&1), "{after:?}");
    assert_eq!(after.get("message.deleted"), Some(&2), "{after:?}");
    assert_eq!(
        after.values().sum::<usize>(),
        before.values().sum::<usize>() + 3,
        "{after:?}"
    );

    // Every stream shows the edit and both deletes; so does a stream resumed from before them,
    // on another place serving streams.
    let third_posted = streams[0].collect("message", 3, WAIT).await[2]
        .id
        .clone()
        .expect("events carry ids");
    let last = stack.publishers.len() - 1;
    streams.push(SseClient::connect(&stack.events_url(last, &room), Some(&third_posted)).await);
    for stream in &mut streams {
        let edit = stream.next_of("edit", WAIT).await.json();
        assert_eq!(edit["id"], first.as_str());
        assert_eq!(edit["text"], "first, edited");
        assert_eq!(edit["user"]["id"], bob.user["id"]);
        assert_eq!(edit["edited_at"], edited["edited_at"]);
        let deletes: Vec<Value> = stream
            .collect("delete", 2, WAIT)
            .await
            .iter()
            .map(|e| e.json())
            .collect();
        assert_eq!(deletes[0]["message_id"], second.as_str());
        assert_eq!(deletes[0]["by"]["name"], "alice");
        assert_eq!(deletes[1]["message_id"], third.as_str());
    }

    // History (answered after the operations settled, on either chat-server): the edited text,
    // and neither deleted message.
    for api in [a, b] {
        let (status, page) = api
            .call(
                Method::GET,
                &format!("/api/rooms/{room}/messages"),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let messages = page["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "{page}");
        assert_eq!(messages[0]["text"], "first, edited");
        assert_eq!(messages[0]["edited_at"], edited["edited_at"]);
    }
}

in_both_modes!(edits_and_deletes_follow_the_roles_and_reach_every_stream);

async fn the_owner_appoints_moderators_and_they_ban_and_lift_bans(mode: Mode) {
    let stack = stack(mode).await;
    let (a, b) = (stack.chat(0), stack.chat(stack.chats.len() - 1));
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    let carol = b.sign_in("carol").await;
    let dave = b.sign_in("dave").await;
    let room = id(&a.create_room(&alice, "newsroom").await);
    let carols = id(&a.post(&carol, &room, "hello").await);
    let path = |what: &str, user: &Session| format!("/api/rooms/{room}/{what}/{}", user_id(user));
    let ban = |seconds: Value, reason: &str| Some(json!({ "seconds": seconds, "reason": reason }));
    let bans = format!("/api/rooms/{room}/bans");
    let before = kinds(&stack).await;

    // Nobody without a role moderates; only the owner appoints; nobody acts on the owner.
    for (method, what, body) in [
        (Method::PUT, "bans", ban(json!(60), "")),
        (Method::DELETE, "bans", None),
        (Method::PUT, "moderators", None),
        (Method::DELETE, "moderators", None),
    ] {
        refused(
            &b.call(method.clone(), &path(what, &dave), Some(&carol), body)
                .await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    refused(
        &a.call(Method::GET, &bans, Some(&carol), None).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    refused(
        &a.call(Method::GET, &bans, None, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    refused(
        &a.call(Method::PUT, &path("moderators", &alice), Some(&alice), None)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_eq!(kinds(&stack).await, before, "nothing refused was written");

    let (status, _) = a
        .call(Method::PUT, &path("moderators", &bob), Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, moderators) = b
        .call(
            Method::GET,
            &format!("/api/rooms/{room}/moderators"),
            None,
            None,
        )
        .await;
    assert_eq!(
        moderators["moderators"][0]["user_id"], bob.user["id"],
        "{moderators}"
    );
    // A moderator does not appoint, nor ban the owner or another moderator.
    refused(
        &b.call(Method::PUT, &path("moderators", &dave), Some(&bob), None)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    refused(
        &b.call(
            Method::PUT,
            &path("bans", &alice),
            Some(&bob),
            ban(json!(60), ""),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    refused(
        &a.call(
            Method::PUT,
            &path("bans", &bob),
            Some(&alice),
            ban(json!(60), ""),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );

    // Bad input: 4xx JSON, nothing written.
    let written = kinds(&stack).await;
    for body in [
        ban(json!(-5), ""),
        ban(json!(0), ""),
        ban(json!(400 * 24 * 3600), ""),
        ban(json!(60), &"x".repeat(201)),
        ban(json!(60), "bell\u{7}"),
    ] {
        refused(
            &b.call(Method::PUT, &path("bans", &carol), Some(&bob), body)
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_ban",
        );
    }
    for body in [json!({"seconds": "soon"}), json!([1])] {
        let (status, answer) = b
            .call(Method::PUT, &path("bans", &carol), Some(&bob), Some(body))
            .await;
        assert!(status.is_client_error(), "{status} {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
    }
    refused(
        &b.call(
            Method::PUT,
            &format!("/api/rooms/{room}/bans/nobody"),
            Some(&bob),
            ban(json!(60), ""),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_user",
    );
    assert_eq!(kinds(&stack).await, written, "nothing refused was written");

    // A moderator bans carol for ten minutes and dave for good.
    let (status, carol_ban) = b
        .call(
            Method::PUT,
            &path("bans", &carol),
            Some(&bob),
            ban(json!(600), "spam"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{carol_ban}");
    let at = chrono::DateTime::parse_from_rfc3339(carol_ban["at"].as_str().unwrap()).unwrap();
    let until = chrono::DateTime::parse_from_rfc3339(carol_ban["until"].as_str().unwrap()).unwrap();
    assert_eq!(until - at, chrono::Duration::seconds(600));
    assert_eq!(carol_ban["by"]["id"], bob.user["id"]);
    let (status, dave_ban) = a
        .call(
            Method::PUT,
            &path("bans", &dave),
            Some(&bob),
            ban(Value::Null, "flood"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{dave_ban}");
    assert_eq!(dave_ban["until"], Value::Null);

    // Their writes are refused on every chat-server, saying until when.
    for api in [a, b] {
        let answer = api
            .call(
                Method::POST,
                &format!("/api/rooms/{room}/messages"),
                Some(&carol),
                Some(json!({"text": "still here"})),
            )
            .await;
        refused(&answer, StatusCode::FORBIDDEN, "banned");
        assert_eq!(answer.1["error"]["until"], carol_ban["until"]);
        let answer = api
            .call(
                Method::POST,
                &format!("/api/rooms/{room}/messages"),
                Some(&dave),
                Some(json!({"text": "me too"})),
            )
            .await;
        refused(&answer, StatusCode::FORBIDDEN, "banned");
        assert_eq!(answer.1["error"]["until"], Value::Null);
    }
    assert_eq!(
        a.react(&carol, &room, &carols, "👍", true).await,
        StatusCode::FORBIDDEN
    );
    refused(
        &b.call(
            Method::PATCH,
            &format!("/api/rooms/{room}/messages/{carols}"),
            Some(&carol),
            Some(json!({"text": "edited"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "banned",
    );

    // Moderators see the bans in force.
    for who in [&alice, &bob] {
        let (status, list) = a.call(Method::GET, &bans, Some(who), None).await;
        assert_eq!(status, StatusCode::OK);
        let banned: Vec<&Value> = list["bans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| &b["user_id"])
            .collect();
        assert_eq!(banned, [&dave.user["id"], &carol.user["id"]], "{list}");
        assert_eq!(list["bans"][1]["reason"], "spam");
    }

    // Lifted: carol posts again. A ban that runs out ends by itself.
    let (status, _) = b
        .call(Method::DELETE, &path("bans", &carol), Some(&bob), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    a.post(&carol, &room, "back").await;
    let (status, _) = b
        .call(
            Method::PUT,
            &path("bans", &carol),
            Some(&bob),
            ban(json!(3), "cool off"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    refused(
        &a.call(
            Method::POST,
            &format!("/api/rooms/{room}/messages"),
            Some(&carol),
            Some(json!({"text": "too soon"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "banned",
    );
    eventually(WAIT, "the three-second ban to run out", || async {
        let (status, _) = b
            .call(
                Method::POST,
                &format!("/api/rooms/{room}/messages"),
                Some(&carol),
                Some(json!({"text": "after the ban"})),
            )
            .await;
        (status == StatusCode::CREATED).then_some(())
    })
    .await;

    // Dismissed, bob can no longer ban.
    let (status, _) = a
        .call(
            Method::DELETE,
            &path("moderators", &bob),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    refused(
        &b.call(
            Method::PUT,
            &path("bans", &carol),
            Some(&bob),
            ban(json!(60), ""),
        )
        .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    let after = kinds(&stack).await;
    assert_eq!(after.get("moderator.added"), Some(&1), "{after:?}");
    assert_eq!(after.get("moderator.removed"), Some(&1), "{after:?}");
    assert_eq!(after.get("user.banned"), Some(&3), "{after:?}");
    assert_eq!(after.get("user.unbanned"), Some(&1), "{after:?}");
}

in_both_modes!(the_owner_appoints_moderators_and_they_ban_and_lift_bans);

async fn slow_mode_holds_across_chat_servers_and_spares_moderators(mode: Mode) {
    let stack = stack(mode).await;
    let (a, b) = (stack.chat(0), stack.chat(stack.chats.len() - 1));
    let alice = a.sign_in("alice").await;
    let bob = a.sign_in("bob").await;
    let carol = b.sign_in("carol").await;
    let dave = b.sign_in("dave").await;
    let room = id(&a.create_room(&alice, "viral").await);
    let mut streams = streams(&stack, &room).await;
    let (status, _) = a
        .call(
            Method::PUT,
            &format!("/api/rooms/{room}/moderators/{}", user_id(&bob)),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let settings = format!("/api/rooms/{room}");
    let slow = |secs: Value| Some(json!({ "slow_mode_secs": secs }));
    let before = kinds(&stack).await;

    refused(
        &a.call(Method::PATCH, &settings, Some(&carol), slow(json!(30)))
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    refused(
        &a.call(Method::PATCH, &settings, None, slow(json!(30)))
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    for bad in [json!(-1), json!(3601), json!(i64::MAX)] {
        refused(
            &b.call(Method::PATCH, &settings, Some(&bob), slow(bad))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_slow_mode",
        );
    }
    for bad in [json!("30"), json!(2.5), json!(null)] {
        let (status, answer) = b
            .call(Method::PATCH, &settings, Some(&bob), slow(bad))
            .await;
        assert!(status.is_client_error(), "{status} {answer}");
        assert!(answer["error"]["code"].is_string(), "{answer}");
    }
    assert_eq!(kinds(&stack).await, before, "nothing refused was written");

    // A moderator turns it on; the room says so, and so does every stream.
    let (status, updated) = b
        .call(Method::PATCH, &settings, Some(&bob), slow(json!(30)))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["slow_mode_secs"], 30);
    assert_eq!(updated["owner"]["id"], alice.user["id"]);
    let (_, shown) = a.call(Method::GET, &settings, None, None).await;
    assert_eq!(shown["slow_mode_secs"], 30, "{shown}");
    for stream in &mut streams {
        let event = stream.next_of("room", WAIT).await.json();
        assert_eq!(event["id"], room.as_str());
        assert_eq!(event["slow_mode_secs"], 30);
        assert_eq!(event["name"], "viral");
        assert_eq!(event["owner"]["name"], "alice");
    }

    // One post per interval, whichever chat-server takes the next one.
    a.post(&carol, &room, "one").await;
    let answer = b
        .call(
            Method::POST,
            &format!("/api/rooms/{room}/messages"),
            Some(&carol),
            Some(json!({"text": "two"})),
        )
        .await;
    refused(&answer, StatusCode::TOO_MANY_REQUESTS, "slow_mode");
    let response = b.try_post(&carol, &room, "three").await;
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&wait), "Retry-After {wait}");

    // The owner and moderators are exempt.
    for who in [&alice, &bob] {
        a.post(who, &room, "first").await;
        b.post(who, &room, "second").await;
    }

    // A retry of an acknowledged post is its first answer, not a slow-mode refusal.
    let first = dave_posts(a, &dave, &room, "hi", b"slow-1").await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let retry = dave_posts(b, &dave, &room, "hi", b"slow-1").await;
    assert_eq!(retry.0, StatusCode::CREATED, "{}", retry.1);
    assert_eq!(retry.1["id"], first.1["id"]);
    let next = dave_posts(b, &dave, &room, "again", b"slow-2").await;
    refused(&next, StatusCode::TOO_MANY_REQUESTS, "slow_mode");

    // Off again: carol posts at once.
    let (status, _) = a
        .call(Method::PATCH, &settings, Some(&alice), slow(json!(0)))
        .await;
    assert_eq!(status, StatusCode::OK);
    b.post(&carol, &room, "free again").await;
    let after = kinds(&stack).await;
    assert_eq!(after.get("room.updated"), Some(&2), "{after:?}");
    let texts: Vec<String> = eventually(WAIT, "history to hold every accepted post", || async {
        let texts: Vec<String> = history_texts(&stack, &room)
            .await
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        (texts.len() == 7).then_some(texts)
    })
    .await;
    assert!(
        !texts
            .iter()
            .any(|t| t == "two" || t == "three" || t == "again")
    );
}

async fn dave_posts(
    api: &e2e::Api,
    dave: &Session,
    room: &str,
    text: &str,
    key: &[u8],
) -> (StatusCode, Value) {
    let response = api.try_post_with_key(dave, room, text, key).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

in_both_modes!(slow_mode_holds_across_chat_servers_and_spares_moderators);
