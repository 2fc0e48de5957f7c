//! `GET /api/config`: what a browser client needs to know to connect, decided by the operator.

use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// What the web app reads before it connects.
#[derive(Clone, Serialize, ToSchema)]
struct ClientConfig {
    /// Base URL of the SSE API; "" means this origin.
    events_url: String,
}

pub fn router(public_events_url: Option<String>) -> OpenApiRouter<AppState> {
    let client_config = ClientConfig {
        events_url: public_events_url.unwrap_or_default(),
    };
    OpenApiRouter::new()
        .routes(routes!(config))
        .layer(Extension(client_config))
}

/// Where the web app finds the event streams.
#[utoipa::path(get, path = "/api/config", operation_id = "client_config", tag = "meta",
    responses((status = 200, description = "The client configuration", body = ClientConfig)))]
async fn config(Extension(config): Extension<ClientConfig>) -> Json<ClientConfig> {
    Json(config)
}
