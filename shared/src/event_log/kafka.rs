//! The event log on a Kafka topic.
//!
//! Appends go through one idempotent producer (`acks=all`, see [`crate::kafka`]), created on the
//! first append so a process that only reads (publish-server) holds no producer. Tails use manual
//! partition assignment and no committed offsets: a shared group would hand each event to one
//! instance only, and the browsers on the others would never see it (seeds 001, 002). Groups are
//! ordinary Kafka consumer groups with manual commits.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use futures::FutureExt;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer},
    message::BorrowedMessage,
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};
use uuid::Uuid;

use super::{AppendError, GROUP_WAIT, Record};
use crate::{cursor::Cursor, event::Envelope, kafka::KafkaSettings};

pub struct KafkaLog {
    settings: KafkaSettings,
    partitions: i32,
    /// The producer and its generation (see [`KafkaLog::replace_producer`]); made on first use.
    producer: Mutex<Option<(u64, FutureProducer)>>,
    /// Asks the brokers where partitions begin and end (on the blocking pool, hence the `Arc`).
    metadata: Arc<BaseConsumer>,
}

impl KafkaLog {
    /// Creates the topic if it is missing and waits until the brokers report its partitions.
    pub async fn open(settings: KafkaSettings) -> anyhow::Result<Self> {
        let partitions = settings.ensure_topic().await?;
        let metadata = settings
            .consumer_config(&format!("hotchat-metadata-{}", Uuid::now_v7()))
            .create()
            .context("creating the Kafka metadata client")?;
        Ok(Self {
            settings,
            partitions,
            producer: Mutex::new(None),
            metadata: Arc::new(metadata),
        })
    }

    pub fn partitions(&self) -> i32 {
        self.partitions
    }

    pub fn prepare_writer(&self) -> anyhow::Result<()> {
        self.producer().map(|_| ()).map_err(anyhow::Error::from)
    }

    fn producer(&self) -> Result<(u64, FutureProducer), AppendError> {
        let mut current = self.producer.lock().expect("producer lock");
        if let Some(producer) = &*current {
            return Ok(producer.clone());
        }
        let fresh = self
            .settings
            .producer()
            .map_err(|e| AppendError::Write(format!("{e:#}")))?;
        *current = Some((0, fresh.clone()));
        Ok((0, fresh))
    }

