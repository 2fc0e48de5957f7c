//! The SSE fan-out benchmark: N subscribers over R rooms, M stamped messages a second.
//!
//! goose times request/response pairs, not the events of a stream that never ends, so this harness
//! is its own: every subscriber is a bare TCP connection (see [`crate::sse`]) and a publisher posts
//! messages through the chat-server whose text carries the time they were sent (`lt:<µs>` on a clock
//! shared by the whole harness). Each delivery's latency is the time from just before the `POST` to
//! the moment the event was read off the socket: HTTP, the broker's acknowledgement, the consumer's
//! fetch (Apache Kafka answers it as soon as the record is there), the fan-out and the client's read.
//!
//! Phases run in order and add subscribers (phase *i* keeps the subscribers of phase *i − 1*). For
//! each phase the publish-server is measured from `/proc` (CPU seconds, RSS) and `/metrics`
//! (`hotchat_sse_events_delivered_total`, `hotchat_sse_clients`) over the window from the first post
//! to the last expected delivery.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::{
    io::AsyncReadExt,
    net::TcpStream,
    sync::{Semaphore, watch},
    task::JoinHandle,
};

use crate::{
    api::Api,
    procstat::{self, ProcSample},
    prom,
    sse::{self, ChunkedDecoder, EventSplitter},
    stats::Latency,
};

