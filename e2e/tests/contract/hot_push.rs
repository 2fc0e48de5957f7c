//! Coalesced delivery in a throttled room, on Apache Kafka: 200 subscribers of a room that turned
//! hot get every message in order and the final reaction counts, in writes that each carry several
//! events, while a cold room's subscribers see no added latency.
//!
//! The hot room's 100 messages and 1,000 reactions a second are written to the topic directly, as
//! a producer of the contract's envelope would: what is under test is the push side, and a debug
//! chat-server sharing two cores with the readers would measure itself instead. The room turns hot
//! the product's way, by fetch load on the chat-servers.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use bytes::Bytes;
use e2e::{Api, SseClient, SseEvent, Stack, eventually};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::Value;
use shared::{
    event::{Envelope, EventBody, User},
    event_log::EventLog,
};
use uuid::Uuid;

const SUBSCRIBERS: usize = 200;
const LOAD: Duration = Duration::from_secs(5);
/// Per 10 ms tick: one message and ten reactions (100 and 1,000 a second).
const TICK: Duration = Duration::from_millis(10);
const REACTIONS_PER_TICK: usize = 10;
const EMOJIS: [&str; 3] = ["👍", "🎉", "🔥"];
const COLD_POSTS: usize = 200;

/// A subscriber that only collects the stream's bytes while the load runs (parsing 200 streams
/// live would take the cores the servers need); they are parsed afterwards. It reads in the
/// crowd ([`e2e::crowd`]), not beside the cold room's reader being measured.
struct Reader {
    bytes: tokio::sync::watch::Receiver<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    async fn open(http: &reqwest::Client, url: &str, last_event_id: Option<&str>) -> Self {
        let mut request = http.get(url);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let (tx, rx) = tokio::sync::watch::channel(Vec::new());
        let (status_tx, status) = tokio::sync::oneshot::channel();
        let task = e2e::crowd::handle().spawn(async move {
            let response = request.send().await.expect("subscribe");
            let _ = status_tx.send(response.status());
            let mut body = response.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                tx.send_modify(|bytes| bytes.extend_from_slice(&chunk));
            }
        });
        assert_eq!(status.await.expect("the subscription answered"), 200);
        Self { bytes: rx, task }
    }

    fn has(&self, needle: &str) -> bool {
        let bytes = self.bytes.borrow();
        bytes
            .windows(needle.len())
            .rev()
            .any(|w| w == needle.as_bytes())
    }

    /// The events received so far.
    async fn events(&self) -> Vec<SseEvent> {
        let bytes = Bytes::from(self.bytes.borrow().clone());
        futures::stream::iter([Ok::<_, std::convert::Infallible>(bytes)])
            .eventsource()
            .map(|event| {
                let event = event.expect("a well-formed stream");
                SseEvent {
                    id: Some(event.id),
                    event: event.event,
                    data: event.data,
                }
            })
            .collect()
            .await
    }
}

/// A small deterministic generator: the test needs spread, not secrecy.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % sides as u64) as usize
    }
}

/// Writes the hot room's load to the topic for [`LOAD`]; returns the messages in order and the
/// reactions each ends with.
async fn write_load(
    log: EventLog,
    room: Uuid,
) -> (Vec<Uuid>, HashMap<Uuid, HashSet<(usize, usize)>>) {
    let users: Vec<User> = (0..100)
        .map(|i| User {
            id: Uuid::now_v7(),
            name: format!("fan{i}"),
        })
        .collect();
    let mut dice = Dice(0x9e37_79b9_7f4a_7c15);
    let (mut messages, mut reactions) = (Vec::new(), HashMap::<Uuid, HashSet<_>>::new());
    let mut pace = tokio::time::interval(TICK);
    let started = Instant::now();
    while started.elapsed() < LOAD {
        pace.tick().await;
        let message_id = Uuid::now_v7();
        let mut batch = vec![Envelope::new(
            room,
            users[dice.roll(users.len())].clone(),
            EventBody::MessagePosted {
                message_id,
                text: format!("hot {}", messages.len()),
            },
        )];
        messages.push(message_id);
        for _ in 0..REACTIONS_PER_TICK {
            // On the last few messages, as a crowd reacts to what it just read.
            let message = messages[messages.len() - 1 - dice.roll(messages.len().min(3))];
            let (user, emoji) = (dice.roll(users.len()), dice.roll(EMOJIS.len()));
            let tally = reactions.entry(message).or_default();
            let added = !tally.contains(&(user, emoji)) || dice.roll(4) == 0;
            let emoji_text = EMOJIS[emoji].to_owned();
            let body = if added {
                tally.insert((user, emoji));
                EventBody::ReactionAdded {
                    message_id: message,
                    emoji: emoji_text,
                }
            } else {
                tally.remove(&(user, emoji));
                EventBody::ReactionRemoved {
                    message_id: message,
                    emoji: emoji_text,
                }
            };
            batch.push(Envelope::new(room, users[user].clone(), body));
        }
        // Polled in order, so produced in order: one room is one partition, kept in order.
        let appended = futures::future::join_all(batch.iter().map(|event| log.append(event))).await;
        for result in appended {
            result.expect("the broker takes the load");
        }
    }
    (messages, reactions)
}

