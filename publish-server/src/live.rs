//! The live part of one event stream, and the two ways it reaches a client.
//!
//! Normally the connection is taken over ([`Live::write_to`]) and joins its room's [`Writers`]:
//! whoever sends frames to the room writes them to every member that keeps up, one chunk per member
//! in one pass, straight from the shared frame buffers. An idle or keeping-up stream costs a socket,
//! a channel position and a task that sleeps until the client leaves or its socket fills; nothing is
//! woken per frame. Joining and leaving never wait for a pass (see [`writers`]). When the stream is
//! requested on a connection hyper already serves (a browser reusing a keep-alive connection), it
//! becomes a response body instead ([`Live::into_body`]), read by a task of its own, with the same
//! batching.

mod writers;

pub use writers::Writers;

use std::{io, sync::Arc, task::Poll, time::Duration};

use bytes::{Bytes, BytesMut};
use shared::shutdown::CancellationToken;
use tokio::{
    sync::{
        OwnedSemaphorePermit,
        broadcast::{
            self,
            error::{RecvError, TryRecvError},
        },
    },
    time::Instant,
};

use crate::{
    audience::Seat,
    hub::{Frame, ResetReason, Subscriber, reset_frame},
    metrics::{Metrics, Stamp},
    per_address::AddressSlot,
    serve::ChunkedStream,
};

use self::writers::{End, Handoff, Member, Parked};

/// Most queued frames written in one chunk.
const MAX_COALESCED: usize = 64;
/// The comment an idle stream sends every keep-alive period.
const KEEPALIVE: &[u8] = b":\n\n";

/// Holds a connection slot and the viewer's seat in the room's audience, and counts the
/// connection in `sse_clients`, while the stream lives.
pub struct ClientGuard {
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
    _address: AddressSlot,
    _seat: Seat,
}

impl ClientGuard {
    pub fn new(
        metrics: Arc<Metrics>,
        permit: OwnedSemaphorePermit,
        address: AddressSlot,
        seat: Seat,
    ) -> Self {
        metrics.sse_clients.inc();
        Self {
            metrics,
            _permit: permit,
            _address: address,
            _seat: seat,
        }
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.metrics.sse_clients.dec();
    }
}

/// A subscriber's position in its room's frames.
pub struct Reader {
    pub receiver: broadcast::Receiver<Frame>,
    pub subscriber: Arc<Subscriber>,
    /// Frames at or before this offset were already seen by the client (resumed from a cursor
    /// ahead of this instance).
    pub skip_through: Option<i64>,
    pub metrics: Arc<Metrics>,
}

/// The live part of one stream.
pub struct Live {
    pub reader: Reader,
    /// The room's connections written to by its senders (taken-over connections join them).
    pub writers: Arc<Writers>,
    pub keepalive: Duration,
    pub guard: ClientGuard,
}

/// Frames to write as one chunk, and what their ages count from (one stamp per frame).
#[derive(Default)]
pub struct Chunk {
    pub parts: Vec<Bytes>,
    pub stamps: Vec<Stamp>,
}

impl Chunk {
    fn clear(&mut self) {
        self.parts.clear();
        self.stamps.clear();
    }
}

/// What is left of a chunk the socket did not take, and the frames it holds (counted in
/// `hotchat_sse_frame_age_seconds` once it is all written).
pub struct Unsent {
    pub rest: Vec<Bytes>,
    pub stamps: Vec<Stamp>,
}

/// What waiting for the next frames gave.
enum Next {
    /// Frames were added to the batch (possibly none, if all were skipped).
    Frames,
    /// The client fell a whole room buffer behind: this is its last frame.
    Lagged(Bytes),
    /// The room's channel closed.
    Closed,
}

impl Live {
    /// Writes `head` (its parts shared, not copied) and then the live frames to a taken-over
    /// connection until the client leaves, falls too far behind, or `shutdown` (then the body is
    /// ended properly).
    ///
    /// The connection is a member of the room's writers whenever it has caught up; its task only
    /// writes what a full socket left over (waiting for room, within the stall period), then
    /// joins again.
    pub fn write_to(
        self,
        out: ChunkedStream,
        head: Vec<Bytes>,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let socket = Arc::new(out);
        // The head goes out now, as the first chunk, as far as the socket takes it.
        let written = socket.try_write_chunk(&head);
        drop(head);
        let stream = Stream {
            writers: self.writers,
            socket,
            handoff: Arc::default(),
            shutdown,
            _guard: self.guard,
        };
        stream.run(self.reader, written)
    }

