//! Hot-room detection and the throttled mode, with two chat-servers on real Redis and PostgreSQL.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::{Api, SseClient, Stack, eventually, in_both_modes, redis_server::OwnRedis, stack::Mode};
use serde_json::Value;

const THROTTLED_QUERIES: &str = "hotchat_fetch_db_queries_total{mode=\"throttled\"}";

/// Fetches `room` about `per_sec` times a second, alternating over `chats`, until `stop` is set.
/// The task ends once every fetch it started has been answered.
fn load(
    chats: Vec<Api>,
    room: String,
    per_sec: u64,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_micros(1_000_000 / per_sec));
        let mut in_flight = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            pace.tick().await;
            let api = chats[i % chats.len()].clone();
            let room = room.clone();
            in_flight.push(tokio::spawn(async move {
                let _ = api.fetch(&room, "limit=10").await;
            }));
            i += 1;
        }
        futures::future::join_all(in_flight).await;
    })
}

/// Two chat-servers on Redis (distributed), or the one embedded chat-server.
async fn chat_servers(mode: Mode, configure: impl FnOnce(&mut Stack)) -> Stack {
    let mut stack = Stack::empty_in(mode).await;
    configure(&mut stack);
    stack.add_chat_server().await;
    if mode == Mode::Distributed {
        stack.add_chat_server().await;
    }
    stack
}

async fn two_chat_servers(configure: impl FnOnce(&mut Stack)) -> Stack {
    chat_servers(Mode::Distributed, configure).await
}

/// The last chat-server (the second in the distributed mode, the only one embedded).
fn last(stack: &Stack) -> &Api {
    stack.chats.last().unwrap()
}

