//! The Kafka-protocol broker the tests run against, and reading a topic back.

use std::{process::Stdio, time::Duration};

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};
use shared::{cursor::Cursor, event::Envelope};
use tokio::process::{Child, Command};

/// The shared test broker started by `scripts/test` (`HOTCHAT_TEST_KAFKA`).
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
            .set("fetch.wait.max.ms", "10")
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
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.expect("record");
                if message.offset() < ends[message.partition() as usize] {
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
        }
        records.sort_by_key(|r| r.cursor);
        records
    })
    .await
    .expect("reader task")
}

/// A broker of a test's own, for tests that stop or pause it. Killed when dropped.
pub struct OwnBroker {
    pub addr: String,
    child: Child,
}

impl OwnBroker {
    pub async fn start() -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            listener.local_addr().expect("addr").port()
        };
        let addr = format!("127.0.0.1:{port}");
        let url = format!("tcp://{addr}");
        let log = std::env::temp_dir().join(format!("hotchat-own-broker-{port}.log"));
        let log = std::fs::File::create(&log).expect("broker log file");
        let child = Command::new("tansu")
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("cannot start `tansu`: run scripts/install-test-broker (it installs into ~/.cargo/bin)");
        crate::eventually(
            Duration::from_secs(10),
            "the test's own broker to listen",
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(addr).await.ok().map(|_| ()) }
            },
        )
        .await;
        Self { addr, child }
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused broker (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("broker is running");
        let status = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} {pid} failed");
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        // A paused process cannot die of SIGKILL until it is continued on some kernels' views of
        // accounting; continue it first so the kill is immediate.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
    }
}
