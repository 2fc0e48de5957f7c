//! The read side for the embedded log: what the fan-out consumer and the projector do with Kafka,
//! done in chat-server's own process when `KAFKA_BROKERS` is unset.
//!
//! Each appended record is first projected into the read model (with the log position, in one
//! transaction, so a restart resumes exactly where it stopped) and then dispatched to the hub, so a
//! client that gets an event over SSE and fetches the history finds it there. At start-up the read
//! model catches up with whatever the log holds beyond its position, and the hub pre-loads the last
//! `SSE_RESUME_BUFFER` records so clients that were connected before a restart resume without a gap.

use std::{sync::Arc, time::Duration};

use axum::Router;
use shared::{
    cursor::Cursor,
    event::Envelope,
    local_log::{self, LocalLog},
    readmodel::ReadModel,
    shutdown::CancellationToken,
};
use tokio::sync::{Semaphore, mpsc};

use crate::{
    fanout::{LogEnd, SWEEP_EVERY, sweep_hub},
    hub::Hub,
    metrics::{LagLabel, Metrics},
    routes,
    settings::SseSettings,
    state::AppState,
};

/// Records read per step while catching up at start-up.
const CATCH_UP_BATCH: i64 = 1_000;
/// Most fed records projected in one transaction.
const MAX_BATCH: usize = 500;

pub struct Embedded {
    state: AppState,
    log: Arc<LocalLog>,
    feed: mpsc::Receiver<(Cursor, Envelope)>,
}

impl Embedded {
    /// Catches the read model up with `log`, pre-loads the hub and takes the log's feed.
    pub async fn prepare(
        log: Arc<LocalLog>,
        read_model: ReadModel,
        sse: &SseSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let feed = log
            .take_feed()
            .ok_or_else(|| anyhow::anyhow!("the event log's feed is already taken"))?;
        let hub = Arc::new(Hub::new(
            sse.room_buffer,
            sse.resume_buffer,
            read_model.clone(),
        ));
        let end = log.end();
        let mut next = read_model.local_position().await?;
        while next < end {
            let records = log.read(next, CATCH_UP_BATCH).await?;
            let Some((last, _)) = records.last() else {
                break;
            };
            let after = last.offset + 1;
            let events: Vec<_> = records
                .into_iter()
                .filter_map(|(cursor, event)| event.ok().map(|e| (cursor, e)))
                .collect();
            read_model.apply_local(&events, after).await?;
            next = after;
        }
        let start = (end - sse.resume_buffer as i64).max(0);
        hub.start_partition(local_log::PARTITION, start);
        let mut from = start;
        while from < end {
            let records = log.read(from, CATCH_UP_BATCH).await?;
            let Some((last, _)) = records.last() else {
                break;
            };
            from = last.offset + 1;
            for (cursor, event) in records {
                hub.dispatch(cursor, event.ok()).await;
            }
        }
        tracing::info!(records = end, "embedded event log ready");
        let state = AppState {
            hub,
            read_model,
            metrics,
            log_end: Arc::new(LogEnd::Local(log.clone())),
            connections: Arc::new(Semaphore::new(sse.max_connections)),
            keepalive: sse.keepalive,
            shutdown: CancellationToken::new(),
        };
        Ok(Self { state, log, feed })
    }

    /// `GET /api/rooms/{room}/events`, to be served next to chat-server's API.
    pub fn router(&self) -> Router {
        routes::events_router().with_state(self.state.clone())
    }

    /// Projects and dispatches appended records until `shutdown`; then ends every open stream.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = sweep.tick() => {
                    sweep_hub(&self.state.hub, &self.state.metrics);
                    self.report_lag();
                    continue;
                }
                record = self.feed.recv() => match record {
                    Some(record) => record,
                    None => break,
                },
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.feed.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            let next = batch.last().map_or(0, |(cursor, _)| cursor.offset + 1);
            if !self.project(&batch, next, &shutdown).await {
                break;
            }
            for (cursor, event) in batch {
                self.state.hub.dispatch(cursor, Some(event)).await;
            }
        }
        self.state.shutdown.cancel();
        tracing::info!(end = self.log.end(), "embedded read side stopped");
    }

    /// `hotchat_consumer_lag{consumer="embedded"}`: appended records not yet projected and dispatched.
    fn report_lag(&self) {
        for (partition, last) in self.state.hub.positions() {
            let next = last.map_or(0, |o| o + 1);
            let label = LagLabel {
                consumer: "embedded",
                partition: partition.to_string(),
            };
            let lag = (self.log.end() - next).max(0);
            self.state
                .metrics
                .consumer_lag
                .get_or_create(&label)
                .set(lag);
        }
    }

    /// Writes `batch` to the read model, retrying until it succeeds; false if shutdown came first.
    async fn project(
        &self,
        batch: &[(Cursor, Envelope)],
        next: i64,
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.state.read_model.apply_local(batch, next).await {
                Ok(applied) => {
                    self.state.metrics.events_projected.inc_by(applied as u64);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "embedded projection failed");
                    tokio::select! {
                        () = shutdown.cancelled() => return false,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
