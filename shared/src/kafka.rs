//! Kafka settings and clients shared by both servers.
//!
//! The producer is idempotent with `acks=all`, so a delivery report means every in-sync replica has
//! the record and a retry cannot duplicate it. It partitions with murmur2, like the Java client:
//! librdkafka's own default (CRC32) would send another team's Java, Kafka Streams or kafka-python
//! producer keyed by the same room id to another partition, breaking the room's order. Consumers keep
//! librdkafka's fetch settings: Apache Kafka answers a fetch as soon as one byte is there, so
//! `fetch.wait.max.ms` only bounds an idle long poll, not the SSE latency.

use std::time::Duration;

use anyhow::{Context, bail};
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::RDKafkaErrorCode,
    producer::FutureProducer,
};

use crate::settings::{self, KafkaArgs};

/// Where the events live and how to talk to the broker (read by [`KafkaArgs`]).
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `KAFKA_BROKERS`: bootstrap servers, e.g. `127.0.0.1:9092`.
    pub brokers: String,
    /// `KAFKA_TOPIC` (default `chat-events`).
    pub topic: String,
    /// `KAFKA_PARTITIONS` (default 6): partitions of the topic when this process creates it.
    pub partitions: i32,
    /// `KAFKA_REPLICATION_FACTOR` (default 1) for a topic this process creates.
    pub replication_factor: i32,
    /// `KAFKA_PRODUCE_TIMEOUT_MS` (default 5000): how long a post waits for the broker's
    /// acknowledgement before it answers 503.
    pub produce_timeout: Duration,
    /// `KAFKA_LINGER_MS` (default 1): the producer's `linger.ms`.
    pub linger: Duration,
}

/// Kafka's murmur2 hash of `data` (the Java client's `Utils.murmur2`, seed `0x9747b28c`), which
/// the producer's `murmur2_random` partitioner applies to a record's key.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if let Some(first) = rest.first() {
        h ^= u32::from(*first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition a record keyed `key` goes to among `partitions`, as the producer picks it
/// (Java's `toPositive(murmur2(key)) % partitions`).
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// The topic's name when `KAFKA_TOPIC` is unset.
pub const DEFAULT_TOPIC: &str = "chat-events";

impl KafkaSettings {
    /// Settings for a broker at `brokers` with every other value at its default.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        let defaults: KafkaArgs = settings::defaults();
        Self {
            brokers: brokers.into(),
            topic: topic.into(),
            partitions: defaults.partitions,
            replication_factor: defaults.replication_factor,
            produce_timeout: defaults.produce_timeout,
            linger: defaults.linger,
        }
    }

    fn base_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("socket.keepalive.enable", "true")
            // As the Java client and the broker do: a small request is sent at once, not held
            // back by Nagle's algorithm until the previous one is acknowledged.
            .set("socket.nagle.disable", "true");
        config
    }

    /// An idempotent producer (`acks=all`) whose deliveries fail after `produce_timeout`.
    pub fn producer(&self) -> anyhow::Result<FutureProducer> {
        self.base_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // Java's default partitioner for keyed records (null keys never occur here).
            .set("partitioner", "murmur2_random")
            .set("linger.ms", millis(self.linger))
            .set("message.timeout.ms", millis(self.produce_timeout))
            .create()
            .context("creating the Kafka producer")
    }

    /// Consumer settings common to every consumer: no auto-commit, failures noticed within seconds.
    pub fn consumer_config(&self, group_id: &str) -> ClientConfig {
        let mut config = self.base_config();
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            // Requests to a broker that stopped answering fail after 10 s instead of a minute, so a
            // consumer that is closing (shutdown) is not held up for long by an outage.
            .set("socket.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000");
        config
    }

    /// Creates the topic when it is missing and waits until the broker reports its partitions.
    /// Returns the partition count, which may differ from `partitions` if the topic already existed.
    pub async fn ensure_topic(&self) -> anyhow::Result<i32> {
        let admin: AdminClient<DefaultClientContext> = self
            .base_config()
            .create()
            .context("creating the Kafka admin client")?;
        let topic = NewTopic::new(
            &self.topic,
            self.partitions,
            TopicReplication::Fixed(self.replication_factor),
        );
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&topic], &options)
            .await
            .with_context(|| format!("creating topic {:?} on {}", self.topic, self.brokers))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => bail!("creating topic {name:?} failed: {code}"),
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match self.partition_count().await {
                Ok(n) if n > 0 => return Ok(n),
                Ok(_) | Err(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Ok(_) => bail!("topic {:?} has no partitions", self.topic),
                Err(e) => return Err(e),
            }
        }
    }

    /// The number of partitions of the topic, asked from the broker.
    pub async fn partition_count(&self) -> anyhow::Result<i32> {
        let settings = self.clone();
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = settings
                .base_config()
                .create()
                .context("creating a metadata client")?;
            let metadata = consumer
                .fetch_metadata(Some(&settings.topic), Duration::from_secs(5))
                .with_context(|| format!("reading metadata of topic {:?}", settings.topic))?;
            let topic = metadata
                .topics()
                .iter()
                .find(|t| t.name() == settings.topic)
                .context("topic missing from metadata")?;
            if let Some(err) = topic.error() {
                bail!("topic {:?}: {:?}", settings.topic, err);
            }
            Ok(topic.partitions().len() as i32)
        })
        .await
        .context("metadata task panicked")?
    }
}

fn millis(duration: Duration) -> String {
    duration.as_millis().max(1).to_string()
}

/// Drops a Kafka client on a thread of its own. Closing a group consumer waits for the coordinator
/// to acknowledge the leave, which after a broker outage can take as long as the session timeout or
/// more; on a runtime thread that would stall every task on it, and on the blocking pool it would hold
/// up the runtime's shutdown. A detached thread holds up neither, and the process may exit under it.
pub fn close_in_background<C: Send + 'static>(client: C) {
    let spawned = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(move || drop(client));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot spawn a thread to close a Kafka client");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Kafka's own test vectors (UtilsTest.testMurmur2).
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (data, hash) in cases {
            assert_eq!(murmur2(data), hash, "{}", String::from_utf8_lossy(data));
        }
    }

    #[test]
    fn a_partition_is_within_the_topic() {
        for key in [&b""[..], b"x", b"room"] {
            let partition = partition_for_key(key, 6);
            assert!((0..6).contains(&partition));
        }
    }
}
