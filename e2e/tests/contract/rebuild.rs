//! Acceptance 4: the read model is a projection of the topic. Replaying the topic from the beginning
//! into an empty database yields the same rows, and applying events again changes nothing. The
//! topic holds every event type: posts and reactions, edits and deletes, room settings,
//! moderators and bans.

use std::time::Duration;

use e2e::{Stack, database, eventually};
use reqwest::Method;
use serde_json::json;
use shared::readmodel::ReadModel;

const WAIT: Duration = Duration::from_secs(20);

/// Every row of the read model, in a stable order, as text.
async fn dump(url: &str) -> Vec<String> {
    let mut conn = database::connect(url).await;
    let mut rows: Vec<String> = Vec::new();
    for query in [
        "SELECT concat_ws('|', 'room', id, name, created_by, owner_name, created_at, slow_mode_secs) \
         FROM rooms ORDER BY id",
        "SELECT concat_ws('|', 'message', id, room_id, user_id, user_name, text, at, seq, \
         edited_at, deleted_at) FROM messages ORDER BY id",
        "SELECT concat_ws('|', 'reaction', message_id, emoji, user_id) FROM reactions ORDER BY 1",
        "SELECT concat_ws('|', 'moderator', room_id, user_id, since) FROM moderators ORDER BY 1",
        "SELECT concat_ws('|', 'ban', room_id, user_id, until, reason, by_id, by_name, at) \
         FROM bans ORDER BY 1",
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

    // Live-event operations, each answered once projected: an edit, a delete (taking its
    // reaction), slow mode, two moderators appointed and one dismissed, a ban for good, a timed
    // ban and its lifting.
    let carol = api.sign_in("carol").await;
    let dave = api.sign_in("dave").await;
    let [bob_id, carol_id, dave_id] = [&bob, &carol, &dave].map(|s| s.user["id"].as_str().unwrap());
    let (room, third) = &messages[2];
    let (other_room, second) = &messages[1];
    let operations = [
        (
            Method::PATCH,
            format!("{room}/messages/{third}"),
            Some(json!({"text": "edited"})),
        ),
        (
            Method::DELETE,
            format!("{other_room}/messages/{second}"),
            None,
        ),
        (
            Method::PATCH,
            room.clone(),
            Some(json!({"slow_mode_secs": 15})),
        ),
        (Method::PUT, format!("{room}/moderators/{bob_id}"), None),
        (Method::PUT, format!("{room}/moderators/{carol_id}"), None),
        (
            Method::DELETE,
            format!("{room}/moderators/{carol_id}"),
            None,
        ),
        (
            Method::PUT,
            format!("{room}/bans/{carol_id}"),
            Some(json!({"seconds": null, "reason": "x"})),
        ),
        (
            Method::PUT,
            format!("{room}/bans/{dave_id}"),
            Some(json!({"seconds": 3600, "reason": "y"})),
        ),
        (Method::DELETE, format!("{room}/bans/{dave_id}"), None),
    ];
    for (method, path, body) in operations {
        let path = format!("/api/rooms/{path}");
        let (status, answer) = api.call(method.clone(), &path, Some(&alice), body).await;
        assert!(status.is_success(), "{method} {path}: {status} {answer}");
    }
    let records = stack.records().await;
    let kinds: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.event().kind()).collect();
    assert_eq!(
        kinds.len(),
        11,
        "every event type but the scheduler's mode change: {kinds:?}"
    );
    assert_eq!(records.len(), 2 + 12 + 6 + 9);

    let original = eventually(WAIT, "everything projected", || async {
        let rows = dump(&stack.database_url).await;
        let bans = rows.iter().filter(|r| r.starts_with("ban|")).count();
        (bans == 1 && rows.iter().filter(|r| r.starts_with("reaction|")).count() == 2)
            .then_some(rows)
    })
    .await;
    // Rooms, messages (the deleted one as a tombstone), reactions, bob as moderator, carol's ban.
    assert_eq!(original.len(), 2 + 12 + 2 + 1 + 1);

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
