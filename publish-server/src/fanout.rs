//! The fan-out consumer: every partition, every instance, straight to the hub.
//!
//! It uses manual partition assignment, not a consumer group: a shared group would hand each event to
//! one instance only, and the browsers on the other instances would never see it (seeds 001, 002).
//! Each instance starts at the partitions' current ends, read explicitly at start-up so that anything
//! appended after `Application::build` returns is delivered.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
};
use shared::{cursor::Cursor, event::Envelope, kafka::KafkaSettings, shutdown::CancellationToken};
use uuid::Uuid;

use crate::{
    hub::Hub,
    metrics::{ConsumerLabel, Metrics},
};

/// How often rooms without subscribers are released.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

pub struct Fanout {
    consumer: StreamConsumer,
}

impl Fanout {
    /// Assigns every partition of the topic at its current end.
    pub async fn assign(settings: &KafkaSettings, partitions: i32) -> anyhow::Result<Self> {
        // A group id is required by the client, but nothing joins it or commits to it.
        let group = format!("hotchat-fanout-{}", Uuid::now_v7());
        let consumer: StreamConsumer = settings
            .consumer_config(&group)
            .create()
            .context("creating the fan-out consumer")?;
        let consumer = Arc::new(consumer);
        let topic = settings.topic.clone();
        let assigned = Arc::clone(&consumer);
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut list = TopicPartitionList::new();
            for partition in 0..partitions {
                let (_, high) = assigned
                    .fetch_watermarks(&topic, partition, Duration::from_secs(10))
                    .with_context(|| format!("reading the end of partition {partition}"))?;
                list.add_partition_offset(&topic, partition, Offset::Offset(high))?;
            }
            assigned.assign(&list).context("assigning partitions")
        })
        .await
        .context("assignment task panicked")??;
        let consumer = Arc::try_unwrap(consumer)
            .map_err(|_| anyhow::anyhow!("fan-out consumer still shared after assignment"))?;
        Ok(Self { consumer })
    }

    /// Reads until `shutdown`, handing each event to the hub in log order.
    pub async fn run(self, hub: Arc<Hub>, metrics: Arc<Metrics>, shutdown: CancellationToken) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = sweep.tick() => {
                    hub.sweep();
                    continue;
                }
                message = self.consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    // librdkafka reconnects by itself; back off so an outage does not spin.
                    tracing::warn!(error = %e, "fan-out consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let cursor = Cursor {
                partition: message.partition(),
                offset: message.offset(),
            };
            match Envelope::decode(message.key(), message.payload()) {
                Ok(event) => hub.dispatch(cursor, &event).await,
                Err(e) => {
                    metrics
                        .records_skipped
                        .get_or_create(&ConsumerLabel { consumer: "fanout" })
                        .inc();
                    tracing::debug!(%cursor, error = %e, "fan-out skipped a record");
                }
            }
        }
        tracing::info!("fan-out consumer stopped");
    }
}
