//! A room's taken-over connections, written to by whoever sends the room's frames.
//!
//! When every client keeps up (the common case) a delivery should cost one `writev` and little else.
//! So a connection that has caught up is a [`Member`] of its room's writers: a few words holding its
//! socket and its position in the room's channel. After frames are sent to a room, the sender asks
//! for a pass ([`Writers::write`]): for each member, what its position holds goes out as one chunk,
//! without waiting, and no task is woken. A member whose socket is full is parked: it leaves the
//! writers with what was not written, and its connection's task ([`super::Live::write_to`]) writes
//! that, waiting for room, then joins again. Idle members get their keep-alives from a pass too
//! ([`Writers::keep_alive`]).
//!
//! **No room's writes block another's.** A pass over a viral room's shard writes to hundreds of
//! sockets; nothing else ever waits for it:
//! - A shard's members are touched only by the one pass that holds the shard's [`Turn`]. Nobody else
//!   takes their lock, so no worker thread ever blocks on it. Whoever asks for a pass while one runs
//!   only marks the turn: the running pass goes round once more.
//! - Joining and leaving are handed over, not waited for: a joining connection queues itself in the
//!   shard's arrivals (a lock held for a push) and asks for a pass, which takes it in and writes
//!   whatever came for it since it was parked, so nothing is missed or written twice. A leaving one
//!   marks its [`Handoff`]; the next pass takes it out (and hands it back, if its task wants it back
//!   to end the stream properly). So a viral room's readers catching up after a stall are written
//!   by their room's passes, not by hundreds of tasks of their own ahead of everyone else's.
//! - Keep-alives are a request to the next pass, not a pass of their own over the members.
//! - Small rooms (up to [`INLINE_PASS`] members a shard) are written by the sender itself, smallest
//!   first, before any big room's pass is even asked for. Big rooms' passes run on tasks of their
//!   own, in slices of at most [`SLICE`], yielding between slices and between passes, so the
//!   fan-out goes on at once: a cold room's frames wait for one slice at most, not for a viral
//!   room's whole pass.

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures::task::AtomicWaker;
use tokio::time::Instant;

use super::{Chunk, KEEPALIVE, Next, Reader, Unsent};
use crate::{
    metrics::{AgeTally, Metrics},
    serve::ChunkedStream,
};

/// Shards with at most this many members are written by whoever asks for the pass, at once (a
/// cold room's frames then wait for no task); bigger ones on tasks of their own, in slices.
const INLINE_PASS: usize = 64;
/// The longest a pass writes before it lets other tasks run (a big room's pass is many slices).
const SLICE: Duration = Duration::from_micros(100);

/// The members of one room, in shards that passes write in parallel (one per core), so that a
/// big room's last member does not wait for one core to write to all the others.
pub struct Writers {
    shards: Box<[Arc<Shard>]>,
    /// Set while the room is on the hub's list of rooms with frames not yet passed over.
    pub due: AtomicBool,
}

/// Some of a room's members.
struct Shard {
    /// Locked only by the pass that holds `turn`, so never waited for: a `Mutex` only because
    /// passes run on whichever thread asked for them or on a task.
    members: Mutex<Vec<Member>>,
    /// Connections that joined since the last pass took them in.
    arrivals: Mutex<Vec<Member>>,
    /// Members and arrivals now, read without a lock.
    size: AtomicUsize,
    turn: Turn,
    /// The keep-alive period the next pass must check idle members against, in milliseconds
    /// (0: none asked for).
    keepalive_ms: AtomicU64,
    /// Where the ages of the frames its passes write are counted.
    metrics: Arc<Metrics>,
}

/// Who may pass over a shard: nobody, one pass, or one pass asked to go round again.
///
/// A pass is asked for when frames were sent, a member joined or left, or keep-alives are due.
/// The first to ask gets the turn and runs the pass; anyone asking meanwhile marks it, and the
/// pass goes round once more before giving the turn back, so no request is lost and nobody waits.
#[derive(Default)]
struct Turn(AtomicU8);

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const AGAIN: u8 = 2;

