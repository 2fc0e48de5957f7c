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
//!
//! A phase may add a viral room ([`ViralRoom`]): a room of its own beside the phase's rooms, with
//! its own subscribers and rate. Its streams are read by a process of their own at low priority
//! ([`crate::viral`]) and its deliveries counted apart, so the phase's latency is the other rooms'
//! alone, read at normal priority (the isolation target, [`crate::isolation`]).
//!
//! Beside the client's latency, each phase keeps the publish-server's own: the frame ages of
//! `hotchat_sse_frame_age_seconds` over the window, per room class ([`FrameAges`]).

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    ops::Range,
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
    net::{TcpSocket, TcpStream},
    sync::{Semaphore, watch},
    task::JoinHandle,
};

use crate::{
    api::Api,
    procstat::{self, ProcSample},
    prom,
    sse::{self, ChunkedDecoder, EventSplitter},
    stats::Latency,
    viral::ViralReaders,
};

/// Bytes read from a socket at once.
const READ_BUFFER: usize = 4096;
/// Connections being opened at once.
const OPENING_AT_ONCE: usize = 256;
/// Posts in flight at once.
const POSTS_IN_FLIGHT: usize = 256;
/// Users the publisher posts as (in turn), so each stays under the per-user write limit.
const PUBLISHERS: usize = 32;
/// The publish-server's histogram of frame ages at the write.
const FRAME_AGE_METRIC: &str = "hotchat_sse_frame_age_seconds";
/// How long to wait after the last post for the deliveries still on their way.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a viral room may take to turn hot by its deliveries (the scheduler decides each second).
const TURN_HOT_TIMEOUT: Duration = Duration::from_secs(15);

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
    /// A viral room beside the phase's rooms, posted to at the same time; `None`: none.
    #[serde(default)]
    pub viral: Option<ViralRoom>,
}

/// A room of its own beside a phase's rooms: its subscribers stay open once opened, and it is posted
/// to during the phases that name it. Its deliveries are counted apart from the phase's.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ViralRoom {
    pub subscribers: usize,
    /// Messages posted to it per second.
    pub rate: f64,
    /// Posted to at `rate` before the phase's window until the chat-server reports it throttled,
    /// as a room turns hot by its deliveries (`HOT_DELIVERY_THRESHOLD`): the window then measures
    /// the other rooms beside a viral room the product defends itself against. Off, the room is
    /// served as it comes (unbatched, where the chat-server's threshold is out of its reach).
    #[serde(default)]
    pub hot: bool,
}

/// What the viral room's subscribers got during a phase.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ViralOutcome {
    pub subscribers: usize,
    pub open_failures: usize,
    pub messages_posted: u64,
    pub post_failures: u64,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    /// Post → SSE of the viral room's deliveries.
    pub latency: Latency,
    /// Seconds of posting it took to turn hot by its deliveries ([`ViralRoom::hot`]).
    #[serde(default)]
    pub hot_after_secs: Option<f64>,
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
    /// Acknowledged post → SSE: from the post's `201`, so without the write path's round trip
    /// (the push side alone; 0 for a delivery read before its `201` was).
    #[serde(default)]
    pub acked_latency: Latency,
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
    /// The viral room, in a phase that had one (not counted in the fields above).
    #[serde(default)]
    pub viral: Option<ViralOutcome>,
    /// `hotchat_sse_frame_age_seconds` over the window, by room class: the publish-server's own
    /// part of the delay, beside the client's post→SSE (empty from servers without it).
    #[serde(default)]
    pub frame_ages: Vec<FrameAges>,
}

impl PhaseResult {
    /// The server-side frame ages of `class` (`normal`, `batched`), if any frame had it.
    pub fn frame_ages(&self, class: &str) -> Option<&FrameAges> {
        self.frame_ages.iter().find(|ages| ages.class == class)
    }
}

/// The room classes of `hotchat_sse_frame_age_seconds`: frames sent on their own to rooms of up
/// to 128 subscribers on the server and to bigger ones (every room while batching is off, as in
/// the fan-out phases), and hot rooms' batches.
pub const FRAME_CLASSES: [&str; 3] = ["normal", "large", "batched"];

