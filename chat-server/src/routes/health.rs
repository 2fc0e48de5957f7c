//! Liveness, readiness and metrics.

use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use serde_json::{Value, json};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
}

/// Ready when the broker and the database both answer; 503 naming the failed checks otherwise.
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (broker, database) = tokio::join!(state.log.ping(), state.read_model.ping());
    let broker_ok = broker.is_ok();
    let database_ok = database.is_ok();
    let status = if broker_ok && database_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let check = |ok: bool| if ok { "ok" } else { "unavailable" };
    (
        status,
        Json(json!({
            "status": if status.is_success() { "ready" } else { "not_ready" },
            "checks": {"broker": check(broker_ok), "database": check(database_ok)},
        })),
    )
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
