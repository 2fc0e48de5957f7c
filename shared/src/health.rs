//! Liveness and readiness as both servers answer them: `GET /healthz`, `GET /readyz`, and the
//! content type of `GET /metrics`. Each server keeps its own handlers (their documentation says
//! what that server checks) and builds the answers here.

use std::time::Duration;

use axum::{Json, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{event_log::EventLog, readmodel::ReadModel, supervise::TaskHealth};

/// The content type of `GET /metrics`.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long each readiness check may take.
const CHECK_LIMIT: Duration = Duration::from_secs(2);

/// `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
pub struct Live {
    /// Always `ok`.
    status: &'static str,
}

pub fn live() -> Json<Live> {
    Json(Live { status: "ok" })
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Ok,
    Unavailable,
}

impl Check {
    pub fn of(ok: bool) -> Self {
        if ok { Check::Ok } else { Check::Unavailable }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Checks {
    /// The event log (Kafka, or the embedded log).
    broker: Check,
    database: Check,
    /// The server's critical background tasks (the fan-out, the projector, the hot-room
    /// scheduler): `unavailable` once one has stopped, and the server is shutting down.
    tasks: Check,
    /// chat-server only: Redis behind hot-room detection. Reported, but never makes the instance
    /// unready.
    #[serde(skip_serializing_if = "Option::is_none")]
    hot_store: Option<Check>,
}

/// The readiness report: overall, and per dependency.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    status: ReadyStatus,
    checks: Checks,
}

/// Ready when the event log and the database both answer within 2 s and every critical task still
/// runs; 503 otherwise, naming the failed checks. `hot_store` is only reported.
pub async fn readiness(
    log: &EventLog,
    read_model: &ReadModel,
    tasks: &TaskHealth,
    hot_store: Option<Check>,
) -> (StatusCode, Json<Readiness>) {
    let (broker, database) = tokio::join!(
        tokio::time::timeout(CHECK_LIMIT, log.ping()),
        tokio::time::timeout(CHECK_LIMIT, read_model.ping()),
    );
    let broker_ok = matches!(broker, Ok(Ok(())));
    let database_ok = matches!(database, Ok(Ok(())));
    let tasks_ok = !tasks.failed();
    let (status, ready) = if broker_ok && database_ok && tasks_ok {
        (StatusCode::OK, ReadyStatus::Ready)
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, ReadyStatus::NotReady)
    };
    let checks = Checks {
        broker: Check::of(broker_ok),
        database: Check::of(database_ok),
        tasks: Check::of(tasks_ok),
        hot_store,
    };
    (
        status,
        Json(Readiness {
            status: ready,
            checks,
        }),
    )
}