async fn wait_for_mode(stack: &Stack, room: &str, mode: &str, within: Duration) -> Duration {
    let started = Instant::now();
    eventually(
        within,
        &format!("room to be {mode} on both chat-servers"),
        || async {
            for api in &stack.chats {
                if api.mode(room).await != mode {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    started.elapsed()
}

in_both_modes!(a_room_under_load_turns_hot_within_two_seconds_and_normal_again_after_the_cooldown);
async fn a_room_under_load_turns_hot_within_two_seconds_and_normal_again_after_the_cooldown(
    mode: Mode,
) {
    let mut stack = chat_servers(mode, |stack| {
        stack.hot.threshold = 20;
        stack.hot.cooldown = Duration::from_secs(2);
        stack.hot.client_rate = 10_000;
        stack.hot.client_burst = 10_000;
    })
    .await;
    stack.add_default_publish_server().await;
    let alice = stack.chat(0).sign_in("alice").await;
    let hot = stack.chat(0).create_room(&alice, "concert").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cold = stack.chat(0).create_room(&alice, "quiet").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = SseClient::connect(&stack.events_url(0, &hot), None).await;

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let hot_load = load(stack.chats.clone(), hot.clone(), 100, stop.clone());
    let cold_load = load(stack.chats.clone(), cold.clone(), 4, stop.clone());
    wait_for_mode(&stack, &hot, "throttled", Duration::from_secs(5)).await;
    let detected = started.elapsed();
    assert!(
        detected <= Duration::from_secs(2),
        "turned hot after {detected:?}"
    );

    assert_eq!(
        last(&stack).mode(&cold).await,
        "normal",
        "the cold room stays normal"
    );
    let response = last(&stack).fetch(&hot, "limit=5").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-room-mode"], "throttled");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["mode"], "throttled");
    let response = stack.chat(0).fetch(&cold, "limit=5").await;
    assert_eq!(response.headers()["x-room-mode"], "normal");
    let rooms: Value = stack
        .chat(0)
        .http
        .get(stack.chat(0).url("/api/rooms"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for room in rooms["rooms"].as_array().unwrap() {
        assert_eq!(room["hot"], room["id"] == hot.as_str(), "{room}");
    }
    let event = stream.next_of("mode", Duration::from_secs(5)).await;
    assert_eq!(event.json()["mode"], "throttled");

    stop.store(true, Ordering::Relaxed);
    let (_, _) = (hot_load.await, cold_load.await);
    let cooled = wait_for_mode(&stack, &hot, "normal", Duration::from_secs(8)).await;
    assert!(
        cooled <= Duration::from_secs(4),
        "normal again after {cooled:?} (cooldown 2 s)"
    );
    let event = stream.next_of("mode", Duration::from_secs(5)).await;
    assert_eq!(event.json()["mode"], "normal");
}

in_both_modes!(
    two_hundred_concurrent_fetches_of_a_throttled_page_make_at_most_one_query_per_instance
);
async fn two_hundred_concurrent_fetches_of_a_throttled_page_make_at_most_one_query_per_instance(
    mode: Mode,
) {
    let stack = chat_servers(mode, |stack| {
        stack.hot.threshold = 5;
        stack.hot.cooldown = Duration::from_secs(60);
        stack.hot.cache_ttl = Duration::from_secs(30);
        stack.hot.client_rate = 10_000;
        stack.hot.client_burst = 10_000;
    })
    .await;
    let alice = stack.chat(0).sign_in("alice").await;
    let room = stack.chat(0).create_room(&alice, "viral").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..5 {
        stack.chat(0).post(&alice, &room, &format!("m{i}")).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let warm = load(stack.chats.clone(), room.clone(), 50, stop.clone());
    wait_for_mode(&stack, &room, "throttled", Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    warm.await.unwrap();

    let mut before = Vec::new();
    for api in &stack.chats {
        before.push(api.metric(THROTTLED_QUERIES).await);
    }
    let instances = stack.chats.len();
    let fetches = (0..200).map(|i| {
        let api = stack.chat(i % instances).clone();
        let room = room.clone();
        tokio::spawn(async move {
            let response = api.fetch(&room, "limit=7").await;
            (
                response.status(),
                response.headers().get("x-room-mode").cloned(),
                response.text().await.unwrap(),
            )
        })
    });
    let answers: Vec<_> = futures::future::join_all(fetches)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (status, mode, body) in &answers {
        assert_eq!(*status, 200);
        assert_eq!(mode.as_ref().unwrap(), "throttled");
        assert_eq!(body, &answers[0].2, "every caller gets the same page");
    }
    for (i, before) in before.into_iter().enumerate() {
        let queries = stack.chat(i).metric(THROTTLED_QUERIES).await - before;
        assert_eq!(
            queries, 1.0,
            "chat-server {i} queried the database {queries} times for its share of 200 fetches"
        );
    }
}

in_both_modes!(
    a_client_over_its_rate_gets_429_with_retry_after_while_a_client_under_it_keeps_getting_200
);
async fn a_client_over_its_rate_gets_429_with_retry_after_while_a_client_under_it_keeps_getting_200(
    mode: Mode,
) {
    let mut stack = chat_servers(mode, |stack| {
        stack.hot.threshold = 5;
        stack.hot.cooldown = Duration::from_secs(60);
        stack.hot.client_rate = 2;
        stack.hot.client_burst = 2;
    })
    .await;
    stack.add_default_publish_server().await;
    let api = stack.chat(0);
    let greedy = api.sign_in("greedy").await;
    let polite = api.sign_in("polite").await;
    let room = api.create_room(&greedy, "busy").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = SseClient::connect(&stack.events_url(0, &room), None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let crowd = load(stack.chats.clone(), room.clone(), 50, stop.clone());
    wait_for_mode(&stack, &room, "throttled", Duration::from_secs(5)).await;
    // The mode event tells clients how often they may fetch: at most 2/s, so every 500 ms.
    let announced = stream.next_of("mode", Duration::from_secs(5)).await.json();
    assert_eq!(announced["mode"], "throttled");
    assert_eq!(announced["fetch_interval_ms"], 500, "{announced}");
    let interval = Duration::from_millis(announced["fetch_interval_ms"].as_u64().unwrap());

    let fetch_as = |token: String| {
        let (api, room) = (api.clone(), room.clone());
        async move {
            api.http
                .get(api.url(&format!("/api/rooms/{room}/messages")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let mut limited = None;
    for _ in 0..10 {
        let response = fetch_as(greedy.token.clone()).await;
        if response.status() == 429 {
            limited = Some(response);
            break;
        }
        assert_eq!(response.status(), 200);
    }
    let limited = limited.expect("ten quick fetches exceed a rate of 2/s with a burst of 2");
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(limited.headers()["x-room-mode"], "throttled");
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");

    // A client that keeps to the announced interval is answered every time.
    let mut pace = tokio::time::interval(interval);
    for _ in 0..8 {
        pace.tick().await;
        assert_eq!(fetch_as(polite.token.clone()).await.status(), 200);
    }
    assert!(api.metric("hotchat_throttled_answers_total").await >= 1.0);
    stop.store(true, Ordering::Relaxed);
    crowd.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_leader_stops_the_other_instance_takes_over_the_scheduler_within_three_seconds() {
    let stack = two_chat_servers(|_| {}).await;
    let leader = eventually(Duration::from_secs(5), "exactly one leader", || async {
        let flags = [
            stack.chat(0).metric("hotchat_scheduler_leader").await,
            stack.chat(1).metric("hotchat_scheduler_leader").await,
        ];
        match flags {
            [1.0, 0.0] => Some(0),
            [0.0, 1.0] => Some(1),
            _ => None,
        }
    })
    .await;
    let other = 1 - leader;
    let stopped = Instant::now();
    stack.chat_stops[leader].cancel();
    eventually(
        Duration::from_secs(6),
        "the other instance to lead",
        || async {
            (stack.chat(other).metric("hotchat_scheduler_leader").await == 1.0).then_some(())
        },
    )
    .await;
    let took = stopped.elapsed();
    assert!(took <= Duration::from_secs(3), "took over after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_down_fetches_are_served_in_normal_mode_and_detection_resumes_when_it_returns() {
    let mut redis = OwnRedis::start().await;
    let stack = two_chat_servers(|stack| {
        stack.hot.redis_url = Some(redis.url());
        stack.hot.threshold = 5;
        stack.hot.cooldown = Duration::from_secs(60);
        stack.hot.client_rate = 10_000;
        stack.hot.client_burst = 10_000;
    })
    .await;
    let alice = stack.chat(0).sign_in("alice").await;
    let room = stack.chat(0).create_room(&alice, "fragile").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let crowd = load(stack.chats.clone(), room.clone(), 50, stop.clone());
    wait_for_mode(&stack, &room, "throttled", Duration::from_secs(5)).await;

    redis.kill().await;
    wait_for_mode(&stack, &room, "normal", Duration::from_secs(5)).await;
    for i in 0..20 {
        let response = stack.chat(i % 2).fetch(&room, "limit=3").await;
        assert_eq!(response.status(), 200, "fetch {i} with Redis down");
        assert_eq!(response.headers()["x-room-mode"], "normal");
    }
    assert!(stack.chat(0).metric("hotchat_hot_store_errors_total").await >= 1.0);
    // Reported, but the instance stays ready.
    let (status, ready) = stack
        .chat(0)
        .call(reqwest::Method::GET, "/readyz", None, None)
        .await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["checks"]["hot_store"], "unavailable", "{ready}");

    redis.restart().await;
    wait_for_mode(&stack, &room, "throttled", Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    crowd.await.unwrap();
}