impl Turn {
    /// True if the caller now holds the turn and must run the pass; false if a pass runs and
    /// will go round again.
    fn claim(&self) -> bool {
        let mut state = self.0.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => RUNNING,
                RUNNING => AGAIN,
                _ => return false,
            };
            match self
                .0
                .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return state == IDLE,
                Err(now) => state = now,
            }
        }
    }

    /// Gives the turn back after a pass; true if another pass was asked for meanwhile (the caller
    /// still holds the turn and must run it).
    fn release(&self) -> bool {
        match self
            .0
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => false,
            Err(_) => {
                self.0.store(RUNNING, Ordering::Release);
                true
            }
        }
    }
}

/// A connection written to by its room's passes.
pub struct Member {
    pub reader: Reader,
    pub socket: Arc<ChunkedStream>,
    /// Where it goes back to its task when it leaves the writers.
    pub handoff: Arc<Handoff>,
    pub last_write: Instant,
}

/// Why a member left its room's writers (given to its connection's task).
pub enum Parked {
    /// Its socket was full: the rest of a chunk waits to be written.
    Behind(Member, Unsent),
    /// Its task asked for it back ([`Membership::leave`]).
    Left(Member),
    /// Its stream is over.
    Over(End),
}

pub enum End {
    /// It fell a whole room buffer behind: this is its last frame.
    Lagged(Bytes),
    /// The room's channel closed: the body is ended properly.
    Closed,
    /// The socket failed.
    Failed,
}

/// A member is in its room's writers (or on its way in).
const JOINED: u8 = 0;
/// Its task wants it back.
const LEAVING: u8 = 1;
/// Its task is gone: the member is dropped, not handed back.
const GONE: u8 = 2;

/// Hands a parked member back to its connection's task, and tells passes whether the task still
/// wants it.
#[derive(Default)]
pub struct Handoff {
    /// Boxed: every connection has a handoff, few ever use it.
    parked: Mutex<Option<Box<Parked>>>,
    task: AtomicWaker,
    state: AtomicU8,
}

impl Handoff {
    fn park(&self, parked: Parked) {
        *self.parked.lock().expect("handoff lock") = Some(Box::new(parked));
        if self.state.load(Ordering::SeqCst) == GONE {
            // Nobody will take it, and it holds this handoff: drop it now, or it never is.
            drop(self.take());
        } else {
            self.task.wake();
        }
    }

    /// Ready with the parked member once a pass has parked it (boxed, as it was kept).
    pub fn poll_parked(&self, cx: &mut Context<'_>) -> Poll<Box<Parked>> {
        // Registered before looking, so a park in between still wakes the task.
        self.task.register(cx.waker());
        self.take().map_or(Poll::Pending, Poll::Ready)
    }

    pub fn take(&self) -> Option<Box<Parked>> {
        self.parked.lock().expect("handoff lock").take()
    }
}

/// A task's place in its room's writers. Dropped while the member is in, it takes the member out
/// (by the next pass, which it asks for) without waiting.
pub struct Membership<'a> {
    shard: &'a Arc<Shard>,
    handoff: Arc<Handoff>,
    /// The member came back through the handoff: nothing is left to undo.
    settled: bool,
}

impl Membership<'_> {
    /// Asks for the member back: the next pass hands it over ([`Parked::Left`], or whatever it
    /// parked it for first) through the handoff. Does not wait.
    pub fn leave(&mut self) {
        self.handoff.state.store(LEAVING, Ordering::SeqCst);
        self.shard.write();
    }

    /// The member came back through the handoff.
    pub fn settle(mut self) {
        self.settled = true;
    }
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.handoff.state.store(GONE, Ordering::SeqCst);
        // Parked meanwhile: nobody takes it now (see `Handoff::park`).
        drop(self.handoff.take());
        self.shard.write();
    }
}

/// What writing to one member gave.
enum Outcome {
    /// Everything its position held is written.
    Written,
    /// Its socket is full: this is what is left of the chunk.
    Behind(Unsent),
    Over(End),
}

/// A pass's scratch space: the chunk being written, and the ages of the frames written.
#[derive(Default)]
struct Scratch {
    chunk: Chunk,
    ages: AgeTally,
}

