//! Liveness, readiness and metrics (the answers are built in [`shared::health`]).

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use shared::health::{self, Live, OPENMETRICS, Readiness};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

/// Liveness and readiness, and `/metrics` when `metrics_public` (`METRICS_PUBLIC`).
pub fn router(metrics_public: bool) -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready));
    if metrics_public {
        router.routes(routes!(metrics))
    } else {
        router
    }
}

/// `/metrics` alone, for the listener of `METRICS_ADDR`.
pub fn metrics_router() -> axum::Router<AppState> {
    axum::Router::new().route("/metrics", axum::routing::get(metrics))
}

/// Answers while the process runs.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Live)))]
async fn live() -> Json<Live> {
    health::live()
}

/// Ready when the broker and the database both answer within 2 s and the fan-out, the projector
/// and their helpers all still run.
///
/// 503 names the failed checks; once a task has stopped, the server is shutting down. (The consumers reconnect by themselves; this tells a balancer not
/// to send new streams here.)
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health", responses(
    (status = 200, description = "Ready: the broker and the database answer, every task runs", body = Readiness),
    (status = 503, description = "Not ready; `checks` names what failed", body = Readiness),
))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    health::readiness(&state.log, &state.read_model, &state.health, None).await
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health", responses(
    (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics.render(),
    )
}
