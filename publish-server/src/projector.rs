//! The projector: events into the read model, shared by all instances through one consumer group.
//!
//! It takes whatever the client has buffered (up to [`MAX_BATCH`] records), writes it in one
//! transaction, and only then commits the offsets. A crash between the two replays the batch, which the
//! read model recognises by event id, so nothing is lost and nothing doubles. A database outage stops
//! the projector where it is; it retries until the database is back, and never skips ahead.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use futures::FutureExt;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer, StreamConsumer},
};
use shared::{
    cursor::Cursor, event::Envelope, kafka::KafkaSettings, readmodel::ReadModel,
    shutdown::CancellationToken,
};

use crate::metrics::{ConsumerLabel, Metrics};

/// Most records written in one transaction.
pub const MAX_BATCH: usize = 500;

pub struct Projector {
    consumer: StreamConsumer,
    /// The next offset to project, per partition (for the lag metric).
    pub progress: Arc<Mutex<HashMap<i32, i64>>>,
    topic: String,
    read_model: ReadModel,
    metrics: Arc<Metrics>,
}

impl Projector {
    /// Joins `group`; a group with no committed offsets starts from the beginning of the topic.
    pub fn join(
        settings: &KafkaSettings,
        group: &str,
        read_model: ReadModel,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let consumer: StreamConsumer = settings
            .consumer_config(group)
            .set("auto.offset.reset", "earliest")
            .create()
            .context("creating the projector consumer")?;
        consumer
            .subscribe(&[&settings.topic])
            .context("subscribing the projector")?;
        Ok(Self {
            consumer,
            progress: Arc::default(),
            topic: settings.topic.clone(),
            read_model,
            metrics,
        })
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let mut last_commit: Option<TopicPartitionList> = None;
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => break,
                message = self.consumer.recv() => message,
            };
            let first = match first {
                Ok(message) => message,
                Err(e) => {
                    tracing::warn!(error = %e, "projector consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.consumer.recv().now_or_never() {
                    Some(Ok(message)) => batch.push(message),
                    _ => break,
                }
            }
            let mut events = Vec::with_capacity(batch.len());
            let mut commit = TopicPartitionList::new();
            for message in &batch {
                let cursor = Cursor {
                    partition: message.partition(),
                    offset: message.offset(),
                };
                match Envelope::decode(message.key(), message.payload()) {
                    Ok(event) => events.push((cursor, event)),
                    Err(e) => {
                        self.metrics
                            .records_skipped
                            .get_or_create(&ConsumerLabel {
                                consumer: "projector",
                            })
                            .inc();
                        tracing::warn!(%cursor, error = %e, "projector skipped a record");
                    }
                }
                // Records arrive in order per partition, so the last one wins.
                let _ = commit.add_partition_offset(
                    &self.topic,
                    cursor.partition,
                    Offset::Offset(cursor.offset + 1),
                );
            }
            drop(batch);
            if !self.write(&events, &shutdown).await {
                break;
            }
            {
                let mut progress = self.progress.lock().expect("projector offsets lock");
                for element in commit.elements() {
                    if let Offset::Offset(next) = element.offset() {
                        progress.insert(element.partition(), next);
                    }
                }
            }
            if let Err(e) = self.consumer.commit(&commit, CommitMode::Async) {
                tracing::warn!(error = %e, "projector offset commit failed; the batch may be replayed");
            }
            last_commit = Some(commit);
        }
        // Once more, asynchronously: a synchronous commit would block this runtime thread for as
        // long as the group coordinator takes, and after a broker outage that can be a minute. The
        // consumer's close (on drop) still sends it; if it is lost, the last batch is replayed and
        // recognised by event id.
        if let Some(commit) = last_commit
            && let Err(e) = self.consumer.commit(&commit, CommitMode::Async)
        {
            tracing::warn!(error = %e, "final projector commit failed; the last batch may be replayed");
        }
        tracing::info!("projector stopped");
        shared::kafka::close_in_background(self.consumer);
    }

    /// Writes `events`, retrying until it succeeds. Returns false if shutdown came first.
    async fn write(&self, events: &[(Cursor, Envelope)], shutdown: &CancellationToken) -> bool {
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.read_model.apply_batch(events).await {
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
