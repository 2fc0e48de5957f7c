//! `GET /api/rooms/{room}/events`: a room's events as Server-Sent Events.
//!
//! The stream starts with a `retry:` hint, the room's mode if it is hot, and — for a client that
//! resumes with `Last-Event-ID` (or `?last_event_id=`) — every event of the room it missed; then the
//! live frames ([`crate::live`]: frames already waiting when the client is ready are written together).
//! An idle stream gets a `:` comment every keep-alive period so proxies keep it open. A client that
//! falls a whole room buffer behind gets `event: reset` if it is still reading, and its connection is
//! closed either way.

use std::{net::SocketAddr, time::Duration};

use axum::{
    Extension,
    body::Body,
    extract::{ConnectInfo, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::Deserialize;
use shared::{
    cursor::Cursor,
    event::RoomMode,
    http::{ApiError, ApiPath, ApiQuery, LAST_EVENT_ID, bearer},
    openapi::{BadRequest, NotFound, TooManyStreams, Unavailable},
    readmodel::{Message, Room},
};
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    audience::Online,
    hub::{
        CountsData, DeleteData, EditData, ModeData, ReactionData, ResetReason, Start, mode_frame,
        presence_frame, reset_frame,
    },
    live::{ClientGuard, Live, Reader},
    serve::{CanTakeOver, ConnectionCut, TakeOver},
    state::AppState,
};

/// Reconnection delay suggested to `EventSource`, in milliseconds.
const RETRY_MS: u32 = 2000;

/// Requests served on a taken-over connection when they come first on it (see
/// [`crate::serve::TakeOver`]): `GET /api/rooms/{room}/events`.
pub fn is_event_stream(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::GET
        && path
            .strip_prefix("/api/rooms/")
            .and_then(|rest| rest.strip_suffix("/events"))
            .is_some_and(|room| !room.is_empty() && !room.contains('/'))
}

/// The data of each event type, as components of the document (the stream's own schema is text).
#[derive(OpenApi)]
#[openapi(components(schemas(
    Message,
    ReactionData,
    CountsData,
    ModeData,
    EditData,
    DeleteData,
    Room,
    Online,
    ResetData
)))]
struct EventData;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(EventData::openapi()).routes(routes!(events))
}

/// `event: reset` data: why the client must refetch (`cursor_too_old`, `foreign_cursor`,
/// `unknown_cursor`, `malformed_cursor`, `lagged`).
#[derive(ToSchema)]
#[allow(dead_code)] // Documents `reset_frame`'s JSON.
struct ResetData {
    reason: String,
}

/// How long a subscription to a room the log has shown waits for the database to tell its mode.
const KNOWN_ROOM_LOOKUP: Duration = Duration::from_millis(300);

/// The room's mode, or 404 for a room that does not exist. A room this instance has read in the log
/// needs no database (its mode does if the log did not say it, and falls back to normal if the
/// database is slow or down): clients reconnect all the time, also during a database outage.
async fn room_mode(state: &AppState, room: Uuid) -> Result<ModeData, ApiError> {
    let known = state.hub.room(room);
    if let Some(Some(mode)) = known {
        return Ok(mode);
    }
    // The read model keeps the mode, not why: a subscriber learns the reason from the next change.
    let as_data = |(mode, fetch_interval_ms)| ModeData {
        mode,
        fetch_interval_ms,
        reason: None,
    };
    let asked = state.read_model.room_mode(room);
    if known.is_none() {
        if let Some(mode) = asked.await? {
            return Ok(as_data(mode));
        }
        // Neither the log so far nor the read model has it: it may have been created a moment ago
        // (the creator opens its stream at once). The log is the judge: once the fan-out has read
        // the room's partition up to where it ends now, the room is known, or it does not exist.
        if caught_up(state, room).await
            && let Some(mode) = state.hub.room(room)
        {
            return Ok(mode.unwrap_or(ModeData::NORMAL));
        }
        return Err(ApiError::not_found("room"));
    }
    match tokio::time::timeout(KNOWN_ROOM_LOOKUP, asked).await {
        Ok(Ok(Some(mode))) => Ok(as_data(mode)),
        // Not projected yet, or the database did not answer in time: the log says the room exists.
        Ok(Ok(None)) | Ok(Err(_)) | Err(_) => Ok(ModeData::NORMAL),
    }
}

/// How long a stream request for a room nobody knows waits for the fan-out to catch up.
const CATCH_UP: Duration = Duration::from_secs(1);