/// Bytes read from a socket at once.
const READ_BUFFER: usize = 4096;
/// Connections being opened at once.
const OPENING_AT_ONCE: usize = 256;
/// Posts in flight at once.
const POSTS_IN_FLIGHT: usize = 256;
/// Users the publisher posts as (in turn), so each stays under the per-user write limit.
const PUBLISHERS: usize = 32;
/// How long to wait after the last post for the deliveries still on their way.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One phase of the benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseSpec {
    pub name: String,
    /// Subscribers open during the phase (in total, not added).
    pub subscribers: usize,
    /// Messages posted per second, spread evenly over the rooms.
    pub rate: f64,
    /// Post to the first this many rooms only (a viral room: 1); `None`: every room.
    #[serde(default)]
    pub posted_rooms: Option<usize>,
    pub secs: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutSpec {
    pub rooms: usize,
    pub phases: Vec<PhaseSpec>,
    /// Messages posted before the first phase (not measured) to warm up the path.
    pub warmup_messages: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PhaseResult {
    pub name: String,
    pub subscribers: usize,
    pub rooms: usize,
    pub rate_target: f64,
    /// Connections opened for this phase, how long that took, and how many failed.
    pub opened: usize,
    pub open_secs: f64,
    pub open_failures: usize,
    /// `hotchat_sse_clients` once the connections were open.
    pub server_clients: f64,
    pub messages_posted: u64,
    pub post_failures: u64,
    /// How long the chat-server took to acknowledge a post (201).
    pub post_latency: Latency,
    pub window_secs: f64,
    /// Deliveries the subscribers should get: every posted message times its room's subscribers.
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    /// `hotchat_sse_events_delivered_total` over the window.
    pub deliveries_server: f64,
    /// `hotchat_sse_writes_total` over the window: chunks written, one system call each when the
    /// socket has room.
    #[serde(default)]
    pub writes_server: f64,
    pub deliveries_per_sec: f64,
    /// Post → SSE, over every stamped delivery of the phase.
    pub latency: Latency,
    pub server_cpu_seconds: Option<f64>,
    /// The broker's CPU seconds over the same window.
    #[serde(default)]
    pub broker_cpu_seconds: Option<f64>,
    /// Server-counted deliveries per publish-server CPU second.
    pub deliveries_per_cpu_second: Option<f64>,
    pub rss_before_open: Option<u64>,
    pub rss_after_open: Option<u64>,
    pub rss_after_traffic: Option<u64>,
    /// RSS growth per connection opened in this phase, measured before any traffic.
    pub rss_per_new_connection_idle: Option<f64>,
    /// RSS growth per open connection since before the first phase, after this phase's traffic.
    pub rss_per_connection_after_traffic: Option<f64>,
    /// Streams that ended (closed by the server, or `event: reset`) during the phase.
    pub streams_ended: u64,
    pub resets: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutResult {
    pub spec: FanoutSpec,
    pub rss_baseline: Option<u64>,
    pub phases: Vec<PhaseResult>,
    /// The same hot room, unthrottled and throttled ([`crate::hot_push`]).
    #[serde(default)]
    pub hot_push: Option<crate::hot_push::HotPushResult>,
}

/// Where the harness points.
pub struct Targets {
    pub chat: Api,
    pub publish: Api,
    pub publish_addr: SocketAddr,
    pub publish_pid: Option<u32>,
    pub broker_pid: Option<u32>,
}

/// What subscribers share.
pub(crate) struct Shared {
    clock: Instant,
    /// The phase deliveries count for (0 = warm-up, not reported).
    phase: AtomicUsize,
    received: Vec<AtomicU64>,
    /// Post → SSE latencies in µs, per phase; each read appends its batch.
    latencies: Vec<Mutex<Vec<u32>>>,
    resets: AtomicU64,
    ended: AtomicU64,
}

impl Shared {
    /// Counters for `phases` phases (and the warm-up, phase 0).
    pub(crate) fn new(phases: usize) -> Arc<Self> {
        let phases = phases + 1;
        Arc::new(Shared {
            clock: Instant::now(),
            phase: AtomicUsize::new(0),
            received: (0..phases).map(|_| AtomicU64::new(0)).collect(),
            latencies: (0..phases).map(|_| Mutex::new(Vec::new())).collect(),
            resets: AtomicU64::new(0),
            ended: AtomicU64::new(0),
        })
    }

    /// Starts counting for `phase`; returns the streams ended and resets so far.
    pub(crate) fn start_phase(&self, phase: usize) -> (u64, u64) {
        self.phase.store(phase, Ordering::SeqCst);
        (
            self.ended.load(Ordering::Relaxed),
            self.resets.load(Ordering::Relaxed),
        )
    }

    /// Deliveries counted for `phase` so far.
    pub(crate) fn received(&self, phase: usize) -> u64 {
        self.received[phase].load(Ordering::Relaxed)
    }

    /// The post → SSE latency of `phase`'s deliveries.
    pub(crate) fn latency(&self, phase: usize) -> Latency {
        self.latencies[phase]
            .lock()
            .map(|samples| {
                let mut micros: Vec<u64> = samples.iter().map(|&us| u64::from(us)).collect();
                Latency::from_micros(&mut micros)
            })
            .unwrap_or_default()
    }

    /// Streams ended and resets since `since` (from [`Shared::start_phase`]).
    pub(crate) fn endings_since(&self, since: (u64, u64)) -> (u64, u64) {
        (
            self.ended.load(Ordering::Relaxed) - since.0,
            self.resets.load(Ordering::Relaxed) - since.1,
        )
    }
}

pub async fn run(targets: &Targets, spec: &FanoutSpec) -> anyhow::Result<FanoutResult> {
    let shared = Shared::new(spec.phases.len());
    let publisher = Publisher::new(&targets.chat, spec.rooms).await?;
    let (stop, stopped) = watch::channel(false);
    let mut subscribers: Vec<JoinHandle<()>> = Vec::new();
    let mut per_room = vec![0usize; spec.rooms];
    let rss_baseline = procstat::maybe_sample(targets.publish_pid).map(|s| s.rss_bytes);

    let mut results = Vec::new();
    for (i, phase) in spec.phases.iter().enumerate() {
        let phase_index = i + 1;
        let rss_before_open = sample_rss(targets.publish_pid);
        let opening = Instant::now();
        let wanted = phase.subscribers.saturating_sub(subscribers.len());
        let first = subscribers.len();
        let opened: Vec<anyhow::Result<(usize, JoinHandle<()>)>> =
            futures::stream::iter(first..first + wanted)
                .map(|j| {
                    let room = j % spec.rooms;
                    let (shared, stopped) = (shared.clone(), stopped.clone());
                    let room_id = publisher.rooms[room].clone();
                    let addr = targets.publish_addr;
                    async move {
                        let (stream, rest) = open(addr, &room_id).await?;
                        let task = tokio::spawn(subscribe(stream, rest, shared, stopped));
                        Ok((room, task))
                    }
                })
                .buffer_unordered(OPENING_AT_ONCE)
                .collect()
                .await;
        let mut open_failures = 0;
        let mut first_error = None;
        for result in opened {
            match result {
                Ok((room, task)) => {
                    per_room[room] += 1;
                    subscribers.push(task);
                }
                Err(e) => {
                    open_failures += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            eprintln!("  {open_failures} subscriptions failed; the first: {e:#}");
        }
        let open_secs = opening.elapsed().as_secs_f64();
        // Let the server settle (allocations of the last accepts, the hub's bookkeeping).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_after_open = sample_rss(targets.publish_pid);
        let server_clients = targets
            .publish
            .metrics()
            .await
            .map(|text| prom::sum(&text, "hotchat_sse_clients", &[]))
            .unwrap_or(f64::NAN);

        if i == 0 && spec.warmup_messages > 0 {
            let warmup = spec.warmup_messages as f64;
            let rate = phase.rate.max(1.0);
            publisher
                .publish(&shared, rate, warmup / rate, None, &per_room)
                .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        shared.phase.store(phase_index, Ordering::SeqCst);
        let (ended_before, resets_before) = (
            shared.ended.load(Ordering::Relaxed),
            shared.resets.load(Ordering::Relaxed),
        );
        let before = ServerReading::take(targets).await;
        let started = Instant::now();
        let published = publisher
            .publish(
                &shared,
                phase.rate,
                phase.secs,
                phase.posted_rooms,
                &per_room,
            )
            .await;
        let drain_until = Instant::now() + DRAIN_TIMEOUT;
        while shared.received[phase_index].load(Ordering::Relaxed) < published.expected
            && Instant::now() < drain_until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let window_secs = started.elapsed().as_secs_f64();
        let after = ServerReading::take(targets).await;
        let received = shared.received[phase_index].load(Ordering::Relaxed);
        let rss_after_traffic = sample_rss(targets.publish_pid);

        let latency = shared.latency(phase_index);
        let cpu = match (before.proc, after.proc) {
            (Some(a), Some(b)) => Some(b.cpu_seconds - a.cpu_seconds),
            _ => None,
        };
        let deliveries_server = after.delivered - before.delivered;
        let writes_server = after.writes - before.writes;
        let open_now = subscribers.len();
        results.push(PhaseResult {
            name: phase.name.clone(),
            subscribers: open_now,
            rooms: spec.rooms,
            rate_target: phase.rate,
            opened: wanted - open_failures,
            open_secs,
            open_failures,
            server_clients,
            messages_posted: published.posted,
            post_failures: published.failures,
            post_latency: published.latency,
            window_secs,
            deliveries_expected: published.expected,
            deliveries_received: received,
            deliveries_server,
            writes_server,
            deliveries_per_sec: received as f64 / window_secs,
            latency,
            server_cpu_seconds: cpu,
            broker_cpu_seconds: match (before.broker, after.broker) {
                (Some(a), Some(b)) => Some(b.cpu_seconds - a.cpu_seconds),
                _ => None,
            },
            deliveries_per_cpu_second: cpu.filter(|c| *c > 0.0).map(|c| deliveries_server / c),
            rss_before_open,
            rss_after_open,
            rss_after_traffic,
            rss_per_new_connection_idle: per_connection(
                rss_before_open,
                rss_after_open,
                wanted - open_failures,
            ),
            rss_per_connection_after_traffic: per_connection(
                rss_baseline,
                rss_after_traffic,
                open_now,
            ),
            streams_ended: shared.ended.load(Ordering::Relaxed) - ended_before,
            resets: shared.resets.load(Ordering::Relaxed) - resets_before,
        });
        let last = results.last().context("a phase result")?;
        eprintln!(
            "  fan-out {:<20} {:>6} subscribers: {:>8.0} deliveries/s  post→SSE p50 {:.1} ms p99 {:.1} ms  cpu {:.2} s  {:.0} deliveries/CPU-s  {:.1} deliveries/write  rss/conn {:.0} B idle",
            last.name,
            last.subscribers,
            last.deliveries_per_sec,
            last.latency.p50_ms,
            last.latency.p99_ms,
            last.server_cpu_seconds.unwrap_or(f64::NAN),
            last.deliveries_per_cpu_second.unwrap_or(f64::NAN),
            last.deliveries_server / last.writes_server,
            last.rss_per_new_connection_idle.unwrap_or(f64::NAN),
        );
    }

    // Close every stream before returning, so the servers see clean disconnects.
    let _ = stop.send(true);
    for task in subscribers {
        let _ = task.await;
    }
    Ok(FanoutResult {
        spec: spec.clone(),
        rss_baseline,
        phases: results,
        hot_push: None,
    })
}

fn sample_rss(pid: Option<u32>) -> Option<u64> {
    procstat::maybe_sample(pid).map(|s| s.rss_bytes)
}

fn per_connection(before: Option<u64>, after: Option<u64>, connections: usize) -> Option<f64> {
    match (before, after) {
        (Some(before), Some(after)) if connections > 0 => {
            Some((after as f64 - before as f64) / connections as f64)
        }
        _ => None,
    }
}

/// The publish-server's counters at one moment.
pub(crate) struct ServerReading {
    pub(crate) proc: Option<ProcSample>,
    pub(crate) broker: Option<ProcSample>,
    pub(crate) delivered: f64,
    pub(crate) writes: f64,
}

impl ServerReading {
    pub(crate) async fn take(targets: &Targets) -> Self {
        let text = targets.publish.metrics().await;
        let sum = |series| {
            text.as_ref()
                .map(|text| prom::sum(text, series, &[]))
                .unwrap_or(f64::NAN)
        };
        let (delivered, writes) = (
            sum("hotchat_sse_events_delivered_total"),
            sum("hotchat_sse_writes_total"),
        );
        Self {
            proc: procstat::maybe_sample(targets.publish_pid),
            broker: procstat::maybe_sample(targets.broker_pid),
            delivered,
            writes,
        }
    }
}

/// Opens an event stream of `room`; returns the socket and the body bytes read with the head.
pub(crate) async fn open(addr: SocketAddr, room: &str) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let rest = sse::request_events(&mut stream, addr, room, None).await?;
    Ok((stream, rest))
}

/// Reads one stream until the harness stops, counting deliveries and their latencies.
pub(crate) async fn subscribe(
    mut stream: TcpStream,
    first: Vec<u8>,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut latencies = Vec::new();
    let mut decoder = ChunkedDecoder::default();
    let mut splitter = EventSplitter::default();
    let mut body = Vec::with_capacity(READ_BUFFER);
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut pending = first;
    loop {
        if !pending.is_empty() {
            let now = shared.clock.elapsed().as_micros() as u64;
            let phase = shared.phase.load(Ordering::Relaxed);
            body.clear();
            if decoder.feed(&pending, &mut body).is_err() {
                break;
            }
            pending.clear();
            let mut delivered = 0;
            let mut reset = false;
            latencies.clear();
            splitter.feed(&body, |event| match sse::event_type(event) {
                b"message" => {
                    if let Some(stamp) = sse::stamp(event) {
                        delivered += 1;
                        latencies.push(now.saturating_sub(stamp).min(u32::MAX as u64) as u32);
                    }
                }
                b"reset" => reset = true,
                _ => {}
            });
            if delivered > 0 {
                if let Ok(mut sink) = shared.latencies[phase].lock() {
                    sink.extend_from_slice(&latencies);
                }
                shared.received[phase].fetch_add(delivered, Ordering::Relaxed);
            }
            if reset {
                shared.resets.fetch_add(1, Ordering::Relaxed);
            }
            if decoder.is_done() {
                break;
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => pending.extend_from_slice(&buffer[..n]),
            },
        }
    }
    shared.ended.fetch_add(1, Ordering::Relaxed);
}

/// Posts stamped messages through the chat-server.
pub(crate) struct Publisher {
    api: Api,
    pub(crate) tokens: Vec<String>,
    pub(crate) rooms: Vec<String>,
}

/// What one publishing run did.
pub(crate) struct Published {
    pub(crate) posted: u64,
    pub(crate) failures: u64,
    pub(crate) expected: u64,
    pub(crate) latency: Latency,
}

impl Publisher {
    pub(crate) async fn new(api: &Api, rooms: usize) -> anyhow::Result<Self> {
        let mut tokens = Vec::new();
        for i in 0..PUBLISHERS {
            tokens.push(api.sign_in(&format!("publisher-{i}")).await?);
        }
        let mut ids = Vec::new();
        for i in 0..rooms {
            ids.push(api.create_room(&tokens[0], &format!("fan-out {i}")).await?);
        }
        Ok(Self {
            api: api.clone(),
            tokens,
            rooms: ids,
        })
    }

    /// Posts `rate` messages a second for `secs` seconds, round-robin over the rooms (or the first
    /// `rooms` of them).
    pub(crate) async fn publish(
        &self,
        shared: &Arc<Shared>,
        rate: f64,
        secs: f64,
        rooms: Option<usize>,
        per_room: &[usize],
    ) -> Published {
        let rooms = rooms.unwrap_or(self.rooms.len()).clamp(1, self.rooms.len());
        let total = (rate * secs).round().max(1.0) as usize;
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.001)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let in_flight = Arc::new(Semaphore::new(POSTS_IN_FLIGHT));
        let mut posts = Vec::with_capacity(total);
        for i in 0..total {
            ticker.tick().await;
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let room = i % rooms;
            let (api, token, room_id) = (
                self.api.clone(),
                self.tokens[i % self.tokens.len()].clone(),
                self.rooms[room].clone(),
            );
            let shared = shared.clone();
            posts.push(tokio::spawn(async move {
                let _permit = permit;
                let stamp = shared.clock.elapsed().as_micros();
                let text = format!("{}{stamp} fan-out message {i}", sse::STAMP_PREFIX);
                let sent = Instant::now();
                let result = api.post_message(&token, &room_id, &text).await;
                (room, result.is_ok(), sent.elapsed().as_micros() as u64)
            }));
        }
        let (mut posted, mut failures, mut expected) = (0, 0, 0);
        let mut latencies = Vec::with_capacity(total);
        for post in posts {
            match post.await {
                Ok((room, true, micros)) => {
                    posted += 1;
                    expected += per_room.get(room).copied().unwrap_or(0) as u64;
                    latencies.push(micros);
                }
                _ => failures += 1,
            }
        }
        Published {
            posted,
            failures,
            expected,
            latency: Latency::from_micros(&mut latencies),
        }
    }
}
