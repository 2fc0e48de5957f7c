//! Acceptance 3: the fetch API returns history oldest→newest with reaction counts, paginates with
//! `before`/`limit`, and 404s unknown rooms.

use std::time::Duration;

use e2e::{Stack, eventually, in_both_modes, stack::Mode};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

fn texts(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}

in_both_modes!(fetch_returns_messages_oldest_first_with_reaction_counts_and_paginates);
async fn fetch_returns_messages_oldest_first_with_reaction_counts_and_paginates(mode: Mode) {
    let stack = Stack::single(mode).await;
    let api = stack.chat(0);
    let alice = api.sign_in("alice").await;
    let bob = api.sign_in("bob").await;
    let room = api.create_room(&alice, "history").await;
    let room = room["id"].as_str().unwrap();
    let mut posted = Vec::new();
    for i in 0..7 {
        posted.push(
            api.post(
                if i % 2 == 0 { &alice } else { &bob },
                room,
                &format!("m{i}"),
            )
            .await,
        );
    }
    eventually(WAIT, "all messages projected", || async {
        (api.messages(room).await.len() == 7).then_some(())
    })
    .await;

    let first = posted[0]["id"].as_str().unwrap();
    let second = posted[1]["id"].as_str().unwrap();
    assert_eq!(api.react(&alice, room, first, "👍", true).await, 202);
    assert_eq!(api.react(&bob, room, first, "👍", true).await, 202);
    assert_eq!(api.react(&bob, room, first, "👍", true).await, 202); // duplicate add
    assert_eq!(api.react(&bob, room, first, "🎉", true).await, 202);
    assert_eq!(api.react(&bob, room, first, "🎉", false).await, 202);
    assert_eq!(api.react(&alice, room, second, "❤️", true).await, 202);
    assert_eq!(api.react(&alice, room, second, "😂", false).await, 202); // remove of nothing

    let messages = eventually(WAIT, "reaction counts in the read model", || async {
        let messages = api.messages(room).await;
        (messages[1]["reactions"]["❤️"] == 1).then_some(messages)
    })
    .await;
    assert_eq!(texts(&messages), ["m0", "m1", "m2", "m3", "m4", "m5", "m6"]);
    assert_eq!(messages[0]["reactions"], serde_json::json!({"👍": 2}));
    assert_eq!(messages[1]["reactions"], serde_json::json!({"❤️": 1}));
    assert_eq!(messages[2]["reactions"], serde_json::json!({}));
    let m0 = &messages[0];
    assert_eq!(m0["id"], posted[0]["id"]);
    assert_eq!(m0["room_id"], room);
    assert_eq!(m0["user"], alice.user);
    assert_eq!(
        m0["at"], posted[0]["at"],
        "the stored time is the one answered at posting"
    );

    // Pages walk backwards from the newest with `before`.
    let response = api.fetch(room, "limit=3").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-room-mode"], "normal");
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["mode"], "normal");
    assert_eq!(
        texts(page["messages"].as_array().unwrap()),
        ["m4", "m5", "m6"]
    );
    let oldest = page["messages"][0]["id"].as_str().unwrap().to_owned();
    let page: Value = api
        .fetch(room, &format!("limit=3&before={oldest}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        texts(page["messages"].as_array().unwrap()),
        ["m1", "m2", "m3"]
    );
    let oldest = page["messages"][0]["id"].as_str().unwrap().to_owned();
    let page: Value = api
        .fetch(room, &format!("limit=3&before={oldest}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(texts(page["messages"].as_array().unwrap()), ["m0"]);
    let page: Value = api
        .fetch(room, &format!("before={first}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["messages"], serde_json::json!([]));
}

in_both_modes!(unknown_rooms_are_404_and_bad_paging_parameters_are_400);
async fn unknown_rooms_are_404_and_bad_paging_parameters_are_400(mode: Mode) {
    let stack = Stack::single(mode).await;
    let api = stack.chat(0);
    let alice = api.sign_in("alice").await;
    let room = api.create_room(&alice, "paging").await;
    let room = room["id"].as_str().unwrap();

    for unknown in [uuid::Uuid::now_v7().to_string(), "not-a-room".to_owned()] {
        for path in [
            format!("/api/rooms/{unknown}"),
            format!("/api/rooms/{unknown}/messages"),
        ] {
            let response = api.http.get(api.url(&path)).send().await.unwrap();
            assert_eq!(response.status(), 404, "{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "not_found");
        }
        let response = api
            .http
            .get(format!(
                "{}/api/rooms/{unknown}/events",
                stack.publishers[0]
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "SSE of an unknown room");
    }
    for query in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "before=nope",
        &format!("before={}", uuid::Uuid::now_v7()),
    ] {
        let response = api.fetch(room, query).await;
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{query}: {body}");
    }
    let response = api
        .http
        .get(api.url(&format!("/api/rooms/{room}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "paging");
    assert_eq!(body["mode"], "normal");
    let listed: Value = api
        .http
        .get(api.url("/api/rooms"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["rooms"][0]["id"], room);
    assert_eq!(listed["rooms"][0]["hot"], false);
}
