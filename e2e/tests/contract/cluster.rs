//! Faults on a three-node Apache Kafka cluster (replication factor 3, `min.insync.replicas` 2,
//! `acks=all`, no unclean elections), with two chat-servers posting and two publish-servers
//! streaming: the partition leader killed, two brokers down, and a rolling restart under load. What
//! must hold is what the single-broker fault tests state: a 201 means the event is on two replicas,
//! and every acknowledged message appears exactly once and in order, in both streams and in the read
//! model.

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use e2e::{Stack, api::Session, broker::Cluster, eventually};
use shared::event::EventBody;

use crate::faults::{Outcomes, assert_exactly_the_acknowledged, follow, post, stored_texts};

const WAIT: Duration = Duration::from_secs(60);
/// How long a post waits for the cluster before it answers 503.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(3);

/// A busy room on a three-node cluster: the stack, one reader pinned to each publish-server, and
/// (once started) a writer posting every 25 ms through both chat-servers in turn.
struct BusyRoom {
    cluster: Cluster,
    stack: Stack,
    alice: Session,
    room: String,
    /// The partition the room lives on.
    partition: i32,
    /// What each reader has seen, and the readers themselves.
    seen: Vec<Arc<RwLock<Vec<String>>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    done: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// When each acknowledgement came, in order.
    acks: Arc<Mutex<Vec<Instant>>>,
    writer: Option<tokio::task::JoinHandle<Outcomes>>,
    /// Acknowledged and refused posts made outside the writer, before it started.
    outcomes: Outcomes,
}

impl BusyRoom {
    async fn start() -> Self {
        let cluster = e2e::broker::own_three().await;
        let mut stack = Stack::empty_on(cluster.bootstrap()).await;
        stack.replication_factor = 3;
        stack.produce_timeout = PRODUCE_TIMEOUT;
        for _ in 0..2 {
            stack.add_chat_server().await;
            stack.add_default_publish_server().await;
        }
        let alice = stack.chat(0).sign_in("alice").await;
        let room = stack.chat(0).create_room(&alice, "busy").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let partition = stack
            .records()
            .await
            .iter()
            .find(|r| r.key.as_deref() == Some(room.as_bytes()))
            .expect("the room's creation is in the topic")
            .cursor
            .partition;
        let done = Arc::new(AtomicBool::new(false));
        let (mut seen, mut readers) = (Vec::new(), Vec::new());
        for publisher in &stack.publishers {
            let texts = Arc::new(RwLock::new(Vec::new()));
            let subscribed = Arc::new(tokio::sync::Notify::new());
            readers.push(follow(
                Arc::new(RwLock::new(vec![publisher.clone()])),
                room.clone(),
                texts.clone(),
                done.clone(),
                subscribed.clone(),
            ));
            tokio::time::timeout(WAIT, subscribed.notified())
                .await
                .expect("the reader subscribed");
            seen.push(texts);
        }
        Self {
            cluster,
            stack,
            alice,
            room,
            partition,
            seen,
            readers,
            done,
            stop: Arc::new(AtomicBool::new(false)),
            acks: Arc::new(Mutex::new(Vec::new())),
            writer: None,
            outcomes: Outcomes::default(),
        }
    }

    /// The node that leads the room's partition now.
    async fn leader(&self) -> i32 {
        let (cluster, topic, partition) = (&self.cluster, &self.stack.topic, self.partition);
        eventually(
            WAIT,
            "the room's partition to have a leader",
            || async move { cluster.leader(topic, partition).await.ok().flatten() },
        )
        .await
    }

    /// Every node but `leader`.
    fn followers(&self, leader: i32) -> Vec<i32> {
        let mut ids = self.cluster.ids();
        ids.retain(|&id| id != leader);
        ids
    }

