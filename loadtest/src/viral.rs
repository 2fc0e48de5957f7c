//! The viral room's readers, in a process of their own at low priority.
//!
//! The isolation phases ([`crate::isolation`]) ask whether a viral room delays the other rooms'
//! deliveries. Read in the harness's own process, the viral room's streams (300,000 deliveries a
//! second) would share its runtime and its priority with the other rooms' readers, and a slower
//! p99 beside the viral room could be the load generator's as well as the server's. So the fan-out
//! binary starts itself again as `nice -n 15 <exe> viral-readers ...`: when the cores are short,
//! the kernel serves the servers and the other rooms' readers first, and any delay the viral
//! room's reading causes falls on the viral room's own figures.
//!
//! The parent ([`ViralReaders`]) gives its orders on the child's stdin, one JSON line each, and
//! reads one JSON line of answer from its stdout; the child ([`serve`]) reads its streams into a
//! [`Shared`] of its own, as the parent's readers do. Latency needs one clock for the stamp and the
//! read: the child is told the wall-clock time of the parent's clock origin and finds the same
//! origin on its own monotonic clock ([`unix_micros_of`], [`instant_at`]).

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, bail};
use clap::Parser;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::watch,
    task::JoinHandle,
};

use crate::{
    fanout::{self, Shared},
    stats::Latency,
};

/// The first argument that makes the fan-out binary the viral room's readers.
pub const READERS_COMMAND: &str = "viral-readers";
/// The readers' niceness: well below the servers and the other rooms' readers (0).
const NICENESS: &str = "15";

/// The child's command line, after [`READERS_COMMAND`].
#[derive(Debug, Parser)]
#[command(name = READERS_COMMAND)]
pub struct ReadersArgs {
    /// publish-server address the streams connect to.
    #[arg(long)]
    publish: SocketAddr,
    /// The viral room's id.
    #[arg(long)]
    room: String,
    /// Phases the deliveries are counted for (numbered from 1; 0 is before the first).
    #[arg(long)]
    phases: usize,
    /// The parent's clock origin, in µs since the Unix epoch.
    #[arg(long)]
    clock_unix_us: u64,
}

impl ReadersArgs {
    /// The readers' arguments when this process was started as them (`<exe> viral-readers ...`).
    pub fn from_env() -> Option<Self> {
        let mut args = std::env::args_os().skip(1);
        (args.next()? == READERS_COMMAND)
            .then(|| Self::parse_from(std::iter::once(READERS_COMMAND.into()).chain(args)))
    }
}

/// An order from the parent, one JSON line on the child's stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "order", rename_all = "snake_case")]
enum Order {
    /// Open streams until `streams` are open.
    Open { streams: usize },
    /// Count the deliveries from now on for `phase`.
    Phase { phase: usize },
    /// Wait until `phase` has `expected` deliveries, or `ms` milliseconds, then tell them.
    Count {
        phase: usize,
        expected: u64,
        ms: u64,
    },
    /// Close every stream and end.
    Stop,
}

/// The child's answer to an order, one JSON line on its stdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
enum Answer {
    Opened {
        opened: usize,
        failures: usize,
        open: usize,
    },
    Counting,
    Counted {
        received: u64,
        latency: Latency,
    },
    Stopped,
}

/// The viral room's readers, seen from the parent: a child process that reads the room's streams.
pub(crate) struct ViralReaders {
    child: Child,
    orders: ChildStdin,
    answers: Lines<BufReader<ChildStdout>>,
}