/// Whether the fan-out has read `room`'s partition up to where it ends now (waiting at most
/// [`CATCH_UP`]).
async fn caught_up(state: &AppState, room: Uuid) -> bool {
    let partition = state.log.partition_of(room);
    let Ok((_, end)) = state.log.bounds(partition).await else {
        return false;
    };
    let deadline = tokio::time::Instant::now() + CATCH_UP;
    loop {
        let last = state
            .hub
            .positions()
            .into_iter()
            .find_map(|(p, last)| (p == partition).then_some(last).flatten());
        if end == 0 || last.is_some_and(|last| last + 1 >= end) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[derive(Deserialize)]
struct ResumeQuery {
    last_event_id: Option<String>,
    /// The session token, for `EventSource` (which cannot send headers): it makes the viewer a
    /// user rather than an address in the room's audience.
    token: Option<String>,
}

/// A room's events as Server-Sent Events.
///
/// Not every frame has an `id:` (the `retry:` hint, a `mode` sent on subscribing, `reset`), and `:`
/// comments keep an idle stream open.
#[utoipa::path(
    get,
    path = "/api/rooms/{room}/events",
    operation_id = "room_events",
    tag = "events",
    params(
        ("room" = Uuid, Path, description = "The room's id"),
        ("Last-Event-ID" = Option<String>, Header,
            description = "Resume after this event: the `id:` of the last event received"),
        ("last_event_id" = Option<String>, Query,
            description = "The same as `Last-Event-ID`, for a fresh `EventSource` (which cannot \
                           send headers); the header wins when both are given"),
    ),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
            description = "An endless `text/event-stream`. Frames are `id: <cursor>` (resume with \
                it), `event: <type>` and one `data: <json>` line. Event types and their data \
                (schemas in the components): `message` (`Message`), `reaction` (`ReactionData`; \
                in a throttled room, `CountsData`: a batch's reactions on one message folded \
                into its counts), \
                `mode` (`ModeData`), `edit` (`EditData`), `delete` (`DeleteData`), `room` \
                (`Room`: its settings changed), `presence` (`Online`: the room's distinct viewers, \
                sent on subscribing and then at most once a second when it changed), `reset` (`ResetData`: the cursor cannot be continued; \
                refetch the history). A client that resumes with `Last-Event-ID` gets exactly the \
                events it missed, in order, then the live ones. While a room is throttled its \
                frames come in batches, at most one write per `HOT_SSE_BATCH_MS`."),
        BadRequest,
        NotFound,
        TooManyStreams,
        Unavailable,
    ),
)]
async fn events(
    State(state): State<AppState>,
    ApiPath(room): ApiPath<String>,
    ApiQuery(query): ApiQuery<ResumeQuery>,
    cut: Option<Extension<ConnectionCut>>,
    can_take_over: Option<Extension<CanTakeOver>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let room_id: Uuid = room.parse().map_err(|_| ApiError::not_found("room"))?;
    let mode = room_mode(&state, room_id).await?;
    // Fairness first: one address cannot take the instance's every stream.
    let address = state
        .streams_per_address
        .admit(state.audience.client_addr(&headers, peer))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_streams",
                "your address has as many event streams open here as it may; close one first",
            )
            .with_retry_after(5)
        })?;
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

    let token = bearer(&headers).or(query.token.as_deref());
    let viewer = state.audience.viewer(token, &headers, peer).await;
    let seat = state.audience.join(room_id, viewer);

    // The head: what comes before the live frames. The missed events are the hub's own frames,
    // shared, not copied into this connection: a client that never reads them pins no memory of
    // its own, and is cut off after `SSE_STALL_SECS` ([`crate::hub::Subscriber::owing`]).
    let mut prelude = BytesMut::new();
    prelude.extend_from_slice(format!("retry: {RETRY_MS}\n\n").as_bytes());
    if mode.mode == RoomMode::Throttled {
        prelude.extend_from_slice(&mode_frame(mode));
    }
    // A throttled room's waiting batch: its events are in the backlog, or from before this client.
    let mut skip_through = subscription.skip_through;
    match subscription.start {
        Start::Live | Start::Resumed => {}
        Start::Reset(reason) => prelude.extend_from_slice(&reset_frame(reason)),
        Start::Ahead { partition, offset } => match state.log.bounds(partition).await {
            // This instance is behind the one the client came from: skip what the client has seen.
            Ok((_, end)) if offset < end => skip_through = skip_through.max(Some(offset)),
            Ok(_) => prelude.extend_from_slice(&reset_frame(ResetReason::Unknown)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a cursor against the log's end; resetting the client");
                prelude.extend_from_slice(&reset_frame(ResetReason::Unknown));
            }
        },
    }
    if malformed {
        prelude.extend_from_slice(&reset_frame(ResetReason::Malformed));
    }
    let backlog = state.hub.frames(subscription.backlog);
    state.metrics.events_delivered.inc_by(backlog.len() as u64);
    let mut head = Vec::with_capacity(backlog.len() + 2);
    head.push(prelude.freeze());
    head.extend(backlog);
    // Last in the head, after what the client must act on first (a reset, missed events).
    head.push(presence_frame(state.audience.current(room_id).await));

    let live = Live {
        reader: Reader {
            receiver: subscription.receiver,
            subscriber: subscription.subscriber,
            skip_through,
            metrics: state.metrics.clone(),
        },
        writers: subscription.writers,
        keepalive: state.keepalive,
        guard: ClientGuard::new(state.metrics.clone(), permit, address, seat),
    };
    let shutdown = state.shutdown.clone();
    let mut response = match can_take_over {
        Some(_) => {
            let mut response = Response::new(Body::empty());
            response
                .extensions_mut()
                .insert(TakeOver::new(move |out| live.write_to(out, head, shutdown)));
            response
        }
        None => Response::new(Body::from_stream(
            live.into_body(head, shutdown)
                .map(Ok::<Bytes, std::convert::Infallible>),
        )),
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
