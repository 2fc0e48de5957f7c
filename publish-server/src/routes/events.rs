//! `GET /api/rooms/{room}/events`: a room's events as Server-Sent Events.
//!
//! The stream starts with a `retry:` hint, the room's mode if it is hot, and — for a client that
//! resumes with `Last-Event-ID` (or `?last_event_id=`) — every event of the room it missed; then the
//! live frames. Frames already waiting when the client is ready are written together (one write
//! instead of many when a client is behind). An idle stream gets a `:` comment every keep-alive period
//! so proxies keep it open. A client that falls a whole room buffer behind gets `event: reset` if it
//! is still reading, and its connection is closed either way.

use std::{sync::Arc, time::Duration};

use axum::{
    Extension, Router,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
    routing::get,
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::Deserialize;
use shared::{
    cursor::Cursor,
    event::RoomMode,
    http::{ApiError, LAST_EVENT_ID},
    serve::ConnectionCut,
};
use tokio::sync::{
    OwnedSemaphorePermit,
    broadcast::{self, error::RecvError},
};
use uuid::Uuid;

use crate::{
    hub::{Frame, ResetReason, Start, Subscriber, mode_frame, reset_frame},
    metrics::Metrics,
    state::AppState,
};

/// Reconnection delay suggested to `EventSource`, in milliseconds.
const RETRY_MS: u32 = 2000;
/// Most queued frames written in one chunk.
const MAX_COALESCED: usize = 64;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/rooms/{room}/events", get(events))
}

#[derive(Deserialize)]
struct ResumeQuery {
    last_event_id: Option<String>,
}

async fn events(
    State(state): State<AppState>,
    Path(room): Path<String>,
    Query(query): Query<ResumeQuery>,
    cut: Option<Extension<ConnectionCut>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let room_id: Uuid = room.parse().map_err(|_| ApiError::not_found("room"))?;
    let mode = state
        .read_model
        .room_mode(room_id)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    let permit = state.connections.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "this server has as many event streams as it accepts; try another or retry shortly",
        )
        .with_retry_after(5)
    })?;
    let last_event_id = headers
        .get(&LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id)
        .filter(|id| !id.trim().is_empty());
    let (from, malformed) = match last_event_id.as_deref().map(str::parse::<Cursor>) {
        None => (None, false),
        Some(Ok(cursor)) => (Some(cursor), false),
        Some(Err(_)) => (None, true),
    };
    // Subscribe (and take the backlog) before answering, so every event dispatched after this point
    // is in the stream exactly once.
    let subscription = state.hub.subscribe(
        room_id,
        from,
        cut.map(|Extension(ConnectionCut(token))| token),
    );

    let mut head = BytesMut::new();
    head.extend_from_slice(format!("retry: {RETRY_MS}\n\n").as_bytes());
    if mode == RoomMode::Throttled {
        head.extend_from_slice(&mode_frame(mode));
    }
    let mut skip_through = None;
    match subscription.start {
        Start::Live | Start::Resumed => {}
        Start::Reset(reason) => head.extend_from_slice(&reset_frame(reason)),
        Start::Ahead { partition, offset } => match state.log_end.high_watermark(partition).await {
            // This instance is behind the one the client came from: skip what the client has seen.
            Ok(end) if offset < end => skip_through = Some(offset),
            Ok(_) => head.extend_from_slice(&reset_frame(ResetReason::Unknown)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a cursor against the log's end; resetting the client");
                head.extend_from_slice(&reset_frame(ResetReason::Unknown));
            }
        },
    }
    if malformed {
        head.extend_from_slice(&reset_frame(ResetReason::Malformed));
    }
    let backlog = state.hub.frames(subscription.backlog).await;
    state.metrics.events_delivered.inc_by(backlog.len() as u64);
    for frame in backlog {
        head.extend_from_slice(&frame);
    }

    let live = Live {
        receiver: subscription.receiver,
        subscriber: subscription.subscriber,
        skip_through,
        keepalive: state.keepalive,
        guard: ClientGuard::new(state.metrics.clone(), permit),
    };
    let body = futures::stream::once(async move { head.freeze() })
        .chain(live.frames())
        .take_until(state.shutdown.clone().cancelled_owned())
        .map(Ok::<Bytes, std::convert::Infallible>);

    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Holds a connection slot and counts the connection in `sse_clients` while the stream lives.
struct ClientGuard {
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
}

impl ClientGuard {
    fn new(metrics: Arc<Metrics>, permit: OwnedSemaphorePermit) -> Self {
        metrics.sse_clients.inc();
        Self {
            metrics,
            _permit: permit,
        }
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.metrics.sse_clients.dec();
    }
}

/// The live part of one stream.
struct Live {
    receiver: broadcast::Receiver<Frame>,
    subscriber: Arc<Subscriber>,
    /// Frames at or before this offset were already seen by the client (resumed from a cursor
    /// ahead of this instance).
    skip_through: Option<i64>,
    keepalive: Duration,
    guard: ClientGuard,
}

impl Live {
    fn frames(self) -> impl futures::Stream<Item = Bytes> + Send {
        futures::stream::unfold(Some(self), |live| async move {
            let mut live = live?;
            loop {
                return match tokio::time::timeout(live.keepalive, live.receiver.recv()).await {
                    Err(_) => Some((Bytes::from_static(b":\n\n"), Some(live))),
                    Ok(Ok(frame)) => match live.chunk(frame) {
                        Some(chunk) => Some((chunk, Some(live))),
                        None => continue,
                    },
                    Ok(Err(RecvError::Lagged(missed))) => {
                        live.guard.metrics.clients_cut_off.inc();
                        tracing::info!(missed, "cutting off an SSE client that fell behind");
                        Some((reset_frame(ResetReason::Lagged), None))
                    }
                    Ok(Err(RecvError::Closed)) => None,
                };
            }
        })
    }

    /// `first` and whatever else is already queued, as one chunk (None if all were skipped).
    fn chunk(&mut self, first: Frame) -> Option<Bytes> {
        let mut frames = vec![first];
        while frames.len() < MAX_COALESCED {
            match self.receiver.try_recv() {
                Ok(frame) => frames.push(frame),
                Err(_) => break,
            }
        }
        if let Some(last) = frames.last() {
            self.subscriber.consumed(last.seq);
        }
        if let Some(seen) = self.skip_through {
            frames.retain(|f| f.offset > seen);
        }
        self.guard
            .metrics
            .events_delivered
            .inc_by(frames.len() as u64);
        match frames.len() {
            0 => None,
            1 => frames.pop().map(|f| f.bytes),
            _ => {
                let mut chunk = BytesMut::with_capacity(frames.iter().map(|f| f.bytes.len()).sum());
                for frame in &frames {
                    chunk.extend_from_slice(&frame.bytes);
                }
                Some(chunk.freeze())
            }
        }
    }
}