    pub async fn append(&self, event: &Envelope) -> Result<Cursor, AppendError> {
        let key = event.key();
        let payload = event.encode();
        let record = FutureRecord::to(&self.settings.topic)
            .key(&key)
            .payload(&payload);
        let limit = self.settings.produce_timeout;
        let (generation, producer) = self.producer()?;
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
            self.replace_producer(generation);
        }
        result
    }

    /// Replaces a producer that hit a fatal error. Against Apache Kafka an idempotent producer whose
    /// in-flight messages time out just bumps its epoch and goes on (only transactional producers are
    /// fenced), but librdkafka still raises a fatal error when it can no longer keep the idempotence
    /// guarantee (for example a sequence gap the broker rejects), and a producer in that state fails
    /// every later send. A new producer starts a new idempotent session, so posting resumes.
    fn replace_producer(&self, generation: u64) {
        let mut current = self.producer.lock().expect("producer lock");
        if current.as_ref().is_some_and(|(g, _)| *g != generation) {
            return; // another request already replaced it
        }
        match self.settings.producer() {
            Ok(fresh) => {
                tracing::error!(
                    "the Kafka producer's idempotent session is lost; replaced the producer"
                );
                *current = Some((generation + 1, fresh));
            }
            Err(e) => tracing::error!(error = %e, "cannot replace the failed Kafka producer"),
        }
    }

    /// The (low, high) watermarks of `partition`: its first offset and the offset the next record
    /// will get.
    pub async fn bounds(&self, partition: i32) -> anyhow::Result<(i64, i64)> {
        let client = self.metadata.clone();
        let topic = self.settings.topic.clone();
        tokio::task::spawn_blocking(move || {
            client
                .fetch_watermarks(&topic, partition, Duration::from_secs(5))
                .with_context(|| format!("reading the watermarks of partition {partition}"))
        })
        .await
        .context("watermark task panicked")?
    }

    /// Where each of `partitions` ends (the offset its next record will get), in one `ListOffsets`
    /// request: the watermarks above cost two, and a write that must see every earlier one asks
    /// this before it is decided.
    pub async fn ends(&self, partitions: &[i32]) -> anyhow::Result<Vec<(i32, i64)>> {
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            list.add_partition_offset(&self.settings.topic, *partition, Offset::End)?;
        }
        let client = self.metadata.clone();
        let answer = tokio::task::spawn_blocking(move || {
            client
                .offsets_for_times(list, Duration::from_secs(5))
                .context("reading where the partitions end")
        })
        .await
        .context("offsets task panicked")??;
        answer
            .elements()
            .iter()
            .map(|element| {
                if let Some(error) = element.error().err() {
                    anyhow::bail!("partition {}: {error}", element.partition());
                }
                match element.offset() {
                    Offset::Offset(end) => Ok((element.partition(), end)),
                    other => anyhow::bail!(
                        "partition {}: the broker named no end ({other:?})",
                        element.partition()
                    ),
                }
            })
            .collect()
    }

    pub fn tail(&self, from: &[(i32, i64)]) -> anyhow::Result<KafkaTail> {
        // A group id is required by the client, but nothing joins it or commits to it.
        let consumer: StreamConsumer = self
            .settings
            .consumer_config(&format!("hotchat-tail-{}", Uuid::now_v7()))
            .create()
            .context("creating a Kafka tail consumer")?;
        let mut list = TopicPartitionList::new();
        for (partition, offset) in from {
            list.add_partition_offset(&self.settings.topic, *partition, Offset::Offset(*offset))?;
        }
        consumer.assign(&list).context("assigning partitions")?;
        Ok(KafkaTail { consumer })
    }

    pub fn join_group(&self, group: &str) -> anyhow::Result<KafkaGroup> {
        let consumer: StreamConsumer = self
            .settings
            .consumer_config(group)
            .set("auto.offset.reset", "earliest")
            // Groups (the projector) are off the live path: the broker holds each fetch until it
            // has this much or the wait is over, so a quiet log costs a few fetches a second and
            // one transaction per batch, not one of each per event.
            .set("fetch.min.bytes", "1048576")
            .set("fetch.wait.max.ms", GROUP_WAIT.as_millis().to_string())
            .create()
            .context("creating a Kafka group consumer")?;
        consumer
            .subscribe(&[&self.settings.topic])
            .with_context(|| format!("joining consumer group {group:?}"))?;
        Ok(KafkaGroup {
            consumer,
            topic: self.settings.topic.clone(),
        })
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        self.bounds(0).await.map(|_| ())
    }

    pub fn flush(&self, timeout: Duration) {
        let producer = self.producer.lock().expect("producer lock").clone();
        if let Some((_, producer)) = producer
            && let Err(e) = producer.flush(Timeout::After(timeout))
        {
            tracing::warn!(error = %e, "producer did not flush before shutdown");
        }
    }
}

/// Reads assigned partitions; commits nothing.
pub struct KafkaTail {
    consumer: StreamConsumer,
}

impl KafkaTail {
    pub async fn next_batch(&mut self, max: usize) -> anyhow::Result<Vec<Record>> {
        next_batch(&self.consumer, max).await
    }
}

/// A member of a Kafka consumer group.
pub struct KafkaGroup {
    consumer: StreamConsumer,
    topic: String,
}

impl KafkaGroup {
    pub async fn next_batch(&mut self, max: usize) -> anyhow::Result<Vec<Record>> {
        next_batch(&self.consumer, max).await
    }

    /// An asynchronous commit: a synchronous one would block this runtime thread for as long as
    /// the group coordinator takes, and after a broker outage that can be a minute.
    pub fn commit(&self, positions: &[(i32, i64)]) {
        let mut list = TopicPartitionList::new();
        for (partition, next) in positions {
            if let Err(e) =
                list.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))
            {
                tracing::warn!(partition, error = %e, "cannot name a position to commit");
            }
        }
        if let Err(e) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(error = %e, "offset commit failed; the records may be read again");
        }
    }

    /// Leaves the group on a thread of its own (see [`crate::kafka::close_in_background`]); the
    /// last asynchronous commit is sent on the way out.
    pub fn close(self) {
        crate::kafka::close_in_background(self.consumer);
    }
}

/// Waits for one message, then takes whatever else the client has buffered, up to `max`.
async fn next_batch(consumer: &StreamConsumer, max: usize) -> anyhow::Result<Vec<Record>> {
    let first = consumer.recv().await.context("reading from Kafka")?;
    let mut batch = vec![record(&first)];
    drop(first);
    while batch.len() < max.max(1) {
        match consumer.recv().now_or_never() {
            Some(Ok(message)) => batch.push(record(&message)),
            _ => break,
        }
    }
    Ok(batch)
}

fn record(message: &BorrowedMessage<'_>) -> Record {
    Record {
        cursor: Cursor {
            partition: message.partition(),
            offset: message.offset(),
        },
        event: Envelope::decode(message.key(), message.payload()),
    }
}
