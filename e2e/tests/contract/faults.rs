//! Faults: the broker, PostgreSQL and Redis going away and coming back, and every component restarted
//! in turn under load. What must hold: a 2xx means the event is in the log, and every acknowledged
//! message ends up exactly once in the read model and in order in the live streams.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::{
    Api, SseClient, Stack, api::Session, database, eventually, proxy::TcpProxy,
    redis_server::OwnRedis,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// Messages of `room` in the read model, in log order, read straight from PostgreSQL.
pub(crate) async fn stored_texts(database_url: &str, room: &str) -> Vec<String> {
    let mut conn = database::connect(database_url).await;
    sqlx::query_scalar("SELECT text FROM messages WHERE room_id = $1 ORDER BY seq")
        .bind(room.parse::<uuid::Uuid>().unwrap())
        .fetch_all(&mut conn)
        .await
        .unwrap()
}

/// Posts and sorts the outcome: acknowledged (201) or not.
#[derive(Default)]
pub(crate) struct Outcomes {
    pub(crate) acked: Vec<String>,
    pub(crate) refused: Vec<String>,
}

pub(crate) async fn post(
    api: &Api,
    session: &Session,
    room: &str,
    text: &str,
    outcomes: &mut Outcomes,
) {
    let response = api
        .http
        .post(api.url(&format!("/api/rooms/{room}/messages")))
        .bearer_auth(&session.token)
        .json(&serde_json::json!({ "text": text }))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match response {
        Ok(r) if r.status() == 201 => outcomes.acked.push(text.to_owned()),
        _ => outcomes.refused.push(text.to_owned()),
    }
}

/// Checks the outcome against what a store or stream holds: each acknowledged message exactly once
/// and in acknowledgement order; a refused one at most once (a timed-out write may still have landed,
/// which is why the answer was 503 and not a promise of absence).
pub(crate) fn assert_exactly_the_acknowledged(what: &str, held: &[String], outcomes: &Outcomes) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for text in held {
        *counts.entry(text.as_str()).or_default() += 1;
    }
    for text in &outcomes.acked {
        assert_eq!(
            counts.get(text.as_str()),
            Some(&1),
            "{what}: acknowledged {text:?} not exactly once"
        );
    }
    for text in &outcomes.refused {
        assert!(
            counts.get(text.as_str()).copied().unwrap_or(0) <= 1,
            "{what}: {text:?} twice"
        );
    }
    let acked_order: Vec<&String> = held.iter().filter(|t| outcomes.acked.contains(t)).collect();
    let expected: Vec<&String> = outcomes.acked.iter().collect();
    assert_eq!(
        acked_order, expected,
        "{what}: acknowledged messages out of order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_outage_answers_503_and_streams_and_projection_resume_without_loss_or_duplicates()
{
    let broker = e2e::broker::own().await;
    let mut stack = Stack::empty_on(broker.bootstrap()).await;
    stack.produce_timeout = Duration::from_millis(1500);
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    let api = stack.chat(0).clone();
    let alice = api.sign_in("alice").await;
    let room = api.create_room(&alice, "outage").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = SseClient::connect(&stack.events_url(0, &room), None).await;
    let mut outcomes = Outcomes::default();
    for i in 0..3 {
        post(&api, &alice, &room, &format!("before {i}"), &mut outcomes).await;
    }
    assert_eq!(outcomes.acked.len(), 3);

    broker.pause(1);
    let started = Instant::now();
    post(&api, &alice, &room, "during", &mut outcomes).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(
        outcomes.refused,
        ["during"],
        "no false 201 while the broker is down"
    );
    let (chat_ready, publish_ready) = tokio::join!(
        reqwest::get(api.url("/readyz")),
        reqwest::get(format!("{}/readyz", stack.publishers[0])),
    );
    for ready in [chat_ready.unwrap(), publish_ready.unwrap()] {
        assert_eq!(ready.status(), 503, "{} reports the outage", ready.url());
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["checks"]["broker"], "unavailable");
    }

    broker.resume(1);
    eventually(WAIT, "posting to work again", || async {
        let mut probe = Outcomes::default();
        post(&api, &alice, &room, "probe", &mut probe).await;
        (!probe.acked.is_empty()).then_some(())
    })
    .await;
    outcomes.acked.push("probe".into());
    for i in 0..3 {
        post(&api, &alice, &room, &format!("after {i}"), &mut outcomes).await;
    }
    let streamed = collect_until(&mut stream, "after 2").await;
    assert_exactly_the_acknowledged("SSE", &streamed, &outcomes);
    let resumed = Instant::now();
    let stored = eventually(WAIT, "the projector to catch up", || async {
        let texts = stored_texts(&stack.database_url, &room).await;
        texts.contains(&"after 2".to_owned()).then_some(texts)
    })
    .await;
    eprintln!(
        "projector caught up {:?} after the last post",
        resumed.elapsed()
    );
    assert_exactly_the_acknowledged("read model", &stored, &outcomes);
}

