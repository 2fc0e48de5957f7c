//! The projector: events into the read model, shared by all instances through one consumer group.
//!
//! It takes whatever the log has ready (up to [`MAX_BATCH`] records), writes it in one transaction,
//! and only then commits the group's positions. A crash between the two replays the batch, which the
//! read model recognises by event id, so nothing is lost and nothing doubles. A database outage stops
//! the projector where it is; it retries until the database is back, and never skips ahead. Nothing
//! else waits for it: the fan-out reads the log on its own.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use shared::{
    cursor::Cursor,
    event::Envelope,
    event_log::{EventLog, Group, positions_after},
    readmodel::ReadModel,
    shutdown::CancellationToken,
};

use crate::metrics::{ConsumerLabel, Metrics};

/// Most records written in one transaction.
pub const MAX_BATCH: usize = 500;

pub struct Projector {
    group: Group,
    /// The next offset to project, per partition (for the lag metric).
    pub progress: Arc<Mutex<HashMap<i32, i64>>>,
    read_model: ReadModel,
    metrics: Arc<Metrics>,
}

impl Projector {
    /// Joins `group`; a group with no committed positions starts from the beginning of the log.
    pub async fn join(
        log: &EventLog,
        group: &str,
        read_model: ReadModel,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            group: log.join_group(group).await?,
            progress: Arc::default(),
            read_model,
            metrics,
        })
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut last_commit = None;
        loop {
            let batch = tokio::select! {
                () = shutdown.cancelled() => break,
                batch = self.group.next_batch(MAX_BATCH) => batch,
            };
            let records = match batch {
                Ok(records) => records,
                Err(e) => {
                    tracing::warn!(error = %e, "projector cannot read the event log");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    }
                }
            };
            let positions = positions_after(&records);
            let mut events: Vec<(Cursor, Envelope)> = Vec::with_capacity(records.len());
            for record in records {
                match record.event {
                    Ok(event) => events.push((record.cursor, event)),
                    Err(e) => {
                        self.metrics
                            .records_skipped
                            .get_or_create(&ConsumerLabel {
                                consumer: "projector",
                            })
                            .inc();
                        tracing::warn!(cursor = %record.cursor, error = %e, "projector skipped a record");
                    }
                }
            }
            if !self.write(&events, &positions, &shutdown).await {
                break;
            }
            self.progress
                .lock()
                .expect("projector offsets lock")
                .extend(positions.iter().copied());
            self.group.commit(&positions).await;
            last_commit = Some(positions);
        }
        // Once more: the last commit may still have been on its way. If it is lost, the last batch is
        // replayed and recognised by event id.
        if let Some(positions) = last_commit {
            self.group.commit(&positions).await;
        }
        tracing::info!("projector stopped");
        self.group.close();
    }

    /// Writes `events`, retrying until it succeeds. Returns false if shutdown came first.
    async fn write(
        &self,
        events: &[(Cursor, Envelope)],
        positions: &[(i32, i64)],
        shutdown: &CancellationToken,
    ) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.read_model.apply_batch(events, positions).await {
                Ok(applied) => {
                    self.metrics.events_projected.inc_by(applied as u64);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, events = events.len(), retry_in_ms = backoff.as_millis() as u64, "projector write failed");
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
