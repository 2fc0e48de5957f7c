//! The hot-room push benchmark: one room, 1,000 subscribers, 300 messages and 1,000 reactions a
//! second, served once unthrottled and once throttled (its frames batched every `HOT_SSE_BATCH_MS`,
//! reactions folded into counts), in the same run.
//!
//! Two rooms of the same shape take the same load in turn: the first stays normal, the second
//! turns hot the way a viral room does, by its own deliveries (its messages posted through the
//! chat-server whose hot-room detection is on, until it says the room is throttled). For each the publish-server is measured over the load's window: its CPU seconds from
//! `/proc`, and from `/metrics` the events it handed to connections
//! (`hotchat_sse_events_delivered_total`: a batch counts every event it carries, folded reactions
//! included) and the writes that carried them (`hotchat_sse_writes_total`). Messages carry the
//! harness's clock, so post → SSE latency is measured as in the fan-out benchmark.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    api::Api,
    fanout::{self, Publisher, ServerReading, Shared, Targets},
    stats::Latency,
};

/// Users reacting, in turn; each toggles its reaction, so every request is an event.
const REACTORS: usize = 200;
const EMOJIS: [&str; 3] = ["👍", "🎉", "🔥"];
/// Messages the reactions land on (posted before the load).
const REACTED_MESSAGES: usize = 5;
/// Reactions in flight at once.
const REACTIONS_IN_FLIGHT: usize = 128;
/// How long to wait after the load for the deliveries still on their way.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HotPushSpec {
    pub subscribers: usize,
    /// Messages a second.
    pub rate: f64,
    /// Reactions a second.
    pub reactions: f64,
    pub secs: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PushPhase {
    pub name: String,
    pub throttled: bool,
    pub subscribers: usize,
    pub messages_posted: u64,
    pub reactions_sent: u64,
    pub reaction_failures: u64,
    /// Messages times subscribers, and the messages the subscribers read.
    pub messages_expected: u64,
    pub messages_received: u64,
    pub window_secs: f64,
    /// Events handed to connections (`hotchat_sse_events_delivered_total`).
    pub deliveries_server: f64,
    /// Writes that carried them (`hotchat_sse_writes_total`).
    pub writes_server: f64,
    pub server_cpu_seconds: Option<f64>,
    pub broker_cpu_seconds: Option<f64>,
    pub deliveries_per_cpu_second: Option<f64>,
    /// Post → SSE of the messages.
    pub latency: Latency,
    pub streams_ended: u64,
    pub resets: u64,
}

