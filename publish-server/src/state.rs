//! What every handler can reach.

use std::{sync::Arc, time::Duration};

use shared::{
    event_log::EventLog, readmodel::ReadModel, shutdown::CancellationToken, supervise::TaskHealth,
};
use tokio::sync::Semaphore;

use crate::{audience::Audience, hub::Hub, metrics::Metrics, per_address::StreamsPerAddress};

#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub read_model: ReadModel,
    pub metrics: Arc<Metrics>,
    /// The event log: where each partition ends tells a cursor from the future from a lagging
    /// instance, and readiness asks it.
    pub log: Arc<EventLog>,
    /// One permit per open event stream (`SSE_MAX_CONNECTIONS`).
    pub connections: Arc<Semaphore>,
    /// Open streams per client address (`SSE_MAX_STREAMS_PER_ADDRESS`).
    pub streams_per_address: Arc<StreamsPerAddress>,
    /// The longest an idle stream waits before a keep-alive comment.
    pub keepalive: Duration,
    /// Cancelled at shutdown: every open stream ends so clients reconnect elsewhere.
    pub shutdown: CancellationToken,
    /// Who watches each room (`event: presence`).
    pub audience: Arc<Audience>,
    /// Whether the read side's tasks all still run (readiness).
    pub health: TaskHealth,
}