impl Member {
    /// Writes what the member's position in the channel holds, a chunk per
    /// [`super::MAX_COALESCED`] frames, without waiting.
    fn write_ready(&mut self, now: Instant, scratch: &mut Scratch) -> Outcome {
        let chunk = &mut scratch.chunk;
        loop {
            chunk.clear();
            match self.reader.ready(chunk) {
                None => return Outcome::Written,
                // Every frame was one the client had seen.
                Some(Next::Frames) if chunk.parts.is_empty() => {}
                Some(Next::Frames) => {
                    self.reader.metrics.sse_writes.inc();
                    match self.socket.try_write_chunk(&chunk.parts) {
                        Ok(None) => {
                            self.last_write = now;
                            scratch.ages.add(&chunk.stamps, std::time::Instant::now());
                        }
                        Ok(Some(rest)) => {
                            self.reader.metrics.sse_parked.inc();
                            let stamps = std::mem::take(&mut chunk.stamps);
                            return Outcome::Behind(Unsent { rest, stamps });
                        }
                        Err(_) => return Outcome::Over(End::Failed),
                    }
                }
                Some(Next::Lagged(last)) => return Outcome::Over(End::Lagged(last)),
                Some(Next::Closed) => return Outcome::Over(End::Closed),
            }
        }
    }

    /// Writes a keep-alive if nothing was written for `period`.
    fn keep_alive(&mut self, now: Instant, period: Duration) -> Outcome {
        if now.duration_since(self.last_write) < period {
            return Outcome::Written;
        }
        self.reader.metrics.sse_writes.inc();
        match self
            .socket
            .try_write_chunk(&[Bytes::from_static(KEEPALIVE)])
        {
            Ok(None) => {
                self.last_write = now;
                Outcome::Written
            }
            Ok(Some(rest)) => {
                self.reader.metrics.sse_parked.inc();
                Outcome::Behind(Unsent {
                    rest,
                    stamps: Vec::new(),
                })
            }
            Err(_) => Outcome::Over(End::Failed),
        }
    }
}

/// What one pass does, fixed when it starts.
struct Pass {
    now: Instant,
    /// Check idle members against this keep-alive period.
    keepalive: Option<Duration>,
    scratch: Scratch,
}

