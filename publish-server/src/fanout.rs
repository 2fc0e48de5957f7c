//! The fan-out consumer: every partition, every instance, straight to the hub.
//!
//! It uses manual partition assignment, not a consumer group: a shared group would hand each event to
//! one instance only, and the browsers on the other instances would never see it (seeds 001, 002).
//! Each instance starts `resume_capacity` records before the end of every partition (read explicitly
//! at start-up), so that a client moving here from another instance can resume at once, and anything
//! appended after `Application::build` returns is delivered.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, StreamConsumer},
};
use shared::{
    cursor::Cursor,
    event::Envelope,
    kafka::KafkaSettings,
    local_log::{self, LocalLog},
    shutdown::CancellationToken,
};
use uuid::Uuid;

use crate::{
    hub::Hub,
    metrics::{ConsumerLabel, LagLabel, Metrics},
};

/// How often stalled subscribers are cut off and empty rooms released.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often consumer lag is measured.
const LAG_EVERY: Duration = Duration::from_secs(5);

pub struct Fanout {
    consumer: StreamConsumer,
}

impl Fanout {
    /// Assigns every partition, starting `resume_capacity` records before its end, and tells the
    /// hub where each starts.
    pub async fn assign(
        settings: &KafkaSettings,
        log_end: &KafkaWatermarks,
        partitions: i32,
        resume_capacity: usize,
        hub: &Hub,
    ) -> anyhow::Result<Self> {
        // A group id is required by the client, but nothing joins it or commits to it.
        let group = format!("hotchat-fanout-{}", Uuid::now_v7());
        let consumer: StreamConsumer = settings
            .consumer_config(&group)
            .create()
            .context("creating the fan-out consumer")?;
        let mut list = TopicPartitionList::new();
        for partition in 0..partitions {
            let (low, high) = log_end.watermarks(partition).await?;
            let start = (high - resume_capacity as i64).max(low);
            list.add_partition_offset(&settings.topic, partition, Offset::Offset(start))?;
            hub.start_partition(partition, start);
        }
        consumer.assign(&list).context("assigning partitions")?;
        Ok(Self { consumer })
    }

    /// Reads until `shutdown`, handing each record to the hub in log order.
    pub async fn run(self, hub: Arc<Hub>, metrics: Arc<Metrics>, shutdown: CancellationToken) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = sweep.tick() => {
                    sweep_hub(&hub, &metrics);
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
            let event = match Envelope::decode(message.key(), message.payload()) {
                Ok(event) => Some(event),
                Err(e) => {
                    metrics
                        .records_skipped
                        .get_or_create(&ConsumerLabel { consumer: "fanout" })
                        .inc();
                    tracing::debug!(%cursor, error = %e, "fan-out skipped a record");
                    None
                }
            };
            hub.dispatch(cursor, event).await;
        }
        tracing::info!("fan-out consumer stopped");
    }
}

/// Cuts off stalled subscribers and releases empty rooms (every [`SWEEP_EVERY`]).
pub(crate) fn sweep_hub(hub: &Hub, metrics: &Metrics) {
    let cut = hub.sweep();
    if cut > 0 {
        metrics.clients_cut_off.inc_by(cut as u64);
        tracing::info!(cut, "cut off SSE clients that stopped reading");
    }
    metrics.sse_rooms.set(hub.room_count() as i64);
}

/// Where each partition of the event log ends: asked from Kafka, or read off the embedded log.
pub enum LogEnd {
    Kafka(KafkaWatermarks),
    Local(Arc<LocalLog>),
}

impl LogEnd {
    /// The offset the next record of `partition` will get.
    pub async fn high_watermark(&self, partition: i32) -> anyhow::Result<i64> {
        match self {
            LogEnd::Kafka(kafka) => Ok(kafka.watermarks(partition).await?.1),
            LogEnd::Local(log) if partition == local_log::PARTITION => Ok(log.end()),
            LogEnd::Local(_) => Ok(0),
        }
    }
}

/// Asks the broker where partitions begin and end.
pub struct KafkaWatermarks {
    client: Arc<BaseConsumer>,
    topic: String,
}

impl KafkaWatermarks {
    pub fn new(settings: &KafkaSettings) -> anyhow::Result<Self> {
        let client: BaseConsumer = settings
            .consumer_config(&format!("hotchat-watermarks-{}", Uuid::now_v7()))
            .create()
            .context("creating the watermark client")?;
        Ok(Self {
            client: Arc::new(client),
            topic: settings.topic.clone(),
        })
    }

    /// The (low, high) watermarks of `partition`: its first offset and the offset the next record
    /// will get.
    pub async fn watermarks(&self, partition: i32) -> anyhow::Result<(i64, i64)> {
        let (client, topic) = (self.client.clone(), self.topic.clone());
        tokio::task::spawn_blocking(move || {
            client
                .fetch_watermarks(&topic, partition, Duration::from_secs(5))
                .with_context(|| format!("reading the watermarks of partition {partition}"))
        })
        .await
        .context("watermark task panicked")?
    }
}

/// Publishes `hotchat_consumer_lag{consumer, partition}` every few seconds: records at the end of
/// each partition not yet handled by the fan-out consumer and by the projector.
pub async fn report_lag(
    log_end: Arc<LogEnd>,
    hub: Arc<Hub>,
    projected: Arc<std::sync::Mutex<HashMap<i32, i64>>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut every = tokio::time::interval(LAG_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = every.tick() => {}
        }
        for (partition, last) in hub.positions() {
            let Ok(end) = log_end.high_watermark(partition).await else {
                continue;
            };
            let next = last.map_or(0, |o| o + 1);
            let label = |consumer| LagLabel {
                consumer,
                partition: partition.to_string(),
            };
            metrics
                .consumer_lag
                .get_or_create(&label("fanout"))
                .set((end - next).max(0));
            let projected = projected
                .lock()
                .expect("projector offsets lock")
                .get(&partition)
                .copied();
            if let Some(next) = projected {
                metrics
                    .consumer_lag
                    .get_or_create(&label("projector"))
                    .set((end - next).max(0));
            }
        }
    }
}
