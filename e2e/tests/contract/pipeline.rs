//! Acceptance 1 and 2: events flow from any chat-server to SSE clients on every publish-server, and
//! into the read model, in per-room order and exactly once.

use std::time::Duration;

use e2e::{SseClient, Stack, eventually, in_both_modes, stack::Mode};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_posted_on_either_chat_server_reaches_sse_clients_on_both_publish_servers_once_in_order()
 {
    let stack = Stack::start(2, 2).await;
    let alice = stack.chat(0).sign_in("alice").await;
    let room = stack.chat(0).create_room(&alice, "lobby").await;
    let room = room["id"].as_str().unwrap();
    let mut first = SseClient::connect(&stack.events_url(0, room), None).await;
    let mut second = SseClient::connect(&stack.events_url(1, room), None).await;

    let mut posted = Vec::new();
    for i in 0..10 {
        let message = stack
            .chat(i % 2)
            .post(&alice, room, &format!("message {i}"))
            .await;
        posted.push(message);
    }
    // A sentinel posted last: anything duplicated or extra would show up before it.
    let sentinel = stack.chat(1).post(&alice, room, "sentinel").await;
    posted.push(sentinel);

    for client in [&mut first, &mut second] {
        let received = client.collect("message", posted.len(), WAIT).await;
        let received: Vec<Value> = received.iter().map(|e| e.json()).collect();
        assert_eq!(
            received, posted,
            "the stream carries exactly the posted messages, in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_messages_over_three_rooms_keep_per_room_order_in_every_stream_and_in_the_fetch_api()
 {
    let stack = Stack::start(2, 2).await;
    let bob = stack.chat(0).sign_in("bob").await;
    let mut rooms = Vec::new();
    for name in ["red", "green", "blue"] {
        let room = stack.chat(1).create_room(&bob, name).await;
        rooms.push(room["id"].as_str().unwrap().to_owned());
    }
    let mut streams = Vec::new();
    for room in &rooms {
        for publisher in 0..2 {
            streams.push((
                room.clone(),
                SseClient::connect(&stack.events_url(publisher, room), None).await,
            ));
        }
    }

    // Rooms are posted to concurrently; within a room each post waits for the previous one's 201,
    // which defines the order the room must keep.
    let counts = [34, 33, 33];
    let posters = rooms
        .iter()
        .zip(counts)
        .enumerate()
        .map(|(r, (room, count))| {
            let (chats, bob, room) = (stack.chats.clone(), bob.clone(), room.clone());
            tokio::spawn(async move {
                let mut texts = Vec::new();
                for i in 0..count {
                    let text = format!("room {r} message {i}");
                    chats[i % 2].post(&bob, &room, &text).await;
                    texts.push(text);
                }
                (room, texts)
            })
        });
    let mut expected = std::collections::HashMap::new();
    for poster in posters.collect::<Vec<_>>() {
        let (room, texts) = poster.await.unwrap();
        expected.insert(room, texts);
    }
    assert_eq!(expected.values().map(Vec::len).sum::<usize>(), 100);

    for (room, stream) in &mut streams {
        let want = &expected[room];
        let got: Vec<String> = stream
            .collect("message", want.len(), WAIT)
            .await
            .iter()
            .map(|e| e.json()["text"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(&got, want, "SSE order of room {room}");
    }
    for room in &rooms {
        let want = &expected[room];
        let got = eventually(WAIT, "the read model to hold every message", || async {
            let messages = stack.chat(0).messages(room).await;
            (messages.len() == want.len()).then_some(messages)
        })
        .await;
        let got: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
        assert_eq!(&got, want, "fetch API order of room {room}");
    }
}

in_both_modes!(reactions_reach_subscribers_with_live_counts_and_repeats_change_nothing);
async fn reactions_reach_subscribers_with_live_counts_and_repeats_change_nothing(mode: Mode) {
    let stack = Stack::single(mode).await;
    let alice = stack.chat(0).sign_in("alice").await;
    let bob = stack.chat(0).sign_in("bob").await;
    let room = stack.chat(0).create_room(&alice, "reactions").await;
    let room = room["id"].as_str().unwrap();
    let mut stream = SseClient::connect(&stack.events_url(0, room), None).await;
    let message = stack.chat(0).post(&alice, room, "react to me").await;
    let id = message["id"].as_str().unwrap();
    stream.next_of("message", WAIT).await;
    eventually(WAIT, "the message to be projected", || async {
        (stack.chat(0).messages(room).await.len() == 1).then_some(())
    })
    .await;

    let api = stack.chat(0);
    assert_eq!(api.react(&alice, room, id, "👍", true).await, 202);
    assert_eq!(
        api.react(&alice, room, id, "👍", true).await,
        202,
        "a repeated PUT is accepted"
    );
    assert_eq!(api.react(&bob, room, id, "👍", true).await, 202);
    assert_eq!(api.react(&alice, room, id, "👍", false).await, 202);

    let events: Vec<Value> = stream
        .collect("reaction", 3, WAIT)
        .await
        .iter()
        .map(|e| e.json())
        .collect();
    let summary: Vec<(&str, &str, i64)> = events
        .iter()
        .map(|e| {
            (
                e["user"]["name"].as_str().unwrap(),
                e["op"].as_str().unwrap(),
                e["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("alice", "added", 1),
            ("bob", "added", 2),
            ("alice", "removed", 1)
        ]
    );
    assert!(
        events
            .iter()
            .all(|e| e["message_id"] == id && e["emoji"] == "👍")
    );
}
