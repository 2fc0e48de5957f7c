//! The live part of one event stream, and the two ways it reaches a client.
//!
//! Normally the connection is taken over ([`Live::write_to`]): the frames waiting when the client is
//! ready go out as one chunk in one system call, straight from the shared frame buffers, and an idle
//! stream costs a task, a socket and a channel position — no per-connection buffers. When the stream
//! is requested on a connection hyper already serves (a browser reusing a keep-alive connection),
//! it becomes a response body instead ([`Live::into_body`]), with the same batching.

use std::{sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use shared::shutdown::CancellationToken;
use tokio::{
    sync::{
        OwnedSemaphorePermit,
        broadcast::{self, error::RecvError},
    },
    time::Instant,
};

use crate::{
    audience::Seat,
    hub::{Frame, ResetReason, Subscriber, reset_frame},
    metrics::Metrics,
    serve::ChunkedStream,
};

/// Most queued frames written in one chunk.
const MAX_COALESCED: usize = 64;
/// The comment an idle stream sends every keep-alive period.
const KEEPALIVE: &[u8] = b":\n\n";

/// Holds a connection slot and the viewer's seat in the room's audience, and counts the
/// connection in `sse_clients`, while the stream lives.
pub struct ClientGuard {
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
    _seat: Seat,
}

impl ClientGuard {
    pub fn new(metrics: Arc<Metrics>, permit: OwnedSemaphorePermit, seat: Seat) -> Self {
        metrics.sse_clients.inc();
        Self {
            metrics,
            _permit: permit,
            _seat: seat,
        }
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.metrics.sse_clients.dec();
    }
}

/// The live part of one stream.
pub struct Live {
    pub receiver: broadcast::Receiver<Frame>,
    pub subscriber: Arc<Subscriber>,
    /// Frames at or before this offset were already seen by the client (resumed from a cursor
    /// ahead of this instance).
    pub skip_through: Option<i64>,
    pub keepalive: Duration,
    pub guard: ClientGuard,
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
    /// Writes `head` and then the live frames to a taken-over connection until the client leaves,
    /// falls too far behind, or `shutdown` (then the body is ended properly).
    pub async fn write_to(
        mut self,
        mut out: ChunkedStream,
        head: Bytes,
        shutdown: CancellationToken,
    ) {
        let mut batch = vec![head];
        // Made once, not per write: each new one would register with the token under its lock.
        let cancelled = shutdown.cancelled();
        tokio::pin!(cancelled);
        // The keep-alive timer is not moved on every write (a timer-wheel update each time): it
        // fires a period after it was set, and goes back to sleep until a period after the last
        // write if there was one since.
        let mut last_write = Instant::now();
        let idle = tokio::time::sleep(self.keepalive);
        tokio::pin!(idle);
        loop {
            if !batch.is_empty() {
                tokio::select! {
                    biased;
                    // Mid-chunk: the body cannot be ended properly, only dropped.
                    () = &mut cancelled => return,
                    written = out.write_chunk(&batch) => if written.is_err() { return },
                }
                self.guard.metrics.sse_writes.inc();
                batch.clear();
                // A burst can grow the batch to MAX_COALESCED; an idle stream keeps a small one.
                batch.shrink_to(4);
                last_write = Instant::now();
            }
            tokio::select! {
                biased;
                () = &mut cancelled => break,
                () = out.closed() => return,
                received = self.receiver.recv() => match self.take(received, &mut batch) {
                    Next::Frames => {}
                    Next::Lagged(last) => {
                        let _ = out.write_chunk(&[last]).await;
                        return;
                    }
                    Next::Closed => break,
                },
                () = &mut idle => {
                    let due = last_write + self.keepalive;
                    let now = Instant::now();
                    if now >= due {
                        batch.push(Bytes::from_static(KEEPALIVE));
                        idle.as_mut().reset(now + self.keepalive);
                    } else {
                        idle.as_mut().reset(due);
                    }
                }
            }
        }
        let _ = out.finish().await;
    }

    /// The same stream as a response body: `head`, then chunks of live frames, until `shutdown`.
    pub fn into_body(
        self,
        head: Bytes,
        shutdown: CancellationToken,
    ) -> impl futures::Stream<Item = Bytes> + Send {
        use futures::StreamExt;
        // As on a taken-over connection, the keep-alive timer is one per stream, not one per
        // frame received.
        let idle = Box::pin(tokio::time::sleep(self.keepalive));
        let start = Some((self, idle, Instant::now()));
        let live = futures::stream::unfold(start, |state| async move {
            let (mut live, mut idle, mut last_write) = state?;
            loop {
                let received = tokio::select! {
                    biased;
                    received = live.receiver.recv() => received,
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
                let mut batch = Vec::new();
                return match live.take(received, &mut batch) {
                    Next::Frames if batch.is_empty() => continue,
                    Next::Frames => {
                        live.guard.metrics.sse_writes.inc();
                        last_write = Instant::now();
                        Some((concat(batch), Some((live, idle, last_write))))
                    }
                    Next::Lagged(last) => Some((last, None)),
                    Next::Closed => None,
                };
            }
        });
        futures::stream::once(async move { head })
            .chain(live)
            .take_until(shutdown.cancelled_owned())
    }

    /// Adds `received` and whatever else is already queued (up to [`MAX_COALESCED`]) to `batch`.
    fn take(&mut self, received: Result<Frame, RecvError>, batch: &mut Vec<Bytes>) -> Next {
        let first = match received {
            Ok(frame) => frame,
            Err(RecvError::Lagged(missed)) => {
                self.guard.metrics.clients_cut_off.inc();
                tracing::info!(missed, "cutting off an SSE client that fell behind");
                return Next::Lagged(reset_frame(ResetReason::Lagged));
            }
            Err(RecvError::Closed) => return Next::Closed,
        };
        let mut last_seq = first.seq;
        let (mut taken, mut batched, mut batched_events) = (0u64, false, 0u64);
        let skip_through = self.skip_through;
        let mut push = |frame: Frame, batch: &mut Vec<Bytes>| {
            last_seq = frame.seq;
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
        };
        push(first, batch);
        for _ in 1..MAX_COALESCED {
            match self.receiver.try_recv() {
                Ok(frame) => push(frame, batch),
                // A lag shows up on the next `recv`.
                Err(_) => break,
            }
        }
        self.subscriber.consumed(last_seq);
        let metrics = &self.guard.metrics;
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