    /// The same stream as a response body: `head`, then chunks of live frames, until `shutdown`.
    ///
    /// hyper polls a body only when it has room to write: a chunk handed to it and not followed
    /// by another poll is waiting for the client, so the subscriber owes it until the next poll
    /// (and is cut off by the sweep if that does not come within the stall period).
    pub fn into_body(
        self,
        head: Vec<Bytes>,
        shutdown: CancellationToken,
    ) -> impl futures::Stream<Item = Bytes> + Send {
        use futures::StreamExt;
        let subscriber = self.reader.subscriber.clone();
        // As on a taken-over connection, the keep-alive timer is one per stream, not one per
        // frame received.
        let idle = Box::pin(tokio::time::sleep(self.keepalive));
        let start = Some((self, idle, Instant::now()));
        let live = futures::stream::unfold(start, |state| async move {
            let (mut live, mut idle, mut last_write) = state?;
            loop {
                let received = tokio::select! {
                    biased;
                    received = live.reader.receiver.recv() => received,
                    () = &mut idle => {
                        let (due, now) = (last_write + live.keepalive, Instant::now());
                        if now < due {
                            idle.as_mut().reset(due);
                            continue;
                        }
                        idle.as_mut().reset(now + live.keepalive);
                        let keepalive = Bytes::from_static(KEEPALIVE);
                        return Some((keepalive, Some((live, idle, now))));
                    }
                };
                let mut chunk = Chunk::default();
                return match live.reader.take(received, &mut chunk) {
                    Next::Frames if chunk.parts.is_empty() => continue,
                    Next::Frames => {
                        let metrics = &live.reader.metrics;
                        metrics.sse_writes.inc();
                        last_write = Instant::now();
                        // Handed to hyper, which writes it as the socket takes it.
                        metrics
                            .frame_ages
                            .observe(&chunk.stamps, last_write.into_std());
                        Some((concat(chunk.parts), Some((live, idle, last_write))))
                    }
                    Next::Lagged(last) => Some((last, None)),
                    Next::Closed => None,
                };
            }
        });
        let mut body = Box::pin(
            futures::stream::iter(head)
                .chain(live)
                .take_until(shutdown.cancelled_owned()),
        );
        futures::stream::poll_fn(move |cx| {
            subscriber.paid();
            let next = body.poll_next_unpin(cx);
            if let Poll::Ready(Some(_)) = next {
                subscriber.owing();
            }
            next
        })
    }
}

/// A taken-over stream, as its task keeps it: a few words while it is a member of its room's
/// writers, which is most of its life.
struct Stream {
    writers: Arc<Writers>,
    socket: Arc<ChunkedStream>,
    handoff: Arc<Handoff>,
    shutdown: CancellationToken,
    _guard: ClientGuard,
}

/// What ended a member's wait.
enum Woken {
    Shutdown,
    ClientLeft,
    Parked(Box<Parked>),
}

impl Stream {
    async fn run(self, mut reader: Reader, written: io::Result<Option<Vec<Bytes>>>) {
        let Ok(head) = written else { return };
        let mut unsent = head.map(|rest| Unsent {
            rest,
            stamps: Vec::new(),
        });
        // Made once, not per wait: each new one would register with the token under its lock.
        let cancelled = self.shutdown.cancelled();
        tokio::pin!(cancelled);
        // Shutting down: what is left is written, then the body is ended properly.
        let mut stopping = false;
        let mut last_write = Instant::now();
        loop {
            if let Some(Unsent { rest, stamps }) = unsent.take() {
                // Owed until written: the sweep cuts the connection off if the client does not
                // take it within the stall period, whether or not new events arrive.
                reader.subscriber.owing();
                // Boxed, as every rare wait here: the task keeps room only for the usual one.
                let write = Box::pin(self.socket.write_rest(rest));
                let written = if stopping {
                    write.await
                } else {
                    tokio::select! {
                        biased;
                        // Mid-chunk: the body cannot be ended properly, only dropped.
                        () = &mut cancelled => return,
                        written = write => written,
                    }
                };
                if written.is_err() {
                    return;
                }
                reader.subscriber.paid();
                last_write = Instant::now();
                reader
                    .metrics
                    .frame_ages
                    .observe(&stamps, last_write.into_std());
            }
            if stopping {
                break;
            }
            let member = Member {
                reader,
                socket: self.socket.clone(),
                handoff: self.handoff.clone(),
                last_write,
            };
            let mut membership = self.writers.join(member);
            let parked = loop {
                // Polled by hand rather than `select!`: no wait keeps a future of its own.
                let woken = std::future::poll_fn(|cx| {
                    if !stopping && cancelled.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Woken::Shutdown);
                    }
                    if self.socket.poll_closed(cx).is_ready() {
                        return Poll::Ready(Woken::ClientLeft);
                    }
                    self.handoff.poll_parked(cx).map(Woken::Parked)
                })
                .await;
                match woken {
                    // The membership, dropped, has the next pass drop the member.
                    Woken::ClientLeft => return,
                    Woken::Parked(parked) => {
                        membership.settle();
                        break parked;
                    }
                    // The next pass hands the member back (or whatever it parked it for).
                    Woken::Shutdown => {
                        stopping = true;
                        membership.leave();
                    }
                }
            };
            match *parked {
                Parked::Behind(member, rest) => {
                    reader = member.reader;
                    last_write = member.last_write;
                    unsent = Some(rest);
                }
                Parked::Left(_member) => break,
                Parked::Over(End::Lagged(last)) => {
                    let _ = Box::pin(self.socket.write_chunk(&[last])).await;
                    return;
                }
                Parked::Over(End::Closed) => break,
                Parked::Over(End::Failed) => return,
            }
        }
        if let Ok(socket) = Arc::try_unwrap(self.socket) {
            let _ = Box::pin(socket.finish()).await;
        }
    }
}