impl PushPhase {
    pub fn deliveries_per_write(&self) -> f64 {
        self.deliveries_server / self.writes_server
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HotPushResult {
    pub spec: HotPushSpec,
    /// Unthrottled, then throttled.
    pub phases: Vec<PushPhase>,
}

impl HotPushResult {
    /// Throttled deliveries per CPU-second over unthrottled ones.
    pub fn cpu_ratio(&self) -> Option<f64> {
        let [normal, throttled] = self.phases.as_slice() else {
            return None;
        };
        Some(throttled.deliveries_per_cpu_second? / normal.deliveries_per_cpu_second?)
    }
}

/// Runs both phases; `chat_on` is a chat-server with hot-room detection on (same topic).
pub async fn run(
    targets: &Targets,
    chat_on: &Api,
    spec: &HotPushSpec,
) -> anyhow::Result<HotPushResult> {
    let mut phases = Vec::new();
    for (i, throttled) in [false, true].into_iter().enumerate() {
        // The throttled room's messages go through the chat-server whose detection is on, so the
        // room turns hot by its own deliveries.
        let publisher = Publisher::new(if throttled { chat_on } else { &targets.chat }, 1).await?;
        let room = publisher.rooms[0].clone();
        let mut reacted = Vec::new();
        for j in 0..REACTED_MESSAGES {
            let text = format!("reacted {j}");
            reacted.push(
                targets
                    .chat
                    .post_message(&publisher.tokens[0], &room, &text)
                    .await?,
            );
        }
        let mut reactors = Vec::new();
        for j in 0..REACTORS {
            reactors.push(targets.chat.sign_in(&format!("reactor-{i}-{j}")).await?);
        }
        let name = if throttled {
            "throttled"
        } else {
            "unthrottled"
        };
        phases.push(
            phase(
                targets, spec, name, throttled, &publisher, &reacted, &reactors,
            )
            .await?,
        );
        let last = phases.last().context("a phase")?;
        eprintln!(
            "  hot room push {:<12} {:>5} subscribers: {:>9.0} deliveries/CPU-s  {:>6.1} deliveries/write  messages {}/{}  post→SSE p50 {:.1} ms p99 {:.1} ms  resets {}",
            last.name,
            last.subscribers,
            last.deliveries_per_cpu_second.unwrap_or(f64::NAN),
            last.deliveries_per_write(),
            last.messages_received,
            last.messages_expected,
            last.latency.p50_ms,
            last.latency.p99_ms,
            last.resets,
        );
    }
    Ok(HotPushResult {
        spec: spec.clone(),
        phases,
    })
}

async fn phase(
    targets: &Targets,
    spec: &HotPushSpec,
    name: &str,
    throttled: bool,
    publisher: &Publisher,
    reacted: &[String],
    reactors: &[String],
) -> anyhow::Result<PushPhase> {
    let shared = Shared::new(1);
    let room = publisher.rooms[0].clone();
    let (stop, stopped) = watch::channel(false);
    let opened = fanout::open_subscribers(
        targets.publish_addr,
        std::slice::from_ref(&room),
        0..spec.subscribers,
        &[],
        &shared,
        &stopped,
    )
    .await;
    anyhow::ensure!(
        opened.failures == 0,
        "{} of the hot room's {} subscriptions failed",
        opened.failures,
        spec.subscribers
    );
    let subscribers: Vec<JoinHandle<()>> = opened.tasks.into_iter().map(|(_, task)| task).collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    if throttled {
        // Counted before the window (phase 0), as a warm-up.
        let (_, expected) = publisher
            .until_hot(&shared, spec.rate, &[subscribers.len()])
            .await?;
        shared
            .wait_for(0, expected, Instant::now() + DRAIN_TIMEOUT)
            .await;
    }

    let since = shared.start_phase(1);
    let before = ServerReading::take(targets).await;
    let started = Instant::now();
    let reactions = tokio::spawn(react(
        targets.chat.clone(),
        room.clone(),
        reacted.to_vec(),
        reactors.to_vec(),
        spec.reactions,
        spec.secs,
    ));
    let published = publisher
        .publish(&shared, spec.rate, spec.secs, None, &[subscribers.len()])
        .await;
    let (sent, failed) = reactions.await.context("the reaction load")?;
    shared
        .wait_for(1, published.expected, Instant::now() + DRAIN_TIMEOUT)
        .await;
    let window_secs = started.elapsed().as_secs_f64();
    let after = ServerReading::take(targets).await;
    let (streams_ended, resets) = shared.endings_since(since);
    let _ = stop.send(true);
    for task in subscribers {
        let _ = task.await;
    }
    let cpu = fanout::cpu_between(&before.proc, &after.proc);
    let deliveries_server = after.delivered - before.delivered;
    Ok(PushPhase {
        name: name.to_owned(),
        throttled,
        subscribers: spec.subscribers,
        messages_posted: published.posted,
        reactions_sent: sent,
        reaction_failures: failed,
        messages_expected: published.expected,
        messages_received: shared.received(1),
        window_secs,
        deliveries_server,
        writes_server: after.writes - before.writes,
        server_cpu_seconds: cpu,
        broker_cpu_seconds: fanout::cpu_between(&before.broker, &after.broker),
        deliveries_per_cpu_second: cpu.filter(|c| *c > 0.0).map(|c| deliveries_server / c),
        latency: shared.latency(1),
        streams_ended,
        resets,
    })
}

/// Sends `rate` reactions a second for `secs`: each reactor in turn toggles one emoji on one of
/// `messages`, so every request changes a count. Returns the reactions sent and failed.
async fn react(
    api: Api,
    room: String,
    messages: Vec<String>,
    reactors: Vec<String>,
    rate: f64,
    secs: f64,
) -> (u64, u64) {
    let total = (rate * secs).round() as usize;
    let mut on = vec![false; reactors.len() * EMOJIS.len() * messages.len()];
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(REACTIONS_IN_FLIGHT));
    let mut sent = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let (user, emoji) = (i % reactors.len(), (i / reactors.len()) % EMOJIS.len());
        let message = (i / (reactors.len() * EMOJIS.len())) % messages.len();
        let slot = (message * EMOJIS.len() + emoji) * reactors.len() + user;
        on[slot] = !on[slot];
        let (api, room, token, message, add) = (
            api.clone(),
            room.clone(),
            reactors[user].clone(),
            messages[message].clone(),
            on[slot],
        );
        sent.push(tokio::spawn(async move {
            let _permit = permit;
            api.react(&token, &room, &message, EMOJIS[emoji], add)
                .await
                .is_ok()
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for reaction in sent {
        match reaction.await {
            Ok(true) => ok += 1,
            _ => failed += 1,
        }
    }
    (ok, failed)
}
