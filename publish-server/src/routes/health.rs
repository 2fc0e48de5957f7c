//! Liveness, readiness and metrics.

use std::time::Duration;

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

/// Ready when the broker and the database both answer within 2 s; 503 naming the failed checks.
/// (The consumers reconnect by themselves; this tells a balancer not to send new streams here.)
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let limit = Duration::from_secs(2);
    let (broker, database) = tokio::join!(
        tokio::time::timeout(limit, state.log.ping()),
        tokio::time::timeout(limit, state.read_model.ping()),
    );
    let broker_ok = matches!(broker, Ok(Ok(())));
    let database_ok = matches!(database, Ok(Ok(())));
    let ready = broker_ok && database_ok;
    let check = |ok: bool| if ok { "ok" } else { "unavailable" };
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(json!({
            "status": if ready { "ready" } else { "not_ready" },
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
