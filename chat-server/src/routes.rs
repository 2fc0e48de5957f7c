//! The HTTP API. Each domain module exposes `router()`; this module joins them and adds the layers.

mod config;
mod health;
mod messages;
mod reactions;
mod rooms;
mod sessions;

use std::time::Instant;

use axum::{Router, extract::DefaultBodyLimit, routing::any};
use shared::{cursor::Cursor, event::Envelope, readmodel::Room};
use tower_http::{
    services::{ServeDir, ServeFile},
    trace::TraceLayer,
};
use uuid::Uuid;

use crate::{error::ApiError, metrics::EventTypeLabel, settings::Settings, state::AppState};

/// Request bodies above this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The API, plus `extra` routes (the event stream in the embedded mode), plus the web app from
/// `settings.web_dir` at every other path.
pub fn router(state: AppState, settings: &Settings, extra: Option<Router>) -> Router {
    let sessions = sessions::router(&state.session_limit);
    let mut app = Router::new()
        .merge(config::router(settings.public_events_url.clone()))
        .merge(sessions)
        .merge(rooms::router())
        .merge(messages::router())
        .merge(reactions::router())
        .merge(health::router())
        .route(
            "/api/{*rest}",
            any(|| async { ApiError::not_found("route") }),
        )
        .with_state(state);
    if let Some(extra) = extra {
        app = app.merge(extra);
    }
    let app = match &settings.web_dir {
        // A single-page app: unknown paths get index.html and the client routes them.
        Some(dir) => app
            .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html")))),
        None => app.fallback(|| async { ApiError::not_found("route") }),
    };
    app.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(shared::http::cors(&settings.cors_origins))
        .layer(TraceLayer::new_for_http())
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