impl ViralReaders {
    /// Starts this binary as the readers of `room`, niced, counting for `phases` phases on the
    /// clock whose origin is `clock`. The binary must hand [`READERS_COMMAND`] to [`serve`].
    pub(crate) fn spawn(
        publish: SocketAddr,
        room: &str,
        phases: usize,
        clock: Instant,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let mut child = Command::new("nice")
            .args(["-n", NICENESS])
            .arg(exe)
            .arg(READERS_COMMAND)
            .args(["--publish", &publish.to_string()])
            .args(["--room", room])
            .args(["--phases", &phases.to_string()])
            .args(["--clock-unix-us", &unix_micros_of(clock).to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the viral room's readers (nice -n 15)")?;
        let orders = child.stdin.take().context("the readers' stdin")?;
        let answers = BufReader::new(child.stdout.take().context("the readers' stdout")?).lines();
        Ok(Self {
            child,
            orders,
            answers,
        })
    }

    /// Opens streams until `streams` are open; returns how many opened now and how many failed.
    pub(crate) async fn open(&mut self, streams: usize) -> anyhow::Result<(usize, usize)> {
        match self.ask(&Order::Open { streams }).await? {
            Answer::Opened {
                opened, failures, ..
            } => Ok((opened, failures)),
            other => bail!("the viral room's readers answered {other:?} to an open"),
        }
    }

    /// Counts the deliveries from now on for `phase`.
    pub(crate) async fn start_phase(&mut self, phase: usize) -> anyhow::Result<()> {
        match self.ask(&Order::Phase { phase }).await? {
            Answer::Counting => Ok(()),
            other => bail!("the viral room's readers answered {other:?} to a phase"),
        }
    }

    /// Waits until `phase` has `expected` deliveries, or `until`; returns its deliveries and their
    /// post → SSE latency.
    pub(crate) async fn count(
        &mut self,
        phase: usize,
        expected: u64,
        until: Instant,
    ) -> anyhow::Result<(u64, Latency)> {
        let ms = until.saturating_duration_since(Instant::now()).as_millis() as u64;
        let order = Order::Count {
            phase,
            expected,
            ms,
        };
        match self.ask(&order).await? {
            Answer::Counted { received, latency } => Ok((received, latency)),
            other => bail!("the viral room's readers answered {other:?} to a count"),
        }
    }

    /// Closes the streams and waits for the process to end.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        self.ask(&Order::Stop).await?;
        let status = self.child.wait().await?;
        anyhow::ensure!(
            status.success(),
            "the viral room's readers failed: {status}"
        );
        Ok(())
    }

    async fn ask(&mut self, order: &Order) -> anyhow::Result<Answer> {
        let mut line = serde_json::to_vec(order)?;
        line.push(b'\n');
        self.orders
            .write_all(&line)
            .await
            .context("ordering the viral room's readers")?;
        let answer = self
            .answers
            .next_line()
            .await
            .context("reading the viral room's readers")?
            .context("the viral room's readers ended")?;
        serde_json::from_str(&answer)
            .with_context(|| format!("the viral room's readers answered {answer:?}"))
    }
}

/// The child: reads the viral room's streams and answers the parent's orders until told to stop
/// (or until its stdin closes: the parent is gone).
pub async fn serve(args: ReadersArgs) -> anyhow::Result<()> {
    let shared = Shared::with_clock(args.phases, instant_at(args.clock_unix_us));
    let rooms = [args.room];
    let (stop, stopped) = watch::channel(false);
    let mut streams: Vec<JoinHandle<()>> = Vec::new();
    let mut orders = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    while let Some(line) = orders.next_line().await? {
        let order: Order =
            serde_json::from_str(&line).with_context(|| format!("reading the order {line:?}"))?;
        let answer = match order {
            Order::Open { streams: wanted } => {
                let first = streams.len();
                let opened = fanout::open_subscribers(
                    args.publish,
                    &rooms,
                    first..wanted.max(first),
                    &[],
                    &shared,
                    &stopped,
                )
                .await;
                let count = opened.tasks.len();
                streams.extend(opened.tasks.into_iter().map(|(_, task)| task));
                Answer::Opened {
                    opened: count,
                    failures: opened.failures,
                    open: streams.len(),
                }
            }
            Order::Phase { phase } => {
                shared.start_phase(phase);
                Answer::Counting
            }
            Order::Count {
                phase,
                expected,
                ms,
            } => count(&shared, phase, expected, ms).await,
            Order::Stop => break,
        };
        answer_with(&mut out, &answer).await?;
    }
    let _ = stop.send(true);
    for stream in streams {
        let _ = stream.await;
    }
    answer_with(&mut out, &Answer::Stopped).await
}

async fn count(shared: &Arc<Shared>, phase: usize, expected: u64, ms: u64) -> Answer {
    let until = Instant::now() + Duration::from_millis(ms);
    shared.wait_for(phase, expected, until).await;
    Answer::Counted {
        received: shared.received(phase),
        latency: shared.latency(phase),
    }
}

async fn answer_with(out: &mut tokio::io::Stdout, answer: &Answer) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(answer)?;
    line.push(b'\n');
    out.write_all(&line).await?;
    out.flush().await?;
    Ok(())
}

/// The wall-clock time of `origin`, in µs since the Unix epoch: what another process needs to
/// find the same instant on its own monotonic clock.
fn unix_micros_of(origin: Instant) -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    wall.saturating_sub(origin.elapsed()).as_micros() as u64
}

/// The instant whose wall-clock time was `unix_micros` (on this machine's clock, read once: the
/// run is too short for the wall clock's slewing to matter); now, if that is in the future or
/// before the monotonic clock began.
fn instant_at(unix_micros: u64) -> Instant {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ago = wall.saturating_sub(Duration::from_micros(unix_micros));
    let now = Instant::now();
    now.checked_sub(ago).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_origin_survives_the_trip_through_the_wall_clock() {
        let origin = Instant::now() - Duration::from_secs(3);
        let found = instant_at(unix_micros_of(origin));
        let apart = found
            .saturating_duration_since(origin)
            .max(origin.saturating_duration_since(found));
        assert!(apart < Duration::from_millis(1), "{apart:?} apart");
    }

    #[test]
    fn an_origin_in_the_future_is_now() {
        let later = unix_micros_of(Instant::now()) + 60_000_000;
        assert!(instant_at(later) <= Instant::now());
    }

    #[test]
    fn orders_and_answers_are_one_json_line_each() {
        let order = Order::Count {
            phase: 2,
            expected: 2_400_000,
            ms: 5_000,
        };
        let line = serde_json::to_string(&order).expect("an order");
        assert_eq!(
            line,
            r#"{"order":"count","phase":2,"expected":2400000,"ms":5000}"#
        );
        assert_eq!(serde_json::from_str::<Order>(&line).ok(), Some(order));
        let answer = Answer::Counted {
            received: 7,
            latency: Latency::default(),
        };
        let line = serde_json::to_string(&answer).expect("an answer");
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Answer>(&line).ok(), Some(answer));
    }

    #[test]
    fn the_readers_command_line_is_what_spawn_passes() {
        let args = ReadersArgs::try_parse_from([
            READERS_COMMAND,
            "--publish",
            "127.0.0.1:8081",
            "--room",
            "r1",
            "--phases",
            "2",
            "--clock-unix-us",
            "1700000000000000",
        ])
        .expect("the readers' arguments");
        assert_eq!(args.publish.port(), 8081);
        assert_eq!((args.room.as_str(), args.phases), ("r1", 2));
    }
}
