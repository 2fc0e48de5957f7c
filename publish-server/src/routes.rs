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
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base(
        "hotchat publish-server",
        "hotchat's read side: each room's events as Server-Sent Events, health and metrics.",
        env!("CARGO_PKG_VERSION"),
    ))
    .merge(events::router())
    .merge(health::router())
    .routes(routes!(openapi::document))
}

pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    let (router, doc) = api().split_for_parts();
    // No compression layer: it would buffer the stream.
    let router = router
        .layer(Extension(Document::new(&doc)))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(shared::http::cors(cors_origins));
    shared::http::edge(router, shared::http::API_CSP).with_state(state)
}