    /// One post through chat-server `chat`, outside the writer.
    async fn post(&mut self, chat: usize, text: &str) -> bool {
        let before = self.outcomes.acked.len();
        let api = self.stack.chat(chat).clone();
        post(&api, &self.alice, &self.room, text, &mut self.outcomes).await;
        self.outcomes.acked.len() > before
    }

    fn start_writer(&mut self) {
        let chats = self.stack.chats.clone();
        let (stop, acks) = (self.stop.clone(), self.acks.clone());
        let (room, alice) = (self.room.clone(), self.alice.clone());
        self.writer = Some(tokio::spawn(async move {
            let mut outcomes = Outcomes::default();
            let mut pace = tokio::time::interval(Duration::from_millis(25));
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                pace.tick().await;
                let before = outcomes.acked.len();
                post(
                    &chats[i % chats.len()],
                    &alice,
                    &room,
                    &format!("w{i:05}"),
                    &mut outcomes,
                )
                .await;
                if outcomes.acked.len() > before {
                    acks.lock().unwrap().push(Instant::now());
                }
                i += 1;
            }
            outcomes
        }));
    }

    /// Waits until the writer has had `n` more posts acknowledged.
    async fn progress(&self, n: usize) {
        let target = self.acks.lock().unwrap().len() + n;
        eventually(WAIT, "more acknowledged posts", || async {
            (self.acks.lock().unwrap().len() >= target).then_some(())
        })
        .await;
    }

    /// The longest time between two acknowledgements since `since` (the stall a fault caused).
    fn longest_stall_since(&self, since: Instant) -> Duration {
        let acks = self.acks.lock().unwrap();
        let mut previous = since;
        let mut longest = Duration::ZERO;
        for &at in acks.iter().filter(|&&at| at > since) {
            longest = longest.max(at - previous);
            previous = at;
        }
        longest
    }

    /// Stops the writer and checks the rule in the read model and in both streams.
    async fn finish(mut self) -> Outcomes {
        self.stop.store(true, Ordering::SeqCst);
        let mut outcomes = std::mem::take(&mut self.outcomes);
        if let Some(writer) = self.writer.take() {
            let written = writer.await.unwrap();
            outcomes.acked.extend(written.acked);
            outcomes.refused.extend(written.refused);
        }
        let last = outcomes
            .acked
            .last()
            .expect("something acknowledged")
            .clone();
        let stored = eventually(
            WAIT,
            "the read model to hold the last acknowledged post",
            || async {
                let texts = stored_texts(&self.stack.database_url, &self.room).await;
                texts.contains(&last).then_some(texts)
            },
        )
        .await;
        assert_exactly_the_acknowledged("read model", &stored, &outcomes);
        // The log itself: every acknowledged post is one event. librdkafka's idempotent producer
        // can write a record twice when it retries across an epoch bump (after requests timed out in
        // an outage); the copy has the same event id, and consumers drop it (projector, fan-out).
        let mut ids = std::collections::HashSet::new();
        let logged: Vec<String> = self
            .stack
            .records()
            .await
            .into_iter()
            .map(|r| r.event())
            .filter(|e| e.room_id.to_string() == self.room && ids.insert(e.event_id))
            .filter_map(|e| match e.body {
                EventBody::MessagePosted { text, .. } => Some(text),
                _ => None,
            })
            .collect();
        assert_exactly_the_acknowledged("topic", &logged, &outcomes);
        for (i, seen) in self.seen.iter().enumerate() {
            eventually(
                WAIT,
                &format!("stream {i} to reach the last stored post"),
                || async { (seen.read().unwrap().last() == stored.last()).then_some(()) },
            )
            .await;
        }
        self.done.store(true, Ordering::SeqCst);
        for reader in self.readers.drain(..) {
            reader.await.unwrap();
        }
        for (i, seen) in self.seen.iter().enumerate() {
            let streamed = seen.read().unwrap().clone();
            assert_exactly_the_acknowledged(
                &format!("SSE on publish-server {i}"),
                &streamed,
                &outcomes,
            );
            assert_eq!(
                streamed, stored,
                "stream {i} and the read model agree, in order"
            );
        }
        eprintln!(
            "{} acknowledged, {} refused",
            outcomes.acked.len(),
            outcomes.refused.len()
        );
        outcomes
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_of_a_busy_rooms_partition_loses_and_duplicates_nothing() {
    let mut busy = BusyRoom::start().await;
    busy.start_writer();
    busy.progress(20).await;
    let leader = busy.leader().await;

    let killed = Instant::now();
    busy.cluster.kill(leader);
    busy.progress(20).await;
    let stall = busy.longest_stall_since(killed);
    let new_leader = busy.leader().await;
    eprintln!("leader {leader} killed: posts stalled for {stall:?}, new leader {new_leader}");
    assert_ne!(new_leader, leader, "another replica leads the partition");
    assert!(
        stall < Duration::from_secs(30),
        "posts resumed only after {stall:?}"
    );
    busy.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_while_its_followers_lag_loses_no_acknowledged_message() {
    // The case `acks=all` is for: the followers fall behind (frozen here), the leader keeps taking
    // posts, then dies before they caught up. Only what both replicas had may have been acknowledged.
    let mut busy = BusyRoom::start().await;
    busy.start_writer();
    busy.progress(20).await;
    let leader = busy.leader().await;
    let followers = busy.followers(leader);
    for &id in &followers {
        busy.cluster.pause(id);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    busy.cluster.kill(leader);
    for &id in &followers {
        busy.cluster.resume(id);
    }
    busy.progress(20).await;
    let new_leader = busy.leader().await;
    assert_ne!(new_leader, leader, "a follower leads the partition");
    busy.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_two_of_three_brokers_down_posts_answer_503_in_time_and_recover_when_one_returns() {
    let mut busy = BusyRoom::start().await;
    for i in 0..5 {
        assert!(busy.post(i % 2, &format!("before {i}")).await, "post {i}");
    }
    // The leader stays: with `acks=1` it would acknowledge alone.
    let leader = busy.leader().await;
    let followers = busy.followers(leader);
    for &id in &followers {
        busy.cluster.kill(id);
    }
    for i in 0..4 {
        let started = Instant::now();
        let acknowledged = busy.post(i % 2, &format!("during {i}")).await;
        let waited = started.elapsed();
        assert!(
            !acknowledged,
            "nothing is acknowledged with one replica left"
        );
        assert!(
            waited < PRODUCE_TIMEOUT + Duration::from_millis(500),
            "refused after {waited:?}"
        );
    }

    let returned = Instant::now();
    busy.cluster.restart(followers[0]).await.unwrap();
    let mut probes = 0;
    while !busy.post(0, &format!("probe {probes}")).await {
        assert!(
            returned.elapsed() < WAIT,
            "posting did not recover within {WAIT:?}"
        );
        probes += 1;
    }
    eprintln!(
        "posting recovered {:?} after a broker was restarted",
        returned.elapsed()
    );
    for i in 0..5 {
        assert!(
            busy.post(i % 2, &format!("after {i}")).await,
            "post {i} after"
        );
    }
    busy.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_every_broker_under_load_loses_and_duplicates_nothing() {
    let mut busy = BusyRoom::start().await;
    busy.start_writer();
    busy.progress(20).await;
    let topic = busy.stack.topic.clone();
    for id in busy.cluster.ids() {
        let stopped = Instant::now();
        busy.cluster.stop(id).await.unwrap();
        busy.cluster.restart(id).await.unwrap();
        for topic in [topic.as_str(), "__consumer_offsets"] {
            busy.cluster.wait_in_sync(topic, WAIT).await.unwrap();
        }
        busy.progress(10).await;
        eprintln!(
            "broker {id} restarted; back in sync after {:?}, longest stall {:?}",
            stopped.elapsed(),
            busy.longest_stall_since(stopped)
        );
    }
    busy.finish().await;
}
