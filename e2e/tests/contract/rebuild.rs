//! Acceptance 4: the read model is a projection of the topic. Replaying the topic from the beginning
//! into an empty database yields the same rows, and applying events again changes nothing.

use std::time::Duration;

use e2e::{Stack, database, eventually};
use shared::readmodel::ReadModel;

const WAIT: Duration = Duration::from_secs(20);

/// Every row of the read model, in a stable order, as text.
async fn dump(url: &str) -> Vec<String> {
    let mut conn = database::connect(url).await;
    let mut rows: Vec<String> = Vec::new();
    for query in [
        "SELECT concat_ws('|', 'room', id, name, created_by, created_at) FROM rooms ORDER BY id",
        "SELECT concat_ws('|', 'message', id, room_id, user_id, user_name, text, at, seq) FROM messages ORDER BY id",
        "SELECT concat_ws('|', 'reaction', message_id, emoji, user_id) FROM reactions ORDER BY 1",
    ] {
        let part: Vec<String> = sqlx::query_scalar(query)
            .fetch_all(&mut conn)
            .await
            .unwrap();
        rows.extend(part);
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaying_the_topic_into_an_empty_database_yields_the_same_read_model() {
    let mut stack = Stack::start(2, 1).await;
    let alice = stack.chat(0).sign_in("alice").await;
    let bob = stack.chat(1).sign_in("bob").await;
    let mut rooms = Vec::new();
    for name in ["one", "two"] {
        let room = stack.chat(0).create_room(&alice, name).await;
        rooms.push(room["id"].as_str().unwrap().to_owned());
    }
    let mut messages = Vec::new();
    for i in 0..12 {
        let room = &rooms[i % 2];
        let message = stack
            .chat(i % 2)
            .post(
                if i % 3 == 0 { &bob } else { &alice },
                room,
                &format!("text {i}"),
            )
            .await;
        messages.push((room.clone(), message["id"].as_str().unwrap().to_owned()));
    }
    eventually(WAIT, "messages projected", || async {
        let total = stack.chat(0).messages(&rooms[0]).await.len()
            + stack.chat(0).messages(&rooms[1]).await.len();
        (total == 12).then_some(())
    })
    .await;
    let api = stack.chat(0);
    let (room, first) = &messages[0];
    api.react(&alice, room, first, "👍", true).await;
    api.react(&bob, room, first, "👍", true).await;
    api.react(&bob, room, first, "👍", true).await;
    api.react(&alice, room, first, "👍", false).await;
    api.react(&alice, room, first, "🔥", true).await;
    let (room, second) = &messages[1];
    api.react(&bob, room, second, "😂", true).await;
    let records = stack.records().await;
    assert_eq!(records.len(), 2 + 12 + 6);

    let original = eventually(WAIT, "reactions projected", || async {
        let rows = dump(&stack.database_url).await;
        (rows.iter().filter(|r| r.starts_with("reaction|")).count() == 3).then_some(rows)
    })
    .await;
    assert_eq!(original.len(), 2 + 12 + 3);

    // A second projector, in a new group, on an empty database: it starts from offset zero.
    let rebuilt = database::fresh().await;
    let group = format!("rebuild-{}", uuid::Uuid::now_v7());
    stack.add_publish_server(&rebuilt, &group).await;
    eventually(WAIT, "the rebuilt read model to match", || async {
        (dump(&rebuilt).await == original).then_some(())
    })
    .await;

    // Redelivery: applying every event again, as after a crash before a commit, changes nothing.
    let read_model = ReadModel::connect(&rebuilt).await.unwrap();
    let events: Vec<_> = records.iter().map(|r| (r.cursor, r.event())).collect();
    assert_eq!(
        read_model.apply_batch(&events, &[]).await.unwrap(),
        0,
        "nothing is new"
    );
    assert_eq!(dump(&rebuilt).await, original);
}
