//! A room's taken-over connections, written to by whoever sends the room's frames.
//!
//! When every client keeps up (the common case) a delivery should cost one `writev` and little else.
//! So a connection that has caught up is a [`Member`] of its room's writers: a few words holding its
//! socket and its position in the room's channel. After frames are sent to a room, the sender runs
//! [`Writers::pass`] (or, for a big room, [`Writers::request_pass`]): for each member, what its
//! position holds goes out as one chunk, without waiting, and no task is woken. A member whose
//! socket is full is parked: it leaves the writers with what was not written, and its connection's
//! task ([`super::Live::write_to`]) writes that, waiting for room, then joins again
//! ([`Writers::join`] first writes whatever arrived meanwhile, under the same lock as the passes,
//! so nothing is missed or written twice). Idle members get their keep-alives from a periodic pass
//! ([`Writers::keep_alive`]).

use std::{
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures::task::AtomicWaker;
use slab::Slab;
use tokio::time::Instant;

use super::{Chunk, KEEPALIVE, Next, Reader, Unsent};
use crate::{
    metrics::{AgeTally, Metrics},
    serve::ChunkedStream,
};

/// The members of one room, in shards that passes write in parallel (one per core), so that a
/// big room's last member does not wait for one core to write to all the others.
pub struct Writers {
    shards: Box<[Arc<Shard>]>,
    /// Set while the room is on the hub's list of rooms with frames not yet passed over.
    pub due: AtomicBool,
}

/// Some of a room's members, and their lock.
struct Shard {
    members: Mutex<Slab<Member>>,
    /// Where the ages of the frames its passes write are counted.
    metrics: Arc<Metrics>,
    /// Members now, read without the lock.
    size: AtomicUsize,
    /// Passes asked of [`Shard::request_pass`]: none, one running, or one running and another
    /// asked for meanwhile.
    passes: AtomicU8,
}

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const AGAIN: u8 = 2;

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

/// Hands a parked member back to its connection's task.
#[derive(Default)]
pub struct Handoff {
    /// Boxed: every connection has a handoff, few ever use it.
    parked: Mutex<Option<Box<Parked>>>,
    task: AtomicWaker,
}

impl Handoff {
    fn park(&self, parked: Parked) {
        *self.parked.lock().expect("handoff lock") = Some(Box::new(parked));
        self.task.wake();
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

/// A task's place in its room's writers; leaving is certain even if the task is dropped.
pub struct Membership<'a> {
    writers: &'a Shard,
    key: usize,
    handoff: Arc<Handoff>,
    left: bool,
}

impl Membership<'_> {
    /// Takes the member out of the writers; `None` if a pass parked it first (it is then in the
    /// handoff).
    pub fn leave(mut self) -> Option<Member> {
        self.left = true;
        self.writers.remove(self.key, &self.handoff)
    }
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        if !self.left {
            self.writers.remove(self.key, &self.handoff);
        }
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

impl Shard {
    fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            members: Mutex::default(),
            metrics,
            size: AtomicUsize::new(0),
            passes: AtomicU8::new(IDLE),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slab<Member>> {
        self.members.lock().expect("writers lock")
    }

    /// Members now.
    fn size(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    /// Writes what arrived for `member` since its task last wrote, then makes it a member; or,
    /// if that did not all go out, says why it stays with its task.
    fn join(&self, mut member: Member) -> Result<Membership<'_>, Box<Parked>> {
        let mut members = self.lock();
        let mut scratch = Scratch::default();
        let handoff = member.handoff.clone();
        let outcome = member.write_ready(Instant::now(), &mut scratch);
        self.metrics.frame_ages.merge(&mut scratch.ages);
        match outcome {
            Outcome::Written => {}
            Outcome::Behind(rest) => return Err(Box::new(Parked::Behind(member, rest))),
            Outcome::Over(end) => return Err(Box::new(Parked::Over(end))),
        }
        let key = members.insert(member);
        self.size.store(members.len(), Ordering::Relaxed);
        Ok(Membership {
            writers: self,
            key,
            handoff,
            left: false,
        })
    }

    /// Takes out the member at `key` if it is still the one `handoff` belongs to (the key of a
    /// parked member may have gone to another since).
    fn remove(&self, key: usize, handoff: &Arc<Handoff>) -> Option<Member> {
        let mut members = self.lock();
        if !members
            .get(key)
            .is_some_and(|member| Arc::ptr_eq(&member.handoff, handoff))
        {
            return None;
        }
        let member = members.remove(key);
        self.size.store(members.len(), Ordering::Relaxed);
        Some(member)
    }

    /// Writes to every member what its position holds: one pass by whoever sent the frames.
    fn pass(&self) {
        let now = Instant::now();
        let mut scratch = Scratch::default();
        self.each(|member| member.write_ready(now, &mut scratch));
        self.metrics.frame_ages.merge(&mut scratch.ages);
    }

    /// Runs a pass on a task of its own, so that the sender goes on to other rooms and a big room
    /// can be written on another core. Requests that come while one runs make one more pass.
    fn request_pass(self: &Arc<Self>) {
        let mut state = self.passes.load(Ordering::Acquire);
        loop {
            let next = match state {
                IDLE => RUNNING,
                RUNNING => AGAIN,
                _ => return,
            };
            match self
                .passes
                .compare_exchange(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(now) => state = now,
            }
        }
        if state != IDLE {
            return;
        }
        let writers = self.clone();
        tokio::spawn(async move {
            loop {
                writers.pass();
                let done = writers.passes.compare_exchange(
                    RUNNING,
                    IDLE,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                if done.is_ok() {
                    return;
                }
                writers.passes.store(RUNNING, Ordering::Release);
            }
        });
    }

    /// Writes a keep-alive to every member nothing was written to for `period`.
    fn keep_alive(&self, period: Duration) {
        let now = Instant::now();
        self.each(|member| member.keep_alive(now, period));
    }

    /// Runs `write` on every member, parking those it does not leave written up.
    fn each(&self, mut write: impl FnMut(&mut Member) -> Outcome) {
        let mut members = self.lock();
        let mut leaving = Vec::new();
        for (key, member) in members.iter_mut() {
            match write(member) {
                Outcome::Written => {}
                outcome => leaving.push((key, outcome)),
            }
        }
        for (key, outcome) in leaving {
            let member = members.remove(key);
            let handoff = member.handoff.clone();
            handoff.park(match outcome {
                Outcome::Behind(rest) => Parked::Behind(member, rest),
                Outcome::Over(end) => Parked::Over(end),
                Outcome::Written => unreachable!("written members stay"),
            });
        }
        self.size.store(members.len(), Ordering::Relaxed);
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

    /// Joins the smallest shard (see [`Shard::join`]).
    pub fn join(&self, member: Member) -> Result<Membership<'_>, Box<Parked>> {
        let smallest = self
            .shards
            .iter()
            .min_by_key(|shard| shard.size())
            .expect("at least one shard");
        smallest.join(member)
    }

    /// Writes to every member what its position holds, here and now.
    pub fn pass(&self) {
        for shard in &self.shards {
            shard.pass();
        }
    }

    /// Writes to every member on tasks of their own, one per shard with members, so that the
    /// sender goes on to other rooms and the shards are written on all cores.
    pub fn request_pass(&self) {
        for shard in self.shards.iter().filter(|shard| shard.size() > 0) {
            shard.request_pass();
        }
    }

    /// Writes a keep-alive to every member nothing was written to for `period`.
    pub fn keep_alive(&self, period: Duration) {
        for shard in &self.shards {
            shard.keep_alive(period);
        }
    }
}