/// The acknowledged post→SSE latency of `n` posts to a cold room, one every 25 ms.
pub(crate) async fn cold_latencies(
    api: &Api,
    room: &str,
    stream: &mut SseClient,
    n: usize,
) -> Vec<Duration> {
    let session = api.sign_in("cold").await;
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let posted = api.post(&session, room, &format!("cold {i}")).await;
        // From the log's acknowledgement: the push side's part, which a hot room could delay.
        let started = Instant::now();
        let id = posted["id"].as_str().unwrap().to_owned();
        loop {
            let event = stream.next_of("message", Duration::from_secs(10)).await;
            if event.json()["id"] == id.as_str() {
                break;
            }
        }
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(25).saturating_sub(started.elapsed())).await;
    }
    latencies
}

pub(crate) fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99).div_ceil(100) - 1]
}

/// A reaction told on its own (not folded into counts).
fn one_by_one(event: &SseEvent) -> bool {
    event.event == "reaction" && event.data.contains("\"op\"")
}

/// The message ids a subscriber got, in order, and each message's final reaction counts.
fn replay(events: &[SseEvent]) -> (Vec<Uuid>, HashMap<Uuid, BTreeMap<String, u64>>) {
    let (mut messages, mut counts) = (Vec::new(), HashMap::<Uuid, BTreeMap<String, u64>>::new());
    for event in events {
        let data = match event.event.as_str() {
            "message" | "reaction" => event.json(),
            _ => continue,
        };
        if event.event == "message" {
            messages.push(data["id"].as_str().unwrap().parse().unwrap());
            continue;
        }
        let message: Uuid = data["message_id"].as_str().unwrap().parse().unwrap();
        let tally = counts.entry(message).or_default();
        if let Some(folded) = data["counts"].as_object() {
            *tally = folded
                .iter()
                .map(|(emoji, n)| (emoji.clone(), n.as_u64().unwrap()))
                .collect();
        } else {
            let count = data["count"]
                .as_u64()
                .expect("counts are known for messages read live");
            tally.insert(data["emoji"].as_str().unwrap().to_owned(), count);
            tally.retain(|_, n| *n > 0);
        }
    }
    counts.retain(|_, tally| !tally.is_empty());
    (messages, counts)
}

