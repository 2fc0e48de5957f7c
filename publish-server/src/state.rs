//! What every handler can reach.

use std::{sync::Arc, time::Duration};

use shared::{readmodel::ReadModel, shutdown::CancellationToken};

use crate::{hub::Hub, metrics::Metrics};

#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub read_model: ReadModel,
    pub metrics: Arc<Metrics>,
    /// The longest an idle stream waits before a keep-alive comment.
    pub keepalive: Duration,
    /// Cancelled at shutdown: every open stream ends so clients reconnect elsewhere.
    pub shutdown: CancellationToken,
}
