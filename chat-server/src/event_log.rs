//! Appending events to the log: Kafka in the distributed mode, the embedded log otherwise.
//!
//! `append` resolves only when the log has the event — the broker acknowledged it (idempotent
//! producer, `acks=all`) or the embedded log committed it to disk — and fails after a bounded time
//! otherwise: that is what lets the API promise "2xx means the log has it".

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

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
            && let Err(e) = kafka.current().1.flush(Timeout::After(timeout))
        {
            tracing::warn!(error = %e, "producer did not flush before shutdown");
        }
    }
}

/// The producing end of the Kafka topic.
pub struct KafkaLog {
    /// The current producer and its generation (see [`KafkaLog::recover`]).
    producer: Mutex<(u64, FutureProducer)>,
    settings: KafkaSettings,
}

impl KafkaLog {
    pub fn new(settings: KafkaSettings) -> anyhow::Result<Self> {
        Ok(Self {
            producer: Mutex::new((0, settings.producer()?)),
            settings,
        })
    }

    fn current(&self) -> (u64, FutureProducer) {
        self.producer.lock().expect("producer lock").clone()
    }

    async fn append(&self, event: &Envelope) -> Result<Cursor, AppendError> {
        let key = event.key();
        let payload = event.encode();
        let record = FutureRecord::to(&self.settings.topic)
            .key(&key)
            .payload(&payload);
        let limit = self.settings.produce_timeout;
        let (generation, producer) = self.current();
        // librdkafka fails a queued delivery after `message.timeout.ms`, but one already sent waits
        // for its request to time out; so the answer's own deadline is the produce timeout: a 503
        // comes within KAFKA_PRODUCE_TIMEOUT_MS whatever the broker is doing.
        let delivery = producer.send(record, Timeout::After(limit));
        let result = match tokio::time::timeout(limit, delivery).await {
            Err(_) => Err(AppendError::Timeout(limit)),
            Ok(Err((e, _))) => Err(AppendError::Kafka(e)),
            Ok(Ok(delivery)) => Ok(Cursor {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
        };
        if result.is_err() && producer.client().fatal_error().is_some() {
            self.recover(generation);
        }
        result
    }

    /// Replaces a producer that hit a fatal error. Against Apache Kafka an idempotent producer whose
    /// in-flight messages time out just bumps its epoch and goes on (only transactional producers are
    /// fenced), but librdkafka still raises a fatal error when it can no longer keep the idempotence
    /// guarantee (for example a sequence gap the broker rejects), and a producer in that state fails
    /// every later send. A new producer starts a new idempotent session, so posting resumes.
    fn recover(&self, generation: u64) {
        let mut current = self.producer.lock().expect("producer lock");
        if current.0 != generation {
            return; // another request already replaced it
        }
        match self.settings.producer() {
            Ok(fresh) => {
                tracing::error!(
                    "the Kafka producer's idempotent session is lost; replaced the producer"
                );
                *current = (generation + 1, fresh);
            }
            Err(e) => tracing::error!(error = %e, "cannot replace the failed Kafka producer"),
        }
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let (_, producer) = self.current();
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
