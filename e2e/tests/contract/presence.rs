//! Audience counts (PRODUCT.md, "Audience"): `event: presence` and `online` count distinct viewers
//! (a signed-in user once however many tabs they open, else a client address) across every
//! publish-server, follow joins and leaves, and come at once to a new subscriber.

use std::time::{Duration, Instant};

use e2e::{SseClient, Stack, in_both_modes, process::ServerProcess, stack::Mode};
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;
use shared::{
    event::User,
    tokens::{TokenVerifier, VerifierConfig},
};
use tokio::{io::AsyncWriteExt, net::TcpStream};
use uuid::Uuid;

/// Within 2 % (HyperLogLog), and at least exact to one for small counts.
fn close(got: u64, want: u64) -> bool {
    let tolerance = (want as f64 * 0.02).ceil() as u64;
    got.abs_diff(want) <= tolerance
}

/// Reads `stream` until a `presence` event says `want` viewers (within the bound), or panics after
/// `within`. Returns how long it took.
async fn presence_reaches(stream: &mut SseClient, want: u64, within: Duration) -> Duration {
    let started = Instant::now();
    let mut last = None;
    loop {
        let left = within.saturating_sub(started.elapsed());
        match stream.next(left).await {
            Some(event) if event.event == "presence" => {
                let data = event.json();
                assert_eq!(data["scope"], Value::Null, "a cluster-wide count: {data}");
                let online = data["online"].as_u64().expect("online is a count");
                if close(online, want) {
                    return started.elapsed();
                }
                last = Some(online);
            }
            Some(_) => {}
            None => panic!("presence did not reach {want} within {within:?} (last said {last:?})"),
        }
    }
}

async fn online_of(stack: &Stack, room: &str) -> (u64, u64) {
    let (_, shown) = stack
        .chat(0)
        .call(Method::GET, &format!("/api/rooms/{room}"), None, None)
        .await;
    let (_, list) = stack
        .chat(0)
        .call(Method::GET, "/api/rooms", None, None)
        .await;
    let listed = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .expect("the room is listed")["online"]
        .as_u64()
        .expect("online in the list");
    (
        shown["online"].as_u64().expect("online in the room"),
        listed,
    )
}

async fn presence_counts_distinct_viewers_across_publish_servers_and_follows_leaves(mode: Mode) {
    let mut stack = Stack::empty_in(mode).await;
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    if mode == Mode::Distributed {
        stack.add_default_publish_server().await;
    }
    let places = stack.publishers.len();
    let api = stack.chat(0).clone();
    let owner = api.sign_in("owner").await;
    let room = api.create_room(&owner, "stage").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url =
        |place: usize, token: &str| format!("{}?token={token}", stack.events_url(place, &room));

    // An anonymous watcher (one address viewer) gets the count at once, before anything else.
    let mut watcher = SseClient::connect(&stack.events_url(0, &room), None).await;
    let first = watcher
        .next(Duration::from_secs(2))
        .await
        .expect("a first event");
    assert_eq!(first.event, "presence", "{first:?}");

    // 40 users spread over the places; the first also opens a tab on every place; a second
    // anonymous stream comes from the same address.
    let mut users = Vec::new();
    for i in 0..40 {
        users.push(api.sign_in(&format!("viewer-{i}")).await);
    }
    let mut streams = Vec::new();
    for (i, user) in users.iter().enumerate() {
        streams.push(SseClient::connect(&url(i % places, &user.token), None).await);
    }
    for place in 0..places {
        streams.push(SseClient::connect(&url(place, &users[0].token), None).await);
    }
    let _same_address = SseClient::connect(&stack.events_url(places - 1, &room), None).await;
    let viewers = 40 + 1;
    presence_reaches(&mut watcher, viewers, Duration::from_secs(5)).await;
    let (shown, listed) = online_of(&stack, &room).await;
    assert!(
        close(shown, viewers) && close(listed, viewers),
        "{shown} {listed}"
    );
    // The metric counts rooms by audience size, with no label per room.
    let metrics = e2e::Api::new(stack.publishers[0].clone());
    assert_eq!(metrics.metric("hotchat_room_viewers{le=\"10\"}").await, 0.0);
    assert_eq!(
        metrics.metric("hotchat_room_viewers{le=\"100\"}").await,
        1.0
    );

    // A new subscriber's first event is the current count.
    let mut late = SseClient::connect(&url(places - 1, &owner.token), None).await;
    let first = late
        .next(Duration::from_secs(2))
        .await
        .expect("a first event");
    assert_eq!(first.event, "presence");
    let said = first.json()["online"].as_u64().unwrap();
    assert!(close(said, viewers) || close(said, viewers + 1), "{said}");
    drop(late);

    // Half the users leave (the first keeps one tab of three): gone within 5 s.
    streams.truncate(20);
    let took = presence_reaches(&mut watcher, 20 + 1, Duration::from_secs(8)).await;
    assert!(
        took <= Duration::from_secs(5),
        "leavers counted for {took:?}"
    );
    let (shown, _) = online_of(&stack, &room).await;
    assert!(close(shown, 21), "{shown}");

    if mode == Mode::Distributed {
        // A publish-server that stops stops counting (its viewers were users 1, 3, 5, …, 19).
        stack.publish_stops[1].cancel();
        let took = presence_reaches(&mut watcher, 10 + 1, Duration::from_secs(12)).await;
        assert!(
            took <= Duration::from_secs(10),
            "a stopped instance counted for {took:?}"
        );
    }
}

