//! Appending events to the topic.
//!
//! `append` resolves only when the broker acknowledged the record (idempotent producer, `acks=all`) and
//! fails after a bounded time otherwise: that is what lets the API promise "2xx means the broker has it".

use std::time::Duration;

use anyhow::Context;
use rdkafka::{
    error::KafkaError,
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};
use shared::{cursor::Cursor, event::Envelope, kafka::KafkaSettings};

#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("the broker did not acknowledge the event within {0:?}")]
    Timeout(Duration),
    #[error("the broker refused the event: {0}")]
    Kafka(#[from] KafkaError),
}

/// The producing end of the event topic.
pub struct EventLog {
    producer: FutureProducer,
    settings: KafkaSettings,
}

impl EventLog {
    pub fn new(settings: KafkaSettings) -> anyhow::Result<Self> {
        Ok(Self {
            producer: settings.producer()?,
            settings,
        })
    }

    /// Appends `event` (key = its room id) and returns where the broker stored it.
    pub async fn append(&self, event: &Envelope) -> Result<Cursor, AppendError> {
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

    /// Checks that the broker answers and knows the topic (readiness).
    pub async fn ping(&self) -> anyhow::Result<()> {
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

    /// Waits for queued records to be delivered, at shutdown.
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer did not flush before shutdown");
        }
    }
}
