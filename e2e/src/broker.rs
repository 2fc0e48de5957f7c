//! Apache Kafka for the tests: the shared node `scripts/test` starts, nodes of a test's own, and
//! reading a topic back as another team's consumer would.

use std::time::Duration;

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};
use shared::{cursor::Cursor, event::Envelope};
pub use test_kafka::Cluster;

/// The shared Apache Kafka node started by `scripts/test` (`HOTCHAT_TEST_KAFKA`).
pub fn shared_brokers() -> String {
    crate::required_env("HOTCHAT_TEST_KAFKA", "127.0.0.1:9092")
}

/// One record of a topic, as a consumer from another team would read it.
#[derive(Debug, Clone)]
pub struct Record {
    pub cursor: Cursor,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

impl Record {
    pub fn event(&self) -> Envelope {
        Envelope::decode(self.key.as_deref(), self.value.as_deref()).expect("a hotchat event")
    }
}

/// Every record in `topic`, read from the beginning with a plain consumer.
pub async fn read_topic(brokers: &str, topic: &str) -> Vec<Record> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("e2e-reader-{}", uuid::Uuid::now_v7()))
            .set("enable.auto.commit", "false")
            .create()
            .expect("test consumer");
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(5))
            .expect("topic metadata");
        let partitions = metadata.topics()[0].partitions().len() as i32;
        let mut ends = Vec::new();
        let mut remaining = 0;
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, p, Duration::from_secs(5))
                .expect("watermarks");
            ends.push(high);
            remaining += high - low;
            list.add_partition_offset(&topic, p, Offset::Offset(low))
                .expect("partition");
        }
        consumer.assign(&list).expect("assign");
        let mut records = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while remaining > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "timed out reading topic {topic}"
            );
            // A broker that is down shows up as transient errors: polling goes on until the deadline.
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100))
                && message.offset() < ends[message.partition() as usize]
            {
                records.push(Record {
                    cursor: Cursor {
                        partition: message.partition(),
                        offset: message.offset(),
                    },
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().map(<[u8]>::to_vec),
                });
                remaining -= 1;
            }
        }
        records.sort_by_key(|r| r.cursor);
        records
    })
    .await
    .expect("reader task")
}

/// Apache Kafka of a test's own (one node), for tests that stop or pause it.
pub async fn own() -> Cluster {
    Cluster::single()
        .await
        .expect("Apache Kafka starts (see e2e/test-kafka)")
}

/// Three Apache Kafka nodes of a test's own: replication factor 3, `min.insync.replicas` 2.
pub async fn own_three() -> Cluster {
    Cluster::three()
        .await
        .expect("a three-node Apache Kafka cluster starts (see e2e/test-kafka)")
}