impl Shard {
    fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            members: Mutex::default(),
            arrivals: Mutex::default(),
            size: AtomicUsize::new(0),
            turn: Turn::default(),
            keepalive_ms: AtomicU64::new(0),
            metrics,
        }
    }

    /// The members, for the pass holding the turn (so never contended).
    fn members(&self) -> MutexGuard<'_, Vec<Member>> {
        self.members.lock().expect("writers lock")
    }

    /// Members now.
    fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Queues `member` for the next pass and asks for one.
    fn join(self: &Arc<Self>, member: Member) {
        member.handoff.state.store(JOINED, Ordering::SeqCst);
        self.size.fetch_add(1, Ordering::Relaxed);
        self.arrivals.lock().expect("arrivals lock").push(member);
        self.write();
    }

    /// Runs a pass: here and now if the shard is small and no pass runs, else on a task of its
    /// own (or by the running pass, going round again).
    fn write(self: &Arc<Self>) {
        if self.size() <= INLINE_PASS {
            self.pass_here();
        } else {
            self.request_pass();
        }
    }

    /// Runs a pass here and now, unless one runs (then it goes round again).
    fn pass_here(self: &Arc<Self>) {
        if !self.turn.claim() {
            return;
        }
        self.whole_pass();
        if self.turn.release() {
            // Asked for again meanwhile, from another thread: that one goes on a task.
            self.spawn_passes();
        }
    }

    /// Runs a pass on a task of its own, so that the sender goes on to other rooms and a big room
    /// can be written on another core. Requests that come while one runs make one more pass.
    fn request_pass(self: &Arc<Self>) {
        if self.turn.claim() {
            self.spawn_passes();
        }
    }

    /// Passes, on a task, for as long as they are asked for (the caller holds the turn). Outside
    /// a runtime (a connection dropped as its runtime shuts down) they run here instead.
    fn spawn_passes(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            loop {
                self.whole_pass();
                if !self.turn.release() {
                    return;
                }
            }
        };
        let shard = self.clone();
        runtime.spawn(async move {
            loop {
                let mut pass = shard.start_pass();
                let mut from = 0;
                while let Some(next) = shard.slice(&mut pass, from, Some(SLICE)) {
                    from = next;
                    tokio::task::yield_now().await;
                }
                if !shard.turn.release() {
                    return;
                }
                // Another pass was asked for: whatever waits to run goes first.
                tokio::task::yield_now().await;
            }
        });
    }

    /// A pass in one slice, without yielding (the caller holds the turn).
    fn whole_pass(&self) {
        let mut pass = self.start_pass();
        let done = self.slice(&mut pass, 0, None);
        debug_assert!(done.is_none(), "a slice without a budget is the whole pass");
    }

    fn start_pass(&self) -> Pass {
        let keepalive = match self.keepalive_ms.swap(0, Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        };
        Pass {
            now: Instant::now(),
            keepalive,
            scratch: Scratch::default(),
        }
    }

    /// Writes to the members from index `from` on, for up to `budget` (all of them without one);
    /// the index to go on from if the budget ran out first. Takes in the arrivals first, and takes
    /// out the members that left or were parked.
    fn slice(&self, pass: &mut Pass, from: usize, budget: Option<Duration>) -> Option<usize> {
        let started = std::time::Instant::now();
        let mut members = self.members();
        members.append(&mut self.arrivals.lock().expect("arrivals lock"));
        let mut i = from;
        let next = loop {
            let Some(member) = members.get_mut(i) else {
                break None;
            };
            let outcome = match member.handoff.state.load(Ordering::SeqCst) {
                JOINED => match member.write_ready(pass.now, &mut pass.scratch) {
                    Outcome::Written => match pass.keepalive {
                        Some(period) => member.keep_alive(pass.now, period),
                        None => Outcome::Written,
                    },
                    outcome => outcome,
                },
                // Taken out below, and handed back or dropped.
                _ => Outcome::Written,
            };
            let state = member.handoff.state.load(Ordering::SeqCst);
            if matches!(outcome, Outcome::Written) && state == JOINED {
                i += 1;
            } else {
                // The last member takes its place: it is visited next.
                let member = members.swap_remove(i);
                self.size.fetch_sub(1, Ordering::Relaxed);
                let handoff = member.handoff.clone();
                match (outcome, state) {
                    (Outcome::Over(end), _) => handoff.park(Parked::Over(end)),
                    (Outcome::Behind(rest), _) => handoff.park(Parked::Behind(member, rest)),
                    (Outcome::Written, LEAVING) => handoff.park(Parked::Left(member)),
                    (Outcome::Written, _) => drop(member),
                }
            }
            if budget.is_some_and(|budget| started.elapsed() >= budget) {
                break (i < members.len()).then_some(i);
            }
        };
        drop(members);
        self.metrics.frame_ages.merge(&mut pass.scratch.ages);
        next
    }
}

impl Writers {
    /// Writers in `shards` shards (at least one), counting what they write in `metrics`.
    pub fn new(shards: usize, metrics: &Arc<Metrics>) -> Self {
        Self {
            shards: (0..shards.max(1))
                .map(|_| Arc::new(Shard::new(metrics.clone())))
                .collect(),
            due: AtomicBool::new(false),
        }
    }

    /// Members now.
    pub fn size(&self) -> usize {
        self.shards.iter().map(|shard| shard.size()).sum()
    }

