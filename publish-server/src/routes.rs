//! The HTTP API: the event stream, health and metrics.

mod events;
mod health;

use axum::{Extension, Router};
use shared::{
    http::ApiError,
    openapi::{self, Document},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub use events::is_event_stream;

/// Only the event stream (documented), for chat-server to serve in the embedded mode.
pub fn events_router() -> OpenApiRouter<AppState> {
    events::router()
}

/// Every route, each registered with its documentation (see [`shared::openapi`]).
fn api(metrics_public: bool) -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base(
        "hotchat publish-server",
        "hotchat's read side: each room's events as Server-Sent Events, health and metrics.",
        env!("CARGO_PKG_VERSION"),
    ))
    .merge(events::router())
    .merge(health::router(metrics_public))
    .routes(routes!(openapi::document))
}

/// The API, `/metrics` included when `metrics_public` (`METRICS_PUBLIC`).
pub fn router(state: AppState, cors_origins: &[String], metrics_public: bool) -> Router {
    let (router, doc) = api(metrics_public).split_for_parts();
    // No compression layer: it would buffer the stream.
    let router = router
        .layer(Extension(Document::new(&doc)))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(shared::http::cors(cors_origins));
    shared::http::edge(router, shared::http::API_CSP).with_state(state)
}

/// What the listener of `METRICS_ADDR` serves: `/metrics` alone.
pub fn metrics_router(state: AppState) -> Router {
    let router = health::metrics_router().fallback(|| async { ApiError::not_found("route") });
    shared::http::edge(router, shared::http::API_CSP).with_state(state)
}
