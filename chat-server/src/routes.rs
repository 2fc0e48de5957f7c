//! The HTTP API. Each domain module exposes `router()`, an `OpenApiRouter` whose routes are each
//! registered with their documentation; this module joins them, serves the document they make at
//! `GET /api/openapi.json` (see [`shared::openapi`]) and adds the layers.

mod config;
mod health;
mod messages;
mod moderation;
mod reactions;
mod rooms;
mod sessions;

use std::time::Instant;

use axum::{Extension, Router, extract::DefaultBodyLimit, routing::any};
use shared::{
    cursor::Cursor,
    event::Envelope,
    openapi::{self, Document},
    readmodel::Room,
};
use tower_http::services::{ServeDir, ServeFile};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    error::ApiError,
    idempotency::Keyed,
    metrics::EventTypeLabel,
    moderation::{self as rules, PostedHere},
    rate_limit::{AddressLimit, SessionLimit},
    settings::Settings,
    state::AppState,
};

/// Request bodies above this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every route of chat-server's own, each registered with its documentation.
fn api(
    settings: &Settings,
    session_limit: &SessionLimit,
    room_limit: &AddressLimit,
) -> OpenApiRouter<AppState> {
    let mut doc = openapi::base(
        "hotchat chat-server",
        "hotchat's write side and fetch API: sessions, rooms, messages, reactions. Errors are \
         `{\"error\": {\"code\", \"message\"}}` (`ErrorBody`) with a 4xx or 5xx status. \
         Without Kafka this server also serves the event streams (`/api/rooms/{room}/events`).",
        env!("CARGO_PKG_VERSION"),
    );
    doc.components.get_or_insert_default().add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("A session token from `POST /api/sessions`"))
                .build(),
        ),
    );
    OpenApiRouter::with_openapi(doc)
        .merge(config::router(settings.public_events_url.clone()))
        .merge(sessions::router(session_limit))
        .merge(rooms::router(room_limit))
        .merge(messages::router())
        .merge(reactions::router())
        .merge(moderation::router())
        .merge(health::router(settings.metrics_public))
        .routes(routes!(openapi::document))
}

/// The API, plus `extra` routes (the event stream in the embedded mode), plus the web app from
/// `settings.web_dir` at every other path. The published document covers the API and `extra`.
pub fn router(state: AppState, settings: &Settings, extra: Option<OpenApiRouter>) -> Router {
    let mut api = api(settings, &state.session_limit, &state.room_limit).with_state(state);
    if let Some(extra) = extra {
        api = api.merge(extra);
    }
    let (app, doc) = api.split_for_parts();
    let mut app = app.layer(Extension(Document::new(&doc))).route(
        "/api/{*rest}",
        any(|| async { ApiError::not_found("route") }),
    );
    if !settings.metrics_public {
        // Not the web app's index.html either: a scraper must see that nothing is here.
        app = app.route("/metrics", any(|| async { ApiError::not_found("route") }));
    }
    let app = match &settings.web_dir {
        // A single-page app: unknown paths get index.html and the client routes them.
        Some(dir) => app
            .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))),
        None => app.fallback(|| async { ApiError::not_found("route") }),
    };
    // The web app opens its streams where `PUBLIC_EVENTS_URL` says: its CSP must let it connect.
    let events_origin = settings
        .public_events_url
        .as_deref()
        .and_then(shared::http::origin_of);
    let app = app
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(shared::http::cors(&settings.cors_origins));
    shared::http::edge(app, &shared::http::web_app_csp(events_origin.as_deref()))
}

/// What the listener of `METRICS_ADDR` serves: `/metrics` alone.
pub fn metrics_router(state: AppState) -> Router {
    let router = health::metrics_router().fallback(|| async { ApiError::not_found("route") });
    shared::http::edge(router, shared::http::API_CSP).with_state(state)
}

/// A room id from the path; anything that is not a room id is an unknown room.
fn room_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("room"))
}

/// The room named in the path, or 404.
async fn existing_room(state: &AppState, raw: &str) -> Result<Room, ApiError> {
    let id = room_id(raw)?;
    if let Some(room) = state.rooms.get(&id).await {
        return Ok(room);
    }
    let room = state
        .read_model
        .room(id)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    state.rooms.insert(id, room.clone()).await;
    Ok(room)
}

/// The room named in the path as the read model has it now (its settings may have changed since
/// this instance cached it); the cached one if the database does not answer.
async fn current_room(state: &AppState, raw: &str) -> Result<Room, ApiError> {
    let id = room_id(raw)?;
    match state.read_model.room(id).await {
        Ok(Some(room)) => {
            state.rooms.insert(id, room.clone()).await;
            Ok(room)
        }
        Ok(None) => existing_room(state, raw).await,
        Err(e) => match state.rooms.get(&id).await {
            Some(room) => Ok(room),
            None => Err(e.into()),
        },
    }
}