in_both_modes!(presence_counts_distinct_viewers_across_publish_servers_and_follows_leaves);

/// Opens a stream of `room` on `addr` as the holder of `token`, and leaves it unread.
async fn viewer(addr: &str, room: &str, token: &str) -> TcpStream {
    raw_stream(addr, &format!("/api/rooms/{room}/events?token={token}"), "").await
}

/// Sends a stream request for `path` with `headers` (each ending in CRLF), and leaves it unread.
async fn raw_stream(addr: &str, path: &str, headers: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
    stream.write_all(head.as_bytes()).await.expect("request");
    stream
}

/// Behind the operator's proxy every peer address is the proxy's: with `TRUST_FORWARDED_FOR`,
/// anonymous viewers are told apart by the address it forwards; without it, the header is ignored
/// (anyone can send it).
#[tokio::test]
async fn anonymous_viewers_are_told_apart_by_forwarded_for_only_when_trusted() {
    let mut stack = Stack::empty().await;
    stack.add_chat_server().await;
    let api = stack.chat(0).clone();
    let owner = api.sign_in("owner").await;
    let room = api.create_room(&owner, "behind a proxy").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Each publish-server counts under a Redis prefix of its own: only its own viewers.
    for (trusted, want) in [(true, 3), (false, 1)] {
        let env = [
            ("TRUST_FORWARDED_FOR", trusted.to_string()),
            ("REDIS_URL", stack.hot.redis_url.clone().unwrap()),
            (
                "REDIS_KEY_PREFIX",
                format!("{}:{trusted}", stack.hot.key_prefix),
            ),
        ];
        let place = ServerProcess::publish_server(&stack, &env).await;
        let addr = place.base.trim_start_matches("http://");
        let path = format!("/api/rooms/{room}/events");
        let mut watcher = SseClient::connect(&format!("{}{path}", place.base), None).await;
        let mut streams = Vec::new();
        for forwarded in ["203.0.113.1", "203.0.113.2", "203.0.113.2, 10.0.0.9"] {
            let header = format!("X-Forwarded-For: {forwarded}\r\n");
            streams.push(raw_stream(addr, &path, &header).await);
        }
        presence_reaches(&mut watcher, want, Duration::from_secs(5)).await;
        // And it stays there: no later count says otherwise.
        let settled = watcher.next(Duration::from_millis(2500)).await;
        assert!(
            settled.as_ref().is_none_or(|e| e.event != "presence"),
            "trusted: {trusted}: {settled:?}"
        );
        drop(streams);
    }
}

