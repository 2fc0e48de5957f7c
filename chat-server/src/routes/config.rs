//! `GET /api/config`: what a browser client needs to know to connect, decided by the operator.

use axum::{Json, Router, routing::get};
use serde_json::json;

use crate::state::AppState;

pub fn router(public_events_url: Option<String>) -> Router<AppState> {
    let body = json!({
        // Base URL of the SSE API; "" means this origin.
        "events_url": public_events_url.unwrap_or_default(),
    });
    Router::new().route("/api/config", get(move || async move { Json(body) }))
}
