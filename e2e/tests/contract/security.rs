//! Abuse and hostile input: others' reactions, floods, foreign origins, secrets in logs, and records
//! in the topic that are not hotchat events.

use std::time::Duration;

use e2e::{Api, SseClient, Stack, eventually, in_both_modes, process::ServerProcess, stack::Mode};
use serde_json::Value;
use shared::event::{Envelope, EventBody, SCHEMA_VERSION, User};

const WAIT: Duration = Duration::from_secs(15);

in_both_modes!(users_can_remove_only_their_own_reactions);
async fn users_can_remove_only_their_own_reactions(mode: Mode) {
    let stack = Stack::single(mode).await;
    let api = stack.chat(0);
    let alice = api.sign_in("alice").await;
    let mallory = api.sign_in("mallory").await;
    let room = api.create_room(&alice, "mine").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let message = api.post(&alice, &room, "hands off").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(WAIT, "the message projected", || async {
        (api.messages(&room).await.len() == 1).then_some(())
    })
    .await;
    assert_eq!(api.react(&alice, &room, &message, "👍", true).await, 202);
    assert_eq!(
        api.react(&mallory, &room, &message, "👍", false).await,
        202,
        "accepted, but only for mallory"
    );
    // A later event from alice proves the ones before it are projected.
    assert_eq!(api.react(&alice, &room, &message, "🙂", true).await, 202);
    let reactions = eventually(WAIT, "alice's reactions in the history", || async {
        let messages = api.messages(&room).await;
        (messages[0]["reactions"]["🙂"] == 1).then(|| messages[0]["reactions"].clone())
    })
    .await;
    assert_eq!(
        reactions["👍"], 1,
        "mallory could not remove alice's reaction"
    );
}

in_both_modes!(
    a_user_posting_faster_than_the_limit_gets_429_with_retry_after_and_nothing_is_written
);
async fn a_user_posting_faster_than_the_limit_gets_429_with_retry_after_and_nothing_is_written(
    mode: Mode,
) {
    let mut stack = Stack::empty_in(mode).await;
    stack.post_limits = chat_server::limits::PostLimits { rate: 1, burst: 3 };
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    let api = stack.chat(0);
    let alice = api.sign_in("alice").await;
    let bob = api.sign_in("bob").await;
    let room = api.create_room(&bob, "flood").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..3 {
        api.post(&alice, &room, &format!("burst {i}")).await;
    }
    let before = stack.records().await.len();
    let refused = api.try_post(&alice, &room, "one too many").await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        stack.records().await.len(),
        before,
        "a refused post writes nothing"
    );
    api.post(&bob, &room, "others are not limited").await;
}

in_both_modes!(cors_allows_only_the_listed_origins);
async fn cors_allows_only_the_listed_origins(mode: Mode) {
    let stack = Stack::single(mode).await;
    let http = reqwest::Client::new();
    for url in [
        stack.chat(0).url("/api/rooms"),
        format!("{}/healthz", stack.publishers[0]),
    ] {
        for (origin, allowed) in [
            ("http://allowed.example", true),
            ("http://evil.example", false),
        ] {
            let response = http
                .request(reqwest::Method::OPTIONS, &url)
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type",
                )
                .send()
                .await
                .unwrap();
            let granted = response
                .headers()
                .get("access-control-allow-origin")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(
                granted.as_deref() == Some(origin),
                allowed,
                "{url} from {origin}: {granted:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn info_logs_carry_no_tokens_or_message_texts() {
    let dir = std::env::temp_dir().join(format!("hotchat-logs-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("chat-server.log");
    let mut server = ServerProcess::embedded_chat_server_logging(&dir, &log).await;
    let api = Api::new(server.base.clone());
    let alice = api.sign_in("alice").await;
    let room = api.create_room(&alice, "private").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_text = format!("my secret {}", uuid::Uuid::new_v4());
    api.post(&alice, &room, &secret_text).await;
    let _ = api.try_post(&alice, &room, "").await; // a failure, which is logged
    let bad = api
        .http
        .post(api.url("/api/rooms"))
        .bearer_auth(format!("{}x", alice.token))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    server.signal("-TERM");
    server
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("exits");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("INFO"), "the log has info lines: {logged}");
    let signature = alice.token.split('.').nth(2).unwrap();
    assert!(
        !logged.contains(signature),
        "a token's signature was logged"
    );
    assert!(!logged.contains(&secret_text), "a message text was logged");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A record's key and value, either possibly missing.
type RawRecord = (Option<Vec<u8>>, Option<Vec<u8>>);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_and_foreign_records_are_skipped_and_counted_without_stalling_anyone() {
    let stack = Stack::start(1, 1).await;
    let api = stack.chat(0);
    let alice = api.sign_in("alice").await;
    let room = api.create_room(&alice, "noise").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = SseClient::connect(&stack.events_url(0, &room), None).await;

    let room_id: uuid::Uuid = room.parse().unwrap();
    let user = User {
        id: uuid::Uuid::now_v7(),
        name: "x".into(),
    };
    let message = EventBody::MessagePosted {
        message_id: uuid::Uuid::now_v7(),
        text: "forged".into(),
    };
    let mut future = Envelope::new(room_id, user.clone(), message.clone());
    future.schema_version = SCHEMA_VERSION + 1;
    let elsewhere = Envelope::new(uuid::Uuid::now_v7(), user, message);
    let key = room.as_bytes().to_vec();
    let junk: Vec<RawRecord> = vec![
        (Some(key.clone()), Some(vec![0xff, 0x00, 0x13, 0x37])),
        (Some(key.clone()), Some(b"{\"hello\": \"world\"}".to_vec())),
        (
            Some(key.clone()),
            Some(b"{\"schema_version\": 1, \"type\": \"message.posted\"".to_vec()),
        ),
        (Some(key.clone()), Some(future.encode())),
        (Some(key.clone()), Some(elsewhere.encode())),
        (Some(key.clone()), None),
        (None, Some(b"[1, 2, 3]".to_vec())),
    ];
    let producer = stack.kafka().producer().unwrap();
    for (key, value) in &junk {
        let mut record = rdkafka::producer::FutureRecord::<[u8], [u8]>::to(&stack.topic);
        if let Some(key) = key {
            record = record.key(key.as_slice());
        }
        if let Some(value) = value {
            record = record.payload(value.as_slice());
        }
        producer
            .send(record, Duration::from_secs(5))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }

    let real = api.post(&alice, &room, "still flowing").await;
    assert_eq!(
        stream.next_of("message", WAIT).await.json(),
        real,
        "the stream skipped the junk"
    );
    eventually(WAIT, "the projector to pass the junk", || async {
        (api.messages(&room).await.len() == 1).then_some(())
    })
    .await;
    let publisher = Api::new(stack.publishers[0].clone());
    for consumer in ["fanout", "projector"] {
        let series = format!("hotchat_records_skipped_total{{consumer=\"{consumer}\"}}");
        // Keyless records go to any partition, so every junk record reaches both consumers; the
        // real message may be read before junk on another partition, so this is waited for.
        let skipped = eventually(
            WAIT,
            &format!("{consumer} to skip every junk record"),
            || async {
                let skipped = publisher.metric(&series).await;
                (skipped >= junk.len() as f64).then_some(skipped)
            },
        )
        .await;
        assert!(skipped >= junk.len() as f64);
    }
}