/// The bound at scale: 10,000 signed-in viewers over two publish-server processes (HyperLogLog in
/// Redis), then half of them leaving.
#[tokio::test]
async fn ten_thousand_viewers_over_two_publish_servers_are_counted_within_two_percent() {
    const VIEWERS: usize = 10_000;
    let mut stack = Stack::empty().await;
    stack.add_chat_server().await;
    let api = stack.chat(0).clone();
    let owner = api.sign_in("owner").await;
    let room = api.create_room(&owner, "stadium").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let env = [
        ("AUTH_SECRET", stack.secret.clone()),
        ("REDIS_URL", stack.hot.redis_url.clone().unwrap()),
        ("REDIS_KEY_PREFIX", stack.hot.key_prefix.clone()),
        ("SSE_MAX_CONNECTIONS", "20000".to_owned()),
        ("MAX_CONNECTIONS", "20000".to_owned()),
    ];
    let places = [
        ServerProcess::publish_server(&stack, &env).await,
        ServerProcess::publish_server(&stack, &env).await,
    ];
    let addrs: Vec<String> = places
        .iter()
        .map(|p| p.base.trim_start_matches("http://").to_owned())
        .collect();
    let issuer = TokenVerifier::new(VerifierConfig {
        secret: stack.secret.as_bytes(),
        previous_secret: None,
        ttl: Duration::from_secs(3600),
        jwks: None,
        issuer: None,
        audience: None,
    })
    .unwrap();
    let now = chrono::Utc::now();
    let tokens: Vec<String> = (0..VIEWERS)
        .map(|i| {
            let user = User {
                id: Uuid::now_v7(),
                name: format!("fan-{i}"),
            };
            issuer.issue(&user, now)
        })
        .collect();
    let mut watcher = SseClient::connect(
        &format!("http://{}/api/rooms/{room}/events", addrs[0]),
        None,
    )
    .await;
    let mut streams: Vec<TcpStream> = futures::stream::iter(tokens.iter().enumerate())
        .map(|(i, token)| viewer(&addrs[i % 2], &room, token))
        .buffered(256)
        .collect()
        .await;

    // The watcher is one more viewer (an address).
    presence_reaches(&mut watcher, VIEWERS as u64 + 1, Duration::from_secs(30)).await;
    let (shown, listed) = online_of(&stack, &room).await;
    assert!(
        close(shown, VIEWERS as u64 + 1) && close(listed, VIEWERS as u64 + 1),
        "{shown} {listed}"
    );

    eprintln!(
        "{} viewers: online {shown} in the room, {listed} in the list",
        VIEWERS + 1
    );
    streams.truncate(VIEWERS / 2);
    let took = presence_reaches(
        &mut watcher,
        VIEWERS as u64 / 2 + 1,
        Duration::from_secs(15),
    )
    .await;
    assert!(
        took <= Duration::from_secs(5),
        "leavers counted for {took:?}"
    );

    // A publish-server that dies (SIGKILL: nothing cleaned up) stops counting within 10 s: the
    // watcher's place keeps its half of the viewers left.
    places[1].signal("-KILL");
    let took = presence_reaches(
        &mut watcher,
        VIEWERS as u64 / 4 + 1,
        Duration::from_secs(20),
    )
    .await;
    assert!(
        took <= Duration::from_secs(10),
        "a dead publish-server counted for {took:?}"
    );
    drop(streams);
}

/// Redis down: each publish-server tells its own count, labelled `"scope": "instance"`, and the
/// cluster-wide count comes back when Redis does, without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_redis_down_counts_are_per_instance_and_labelled_and_recover() {
    let mut redis = e2e::redis_server::OwnRedis::start().await;
    let mut stack = Stack::empty().await;
    stack.hot.redis_url = Some(redis.url());
    stack.add_chat_server().await;
    stack.add_default_publish_server().await;
    stack.add_default_publish_server().await;
    let api = stack.chat(0).clone();
    let owner = api.sign_in("owner").await;
    let room = api.create_room(&owner, "fragile").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url =
        |place: usize, token: &str| format!("{}?token={token}", stack.events_url(place, &room));
    let (ann, bob) = (api.sign_in("ann").await, api.sign_in("bob").await);
    let mut watcher = SseClient::connect(&url(0, &ann.token), None).await;
    let _bob = SseClient::connect(&url(1, &bob.token), None).await;
    presence_reaches(&mut watcher, 2, Duration::from_secs(5)).await;

    redis.kill().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let labelled = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = watcher.next(left).await.expect("a per-instance count");
        if event.event == "presence" && event.json()["scope"] == "instance" {
            break event.json();
        }
    };
    assert_eq!(
        labelled["online"], 1,
        "ann alone on this instance: {labelled}"
    );
    let (_, shown) = api
        .call(Method::GET, &format!("/api/rooms/{room}"), None, None)
        .await;
    assert_eq!(shown["online"], Value::Null, "unknown, not wrong: {shown}");

    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = watcher
            .next(left)
            .await
            .expect("the cluster-wide count back");
        let data = if event.event == "presence" {
            event.json()
        } else {
            continue;
        };
        // Until every instance has written again, a cluster-wide count may still be short.
        if data["scope"].is_null() && data["online"] == 2 {
            break;
        }
    }
}