/// How old the publish-server's frames of one class were when written to a socket, over a
/// phase's window: from the fan-out handing the event to the hub to the write, on the server's
/// clock. The quantiles are the upper bounds of the buckets they fall in ([`prom::quantile`]):
/// the histogram cannot tell finer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameAges {
    pub class: String,
    pub frames: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl FrameAges {
    /// The frames of each class written between two readings of the histogram (one
    /// `(class, buckets)` per class); classes with none are left out.
    pub fn between(before: &[(&str, prom::Buckets)], after: &[(&str, prom::Buckets)]) -> Vec<Self> {
        after
            .iter()
            .filter_map(|(class, after)| {
                let before = before
                    .iter()
                    .find(|(c, _)| c == class)
                    .map_or(&[][..], |(_, b)| &b[..]);
                let delta = prom::bucket_delta(before, after);
                let ms = |q| prom::quantile(&delta, q).map(|s| s * 1e3);
                Some(Self {
                    class: (*class).to_owned(),
                    frames: prom::count(&delta) as u64,
                    p50_ms: ms(0.5)?,
                    p99_ms: ms(0.99)?,
                })
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanoutResult {
    pub spec: FanoutSpec,
    pub rss_baseline: Option<u64>,
    pub phases: Vec<PhaseResult>,
    /// The same hot room, unthrottled and throttled ([`crate::hot_push`]).
    #[serde(default)]
    pub hot_push: Option<crate::hot_push::HotPushResult>,
    /// Other rooms with and without a viral room beside them ([`crate::isolation`]).
    #[serde(default)]
    pub isolation: Option<crate::isolation::IsolationResult>,
    /// Idle connections by the hundred thousand ([`crate::idle`]; `--full` only).
    #[serde(default)]
    pub idle: Option<crate::idle::IdleResult>,
}

/// Where the harness points.
#[derive(Clone)]
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
    /// Post → SSE latencies in µs with the stamps they were measured from, per phase; each read
    /// appends its batch.
    latencies: Vec<Mutex<Vec<(u64, u32)>>>,
    resets: AtomicU64,
    ended: AtomicU64,
}

impl Shared {
    /// Counters for `phases` phases (and the warm-up, phase 0).
    pub(crate) fn new(phases: usize) -> Arc<Self> {
        Self::with_clock(phases, Instant::now())
    }

    /// Counters on `clock`: the stamps' clock of a publisher in another process
    /// ([`crate::viral`]).
    pub(crate) fn with_clock(phases: usize, clock: Instant) -> Arc<Self> {
        let phases = phases + 1;
        Arc::new(Shared {
            clock,
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

    /// Waits until `phase` has counted `expected` deliveries, or `until`.
    pub(crate) async fn wait_for(&self, phase: usize, expected: u64, until: Instant) {
        while self.received(phase) < expected && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The post → SSE latency of `phase`'s deliveries.
    pub(crate) fn latency(&self, phase: usize) -> Latency {
        self.latencies[phase]
            .lock()
            .map(|samples| {
                let mut micros: Vec<u64> = samples.iter().map(|&(_, us)| u64::from(us)).collect();
                Latency::from_micros(&mut micros)
            })
            .unwrap_or_default()
    }

    /// The acknowledged post → SSE latency of `phase`'s deliveries: each less its post's round
    /// trip (`acks`: stamp → µs to the `201`), for the posts acknowledged.
    pub(crate) fn acked_latency(&self, phase: usize, acks: &HashMap<u64, u64>) -> Latency {
        self.latencies[phase]
            .lock()
            .map(|samples| {
                let mut micros: Vec<u64> = samples
                    .iter()
                    .filter_map(|(stamp, us)| {
                        Some(u64::from(*us).saturating_sub(*acks.get(stamp)?))
                    })
                    .collect();
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

/// The viral room of a spec whose phases name one: its publisher, and its readers in a process of
/// their own ([`ViralReaders`]).
struct ViralLane {
    publisher: Publisher,
    readers: ViralReaders,
    /// Its streams open so far.
    open: usize,
}

impl ViralLane {
    async fn new(targets: &Targets, phases: usize, shared: &Shared) -> anyhow::Result<Self> {
        let publisher = Publisher::new(&targets.chat, 1).await?;
        let room = publisher.rooms.first().context("the viral room")?;
        let readers = ViralReaders::spawn(targets.publish_addr, room, phases, shared.clock)?;
        Ok(Self {
            publisher,
            readers,
            open: 0,
        })
    }

    /// Opens streams until `wanted` are open; returns how many opened and failed.
    async fn open(&mut self, wanted: usize) -> anyhow::Result<(usize, usize)> {
        let (opened, failures) = self.readers.open(wanted).await?;
        self.open += opened;
        Ok((opened, failures))
    }

    /// Posts at `rate` until the room turns hot by its deliveries ([`Publisher::until_hot`]), then
    /// waits for those posts' deliveries (counted in `phase`, the one before the window); returns
    /// the seconds of posting it took.
    async fn turn_hot(
        &mut self,
        shared: &Arc<Shared>,
        rate: f64,
        phase: usize,
    ) -> anyhow::Result<f64> {
        let (secs, expected) = self.publisher.until_hot(shared, rate, &[self.open]).await?;
        self.readers
            .count(phase, expected, Instant::now() + DRAIN_TIMEOUT)
            .await?;
        Ok(secs)
    }
}

pub async fn run(targets: &Targets, spec: &FanoutSpec) -> anyhow::Result<FanoutResult> {
    let shared = Shared::new(spec.phases.len());
    let publisher = Publisher::new(&targets.chat, spec.rooms).await?;
    let mut viral = match spec.phases.iter().any(|p| p.viral.is_some()) {
        true => Some(ViralLane::new(targets, spec.phases.len(), &shared).await?),
        false => None,
    };
    let (stop, stopped) = watch::channel(false);
    let mut subscribers: Vec<JoinHandle<()>> = Vec::new();
    let mut per_room = vec![0usize; spec.rooms];
    let rss_baseline = sample_rss(targets.publish_pid);

    let mut results = Vec::new();
    for (i, phase) in spec.phases.iter().enumerate() {
        let phase_index = i + 1;
        let rss_before_open = sample_rss(targets.publish_pid);
        let opening = Instant::now();
        let first = subscribers.len();
        let wanted = phase.subscribers.saturating_sub(first);
        let opened = open_subscribers(
            targets.publish_addr,
            &publisher.rooms,
            first..first + wanted,
            &[],
            &shared,
            &stopped,
        )
        .await;
        let open_failures = opened.failures;
        for (room, task) in opened.tasks {
            per_room[room] += 1;
            subscribers.push(task);
        }
        let (viral_opened, viral_failures) = match (&mut viral, phase.viral) {
            (Some(lane), Some(room)) => lane.open(room.subscribers).await?,
            _ => (0, 0),
        };
        let open_secs = opening.elapsed().as_secs_f64();
        // Let the server settle (allocations of the last accepts, the hub's bookkeeping).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_after_open = sample_rss(targets.publish_pid);
        let server_clients = server_clients(targets).await;

        if i == 0 && spec.warmup_messages > 0 {
            let warmup = spec.warmup_messages as f64;
            let rate = phase.rate.max(1.0);
            publisher
                .publish(&shared, rate, warmup / rate, None, &per_room)
                .await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }

        let hot_after_secs = match (&mut viral, phase.viral) {
            (Some(lane), Some(room)) if room.hot => {
                Some(lane.turn_hot(&shared, room.rate, i).await?)
            }
            _ => None,
        };

        let since = shared.start_phase(phase_index);
        if let Some(lane) = &mut viral {
            lane.readers.start_phase(phase_index).await?;
        }
        let before = ServerReading::take(targets).await;
        let started = Instant::now();
        let viral_posts = async {
            match (&viral, phase.viral) {
                (Some(lane), Some(room)) => Some(
                    lane.publisher
                        .publish(&shared, room.rate, phase.secs, None, &[lane.open])
                        .await,
                ),
                _ => None,
            }
        };
        let (published, viral_published) = tokio::join!(
            publisher.publish(
                &shared,
                phase.rate,
                phase.secs,
                phase.posted_rooms,
                &per_room,
            ),
            viral_posts
        );
        let drain_until = Instant::now() + DRAIN_TIMEOUT;
        shared
            .wait_for(phase_index, published.expected, drain_until)
            .await;
        let viral_counted = match (&mut viral, &viral_published) {
            (Some(lane), Some(published)) => Some(
                lane.readers
                    .count(phase_index, published.expected, drain_until)
                    .await?,
            ),
            _ => None,
        };
        let window_secs = started.elapsed().as_secs_f64();
        let after = ServerReading::take(targets).await;
        let received = shared.received(phase_index);
        let rss_after_traffic = sample_rss(targets.publish_pid);
        let (streams_ended, resets) = shared.endings_since(since);

        let cpu = cpu_between(&before.proc, &after.proc);
        let deliveries_server = after.delivered - before.delivered;
        let open_now = subscribers.len();
        let viral_open = viral.as_ref().map_or(0, |lane| lane.open);
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
            writes_server: after.writes - before.writes,
            deliveries_per_sec: received as f64 / window_secs,
            latency: shared.latency(phase_index),
            acked_latency: shared.acked_latency(phase_index, &published.acks),
            server_cpu_seconds: cpu,
            broker_cpu_seconds: cpu_between(&before.broker, &after.broker),
            deliveries_per_cpu_second: cpu.filter(|c| *c > 0.0).map(|c| deliveries_server / c),
            rss_before_open,
            rss_after_open,
            rss_after_traffic,
            rss_per_new_connection_idle: per_connection(
                rss_before_open,
                rss_after_open,
                wanted - open_failures + viral_opened,
            ),
            rss_per_connection_after_traffic: per_connection(
                rss_baseline,
                rss_after_traffic,
                open_now + viral_open,
            ),
            streams_ended,
            resets,
            frame_ages: FrameAges::between(&before.frame_ages, &after.frame_ages),
            viral: viral_published
                .zip(viral_counted)
                .map(|(published, (received, latency))| ViralOutcome {
                    subscribers: viral_open,
                    open_failures: viral_failures,
                    messages_posted: published.posted,
                    post_failures: published.failures,
                    deliveries_expected: published.expected,
                    deliveries_received: received,
                    latency,
                    hot_after_secs,
                }),
        });
        let last = results.last().context("a phase result")?;
        eprintln!(
            "  fan-out {:<20} {:>6} subscribers: {:>8.0} deliveries/s  post→SSE p50 {:.1} ms p99 {:.1} ms  cpu {:.2} s  {:.0} deliveries/CPU-s  {:.1} deliveries/write  rss/conn {:.0} B idle{}",
            last.name,
            last.subscribers,
            last.deliveries_per_sec,
            last.latency.p50_ms,
            last.latency.p99_ms,
            last.server_cpu_seconds.unwrap_or(f64::NAN),
            last.deliveries_per_cpu_second.unwrap_or(f64::NAN),
            last.deliveries_server / last.writes_server,
            last.rss_per_new_connection_idle.unwrap_or(f64::NAN),
            last.viral.as_ref().map_or_else(String::new, |v| format!(
                "  viral room {} subscribers: {}/{} deliveries, p99 {:.1} ms",
                v.subscribers, v.deliveries_received, v.deliveries_expected, v.latency.p99_ms
            )),
        );
    }

    // Close every stream before returning, so the servers see clean disconnects.
    let _ = stop.send(true);
    for task in subscribers {
        let _ = task.await;
    }
    if let Some(lane) = viral {
        lane.readers.stop().await?;
    }
    Ok(FanoutResult {
        spec: spec.clone(),
        rss_baseline,
        phases: results,
        hot_push: None,
        isolation: None,
        idle: None,
    })
}

/// `hotchat_sse_clients`: the streams the publish-server counts as open.
pub(crate) async fn server_clients(targets: &Targets) -> f64 {
    targets
        .publish
        .metrics()
        .await
        .map(|text| prom::sum(&text, "hotchat_sse_clients", &[]))
        .unwrap_or(f64::NAN)
}

/// CPU seconds a process spent between two readings.
pub(crate) fn cpu_between(before: &Option<ProcSample>, after: &Option<ProcSample>) -> Option<f64> {
    match (before, after) {
        (Some(a), Some(b)) => Some(b.cpu_seconds - a.cpu_seconds),
        _ => None,
    }
}

pub(crate) fn sample_rss(pid: Option<u32>) -> Option<u64> {
    procstat::maybe_sample(pid).map(|s| s.rss_bytes)
}

/// RSS growth per connection between two readings.
pub(crate) fn per_connection(
    before: Option<u64>,
    after: Option<u64>,
    connections: usize,
) -> Option<f64> {
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
    /// `hotchat_sse_frame_age_seconds`'s buckets, per class of [`FRAME_CLASSES`].
    pub(crate) frame_ages: Vec<(&'static str, prom::Buckets)>,
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
        let frame_ages = FRAME_CLASSES
            .iter()
            .map(|&class| {
                let buckets = text.as_ref().map_or_else(
                    |_| Vec::new(),
                    |text| prom::buckets(text, FRAME_AGE_METRIC, &[("class", class)]),
                );
                (class, buckets)
            })
            .collect();
        Self {
            proc: procstat::maybe_sample(targets.publish_pid),
            broker: procstat::maybe_sample(targets.broker_pid),
            delivered,
            writes,
            frame_ages,
        }
    }
}

/// Streams opened by [`open_subscribers`]: each reader task with its room's index, and how many
/// failed to open (the first failure is printed).
pub(crate) struct Opened {
    pub(crate) tasks: Vec<(usize, JoinHandle<()>)>,
    pub(crate) failures: usize,
}

/// Opens the streams numbered `range`: stream *j* on room `j % rooms.len()`, from source address
/// `sources[j % sources.len()]` (the kernel's choice when `sources` is empty: one source address has
/// about 28,000 ephemeral ports towards one server port), [`OPENING_AT_ONCE`] at a time. Each is
/// read by [`subscribe`] into `shared` until `stopped`.
pub(crate) async fn open_subscribers(
    addr: SocketAddr,
    rooms: &[String],
    range: Range<usize>,
    sources: &[IpAddr],
    shared: &Arc<Shared>,
    stopped: &watch::Receiver<bool>,
) -> Opened {
    if rooms.is_empty() {
        return Opened {
            tasks: Vec::new(),
            failures: range.len(),
        };
    }
    let results: Vec<anyhow::Result<(usize, JoinHandle<()>)>> = futures::stream::iter(range)
        .map(|j| {
            let room = j % rooms.len();
            let source = (!sources.is_empty()).then(|| sources[j % sources.len()]);
            let (shared, stopped, room_id) = (shared.clone(), stopped.clone(), rooms[room].clone());
            async move {
                let (stream, rest) = open_from(addr, source, &room_id).await?;
                Ok((room, tokio::spawn(subscribe(stream, rest, shared, stopped))))
            }
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect()
        .await;
    let mut opened = Opened {
        tasks: Vec::with_capacity(results.len()),
        failures: 0,
    };
    let mut first_error = None;
    for result in results {
        match result {
            Ok(task) => opened.tasks.push(task),
            Err(e) => {
                opened.failures += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        eprintln!(
            "  {} subscriptions failed; the first: {e:#}",
            opened.failures
        );
    }
    opened
}

/// Opens an event stream of `room` from `source` (the kernel's choice when `None`); returns the
/// socket and the body bytes read with the head.
pub(crate) async fn open_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
    room: &str,
) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut stream = connect_from(addr, source)
        .await
        .with_context(|| match source {
            Some(ip) => format!("connecting to {addr} from {ip}"),
            None => format!("connecting to {addr}"),
        })?;
    stream.set_nodelay(true)?;
    let rest = sse::request_events(&mut stream, addr, room, None).await?;
    Ok((stream, rest))
}

/// Connects to `addr`, from `source` when given: the socket is bound to it (any port) first.
async fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let Some(ip) = source else {
        return TcpStream::connect(addr).await;
    };
    let socket = match ip {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(addr).await
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
                        let latency = now.saturating_sub(stamp).min(u32::MAX as u64) as u32;
                        latencies.push((stamp, latency));
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
    /// Each acknowledged post's stamp and round trip in µs.
    pub(crate) acks: HashMap<u64, u64>,
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

    /// Posts to the first room at `rate` until its chat-server reports it throttled, as a room
    /// turns hot by its deliveries (`HOT_DELIVERY_THRESHOLD`); returns the seconds of posting it
    /// took and the deliveries expected (`per_room`, as [`Self::publish`]).
    pub(crate) async fn until_hot(
        &self,
        shared: &Arc<Shared>,
        rate: f64,
        per_room: &[usize],
    ) -> anyhow::Result<(f64, u64)> {
        let started = Instant::now();
        let mut expected = 0;
        loop {
            expected += self
                .publish(shared, rate, 0.5, Some(1), per_room)
                .await
                .expected;
            if self.api.room_mode(&self.rooms[0]).await? == "throttled" {
                return Ok((started.elapsed().as_secs_f64(), expected));
            }
            anyhow::ensure!(
                started.elapsed() < TURN_HOT_TIMEOUT,
                "the room did not turn hot by its deliveries within {TURN_HOT_TIMEOUT:?} (is the \
                 chat-server's HOT_DELIVERY_THRESHOLD within reach, and its Redis prefix the \
                 publish-server's?)"
            );
        }
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
                let stamp = shared.clock.elapsed().as_micros() as u64;
                let text = format!("{}{stamp} fan-out message {i}", sse::STAMP_PREFIX);
                let result = api.post_message(&token, &room_id, &text).await;
                // On the stamps' clock: from the stamp, as the delivery's latency is.
                let round_trip = (shared.clock.elapsed().as_micros() as u64).saturating_sub(stamp);
                (room, result.is_ok(), stamp, round_trip)
            }));
        }
        let (mut posted, mut failures, mut expected) = (0, 0, 0);
        let mut acks = HashMap::with_capacity(total);
        for post in posts {
            match post.await {
                Ok((room, true, stamp, micros)) => {
                    posted += 1;
                    expected += per_room.get(room).copied().unwrap_or(0) as u64;
                    acks.insert(stamp, micros);
                }
                _ => failures += 1,
            }
        }
        Published {
            posted,
            failures,
            expected,
            latency: Latency::from_micros(&mut acks.values().copied().collect::<Vec<_>>()),
            acks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_can_come_from_another_loopback_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a listener");
        let addr = listener.local_addr().expect("its address");
        let source: IpAddr = "127.0.0.3".parse().expect("an address");
        let (client, accepted) = tokio::join!(connect_from(addr, Some(source)), listener.accept());
        let client = client.expect("connected from 127.0.0.3");
        let (_, peer) = accepted.expect("accepted");
        assert_eq!(peer.ip(), source);
        assert_eq!(client.local_addr().expect("bound").ip(), source);
    }

    #[test]
    fn frame_ages_are_the_windows_frames_per_class_and_classes_without_frames_are_left_out() {
        let reading = |normal: [f64; 3], batched: [f64; 3]| {
            let buckets = |counts: [f64; 3]| {
                vec![
                    (0.001, counts[0]),
                    (0.01, counts[1]),
                    (f64::INFINITY, counts[2]),
                ]
            };
            vec![("normal", buckets(normal)), ("batched", buckets(batched))]
        };
        let before = reading([50.0, 60.0, 60.0], [7.0, 7.0, 7.0]);
        let after = reading([150.0, 165.0, 166.0], [7.0, 7.0, 7.0]);
        assert_eq!(
            FrameAges::between(&before, &after),
            vec![FrameAges {
                class: "normal".to_owned(),
                frames: 106,
                p50_ms: 1.0,
                p99_ms: 10.0,
            }]
        );
        // A server without the histogram: nothing.
        let none = vec![("normal", Vec::new()), ("batched", Vec::new())];
        assert!(FrameAges::between(&none, &none).is_empty());
    }

    #[test]
    fn acknowledged_latency_is_each_delivery_less_its_posts_round_trip() {
        let shared = Shared::new(1);
        shared.latencies[1].lock().unwrap().extend([
            (100, 5_000),
            (200, 3_000),
            (200, 2_500),
            (300, 9_000),
        ]);
        // Post 100 took 4 ms to its 201, post 200 3 ms (one delivery read before the 201: 0),
        // post 300 failed (no 201): left out.
        let acks = HashMap::from([(100, 4_000), (200, 3_000)]);
        let acked = shared.acked_latency(1, &acks);
        assert_eq!(acked.count, 3);
        assert_eq!(acked.max_ms, 1.0);
        assert_eq!(shared.latency(1).count, 4);
    }

    #[test]
    fn rss_per_connection_needs_both_readings_and_connections() {
        assert_eq!(per_connection(Some(1_000), Some(3_000), 1), Some(2_000.0));
        assert_eq!(per_connection(None, Some(3_000), 1), None);
        assert_eq!(per_connection(Some(1_000), Some(3_000), 0), None);
    }
}