/// `user`'s standing in `room`, refusing the write with 403 `banned` if they are banned there.
async fn not_banned(
    state: &AppState,
    room: &Room,
    user: Uuid,
) -> Result<shared::readmodel::Standing, ApiError> {
    let standing = rules::standing(&state.read_model, &state.standings, room, user).await;
    rules::not_banned(&standing)?;
    Ok(standing)
}

/// The message `raw` of `room`, if it is there and not deleted: from the read model, else (not
/// projected yet, or the database is out) as posted through this instance.
///
/// A young message id the read model does not have yet may have been posted through another
/// chat-server a moment ago: that case waits for the projector to catch up with the log, then
/// looks again (charged to the user's write limit, so made-up ids cannot make it wait for free).
async fn live_message(
    state: &AppState,
    user: Uuid,
    room: Uuid,
    raw: &str,
) -> Result<PostedHere, ApiError> {
    let id: Uuid = raw.parse().map_err(|_| ApiError::not_found("message"))?;
    let here = state.posted.get(&id).await.filter(|p| p.room == room);
    let mut facts = state.read_model.message_facts(room, id).await;
    if matches!(facts, Ok(None)) && here.is_none() && rules::recent(id) {
        state.post_limiter.admit(user)?;
        rules::catch_up(&state.log, &state.read_model).await;
        facts = state.read_model.message_facts(room, id).await;
    }
    match facts {
        Ok(Some(facts)) if facts.deleted => Err(ApiError::not_found("message")),
        Ok(Some(facts)) => Ok(PostedHere {
            room,
            author: facts.author,
            at: facts.at,
        }),
        Ok(None) => here.ok_or_else(|| ApiError::not_found("message")),
        Err(e) => here.ok_or_else(|| e.into()),
    }
}

/// Appends a moderation event and answers once the read model has it (see
/// [`rules::settle`]), so that the next write anywhere is checked against it.
async fn append_settled(state: &AppState, event: &Envelope) -> Result<(), ApiError> {
    let cursor = append(state, event).await?;
    rules::settle(&state.read_model, cursor).await;
    Ok(())
}

/// A post's slow-mode slot: claimed just before its event is appended, given back if the append
/// fails.
pub struct SlowSlot {
    room: Uuid,
    user: Uuid,
    secs: u32,
}

/// Appends `event`; with an `Idempotency-Key` (`keyed`), appends the first attempt's event instead,
/// and nothing when the log already acknowledged it (see [`crate::idempotency`]). A retry of an
/// acknowledged write claims no `slow` slot. Returns the event to answer for, and where it was
/// appended if it was.
async fn append_once(
    state: &AppState,
    keyed: Option<&Keyed<'_>>,
    mut event: Envelope,
    slow: Option<SlowSlot>,
) -> Result<(Envelope, Option<Cursor>), ApiError> {
    let Some(keyed) = keyed else {
        let cursor = append_in_slot(state, &event, slow).await?;
        return Ok((event, Some(cursor)));
    };
    event.event_id = keyed.id("event");
    let write = state.idempotency.begin(keyed, event).await?;
    if write.acknowledged {
        return Ok((write.event, None));
    }
    let cursor = append_in_slot(state, &write.event, slow).await?;
    state.idempotency.acknowledged(&write).await;
    Ok((write.event, Some(cursor)))
}

async fn append_in_slot(
    state: &AppState,
    event: &Envelope,
    slow: Option<SlowSlot>,
) -> Result<Cursor, ApiError> {
    let Some(slot) = slow else {
        return append(state, event).await;
    };
    state
        .slow_mode
        .claim(slot.room, slot.user, slot.secs)
        .await?;
    let appended = append(state, event).await;
    if appended.is_err() {
        state.slow_mode.release(slot.room, slot.user).await;
    }
    appended
}

/// Appends `event` on behalf of its user, answering 429 when the user writes too fast and 503 when
/// the log does not take it in time.
async fn append(state: &AppState, event: &Envelope) -> Result<Cursor, ApiError> {
    state.post_limiter.admit(event.user.id)?;
    let started = Instant::now();
    match state.log.append(event).await {
        Ok(cursor) => {
            state
                .metrics
                .append_duration_seconds
                .observe(started.elapsed().as_secs_f64());
            state
                .metrics
                .events_appended
                .get_or_create(&EventTypeLabel {
                    event_type: event.kind(),
                })
                .inc();
            Ok(cursor)
        }
        Err(e) => {
            state.metrics.append_failures.inc();
            tracing::warn!(event_id = %event.event_id, room_id = %event.room_id, error = %e, "append failed");
            Err(ApiError::unavailable("the event broker", e))
        }
    }
}
