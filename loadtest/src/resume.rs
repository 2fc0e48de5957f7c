//! The resume storm: thousands of clients reconnect at once, each with a cursor of its room.
//!
//! A publish-server keeps the recent past of every partition (`SSE_RESUME_BUFFER` events each) so
//! that a client reconnecting with `Last-Event-ID` gets what it missed. When a server restarts or a
//! network blip drops every stream, all its clients come back in the same moment, and each resume
//! takes its backlog under the hub's lock. This harness measures what such a storm costs:
//!
//! 1. **Fill.** Rooms are created and messages posted round-robin over them through the
//!    chat-server until every partition holds more than the resume buffer. One listener per room
//!    on each server records the cursors (`id:`), so the storm's clients resume from real
//!    positions; and the buffered events are frames built for listeners, as after a blip.
//! 2. **Storms.** N clients, spread evenly over the rooms, connect at once (each a task of its
//!    own, no pacing), each with the cursor `backlog` messages before its room's last, and each
//!    must get exactly those messages. A storm's window runs from the first connect to the moment
//!    the last client has its backlog; the server's CPU seconds over it come from `/proc`. Per
//!    client: the time from its connect to the response head, and to its last backlog event.
//!    A *fresh* storm — the same connections without cursors — is the control: resume − fresh is
//!    what the resume itself costs.
//! 3. **Rounds.** Storms alternate between the servers given (a build before a change and one
//!    after, on the same topic and cursors) and between the modes, round after round; the summary
//!    quotes medians over the rounds. Between storms every stream is closed and the server is left
//!    to fall quiet.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::{
    io::AsyncReadExt,
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    task::JoinHandle,
};

use crate::{
    api::Api,
    procstat, prom,
    sse::{self, ChunkedDecoder, EventSplitter},
    stats::Latency,
};

/// Users the fill posts as (in turn).
const POSTERS: usize = 32;
/// Posts in flight at once during the fill.
const POSTS_IN_FLIGHT: usize = 256;
/// Rooms created at once.
const CREATES_IN_FLIGHT: usize = 16;
/// How long the listeners may take to see every posted message.
const FILL_DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a storm may take before the clients still waiting count as failed.
const STORM_TIMEOUT: Duration = Duration::from_secs(60);
/// A server is quiet when it used less than this share of a core over [`QUIET_SAMPLE`].
const QUIET_CORES: f64 = 0.03;
const QUIET_SAMPLE: Duration = Duration::from_millis(500);
/// How long to wait for the servers to fall quiet before a storm (it is measured anyway): the first
/// wait includes the projectors catching up with the fill.
const QUIET_TIMEOUT: Duration = Duration::from_secs(180);
/// Bytes read from a socket at once.
const READ_BUFFER: usize = 4096;

/// What to fill and how to storm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StormSpec {
    pub rooms: usize,
    /// Messages posted by the fill, round-robin over the rooms.
    pub messages: usize,
    /// Clients per storm, spread evenly over the rooms.
    pub clients: usize,
    /// Messages each resuming client missed (and must get).
    pub backlog: usize,
    pub rounds: usize,
    /// Clients connecting at once at most (each holds its place until it has its backlog);
    /// `None`: all of them.
    #[serde(default)]
    pub at_once: Option<usize>,
}

/// A publish-server under test.
#[derive(Clone)]
pub struct Server {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    pub api: Api,
}

/// With cursors (the benchmark) or without (the control).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Resume,
    Fresh,
}

/// What the fill did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FillResult {
    pub rooms: usize,
    pub messages_posted: u64,
    pub post_failures: u64,
    pub fill_secs: f64,
    /// Message events each server's listeners saw.
    pub seen: BTreeMap<String, u64>,
    /// Records in each partition (its highest message offset seen + 1): above the resume buffer,
    /// the buffer is full.
    pub records_per_partition: BTreeMap<i32, i64>,
}

