//! Appending events to the log: Kafka in the distributed mode, the embedded log otherwise.
//!
//! `append` resolves only when the log has the event — the broker acknowledged it (idempotent
//! producer, `acks=all`) or the embedded log committed it to disk — and fails after a bounded time
//! otherwise: that is what lets the API promise "2xx means the log has it".

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use rdkafka::{
    error::KafkaError,
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};
use shared::{
    cursor::Cursor,
    event::Envelope,
    kafka::KafkaSettings,
    local_log::{LocalLog, LocalLogError},
};

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the broker did not acknowledge the event within {0:?}")]
    Timeout(Duration),
    #[error("the broker refused the event: {0}")]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Local(#[from] LocalLogError),
}

pub enum EventLog {
    Kafka(KafkaLog),
    Local(Arc<LocalLog>),
}

impl EventLog {
    /// Appends `event` (key = its room id) and returns where the log stored it.
    pub async fn append(&self, event: &Envelope) -> Result<Cursor, AppendError> {
        match self {
            EventLog::Kafka(kafka) => kafka.append(event).await,
            EventLog::Local(local) => Ok(local.append(event).await?),
        }
    }

    /// Checks that the log answers (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            EventLog::Kafka(kafka) => kafka.ping().await,
            EventLog::Local(local) => local.ping().await,
        }
    }

    /// Waits for queued records to be delivered, at shutdown.
    pub fn flush(&self, timeout: Duration) {
        if let EventLog::Kafka(kafka) = self
            && let Err(e) = kafka.producer.flush(Timeout::After(timeout))
        {
            tracing::warn!(error = %e, "producer did not flush before shutdown");
        }
    }
}

/// The producing end of the Kafka topic.
pub struct KafkaLog {
    producer: FutureProducer,
    settings: KafkaSettings,
}

impl KafkaLog {
    pub fn new(settings: KafkaSettings) -> anyhow::Result<Self> {
        Ok(Self {
            producer: settings.producer()?,
            settings,
        })
    }

    async fn append(&self, event: &Envelope) -> Result<Cursor, AppendError> {
        let key = event.key();
        let payload = event.encode();
        let record = FutureRecord::to(&self.settings.topic)
            .key(&key)
            .payload(&payload);
        let limit = self.settings.produce_timeout;
        // librdkafka fails the delivery after `message.timeout.ms`; the outer timeout is a backstop
        // so that no request can hang on a wedged client.
        let delivery = self.producer.send(record, Timeout::After(limit));
        match tokio::time::timeout(limit + Duration::from_secs(1), delivery).await {
            Err(_) => Err(AppendError::Timeout(limit)),
            Ok(Err((e, _))) => Err(AppendError::Kafka(e)),
            Ok(Ok(delivery)) => Ok(Cursor {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
        }
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let producer = self.producer.clone();
        let topic = self.settings.topic.clone();
        tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), Duration::from_secs(2))
                .map(|_| ())
                .context("broker metadata request failed")
        })
        .await
        .context("metadata task panicked")?
    }
}
