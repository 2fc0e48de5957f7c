//! The embedded default: the real `chat-server` binary, no variables but its port, in an empty folder.

use std::time::Duration;

use e2e::{Api, SseClient, eventually, process::ServerProcess};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_binary_alone_runs_the_whole_service_and_keeps_history_across_a_restart() {
    let dir = std::env::temp_dir().join(format!(
        "hotchat-embedded-{}",
        uuid::Uuid::now_v7().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = ServerProcess::embedded_chat_server(&dir).await;
    let api = Api::new(server.base.clone());
    let alice = api.sign_in("alice").await;
    let bob = api.sign_in("bob").await;
    let room = api.create_room(&alice, "embedded").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream =
        SseClient::connect(&format!("{}/api/rooms/{room}/events", server.base), None).await;

    let message = api.post(&alice, &room, "hello from one process").await;
    let id = message["id"].as_str().unwrap().to_owned();
    let event = stream.next_of("message", WAIT).await;
    assert_eq!(
        event.json(),
        message,
        "the stream carries the posted message"
    );
    assert_eq!(api.react(&bob, &room, &id, "🎉", true).await, 202);
    let reaction = stream.next_of("reaction", WAIT).await.json();
    assert_eq!(
        (reaction["emoji"].as_str(), reaction["count"].as_i64()),
        (Some("🎉"), Some(1))
    );
    let history = eventually(WAIT, "the reaction in the history", || async {
        let messages = api.messages(&room).await;
        (messages.len() == 1 && messages[0]["reactions"]["🎉"] == 1).then_some(messages)
    })
    .await;
    assert_eq!(history[0]["text"], "hello from one process");

    server.signal("-TERM");
    let status = server
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exits within 5 s");
    assert!(status.success(), "clean exit, got {status}");
    for file in ["data/events.db", "data/hotchat.db", "data/auth_secret"] {
        assert!(dir.join(file).is_file(), "{file} was not written");
    }

    let server = ServerProcess::embedded_chat_server(&dir).await;
    let api = Api::new(server.base.clone());
    let messages = api.messages(&room).await;
    assert_eq!(messages.len(), 1, "history survives the restart");
    assert_eq!(messages[0]["id"], id.as_str());
    assert_eq!(messages[0]["reactions"], serde_json::json!({"🎉": 1}));
    let rooms: Value = api
        .http
        .get(api.url("/api/rooms"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rooms["rooms"][0]["name"], "embedded");
    // Tokens survive too (the generated secret is kept), and a resumed stream continues the log.
    let cursor = event.id.unwrap();
    let mut resumed = SseClient::connect(
        &format!("{}/api/rooms/{room}/events", server.base),
        Some(&cursor),
    )
    .await;
    let second = api.post(&alice, &room, "after the restart").await;
    let reaction = resumed.next(WAIT).await.unwrap();
    assert_eq!(
        reaction.event, "reaction",
        "the reaction made after the cursor is replayed first"
    );
    assert_eq!(resumed.next_of("message", WAIT).await.json(), second);
    let _ = std::fs::remove_dir_all(&dir);
}
