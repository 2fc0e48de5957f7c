//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
}

/// `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
struct Live {
    /// Always `ok`.
    status: &'static str,
}

/// Answers while the process runs.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = Live)))]
async fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReadyStatus {
    Ready,
    NotReady,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Check {
    Ok,
    Unavailable,
}

#[derive(Serialize, ToSchema)]
struct Checks {
    broker: Check,
    database: Check,
}

/// The readiness report: overall, and per dependency.
#[derive(Serialize, ToSchema)]
struct Readiness {
    status: ReadyStatus,
    checks: Checks,
}

/// Ready when the broker and the database both answer within 2 s.
///
/// 503 names the failed checks. (The consumers reconnect by themselves; this tells a balancer not to send new streams here.)
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "health", responses(
    (status = 200, description = "Ready: the broker and the database answer", body = Readiness),
    (status = 503, description = "Not ready; `checks` names what failed", body = Readiness),
))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let limit = Duration::from_secs(2);
    let (broker, database) = tokio::join!(
        tokio::time::timeout(limit, state.log.ping()),
        tokio::time::timeout(limit, state.read_model.ping()),
    );
    let broker_ok = matches!(broker, Ok(Ok(())));
    let database_ok = matches!(database, Ok(Ok(())));
    let ready = broker_ok && database_ok;
    let check = |ok: bool| if ok { Check::Ok } else { Check::Unavailable };
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Readiness {
            status: if ready {
                ReadyStatus::Ready
            } else {
                ReadyStatus::NotReady
            },
            checks: Checks {
                broker: check(broker_ok),
                database: check(database_ok),
            },
        }),
    )
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health", responses(
    (status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
