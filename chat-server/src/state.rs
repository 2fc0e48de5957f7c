//! What every handler can reach.

use std::sync::Arc;

use shared::readmodel::ReadModel;

use crate::{auth::TokenSigner, event_log::EventLog, metrics::Metrics};

#[derive(Clone)]
pub struct AppState {
    pub log: Arc<EventLog>,
    pub read_model: ReadModel,
    pub signer: Arc<TokenSigner>,
    pub metrics: Arc<Metrics>,
}