/// One storm.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StormResult {
    pub server: String,
    pub mode: Option<Mode>,
    pub round: usize,
    pub clients: usize,
    /// Clients that got exactly what they should: their backlog (resume) or the stream's first
    /// event (fresh).
    pub complete: usize,
    /// Clients that could not connect, got another status, or saw their stream end.
    pub failed: usize,
    /// Clients that got a reset or a backlog of another size.
    pub wrong: usize,
    pub first_error: Option<String>,
    /// From the first connect to the last client's last backlog event.
    pub window_secs: f64,
    pub server_cpu_seconds: Option<f64>,
    /// Server CPU over the window per client, in µs.
    pub cpu_us_per_client: Option<f64>,
    /// This harness's own CPU over the window (it shares the cores).
    pub harness_cpu_seconds: Option<f64>,
    /// `hotchat_sse_events_delivered_total` over the storm (backlog events, by the server's count).
    pub delivered_server: f64,
    /// Connections the kernel turned away because an accept queue was full (`ListenOverflows` in
    /// `/proc/net/netstat`, for the whole host) during the storm: each costs its client a SYN
    /// retransmission, 1 s later.
    pub listen_overflows: Option<u64>,
    /// Per client: connect → response head.
    pub head: Latency,
    /// Per client: connect → its last backlog event (fresh: its first event).
    pub done: Latency,
}

/// Medians over the rounds of one server and mode.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub server: String,
    pub mode: Option<Mode>,
    pub rounds: usize,
    pub window_secs: f64,
    pub cpu_us_per_client: f64,
    pub head_p50_ms: f64,
    pub head_p99_ms: f64,
    pub done_p50_ms: f64,
    pub done_p99_ms: f64,
    /// Over every round: clients complete, failed, wrong.
    pub complete: usize,
    pub failed: usize,
    pub wrong: usize,
}

/// The first server against the last (before against after), from the medians.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Comparison {
    pub before: String,
    pub after: String,
    /// Server CPU per resuming client, µs.
    pub cpu_us_per_resume: (f64, f64),
    pub cpu_ratio: f64,
    /// Resume − fresh: what the resume itself costs per client, µs.
    pub resume_only_us: (f64, f64),
    pub window_secs: (f64, f64),
    pub window_ratio: f64,
    pub done_p99_ms: (f64, f64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResumeResult {
    pub spec: StormSpec,
    pub fill: FillResult,
    pub storms: Vec<StormResult>,
    pub summaries: Vec<Summary>,
    pub comparison: Option<Comparison>,
}

/// A room and the cursor its clients resume from.
struct Room {
    id: String,
    cursor: String,
}

/// Fills the servers' resume buffers, then storms them `spec.rounds` times in each mode.
pub async fn run(chat: &Api, servers: &[Server], spec: &StormSpec) -> anyhow::Result<ResumeResult> {
    if servers.is_empty() {
        bail!("no publish-server to storm");
    }
    let (rooms, fill) = fill(chat, servers, spec).await?;
    eprintln!(
        "  resume fill: {} messages in {} rooms in {:.1} s; records per partition {:?}",
        fill.messages_posted, fill.rooms, fill.fill_secs, fill.records_per_partition
    );
    let rooms = Arc::new(rooms);
    let mut storms = Vec::new();
    for round in 1..=spec.rounds {
        // Alternate the order, so a drift of the machine does not favour one server or mode.
        let mut order: Vec<(usize, Mode)> = [Mode::Resume, Mode::Fresh]
            .into_iter()
            .flat_map(|mode| (0..servers.len()).map(move |s| (s, mode)))
            .collect();
        if round % 2 == 0 {
            order.reverse();
        }
        for (s, mode) in order {
            let server = &servers[s];
            settle(servers).await;
            let result = storm(server, &rooms, mode, spec, round).await;
            eprintln!(
                "  resume storm {:>7} {:<6} round {round}: {}/{} complete, {} failed, {} wrong; {:.2} s; cpu {:.2} s = {:.0} µs/client; head p50 {:.1} p99 {:.1} ms; backlog p50 {:.1} p99 {:.1} ms; {} listen overflows",
                server.name,
                mode_name(mode),
                result.complete,
                result.clients,
                result.failed,
                result.wrong,
                result.window_secs,
                result.server_cpu_seconds.unwrap_or(f64::NAN),
                result.cpu_us_per_client.unwrap_or(f64::NAN),
                result.head.p50_ms,
                result.head.p99_ms,
                result.done.p50_ms,
                result.done.p99_ms,
                result
                    .listen_overflows
                    .map_or("?".to_owned(), |n| n.to_string()),
            );
            if let Some(e) = &result.first_error {
                eprintln!("    the first failure: {e}");
            }
            storms.push(result);
        }
    }
    let summaries: Vec<Summary> = servers
        .iter()
        .flat_map(|server| {
            [Mode::Resume, Mode::Fresh]
                .into_iter()
                .map(|mode| summarise(&server.name, mode, &storms))
        })
        .collect();
    let comparison = match servers {
        [first, .., last] => Some(compare(&first.name, &last.name, &summaries)),
        _ => None,
    };
    Ok(ResumeResult {
        spec: spec.clone(),
        fill,
        storms,
        summaries,
        comparison,
    })
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Resume => "resume",
        Mode::Fresh => "fresh",
    }
}

