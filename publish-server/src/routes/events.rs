//! `GET /api/rooms/{room}/events`: a room's events as Server-Sent Events.
//!
//! The stream starts with a `retry:` hint, then carries the room's frames as the hub broadcasts them.
//! Frames already waiting when the client is ready are written together (one write instead of many
//! when a client is behind). An idle stream gets a `:` comment every keep-alive period so proxies keep
//! it open. A client that falls a whole room buffer behind gets `event: reset` and is disconnected.

use std::time::Duration;

use axum::{
    Router,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, header},
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
};
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::{
    hub::{Frame, mode_frame, reset_frame},
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
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let room_id: Uuid = room.parse().map_err(|_| ApiError::not_found("room"))?;
    let mode = state
        .read_model
        .room_mode(room_id)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    let last_event_id = headers
        .get(&LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(query.last_event_id)
        .filter(|id| !id.trim().is_empty());
    // Subscribe before answering, so every event dispatched after the client sees the headers is
    // in its stream.
    let receiver = state.hub.subscribe(room_id);

    let mut head = BytesMut::new();
    head.extend_from_slice(format!("retry: {RETRY_MS}\n\n").as_bytes());
    if mode == RoomMode::Throttled {
        head.extend_from_slice(&mode_frame(mode));
    }
    if let Some(id) = last_event_id {
        // Replaying missed events is not built yet: a returning client is told to refetch rather
        // than being left with a silent gap.
        let reason = match id.parse::<Cursor>() {
            Ok(_) => "resume_unavailable",
            Err(_) => "malformed_cursor",
        };
        head.extend_from_slice(&reset_frame(reason));
    }
    let live = live_frames(receiver, state.keepalive, state.metrics.clone());
    let body = futures::stream::once(async move { head.freeze() })
        .chain(live)
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

/// Counts a connection in `sse_clients` for as long as its stream lives.
struct ClientGuard(std::sync::Arc<Metrics>);

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.0.sse_clients.dec();
    }
}

enum Next {
    Open(broadcast::Receiver<Frame>, ClientGuard),
    Done,
}

fn live_frames(
    receiver: broadcast::Receiver<Frame>,
    keepalive: Duration,
    metrics: std::sync::Arc<Metrics>,
) -> impl futures::Stream<Item = Bytes> + Send {
    metrics.sse_clients.inc();
    let guard = ClientGuard(metrics);
    futures::stream::unfold(Next::Open(receiver, guard), move |next| async move {
        let Next::Open(mut receiver, guard) = next else {
            return None;
        };
        match tokio::time::timeout(keepalive, receiver.recv()).await {
            Err(_) => Some((Bytes::from_static(b":\n\n"), Next::Open(receiver, guard))),
            Ok(Ok(frame)) => {
                let mut sent: u64 = 1;
                let chunk = match receiver.try_recv() {
                    Err(_) => frame,
                    Ok(second) => {
                        let mut chunk = BytesMut::from(&frame[..]);
                        chunk.extend_from_slice(&second);
                        sent += 1;
                        while sent < MAX_COALESCED as u64 {
                            match receiver.try_recv() {
                                Ok(more) => {
                                    chunk.extend_from_slice(&more);
                                    sent += 1;
                                }
                                Err(_) => break,
                            }
                        }
                        chunk.freeze()
                    }
                };
                guard.0.events_delivered.inc_by(sent);
                Some((chunk, Next::Open(receiver, guard)))
            }
            Ok(Err(RecvError::Lagged(missed))) => {
                guard.0.clients_cut_off.inc();
                tracing::info!(missed, "cutting off an SSE client that fell behind");
                Some((reset_frame("lagged"), Next::Done))
            }
            Ok(Err(RecvError::Closed)) => None,
        }
    })
}