/// Message texts from `stream` up to and including `last`.
async fn collect_until(stream: &mut SseClient, last: &str) -> Vec<String> {
    let mut texts = Vec::new();
    loop {
        let event = stream.next_of("message", WAIT).await;
        let text = event.json()["text"].as_str().unwrap().to_owned();
        texts.push(text.clone());
        if text == last {
            return texts;
        }
    }
}

fn postgres_addr() -> SocketAddr {
    "127.0.0.1:5432".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_keeps_posting_and_streaming_and_the_projector_catches_up() {
    let proxy = TcpProxy::start(postgres_addr()).await;
    let mut stack = Stack::empty().await;
    let direct = stack.database_url.clone();
    stack.database_url = proxy.rewrite_url(&direct);
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    let api = stack.chat(0).clone();
    let alice = api.sign_in("alice").await;
    let room = api.create_room(&alice, "no-db").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = SseClient::connect(&stack.events_url(0, &room), None).await;
    let first = api.post(&alice, &room, "m0").await;

    proxy.cut();
    let mut outcomes = Outcomes {
        acked: vec!["m0".into()],
        ..Outcomes::default()
    };
    for i in 1..6 {
        post(&api, &alice, &room, &format!("m{i}"), &mut outcomes).await;
    }
    assert_eq!(
        outcomes.acked.len(),
        6,
        "posting continues: Kafka is the source of truth"
    );
    let response = api.fetch(&room, "").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    let status = api
        .react(&alice, &room, first["id"].as_str().unwrap(), "👍", true)
        .await;
    assert_eq!(
        status, 202,
        "a reaction on a message posted through this chat-server needs no database"
    );
    let ready: Value = reqwest::get(api.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["database"], "unavailable");
    let streamed = collect_until(&mut stream, "m5").await;
    assert_exactly_the_acknowledged("SSE during the outage", &streamed, &outcomes);

    proxy.restore();
    let stored = eventually(WAIT, "the projector to catch up", || async {
        let messages = api.fetch(&room, "limit=50").await;
        if messages.status() != 200 {
            return None;
        }
        let body: Value = messages.json().await.ok()?;
        let texts: Vec<String> = body["messages"]
            .as_array()?
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect();
        (texts.len() == 6).then_some(texts)
    })
    .await;
    assert_exactly_the_acknowledged("read model", &stored, &outcomes);
    assert_eq!(stored_texts(&direct, &room).await, stored);
}

/// A browser-like reader: follows the room on any live publish-server and, whenever its stream ends,
/// reconnects to the next one with its last cursor.
pub(crate) fn follow(
    publishers: Arc<RwLock<Vec<String>>>,
    room: String,
    seen: Arc<RwLock<Vec<String>>>,
    done: Arc<AtomicBool>,
    subscribed: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut cursor, mut attempt) = (None::<String>, 0usize);
        loop {
            let base = {
                let bases = publishers.read().unwrap();
                bases[attempt % bases.len()].clone()
            };
            attempt += 1;
            let url = format!("{base}/api/rooms/{room}/events");
            let Some(mut stream) = SseClient::try_connect(&url, cursor.as_deref()).await else {
                if done.load(Ordering::SeqCst) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            // The stream answers once it is subscribed: from here on nothing is missed.
            subscribed.notify_one();
            loop {
                match stream.next(Duration::from_millis(300)).await {
                    Some(event) if event.event == "message" => {
                        cursor = event.id.clone();
                        let text = event.json()["text"].as_str().unwrap().to_owned();
                        seen.write().unwrap().push(text);
                    }
                    Some(event) => {
                        assert_ne!(event.event, "reset", "a resume was refused: {}", event.data)
                    }
                    None if stream.ended => break,
                    None if done.load(Ordering::SeqCst) => return,
                    None => {}
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_each_component_in_turn_under_load_loses_and_duplicates_nothing() {
    let broker = e2e::broker::own().await;
    let mut redis = OwnRedis::start().await;
    let proxy = TcpProxy::start(postgres_addr()).await;
    let mut stack = Stack::empty_on(broker.bootstrap()).await;
    let direct = stack.database_url.clone();
    stack.database_url = proxy.rewrite_url(&direct);
    stack.hot.redis_url = Some(redis.url());
    stack.produce_timeout = Duration::from_millis(1500);
    for _ in 0..2 {
        stack.add_chat_server().await;
        stack.add_default_publish_server().await;
    }
    let alice = stack.chat(0).sign_in("alice").await;
    let room = stack.chat(0).create_room(&alice, "restarts").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let chats = Arc::new(RwLock::new(stack.chats.clone()));
    let publishers = Arc::new(RwLock::new(stack.publishers.clone()));
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let acked = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(RwLock::new(Vec::new()));
    let subscribed = Arc::new(tokio::sync::Notify::new());
    let reader = follow(
        publishers.clone(),
        room.clone(),
        seen.clone(),
        done.clone(),
        subscribed.clone(),
    );
    // Posting starts once the reader is subscribed, so its first connection misses nothing.
    tokio::time::timeout(WAIT, subscribed.notified())
        .await
        .expect("the reader subscribed");
    let writer = {
        let (chats, stop, acked, room, alice) = (
            chats.clone(),
            stop.clone(),
            acked.clone(),
            room.clone(),
            alice.clone(),
        );
        tokio::spawn(async move {
            let mut outcomes = Outcomes::default();
            let mut pace = tokio::time::interval(Duration::from_millis(40));
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                pace.tick().await;
                let api = {
                    let apis = chats.read().unwrap();
                    apis[i % apis.len()].clone()
                };
                post(&api, &alice, &room, &format!("w{i:04}"), &mut outcomes).await;
                acked.store(outcomes.acked.len(), Ordering::SeqCst);
                i += 1;
            }
            outcomes
        })
    };
    let progress = |n: usize| {
        let acked = acked.clone();
        async move {
            let target = acked.load(Ordering::SeqCst) + n;
            eventually(WAIT, "more acknowledged posts", || {
                let acked = acked.clone();
                async move { (acked.load(Ordering::SeqCst) >= target).then_some(()) }
            })
            .await;
        }
    };
    progress(10).await;

    // chat-server 0
    stack.chat_stops[0].cancel();
    chats.write().unwrap().remove(0);
    let replacement = stack.add_chat_server().await.clone();
    chats.write().unwrap().push(replacement);
    progress(10).await;
    // publish-server 0 (its streams end; the reader resumes on the other)
    stack.publish_stops[0].cancel();
    publishers.write().unwrap().remove(0);
    let replacement = stack.add_default_publish_server().await;
    publishers.write().unwrap().push(replacement);
    progress(10).await;
    // the broker, frozen for two seconds
    broker.pause(1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.resume(1);
    progress(10).await;
    // PostgreSQL, cut off for two seconds
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    progress(10).await;
    // Redis, killed and restarted empty
    redis.kill().await;
    progress(5).await;
    redis.restart().await;
    progress(10).await;

    stop.store(true, Ordering::SeqCst);
    let outcomes = writer.await.unwrap();
    let last = outcomes.acked.last().unwrap().clone();
    let stored = eventually(
        WAIT,
        "the read model to hold the last acknowledged post",
        || async {
            let texts = stored_texts(&direct, &room).await;
            texts.contains(&last).then_some(texts)
        },
    )
    .await;
    eprintln!(
        "{} acknowledged, {} refused during the faults",
        outcomes.acked.len(),
        outcomes.refused.len()
    );
    assert_exactly_the_acknowledged("read model", &stored, &outcomes);
    eventually(WAIT, "the stream to reach the last stored post", || async {
        let streamed = seen.read().unwrap().clone();
        (streamed.last() == stored.last()).then_some(())
    })
    .await;
    done.store(true, Ordering::SeqCst);
    reader.await.unwrap();
    let streamed = seen.read().unwrap().clone();
    assert_exactly_the_acknowledged("SSE", &streamed, &outcomes);
    assert_eq!(
        streamed, stored,
        "the stream and the read model agree on everything, in order"
    );
}