impl Reader {
    /// Adds what is queued (up to [`MAX_COALESCED`] frames) to `chunk` without waiting; `None`
    /// when nothing is.
    fn ready(&mut self, chunk: &mut Chunk) -> Option<Next> {
        let received = match self.receiver.try_recv() {
            Ok(frame) => Ok(frame),
            Err(TryRecvError::Empty) => return None,
            Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
        };
        Some(self.take(received, chunk))
    }

    /// Adds `received` and whatever else is already queued (up to [`MAX_COALESCED`]) to `chunk`.
    fn take(&mut self, received: Result<Frame, RecvError>, chunk: &mut Chunk) -> Next {
        let first = match received {
            Ok(frame) => frame,
            Err(RecvError::Lagged(missed)) => {
                self.metrics.clients_cut_off.inc();
                tracing::info!(missed, "cutting off an SSE client that fell behind");
                return Next::Lagged(reset_frame(ResetReason::Lagged));
            }
            Err(RecvError::Closed) => return Next::Closed,
        };
        let mut last_seq = first.seq;
        let (mut taken, mut batched, mut batched_events) = (0u64, false, 0u64);
        let skip_through = self.skip_through;
        let mut push = |frame: Frame, chunk: &mut Chunk| {
            last_seq = frame.seq;
            let (stamp, parts) = (frame.stamp(), chunk.parts.len());
            let batch = &mut chunk.parts;
            match (frame.batch, skip_through) {
                // Part of this batch is from before the subscription: only the rest is sent.
                (Some(parts), Some(seen)) if parts.starts_at_or_before(seen) => {
                    for (offset, bytes) in &parts.parts {
                        if offset.is_none_or(|offset| offset > seen) {
                            batch.push(bytes.clone());
                            taken += u64::from(offset.is_some());
                        }
                    }
                }
                (Some(parts), _) => {
                    batch.push(frame.bytes);
                    taken += parts.events;
                    batched = true;
                    batched_events += parts.events;
                }
                (None, seen) => {
                    if seen.is_none_or(|seen| frame.offset > seen) {
                        batch.push(frame.bytes);
                        // An announcement (presence) is not an event of the log.
                        taken += u64::from(frame.offset != i64::MAX);
                    }
                }
            }
            if chunk.parts.len() > parts {
                chunk.stamps.push(stamp);
            }
        };
        push(first, chunk);
        for _ in 1..MAX_COALESCED {
            match self.receiver.try_recv() {
                Ok(frame) => push(frame, chunk),
                // A lag shows up on the next `recv`.
                Err(_) => break,
            }
        }
        self.subscriber.consumed(last_seq);
        let metrics = &self.metrics;
        metrics.events_delivered.inc_by(taken);
        if batched {
            metrics.throttled_writes.inc();
            metrics.throttled_deliveries.inc_by(batched_events);
        }
        Next::Frames
    }
}

fn concat(mut frames: Vec<Bytes>) -> Bytes {
    if frames.len() == 1 {
        return frames.pop().unwrap_or_default();
    }
    let mut chunk = BytesMut::with_capacity(frames.iter().map(Bytes::len).sum());
    for frame in &frames {
        chunk.extend_from_slice(frame);
    }
    chunk.freeze()
}