/// Creates the rooms, posts the messages with a listener per room on every server, and picks each
/// room's cursor from what the first server's listener saw.
async fn fill(
    chat: &Api,
    servers: &[Server],
    spec: &StormSpec,
) -> anyhow::Result<(Vec<Room>, FillResult)> {
    let started = Instant::now();
    let mut tokens = Vec::new();
    for i in 0..POSTERS {
        tokens.push(chat.sign_in(&format!("resume-{i}")).await?);
    }
    let created: Vec<anyhow::Result<String>> = futures::stream::iter(0..spec.rooms)
        .map(|i| {
            let (chat, token) = (chat.clone(), tokens[i % POSTERS].clone());
            async move { chat.create_room(&token, &format!("resume {i}")).await }
        })
        .buffered(CREATES_IN_FLIGHT)
        .collect()
        .await;
    let room_ids = created.into_iter().collect::<anyhow::Result<Vec<_>>>()?;

    let (stop, stopped) = watch::channel(false);
    let mut listeners: Vec<Vec<JoinHandle<anyhow::Result<Vec<String>>>>> = Vec::new();
    let mut seen: Vec<Arc<AtomicU64>> = Vec::new();
    let connected = Arc::new(AtomicUsize::new(0));
    for server in servers {
        let counter = Arc::new(AtomicU64::new(0));
        listeners.push(
            room_ids
                .iter()
                .map(|room| {
                    tokio::spawn(listen(
                        server.addr,
                        room.clone(),
                        counter.clone(),
                        connected.clone(),
                        stopped.clone(),
                    ))
                })
                .collect(),
        );
        seen.push(counter);
    }
    let wanted = servers.len() * room_ids.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::Relaxed) < wanted {
        if Instant::now() > deadline {
            bail!(
                "only {} of {wanted} listeners connected in 60 s",
                connected.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let posted: Vec<bool> = futures::stream::iter(0..spec.messages)
        .map(|i| {
            let (chat, token) = (chat.clone(), tokens[i % POSTERS].clone());
            let room = room_ids[i % room_ids.len()].clone();
            async move {
                chat.post_message(&token, &room, &format!("resume storm message {i}"))
                    .await
                    .is_ok()
            }
        })
        .buffer_unordered(POSTS_IN_FLIGHT)
        .collect()
        .await;
    let messages_posted = posted.iter().filter(|ok| **ok).count() as u64;
    let deadline = Instant::now() + FILL_DRAIN_TIMEOUT;
    while seen
        .iter()
        .any(|c| c.load(Ordering::Relaxed) < messages_posted)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);

    let mut cursors: Vec<Vec<String>> = Vec::new();
    for (s, handles) in listeners.into_iter().enumerate() {
        for (r, handle) in handles.into_iter().enumerate() {
            let ids = handle
                .await
                .context("a listener panicked")?
                .with_context(|| format!("listening to room {} on {}", r, servers[s].name))?;
            if s == 0 {
                cursors.push(ids);
            }
        }
    }
    let mut records_per_partition = BTreeMap::new();
    for id in cursors.iter().flatten() {
        if let Some((partition, offset)) = parse_cursor(id) {
            let records = records_per_partition.entry(partition).or_insert(0);
            *records = (*records).max(offset + 1);
        }
    }
    let rooms = room_ids
        .into_iter()
        .zip(cursors)
        .map(|(id, ids)| {
            let Some(at) = ids.len().checked_sub(spec.backlog + 1) else {
                bail!(
                    "room {id} has {} messages, fewer than a backlog of {} needs",
                    ids.len(),
                    spec.backlog
                );
            };
            Ok(Room {
                id,
                cursor: ids[at].clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let fill = FillResult {
        rooms: rooms.len(),
        messages_posted,
        post_failures: spec.messages as u64 - messages_posted,
        fill_secs: started.elapsed().as_secs_f64(),
        seen: servers
            .iter()
            .zip(&seen)
            .map(|(server, c)| (server.name.clone(), c.load(Ordering::Relaxed)))
            .collect(),
        records_per_partition,
    };
    if fill.seen.values().any(|&n| n < messages_posted) {
        bail!(
            "the listeners saw {:?} of {messages_posted} messages",
            fill.seen
        );
    }
    Ok((rooms, fill))
}

/// `partition-offset`.
fn parse_cursor(id: &str) -> Option<(i32, i64)> {
    let (partition, offset) = id.split_once('-')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

/// Listens to `room` until stopped; returns the cursors of the message events, in order. A room
/// the server has not heard of yet (404) is asked for again.
async fn listen(
    addr: SocketAddr,
    room: String,
    seen: Arc<AtomicU64>,
    connected: Arc<AtomicUsize>,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut stream, mut pending) = loop {
        let mut stream = TcpStream::connect(addr).await?;
        match sse::request_events(&mut stream, addr, &room, None).await {
            Ok(rest) => break (stream, rest),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    connected.fetch_add(1, Ordering::Relaxed);
    let (mut decoder, mut splitter) = (ChunkedDecoder::default(), EventSplitter::default());
    let (mut body, mut buffer) = (Vec::new(), vec![0u8; READ_BUFFER]);
    let mut ids = Vec::new();
    loop {
        body.clear();
        if decoder.feed(&pending, &mut body).is_err() {
            bail!("a bad chunk in room {room}'s stream");
        }
        pending.clear();
        let before = ids.len();
        splitter.feed(&body, |event| {
            if sse::event_type(event) == b"message"
                && let Some(id) = sse::event_id(event)
            {
                ids.push(String::from_utf8_lossy(id).into_owned());
            }
        });
        seen.fetch_add((ids.len() - before) as u64, Ordering::Relaxed);
        tokio::select! {
            _ = stopped.changed() => return Ok(ids),
            read = stream.read(&mut buffer) => match read {
                Ok(n) if n > 0 => pending.extend_from_slice(&buffer[..n]),
                _ => bail!("room {room}'s stream ended during the fill"),
            },
        }
    }
}

/// Waits until every server has no streams open and uses next to no CPU (up to
/// [`QUIET_TIMEOUT`]): the storm of one must not share the cores with another's projector or
/// teardown.
async fn settle(servers: &[Server]) {
    let deadline = Instant::now() + QUIET_TIMEOUT;
    while Instant::now() < deadline {
        let mut quiet = true;
        for server in servers {
            let clients = match server.api.metrics().await {
                Ok(text) => prom::sum(&text, "hotchat_sse_clients", &[]),
                Err(_) => f64::NAN,
            };
            quiet &= clients == 0.0;
        }
        let before: Vec<_> = servers
            .iter()
            .map(|s| procstat::maybe_sample(s.pid))
            .collect();
        tokio::time::sleep(QUIET_SAMPLE).await;
        for (server, a) in servers.iter().zip(before) {
            if let (Some(a), Some(b)) = (a, procstat::maybe_sample(server.pid)) {
                let cores = (b.cpu_seconds - a.cpu_seconds) / QUIET_SAMPLE.as_secs_f64();
                quiet &= cores < QUIET_CORES;
            }
        }
        if quiet {
            return;
        }
    }
    eprintln!("  the publish-servers did not fall quiet; measuring anyway");
}

/// What one client of a storm saw.
#[derive(Default)]
struct Outcome {
    /// Connect → response head, µs.
    head_us: Option<u64>,
    /// Connect → done (its backlog, or its first event), µs.
    done_us: Option<u64>,
    /// Storm start → done, µs.
    done_at_us: Option<u64>,
    messages: usize,
    reset: bool,
    error: Option<String>,
}

/// Connects `clients` at once to `server`; see the module docs.
async fn storm(
    server: &Server,
    rooms: &Arc<Vec<Room>>,
    mode: Mode,
    spec: &StormSpec,
    round: usize,
) -> StormResult {
    let delivered = |text: anyhow::Result<String>| {
        text.map(|t| prom::sum(&t, "hotchat_sse_events_delivered_total", &[]))
            .unwrap_or(f64::NAN)
    };
    let delivered_before = delivered(server.api.metrics().await);
    let (stop, stopped) = watch::channel(false);
    let overflows_before = listen_overflows();
    let harness_before = procstat::maybe_sample(Some(std::process::id()));
    let cpu_before = procstat::maybe_sample(server.pid);
    let gate = spec.at_once.map(|n| Arc::new(Semaphore::new(n.max(1))));
    let storming = Arc::new(Storming {
        addr: server.addr,
        backlog: spec.backlog,
        start: Instant::now(),
        finished: AtomicUsize::new(0),
    });
    // Every client is its own task, spawned in one go: the storm is not paced (unless `at_once`).
    let clients: Vec<JoinHandle<Outcome>> = (0..spec.clients)
        .map(|j| {
            let (room, storming) = (rooms.clone(), storming.clone());
            let (stopped, gate) = (stopped.clone(), gate.clone());
            tokio::spawn(async move {
                let room = &room[j % room.len()];
                let cursor = (mode == Mode::Resume).then_some(room.cursor.as_str());
                let permit = match gate {
                    Some(gate) => gate.acquire_owned().await.ok(),
                    None => None,
                };
                client(&storming, &room.id, cursor, stopped, permit).await
            })
        })
        .collect();
    while storming.finished.load(Ordering::Relaxed) < spec.clients
        && storming.start.elapsed() < STORM_TIMEOUT
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu_after = procstat::maybe_sample(server.pid);
    let harness_after = procstat::maybe_sample(Some(std::process::id()));
    let overflows_after = listen_overflows();
    let delivered_after = delivered(server.api.metrics().await);
    let _ = stop.send(true);

    let mut outcomes = Vec::with_capacity(clients.len());
    for task in clients {
        outcomes.push(task.await.unwrap_or_else(|e| Outcome {
            error: Some(format!("the client panicked: {e}")),
            ..Outcome::default()
        }));
    }
    let expected = match mode {
        Mode::Resume => spec.backlog,
        Mode::Fresh => 0,
    };
    let (mut complete, mut failed, mut wrong) = (0, 0, 0);
    let mut first_error = None;
    for outcome in &outcomes {
        if let Some(e) = &outcome.error {
            failed += 1;
            first_error.get_or_insert_with(|| e.clone());
        } else if outcome.reset || outcome.messages != expected || outcome.done_us.is_none() {
            wrong += 1;
            first_error.get_or_insert_with(|| {
                format!(
                    "a client got {} messages (expected {expected}){}",
                    outcome.messages,
                    if outcome.reset { " and a reset" } else { "" }
                )
            });
        } else {
            complete += 1;
        }
    }
    let window_secs = outcomes
        .iter()
        .filter_map(|o| o.done_at_us)
        .max()
        .map_or(STORM_TIMEOUT.as_secs_f64(), |us| us as f64 / 1e6);
    let server_cpu_seconds = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) => Some(b.cpu_seconds - a.cpu_seconds),
        _ => None,
    };
    let mut heads: Vec<u64> = outcomes.iter().filter_map(|o| o.head_us).collect();
    let mut dones: Vec<u64> = outcomes.iter().filter_map(|o| o.done_us).collect();
    StormResult {
        server: server.name.clone(),
        mode: Some(mode),
        round,
        clients: spec.clients,
        complete,
        failed,
        wrong,
        first_error,
        window_secs,
        server_cpu_seconds,
        cpu_us_per_client: server_cpu_seconds.map(|s| s * 1e6 / spec.clients as f64),
        harness_cpu_seconds: match (harness_before, harness_after) {
            (Some(a), Some(b)) => Some(b.cpu_seconds - a.cpu_seconds),
            _ => None,
        },
        delivered_server: delivered_after - delivered_before,
        listen_overflows: overflows_before
            .zip(overflows_after)
            .map(|(a, b)| b.saturating_sub(a)),
        head: Latency::from_micros(&mut heads),
        done: Latency::from_micros(&mut dones),
    }
}

/// The host's `TcpExt: ListenOverflows` so far.
fn listen_overflows() -> Option<u64> {
    netstat_value(
        &std::fs::read_to_string("/proc/net/netstat").ok()?,
        "TcpExt",
        "ListenOverflows",
    )
}

/// A counter of `/proc/net/netstat`: a line of names and a line of values per group.
fn netstat_value(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|line| line.starts_with(&prefix));
    let names = lines.next()?.split_whitespace().skip(1);
    let values = lines.next()?.split_whitespace().skip(1);
    names
        .zip(values)
        .find(|(n, _)| *n == name)
        .and_then(|(_, v)| v.parse().ok())
}

/// What every client of a storm shares.
struct Storming {
    addr: SocketAddr,
    /// Messages a resuming client must get.
    backlog: usize,
    start: Instant,
    /// Clients done: with what they should get, or failed.
    finished: AtomicUsize,
}

/// One client of a storm: connects, asks for the stream (after `cursor` when given), reads until
/// it has `backlog` messages (without a cursor: its first event), tells `finished` (and gives up
/// its `permit`), and keeps the stream open, still counting, until the storm is over.
async fn client(
    storming: &Storming,
    room: &str,
    cursor: Option<&str>,
    mut stopped: watch::Receiver<bool>,
    mut permit: Option<OwnedSemaphorePermit>,
) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome::default();
    let micros = |since: Instant| since.elapsed().as_micros() as u64;
    let (addr, finished) = (storming.addr, &storming.finished);
    let opened = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let rest = sse::request_events(&mut stream, addr, room, cursor).await?;
        anyhow::Ok((stream, rest))
    };
    let (mut stream, mut pending) = match opened.await {
        Ok(opened) => opened,
        Err(e) => {
            outcome.error = Some(format!("{e:#}"));
            finished.fetch_add(1, Ordering::Relaxed);
            return outcome;
        }
    };
    outcome.head_us = Some(micros(started));
    let (mut decoder, mut splitter) = (ChunkedDecoder::default(), EventSplitter::default());
    let (mut body, mut buffer) = (Vec::new(), vec![0u8; READ_BUFFER]);
    let mut events = 0;
    loop {
        body.clear();
        if decoder.feed(&pending, &mut body).is_err() {
            outcome.error = Some("a bad chunk".to_owned());
            break;
        }
        pending.clear();
        splitter.feed(&body, |event| {
            events += 1;
            // A message has a cursor; the `retry:` hint and keep-alive comments have none.
            match sse::event_type(event) {
                b"message" if sse::event_id(event).is_some() => outcome.messages += 1,
                b"reset" => outcome.reset = true,
                _ => {}
            }
        });
        let done = match cursor {
            Some(_) => outcome.messages >= storming.backlog || outcome.reset,
            None => events > 0,
        };
        if done && outcome.done_us.is_none() {
            outcome.done_us = Some(micros(started));
            outcome.done_at_us = Some(micros(storming.start));
            finished.fetch_add(1, Ordering::Relaxed);
            permit.take();
        }
        tokio::select! {
            _ = stopped.changed() => return outcome,
            read = stream.read(&mut buffer) => match read {
                Ok(n) if n > 0 => pending.extend_from_slice(&buffer[..n]),
                _ => {
                    outcome.error = Some("the stream ended".to_owned());
                    break;
                }
            },
        }
    }
    if outcome.done_us.is_none() {
        finished.fetch_add(1, Ordering::Relaxed);
    }
    outcome
}

/// The median of `values` (the lower middle for an even count); NaN when empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

fn summarise(server: &str, mode: Mode, storms: &[StormResult]) -> Summary {
    let mine: Vec<&StormResult> = storms
        .iter()
        .filter(|s| s.server == server && s.mode == Some(mode))
        .collect();
    let med = |f: &dyn Fn(&StormResult) -> f64| {
        median(&mut mine.iter().map(|s| f(s)).collect::<Vec<_>>())
    };
    Summary {
        server: server.to_owned(),
        mode: Some(mode),
        rounds: mine.len(),
        window_secs: med(&|s| s.window_secs),
        cpu_us_per_client: med(&|s| s.cpu_us_per_client.unwrap_or(f64::NAN)),
        head_p50_ms: med(&|s| s.head.p50_ms),
        head_p99_ms: med(&|s| s.head.p99_ms),
        done_p50_ms: med(&|s| s.done.p50_ms),
        done_p99_ms: med(&|s| s.done.p99_ms),
        complete: mine.iter().map(|s| s.complete).sum(),
        failed: mine.iter().map(|s| s.failed).sum(),
        wrong: mine.iter().map(|s| s.wrong).sum(),
    }
}

fn compare(before: &str, after: &str, summaries: &[Summary]) -> Comparison {
    let find = |server: &str, mode| {
        summaries
            .iter()
            .find(|s| s.server == server && s.mode == Some(mode))
            .cloned()
            .unwrap_or_default()
    };
    let (b, a) = (find(before, Mode::Resume), find(after, Mode::Resume));
    let (bf, af) = (find(before, Mode::Fresh), find(after, Mode::Fresh));
    Comparison {
        before: before.to_owned(),
        after: after.to_owned(),
        cpu_us_per_resume: (b.cpu_us_per_client, a.cpu_us_per_client),
        cpu_ratio: b.cpu_us_per_client / a.cpu_us_per_client,
        resume_only_us: (
            b.cpu_us_per_client - bf.cpu_us_per_client,
            a.cpu_us_per_client - af.cpu_us_per_client,
        ),
        window_secs: (b.window_secs, a.window_secs),
        window_ratio: b.window_secs / a.window_secs,
        done_p99_ms: (b.done_p99_ms, a.done_p99_ms),
    }
}

/// The summary as Markdown: a table of medians and, for two servers, the comparison.
pub fn markdown(result: &ResumeResult) -> String {
    let spec = &result.spec;
    let mut out = format!(
        "### Resume storm\n\n{} clients {} over {} rooms, each resuming {} messages back \
         (fresh: no cursor); buffers filled with {} messages, records per partition {:?}; \
         medians of {} rounds.\n\n",
        spec.clients,
        spec.at_once.map_or("at once".to_owned(), |n| format!(
            "({n} connecting at once at most)"
        )),
        spec.rooms,
        spec.backlog,
        result.fill.messages_posted,
        result
            .fill
            .records_per_partition
            .values()
            .collect::<Vec<_>>(),
        spec.rounds,
    );
    out.push_str(
        "| server | storm | all served in | server CPU | CPU per client | head p50 / p99 | backlog p50 / p99 | complete / failed / wrong |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in &result.summaries {
        out.push_str(&format!(
            "| {} | {} | {:.2} s | {:.2} s | {:.0} µs | {:.1} / {:.1} ms | {:.1} / {:.1} ms | {} / {} / {} |\n",
            s.server,
            s.mode.map_or("?", mode_name),
            s.window_secs,
            s.cpu_us_per_client * spec.clients as f64 / 1e6,
            s.cpu_us_per_client,
            s.head_p50_ms,
            s.head_p99_ms,
            s.done_p50_ms,
            s.done_p99_ms,
            s.complete,
            s.failed,
            s.wrong,
        ));
    }
    if let Some(c) = &result.comparison {
        out.push_str(&format!(
            "\nCPU per resume: {} {:.0} µs, {} {:.0} µs: **{:.1}×**. The resume alone (resume − fresh): \
             {:.0} µs and {:.0} µs. All {} served in {:.2} s and {:.2} s ({:.1}×); backlog p99 {:.1} and {:.1} ms.\n",
            c.before,
            c.cpu_us_per_resume.0,
            c.after,
            c.cpu_us_per_resume.1,
            c.cpu_ratio,
            c.resume_only_us.0,
            c.resume_only_us.1,
            spec.clients,
            c.window_secs.0,
            c.window_secs.1,
            c.window_ratio,
            c.done_p99_ms.0,
            c.done_p99_ms.1,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_lower_middle() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.0);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn a_netstat_counter_is_read_from_its_groups_two_lines() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 3 1471 1480\n\
                    IpExt: InNoRoutes\n\
                    IpExt: 0\n";
        assert_eq!(netstat_value(text, "TcpExt", "ListenOverflows"), Some(1471));
        assert_eq!(netstat_value(text, "IpExt", "InNoRoutes"), Some(0));
        assert_eq!(netstat_value(text, "TcpExt", "Nope"), None);
    }

    #[test]
    fn a_cursor_is_partition_dash_offset() {
        assert_eq!(parse_cursor("3-10417"), Some((3, 10_417)));
        assert_eq!(parse_cursor("x-1"), None);
        assert_eq!(parse_cursor("12"), None);
    }
}
