//! The live path (log → hub → SSE) waits on nothing but the log and the sockets: not on the read
//! model. Tried with the publish-server's PostgreSQL *hung* — connections open, nothing answered —
//! which is worse for a client than a refused connection: every query waits for its timeout.
//!
//! Only the distributed mode has a database to hang: the embedded read model is a file in the
//! process (its fan-out does not wait on it either; it reads the log as the distributed one does).

use std::time::{Duration, Instant};

use e2e::{SseClient, Stack, eventually, proxy::TcpProxy};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);
/// What "normal latency" must stay under while the database hangs (it is a few milliseconds
/// normally; a query waiting on the hung database would take the pool's 3 s acquire timeout).
const LIVE_BOUND: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_database_delays_no_live_event_and_no_reconnect_and_counts_are_never_wrong() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut stack = Stack::empty().await;
    // A small resume buffer, so the publish-server started below has not read the old message.
    stack.sse.resume_buffer = 16;
    stack.add_chat_server().await;
    let api = stack.chat(0).clone();
    let (alice, bob, carol) = (
        api.sign_in("alice").await,
        api.sign_in("bob").await,
        api.sign_in("carol").await,
    );
    let room_of = |v: Value| v["id"].as_str().unwrap().to_owned();
    let (reactions, chatter) = (
        room_of(api.create_room(&alice, "reactions").await),
        room_of(api.create_room(&alice, "chatter").await),
    );
    // A projector of its own (direct to the database) writes what comes before the outage.
    let direct = stack.database_url.clone();
    let group = stack.projector_group();
    stack.add_publish_server(&direct, &group).await;
    let old = api.post(&alice, &reactions, "old").await;
    let old_id = old["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api.react(&alice, &reactions, &old_id, "👍", true).await,
        202
    );
    // Later events of the same room (so of the same partition) push both out of the window.
    for i in 0..20 {
        api.post(&alice, &reactions, &format!("filler {i}")).await;
    }
    eventually(WAIT, "all of it projected", || async {
        let messages = api
            .fetch(&reactions, "limit=50")
            .await
            .json::<Value>()
            .await
            .ok()?;
        let messages = messages["messages"].as_array()?.clone();
        (messages.len() == 21 && messages[0]["reactions"]["👍"] == 1).then_some(())
    })
    .await;
    stack.publish_stops[0].cancel();

    // The publish-server under test reads PostgreSQL through the proxy, and starts after the old
    // message left its resume window: it knows neither the message nor its reactions.
    let proxied = proxy.rewrite_url(&direct);
    let under_test = stack.add_publish_server(&proxied, &group).await;
    let url = |room: &str| format!("{under_test}/api/rooms/{room}/events");
    let mut on_reactions = SseClient::connect(&url(&reactions), None).await;
    let mut on_chatter = SseClient::connect(&url(&chatter), None).await;

    proxy.hang();
    // Reactions on the old message: the hub cannot seed its count from the hung database.
    assert_eq!(api.react(&bob, &reactions, &old_id, "👍", true).await, 202);
    assert_eq!(
        api.react(&carol, &reactions, &old_id, "👍", true).await,
        202
    );
    let mut truth = 3; // alice, bob, carol
    let mut cursor = None;
    // Messages of another room, timed from the answer to the post to their arrival on SSE.
    for i in 0..5 {
        let posted = api.post(&bob, &chatter, &format!("live {i}")).await;
        let sent = Instant::now();
        let event = on_chatter.next_of("message", WAIT).await;
        let waited = sent.elapsed();
        assert_eq!(event.json()["id"], posted["id"]);
        cursor = event.id.clone();
        assert!(
            waited < LIVE_BOUND,
            "a message of another room took {waited:?} with the database hung"
        );
    }
    for who in ["bob", "carol"] {
        let reaction = on_reactions.next_of("reaction", WAIT).await.json();
        assert_eq!(reaction["user"]["name"], who);
        let count = &reaction["count"];
        assert!(
            count.is_null() || count == 2 || count == 3,
            "a count is exact or absent, never wrong: {reaction}"
        );
        if who == "carol" {
            assert!(count.is_null() || *count == truth, "{reaction}");
        }
    }
    // A message posted now is read live: its reactions are counted exactly, database or not.
    let fresh = api.post(&alice, &reactions, "fresh").await;
    let fresh_id = fresh["id"].as_str().unwrap().to_owned();
    on_reactions.next_of("message", WAIT).await;
    eventually(
        WAIT,
        "the fresh message known to the chat-server",
        || async {
            (api.react(&bob, &reactions, &fresh_id, "🎉", true).await == 202).then_some(())
        },
    )
    .await;
    let reaction = on_reactions.next_of("reaction", WAIT).await.json();
    assert_eq!(reaction["count"], 1, "{reaction}");

    // A client that reconnects (with its cursor) gets its stream at once.
    let cursor = cursor.expect("a cursor");
    let started = Instant::now();
    let (status, _, resumed) = SseClient::open(
        reqwest::Client::new()
            .get(url(&chatter))
            .header("last-event-id", cursor),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < LIVE_BOUND,
        "a reconnect took {:?} with the database hung",
        started.elapsed()
    );
    let mut resumed = resumed.expect("a stream");
    let later = api.post(&bob, &chatter, "after the reconnect").await;
    assert_eq!(
        resumed.next_of("message", WAIT).await.json()["id"],
        later["id"]
    );

    // The database comes back: the projector catches up, and the old message's count is exact
    // again (seeded off the live path).
    proxy.restore();
    eventually(WAIT, "the projector to catch up", || async {
        let texts: Vec<String> = api
            .messages(&chatter)
            .await
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect();
        texts
            .contains(&"after the reconnect".to_owned())
            .then_some(())
    })
    .await;
    let dave = api.sign_in("dave").await;
    truth += 1;
    assert_eq!(api.react(&dave, &reactions, &old_id, "👍", true).await, 202);
    let reaction = on_reactions.next_of("reaction", WAIT).await.json();
    assert_eq!(reaction["user"]["name"], "dave");
    assert!(
        reaction["count"].is_null() || reaction["count"] == truth,
        "{reaction}"
    );
    // Once seeded, every count is there and right: toggle dave's reaction until one says so.
    let deadline = Instant::now() + WAIT;
    let mut add = false;
    loop {
        assert_eq!(api.react(&dave, &reactions, &old_id, "👍", add).await, 202);
        truth = if add { 4 } else { 3 };
        let event = on_reactions.next_of("reaction", WAIT).await.json();
        if let Some(count) = event["count"].as_i64() {
            assert_eq!(count, truth, "the seeded count is the truth: {event}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no count {WAIT:?} after the database came back"
        );
        add = !add;
    }
}
