//! The HTTP API: the event stream, health and metrics.

mod events;
mod health;

use axum::Router;
use shared::http::ApiError;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub use events::is_event_stream;

/// Only the event stream, for chat-server to serve in the embedded mode.
pub fn events_router() -> Router<AppState> {
    events::router()
}

pub fn router(state: AppState, cors_origins: &[String]) -> Router {
    // No compression layer: it would buffer the stream.
    Router::new()
        .merge(events::router())
        .merge(health::router())
        .fallback(|| async { ApiError::not_found("route") })
        .layer(shared::http::cors(cors_origins))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