    /// Makes `member` a member of the smallest shard: queued for the next pass, which it asks for
    /// and which writes whatever arrived for it since its task last wrote. Never waits for a pass,
    /// and writes nothing itself: a viral room's readers catching up after a stall are written by
    /// their room's passes, on at most a task per shard, not by hundreds of tasks of their own
    /// crowding out the other rooms' writes.
    pub fn join(&self, member: Member) -> Membership<'_> {
        let smallest = self
            .shards
            .iter()
            .min_by_key(|shard| shard.size())
            .expect("at least one shard");
        let handoff = member.handoff.clone();
        smallest.join(member);
        Membership {
            shard: smallest,
            handoff,
            settled: false,
        }
    }

    /// Writes to every member what its position holds: small shards here and now, big ones on
    /// tasks of their own (in slices, so the sender and other rooms' passes go first), each shard
    /// on whichever core is free.
    pub fn write(&self) {
        for shard in self.shards.iter().filter(|shard| shard.size() > 0) {
            shard.write();
        }
    }

    /// Writes a keep-alive to every member nothing was written to for `period`, in the shards'
    /// next passes (asked for here).
    pub fn keep_alive(&self, period: Duration) {
        let ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
        for shard in self.shards.iter().filter(|shard| shard.size() > 0) {
            shard.keepalive_ms.store(ms, Ordering::Relaxed);
            shard.write();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use tokio::{
        io::AsyncReadExt,
        net::{TcpListener, TcpStream},
        sync::broadcast,
    };

    use super::*;
    use crate::hub::Frame;

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn a_turn_asked_for_while_a_pass_runs_makes_that_pass_go_round_once_more() {
        let turn = Turn::default();
        assert!(turn.claim(), "the first to ask runs the pass");
        assert!(!turn.claim(), "asked for while it runs");
        assert!(!turn.claim(), "asked for twice: still one more round");
        assert!(
            turn.release(),
            "so it goes round again, still holding the turn"
        );
        assert!(!turn.claim());
        assert!(turn.release());
        assert!(!turn.release(), "nothing asked for meanwhile: given back");
        assert!(turn.claim(), "and the next to ask gets it");
    }

    fn frame(seq: u64, text: &'static str) -> Frame {
        Frame {
            offset: seq as i64,
            seq,
            bytes: Bytes::from_static(text.as_bytes()),
            batch: None,
            received: std::time::Instant::now(),
            class: crate::metrics::FrameClass::Normal,
        }
    }

    /// A member reading `room`, and the client end of its connection.
    async fn member(
        room: &broadcast::Sender<Frame>,
        metrics: &Arc<Metrics>,
    ) -> (Member, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let member = Member {
            reader: Reader {
                receiver: room.subscribe(),
                subscriber: Arc::default(),
                skip_through: None,
                metrics: metrics.clone(),
            },
            socket: Arc::new(ChunkedStream::new(server)),
            handoff: Arc::default(),
            last_write: Instant::now(),
        };
        (member, client)
    }

    /// Reads until what came ends with `end`; all of it.
    async fn read_until(client: &mut TcpStream, end: &str) -> String {
        let mut got = Vec::new();
        let read = async {
            while !got.ends_with(end.as_bytes()) {
                let mut buffer = [0u8; 1024];
                let n = client.read(&mut buffer).await.unwrap();
                assert!(n > 0, "the connection closed");
                got.extend_from_slice(&buffer[..n]);
            }
        };
        let ended = tokio::time::timeout(WAIT, read).await;
        let got = String::from_utf8(got).unwrap();
        assert!(ended.is_ok(), "no {end:?} within {WAIT:?}; got {got:?}");
        got
    }

    /// Frames counted in `hotchat_sse_frame_age_seconds{class="normal"}`.
    fn aged(metrics: &Metrics) -> String {
        let text = metrics.render();
        let line = text
            .lines()
            .find(|line| line.starts_with(r#"hotchat_sse_frame_age_seconds_count{class="normal"}"#))
            .unwrap()
            .to_owned();
        line.rsplit(' ').next().unwrap().to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_join_never_waits_for_a_running_pass_and_its_frames_go_out_once_each() {
        let metrics = Arc::new(Metrics::default());
        let room = broadcast::channel(16).0;
        let writers = Writers::new(1, &metrics);
        let shard = writers.shards[0].clone();
        let (member, mut client) = member(&room, &metrics).await;
        room.send(frame(1, "a")).unwrap();
        // A pass is running: it holds the shard's turn and its members.
        assert!(shard.turn.claim());
        std::thread::scope(|scope| {
            let members = shard.members();
            let (joined, joined_rx) = mpsc::channel();
            let (finished, finished_rx) = mpsc::channel::<()>();
            let writers = &writers;
            scope.spawn(move || {
                let _membership = writers.join(member);
                joined.send(true).unwrap();
                // Kept until the test is done with the member.
                let _ = finished_rx.recv();
            });
            assert_eq!(
                joined_rx.recv_timeout(WAIT),
                Ok(true),
                "the join returned while the pass held the members"
            );
            assert_eq!(shard.size(), 1, "queued for the next pass");
            // Sent after the join, before any pass took the member in.
            room.send(frame(2, "b")).unwrap();
            drop(members);
            assert!(
                shard.turn.release(),
                "the join asked the pass to go round again"
            );
            let mut pass = shard.start_pass();
            assert!(shard.slice(&mut pass, 0, None).is_none());
            assert!(!shard.turn.release());
            drop(finished);
        });
        // The membership was dropped as its thread ended: a pass of its own took the member out.
        assert_eq!(shard.size(), 0);
        assert!(shard.members().is_empty());
        let got = read_until(&mut client, "b\r\n").await;
        assert_eq!(
            got, "2\r\nab\r\n",
            "each frame once, in order, in one chunk"
        );
        assert_eq!(aged(&metrics), "2", "both frames' ages counted");
    }

    #[tokio::test]
    async fn a_big_shard_is_written_in_slices_that_pick_up_where_the_last_one_stopped() {
        let metrics = Arc::new(Metrics::default());
        let room = broadcast::channel(16).0;
        let shard = Arc::new(Shard::new(metrics.clone()));
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (member, client) = member(&room, &metrics).await;
            shard.size.fetch_add(1, Ordering::Relaxed);
            shard.members().push(member);
            clients.push(client);
        }
        room.send(frame(1, "a")).unwrap();
        assert!(shard.turn.claim());
        let mut pass = shard.start_pass();
        // No time at all for a slice: one member each, then the next slice goes on from there.
        assert_eq!(shard.slice(&mut pass, 0, Some(Duration::ZERO)), Some(1));
        assert_eq!(shard.slice(&mut pass, 1, Some(Duration::ZERO)), Some(2));
        assert_eq!(shard.slice(&mut pass, 2, Some(Duration::ZERO)), None);
        assert!(!shard.turn.release());
        room.send(frame(2, "z")).unwrap();
        shard.pass_here();
        for client in &mut clients {
            assert_eq!(
                read_until(client, "1\r\nz\r\n").await,
                "1\r\na\r\n1\r\nz\r\n"
            );
        }
    }

    #[tokio::test]
    async fn a_member_that_leaves_is_handed_back_and_one_whose_task_is_gone_is_dropped() {
        let metrics = Arc::new(Metrics::default());
        let room = broadcast::channel(16).0;
        let writers = Writers::new(1, &metrics);
        let (staying, _client) = member(&room, &metrics).await;
        let (leaving, _other) = member(&room, &metrics).await;
        let socket = leaving.socket.clone();
        let handoff = leaving.handoff.clone();
        let mut staying = writers.join(staying);
        let mut leaves = writers.join(leaving);
        assert_eq!(writers.size(), 2);

        // A small shard's pass runs at once, by whoever asks for it.
        leaves.leave();
        match handoff.take().map(|parked| *parked) {
            Some(Parked::Left(member)) => assert!(Arc::ptr_eq(&member.socket, &socket)),
            _ => panic!("the member is handed back"),
        }
        leaves.settle();
        assert_eq!(writers.size(), 1);

        staying.leave();
        // Its task went away before taking it back: nothing is kept for it.
        drop(staying);
        assert_eq!(writers.size(), 0);
        assert!(writers.shards[0].members().is_empty());
    }

    #[tokio::test]
    async fn keep_alives_go_in_a_pass_to_the_members_idle_for_the_period_only() {
        let metrics = Arc::new(Metrics::default());
        let room = broadcast::channel(16).0;
        let writers = Writers::new(1, &metrics);
        let (mut idle, mut idle_client) = member(&room, &metrics).await;
        idle.last_write -= Duration::from_secs(20);
        let (busy, mut busy_client) = member(&room, &metrics).await;
        let _idle = writers.join(idle);
        let _busy = writers.join(busy);
        writers.keep_alive(Duration::from_secs(10));
        room.send(frame(1, "z")).unwrap();
        writers.write();
        assert_eq!(
            read_until(&mut idle_client, "1\r\nz\r\n").await,
            "3\r\n:\n\n\r\n1\r\nz\r\n"
        );
        assert_eq!(
            read_until(&mut busy_client, "1\r\nz\r\n").await,
            "1\r\nz\r\n"
        );
    }
}