#[tokio::test]
async fn a_hot_room_is_pushed_in_batches_with_every_message_and_the_final_counts() {
    let mut stack = Stack::empty().await;
    stack.hot.threshold = 20;
    stack.hot.cooldown = Duration::from_secs(600);
    stack.hot.client_rate = 10_000;
    stack.hot.client_burst = 10_000;
    stack.sse.max_connections = 1_000;
    stack.add_chat_server().await;
    let publisher = stack.add_default_publish_server().await;
    let api = stack.chat(0).clone();
    let alice = api.sign_in("alice").await;
    let room_of = |value: Value| value["id"].as_str().unwrap().to_owned();
    let hot = room_of(api.create_room(&alice, "concert").await);
    let cold = room_of(api.create_room(&alice, "quiet").await);
    let mut cold_stream = SseClient::connect(&stack.events_url(0, &cold), None).await;

    // The cold room alone, then the hot room turns hot the product's way: fetch load.
    let alone = cold_latencies(&api, &cold, &mut cold_stream, COLD_POSTS).await;
    eventually(Duration::from_secs(15), "the room to turn hot", || async {
        let fetches = (0..30).map(|_| api.fetch(&hot, "limit=5"));
        futures::future::join_all(fetches).await;
        (api.mode(&hot).await == "throttled").then_some(())
    })
    .await;

    let http = reqwest::Client::new();
    let url = stack.events_url(0, &hot);
    let mut readers = Vec::with_capacity(SUBSCRIBERS);
    for _ in 0..SUBSCRIBERS {
        readers.push(Reader::open(&http, &url, None).await);
    }
    eventually(
        Duration::from_secs(10),
        "every subscriber's head",
        || async { readers.iter().all(|r| r.has("event: mode")).then_some(()) },
    )
    .await;

    let hot_id: Uuid = hot.parse().unwrap();
    let log = EventLog::open(Some(&stack.kafka()), &stack.data_dir.join("producer"))
        .await
        .expect("a producer on the stack's topic");
    log.prepare_writer().expect("the producer connects");
    let load = tokio::spawn(write_load(log, hot_id));
    // One subscriber drops its connection halfway and resumes with the last id it got.
    let resumer = tokio::spawn({
        let (http, url, gone) = (http.clone(), url.clone(), readers.pop().unwrap());
        async move {
            tokio::time::sleep(LOAD / 2).await;
            gone.task.abort();
            let before = gone.events().await;
            let last = before.last().and_then(|e| e.id.clone()).unwrap();
            // Away long enough to miss about 100 messages and 1,000 reactions.
            tokio::time::sleep(Duration::from_secs(1)).await;
            (before, Reader::open(&http, &url, Some(&last)).await)
        }
    });
    let beside = cold_latencies(&api, &cold, &mut cold_stream, COLD_POSTS).await;
    let (messages, reactions) = load.await.unwrap();
    let (resumed_from, resumed) = resumer.await.unwrap();

    let last = format!("\"text\":\"hot {}\"", messages.len() - 1);
    eventually(
        Duration::from_secs(30),
        "every subscriber's last message",
        || async { readers.iter().all(|r| r.has(&last)).then_some(()) },
    )
    .await;
    let expected: HashMap<Uuid, BTreeMap<String, u64>> = reactions
        .into_iter()
        .map(|(message, pairs)| {
            let mut tally = BTreeMap::new();
            for (_, emoji) in pairs {
                *tally.entry(EMOJIS[emoji].to_owned()).or_insert(0) += 1;
            }
            (message, tally)
        })
        .filter(|(_, tally)| !tally.is_empty())
        .collect();
    // The last reactions may still be in the batch that goes out after the last message.
    let publisher = Api::new(publisher);
    let writes = "hotchat_sse_throttled_writes_total";
    let deliveries = "hotchat_sse_throttled_deliveries_total";
    let mut folded_any = false;
    for reader in readers {
        let events = eventually(Duration::from_secs(10), "the final counts", || async {
            let events = reader.events().await;
            (replay(&events).1 == expected).then_some(events)
        })
        .await;
        reader.task.abort();
        let (got, _) = replay(&events);
        assert_eq!(got, messages, "every message, once, in order");
        folded_any |= events.iter().any(|e| e.data.contains("\"counts\""));
        assert!(
            !events.iter().any(one_by_one),
            "no reaction is sent one by one in the throttled room"
        );
    }
    assert!(folded_any, "reactions were folded into counts");
    // The resumed subscriber: what it got before and after, as if it had never left.
    eventually(
        Duration::from_secs(10),
        "the resumed stream's end",
        || async {
            let mut events = resumed_from.clone();
            events.extend(resumed.events().await);
            (replay(&events) == (messages.clone(), expected.clone())).then_some(())
        },
    )
    .await;
    let missed = resumed.events().await;
    assert!(
        !missed.iter().any(one_by_one),
        "the missed part is told as live, reactions folded"
    );
    let per_write = publisher.metric(deliveries).await / publisher.metric(writes).await;
    assert!(
        per_write >= 5.0,
        "{per_write:.1} deliveries per write in the throttled room"
    );

    let (alone, beside) = (p99(alone), p99(beside));
    eprintln!(
        "cold p99 {alone:?} alone, {beside:?} beside the hot room; {per_write:.1} deliveries per write"
    );
    // 1.5× as the issue asks, with 5 ms for the scheduler of a shared two-core machine.
    assert!(
        beside <= alone.mul_f64(1.5) + Duration::from_millis(5),
        "the cold room's post→SSE p99 went from {alone:?} alone to {beside:?} beside the hot room"
    );
}
