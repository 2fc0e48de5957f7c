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

use axum::{Extension, Router, extract::DefaultBodyLimit, routing::any};
use shared::openapi::{self, Document};
use tower_http::services::{ServeDir, ServeFile};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    error::ApiError,
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
